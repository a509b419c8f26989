"""Training-step time against torch's intra-op thread count, per model size (for ``trainer.threads=auto``).

For each model, one process times the same training steps (forward, backward,
SGD step on random device-resident batches) with 1 and with N threads,
alternating the two in every repeat so that machine noise hits both alike.
Prints the forward FLOPs per batch (what ``auto`` looks at), the median step
time per thread count and the ratio.

    OMP_NUM_THREADS=1 python scripts/bench_threads.py --threads 2 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lossbench.models.cnn import CNN4, CNN8
from lossbench.models.mlp import MLP
from lossbench.train.threads import SMALL_BATCH_FLOPS, forward_flops

CASES = {
    # name: (model factory, input shape, batch size)
    "mlp-digits": (lambda: MLP((64,), 10, hidden=(256, 256)), (64,), 64),
    "mlp-mnist": (lambda: MLP((1, 28, 28), 10, hidden=(256, 256)), (1, 28, 28), 64),
    "mlp-mnist-wide": (lambda: MLP((1, 28, 28), 10, hidden=(1024, 1024)), (1, 28, 28), 256),
    "cnn4-mnist": (lambda: CNN4((1, 28, 28), 10), (1, 28, 28), 128),
    "cnn8-cifar": (lambda: CNN8((3, 32, 32), 10), (3, 32, 32), 128),
}


def step_time(model, opt, x, y, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def spread(values: list[float], scale: float = 1.0) -> str:
    v = sorted(x * scale for x in values)
    return f"{statistics.median(v):.2f} [{v[0]:.2f}, {v[-1]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="the thread count compared with 1")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="about this long per timed block")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    print(f"torch {torch.__version__}; threshold {SMALL_BATCH_FLOPS / 1e6:.0f} MFLOP per batch (forward)")
    print("| model | batch | MFLOP per batch (forward) | 1 thread (ms/step, median [min, max]) "
          f"| {args.threads} threads (ms/step) | ratio {args.threads}/1 (median [min, max] of repeats) "
          "| auto picks |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in args.cases.split(","):
        make, shape, batch = CASES[name]
        torch.manual_seed(0)
        model = make()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
        flops = forward_flops(model, x)
        torch.set_num_threads(1)
        probe = step_time(model, opt, x, y, 3)
        steps = max(3, int(args.seconds / probe))
        times: dict[int, list[float]] = {1: [], args.threads: []}
        for _ in range(args.repeats):
            for threads in (1, args.threads):
                torch.set_num_threads(threads)
                times[threads].append(step_time(model, opt, x, y, steps))
        ratios = [m / o for o, m in zip(times[1], times[args.threads], strict=True)]
        picks = "1 thread" if flops < SMALL_BATCH_FLOPS else "the job's share of cores"
        print(f"| {name} | {batch} | {flops / 1e6:.1f} | {spread(times[1], 1e3)} "
              f"| {spread(times[args.threads], 1e3)} | {spread(ratios)} | {picks} |", flush=True)


if __name__ == "__main__":
    main()
