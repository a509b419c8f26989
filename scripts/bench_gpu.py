"""Every GPU figure in one prepared run: packed throughput, three tables' projected cost, one-run speed.

Part A, packed (item 3): cnn8 and resnet18 on CIFAR-shaped synthetic data (uint8
3x32x32, 10 classes, crop+flip), APL's CIFAR-10 settings (batch 128, SGD 0.01
momentum 0.9, weight decay 1e-4, grad clip 5.0, fp32). K = 1 through
``Trainer.fit`` (a run alone) and K = 1, 8, 32, 64 through ``fit_pack``; each
configuration trains 2 short epochs of ``--steps`` steps (an epoch's records
are CUDA-synchronized, the second is the one reported), aggregate samples/s =
K x train samples / train seconds, evaluation samples/s from the same epoch,
peak memory from ``torch.cuda.max_memory_allocated``. An OOM is recorded as
such. Then the projected cost of APL's CIFAR-10 table (10 losses x 4 noise
rates x 3 seeds = 120 runs of 120 epochs, 50,000 training and 10,000 test
samples per epoch) at the best measured K, with its arithmetic.

Part C, the MNIST tables (issue 30): the same packed measurement for the models of
``apl_mnist`` (cnn4, batch 128; 84 runs of 50 epochs) and ``menon_mnist`` (lenet5,
batch 32; 72 runs of 20 epochs) on MNIST-shaped synthetic data (1x28x28, 10
classes, no augmentation), and each grid's projected cost at its best K.

Part B, one run (item 4): resnet18 on ``synthetic_cifar10`` at full size
(45,000 train, 5,000 val, 10,000 test), 2 epochs through ``Trainer.fit`` per
setting: fp32 deterministic (the default), fp32 with cuDNN autotuning
(``trainer.deterministic=false``), bf16 + channels_last, the same compiled
(``trainer.compile=true``; the first epoch includes compilation), and a
hand-written loop of the bf16 + channels_last step (same model, data on the
device, same augmentation) for the trainer's per-step overhead. Per setting:
train seconds of epoch 2, evaluation seconds (val + test), and the epoch cost
with evaluation every n epochs = train + eval / n for n = 1, 5, 10 (the trainer
evaluates every epoch; n > 1 is that arithmetic, not an option).

    python scripts/bench_gpu.py --out outputs/bench_gpu.json          # on the GPU machine (< 8 minutes)
    python scripts/bench_gpu.py --smoke --device cpu                    # seconds on a CPU (the test suite)

Results go to ``--out`` (JSON) and as Markdown to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lossbench.data.synthetic import synthetic
from lossbench.data.transforms import BatchTransform
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.cnn import CNN4, CNN8
from lossbench.models.lenet import LeNet5
from lossbench.models.resnet import ResNet18
from lossbench.reweight.base import Reweighter
from lossbench.train.packed import PackMember, fit_pack
from lossbench.train.trainer import Trainer, set_determinism

MODELS = {"cnn8": CNN8, "resnet18": ResNet18, "cnn4": CNN4, "lenet5": LeNet5}
APL_RUNS, APL_EPOCHS, APL_TRAIN, APL_EVAL = 120, 120, 50_000, 10_000
# A grid's projected cost: its model, runs, epochs, training and evaluated samples per epoch, batch size.
TABLES = {
    "APL CIFAR-10": dict(model="cnn8", runs=APL_RUNS, epochs=APL_EPOCHS, train=APL_TRAIN, eval=APL_EVAL,
                         batch=128),
    "apl_mnist": dict(model="cnn4", runs=84, epochs=50, train=60_000, eval=10_000, batch=128),
    "menon_mnist": dict(model="lenet5", runs=72, epochs=20, train=60_000, eval=10_000, batch=32),
}


def dataset(n_train: int, n_test: int, n_val: int = 0, smoke: bool = False, mnist: bool = False):
    if mnist:  # MNIST-shaped: grey 28x28, no augmentation (the MNIST protocols use none)
        return synthetic(num_samples=n_train + n_val + n_test, num_classes=10, image_shape=[1, 28, 28],
                         augment=None, test_size=n_test, val_size=n_val, seed=0, name="synthetic_mnist")
    shape = [3, 16, 16] if smoke else [3, 32, 32]
    return synthetic(num_samples=n_train + n_val + n_test, num_classes=10, image_shape=shape,
                     augment="crop_flip", test_size=n_test, val_size=n_val, seed=0, name="synthetic_cifar10")


def build(name: str, split, seed: int, trainer: Trainer, lr: float = 0.01):
    torch.manual_seed(seed)
    model = trainer.prepare_model(MODELS[name](split.input_shape, split.num_classes))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=APL_EPOCHS)
    return model, opt, sched


def trainer_for(args, **options) -> Trainer:
    settings = dict(epochs=2, batch_size=args.batch_size, eval_batch_size=1024, device=args.device,
                    progress="none", checkpoint_every=0)
    settings.update(options)
    return Trainer(**settings)


def peak_reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def packed_row(args, name: str, k: int, split, alone: bool, batch_size: int | None = None) -> dict:
    """2 short epochs of K runs (alone: K = 1 through Trainer.fit); figures of epoch 2."""
    trainer = trainer_for(args, grad_clip=5.0, batch_size=batch_size or args.batch_size)
    set_determinism(0, trainer.deterministic)
    device = trainer.torch_device
    split = split.to(device)
    row = {"model": name, "K": k, "mode": "Trainer.fit" if alone else "fit_pack"}
    peak_reset(device)
    try:
        if alone:
            model, opt, sched = build(name, split, 0, trainer)
            history = trainer.fit(model, CrossEntropy(), Reweighter(), opt, sched, split, 0)
        else:
            members = []
            for seed in range(k):
                model, opt, sched = build(name, split, seed, trainer)
                members.append(PackMember(trainer, model, CrossEntropy(), Reweighter(), opt, sched, split,
                                          seed))
            history = fit_pack(members)[0].history
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
        row.update(status="OOM", peak_gib=peak_gib(device))
        peak_reset(device)
        return row
    last = history[-1]
    n_train, n_eval = len(split.y_train), len(split.y_test) + len(split.y_val)
    eval_seconds = last["seconds"] - last["train_seconds"]
    row.update(status="ok", train_seconds=last["train_seconds"], eval_seconds=eval_seconds,
               samples_per_s=k * n_train / last["train_seconds"],
               eval_samples_per_s=k * n_eval / eval_seconds if eval_seconds > 0 else None,
               peak_gib=peak_gib(device))
    return row


def projection(rows: list[dict], table: str) -> dict:
    """The cost of ``table`` (``TABLES``) at the fastest measured K for its model."""
    t = TABLES[table]
    ok = [r for r in rows if r["model"] == t["model"] and r["status"] == "ok" and r["mode"] == "fit_pack"]
    if not ok:
        return {}
    best = max(ok, key=lambda r: r["samples_per_s"])
    k = best["K"]
    packs = math.ceil(t["runs"] / k)
    train_s = t["epochs"] * t["train"] * k / best["samples_per_s"]
    eval_rate = best["eval_samples_per_s"]
    eval_s = t["epochs"] * t["eval"] * k / eval_rate if eval_rate else 0.0
    total = packs * (train_s + eval_s)
    arithmetic = (
        f"{packs} packs = ceil({t['runs']} / {k}); per pack {t['epochs']} epochs x ({t['train']} x {k} / "
        f"{best['samples_per_s']:.0f} samples/s train + {t['eval']} x {k} / {eval_rate or float('nan'):.0f} "
        f"samples/s eval) = {train_s + eval_s:.0f} s; total {packs} x {train_s + eval_s:.0f} s = "
        f"{total:.0f} s = {total / 3600:.2f} device-hours"
    )
    return {"table": table, "K": k, "packs": packs, "seconds_per_pack_train": train_s,
            "seconds_per_pack_eval": eval_s, "total_seconds": total, "hours": total / 3600,
            "arithmetic": arithmetic}


def hand_loop(args, split, epochs: int = 2) -> list[float]:
    """The bf16 + channels_last step written by hand: shuffle, slice, augment, step (train s per epoch)."""
    device = torch.device(args.device)
    set_determinism(0, False)
    split = split.to(device)
    trainer = trainer_for(args, precision="bf16", channels_last=True, deterministic=False)
    model, opt, _ = build("resnet18", split, 0, trainer, lr=0.1)
    transform = BatchTransform(split, channels_last=True)
    g = torch.Generator().manual_seed(0)
    aug = torch.Generator(device=device).manual_seed(1)
    x, y = split.x_train, split.y_train_noisy
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        perm = torch.randperm(len(y), generator=g).to(device)
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(transform(x[idx], train=True, generator=aug)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds


def single_rows(args, split) -> list[dict]:
    settings = [
        ("fp32, deterministic (default)", {}),
        ("fp32, cudnn autotuner (deterministic=false)", {"deterministic": False}),
        ("bf16 + channels_last, deterministic=false", {"precision": "bf16", "channels_last": True,
                                                       "deterministic": False}),
        ("bf16 + channels_last + compile, deterministic=false",
         {"precision": "bf16", "channels_last": True, "deterministic": False, "compile": True}),
    ]
    rows = []
    for label, options in settings:
        if options.get("compile") and args.smoke:
            rows.append({"setting": label, "status": "skipped in --smoke"})
            continue
        trainer = trainer_for(args, **options)
        set_determinism(0, trainer.deterministic)
        device = trainer.torch_device
        on_device = split.to(device)
        model, opt, sched = build("resnet18", on_device, 0, trainer, lr=0.1)
        peak_reset(device)
        history = trainer.fit(model, CrossEntropy(), Reweighter(), opt, sched, on_device, 0)
        last = history[-1]
        eval_s = last["seconds"] - last["train_seconds"]
        rows.append({"setting": label, "status": "ok", "first_epoch_seconds": history[0]["seconds"],
                     "train_seconds": last["train_seconds"], "eval_seconds": eval_s,
                     "samples_per_s": len(on_device.y_train) / last["train_seconds"],
                     "epoch_seconds_eval_every": {n: last["train_seconds"] + eval_s / n for n in (1, 5, 10)},
                     "peak_gib": peak_gib(device)})
    hand = hand_loop(args, split)
    rows.append({"setting": "hand-written loop, bf16 + channels_last", "status": "ok",
                 "train_seconds": hand[-1], "samples_per_s": len(split.y_train) / hand[-1]})
    lb = next(r for r in rows if r["setting"].startswith("bf16 + channels_last,"))
    rows[-1]["trainer_overhead"] = lb["train_seconds"] / hand[-1] - 1
    return rows


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(result: dict) -> str:
    lines = [f"machine: {result['machine']}", "",
             "| model | K | mode | samples/s (aggregate) | x over K=1 alone | eval samples/s | peak GiB "
             "| status |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    base = {r["model"]: r.get("samples_per_s") for r in result["packed"] if r["mode"] == "Trainer.fit"}
    for r in result["packed"]:
        sps = r.get("samples_per_s")
        ratio = f"{sps / base[r['model']]:.2f}" if sps and base.get(r["model"]) else "-"
        eval_sps = r.get("eval_samples_per_s")
        peak = r.get("peak_gib")
        lines.append(f"| {r['model']} | {r['K']} | {r['mode']} | {sps or 0:,.0f} | {ratio} | "
                     f"{eval_sps or 0:,.0f} | {'-' if peak is None else f'{peak:.1f}'} | {r['status']} |")
    for proj in result["projections"]:
        lines += ["", f"{proj['table']} table projection: " + proj["arithmetic"]]
    lines += ["", "| resnet18, one run | train s/epoch | samples/s | eval s | epoch s, eval every 1 / 5 / 10 "
              "| first epoch s | peak GiB |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["single"]:
        if r["status"] != "ok":
            lines.append(f"| {r['setting']} | {r['status']} | | | | | |")
            continue
        every = r.get("epoch_seconds_eval_every")
        every_text = " / ".join(f"{v:.2f}" for v in every.values()) if every else "-"
        peak = r.get("peak_gib")
        extra = f" (trainer overhead {100 * r['trainer_overhead']:+.1f}%)" if "trainer_overhead" in r else ""
        lines.append(f"| {r['setting']}{extra} | {r['train_seconds']:.2f} | {r['samples_per_s']:,.0f} | "
                     f"{_num(r.get('eval_seconds'))} | {every_text} | {_num(r.get('first_epoch_seconds'))} | "
                     f"{'-' if peak is None else f'{peak:.1f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, K = 1 and 2, no compile: a CPU check")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--models", nargs="+", default=["cnn8", "resnet18"])
    parser.add_argument("--steps", type=int, default=20, help="steps per short epoch in part A")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--skip-single", action="store_true", help="part A only")
    parser.add_argument("--out", default="outputs/bench_gpu.json")
    args = parser.parse_args()
    if args.smoke:
        args.ks, args.steps, args.batch_size = [1, 2], 2, 8
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {"machine": f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}",
              "args": vars(args), "packed": [], "single": [], "projections": []}
    n_train = args.steps * args.batch_size
    short = dataset(n_train, n_test=max(64, n_train // 5), smoke=args.smoke)
    started = time.perf_counter()
    for model in args.models:
        result["packed"].append(packed_row(args, model, 1, short, alone=True))
        print(json.dumps(result["packed"][-1]), flush=True)
        for k in args.ks:
            result["packed"].append(packed_row(args, model, k, short, alone=False))
            print(json.dumps(result["packed"][-1]), flush=True)
    print(f"part A: {time.perf_counter() - started:.0f} s", flush=True)
    n_mnist = args.steps * max(t["batch"] for t in TABLES.values()) if not args.smoke else args.steps * 8
    mnist = dataset(n_mnist, n_test=max(64, n_mnist // 5), mnist=True)
    for table in ("apl_mnist", "menon_mnist"):
        model, batch = TABLES[table]["model"], 8 if args.smoke else TABLES[table]["batch"]
        result["packed"].append(packed_row(args, model, 1, mnist, alone=True, batch_size=batch))
        for k in args.ks:
            result["packed"].append(packed_row(args, model, k, mnist, alone=False, batch_size=batch))
            print(json.dumps(result["packed"][-1]), flush=True)
    result["projections"] = [p for p in (projection(result["packed"], t) for t in TABLES) if p]
    print(f"parts A+C: {time.perf_counter() - started:.0f} s", flush=True)
    if not args.skip_single:
        full = dataset(32, 16, 8, smoke=True) if args.smoke else dataset(45_000, 10_000, 5_000)
        result["single"] = single_rows(args, full)
        print(f"parts A+B+C: {time.perf_counter() - started:.0f} s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
