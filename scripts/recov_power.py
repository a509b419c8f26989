"""How many repetitions ReCoV needs: its test's power, read from finished ReCoV runs.

    python scripts/recov_power.py outputs/bench_detect_digits/recov/*/ [--predict 3125,15625,78125]

ReCoV (Chen et al. 2023) counts, over R repetitions of k-fold cross-validation, how often each
sample lands in the worst fold; a clean label does so with probability 1/k, so its count is
Binomial(R, 1/k), and a wrong label slightly more often, with a share s_noisy > 1/k that does not
depend on R. The one-sided binomial z of a wrong label is then about
    z = (s_noisy - 1/k) sqrt(R) / sqrt(1/k (1 - 1/k)),
growing as sqrt(R), while the Benjamini-Hochberg procedure at level alpha, flagging a share pi of
the labels, rejects p-values below about pi * alpha, i.e. z > z_crit = Phi^-1(1 - pi alpha). This
script reads each run's worst-fold counts back from its detect.npz scores (score = 1 - p-value
= 1 - P(X > count); counts whose p-value is below float32 resolution, about 6e-8, read as
saturated and are left out of the means: they are all flagged), the truth from noise.npz, and
prints per run: s_noisy and s_clean, the mean z of a wrong label at the run's R, the R at which
that mean z reaches z_crit with pi = the realized noise rate, and the recall the normal
approximation expects (``predicted_recall``: every wrong label at the mean share, BH's threshold
at its fixed point) at the run's own R, to set against the measured recall, and at the --predict R.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from lossbench.detect.base import detection_auroc


def counts_from_scores(scores: np.ndarray, repetitions: int, folds: int) -> np.ndarray:
    """Worst-fold counts (float; NaN where the p-value underflowed float32) from ReCoV's scores."""
    from scipy.stats import binom

    p = 1.0 - scores.astype(np.float64)
    out = np.full(len(p), np.nan)
    ok = p > 1e-7
    # p = P(X > c) = sf(c): the smallest c with sf(c) <= p (+ a little for float32 rounding)
    out[ok] = binom.isf(np.minimum(p[ok] * (1 + 1e-6), 1.0), repetitions, 1.0 / folds)
    return out


def analyse(run: Path) -> dict | None:
    from scipy.stats import norm

    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    detect = (summary.get("config") or {}).get("detect") or {}
    if not str(detect.get("_target_", "")).endswith(".ReCoV") or not (run / "detect.npz").exists():
        return None
    R, k, alpha = int(detect["repetitions"]), int(detect["folds"]), float(detect["alpha"])
    with np.load(run / "detect.npz") as z:
        scores, flags = z["scores"], z["flags"].astype(bool)
    with np.load(run / "noise.npz") as z:
        noisy = z["is_noisy"]
        if len(noisy) != len(scores):
            noisy = noisy[z["train_idx"]]
    noisy = noisy.astype(bool)
    c = counts_from_scores(scores, R, k)
    sd = math.sqrt((1 / k) * (1 - 1 / k))
    share_noisy = float(np.nanmean(c[noisy])) / R
    share_clean = float(np.nanmean(c[~noisy])) / R
    z_mean = (share_noisy - 1 / k) * math.sqrt(R) / sd
    rate = float(noisy.mean())
    z_crit = float(norm.isf(rate * alpha)) if rate > 0 else float("nan")
    need = (z_crit * sd / (share_noisy - 1 / k)) ** 2 if share_noisy > 1 / k else float("inf")
    return {"run": str(run), "noise": summary.get("noise"), "seed": summary.get("seed"), "R": R, "k": k,
            "alpha": alpha, "n": len(scores), "realized_rate": rate, "share_noisy": share_noisy,
            "share_clean": share_clean, "saturated": int(np.isnan(c).sum()), "z_mean": z_mean,
            "z_crit": z_crit, "R_needed": need, "recall": float((flags & noisy).sum() / max(noisy.sum(), 1)),
            "auroc": detection_auroc(torch.as_tensor(scores), torch.as_tensor(noisy))}


def predicted_recall(row: dict, R: int) -> float:
    """Recall of BH at R, under the normal approximation: a wrong label's z ~ N(z_mean(R), 1), a
    clean one's ~ N(0, 1). BH's threshold depends on how much it flags, so take the fixed point of
    f = pi recall(t) + (1 - pi) t with t = f alpha (the share flagged f, iterated from f = pi)."""
    from scipy.stats import norm

    z = row["z_mean"] * math.sqrt(R / row["R"])
    pi, alpha = row["realized_rate"], row["alpha"]
    f, recall = pi, 0.0
    for _ in range(200):
        t = max(f * alpha, 1e-300)
        recall = float(norm.sf(norm.isf(t) - z))
        f_new = pi * recall + (1 - pi) * t
        if abs(f_new - f) < 1e-12:
            break
        f = f_new
    return recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--predict", default="3125,15625,78125", help="repetitions to predict the recall at")
    args = parser.parse_args()
    rows = [r for r in map(analyse, args.runs) if r]
    if not rows:
        raise SystemExit("no finished ReCoV run (summary.json with detect=recov, and detect.npz) "
                         "among the paths")
    predict = [int(x) for x in args.predict.split(",") if x]
    print("| noise | seed | N | R | realized rate | worst-fold share noisy / clean | "
          "mean z of a wrong label | z_crit (BH) | R needed | recall measured / predicted | AUROC | "
          + " | ".join(f"recall at R={R} (predicted)" for R in predict) + " |")
    print("|" + "---|" * (11 + len(predict)))
    for r in rows:
        cells = [r["noise"], r["seed"], r["n"], r["R"], f"{100 * r['realized_rate']:.1f}%",
                 f"{r['share_noisy']:.4f} / {r['share_clean']:.4f}", f"{r['z_mean']:.2f}",
                 f"{r['z_crit']:.2f}", f"{r['R_needed']:,.0f}",
                 f"{100 * r['recall']:.1f}% / {100 * predicted_recall(r, r['R']):.1f}%", f"{r['auroc']:.3f}"]
        cells += [f"{100 * predicted_recall(r, R):.0f}%" for R in predict]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
