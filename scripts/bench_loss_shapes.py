"""Benchmarks of the losses that need more than (logits, target): accuracy and calibration of OKO,
AnyLoss and LegendreTron against CE and calibration losses, and Cut Cross-Entropy's memory and time.

    python scripts/bench_loss_shapes.py accuracy --dataset digits --epochs 30 --out outputs/shapes_digits
    python scripts/bench_loss_shapes.py accuracy --dataset fashion_mnist --epochs 8 --batch-size 128 \\
        --data-dir ../shared/data --out outputs/shapes_fmnist
    python scripts/bench_loss_shapes.py report outputs/shapes_digits outputs/shapes_fmnist
    python scripts/bench_loss_shapes.py memory --classes 10000,50000,200000       # CPU paths
    python scripts/bench_loss_shapes.py memory --device cuda --paths materialised,chunked,cce

``accuracy`` runs `lossbench run -m` sweeps (one process each, Hydra's basic launcher) into --out;
``report`` renders Markdown tables from their summary.json files only. ``memory`` times the loss's
forward and backward, X [B, D] @ W^T [D, C] + b then the per-sample loss, for each path and class
count, each measurement in a fresh subprocess so that its peak memory is its own: on CPU the peak
resident set size above the inputs (ru_maxrss), on CUDA torch.cuda.max_memory_allocated above the
inputs; times are medians of --reps repetitions after one warm-up, in that subprocess.
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

# (sweep name, overrides): each is one multirun over noise x seed.
SWEEPS = {
    "digits": [
        ("main", ["loss=ce,focal,flsd53,label_smoothing,poly1,oko,legendretron"]),
        ("anyloss", ["loss=anyloss", "loss.metric=f_beta,balanced_accuracy"]),
        ("oko_soft", ["loss=oko", "loss.targets=soft"]),
        ("lt_data_init", ["loss=legendretron", "loss.actnorm_init=data"]),
        ("anyloss_half", ["loss=anyloss", "loss.metric=f_beta,balanced_accuracy", "loss.threshold=0.5"]),
    ],
    "fashion_mnist": [
        ("main", ["loss=ce,focal,label_smoothing,oko,legendretron"]),
        ("anyloss", ["loss=anyloss", "loss.metric=f_beta,balanced_accuracy"]),
    ],
}


def accuracy(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = []
    for name, overrides in SWEEPS[args.dataset]:
        command = [sys.executable, "-m", "lossbench", "run", "-m", *overrides, f"dataset={args.dataset}",
                   f"noise={args.noise}", f"seed={args.seeds}", f"trainer.epochs={args.epochs}",
                   f"trainer.batch_size={args.batch_size}", "trainer.checkpoint_every=0",
                   "trainer.progress=none", f"hydra.sweep.dir={out / name}"]
        if args.data_dir:
            command.append(f"data_dir={args.data_dir}")
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        log.append({"sweep": name, "command": shlex.join(["lossbench", *command[3:]]),
                    "wall_s": time.perf_counter() - started, "children_cpu_s": cpu})
        (out / "commands.json").write_text(json.dumps(log, indent=1))


def _row(summary: dict) -> str:
    """The loss plus its swept loss.* overrides, e.g. `anyloss loss.metric=f_beta`."""
    extra = [o for o in summary.get("overrides", []) if o.startswith("loss.")]
    return " ".join([summary["loss"], *extra])


def _cell(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "n/a"
    scaled = [v * scale for v in values]
    std = statistics.stdev(scaled) if len(scaled) > 1 else 0.0
    return f"{statistics.fmean(scaled):.1f} ± {std:.1f}"


def report(args: argparse.Namespace) -> None:
    sections = []
    for folder in map(Path, args.folders):
        summaries = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*/summary.json"))]
        if not summaries:
            continue
        runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for s in summaries:
            runs[(_row(s), s["noise"])].append(s)
        noises = sorted({s["noise"] for s in summaries}, key=lambda n: (n != "clean", n))
        rows = list(dict.fromkeys(_row(s) for s in summaries))
        commands = json.loads((folder / "commands.json").read_text()) if (folder / "commands.json").exists() else []
        first = summaries[0]
        prov = first.get("provenance", {})
        epochs = first["config"]["trainer"]["epochs"]
        batch = first["config"]["trainer"]["batch_size"]
        lines = [f"### {first['dataset']}: {epochs} epochs, batch {batch}", "",
                 f"git {str(prov.get('git_commit'))[:10]}{' (dirty tree)' if prov.get('git_dirty') else ''}, "
                 f"torch {prov.get('torch')}, {platform.machine()} CPU, 1 thread per run. Commands "
                 f"(CPU time of all the sweep's runs, startup included):", "", "```"]
        lines += [f"{c['command']}   # {c['children_cpu_s'] / 60:.1f} CPU-min" for c in commands] + ["```", ""]
        header = "| loss | " + " | ".join(f"{n} acc | {n} ECE | {n} ECE after TS (clean) | {n} NLL"
                                           for n in noises) + " | runs |"
        lines += [header, "|" + "---|" * (2 + 4 * len(noises))]
        for row in rows:
            cells = []
            count = 0
            for n in noises:
                done = [s for s in runs.get((row, n), []) if s.get("status") == "completed"]
                count += len(done)
                cells += [_cell([s["final_test_acc"] for s in done]), _cell([s["test_ece"] for s in done]),
                          _cell([s["test_ece_ts_clean"] for s in done]),
                          _cell([s["test_nll"] for s in done], scale=1.0).replace(".", ".", 1)]
            failed = sum(1 for n in noises for s in runs.get((row, n), []) if s.get("status") != "completed")
            label = "`" + row.replace(" ", "` `") + "`"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {count}{f' ({failed} not completed)' if failed else ''} |")
        sections.append("\n".join(lines))
    print("\n\n".join(sections))


MEMORY_PROBE = r'''
import json, resource, statistics, sys, time
import torch
path, c, b, d, reps, device, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
torch.manual_seed(0)
dev = torch.device(device)
e = torch.randn(b, d, device=dev, requires_grad=True)
head = torch.nn.Linear(d, c).to(dev)
y = torch.randint(c, (b,), device=dev)
from lossbench.losses.cce import CutCrossEntropy
def step():
    if path == "materialised":
        loss = torch.nn.functional.cross_entropy(head(e), y, reduction="none")
    else:
        backend = {"chunked": "chunked", "cce": "cce", "torch_compile": "torch_compile"}[path]
        loss, _ = CutCrossEntropy(backend=backend, chunk=chunk).head_loss(e, head, y)
    loss.mean().backward()
    e.grad = None
    head.weight.grad = None
    head.bias.grad = None
def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()
# the inputs and one gradient of W (every path needs it) are the baseline
head.weight.grad = torch.zeros_like(head.weight)
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
head.weight.grad = None
if dev.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base_cuda = torch.cuda.memory_allocated()
step(); sync()  # warm-up (compilation, autotuning)
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
times = []
for _ in range(reps):
    sync(); t = time.perf_counter(); step(); sync(); times.append(time.perf_counter() - t)
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024 if dev.type == "cpu" else \
    torch.cuda.max_memory_allocated() - base_cuda
print(json.dumps({"path": path, "classes": c, "batch": b, "dim": d, "device": device, "median_s": statistics.median(times),
                  "min_s": min(times), "max_s": max(times), "reps": reps, "peak_bytes": peak,
                  "logits_bytes": b * c * 4}))
'''


def memory(args: argparse.Namespace) -> None:
    rows = []
    for c in map(int, args.classes.split(",")):
        for path in args.paths.split(","):
            proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, path, str(c), str(args.batch), str(args.dim),
                                   str(args.reps), args.device, str(args.chunk)], cwd=REPO, capture_output=True,
                                  text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
            if proc.returncode != 0:
                rows.append({"path": path, "classes": c, "error": proc.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\nB = {args.batch}, D = {args.dim}, chunk = {args.chunk}, {args.reps} reps, device {args.device}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| classes | path | forward + backward, median (min-max) | peak memory above the inputs | "
          "logits alone |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['classes']:,} | {r['path']} | failed: {r['error']} | | |")
            continue
        print(f"| {r['classes']:,} | {r['path']} | {r['median_s'] * 1e3:.0f} ms ({r['min_s'] * 1e3:.0f}-"
              f"{r['max_s'] * 1e3:.0f}) | {r['peak_bytes'] / 2**20:.1f} MiB | {r['logits_bytes'] / 2**20:.1f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--dataset", choices=sorted(SWEEPS), default="digits")
    acc.add_argument("--epochs", type=int, default=30)
    acc.add_argument("--batch-size", type=int, default=64)
    acc.add_argument("--noise", default="clean,sym40")
    acc.add_argument("--seeds", default="0,1,2")
    acc.add_argument("--data-dir", default=None)
    acc.add_argument("--out", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("folders", nargs="+")
    mem = sub.add_parser("memory")
    mem.add_argument("--classes", default="10000,50000,200000")
    mem.add_argument("--paths", default="materialised,chunked,torch_compile")
    mem.add_argument("--batch", type=int, default=256)
    mem.add_argument("--dim", type=int, default=256)
    mem.add_argument("--chunk", type=int, default=4096)
    mem.add_argument("--reps", type=int, default=5)
    mem.add_argument("--device", default="cpu")
    mem.add_argument("--json", default=None)
    args = parser.parse_args()
    {"accuracy": accuracy, "report": report, "memory": memory}[args.command](args)


if __name__ == "__main__":
    main()
