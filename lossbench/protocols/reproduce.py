"""`lossbench reproduce NAME`: a preset's grid as one Hydra multirun, then ours beside the published numbers.

The grid (losses x noise settings x seeds, and datasets x folds where a preset sweeps them) is the
preset's ``hydra.sweeper.params``; ``--losses``, ``--noise``, ``--seeds``, ``--datasets`` and ``--folds``
pick a subset of it. Every run has a stable directory below ``--dir`` (``<loss>-<noise>-s<seed>``), so
running the command again skips finished runs and resumes interrupted
ones; any Hydra launcher works (``hydra/launcher=joblib``, ``hydra/launcher=slurm``). ``--dry-run``
lists the runs with their state and estimates their cost from a one-epoch probe.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lossbench.core.startup import writing_begins
from lossbench.protocols.catalogue import (
    GRID_ORDER,
    ProtocolError,
    compose_preset,
    load_protocol,
    preset_grid,
    preset_names,
)

EPILOG = """\
examples:
  lossbench reproduce --list
  lossbench reproduce apl_mnist data_dir=/data                       # the whole grid, then the table
  lossbench reproduce apl_mnist --losses ce,nce_rce --noise sym80 --seeds 0 --dry-run
  lossbench reproduce apl_cifar10 hydra/launcher=joblib hydra.launcher.n_jobs=4
  lossbench reproduce apl_cifar10 hydra/launcher=slurm hydra.launcher.partition=gpu

Arguments that are not options are Hydra overrides for every run (data_dir=..., trainer.device=cuda,
a launcher). Overrides that change the protocol (trainer.epochs=2) make the runs a different experiment:
use another --dir for them.
"""

PENDING = ("new", "resumes", "failed")
SUBDIR_TOKENS = {"${hydra.runtime.choices.loss}": "loss", "${hydra.runtime.choices.noise}": "noise",
                 "${seed}": "seed", "${hydra.runtime.choices.dataset}": "dataset",
                 "${dataset.fold}": "dataset.fold"}
# grid key -> the option that picks a subset of it
OPTIONS = {"loss": "--losses", "noise": "--noise", "seed": "--seeds", "dataset": "--datasets",
           "dataset.fold": "--folds"}


@dataclass
class PlannedRun:
    """One job of the grid: its choices, its directory and what is there already."""

    loss: str
    noise: str
    seed: str
    run_dir: Path
    state: str            # done | diverged | failed | resumes | new
    epochs_done: int = 0
    dataset: str | None = None  # where the preset's grid sweeps datasets
    fold: str | None = None     # where it sweeps the folds of a cross-validation

    def choices(self) -> dict[str, str]:
        """The run's grid values as overrides: {grid key: value}."""
        values = {"dataset": self.dataset, "loss": self.loss, "noise": self.noise, "dataset.fold": self.fold,
                  "seed": self.seed}
        return {k: v for k, v in values.items() if v is not None}


def _parser() -> argparse.ArgumentParser:
    summary = __doc__.split("\n\n")[0].split(": ", 1)[1]
    p = argparse.ArgumentParser(prog="lossbench reproduce", description=summary, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="the preset (lossbench reproduce --list)")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides for every run")
    p.add_argument("--list", action="store_true", help="the presets: paper, dataset, runs, published numbers")
    p.add_argument("--losses", help="comma-separated subset of the preset's losses")
    p.add_argument("--noise", help="comma-separated subset of the preset's noise settings")
    p.add_argument("--seeds", help="comma-separated subset of the preset's seeds")
    p.add_argument("--datasets", help="comma-separated subset of the preset's datasets (if it sweeps them)")
    p.add_argument("--folds", help="comma-separated subset of the preset's folds (where it sweeps them)")
    p.add_argument("--dir", help="where the runs go (default outputs/reproduce/NAME)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs and a cost estimate from a one-epoch probe; train nothing")
    p.add_argument("--no-probe", action="store_true", help="with --dry-run: skip the one-epoch probe")
    p.add_argument("--no-report", action="store_true", help="do not print the comparison at the end")
    return p


def _fail(message: str) -> None:
    print(f"lossbench reproduce: error: {message}", file=sys.stderr)
    sys.exit(2)


def select(grid: dict[str, list[str]], key: str, text: str | None, option: str, name: str) -> list[str]:
    """The subset ``text`` (comma-separated) of the grid's ``key`` values, in the grid's order."""
    if key not in grid:
        if text is None:
            return []
        raise ProtocolError(f"{option}: preset {name}'s grid does not sweep {key}; set it as an override "
                            f"({key}=VALUE)")
    values = grid[key]
    if text is None:
        return values
    asked = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in asked if v not in values]
    if unknown or not asked:
        raise ProtocolError(f"{option} {','.join(unknown) or repr(text)} not in preset {name}'s grid; "
                            f"known: {', '.join(values)}")
    return [v for v in values if v in asked]


def run_subdir(pattern: str, loss: str, noise: str, seed: str, dataset: str | None = None,
               fold: str | None = None) -> str:
    """The run's directory name from the preset's ``hydra.sweep.subdir`` pattern."""
    values = {"loss": loss, "noise": noise, "seed": seed, "dataset": dataset, "dataset.fold": fold}
    for token, key in SUBDIR_TOKENS.items():
        if token in pattern and values[key] is None:
            raise ProtocolError(f"hydra.sweep.subdir '{pattern}' names {key}, which the preset's grid does "
                                "not sweep")
        pattern = pattern.replace(token, values[key] or "")
    if "${" in pattern:
        raise ProtocolError(f"hydra.sweep.subdir '{pattern}' must be built from the run's grid values only "
                            f"({', '.join(SUBDIR_TOKENS)}), so that runs keep their directories")
    return pattern


def _state(run_dir: Path) -> tuple[str, int]:
    from lossbench.core.io import read_json, read_jsonl

    summary = read_json(run_dir / "summary.json")
    if summary and summary.get("status") == "completed":
        return "done", int(summary.get("epochs") or 0)
    if summary and summary.get("status") == "diverged":
        return "diverged", int(summary.get("epochs") or 0)
    logged = len(read_jsonl(run_dir / "metrics.jsonl"))
    if (run_dir / "checkpoint.pt").is_file():
        return "resumes", logged
    if (run_dir / "failure.json").is_file():
        return "failed", 0
    return "new", 0


def plan(name: str, overrides: list[str], losses: str | None = None, noise: str | None = None,
         seeds: str | None = None, out_dir: str | Path | None = None, datasets: str | None = None,
         folds: str | None = None) -> tuple[list[PlannedRun], dict, object]:
    """The runs of preset ``name``'s grid (or the subset), with their states; (runs, subset, config).
    ``subset`` holds every key the grid sweeps, in GRID_ORDER."""
    from lossbench.lifecycle.precheck import check_output_dir, check_overrides

    load_protocol(name)
    grid_keys = preset_grid(compose_preset(name))
    named = {"loss": ("losses", "ce,gce"), "noise": ("noise settings", "sym20,sym40"),
             "seed": ("seeds", "0,1"), "dataset": ("datasets", "vowel"), "dataset.fold": ("folds", "0,1")}
    for line in overrides:  # the grid's own keys are chosen with its options, never as overrides
        key = line.partition("=")[0].lstrip("+~")
        if key in grid_keys:
            (what, example), flag = named[key], OPTIONS[key]
            raise ProtocolError(f"{line}: the grid's {what} are chosen with {flag} (e.g. {flag} {example}); "
                                f"an override of {key} would be ignored or clash with the grid")
    problem = check_overrides([f"+experiment={name}", *overrides], multirun=True, data=False)
    if problem:
        raise ProtocolError(problem)
    cfg = compose_preset(name, overrides)
    grid = preset_grid(cfg)
    asked = {"loss": losses, "noise": noise, "seed": seeds, "dataset": datasets, "dataset.fold": folds}
    subset = {key: select(grid, key, asked[key], OPTIONS[key], name) for key in GRID_ORDER}
    subset = {key: values for key, values in subset.items() if key in grid}
    # every loss, noise setting and dataset once (their specializations are separate files)
    first = [f"+experiment={name}", *overrides]
    for key, values in ((k, subset[k]) for k in ("loss", "noise", "dataset") if k in subset):
        problem = check_overrides([*first, f"{key}={','.join(values)}"], multirun=True, data=False)
        if problem:
            raise ProtocolError(problem)
    pattern = str(cfg.hydra.sweep._get_node("subdir")._value())
    unnamed = [k for k in subset if len(grid[k]) > 1 and not any(
        token in pattern for token, key in SUBDIR_TOKENS.items() if key == k)]
    if unnamed:
        raise ProtocolError(f"hydra.sweep.subdir '{pattern}' does not name {', '.join(unnamed)}, which the "
                            "grid sweeps: runs would share a directory")
    root = Path(out_dir or Path("outputs") / "reproduce" / name)
    problem = check_output_dir([f"hydra.sweep.dir={root}"])
    if problem:
        raise ProtocolError(problem)
    runs = []
    for combo in itertools.product(*subset.values()):
        values = dict(zip(subset, combo, strict=True))
        extra = {"dataset": values.get("dataset"), "fold": values.get("dataset.fold")}
        run_dir = root / run_subdir(pattern, values["loss"], values["noise"], values["seed"], **extra)
        state, epochs = _state(run_dir)
        runs.append(PlannedRun(values["loss"], values["noise"], values["seed"], run_dir, state, epochs,
                               **extra))
    return runs, subset, cfg


def missing_data(cfg) -> str | None:
    """One line when the preset's dataset files are not below its ``data_dir`` (None: they are)."""
    from omegaconf import OmegaConf

    from lossbench.core.errors import ConfigError
    from lossbench.lifecycle.validation import check_dataset_files

    try:
        check_dataset_files({"dataset": OmegaConf.to_container(cfg.dataset, resolve=True)})
    except ConfigError as exc:
        return str(exc)
    return None


def probe(name: str, run: PlannedRun, overrides: list[str], progress=None) -> dict:
    """One epoch of ``run`` in a scratch directory: its seconds (epoch with evaluation, and training).

    ``progress(line)`` gets the probe's progress lines as they come (its epoch's log lines)."""
    writing_begins()  # a scratch folder: from here a Ctrl-C is answered after it is removed
    with tempfile.TemporaryDirectory(prefix="lossbench-probe-") as scratch:
        args = [sys.executable, "-m", "lossbench", "run", f"+experiment={name}",
                *(f"{k}={v}" for k, v in run.choices().items()), *overrides, "trainer.epochs=1",
                "trainer.checkpoint_every=0", "trainer.progress=plain", "logger=local",
                f"hydra.run.dir={scratch}"]
        started = time.perf_counter()
        env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) as proc:  # the log lines go to stdout, the error line to stderr
            lines = []
            for line in proc.stdout:
                lines.append(line.rstrip())
                if progress is not None and "epoch 1/1" in line:
                    progress(line.rstrip().split(" - ", 1)[-1])
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            tail = ([ln for ln in lines if ln.strip()] or ["(no output)"])[-1]
            raise ProtocolError(f"the one-epoch probe failed: {tail.removeprefix('lossbench: error: ')}")
        lines = Path(scratch, "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if line]
        summary = json.loads(Path(scratch, "summary.json").read_text())
    epoch = records[-1]
    return {"loss": run.loss, "noise": run.noise,
            "epoch_seconds": float(epoch.get("seconds", epoch["train_seconds"])),
            "train_seconds": float(epoch["train_seconds"]), "wall_seconds": wall,
            "device": summary.get("provenance", {}).get("device", "?")}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def print_plan(name: str, runs: list[PlannedRun], epochs: int, measured: dict | None = None) -> None:
    """The runs with their states, how many epochs are left, then (``measured``) the estimate."""
    from rich.table import Table

    from lossbench.core.console import table_console

    console = table_console()
    table = Table(title=f"lossbench reproduce {name}: {len(runs)} runs")
    keys = list(runs[0].choices()) if runs else ["loss", "noise", "seed"]
    for column in (*keys, "state", "directory"):
        table.add_column("fold" if column == "dataset.fold" else column)
    for r in runs:
        state = f"resumes after epoch {r.epochs_done}" if r.state == "resumes" else r.state
        table.add_row(*r.choices().values(), state, str(r.run_dir))
    console.print(table)
    counts = {s: sum(r.state == s for r in runs) for s in ("done", "diverged", "failed", "resumes", "new")}
    console.print("runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()), highlight=False)
    pending = [r for r in runs if r.state in PENDING]
    remaining = sum(epochs - min(r.epochs_done, epochs) for r in pending)
    console.print(f"epochs to train: {remaining} ({epochs} per run)", highlight=False)
    if measured:
        print_estimate(runs, epochs, measured)


def print_estimate(runs: list[PlannedRun], epochs: int, measured: dict) -> None:
    """The cost of the epochs left, from the one-epoch probe."""
    from rich.console import Console

    console = Console(width=160)
    pending = [r for r in runs if r.state in PENDING]
    remaining = sum(epochs - min(r.epochs_done, epochs) for r in pending)
    total = remaining * measured["epoch_seconds"]
    console.print(
        f"probe: one epoch of loss={measured['loss']} noise={measured['noise']} took "
        f"{measured['epoch_seconds']:.1f} s "
        f"({measured['train_seconds']:.1f} s training, the rest evaluation) on {measured['device']}; "
        f"estimate {_hours(total)} one run after another (divide by the launcher's parallel jobs)",
        highlight=False)


def _cells_and_marks(cells) -> str:
    """"24 cells [README]": how many published cells, and their confidence marks."""
    marks = " ".join(sorted({c.mark for c in cells if c.mark}))
    return f"{len(cells)} cell{'s' if len(cells) > 1 else ''}" + (f" {marks}" if marks else "")


def list_presets() -> None:
    from rich.markup import escape
    from rich.table import Table

    from lossbench.core.console import table_console

    table = Table(title="lossbench reproduce: presets")
    for column in ("preset", "paper", "dataset", "reports", "runs", "published numbers"):
        table.add_column(column)
    for name in preset_names():
        protocol = load_protocol(name)
        grid = preset_grid(compose_preset(name))
        words = {"dataset": "datasets", "loss": "losses", "noise": "noise", "dataset.fold": "folds",
                 "seed": "seeds"}
        n = 1
        for values in grid.values():
            n *= len(values)
        shape = f"{n} (" + " x ".join(f"{len(v)} {words[k]}" for k, v in grid.items()) + ")"
        if protocol.published:
            compared = protocol.compared_sources()
            if len(compared) > 1:  # per source, its cells and marks: "24 cells [figure], 24 cells [README]"
                published = "yes: " + ", ".join(_cells_and_marks(cells) for _, cells in compared)
            else:
                published = "yes: " + _cells_and_marks(protocol.published)
        elif protocol.reference:
            published = f"none known; lossbench reference ({len(protocol.reference)} cells)"
        else:
            published = "none known"
        cells = (name, protocol.paper, protocol.dataset, f"{protocol.metric} ({protocol.kind})", shape,
                 published)
        table.add_row(*(escape(cell) for cell in cells))  # text: "[figure]" is a mark, not a rich style
    table_console().print(table)


def _launch(argv: list[str]) -> int:
    """The sweep as `lossbench run -m` runs it (its checks, signals, closing line); its exit status."""
    from lossbench.cli import _run

    saved = sys.argv
    try:
        _run(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return 0


def main(argv: list[str]) -> None:
    """Entry point of `lossbench reproduce`."""
    args = _parser().parse_intermixed_args(argv)
    if args.list:
        list_presets()
        return
    if not args.name:
        _fail(f"name a preset (lossbench reproduce NAME); known: {', '.join(preset_names())}")
    overrides = list(args.overrides)
    try:
        runs, subset, cfg = plan(args.name, overrides, args.losses, args.noise, args.seeds, args.dir,
                                 args.datasets, args.folds)
    except ProtocolError as exc:
        _fail(str(exc))
    root = runs[0].run_dir.parent
    epochs = int(cfg.trainer.epochs)
    data_problem = missing_data(cfg)
    if args.dry_run:
        print_plan(args.name, runs, epochs)
        pending = [r for r in runs if r.state in PENDING]
        if not pending or args.no_probe:
            return
        if data_problem:
            print(f"the cost estimate needs the data (it times one epoch): {data_problem}", flush=True)
            return
        first = pending[0]
        print(f"probing the cost: one epoch of loss={first.loss} noise={first.noise} seed={first.seed} "
              f"in a scratch folder (nothing is kept) ...", flush=True)
        try:
            measured = probe(args.name, first, overrides,
                             progress=lambda line: print(f"  {line}", flush=True))
        except ProtocolError as exc:
            _fail(str(exc))
        print_estimate(runs, epochs, measured)
        return
    if data_problem and any(r.state in PENDING for r in runs):
        _fail(data_problem)
    sweep = [f"+experiment={args.name}", *(f"{k}={','.join(v)}" for k, v in subset.items()),
             f"hydra.sweep.dir={root}", *overrides]
    print(f"lossbench reproduce {args.name}: {len(runs)} runs into {root} "
          f"({sum(r.state == 'done' for r in runs)} already finished)", flush=True)
    code = _launch(["-m", *sweep])
    if not args.no_report and code in (0, 1):  # a refused or stopped sweep has nothing new to compare
        from lossbench.report.cli import main as report_main

        try:
            report_main([str(root), "--against", args.name])
        except SystemExit as exc:
            code = code or (exc.code if isinstance(exc.code, int) else 1)
    if code:
        sys.exit(code)
