"""lossbench's reference table for the apl_mnist preset, from the runs of `lossbench reproduce apl_mnist`.

    lossbench reproduce apl_mnist --noise sym80 --seeds 0 data_dir=/data      # or any subset
    python scripts/apl_mnist_reference.py outputs/reproduce/apl_mnist --md benchmarks/apl_mnist.md --write

reads the run directories (summary.json, metrics.jsonl), writes the table (last-epoch test accuracy,
mean +- std over seeds, n) and the seconds per run as Markdown, and with --write puts the completed,
unmodified runs' cells into lossbench/protocols/data/apl_mnist.yaml as the preset's reference (mark
[lossbench]). Runs still training are listed with the epochs they have, never counted as results.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
from pathlib import Path

import numpy as np

PRESET = "apl_mnist"
DATA_FILE = Path(__file__).resolve().parents[1] / "lossbench" / "protocols" / "data" / f"{PRESET}.yaml"
GRID_KEYS = ("loss=", "noise=", "seed=", "+experiment=", "data_dir=", "trainer.progress=")


def _runs(root: Path) -> list[dict]:
    runs = []
    for run_dir in sorted(p for p in root.iterdir() if (p / ".hydra").is_dir()):
        summary_path, metrics_path = run_dir / "summary.json", run_dir / "metrics.jsonl"
        lines = metrics_path.read_text().splitlines() if metrics_path.is_file() else []
        history = [json.loads(x) for x in lines if x]
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        loss, noise, seed = run_dir.name.rsplit("-", 2)
        runs.append({"dir": run_dir.name, "loss": loss, "noise": noise, "seed": int(seed.lstrip("s")),
                     "summary": summary, "history": history})
    return runs


def _is_reference(run: dict) -> bool:
    """A finished run of the preset as it is (no override beyond the grid and housekeeping)."""
    s = run["summary"]
    if not s or s.get("status") != "completed" or s.get("protocol") != PRESET:
        return False
    allowed = tuple(k.lstrip("+") for k in GRID_KEYS)
    return all(o.lstrip("+~").startswith(allowed) for o in s.get("overrides", []))


def cells(runs: list[dict]) -> dict[tuple[str, str], np.ndarray]:
    out: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        if _is_reference(run):
            out.setdefault((run["loss"], run["noise"]), []).append(100 * run["summary"]["test_acc"])
    return {k: np.array(v) for k, v in out.items()}


def _fmt(values: np.ndarray) -> str:
    if values.size > 1:
        return f"{values.mean():.2f} ± {values.std(ddof=1):.2f} ({values.size})"
    return f"{values.mean():.2f} (1)"


def markdown(runs: list[dict], root: Path, note: str = "") -> str:
    from lossbench.protocols import compose_preset, preset_grid

    grid = preset_grid(compose_preset(PRESET))
    table = cells(runs)
    lines = ["| loss | " + " | ".join(grid["noise"]) + " |", "|---|" + "---:|" * len(grid["noise"])]
    for loss in grid["loss"]:
        row = [_fmt(table[(loss, n)]) if (loss, n) in table else "not run" for n in grid["noise"]]
        lines.append(f"| {loss} | " + " | ".join(row) + " |")
    timing = ["| run | status | epochs | test acc (last epoch so far) | train s | s per epoch (with eval) "
              "| wall s |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        h, s = run["history"], run["summary"]
        status = s["status"] if s else ("training" if h else "not started")
        epochs = len(h)
        acc = f"{100 * h[-1]['test_acc']:.2f}" if h else ""
        train = sum(r["train_seconds"] for r in h)
        per_epoch = np.mean([r.get("seconds", r["train_seconds"]) for r in h]) if h else math.nan
        wall = f"{s['wall_time_s']:.0f}" if s and "wall_time_s" in s else ""
        timing.append(f"| {run['dir']} | {status} | {epochs} | {acc} | {train:.0f} | {per_epoch:.0f} "
                      f"| {wall} |")
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commit = git.stdout.strip()
    return "\n".join([
        "# apl_mnist: lossbench's reference table (issue 13)", "",
        "`lossbench reproduce apl_mnist` (Ma et al. 2020's MNIST protocol as the official code runs it:",
        "cnn4, 50 epochs, SGD 0.01 Nesterov, weight decay 1e-2, cosine to 0.001, clip 5, all 60,000 training",
        "images)",
        "on lossbench's CPU machine; `python scripts/apl_mnist_reference.py` made this page from the run",
        "directories. No published MNIST numbers are reachable, so these cells are the preset's reference",
        "(mark [lossbench], in lossbench/protocols/data/apl_mnist.yaml) that `report --against apl_mnist`",
        "compares later runs with.", "", *([note, ""] if note else []),
        "**lossbench reference, apl_mnist: test accuracy (%) of the last epoch, mean ± std over seeds (n)**",
        "", *lines, "", f"Runs in `{root}`; machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"commit {commit}. Only completed runs of the unmodified preset count; the others are listed below.",
        "", "**Seconds per run**", "", *timing, ""])


def write_markdown(path: Path, text: str) -> None:
    """Write the table page to ``path``, keeping the ``## `` sections an existing page has after it
    (the page generated here has none: they are findings written by hand, e.g. "GCE at sym 0.8: cause")."""
    kept = ""
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)
        start = next((i for i, line in enumerate(lines) if line.startswith("## ")), None)
        if start is not None:
            kept = "".join(lines[start:])
    path.write_text(text.rstrip("\n") + "\n" + ("\n" + kept if kept else ""))


def write_reference(runs: list[dict], source: str) -> int:
    """Replace the data file's ``reference:`` block with the measured cells; returns how many."""
    table = cells(runs)
    entries = []
    for (loss, noise), values in sorted(table.items()):
        std = f"{values.std(ddof=1):.2f}" if values.size > 1 else "null"
        entries.append(f"  - {{loss: {loss}, noise: {noise}, mean: {values.mean():.2f}, std: {std}, "
                       f"n: {values.size}, mark: \"[lossbench]\", source: \"{source}\"}}")
    text = DATA_FILE.read_text()
    block = "reference:" + ("\n" + "\n".join(entries) if entries else " []") + "\n"
    text = re.sub(r"^reference:.*?(?=^\w|\Z)", block, text, flags=re.S | re.M)
    DATA_FILE.write_text(text)
    return len(entries)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="the runs of lossbench reproduce apl_mnist")
    p.add_argument("--md", type=Path,
                   help="write the Markdown here, keeping the page's ## sections (else print it)")
    p.add_argument("--write", action="store_true", help="put the completed cells into the preset's data file")
    p.add_argument("--source", default="benchmarks/apl_mnist.md", help="source text of the reference cells")
    p.add_argument("--note", default="", help="a paragraph on how the runs were made (machine, subset, load)")
    args = p.parse_args()
    runs = _runs(args.root)
    text = markdown(runs, args.root, args.note)
    if args.md:
        write_markdown(args.md, text)
        print(f"wrote {args.md}")
    else:
        print(text)
    if args.write:
        print(f"{write_reference(runs, args.source)} reference cells in {DATA_FILE}")


if __name__ == "__main__":
    main()
