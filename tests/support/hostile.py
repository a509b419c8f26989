"""Hostile text a run folder may carry (loss and noise names, run folder names, overrides), for the
tests that check every output escapes it: LaTeX commands after a newline, HTML, spreadsheet formulas,
terminal escapes, rich markup, bidi overrides, matplotlib mathtext."""

TEX_ATTACK = "\n\\immediate\\write18{touch pwned}\n\\input{/etc/passwd}\n"
LOSSES = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '=HYPERLINK("http://evil","x")',
    "$\\frac{1}{0$",
    "a|b**c**",
    "50% \\def\\x{y} #1 & _x_ ~^",
    "\x1b[2J\x1b[31mred",
    "[/]",
    "[bold red]x[/bold red] [link=file:///etc/passwd]y[/link]",
    f"x{TEX_ATTACK}",
]
NOISES = ["sym20", "@SUM(A1)", "-2+3", "\u202egnp.exe"]
OVERRIDES = [f"trainer.epochs=2{TEX_ATTACK}", "optim.lr=<script>alert(1)</script>", "loss.q=[/]",
             "logger.tags=\x1b]0;title\x07"]
