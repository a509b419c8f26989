"""Hostile inputs of every class issue 27 lists, fed to the `lossbench` command.

Each case runs in a fresh workspace that holds a finished run folder (``run/``) and a folder outside
it (``outside/``, a victim file and folder that links point at). Every case must end with

- no traceback (and no ESC byte) in what the command prints;
- a non-zero exit status where the input is refused (zero where it must work);
- nothing written outside the folders the command was pointed at: ``outside/`` unchanged, no marker
  file anywhere (what a payload would create);
- on a refusal, the whole workspace byte for byte as it was.

    python scripts/probe_hostile.py            # every case (a few train for seconds)
    python scripts/probe_hostile.py --fast     # the cases that train nothing (as test_probe.py runs)

The classes: an untrusted run folder (callables, pickles, group choices, bounded reading), links in run
and sweep folders, escaping in `report --against`, values accepted silently before, crashes and
tracebacks, `reproduce`, unclear refusals (a unicode path). Exit status 1 when any case fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "pwned-marker"
TEX_ATTACK = "\n\\immediate\\write18{touch pwned-marker}\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))

Runner = Callable[[list[str], Path], tuple[int, str, str]]


@dataclass
class Case:
    """One hostile input: ``args(ws)`` the command line, ``plant(ws)`` what goes into the workspace first;
    ``refused``: a non-zero exit is expected (False: the command must succeed)."""

    klass: str
    name: str
    args: Callable[[Path], list[str]]
    plant: Callable[[Path], None] | None = None
    refused: bool = True
    fast: bool = True
    fragment: str = ""  # what the error line must say
    verify: Callable[[Path], list[str]] | None = None  # problems in what the command wrote
    problems: list[str] = field(default_factory=list)


# -------------------------------------------------------------- what a case plants


def _yaml_edit(ws: Path, change: Callable[[dict], None], name: str = "config.yaml") -> None:
    import yaml

    path = ws / "run" / ".hydra" / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def _set(dotted: str, value) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        def change(config: dict) -> None:
            node = config
            *parents, last = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value(ws) if callable(value) else value
        _yaml_edit(ws, change)
    return plant


class _Opens:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickle(ws: Path, name: str) -> Path:
    path = ws / "run" / name
    with open(path, "wb") as f:
        pickle.dump(_Opens(str(ws / MARKER)), f)
    return path


def _link(name: str, to_folder: bool = False) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        path = ws / "run" / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.symlink_to(ws / "outside" / ("folder" if to_folder else "victim.txt"))
    return plant


def _unfinished(ws: Path) -> None:
    (ws / "run" / "summary.json").unlink()


def _chain(*plants: Callable[[Path], None]) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        for p in plants:
            p(ws)
    return plant


def _append(text: str, name: str = "config.yaml") -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        path = ws / "run" / ".hydra" / name
        path.write_text(path.read_text() + text)
    return plant


def _sparse(ws: Path) -> None:
    with open(ws / "run" / ".hydra" / "config.yaml", "ab") as f:
        f.truncate(3 * 2**30)


def _fifo(ws: Path) -> None:
    path = ws / "run" / ".hydra" / "config.yaml"
    path.unlink()
    os.mkfifo(path)


def _folder(name: str) -> Callable[[Path], None]:
    def plant(ws: Path) -> None:
        (ws / "run" / name).unlink(missing_ok=True)
        (ws / "run" / name).mkdir()
    return plant


def _against_runs(ws: Path) -> None:
    """anl_cifar10 runs with hostile loss and noise names and overrides (report --against)."""
    losses = ["<script>alert(1)</script>", "\x1b[2J\x1b[31mred", "[/]", f"x{TEX_ATTACK}", "a|b**c**"]
    for i, loss in enumerate(["ce", *losses]):
        run = ws / "sweep" / f"r{i}"
        (run / ".hydra").mkdir(parents=True)
        choices = {"dataset": "cifar10", "model": "cnn8", "loss": loss, "noise": "sym80",
                   "protocol": "anl_cifar10"}
        (run / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"choices": choices}}}))
        config = {"seed": 0, "protocol": {"name": "anl_cifar10"}}
        (run / ".hydra" / "config.yaml").write_text(json.dumps(config))
        summary = {"status": "completed", **choices, "seed": 0, "test_acc": 0.2, "config": config,
                   "overrides": ["+experiment=anl_cifar10", f"loss={loss}", f"optim.lr={loss}"]}
        (run / "summary.json").write_text(json.dumps(summary))


def _no_markup_written(ws: Path) -> list[str]:
    """What report --against wrote holds no live markup from the run files."""
    problems = []
    for path in (ws / "out").glob("*") if (ws / "out").is_dir() else []:
        text = path.read_text()
        if "\x1b" in text or "\u202e" in text:
            problems.append(f"{path.name}: a terminal or bidi control character")
        if path.suffix in (".md", ".html") and ("<script" in text or "<img" in text):
            problems.append(f"{path.name}: raw HTML from a run file")
        if any(line.startswith(("\\immediate", "\\input")) for line in text.splitlines()):
            problems.append(f"{path.name}: a live LaTeX command from a run file")
    return problems


def _corrupt_mnist(ws: Path) -> None:
    """MNIST's four files, present (the check before the sweep passes) but not MNIST: every job fails."""
    from lossbench.core.dataset_files import expected_files

    for path in expected_files("mnist", ws / "baddata"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an idx file\n")


def _sweep_link(ws: Path) -> None:
    (ws / "sweep").mkdir()
    (ws / "sweep" / "1").symlink_to(ws / "outside" / "folder")


# -------------------------------------------------------------- the cases

R = "run"
FAST_RUN = ["trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none"]


def _run_into(*extra: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["run", f"hydra.run.dir={ws / R}", *FAST_RUN, *extra]


def _refused_run(*overrides: str) -> Callable[[Path], list[str]]:
    flags = [o for o in overrides if o.startswith("-")]  # Hydra reads -m before the overrides only
    rest = [o for o in overrides if not o.startswith("-")]
    return lambda ws: ["run", *flags, f"hydra.run.dir={ws / 'new'}", "hydra.sweep.dir=" + str(ws / "sweep"),
                       *FAST_RUN, *rest]


def _evaluate(*extra: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["evaluate", str(ws / R), *extra]


EXEC = {"_target_": "builtins.exec", "_args_": [f"open('{MARKER}', 'w')"]}
CASES = [
    # a run folder is untrusted input: evaluate never runs what it records
    Case("untrusted folder", "exec target", _evaluate(), _set("noise", EXEC), fragment="noise._target_"),
    Case("untrusted folder", "Path.write_text target", _evaluate(),
         _set("noise", lambda ws: {"_target_": "pathlib.Path.write_text",
                                   "_args_": [str(ws / MARKER), "x"]})),
    Case("untrusted folder", "torch.load of a pickle", _evaluate(),
         _set("dataset", lambda ws: {"_target_": "torch.load", "f": str(_pickle(ws, "evil.pkl")),
                                     "weights_only": False}), fragment="dataset._target_"),
    Case("untrusted folder", "_partial_ changed", _evaluate(), _set("model._partial_", False)),
    Case("untrusted folder", "nested target in a value", _evaluate(), _set("optim.lr", EXEC)),
    Case("untrusted folder", "pickled weights", _evaluate(), lambda ws: _pickle(ws, "model_final.pt")),
    Case("untrusted folder", "choice with a path", _evaluate(),
         lambda ws: _yaml_edit(ws, lambda d: d["hydra"]["runtime"]["choices"].update(loss="../../evil"),
                               "hydra.yaml")),
    Case("untrusted folder", "YAML alias bomb", _evaluate(), _append(BOMB), fragment="YAML nodes"),
    Case("untrusted folder", "3 GiB sparse config", _evaluate(), _sparse, fragment="larger than"),
    Case("untrusted folder", "FIFO config", _evaluate(), _fifo, fragment="FIFO"),
    Case("untrusted folder", "deep nesting", _evaluate(),
         _append("deep: " + "[" * 50_000 + "]" * 50_000 + "\n")),
    Case("untrusted folder", "run into a bomb folder", _run_into(), _chain(_unfinished, _append(BOMB))),
    Case("untrusted folder", "split_seed override", _evaluate("dataset.split_seed=7"),
         fragment="test samples"),
    Case("untrusted folder", "--check compares nothing", _evaluate("--check"),
         lambda ws: (ws / R / "summary.json").write_text(json.dumps({"status": "completed"}))),
    # links and misplaced folders in run and sweep folders
    *[Case("links", f"{name} is a link", _run_into(), _chain(_unfinished, _link(name, to_folder)),
           fragment="symbolic link")
      for name, to_folder in ((".lossbench.lock", False), ("run.log", False), (".hydra", True),
                              (".hydra/config.yaml", False), ("metrics.jsonl", False),
                              ("checkpoint.pt", False), ("model_final.pt", False))],
    Case("links", "a sweep's job folder is a link",
         lambda ws: ["run", "-m", f"hydra.sweep.dir={ws / 'sweep'}", "seed=0,1", *FAST_RUN], _sweep_link),
    Case("links", "checkpoint.pt is a folder", _run_into(), _chain(_unfinished, _folder("checkpoint.pt"))),
    Case("links", "the lock is a folder", _run_into(), _chain(_unfinished, _folder(".lossbench.lock"))),
    # what report --against writes from run files
    *[Case("escaping", f"report --against {fmt}", lambda ws, fmt=fmt: [
        "report", str(ws / "sweep"), "--against", "anl_cifar10", *(["--out", str(ws / "out" / f"t.{fmt}")]
                                                                  if fmt else [])],
        _against_runs, refused=False, verify=_no_markup_written) for fmt in ("md", "tex", "html", "csv", "")],
    # values accepted silently before
    *[Case("silent input", " ".join(o), _refused_run(*o), fragment=fragment) for *o, fragment in (
        ["model.hidden=[0]", "model.hidden must be"], ["model.dropout=nan", "model.dropout must be"],
        ["scheduler=multistep", "scheduler.milestones=[abc]", "scheduler.milestones must be"],
        ["scheduler=multistep", "scheduler.gamma=-1", "scheduler.gamma must be"],
        ["dataset.split_seed=-1", "dataset.split_seed must be"],
        ["calibrator=dirichlet", "calibrator.dirichlet.cv_grid=[]", "calibrator.dirichlet.cv_grid must be"],
        ["+lr=0.1", "unknown config key 'lr'"], ["trainer.threads=100000", "trainer.threads must be"],
        ["-m", "seed=range(0,-3)", "expands to no value"], ["-m", "loss=glob(zz*)", "matches no loss"],
        ["-m", "hydra/launcher=packed", "hydra.launcher.dry_run=maybe", "seed=0,1",
         "hydra.launcher.dry_run must be"])],
    Case("silent input", "empty hydra.run.dir", lambda ws: ["run", "hydra.run.dir=", *FAST_RUN],
         fragment="hydra.run.dir is empty"),
    Case("silent input", "test_size=0.999", _refused_run("dataset.test_size=0.999"), fragment="per class"),
    # crashes and tracebacks before
    *[Case("crash", " ".join(o), _refused_run(*o), fragment=fragment) for *o, fragment in (
        ["-m", "optim.lr=interval(0.1,1)", "basic sweeper"],
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1",
         "hydra.launcher.n_jobs must be"],
        ["-m", "hydra/sweeper=optuna", "loss=gce", "loss.q=interval(1.5,2)", "gce needs q in (0, 1]"],
        ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=-1", "seed=0,1",
         "hydra.launcher.timeout_min must be"])],
    Case("crash", "300-character folder name",
         lambda ws: ["run", f"hydra.run.dir={ws / ('x' * 300)}", *FAST_RUN], fragment="at most 255"),
    Case("crash", "evaluate noise=sym", _evaluate("noise=sym"), fragment="noise.rate has no value"),
    Case("crash", "evaluate truncated config", _evaluate(),
         lambda ws: (ws / R / ".hydra" / "config.yaml").write_text("seed: 0\nmodel:\n  hidden: ["),
         fragment="not valid YAML"),
    Case("crash", "evaluate --out a folder", lambda ws: ["evaluate", str(ws / R), "--out", str(ws / R)],
         fragment="is a folder"),
    # reproduce
    Case("reproduce", "grid override with --dry-run", lambda ws: [
        "reproduce", "apl_mnist", "loss=ce", "--dry-run", "--no-probe", "--dir", str(ws / "repro")],
        fragment="--losses"),
    Case("reproduce", "every job fails", lambda ws: [
        "reproduce", "apl_mnist", "--losses", "ce", "--noise", "sym80", "--seeds", "0", "--no-report",
        "--dir", str(ws / "repro"), f"data_dir={ws / 'baddata'}", "trainer.progress=none"],
        plant=_corrupt_mnist, fast=False, fragment="1 failed"),
    # unclear refusals
    Case("unclear refusal", "unicode path", lambda ws: ["run", f"hydra.run.dir={ws / 'é'}", *FAST_RUN],
         fragment="quote it"),
    Case("unclear refusal", "unicode path, quoted",
         lambda ws: ["run", f'hydra.run.dir="{ws / "é"}"', *FAST_RUN], refused=False, fast=False),
    Case("unclear refusal", "a key nothing reads", _refused_run("lr=0.1"), fragment="did you mean optim.lr"),
]


# -------------------------------------------------------------- checking one case


def traceback_in(text: str) -> bool:
    """A Python traceback, Hydra's shortened one, or an interrupt's."""
    return ("Traceback (most recent call last)" in text or "KeyboardInterrupt" in text
            or "HYDRA_FULL_ERROR=1 for a complete stack trace" in text or "Error executing job" in text
            or re.search(r'^\s*File "[^"]+", line \d+', text, re.M) is not None)


def snapshot(root: Path) -> dict:
    out = {}
    for path in sorted(Path(root).rglob("*")):
        st = path.lstat()
        digest = ""
        if path.is_file() and not path.is_symlink() and st.st_size < 2**26:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def workspace(template: Path, root: Path) -> Path:
    ws = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    shutil.copytree(template, ws / R, symlinks=True)
    (ws / "outside" / "folder").mkdir(parents=True)
    (ws / "outside" / "victim.txt").write_text("victim\n")
    (ws / "outside" / "folder" / "victim.txt").write_text("victim\n")
    return ws


def check(case: Case, template: Path, root: Path, runner: Runner) -> list[str]:
    ws = workspace(template, root)
    try:
        if case.plant is not None:
            case.plant(ws)
        before, outside = snapshot(ws), snapshot(ws / "outside")
        code, out, err = runner(case.args(ws), ws)
        problems = []
        if HUNG in err:
            problems.append(err.strip())
        if traceback_in(out + err):
            problems.append("traceback: " + (err.strip().splitlines() or ["?"])[-1][:200])
        said = [ln for ln in err.splitlines()
                if ln.startswith("lossbench") and ("error" in ln or "failed" in ln)]
        if case.refused and code != 0 and not said:
            problems.append(f"refused without lossbench's one-line error: {err.strip()[-300:]}")
        if "\x1b" in out + err:
            problems.append("an ESC byte reached the terminal")
        if case.refused and code == 0:
            problems.append("exit status 0 where the input must be refused")
        if not case.refused and code != 0:
            problems.append(f"exit status {code}: {(err.strip().splitlines() or ['?'])[-1][:200]}")
        if case.fragment and case.fragment not in err:
            problems.append(f"the error does not say '{case.fragment}': {err.strip()[-300:]}")
        if case.verify is not None:
            problems += case.verify(ws)
        if snapshot(ws / "outside") != outside:
            problems.append("outside/ changed")
        if any(p.name == MARKER or p.name == "pwned" for p in ws.rglob("*")) or Path(MARKER).exists():
            problems.append("a payload ran (marker file)")
        if case.refused and case.fast and snapshot(ws) != before:
            problems.append("the workspace changed on a refusal")
        case.problems = problems
        return problems
    finally:
        if (ws / R / ".hydra" / "config.yaml").is_fifo():
            (ws / R / ".hydra" / "config.yaml").unlink()
        shutil.rmtree(ws, ignore_errors=True)


TIMEOUT_S = 600.0
HUNG = "lossbench probe: the command hung"


def subprocess_runner(args: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    try:
        proc = subprocess.run([sys.executable, "-m", "lossbench", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, "", f"{HUNG} for {TIMEOUT_S:g} s and was killed"
    return proc.returncode, proc.stdout, proc.stderr


def make_template(root: Path, runner: Runner) -> Path:
    """One finished run (digits, 1 epoch, both weight files): what every case starts from."""
    template = root / "template"
    code, _, err = runner(["run", f"hydra.run.dir={template}", "trainer.epochs=1", "model.hidden=[8]",
                           "trainer.progress=none", "trainer.save_weights=both"], root)
    if code != 0:
        raise SystemExit(f"the template run failed: {err[-2000:]}")
    return template


def probe(cases: list[Case], runner: Runner = subprocess_runner, root: Path | None = None) -> list[Case]:
    """Run ``cases``; return those with problems (each case's ``problems`` filled in)."""
    owned = root is None
    root = Path(tempfile.mkdtemp(prefix="lossbench-probe-")) if owned else Path(root)
    try:
        template = make_template(root, runner)
        return [case for case in cases if check(case, template, root, runner)]
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="only the cases that train nothing")
    parser.add_argument("--exclude", action="append", default=[], metavar="TEXT",
                        help="leave out the cases whose name holds TEXT (repeatable)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S,
                        help="seconds before a command counts as hung")
    args = parser.parse_args(argv)
    globals()["TIMEOUT_S"] = args.timeout
    cases = [c for c in CASES if (c.fast or not args.fast) and not any(t in c.name for t in args.exclude)]
    failed = probe(cases)
    for case in cases:
        verdict = "ok" if not case.problems else "FAIL: " + "; ".join(case.problems)
        print(f"{case.klass:16} {case.name[:48]:48} {verdict}")
    print(f"{len(cases) - len(failed)} of {len(cases)} cases held")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
