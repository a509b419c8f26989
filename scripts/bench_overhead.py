"""Overhead of lossbench's trainer against a minimal hand-written PyTorch loop.

Both train the same MLP (same initial weights, SGD, cosine schedule) on the
same device-resident tensors for the same epochs, and both evaluate validation
and test accuracy after every epoch. Repeats alternate between the two so that
machine noise hits both alike. Prints each time and the median ratio.

    python scripts/bench_overhead.py --dataset mnist --data-dir ../shared/data
    python scripts/bench_overhead.py --dataset digits --epochs 30
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="mnist", choices=["digits", "mnist"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

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
