"""Benchmarks of the losses that need more than (logits, target): accuracy and calibration of OKO,
AnyLoss and LegendreTron against CE and calibration losses, and Cut Cross-Entropy's memory and time.

    python scripts/bench_loss_shapes.py accuracy --dataset digits --epochs 30 --out outputs/shapes_digits
    python scripts/bench_loss_shapes.py accuracy --dataset fashion_mnist --epochs 8 --batch-size 128 \\
        --data-dir ../shared/data --out outputs/shapes_fmnist
    python scripts/bench_loss_shapes.py report outputs/shapes_digits outputs/shapes_fmnist
    python scripts/bench_loss_shapes.py memory --classes 10000,50000,200000       # CPU paths
    python scripts/bench_loss_shapes.py memory --device cuda --paths materialised,chunked,cce

``accuracy`` runs `lossbench run -m` sweeps (one process each, Hydra's basic launcher) into --out;
``report`` renders Markdown tables from their summary.json files only. ``memory`` measures the
loss's forward and backward, X [B, D] @ W^T [D, C] + b then the per-sample loss, for each path and
class count: its peak memory in a fresh subprocess per path (CPU: peak resident set size, ru_maxrss;
CUDA: torch.cuda.max_memory_allocated; both above the inputs and one gradient of W and b), and its
time with every path interleaved in one subprocess per class count (medians of --reps repetitions
after a warm-up each), so that time ratios come from one process.
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
        ("main", ["loss=ce,focal,flsd53,label_smoothing,poly1,squentropy,oko,legendretron"]),
        ("anyloss", ["loss=anyloss", "loss.metric=f_beta,balanced_accuracy"]),
        ("oko_soft", ["loss=oko", "loss.targets=soft"]),
        ("lt_data_init", ["loss=legendretron", "loss.actnorm_init=data"]),
        ("anyloss_half", ["loss=anyloss", "loss.metric=f_beta,balanced_accuracy", "loss.threshold=0.5"]),
    ],
    "fashion_mnist": [
        ("main", ["loss=ce,focal,flsd53,label_smoothing,poly1,squentropy,oko,legendretron"]),
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
        log = folder / "commands.json"
        commands = json.loads(log.read_text()) if log.exists() else []
        first = summaries[0]
        prov = first.get("provenance", {})
        epochs = first["config"]["trainer"]["epochs"]
        batch = first["config"]["trainer"]["batch_size"]
        lines = [f"### {first['dataset']}: {epochs} epochs, batch {batch}", "",
                 f"git {str(prov.get('git_commit'))[:10]}{' (dirty tree)' if prov.get('git_dirty') else ''}, "
                 f"torch {prov.get('torch')}, {platform.machine()} CPU, 1 thread per run. Commands "
                 f"(CPU time of all the sweep's runs, startup included):", "", "```"]
        lines += [f"{c['command']}   # {c['children_cpu_s'] / 60:.1f} CPU-min" for c in commands]
        lines += ["```", ""]
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
                          _cell([s["test_nll"] for s in done], scale=1.0)]
            failed = sum(1 for n in noises for s in runs.get((row, n), []) if s.get("status") != "completed")
            label = "`" + row.replace(" ", "` `") + "`"
            note = f" ({failed} not completed)" if failed else ""
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {count}{note} |")
        sections.append("\n".join(lines))
    print("\n\n".join(sections))


def probe(args: argparse.Namespace) -> None:
    """One measurement in this process (called as a subprocess by ``memory``); prints one JSON line."""
    import torch

    from lossbench.losses.cce import CutCrossEntropy

    paths = args.paths.split(",")
    torch.manual_seed(0)
    dev = torch.device(args.device)
    e = torch.randn(args.batch, args.dim, device=dev, requires_grad=True)
    head = torch.nn.Linear(args.dim, args.classes).to(dev)
    y = torch.randint(args.classes, (args.batch,), device=dev)
    losses = {p: CutCrossEntropy(backend=p, chunk=args.chunk) for p in paths if p != "materialised"}

    def step(path: str) -> None:
        if path == "materialised":
            loss = torch.nn.functional.cross_entropy(head(e), y, reduction="none")
        else:
            loss, _ = losses[path].head_loss(e, head, y)
        loss.mean().backward()
        e.grad = head.weight.grad = head.bias.grad = None

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def used() -> int:
        if dev.type == "cuda":
            return torch.cuda.memory_allocated()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    if args.mode == "memory":  # one path; the baseline holds the inputs and one gradient of W and b
        small = torch.nn.Linear(args.dim, 8).to(dev)  # a warm-up that leaves no large block behind:
        full, head = head, small                      # libraries, kernels, compilation load here
        y_full, y = y, y % 8
        step(paths[0])
        head, y = full, y_full
        head.weight.grad, head.bias.grad = torch.zeros_like(head.weight), torch.zeros_like(head.bias)
        sync()
        base = used()
        head.weight.grad = head.bias.grad = None
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step(paths[0])
        sync()
        peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else used()
        print(json.dumps({"path": paths[0], "peak_bytes": peak - base}))
        return
    for path in paths:  # warm-up: compilation, autotuning
        step(path)
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(args.reps):
        for path in paths:
            sync()
            started = time.perf_counter()
            step(path)
            sync()
            times[path].append(time.perf_counter() - started)
    print(json.dumps({path: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
                      for path, v in times.items()}))


def _probe(args: argparse.Namespace, mode: str, paths: str, c: int) -> dict:
    command = [sys.executable, __file__, "probe", mode, paths, str(c), "--batch", str(args.batch), "--dim",
               str(args.dim), "--reps", str(args.reps), "--device", args.device, "--chunk", str(args.chunk)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(args: argparse.Namespace) -> None:
    """Peak memory of each path in its own process; times of all paths interleaved in one process."""
    paths = args.paths.split(",")
    rows = []
    for c in map(int, args.classes.split(",")):
        times = _probe(args, "time", args.paths, c)
        for path in paths:
            row = {"classes": c, "path": path, "logits_bytes": args.batch * c * 4,
                   **_probe(args, "memory", path, c), **times.get(path, {"error": times.get("error")})}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\nB = {args.batch}, D = {args.dim}, chunk = {args.chunk}, {args.reps} reps, "
          f"device {args.device}, "
          f"torch {__import__('torch').__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| classes | path | forward + backward, median (min-max) | time / materialised | "
          "peak memory above the inputs | the logits alone |\n|---|---|---|---|---|---|")
    for r in rows:
        if r.get("error") or "median_s" not in r:
            print(f"| {r['classes']:,} | {r['path']} | failed: {r.get('error')} | | | |")
            continue
        ref = next((q for q in rows if q["classes"] == r["classes"] and q["path"] == "materialised"
                    and "median_s" in q), None)
        ratio = f"{r['median_s'] / ref['median_s']:.2f}" if ref else "n/a"
        peak = f"{r['peak_bytes'] / 2**20:.1f} MiB" if "peak_bytes" in r else "n/a"
        print(f"| {r['classes']:,} | {r['path']} | {r['median_s'] * 1e3:.0f} ms ({r['min_s'] * 1e3:.0f}-"
              f"{r['max_s'] * 1e3:.0f}) | {ratio} | {peak} | {r['logits_bytes'] / 2**20:.1f} MiB |")


def link_init(args: argparse.Namespace) -> None:
    """LegendreTron's ActNorm init (identity against the official data-dependent one) on digits:
    MLP 64-256-256-10, batch 64, plain loop, test accuracy through the learned link."""
    import torch

    from lossbench.data import DATASETS
    from lossbench.data.transforms import BatchTransform
    from lossbench.losses.learned import LegendreTron
    from lossbench.models.mlp import MLP
    from lossbench.train.objective import parameter_groups

    split = DATASETS.get("digits")()
    transform = BatchTransform(split)
    x, y, x_test = transform(split.x_train, train=False), split.y_train, transform(split.x_test, train=False)
    print(f"digits: {len(y)} train / {len(split.y_test)} test, {args.epochs} epochs, batch 64, "
          f"seeds {args.seeds}, torch {torch.__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| actnorm_init | optimizer | test acc (mean ± sd) | link w0 after training (seed 0) |\n"
          "|---|---|---|---|")
    for init in ("identity", "data"):
        for opt_name, lr in (("sgd", 0.1), ("adam", 1e-3)):
            accs, w0 = [], None
            for seed in map(int, args.seeds.split(",")):
                torch.manual_seed(seed)
                model = MLP(split.input_shape, split.num_classes, hidden=[256, 256])
                loss = LegendreTron(num_classes=split.num_classes, actnorm_init=init)
                groups = parameter_groups(model, loss)
                opt = (torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4) if opt_name == "sgd"
                       else torch.optim.Adam(groups, lr=lr))
                for _ in range(args.epochs):
                    for idx in torch.randperm(len(y)).split(64):
                        opt.zero_grad()
                        loss(model(x[idx]), y[idx]).mean().backward()
                        opt.step()
                with torch.no_grad():
                    pred = loss.prediction_logits(model.eval()(x_test)).argmax(1)
                accs.append(float((pred == split.y_test).float().mean()))
                w0 = float(loss.potentials[0].w0.detach()) if w0 is None else w0
            print(f"| {init} | {opt_name} lr {lr:g} | {_cell(accs)} | {w0:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    mem.add_argument("--json", default=None)
    link = sub.add_parser("link_init")
    link.add_argument("--epochs", type=int, default=10)
    link.add_argument("--seeds", default="0,1,2")
    one = sub.add_parser("probe")
    one.add_argument("mode", choices=["memory", "time"])
    one.add_argument("paths")
    one.add_argument("classes", type=int)
    for sp in (mem, one):
        sp.add_argument("--batch", type=int, default=256)
        sp.add_argument("--dim", type=int, default=256)
        sp.add_argument("--chunk", type=int, default=4096)
        sp.add_argument("--reps", type=int, default=5)
        sp.add_argument("--device", default="cpu")
    args = parser.parse_args()
    {"accuracy": accuracy, "report": report, "memory": memory, "probe": probe,
     "link_init": link_init}[args.command](args)


if __name__ == "__main__":
    main()
