"""The menon_mnist table in the shape the paper and its reproduction print it (issue 29).

Reads a `lossbench reproduce menon_mnist` folder, asks `report --against menon_mnist` for the
comparison (lossbench's own code: means, spreads, published values) and prints, as Markdown:

1. one row per loss, one column per noise rate, each cell "ours (paper / [Re])";
2. every run's final test accuracy, by loss, noise and seed (what the spread is made of);
3. the cells where ours disagrees with both published values: outside our runs' range widened by
   the published std and by the 0.05 of a one-decimal value, and more than 1 point away where the
   source gives no std.

    python scripts/menon_table.py outputs/reproduce/menon_mnist > table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from lossbench.report.against import compare
from lossbench.report.collect import local_records, runs_frame

LOSSES = ["ce", "ce_clip", "linear", "gce", "phuber_ce", "phuber_gce"]
NOISES = ["clean", "sym20", "sym40", "sym60"]
RHO = {"clean": "0", "sym20": "0.2", "sym40": "0.4", "sym60": "0.6"}


def per_run(folder: Path) -> pd.DataFrame:
    """loss, noise, seed, test_acc (%) of every completed run below ``folder``."""
    rows = []
    for path in sorted(folder.glob("*/summary.json")):
        s = json.loads(path.read_text())
        if s.get("status") == "completed":
            rows.append({"loss": s["loss"], "noise": s["noise"], "seed": s["seed"],
                         "acc": 100 * s["test_acc"]})
    return pd.DataFrame(rows)


def disagrees(runs: pd.Series, mean: float, std: float | None) -> bool:
    """Whether a published ``mean`` (+- ``std``) lies outside what our ``runs`` cover."""
    if len(runs) == 0:
        return False
    slack = 0.05 + (std if std == std and std is not None else 0.0)
    outside = mean < runs.min() - slack or mean > runs.max() + slack
    if std is None or std != std:  # no spread given: more than 1 point away from our mean
        return outside and abs(runs.mean() - mean) > 1
    return outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    result = compare(runs_frame(local_records([args.folder])), "menon_mnist")
    cells = result.cells
    runs = per_run(args.folder)

    def published(loss: str, noise: str, source: str) -> tuple[float, float | None]:
        row = cells[(cells.loss == loss) & (cells.noise == noise) & (cells.source_id == source)].iloc[0]
        return row.published_mean, row.published_std

    print("| loss | " + " | ".join(f"rho {RHO[n]}" for n in NOISES) + " |")
    print("| --- |" + " ---: |" * len(NOISES))
    for loss in LOSSES:
        out = []
        for noise in NOISES:
            ours = runs[(runs.loss == loss) & (runs.noise == noise)].acc
            paper, _ = published(loss, noise, "paper")
            re_mean, re_std = published(loss, noise, "reproduction")
            text = f"{ours.mean():.1f} ± {ours.std():.1f}" if len(ours) > 1 else (
                f"{ours.mean():.1f}" if len(ours) else "–")
            out.append(f"{text} ({paper:.1f} / {re_mean:.1f} ± {re_std:.1f})")
        print(f"| {loss} | " + " | ".join(out) + " |")
    print("\nEach cell: ours, mean ± std over seeds 0, 1, 2 (paper [figure] / [Re] [README] mean ± std).\n")

    print("| loss | noise | seed 0 | seed 1 | seed 2 |")
    print("| --- | --- | ---: | ---: | ---: |")
    for loss in LOSSES:
        for noise in NOISES:
            by_seed = runs[(runs.loss == loss) & (runs.noise == noise)].set_index("seed").acc
            print(f"| {loss} | {noise} | " + " | ".join(f"{by_seed[s]:.2f}" if s in by_seed else "–"
                                                       for s in (0, 1, 2)) + " |")

    print("\nCells where ours disagrees with both published values:\n")
    for loss in LOSSES:
        for noise in NOISES:
            ours = runs[(runs.loss == loss) & (runs.noise == noise)].acc
            verdicts = {source: disagrees(ours, *published(loss, noise, source))
                        for source in ("paper", "reproduction")}
            if all(verdicts.values()):
                print(f"- {loss} {noise}: ours {ours.mean():.2f} (runs {ours.min():.2f}-{ours.max():.2f}), "
                      f"paper {published(loss, noise, 'paper')[0]:.1f}, "
                      f"[Re] {published(loss, noise, 'reproduction')[0]:.1f}")
            elif verdicts["paper"]:
                print(f"- {loss} {noise}: differs from the paper only (ours {ours.mean():.2f}, "
                      f"paper {published(loss, noise, 'paper')[0]:.1f})")
            elif verdicts["reproduction"]:
                print(f"- {loss} {noise}: differs from [Re] only (ours {ours.mean():.2f}, "
                      f"[Re] {published(loss, noise, 'reproduction')[0]:.1f})")


if __name__ == "__main__":
    main()
