"""Training throughput: lossbench's device-resident path next to a plain torchvision DataLoader.

For each model, in one process, on the same data and device, with the same
batch size, precision, memory format and optimizer:

- lossbench: ``lossbench.train.trainer.Trainer.fit`` on the split held on the
  device (batches are index slices, augmentation is tensor work on the device);
- DataLoader: a torch ``Dataset`` over the same uint8 tensors in host memory,
  torchvision ``transforms.v2`` per sample (RandomCrop(padding=4),
  RandomHorizontalFlip, ToDtype, Normalize, as the split's augmentation asks),
  a ``DataLoader`` with ``--workers`` processes, batches copied to the device.

Timed spans are training only (no evaluation: the timing split has no val or
test set), end at a device synchronization, and follow ``--warmup-batches``
untimed steps (cuDNN autotuning, torch.compile). Repeats alternate the
pipelines so that machine noise hits both alike. Samples/s is measured;
s/epoch is the full training set divided by samples/s (so ``--limit`` runs,
which time a prefix of the data, extrapolate it; the table says so).

    python scripts/bench_throughput.py --dataset mnist --data-dir ../shared/data --models mlp,cnn4
    python scripts/bench_throughput.py --device cuda --dataset synthetic_cifar10 \\
        --models resnet18,cnn8 --precision bf16 --channels-last --batch-size 512 --workers 8

Results are printed and appended as a Markdown section to ``--output``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from lossbench.core.sink import Sink
from lossbench.data.split import Split
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.reweight.base import NoReweighting
from lossbench.train.trainer import Trainer, set_determinism

CONF = resources.files("lossbench.conf")
# synthetic datasets are timed at the size of the real training set they stand for
SYNTHETIC_TRAIN = 50_000


def load_split(name: str, data_dir: str) -> Split:
    """The dataset as `lossbench run dataset=NAME` builds it, reduced to its training set."""
    cfg = OmegaConf.load(CONF / "dataset" / f"{name}.yaml")
    if "data_dir" in cfg:
        cfg.data_dir = data_dir
    if cfg._target_.endswith(".synthetic") and "image_shape" in cfg and cfg.image_shape is not None:
        cfg.num_samples, cfg.test_size, cfg.val_size = SYNTHETIC_TRAIN, 0, 0
    split = instantiate(cfg)
    return timing_split(split, len(split.y_train))


def timing_split(split: Split, n: int) -> Split:
    """The first ``n`` training samples, with empty validation and test sets (nothing is evaluated)."""
    x, y = split.x_train[:n], split.y_train[:n]
    return Split(
        name=split.name, num_classes=split.num_classes,
        x_train=x, y_train=y, x_val=x[:0], y_val=y[:0], x_test=x[:0], y_test=y[:0],
        train_idx=torch.arange(n), val_idx=torch.arange(0),
        mean=split.mean, std=split.std, augment=split.augment,
    )


def build_model(name: str, split: Split, seed: int) -> torch.nn.Module:
    """``mlp``, ``resnet18``, ... from conf/model; ``timm:ARCH`` for model=timm model.name=ARCH."""
    config, _, arch = name.partition(":")
    cfg = OmegaConf.load(CONF / "model" / f"{config}.yaml")
    if arch:
        cfg.name = arch
    torch.manual_seed(seed)
    return instantiate(cfg)(split.input_shape, split.num_classes)


def optimizer_for(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_lossbench(args, model_name: str, split: Split, device: torch.device) -> list[float]:
    """Seconds per epoch of Trainer.fit on the device-resident split."""
    trainer = Trainer(
        epochs=args.epochs, batch_size=args.batch_size, device=str(device), precision=args.precision,
        channels_last=args.channels_last, compile=args.compile, deterministic=args.deterministic,
        progress="none", checkpoint_every=0,
    )
    set_determinism(args.seed, args.deterministic)
    model = trainer.prepare_model(build_model(model_name, split, args.seed))
    optimizer = optimizer_for(model)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    split = split.to(device)
    if args.warmup_batches:
        warm = timing_split(split, min(len(split.y_train), args.warmup_batches * args.batch_size))
        replace(trainer, epochs=1).fit(model, CrossEntropy(), NoReweighting(), optimizer, scheduler, warm,
                                       args.seed)
    clock = EpochClock(device)
    synchronize(device)
    started = time.perf_counter()
    trainer.fit(model, CrossEntropy(), NoReweighting(), optimizer, scheduler, split, args.seed, sinks=[clock])
    return [b - a for a, b in zip([started, *clock.stamps[:-1]], clock.stamps, strict=True)]


class EpochClock(Sink):
    """Records the time at the end of each epoch, after the device has finished its work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []

    def epoch(self, record: dict) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


class PerSampleImages(Dataset):
    """What a plain pipeline reads: one (image, label) at a time, transformed on the host."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        item = self.x[i]
        return (self.transform(item) if self.transform is not None else item), self.y[i]


def host_transform(split: Split):
    """torchvision transforms.v2 equivalent of the split's on-device preprocessing."""
    from torchvision.transforms import v2

    if split.x_train.dtype != torch.uint8:
        return None
    steps = []
    if split.augment in ("crop", "crop_flip"):
        steps.append(v2.RandomCrop(tuple(split.input_shape[1:]), padding=4))
    if split.augment in ("flip", "crop_flip"):
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if split.mean is not None:
        steps.append(v2.Normalize(list(split.mean), list(split.std)))
    return v2.Compose(steps)


def time_dataloader(args, model_name: str, split: Split, device: torch.device, workers: int) -> list[float]:
    """Seconds per epoch of a standard DataLoader loop training the same model."""
    set_determinism(args.seed, args.deterministic)
    model = build_model(model_name, split, args.seed).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if args.compile else model
    optimizer = optimizer_for(model)
    dtype = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    dataset = PerSampleImages(split.x_train, split.y_train, host_transform(split))
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
    )

    def run(max_batches: int | None) -> None:
        model.train()
        for i, (xb, yb) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if args.channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = F.cross_entropy(step_model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        synchronize(device)

    if args.warmup_batches:
        run(args.warmup_batches)
    seconds = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        run(None)
        seconds.append(time.perf_counter() - started)
    return seconds


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"


def summarize(seconds: list[float], n_timed: int, n_full: int) -> dict:
    rates = [n_timed / s for s in seconds]
    mean_rate = statistics.mean(rates)
    return {
        "rate": mean_rate,
        "rate_sd": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "epoch": n_full / mean_rate,
        "epoch_min": n_full / max(rates),
        "epoch_max": n_full / min(rates),
        "n": len(rates),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn4",
                        help="comma list of conf/model names (mlp, cnn4, resnet18, ...) or timm:ARCH")
    parser.add_argument("--dataset", default="mnist",
                        help="a conf/dataset name: digits, mnist, cifar10, synthetic_cifar10, ...")
    parser.add_argument("--data-dir", default=os.environ.get("LOSSBENCH_DATA_DIR", "data"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per repeat")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", default="0,2", help="comma list of DataLoader num_workers to time")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "16-mixed"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic kernels (lossbench's run default); off = cudnn.benchmark")
    parser.add_argument("--limit", type=int, default=0,
                        help="time only the first N training samples; s/epoch is then extrapolated")
    parser.add_argument("--warmup-batches", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of the training process (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/throughput.md",
                        help="Markdown file to append the results to; - for none")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    workers = [int(w) for w in args.workers.split(",") if w != ""]
    full = load_split(args.dataset, args.data_dir)
    split = timing_split(full, args.limit) if args.limit else full
    n_full, n_timed = len(full.y_train), len(split.y_train)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows = []
    for model_name in args.models.split(","):
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            times.setdefault("lossbench (device-resident)", []).extend(
                time_lossbench(args, model_name, split, device))
            for w in workers:
                times.setdefault(f"DataLoader, {w} workers", []).extend(
                    time_dataloader(args, model_name, split, device, w))
        for pipeline, seconds in times.items():
            row = {"model": model_name, "pipeline": pipeline, **summarize(seconds, n_timed, n_full)}
            rows.append(row)
            print(f"{model_name:>18}  {pipeline:<28} {row['rate']:>10.0f} samples/s  "
                  f"{row['epoch']:>8.2f} s/epoch", flush=True)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    command = "python scripts/bench_throughput.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    limit = f"; timed on the first {n_timed:,} samples, s/epoch extrapolated" if args.limit else ""
    lines = [
        f"### {args.dataset}, {device.type}, precision {args.precision}"
        f"{', channels_last' if args.channels_last else ''}{', compile' if args.compile else ''}"
        f" ({datetime.datetime.now().strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- command: `{command}`",
        f"- machine: {machine(device)}; torch {torch.__version__}; "
        f"1-min load average {load_start:.1f} at start, {load_end:.1f} at end",
        f"- {n_full:,} training samples per epoch, batch {args.batch_size}, "
        f"{args.repeats} repeat(s) x {args.epochs} epoch(s) = n timed epochs per pipeline{limit}; "
        f"{args.warmup_batches} warm-up batches; deterministic={args.deterministic}",
        "",
        "| model | pipeline | samples/s (mean ± sd) | s/epoch (mean) | s/epoch (min–max) | n |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['pipeline']} | {r['rate']:,.0f} ± {r['rate_sd']:,.0f} | "
            f"{r['epoch']:.2f} | {r['epoch_min']:.2f}–{r['epoch_max']:.2f} | {r['n']} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.output != "-":
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
