"""Every loss on digits with symmetric label noise, over several seeds: a Markdown accuracy table.

    python scripts/bench_losses.py                      # all losses, sym60, seeds 0,1,2, 30 epochs
    python scripts/bench_losses.py --losses ce,gce,nce_rce --epochs 120 \\
        --sweep-dir outputs/bench_losses_120 --title "120 epochs" --append
    python scripts/bench_losses.py --losses logit_norm optim.lr=0.01,0.001 \\
        --sweep-dir outputs/bench_losses_lr --title "Smaller learning rates" --append

One `lossbench run -m` sweep (Hydra's basic launcher, one job after another)
writes its runs below --sweep-dir; the table is built from their summary.json
files only. A row is a loss plus any override that varies within the sweep
(``optim.lr=0.01``). Re-running with the same arguments and --sweep-dir skips
the finished runs (lossbench recognises them), so an interrupted benchmark
resumes; use a new --sweep-dir for a different loss list, since Hydra numbers
the job folders by position in the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from lossbench.losses import FAMILIES, LOSSES

REPO = Path(__file__).resolve().parents[1]


def sweep_command(losses: list[str], seeds: list[int], noise: str, epochs: int, sweep_dir: Path,
                  extra: list[str]) -> list[str]:
    return [
        "lossbench", "run", "-m",
        f"loss={','.join(losses)}",
        f"seed={','.join(map(str, seeds))}",
        f"noise={noise}",
        f"trainer.epochs={epochs}",
        "trainer.checkpoint_every=0",
        "trainer.progress=none",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]


def collect(sweep_dir: Path) -> dict[str, list[dict]]:
    """Summaries below ``sweep_dir``, grouped by row: the loss plus any override that varies in the sweep."""
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    free = [[o for o in s.get("overrides", []) if not o.startswith(("loss=", "seed="))] for s in summaries]
    common = set.intersection(*map(set, free)) if free else set()
    runs: dict[str, list[dict]] = defaultdict(list)
    for summary, overrides in zip(summaries, free, strict=True):
        row = " ".join([summary["loss"], *(o for o in overrides if o not in common)])
        runs[row].append(summary)
    return runs


def _cell(values: list[float], scale: float = 100.0, bold: bool = False) -> str:
    if not values:
        return "n/a"
    scaled = [v * scale for v in values]
    std = statistics.stdev(scaled) if len(scaled) > 1 else 0.0
    text = f"{statistics.fmean(scaled):.1f} ± {std:.1f}"
    return f"**{text}**" if bold else text


def _realized(runs: dict[str, list[dict]]) -> str:
    rates = {round(s["realized_noise_rate"], 3) for rs in runs.values() for s in rs}
    return ", ".join(f"{r:.3f}" for r in sorted(rates)) if rates else "n/a"


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _settings(rs: list[dict]) -> str:
    """The loss hyperparameters the runs used (summary loss_params), plus the ANL optimizer settings."""
    first = rs[0]
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in (first.get("loss_params") or {}).items())
    config = first.get("config", {})
    extra = []
    if config.get("trainer", {}).get("l1"):
        extra.append(f"trainer.l1={config['trainer']['l1']:g}")
    if config.get("optim", {}).get("weight_decay") != 5e-4:
        extra.append(f"optim.weight_decay={config.get('optim', {}).get('weight_decay')}")
    return ", ".join(x for x in (params, *extra) if x)


# (column, summary key, higher is better)
COLUMNS = [
    ("final", "final_test_acc", True),
    ("sel. noisy", "test_acc_at_best_val_noisy", True),
    ("sel. clean", "test_acc_at_best_val_clean", True),
    ("best epoch", "best_test_acc", True),
    ("memorized", "final_memorization", False),
    ("ECE", "test_ece", False),
    ("ECE TS noisy", "test_ece_ts_noisy", False),
    ("ECE TS clean", "test_ece_ts_clean", False),
]


def render(runs: dict[str, list[dict]], command: str, args: argparse.Namespace, wall_s: float) -> str:
    """One Markdown section: provenance, protocol, then one table per loss family, then the settings."""
    done = {row: [s for s in rs if s.get("status") == "completed"] for row, rs in runs.items()}
    done = {row: rs for row, rs in done.items() if rs}
    values = {key: {row: [s[key] for s in rs if s.get(key) is not None] for row, rs in done.items()}
              for _, key, _ in COLUMNS}
    best = {}
    for _, key, higher in COLUMNS:
        means = [_mean(v) for v in values[key].values() if v]
        best[key] = (max if higher else min)(means) if means else None
    prov = next(iter(done.values()))[0].get("provenance", {}) if done else {}
    commit = str(prov.get("git_commit"))[:10] + (" (dirty tree)" if prov.get("git_dirty") else "")
    lines = [
        f"{'#' * args.level} {args.title}",
        "",
        f"Generated by `scripts/bench_losses.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"git {commit}, torch {torch.__version__}, {platform.machine()} CPU, 1 thread per run.",
        "",
        "```",
        command,
        "```",
        "",
        f"Protocol: scikit-learn digits (1,213 train / 135 val / 449 test; validation noisy like "
        f"training, test clean), noise `{args.noise}` (labels moved to a uniformly drawn *other* class; "
        f"realized rates {_realized(done)}), MLP 64-256-256-10, SGD lr 0.1 momentum 0.9 weight decay "
        f"5e-4 (ANL: 0, with its L1 penalty), cosine schedule, batch 64, {args.epochs} epochs, no early "
        "stopping; every loss at its conf/loss default with the digits settings of conf/dataset_loss "
        "(digits takes the authors' MNIST settings; the values each loss ran with are listed below the "
        f"tables, from the summaries' `loss_params`); seeds {','.join(map(str, args.seeds))} (a seed "
        "draws both the noisy labels and the initialization)."
        + (f" Extra overrides: `{' '.join(args.overrides)}` (a swept value labels its rows)."
           if args.overrides else ""),
        "",
        "Columns: **final** = test accuracy after the last epoch (what APL and ANL report); "
        "**sel. noisy** / **sel. clean** = test accuracy at the epoch with the best validation accuracy "
        "on the *noisy* validation labels (what a practitioner can do) / on the *clean* ones (the "
        "oracle); **best epoch** = the best test accuracy over epochs (CIFAR-N style, optimistic); "
        "**memorized** = share of noisy-labelled training samples predicted as their noisy label in "
        "the last epoch; **ECE** = test ECE of the final model (15 bins); **ECE TS noisy** / **ECE TS "
        "clean** = the same after temperature scaling fitted by NLL on the noisy / clean validation "
        "labels. Mean ± sample std over seeds, in %; bold marks the best mean of a column (highest "
        "accuracy, lowest memorization and ECE).",
        "",
        f"Timing: {wall_s / 60:.1f} min of wall time "
        f"{'summed over the runs' if args.report_only else 'in all'}, on a 2-core machine shared with "
        "other jobs; per-run seconds are noisy and only indicative. Accuracy is what this table is for.",
        "",
    ]
    for family in FAMILIES:
        rows = [row for row in done if LOSSES.get(row.split()[0]).family == family]
        if not rows:
            continue
        rows.sort(key=lambda row: -_mean(values["final_test_acc"][row]))
        lines += [
            f"{'#' * (args.level + 1)} {family}",
            "",
            "| loss | " + " | ".join(name for name, _, _ in COLUMNS) + " | runs | s/run |",
            "|---|" + "---|" * (len(COLUMNS) + 2),
        ]
        for row in rows:
            rs = done[row]
            label = f"`{row.split()[0]}`" + "".join(f" `{o}`" for o in row.split()[1:])
            cells = []
            for _, key, _ in COLUMNS:
                v = values[key][row]
                cells.append(_cell(v, bold=bool(v) and _mean(v) == best[key]))
            lines.append(f"| {label} | " + " | ".join(cells)
                         + f" | {len(rs)} | {statistics.fmean(s['wall_time_s'] for s in rs):.1f} |")
        lines.append("")
    lines += [f"{'#' * (args.level + 1)} Settings each loss ran with", ""]
    lines += [f"- `{row}`: {_settings(done[row]) or '(none)'}" for row in sorted(done)]
    lines.append("")
    unfinished = sorted(row for row, rs in runs.items() if any(s.get("status") != "completed" for s in rs))
    if unfinished:
        lines += ["Runs that did not complete (excluded from the means above):", ""]
        lines += [
            f"- `{row}`: " + ", ".join(f"seed {s['seed']} {s.get('status', '?')}" for s in runs[row]
                                      if s.get("status") != "completed")
            for row in unfinished
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default=",".join(LOSSES.names()), help="comma list (default: all)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--noise", default="sym60")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sweep-dir", type=Path, default=REPO / "outputs" / "bench_losses")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "losses.md")
    parser.add_argument("--title", default="Loss catalogue on digits with 60% symmetric label noise")
    parser.add_argument("--level", type=int, default=1, help="Markdown heading level of the section")
    parser.add_argument("--append", action="store_true", help="append the section to --out")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from --sweep-dir")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    args.losses = [n.strip() for n in args.losses.split(",") if n.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.losses:
        LOSSES.get(name)  # an unknown name fails here, listing the known ones
    sweep_dir = args.sweep_dir.resolve()

    command = sweep_command(args.losses, args.seeds, args.noise, args.epochs, sweep_dir, args.overrides)
    try:
        shown_dir = sweep_dir.relative_to(REPO)
    except ValueError:
        shown_dir = sweep_dir
    shown = shlex.join(command).replace(str(sweep_dir), str(shown_dir))
    started = time.perf_counter()
    if not args.report_only:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
        subprocess.run([sys.executable, "-m", "lossbench", *command[1:]], cwd=REPO, env=env, check=True)
    wall_s = time.perf_counter() - started
    runs = {row: rs for row, rs in collect(sweep_dir).items() if row.split()[0] in args.losses}
    if args.report_only:
        wall_s = sum(s.get("wall_time_s", 0.0) for rs in runs.values() for s in rs)
    section = render(runs, shown, args, wall_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.exists():
        section = args.out.read_text().rstrip("\n") + "\n\n" + section
    args.out.write_text(section.rstrip("\n") + "\n")
    print(f"wrote {args.out} ({sum(map(len, runs.values()))} runs)")


if __name__ == "__main__":
    main()
