"""What a run of the menon_mnist table costs on this CPU, and what makes it cheaper (issue 30, goals 1, 4).

The same MNIST LeNet-5 runs (Adam 1e-3, weight decay 1e-3, per-step exponential decay, batch 32, the
first ``--images`` training images, test set evaluated after each epoch) are trained several ways in
one process, one thread, alternating over the repeats so that machine noise hits all alike:

- ``hand``: a hand-written loop (slice, normalise, forward, cross-entropy, step, schedule, evaluate);
- ``lb``: lossbench's ``Trainer.fit`` as the preset runs it (float32, NCHW, torch's Adam);
- ``lb_cl``: with ``trainer.channels_last=true``;
- ``lb_fused``: with ``optim.fused=true`` (torch's fused Adam kernel, on CPU since torch 2.4);
- ``lb_cl_fused``: both;
- ``pack8``: ``fit_pack`` of 8 runs (seeds 0..7), per run; ``pack8_cl``, ``pack8_cl_fused`` likewise;
  ``pack18_cl`` and ``pack36_cl``: packs of 18 and 36 runs (the table's 72 runs in 4 or 2 packs);
- ``lb_bf16_cl``: ``trainer.precision=bf16`` with channels_last (autocast of the forward pass).

``--model cnn4 --batch 128`` measures apl_mnist's model the same way (the optimizer stays Adam: the
cost of a step does not depend on it to speak of), and ``--model mlp`` the MNIST MLP (784-256-256-10).
``--profile MODE`` runs one more call of MODE under torch's profiler and prints the operators that
take its CPU time (what bounds a pack: the convolutions' and matrix products' share).

Each mode trains ``--runs`` runs (seeds 0..runs-1; ``pack8`` always 8) and the time per run is printed:
wall and CPU seconds (one thread: CPU time is the work done). Then the FLOP count of the table and its
bound at the measured one-thread matmul peak.

    OMP_NUM_THREADS=1 python scripts/bench_menon.py --data-dir ../shared/data --images 6000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from lossbench import noise as noise_lib
from lossbench.data.split import Split
from lossbench.data.transforms import BatchTransform
from lossbench.data.vision import mnist
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.cnn import CNN4
from lossbench.models.lenet import LeNet5
from lossbench.models.mlp import MLP
from lossbench.noise.synthetic import Symmetric
from lossbench.reweight.base import Reweighter
from lossbench.train.packed import PackMember, fit_pack
from lossbench.train.schedulers import ExponentialDecay
from lossbench.train.trainer import Trainer, set_determinism

BATCH = 32
MODEL = LeNet5


def lenet_flops(batch: int = 1) -> tuple[int, int]:
    """(forward, training) FLOPs of LeNet-5 on 1x28x28 per ``batch`` images: 2 per multiply-add;
    training = forward + backward, whose first convolution computes only its weights' gradient."""
    conv1 = 28 * 28 * 6 * 25
    rest = 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    forward = 2 * (conv1 + rest)
    backward = 2 * conv1 + 2 * 2 * rest
    return forward * batch, (forward + backward) * batch


def matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """One-thread float32 matmul GFLOP/s (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def data(data_dir: str, images: int, rate: float) -> Split:
    split = mnist(data_dir=data_dir, val_size=0)
    split = replace(split, x_train=split.x_train[:images], y_train=split.y_train[:images],
                    y_train_noisy=split.y_train_noisy[:images], train_idx=split.train_idx[:images])
    return noise_lib.apply(Symmetric(rate=rate), split, 0)[0]


def member(split: Split, seed: int, channels_last: bool = False, fused: bool = False,
           precision: str = "32") -> PackMember:
    torch.manual_seed(seed)
    model = MODEL(split.input_shape, split.num_classes)
    trainer = Trainer(epochs=1, batch_size=BATCH, device="cpu", progress="none", checkpoint_every=0,
                      channels_last=channels_last, precision=precision)
    model = trainer.prepare_model(model)
    extra = {"fused": True} if fused else {}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3, **extra)
    sched = ExponentialDecay(opt, decay_rate=0.1, decay_steps=10_000)
    return PackMember(trainer, model, CrossEntropy(), Reweighter(), opt, sched, split, seed)


def lb(split, runs, **options):
    for seed in range(runs):
        m = member(split, seed, **options)
        m.trainer.fit(m.model, m.loss_fn, m.reweight, m.optimizer, m.scheduler, m.split, seed)
    return runs


def pack(split, k, **options):
    fit_pack([member(split, seed, **options) for seed in range(k)])
    return k


def hand(split, runs):
    transform = BatchTransform(split)
    for seed in range(runs):
        m = member(split, seed)
        model, opt, sched = m.model, m.optimizer, m.scheduler
        g = torch.Generator().manual_seed(seed)
        x, y = split.x_train, split.y_train_noisy
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(perm), BATCH):
            idx = perm[i : i + BATCH]
            loss = F.cross_entropy(model(transform(x[idx], train=True)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            for j in range(0, len(split.x_test), 2048):
                (model(transform(split.x_test[j : j + 2048], train=False)).argmax(1)
                 == split.y_test[j : j + 2048]).float().mean().item()
    return runs


MODES = {
    "hand": hand,
    "lb": lb,
    "lb_cl": lambda s, r: lb(s, r, channels_last=True),
    "lb_fused": lambda s, r: lb(s, r, fused=True),
    "lb_cl_fused": lambda s, r: lb(s, r, channels_last=True, fused=True),
    "pack8": lambda s, r: pack(s, 8),
    "pack8_cl": lambda s, r: pack(s, 8, channels_last=True),
    "pack8_cl_fused": lambda s, r: pack(s, 8, channels_last=True, fused=True),
    "pack18_cl": lambda s, r: pack(s, 18, channels_last=True),
    "pack36_cl": lambda s, r: pack(s, 36, channels_last=True),
    "lb_bf16_cl": lambda s, r: lb(s, r, channels_last=True, precision="bf16"),
}


MODELS = {"lenet5": LeNet5, "cnn4": CNN4,
          "mlp": lambda shape, classes: MLP(shape, classes, hidden=(256, 256))}


def profile(fn, split: Split, runs: int, name: str, top: int = 12) -> None:
    """The operators that take one call's CPU time, by self time, with their share."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(split, runs)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile of {name}: {total / 1e6:.2f} s of operator self time (profiler on)")
    for e in events[:top]:
        print(f"  {e.key:40s} {e.self_cpu_time_total / total:6.1%}  {e.count:7d} calls")
    compute = sum(e.self_cpu_time_total for e in events
                  if any(w in e.key for w in ("conv", "mm", "mkldnn", "linear")))  # mm: addmm, bmm, matmul
    print(f"  convolutions and matrix products (incl. their backward kernels): {compute / total:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("LOSSBENCH_DATA_DIR", "data"))
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--model", choices=tuple(MODELS), default="lenet5")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--profile", metavar="MODE",
                        help="profile one more call of MODE (its top operators); several: MODE,MODE")
    parser.add_argument("--deterministic", action="store_true",
                        help="torch's deterministic algorithms, as a run sets them (trainer.deterministic)")
    args = parser.parse_args()
    if args.deterministic:
        set_determinism(0, True)
    global BATCH, MODEL
    BATCH, MODEL = args.batch, MODELS[args.model]
    modes = {name: MODES[name] for name in args.modes.split(",")}
    split = data(args.data_dir, args.images, 0.6)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, load {os.getloadavg()}, {args.model}, {args.images} images, "
          f"batch {BATCH}, deterministic={args.deterministic}")
    for fn in modes.values():  # one-time costs (allocator, kernels' first calls), not timed
        fn(data(args.data_dir, 512, 0.6), 1)
    wall: dict[str, list[float]] = {n: [] for n in modes}
    cpu: dict[str, list[float]] = {n: [] for n in modes}
    for repeat in range(args.repeats):
        for name, fn in modes.items():
            w, c = time.perf_counter(), time.process_time()
            runs = fn(split, args.runs)
            w, c = (time.perf_counter() - w) / runs, (time.process_time() - c) / runs
            wall[name].append(w)
            cpu[name].append(c)
            print(f"repeat {repeat} {name:12s} per run: wall {w:6.2f} s  cpu {c:6.2f} s", flush=True)
    steps = -(-args.images // BATCH)
    base = statistics.median(cpu["lb"]) if "lb" in cpu else None
    print(f"load after: {os.getloadavg()}")
    for name in modes:
        c = statistics.median(cpu[name])
        ratio = f"  lb/{name} {base / c:.2f}x" if base else ""
        print(f"{name:12s} median per run: cpu {c:6.2f} s, wall {statistics.median(wall[name]):6.2f} s, "
              f"{c / steps * 1e3:.2f} ms cpu per step (eval included){ratio}")
    for name in args.profile.split(",") if args.profile else ():
        profile(MODES[name], split, args.runs, name)
    if args.model != "lenet5":
        return
    forward, train = lenet_flops()
    table = 72 * 20 * (60_000 * train + 10_000 * forward)
    peak = matmul_peak()
    print(f"menon_mnist table: {table / 1e12:.0f} TFLOP (72 runs x 20 epochs, test evaluated each epoch); "
          f"one-thread matmul peak {peak:.0f} GFLOP/s: bound {table / peak / 1e9 / 60:.0f} min on one core, "
          f"{table / peak / 2e9 / 60:.0f} min on two")


if __name__ == "__main__":
    main()
