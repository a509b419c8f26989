"""Calibration losses before and after each post-hoc calibrator, clean and sym40: benchmarks/calibration.md.

    python scripts/bench_calibration.py                        # every part below, then the tables
    python scripts/bench_calibration.py --parts digits_mlp     # one part
    python scripts/bench_calibration.py --tables-only          # rebuild the tables from the runs on disk
    python scripts/bench_calibration.py --smoke                # 1 seed, 1 epoch, 2 losses: does it run?
    python scripts/bench_calibration.py --parts fmnist_resnet18     # on a GPU (--smoke: tiny, on CPU)

Parts (dataset, model, epochs): digits + MLP (30 epochs, the default protocol), Fashion-MNIST + MLP
(10 epochs) and Fashion-MNIST + cnn4 (1 epoch of Adam, batch 128: the mnist_quick protocol). Each part is
one `lossbench run -m` sweep over the losses, noise (clean, sym40) and seeds 0, 1, 2 with every
calibrator (calibrator=[temperature,vector,matrix,dirichlet,ca]); finished runs are skipped when the
script runs again. The tables are built from the runs' summary.json files only: mean ± sample std over
seeds of ECE (15 bins), SmoothECE (relplot) and NLL on the clean test set, and the signed gap
(mean confidence minus accuracy: > 0 over-confident), before calibration and after each calibrator
fitted on the clean (oracle) and on the noisy (practitioner) validation labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("ce", "focal", "flsd53", "label_smoothing", "poly1", "squentropy")
NOISES = ("clean", "sym40")
CALIBRATORS = ("temperature", "vector", "matrix", "dirichlet", "ca")
KEYS = {"temperature": "ts", "vector": "vs", "matrix": "ms", "dirichlet": "dir", "ca": "ca"}
PARTS = {
    "digits_mlp": {"title": "digits, MLP 256-256, 30 epochs", "overrides": ["dataset=digits", "model=mlp"],
                   "epochs": 30},
    "fmnist_mlp": {"title": "Fashion-MNIST, MLP 256-256, 10 epochs",
                   "overrides": ["dataset=fashion_mnist", "model=mlp"], "epochs": 10},
    # one epoch of Adam (lr 1e-3, batch 128, no schedule: the mnist_quick protocol); under the CPU load of
    # this session a cnn4 epoch cost about 80 CPU-seconds at batch 64, so 3 epochs x 36 runs would not fit
    "fmnist_cnn4": {"title": "Fashion-MNIST, cnn4, 1 epoch of Adam (lr 1e-3, batch 128)",
                    "overrides": ["dataset=fashion_mnist", "model=cnn4", "optim=adam", "scheduler=none",
                                  "trainer.batch_size=128"], "epochs": 1},
    # GPU only (not in the default parts): the larger-model regime where CE becomes over-confident
    "fmnist_resnet18": {"title": "Fashion-MNIST, resnet18 (GPU, bf16), 15 epochs", "gpu": True,
                        "overrides": ["dataset=fashion_mnist", "model=resnet18", "trainer.device=cuda",
                                      "trainer.precision=bf16", "trainer.batch_size=128"], "epochs": 15,
                        "smoke": ["dataset=synthetic", "dataset.image_shape=[1,28,28]",
                                  "dataset.num_samples=300", "model=resnet18", "model.widths=[8,16,32,64]",
                                  "trainer.device=cpu"]},
}
DEFAULT_PARTS = [name for name, part in PARTS.items() if not part.get("gpu")]
NOT_MEASURED = "not measured (no GPU lent to this session)"
MARKER = "<!-- everything below is written by scripts/bench_calibration.py; text above it is kept -->"
METRICS = (("test_ece", "ECE (%)", 100), ("test_smece", "SmoothECE (%)", 100), ("test_nll", "NLL", 1),
           ("test_gap", "gap = confidence - accuracy (%)", 100))


def command(part: dict, sweep: Path, losses, seeds, epochs: int, data_dir: str | None,
            smoke: bool = False) -> list[str]:
    overrides = part.get("smoke", part["overrides"]) if smoke else part["overrides"]
    cmd = [sys.executable, "-m", "lossbench", "run", "-m", *overrides, f"loss={','.join(losses)}",
           f"noise={','.join(NOISES)}", f"seed={','.join(map(str, seeds))}", f"trainer.epochs={epochs}",
           f"calibrator=[{','.join(CALIBRATORS)}]", "trainer.checkpoint_every=0", "trainer.progress=none",
           f"hydra.sweep.dir={sweep}"]
    return cmd + ([f"data_dir={data_dir}"] if data_dir else [])


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


def _cell(values: list[float], scale: float) -> str:
    values = [v * scale for v in values if isinstance(v, (int, float))]
    if not values:
        return "n/a"
    digits = 2 if scale == 100 else 3
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def tables(sweep: Path, title: str) -> list[str]:
    runs = [s for s in summaries(sweep) if s.get("status") == "completed"]
    if not runs:
        return [f"### {title}", "", f"{NOT_MEASURED if 'GPU' in title else 'no completed runs'}.", ""]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in runs:
        groups[s["loss"], s["noise"]].append(s)
    states = [("before", "")] + [(f"{k} {v}", f"_{k}_{v}") for k in KEYS.values() for v in ("clean", "noisy")]
    out = [f"### {title}", ""]
    seeds = sorted({s["seed"] for s in runs})
    epochs = sorted({s["epochs"] for s in runs})
    out.append(f"{len(runs)} completed runs; seeds {', '.join(map(str, seeds))}; "
               f"epochs {', '.join(map(str, epochs))}; "
               f"validation {runs[0]['num_val']} samples, test {runs[0]['num_test']}. Test accuracy "
               "(unchanged by every calibrator here): "
               + ", ".join(f"{loss}/{noise} {_cell([s['test_acc'] for s in rs], 100)}"
                           for (loss, noise), rs in sorted(groups.items(), key=lambda kv: kv[0][::-1])
                           if loss == "ce") + ".")
    out.append("")
    order = sorted(groups, key=lambda k: (NOISES.index(k[1]) if k[1] in NOISES else 9, LOSSES.index(k[0])
                                          if k[0] in LOSSES else 99))
    for metric, label, scale in METRICS:
        out.append(f"**{label}**, mean ± std over seeds; columns: calibrator (ts temperature, vs vector, "
                   "ms matrix, dir Dirichlet, ca correctness-aware) and the validation labels that fitted it")
        out.append("")
        out.append("| loss | noise | " + " | ".join(name for name, _ in states) + " |")
        out.append("|:--|:--|" + "--:|" * len(states))
        for loss, noise in order:
            rs = groups[loss, noise]
            cells = [_cell([s.get(metric + suffix) for s in rs], scale) for _, suffix in states]
            out.append(f"| {loss} | {noise} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("**Fit time (s, mean over runs and both views) and fitted parameters**")
    out.append("")
    out.append("| calibrator | params | fit seconds | extra |")
    out.append("|:--|--:|--:|:--|")
    for name, key in KEYS.items():
        secs = [s.get(f"{key}_fit_seconds_{v}") for s in runs for v in ("clean", "noisy")]
        params = sorted({s.get(f"{key}_params") for s in runs})
        extra = ""
        if key == "ca":
            extra = f"views forward passes {_cell([s.get('ca_views_seconds') for s in runs], 1)} s"
        if key == "dir":
            lams = sorted({s.get(f"dir_reg_lambda_{v}") for s in runs for v in ("clean", "noisy")})
            extra = "lambda = mu chosen from " + ", ".join(f"{x:g}" for x in lams if x is not None)
        out.append(f"| {name} | {', '.join(map(str, params))} | {_cell(secs, 1)} | {extra} |")
    out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"comma list of {', '.join(PARTS)} (default: all but the GPU part)")
    parser.add_argument("--epochs", type=int, help="override every part's epochs")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_calibration")
    parser.add_argument("--table", type=Path, default=REPO / "benchmarks" / "calibration.md")
    parser.add_argument("--data-dir", default=os.environ.get("LOSSBENCH_DATA_DIR"))
    parser.add_argument("--tables-only", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="1 seed, 1 epoch, ce and focal, into --out/smoke")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            sys.exit(f"unknown part '{p}'; known: {', '.join(PARTS)}")
    losses, seeds = (("ce", "focal"), (0,)) if args.smoke else (LOSSES, (0, 1, 2))
    out = args.out / "smoke" if args.smoke else args.out
    log = []
    if not args.tables_only:
        for name in parts:
            part = PARTS[name]
            epochs = 1 if args.smoke else args.epochs or part["epochs"]
            cmd = command(part, out / name, losses, seeds, epochs, args.data_dir, args.smoke)
            print("$", shlex.join(cmd), flush=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            log.append(f"{name}: {time.perf_counter() - started:.0f} s wall, {cpu / 60:.1f} CPU-minutes")
            print(log[-1], flush=True)
    lines = [MARKER, "",
             f"Made by `python scripts/bench_calibration.py` ({datetime.now(timezone.utc):%Y-%m-%d}, "
             f"{platform.machine()} CPU, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
             "lossbench's default protocol: SGD lr 0.1, momentum 0.9, cosine schedule, batch 64)."]
    if log:
        lines += ["", "Cost of this invocation: " + "; ".join(log) + "."]
    shown = parts + [name for name in PARTS if name not in parts and PARTS[name].get("gpu")]
    for name in shown:
        lines += ["", *tables(out / name, PARTS[name]["title"])]
    if args.smoke:
        print("\n".join(lines))
        return
    args.table.parent.mkdir(parents=True, exist_ok=True)
    kept = args.table.read_text().split(MARKER)[0] if args.table.exists() else "# Post-hoc calibration\n\n"
    args.table.write_text(kept + "\n".join(lines) + "\n")
    print(f"wrote {args.table}")


if __name__ == "__main__":
    main()
