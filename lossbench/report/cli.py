"""`lossbench report DIR [DIR ...]`: comparison tables and plots from the runs below DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from lossbench.report.collect import CHOICE_KEYS, RunRecord, local_records, read_run, runs_frame
from lossbench.report.render import FORMATS, format_for, print_rich, print_status, render, status_line
from lossbench.report.stats import TESTS
from lossbench.report.tables import DIRECTIONS, _label, build_table, metric_direction

EPILOG = """\
examples:
  lossbench report outputs/multirun/2026-11-24/10-00-00
  lossbench report SWEEP --metric test_ece_ts_clean --out table.md --out table.tex
  lossbench report SWEEP --rows loss --cols dataset,noise --where reweight=none
  lossbench report SWEEP --rows loss.q --cols noise --where loss=gce
  lossbench report SWEEP --plots figures/ --reliability SWEEP/0 SWEEP/12
  lossbench report outputs/reproduce/apl_mnist --against apl_mnist --out against.md

Cells are mean ± std over seeds of completed runs, with the number of runs;
the best per column is bold, and a dagger marks where it is not significantly
better than the runner-up (two-sided paired t-test across seeds, pairing runs
by seed; Wilcoxon signed-rank from 10 seeds; --test to choose).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lossbench report", description=__doc__.split(":", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dirs", nargs="*", metavar="DIR", help="folders holding run directories (searched below)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT",
                   help="also read the runs of this W&B project (wandb.Api(); needs `wandb login`)")
    p.add_argument("--wandb-dir", action="append", default=[], metavar="DIR",
                   help="also read the W&B run files (offline runs) below DIR (repeatable)")
    p.add_argument("--group", help="with --wandb / --wandb-dir: only the runs of this W&B group (a sweep)")
    p.add_argument("--metric", default="test_acc",
                   help="summary figure to compare (default test_acc; e.g. test_ece_ts_clean, "
                        "best_test_acc, test_acc_at_best_val_noisy, test_nll); a _noisy / _clean suffix "
                        "names the validation labels that fitted or selected it; --list shows them all")
    p.add_argument("--rows", default="loss",
                   help="comma-separated keys for rows (default loss, grouped by family)")
    p.add_argument("--cols", default="noise", help="comma-separated keys for columns (default noise)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep only runs whose KEY equals VALUE (repeatable)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --out's suffix; "
                   "without --out, a rich table in the terminal)")
    p.add_argument("--out", action="append", default=[], metavar="FILE",
                   help="write the table to FILE (repeatable; .md .tex .csv .html)")
    p.add_argument("--direction", choices=DIRECTIONS, help="override which way is better "
                   "(default: max for accuracies, min for NLL/Brier/ECE/MCE, abs for the gap)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (0.05)")
    p.add_argument("--test", choices=TESTS, default="auto",
                   help="paired test across seeds: ttest, wilcoxon, or auto (t-test below 10 seeds)")
    p.add_argument("--digits", type=int, help="decimals in cells (default 2 for %% figures, else 3)")
    p.add_argument("--plots", metavar="DIR", help="write PNG and SVG figures into DIR")
    p.add_argument("--reliability", nargs="+", metavar="RUN_DIR",
                   help="runs for the reliability diagrams (default: the best run per row)")
    p.add_argument("--runs-csv", metavar="FILE", help="also write the per-run DataFrame (one row per run)")
    p.add_argument("--list", action="store_true", help="list the metrics and keys found, then stop")
    p.add_argument("--against", metavar="PRESET",
                   help="set each cell beside the preset's published numbers (lossbench reproduce --list) "
                        "and check the paper's claims; same formats (--out, --format)")
    return p


def _keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def _fail(message: str) -> None:
    print(f"lossbench report: error: {message}", file=sys.stderr)
    sys.exit(2)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric summary figures (not config keys) that some completed run holds."""
    done = frame[frame["status"] == "completed"]
    skip = {"seed", "noise_seed", "epochs_logged"}
    return sorted(c for c in frame.columns if "." not in c and c not in skip
                  and pd.api.types.is_numeric_dtype(frame[c]) and done[c].notna().any())


def key_columns(frame: pd.DataFrame) -> list[str]:
    """Keys a table can group by: the choices, the seeds, family, noise figures and config keys."""
    first = [c for c in (*CHOICE_KEYS, "loss_family", "seed", "noise_seed", "noise_kind", "noise_rate")
             if c in frame]
    return first + sorted(c for c in frame.columns if "." in c and not c.startswith("provenance."))


def _filter(frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
    for item in where:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--where takes KEY=VALUE, got '{item}'")
        if key not in frame:
            _fail(f"unknown key '{key}' in --where; known: {', '.join(key_columns(frame))}")
        frame = frame[frame[key].map(_label) == value]
    return frame


def _reliability_records(args, frame: pd.DataFrame, records: list[RunRecord], rows: list[str],
                         metric: str) -> list[RunRecord]:
    """The runs named by --reliability, else the best completed run (on ``metric``) of each row label."""
    if args.reliability:
        by_dir = {str(Path(r.run_dir).resolve()): r for r in records if r.run_dir}
        return [by_dir.get(str(Path(d).resolve())) or read_run(d) for d in args.reliability]
    direction = metric_direction(metric) or "max"
    done = frame[(frame["status"] == "completed") & frame[metric].notna()]
    if done.empty:
        return []
    score = pd.to_numeric(done[metric])
    score = -score if direction == "max" else (score.abs() if direction == "abs" else score)
    label = done[rows].apply(lambda r: " / ".join(_label(v) for v in r), axis=1)
    order = done.assign(_score=score, _label=label, _family=done["loss_family"].map(_label))
    order = order.sort_values(["_family", "_label", "_score"])
    return [records[i] for i in order.groupby("_label", sort=False)["_score"].idxmin()]


def _against(args, frame: pd.DataFrame) -> None:
    """--against PRESET: ours beside the published numbers, in the terminal or the --out files."""
    from lossbench.protocols import ProtocolError
    from lossbench.report import against

    try:
        result = against.compare(frame, args.against)
    except ProtocolError as exc:
        _fail(str(exc))
    if args.out:
        for out in args.out:
            try:
                fmt = format_for(out, args.format)
            except ValueError as exc:
                _fail(str(exc))
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(against.render(result, fmt, args.digits))
            print(f"wrote {out}")
    elif args.format:
        sys.stdout.write(against.render(result, args.format, args.digits))
    else:
        against.print_rich(result, args.digits)


def main(argv: list[str]) -> None:
    """Entry point of `lossbench report`."""
    args = _parser().parse_args(argv)
    if not (args.dirs or args.wandb or args.wandb_dir):
        _fail("name run directories (DIR), a W&B project (--wandb ENTITY/PROJECT) or --wandb-dir DIR")
    try:
        records = local_records(args.dirs)
        if args.wandb or args.wandb_dir:
            from lossbench.report import wandb_source

            records += wandb_source.offline_records(args.wandb_dir, args.group)
            if args.wandb:
                records += wandb_source.online_records(args.wandb, args.group, history=bool(args.plots))
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not records:
        sources = [*args.dirs, *args.wandb_dir, *([args.wandb] if args.wandb else [])]
        _fail(f"no runs in {', '.join(sources)} (a run directory holds .hydra/config.yaml; "
              "a W&B run is a wandb/*run-*/run-*.wandb file)")
    full = runs_frame(records)
    frame = _filter(full, args.where)
    if frame.empty:
        _fail(f"no run matches {' '.join(args.where)} ({status_line(full)})")
    if args.against:
        _against(args, frame)
        return
    if args.list:
        print("metrics:", ", ".join(metric_columns(frame)))
        print("keys:   ", ", ".join(key_columns(frame)))
        print_status(frame)
        return
    rows, cols = _keys(args.rows), _keys(args.cols)
    if not rows or not cols:
        _fail("--rows and --cols each need at least one key")
    for key in rows + cols:
        if key not in frame:
            _fail(f"unknown key '{key}'; known: {', '.join(key_columns(frame))}")
    if args.metric not in frame:
        from lossbench.metrics.views import renamed_hint

        hint = renamed_hint(args.metric)
        if hint:
            _fail(f"{hint}; pick one with --metric")
        known = metric_columns(frame)
        _fail(f"unknown metric '{args.metric}'; known: {', '.join(known) or '(no completed run yet)'}")
    table = build_table(frame, args.metric, rows, cols, args.direction, args.alpha, args.test)

    if args.runs_csv:
        frame.to_csv(args.runs_csv, index=False)
    if args.out:
        for out in args.out:
            try:
                fmt = format_for(out, args.format)
            except ValueError as exc:
                _fail(str(exc))
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(render(table, frame, fmt, args.digits))
            print(f"wrote {out}")
        for warning in table.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print_status(frame)
    elif args.format:
        sys.stdout.write(render(table, frame, args.format, args.digits))
    else:
        print_rich(table, frame, args.digits)

    if args.plots:
        from lossbench.report import plots

        written = plots.plot_metric_vs_noise(frame, args.metric, Path(args.plots), rows)
        chosen = _reliability_records(args, frame, records, rows, args.metric)
        for record in chosen:
            if not isinstance(record.summary.get("test_reliability"), dict):
                print(f"warning: {record.run_dir} has no reliability bins (status "
                      f"{record.summary.get('status')}); left out of the diagrams", file=sys.stderr)
        written += plots.plot_reliability(chosen, Path(args.plots))
        written += plots.plot_learning_curves(frame, records, Path(args.plots), rows, cols)
        for path in written:
            print(f"wrote {path}")
