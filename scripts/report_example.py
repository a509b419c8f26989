"""The issue's sweep on digits, reported in every format with plots, checked against the summaries.

    python scripts/report_example.py                    # 30 epochs (the default config), about a minute
    python scripts/report_example.py --epochs 10 --out outputs/report_example
    python scripts/report_example.py --docs             # also write docs/report_example.md and docs/img/

It runs `lossbench run -m loss=ce,gce,nce_rce,focal noise=sym20,sym60 seed=0,1,2`
(finished jobs are skipped when run again), then `lossbench report` in the
terminal, to Markdown, LaTeX, CSV and HTML, and with --plots; it then checks
that every cell of the CSV and Markdown tables equals the mean, standard
deviation and count recomputed straight from the runs' summary.json files,
and exits 1 if one does not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["loss=ce,gce,nce_rce,focal", "noise=sym20,sym60", "seed=0,1,2"]
METRICS = ("test_acc", "test_ece", "test_ece_ts_clean", "test_ece_ts_noisy", "test_acc_at_best_val_noisy",
           "test_acc_at_best_val_clean")
IMAGE_LIMIT = 200_000  # bytes per committed image


def lossbench(*args: str, quiet: bool = False) -> str:
    """Run `lossbench ARGS` as a user would; echo the command; fail loudly."""
    print(f"$ lossbench {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "lossbench", *args], text=True,
                          capture_output=quiet, check=False)
    if proc.returncode != 0:
        sys.exit(f"lossbench {args[0]} exited {proc.returncode}\n{proc.stderr or ''}")
    return proc.stdout or ""


def from_summaries(sweep: Path, metric: str) -> dict[tuple[str, str], list[float]]:
    """metric of every completed run by (loss, noise), read straight from summary.json."""
    values = defaultdict(list)
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        if summary["status"] == "completed" and summary.get(metric) is not None:
            values[summary["loss"], summary["noise"]].append(summary[metric])
    return values


def check(sweep: Path, csv_path: Path, md_path: Path, metric: str) -> list[str]:
    """Differences between the written tables and the summaries (empty when they agree)."""
    table = pd.read_csv(csv_path)
    markdown = md_path.read_text()
    scale, digits = (100, 2) if "acc" in metric or "ece" in metric else (1, 3)
    problems = []
    expected = from_summaries(sweep, metric)
    if len(table) != len(expected):
        problems.append(f"{metric}: {len(table)} cells in the table, {len(expected)} in the summaries")
    for (loss, noise), values in sorted(expected.items()):
        line = table[(table["loss"] == loss) & (table["noise"] == noise)]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        if line.empty:
            problems.append(f"{metric}: no cell for {loss} / {noise}")
            continue
        got = line.iloc[0]
        if abs(got["mean"] - mean) > 1e-12 or got["n"] != len(values) or (
                len(values) > 1 and abs(got["std"] - std) > 1e-12):
            problems.append(f"{metric} {loss}/{noise}: table {got['mean']}, {got['std']}, {got['n']}; "
                            f"summaries {mean}, {std}, {len(values)}")
        text = f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if len(values) > 1 else "")
        if f"{text} ({len(values)})" not in markdown:
            problems.append(f"{metric} {loss}/{noise}: '{text} ({len(values)})' not in {md_path.name}")
    return problems


def write_docs(out: Path, shown: str, command: str) -> None:
    """docs/report_example.md and its images, from this run's outputs (``shown``: out as typed)."""
    first = json.loads(next((out / "sweep").glob("*/summary.json")).read_text())
    epochs = first["config"]["trainer"]["epochs"]
    img = REPO / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for name in ("test_acc_vs_noise", "learning_curves", "reliability"):
        source = out / "plots" / f"{name}.png"
        if source.stat().st_size > IMAGE_LIMIT:
            sys.exit(f"{source} is {source.stat().st_size} bytes, above {IMAGE_LIMIT}; not copied")
        shutil.copyfile(source, img / f"report_{name}.png")
    tables = {m: (out / f"{m}.md").read_text().strip() for m in METRICS}
    # title, table, legend and run status once; title and table only for the others
    tables.update({m: "\n\n".join(t.split("\n\n")[:2]) for m, t in tables.items() if m != METRICS[0]})
    text = f"""# `lossbench report`: an example

A real sweep on the bundled digits dataset (MLP, SGD with cosine schedule, {epochs}
epochs, CPU; made by `scripts/report_example.py`):

```
{command} hydra.sweep.dir={shown}/sweep
lossbench report {shown}/sweep
lossbench report {shown}/sweep --out table.md --out table.tex --out table.csv --out table.html \\
    --plots {shown}/plots
lossbench report {shown}/sweep --metric test_ece --out test_ece.md
```

## Test accuracy

{tables['test_acc']}

## Expected calibration error (15 bins) on the clean test labels

{tables['test_ece']}

The validation split carries the training noise, and lossbench also knows its
clean labels, so everything fitted or selected on it is recorded twice, named
by the labels used: `_clean` (the oracle, which isolates the loss from the
noise in its validation split) and `_noisy` (what a practitioner with noisy
labels can do). After temperature scaling with T fitted on the clean
validation labels (`test_ece_ts_clean`, the column to compare losses by):

{tables['test_ece_ts_clean']}

With T fitted on the noisy validation labels (`test_ece_ts_noisy`):

{tables['test_ece_ts_noisy']}

Fitted on noisy labels, the temperature calibrates the model to the noisy
label distribution (T > 1: softer predictions), so on the clean test labels
the ECE after scaling is much worse than before; that measures the noise in
the validation split more than the loss. `temperature_noisy` and
`temperature_clean` are metrics like the others (`--metric temperature_noisy`).

## Model selection on validation (no peeking at test labels)

Test accuracy at the epoch of best accuracy on the noisy validation labels
(`test_acc_at_best_val_noisy`, what a practitioner can do):

{tables['test_acc_at_best_val_noisy']}

The same with the epoch chosen on the clean validation labels (`test_acc_at_best_val_clean`, oracle):

{tables['test_acc_at_best_val_clean']}

## Plots

`--plots DIR` writes PNG and SVG: accuracy against noise rate, reliability
diagrams before and after temperature scaling, with T fitted on the clean and
on the noisy validation labels (the best run per loss, or
`--reliability RUN_DIR ...`), and learning curves (test accuracy and
memorization of the noisy labels against epoch).

![test accuracy against noise rate](img/report_test_acc_vs_noise.png)

![test accuracy and memorization of noisy labels against epoch](img/report_learning_curves.png)

![reliability diagrams before and after temperature scaling](img/report_reliability.png)
"""
    (REPO / "docs").mkdir(exist_ok=True)
    (REPO / "docs" / "report_example.md").write_text(text)
    print(f"wrote {REPO / 'docs' / 'report_example.md'} and {img}/report_*.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/report_example"), help="where it all goes")
    parser.add_argument("--epochs", type=int, help="trainer.epochs (default: the config's, 30)")
    parser.add_argument("--docs", action="store_true", help="write docs/report_example.md and docs/img/")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    sweep = out / "sweep"
    extra = [f"trainer.epochs={args.epochs}"] if args.epochs else []
    run_args = ["run", "-m", *SWEEP, *extra]
    lossbench(*run_args, "trainer.progress=none", f"hydra.sweep.dir={sweep}", quiet=True)
    lossbench("report", str(sweep))
    tables = [str(out / f"table.{suffix}") for suffix in ("md", "tex", "csv", "html")]
    lossbench("report", str(sweep), *[a for t in tables for a in ("--out", t)], "--plots", str(out / "plots"))
    problems = check(sweep, out / "table.csv", out / "table.md", "test_acc")
    for metric in METRICS:
        lossbench("report", str(sweep), "--metric", metric, "--out", str(out / f"{metric}.csv"),
                  "--out", str(out / f"{metric}.md"), quiet=True)
        problems += check(sweep, out / f"{metric}.csv", out / f"{metric}.md", metric)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"every cell of {len(METRICS)} metrics equals the summaries' mean, std and n")
    if args.docs:
        write_docs(out, str(args.out), "lossbench " + shlex.join(run_args))


if __name__ == "__main__":
    main()
