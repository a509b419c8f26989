"""`lossbench report DIR [DIR ...]`: comparison tables and plots from the runs below DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from lossbench.core.console import table_console
from lossbench.report.collect import CHOICE_KEYS, RunRecord, deduplicate, local_records, read_run, runs_frame
from lossbench.report.escape import printable
from lossbench.report.render import (
    FORMATS,
    csv_text,
    format_for,
    print_rich,
    print_status,
    render_all,
    status_line,
)
from lossbench.report.settings import drop_duplicates, refusal, setting_values, split_by_setting
from lossbench.report.stats import TESTS
from lossbench.report.tables import DIRECTIONS, ComparisonTable, _label, build_table

EPILOG = """\
examples:
  lossbench report outputs/multirun/2026-11-24/10-00-00
  lossbench report SWEEP --metric test_ece_ts_clean --out table.md --out table.tex
  lossbench report SWEEP --rows loss --cols dataset,noise --where reweight=none
  lossbench report SWEEP --rows loss.q --cols noise --where loss=gce
  lossbench report SWEEP --plots figures/ --reliability SWEEP/0 SWEEP/12
  lossbench report outputs/reproduce/apl_mnist --against apl_mnist --out against.md

Cells are mean ± std over seeds of completed runs, with the number of runs;
the best per column is bold (starred where the output shows no styles), and a
dagger marks where it is not significantly better than the runner-up
(two-sided paired t-test across seeds, pairing runs by seed; Wilcoxon
signed-rank from 10 seeds; --test to choose); a double dagger instead of bold
where that test would rest on fewer than 3 seeds a side. Runs that differ in a
setting that is neither a row nor a column (dataset, model, epochs, an
override: anything in the run's config but housekeeping) are never pooled: one
table per setting, named (--mixed refuse: stop instead). Runs that diverged,
failed, are unfinished or corrupt (files that cannot be read) are counted and
listed with why. A run read twice (from its folder and from W&B, or the same
experiment and seed in two folders) counts once. The table (or the --list)
goes to stdout; messages go to stderr. Exit status: 0, 2 for a usage error, 1
when no completed run is left to tabulate (the others listed).
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
    p.add_argument("--mixed", choices=("split", "refuse"), default="split",
                   help="runs that differ in a setting that is neither a row nor a column: one table per "
                        "setting, named (split, the default), or stop with the keys that differ (refuse)")
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
                   help="runs for the per-run reliability diagrams (default: per row label, the run with the "
                        "highest noise rate and smallest seed; the grid figures pool every run of a cell)")
    p.add_argument("--runs-csv", metavar="FILE", help="also write the per-run DataFrame (one row per run)")
    p.add_argument("--list", action="store_true", help="list the metrics and keys found, then stop")
    p.add_argument("--against", metavar="PRESET",
                   help="set each cell beside the preset's published numbers (lossbench reproduce --list) "
                        "and check the paper's claims; same formats (--out, --format)")
    return p


def _keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def _fail(message: str, status: int = 2) -> None:
    print(f"lossbench report: error: {printable(message)}", file=sys.stderr)
    sys.exit(status)


def _say(message: str) -> None:
    """A message for the user: on stderr, so that stdout holds only the table."""
    print(printable(message), file=sys.stderr)


# Numbers a summary records that describe the run's setting or data, not what it measured.
NOT_METRICS = {"seed", "noise_seed", "epochs_logged", "epochs", "diverged_epoch", "noise_rate",
               "expected_noise_rate", "realized_noise_rate", "ts_params"}


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The figures a table can compare: numeric summary values that some completed run holds, less
    config keys, switches and counts of the setting (seeds, epochs run, noise rates, num_* sizes)."""
    done = frame[frame["status"] == "completed"]
    return sorted(c for c in frame.columns if "." not in c and c not in NOT_METRICS
                  and not c.startswith("num_") and pd.api.types.is_numeric_dtype(frame[c])
                  and not pd.api.types.is_bool_dtype(frame[c]) and done[c].notna().any())


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


RELIABILITY_RULE = ("Runs: for each row label, the completed run with the highest noise rate and, among "
                    "those, the smallest seed (no run is chosen by a metric); --reliability RUN_DIR ... "
                    "names others.")


def _reliability_records(args, frame: pd.DataFrame, records: list[RunRecord], rows: list[str]
                         ) -> tuple[list[RunRecord], str]:
    """The runs named by --reliability, else one run per row label by RELIABILITY_RULE; and the caption."""
    if args.reliability:
        by_dir = {str(Path(r.run_dir).resolve()): r for r in records if r.run_dir}
        chosen = [by_dir.get(str(Path(d).resolve())) or read_run(d) for d in args.reliability]
        return chosen, "Runs: named on the command line (--reliability)."
    done = frame[frame["status"] == "completed"]
    if done.empty:
        return [], RELIABILITY_RULE
    rate = pd.to_numeric(done.get("noise_rate", pd.Series(0.0, index=done.index)), errors="coerce")
    rate = rate.fillna(0.0)
    seed = pd.to_numeric(done.get("seed", pd.Series(0, index=done.index)), errors="coerce").fillna(0)
    label = done[rows].apply(lambda r: " / ".join(_label(v) for v in r), axis=1)
    from lossbench.report.plots import _family_rank

    order = done.assign(_rate=-rate, _seed=seed, _label=label, _family=done["loss_family"].map(_family_rank))
    order = order.sort_values(["_family", "_label", "_rate", "_seed"], kind="stable")
    return [records[i] for i in order.groupby("_label", sort=False).head(1).index], RELIABILITY_RULE


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
            _write(out, against.render(result, fmt, args.digits))
    elif args.format:
        sys.stdout.write(against.render(result, args.format, args.digits))
    else:
        against.print_rich(result, args.digits)


def _check_options(args: argparse.Namespace) -> dict[str, str]:
    """Refuse bad options before reading anything; the format of each --out file."""
    if not (args.dirs or args.wandb or args.wandb_dir):
        _fail("name run directories (DIR), a W&B project (--wandb ENTITY/PROJECT) or --wandb-dir DIR")
    if args.digits is not None and not 0 <= args.digits <= 12:
        _fail(f"--digits {args.digits}: decimals must be between 0 and 12")
    if not 0 < args.alpha < 1:
        _fail(f"--alpha {args.alpha:g}: a significance level must lie strictly between 0 and 1")
    formats = {}
    for out in args.out:
        try:
            formats[out] = format_for(out, args.format)
        except ValueError as exc:
            _fail(str(exc))
    return formats


def read_records(args: argparse.Namespace) -> list[RunRecord]:
    """Every run below the folders, then the W&B runs; a run read twice counts once."""
    try:
        records = local_records(args.dirs)
        if args.wandb or args.wandb_dir:
            from lossbench.report import wandb_source

            records += wandb_source.offline_records(args.wandb_dir, args.group)
            if args.wandb:
                records += wandb_source.online_records(args.wandb, args.group, history=bool(args.plots))
    except FileNotFoundError as exc:
        _fail(str(exc))
    records, dropped = deduplicate(records)
    if dropped:
        _say(f"note: {dropped} run(s) read both from a folder and from W&B count once")
    records, notes = drop_duplicates(records)
    for note in notes:
        _say(note)
    if not records:
        sources = [*args.dirs, *args.wandb_dir, *([args.wandb] if args.wandb else [])]
        _fail(f"no runs in {', '.join(sources)} (a run directory holds .hydra/config.yaml; "
              "a W&B run is a wandb/*run-*/run-*.wandb file)")
    return records


def _status_console(to_stdout: bool):
    return table_console(stderr=not to_stdout)


def _write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a full disk leaves no empty or cut file)."""
    from lossbench.core.io import make_folders, write_text_atomic

    try:
        make_folders(Path(path).parent)
        write_text_atomic(Path(path), text)
    except OSError as exc:
        _fail(f"cannot write {path} ({exc.strerror or exc})", status=1)
    _say(f"wrote {path}")


def write_tables(args: argparse.Namespace, formats: dict[str, str],
                 tables: list[tuple[ComparisonTable, pd.DataFrame]], frame: pd.DataFrame) -> None:
    """The tables (one per setting, each with its runs): into each --out file, or to stdout (--format),
    or as rich tables in the terminal."""
    if args.runs_csv:
        _write(args.runs_csv, csv_text(frame))
    if args.out:
        rendered = {out: render_all(tables, fmt, args.digits) for out, fmt in formats.items()}
        for out, text in rendered.items():
            _write(out, text)
    elif args.format:
        sys.stdout.write(render_all(tables, args.format, args.digits))
    else:
        console = table_console()
        for i, (table, runs) in enumerate(tables):
            if i:
                console.print()
            print_rich(table, runs, args.digits, console=console)
        return
    if args.out or args.format == "csv":  # what the file on stdout cannot hold
        for table, _ in tables:
            for warning in table.warnings:
                _say(f"warning: {warning}")
        print_status(frame, _status_console(to_stdout=False))


def split_tables(args: argparse.Namespace, frame: pd.DataFrame, records: list[RunRecord], rows: list[str],
                 cols: list[str]) -> list[tuple[ComparisonTable, pd.DataFrame]]:
    """One table per setting the runs differ in beyond the rows and columns (report/settings.py)."""
    parts = split_by_setting(frame, setting_values(records), [*rows, *cols])
    if len(parts) > 1:
        if args.mixed == "refuse":
            _fail(refusal(parts, cols))
        _say(f"note: the runs differ in {', '.join(parts[0].values)}, which is neither a row nor a column: "
             f"{len(parts)} tables, one per setting (--cols or --where to choose; --mixed refuse to stop)")
    tables = []
    for part in parts:
        runs = frame.loc[part.index]
        table = build_table(runs, args.metric, rows, cols, args.direction, args.alpha, args.test)
        table.setting = dict(part.values)
        tables.append((table, runs))
    return tables


def write_plots(args: argparse.Namespace, frame: pd.DataFrame, records: list[RunRecord],
                rows: list[str], folder: str = "") -> None:
    """PNG and SVG figures into --plots (and nowhere else); into its sub``folder`` when given (one per
    setting, when the runs were split by setting)."""
    from lossbench.report import plots

    out_dir = Path(args.plots) / folder if folder else Path(args.plots)
    try:
        written = plots.plot_metric_vs_noise(frame, args.metric, out_dir, rows)
        chosen, caption = _reliability_records(args, frame, records, rows)
        for record in chosen:
            if not plots.usable_bins(record.summary.get("test_reliability")):
                _say(f"warning: {record.run_dir} has no reliability bins (status "
                     f"{record.summary.get('status')}); left out of the diagrams")
        written += plots.plot_reliability(chosen, out_dir, caption=caption)
        for state in plots.grid_states(records):
            written += plots.plot_reliability_grid(frame, records, out_dir, rows, _keys(args.cols), state)
        written += plots.plot_learning_curves(frame, records, out_dir, rows, _keys(args.cols))
    except OSError as exc:
        _fail(f"cannot write the plots into {out_dir} ({exc.strerror or exc})", status=1)
    for path in written:
        _say(f"wrote {path}")


def main(argv: list[str]) -> None:
    """Entry point of `lossbench report`."""
    args = _parser().parse_args(argv)
    formats = _check_options(args)
    records = read_records(args)
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
    if not (frame["status"] == "completed").any():
        print_status(frame, _status_console(to_stdout=not (args.out or args.format)))
        _fail(f"no completed run to tabulate ({status_line(frame)}); every run is listed above", status=1)
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
        _fail(f"unknown metric '{args.metric}'; known: {', '.join(metric_columns(frame))}")
    tables = split_tables(args, frame, records, rows, cols)
    write_tables(args, formats, tables, frame)
    if args.plots:
        from lossbench.report.escape import file_stem

        folders: list[str] = []
        for table, runs in tables:  # one folder per setting, its name safe and its own
            stem = file_stem(table.setting_name, "setting") if len(tables) > 1 else ""
            folders.append(stem if stem not in folders else f"{stem}-{len(folders) + 1}")
            write_plots(args, runs, records, rows, folders[-1])
