"""Overhead of lossbench against hand-written PyTorch, in one process with the modes rotated.

``trainer`` (the default): lossbench's ``Trainer.fit`` against a minimal hand-written loop. Both
train the same MLP (same initial weights, SGD, cosine schedule) on the same device-resident
tensors for the same epochs, and both evaluate validation and test accuracy after every epoch.

``command``: the whole default ``lossbench run`` (a fresh interpreter: imports, config, checks,
training, evaluation, records) against ``scripts/overhead_handwritten.py``, the same job written
by hand, as wall and CPU time (user + system, from the children's rusage).

``sweep``: a basic (in-process) sweep of N small runs against one run, each further run's cost beyond
its training: wall, (sweep - one run - the sweep's extra training seconds) / (N - 1), training being
the runs' own train_seconds; CPU, (sweep - one run) / (N - 1) less the CPU time of the same training
written by hand (the digits MLP, 30 epochs, with validation and test accuracy each epoch), timed in
this process between the commands.

``fsync``: what the checkpoint's fsync costs per epoch (atomic writes of the default run's state).

``imports``: which heavy modules a default run imports (python -X importtime's cumulative times).

``dynamo``: whether torch.optim imports torch._dynamo, and what it costs, at each step of a fresh
process (import torch, build the optimizer, zero_grad, step) for SGD and Adam with foreach and
fused set either way.

Repeats alternate between the modes so that machine noise hits both alike. Prints each time
and the median ratio, with the machine's load and CPU model.

    python scripts/bench_overhead.py trainer --dataset mnist --data-dir ../shared/data
    python scripts/bench_overhead.py trainer --dataset digits --epochs 30
    python scripts/bench_overhead.py command --repeats 5
    python scripts/bench_overhead.py sweep --runs 16 --repeats 3
    python scripts/bench_overhead.py fsync
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lossbench.data import DATASETS
from lossbench.data.transforms import BatchTransform
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.reweight.base import Reweighter
from lossbench.train.trainer import Trainer


def make(split, seed: int, epochs: int, lr: float):
    torch.manual_seed(seed)
    model = MLP(split.input_shape, split.num_classes, hidden=(256, 256))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    return model, opt, sched


def plain_loop(split, epochs: int, batch_size: int, seed: int, lr: float) -> float:
    """What a researcher would write by hand: shuffle, slice, step, evaluate."""
    model, opt, sched = make(split, seed, epochs, lr)
    transform = BatchTransform(split)
    g = torch.Generator().manual_seed(seed)
    x, y = split.x_train, split.y_train_noisy
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(transform(x[idx], train=True)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            for xe, ye in ((split.x_val, split.y_val_noisy), (split.x_test, split.y_test)):
                (model(transform(xe, train=False)).argmax(1) == ye).float().mean().item()
    return time.perf_counter() - started


def lossbench_loop(split, epochs: int, batch_size: int, seed: int, lr: float) -> float:
    model, opt, sched = make(split, seed, epochs, lr)
    trainer = Trainer(epochs=epochs, batch_size=batch_size, eval_batch_size=10**9, device="cpu",
                      progress="none", checkpoint_every=0)
    started = time.perf_counter()
    trainer.fit(model, CrossEntropy(), Reweighter(), opt, sched, split, seed)
    return time.perf_counter() - started


REPO = Path(__file__).resolve().parents[1]
HANDWRITTEN = REPO / "scripts" / "overhead_handwritten.py"


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"CPU {model}, {os.cpu_count()} cores, load average {load} (shared machine), "
            f"torch {torch.__version__}")


def timed(command: list[str], cwd: Path, repo: Path = REPO) -> tuple[float, float]:
    """(wall, CPU) seconds of ``command`` run to its end, one thread; CPU is user + system of the child.
    ``repo``: the checkout whose lossbench runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo), "HYDRA_FULL_ERROR": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _report(times: dict[str, list[tuple[float, float]]], base: str, other: str) -> None:
    for name, ts in times.items():
        walls, cpus = [t[0] for t in ts], [t[1] for t in ts]
        print(f"{name:12s} wall median {statistics.median(walls):6.2f} s (min {min(walls):.2f})   "
              f"CPU median {statistics.median(cpus):6.2f} s (min {min(cpus):.2f})")
    for i, kind in enumerate(("wall", "CPU")):
        ratios = [b[i] / a[i] for a, b in zip(times[base], times[other], strict=True)]
        print(f"ratio {other}/{base} {kind}: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


def command_mode(repeats: int, extra: list[str], against: Path | None = None,
                 temperature: bool = False) -> None:
    """The default `lossbench run` against the hand-written script (and ``against``'s lossbench, another
    checkout), rotating the order."""
    print(machine())
    times: dict[str, list[tuple[float, float]]] = {"handwritten": [], "lossbench": []}
    if against is not None:
        times["other"] = []
    modes = list(times)
    with tempfile.TemporaryDirectory(prefix="lossbench-overhead-") as tmp:
        for r in range(repeats + 1):  # the first round warms the page cache and is not counted
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            for mode in order:
                if mode == "handwritten":
                    t = timed([sys.executable, str(HANDWRITTEN), *(["--temperature"] if temperature else [])],
                              Path(tmp))
                else:
                    t = timed([sys.executable, "-m", "lossbench", "run", f"hydra.run.dir={tmp}/{mode}{r}",
                               "trainer.progress=none", *extra], Path(tmp),
                              REPO if mode == "lossbench" else against)
                if r:
                    times[mode].append(t)
        summary = json.loads(Path(tmp, f"lossbench{repeats}", "summary.json").read_text())
    print(f"lossbench run {' '.join(extra)}: {summary['epochs']} epochs, training "
          f"{summary['train_seconds']:.2f} s, test acc {summary['test_acc']:.4f}; {repeats} repeats")
    if against is not None:
        print(f"other: the lossbench of {against}")
    if temperature:
        print("handwritten: with temperature scaling (scipy), as the default run calibrates")
    for mode in modes[1:]:
        _report({k: times[k] for k in ("handwritten", mode)}, "handwritten", mode)


def sweep_mode(runs: int, repeats: int, extra: list[str]) -> None:
    """A basic sweep of ``runs`` runs against one run: each further run's cost beyond its training."""
    print(machine())
    seeds = ",".join(str(i) for i in range(runs))
    rows = []
    digits = DATASETS.get("digits")()
    with tempfile.TemporaryDirectory(prefix="lossbench-overhead-") as tmp:
        for r in range(repeats + 1):
            order = ("one", "sweep") if r % 2 else ("sweep", "one")
            measured = {}
            started = time.process_time()
            plain_loop(digits, 30, 64, r, 0.1)
            measured["handwritten training CPU"] = time.process_time() - started
            for mode in order:
                folder = Path(tmp, f"{mode}{r}")
                args = (["-m", f"seed={seeds}", f"hydra.sweep.dir={folder}"] if mode == "sweep"
                        else [f"hydra.run.dir={folder}"])
                t = timed([sys.executable, "-m", "lossbench", "run", "trainer.progress=none", *args, *extra],
                          Path(tmp))
                summaries = [json.loads(p.read_text()) for p in folder.rglob("summary.json")]
                train = sum(s["train_seconds"] for s in summaries)
                measured[mode] = (t, train, len(summaries))
            if r:
                rows.append(measured)
    for kind, i in (("wall", 0), ("CPU", 1)):
        if kind == "wall":
            per_run = [((m["sweep"][0][i] - m["one"][0][i]) - (m["sweep"][1] - m["one"][1])) / (runs - 1)
                       for m in rows]
        else:
            per_run = [(m["sweep"][0][i] - m["one"][0][i]) / (runs - 1) - m["handwritten training CPU"]
                       for m in rows]
        sweep = statistics.median(m["sweep"][0][i] for m in rows)
        one = statistics.median(m["one"][0][i] for m in rows)
        print(f"{kind}: sweep of {runs} median {sweep:.2f} s, one run {one:.2f} s; each further run "
              f"beyond its training: median {statistics.median(per_run):.3f} s (min {min(per_run):.3f}, "
              f"max {max(per_run):.3f})")
    train = statistics.median(m["one"][1] for m in rows)
    hand = statistics.median(m["handwritten training CPU"] for m in rows)
    print(f"training seconds of one run (its train_seconds, wall): {train:.3f}; the same training by hand: "
          f"{hand:.3f} s CPU; {repeats} repeats; overrides: {' '.join(extra) or '(none)'}")


def fsync_mode(repeats: int) -> None:
    """The default run's per-epoch checkpoint written atomically with and without fsync, alternating."""
    from lossbench.train.checkpoint import save_checkpoint

    print(machine())
    model, opt, sched = make(DATASETS.get("digits")(), 0, 30, 0.1)
    model(torch.zeros(2, 64)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    times: dict[str, list[float]] = {"fsync": [], "no fsync": []}
    with tempfile.TemporaryDirectory(prefix="lossbench-overhead-", dir=".") as tmp:
        path = Path(tmp) / "checkpoint.pt"
        for r in range(repeats):
            for sync in ((True, False) if r % 2 else (False, True)):
                started = time.perf_counter()
                save_checkpoint(path, state, sync=sync)
                times["fsync" if sync else "no fsync"].append(time.perf_counter() - started)
        size = path.stat().st_size
    print(f"checkpoint of the default run: {size / 1e3:.0f} kB, {repeats} writes each, "
          f"on {Path('.').absolute()}")
    for name, ts in times.items():
        print(f"{name:9s} median {1e3 * statistics.median(ts):7.2f} ms  min {1e3 * min(ts):7.2f}  "
              f"max {1e3 * max(ts):7.2f}")


DYNAMO_PROBE = """
import sys, time, json
t = time.process_time()
import torch
out = {"import torch": [time.process_time() - t, "torch._dynamo" in sys.modules]}
model = torch.nn.Linear(64, 10)
t = time.process_time()
opt = getattr(torch.optim, sys.argv[1])(model.parameters(), lr=0.1, **json.loads(sys.argv[2]))
out["build the optimizer"] = [time.process_time() - t, "torch._dynamo" in sys.modules]
model(torch.randn(8, 64)).sum().backward()
t = time.process_time()
opt.zero_grad(set_to_none=False)
out["zero_grad"] = [time.process_time() - t, "torch._dynamo" in sys.modules]
t = time.process_time()
opt.step()
out["step"] = [time.process_time() - t, "torch._dynamo" in sys.modules]
print(json.dumps(out))
"""


def dynamo_mode() -> None:
    """When torch.optim imports torch._dynamo (each variant in a fresh process)."""
    print(machine())
    variants = [("SGD", {}), ("SGD", {"foreach": False}), ("SGD", {"foreach": True}),
                ("SGD", {"fused": True}),
                ("Adam", {}), ("Adam", {"foreach": False}), ("Adam", {"fused": True})]
    for name, kwargs in variants:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", DYNAMO_PROBE, name, json.dumps(kwargs)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} {kwargs}: failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        steps = json.loads(proc.stdout)
        first = next((k for k, (_, imported) in steps.items() if imported), "never")
        cost = "; ".join(f"{k} {v[0]:.2f} s" for k, v in steps.items())
        settings = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
        print(f"{name}({settings}): torch._dynamo imported at: {first}   (CPU: {cost})")


def imports_mode(extra: list[str]) -> None:
    """The heaviest imports of a default run (cumulative microseconds, python -X importtime)."""
    print(machine())
    with tempfile.TemporaryDirectory(prefix="lossbench-overhead-") as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lossbench", "run",
                               f"hydra.run.dir={tmp}/run", "trainer.progress=none", *extra],
                              cwd=tmp, env=env, capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and len(name) - len(name.lstrip()) <= 2:
                rows.append((int(cumulative), name.strip()))
    for cumulative, name in sorted(rows, reverse=True)[:15]:
        print(f"{cumulative / 1e6:6.2f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="trainer",
                        choices=["trainer", "command", "sweep", "fsync", "imports", "dynamo"])
    parser.add_argument("overrides", nargs="*", help="command, sweep, imports: overrides for every run")
    parser.add_argument("--dataset", default="mnist", choices=["digits", "mnist"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=16, help="sweep: the number of runs")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--against", type=Path, help="command: also time this checkout's lossbench (e.g. "
                        "an older commit, from git archive)")
    parser.add_argument("--temperature", action="store_true",
                        help="command: the hand-written script fits a temperature (scipy), as the run does")
    args = parser.parse_args()
    if args.mode == "command":
        return command_mode(args.repeats, args.overrides, args.against, args.temperature)
    if args.mode == "sweep":
        return sweep_mode(args.runs, args.repeats, args.overrides)
    if args.mode == "fsync":
        return fsync_mode(max(args.repeats, 20))
    if args.mode == "imports":
        return imports_mode(args.overrides)
    if args.mode == "dynamo":
        return dynamo_mode()

    builder = DATASETS.get(args.dataset)
    split = builder(data_dir=args.data_dir) if args.dataset != "digits" else builder()
    times: dict[str, list[float]] = {"plain": [], "lossbench": []}
    lossbench_loop(split, 1, args.batch_size, 0, args.lr)  # warm-up: allocator, kernels
    for r in range(args.repeats):
        times["plain"].append(plain_loop(split, args.epochs, args.batch_size, r, args.lr))
        times["lossbench"].append(lossbench_loop(split, args.epochs, args.batch_size, r, args.lr))
    ratios = [b / a for a, b in zip(times["plain"], times["lossbench"], strict=True)]
    print(f"dataset={args.dataset} train={len(split.y_train)} epochs={args.epochs} "
          f"batch={args.batch_size} threads={torch.get_num_threads()} repeats={args.repeats}")
    for name, ts in times.items():
        print(f"{name:10s} median {statistics.median(ts):7.3f} s  min {min(ts):7.3f}  max {max(ts):7.3f}")
    print(f"ratio lossbench/plain: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
