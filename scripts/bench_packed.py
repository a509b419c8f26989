"""Packed against sequential training, as ratios measured in one process (issue 16, CPU part).

For each K, the same K runs (digits, MLP 64-256-256-10, SGD momentum 0.9, cosine,
symmetric noise 40%, seeds 0..K-1, validation and test evaluated every epoch)
are trained four ways, alternating over the repeats so that machine noise hits
all alike:

- ``lb_seq``: lossbench's ``Trainer.fit``, one run after another;
- ``lb_pack``: lossbench's ``fit_pack`` (one packed model);
- ``hand_seq``: a hand-written loop (shuffle, slice, step, evaluate accuracy), one run after another;
- ``hand_pack``: a hand-written packed loop (stacked weights, ``baddbmm``, one cross-entropy).

Checkpoints are off in both lossbench modes. It prints each wall-clock and CPU
time (one thread: the CPU time is the work done, the better figure on a machine
shared with other jobs), the median ratios (and the ratio of the fastest times, the figure least
hurt by other load on the machine), and the final test accuracies of the lossbench modes (mean and std over
the K seeds: whole runs drift apart chaotically, their distribution should not).

    OMP_NUM_THREADS=1 python scripts/bench_packed.py --ks 8 16 --epochs 30 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lossbench import noise as noise_lib
from lossbench.data import DATASETS
from lossbench.data.transforms import BatchTransform
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.noise.synthetic import Symmetric
from lossbench.reweight.base import Reweighter
from lossbench.train.packed import PackMember, fit_pack
from lossbench.train.trainer import Trainer, set_determinism

HIDDEN = (256, 256)


def splits(k: int, rate: float):
    base = DATASETS.get("digits")()
    return [noise_lib.apply(Symmetric(rate=rate), base, seed)[0] for seed in range(k)]


def member(split, seed: int, epochs: int, batch_size: int, lr: float) -> PackMember:
    torch.manual_seed(seed)
    model = MLP(split.input_shape, split.num_classes, hidden=HIDDEN)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    trainer = Trainer(epochs=epochs, batch_size=batch_size, device="cpu", progress="none", checkpoint_every=0)
    return PackMember(trainer, model, CrossEntropy(), Reweighter(), opt, sched, split, seed)


class Clock:
    """Wall and CPU seconds of one timed span (one thread: CPU time is the work, whatever the load)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def lb_seq(data, epochs, batch_size, lr):
    accs = []
    with Clock() as clock:
        for seed, split in enumerate(data):
            m = member(split, seed, epochs, batch_size, lr)
            history = m.trainer.fit(m.model, m.loss_fn, m.reweight, m.optimizer, m.scheduler, m.split, seed)
            accs.append(history[-1]["test_acc"])
    return clock, accs


def lb_pack(data, epochs, batch_size, lr):
    members = [member(split, seed, epochs, batch_size, lr) for seed, split in enumerate(data)]
    with Clock() as clock:
        results = fit_pack(members)
    return clock, [r.history[-1]["test_acc"] for r in results]


def _evaluate(logits_fn, split) -> None:
    with torch.no_grad():
        for xe, ye in ((split.x_val, split.y_val_noisy), (split.x_test, split.y_test)):
            (logits_fn(xe).argmax(-1) == ye).float().mean(-1).tolist()


def hand_seq(data, epochs, batch_size, lr):
    with Clock() as clock:
        for seed, split in enumerate(data):
            _hand_run(member(split, seed, epochs, batch_size, lr), epochs, batch_size)
    return clock, []


def _hand_run(m: PackMember, epochs: int, batch_size: int) -> None:
    model, opt, sched, split = m.model, m.optimizer, m.scheduler, m.split
    transform = BatchTransform(split)
    g = torch.Generator().manual_seed(m.seed)
    x, y = split.x_train, split.y_train_noisy
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
        _evaluate(lambda xe: model(transform(xe, train=False)), split)


def hand_pack(data, epochs, batch_size, lr):
    """Stacked weights [K, in, out], baddbmm per layer, one cross-entropy over all members' rows."""
    k = len(data)
    models = [member(split, seed, epochs, batch_size, lr).model for seed, split in enumerate(data)]
    linears = [[m for m in model.modules() if isinstance(m, torch.nn.Linear)] for model in models]
    weights = [torch.stack([ls[j].weight.detach().T for ls in linears]).requires_grad_()
               for j in range(len(linears[0]))]
    biases = [torch.stack([ls[j].bias.detach()[None] for ls in linears]).requires_grad_()
              for j in range(len(linears[0]))]
    opt = torch.optim.SGD(weights + biases, lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gens = [torch.Generator().manual_seed(seed) for seed in range(k)]
    x = data[0].x_train.flatten(1)
    y = torch.stack([s.y_train_noisy for s in data])

    def forward(h):
        for j, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if j < len(weights) - 1:
                h = h.relu()
        return h

    with Clock() as clock:
        _hand_pack_epochs(forward, opt, sched, gens, data, x, y, epochs, batch_size)
    return clock, []


def _hand_pack_epochs(forward, opt, sched, gens, data, x, y, epochs, batch_size) -> None:
    k, n = len(data), len(x)
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for i in range(0, n, batch_size):
            idx = orders[:, i : i + batch_size]
            logits = forward(x[idx])
            loss = F.cross_entropy(logits.flatten(0, 1), y.gather(1, idx).flatten(), reduction="none")
            loss = loss.view(k, -1).mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            for xe, ye in ((data[0].x_val, torch.stack([s.y_val_noisy for s in data])),
                           (data[0].x_test, data[0].y_test)):
                flat = xe.flatten(1)
                (forward(flat.expand(k, *flat.shape)).argmax(-1) == ye).float().mean(-1).tolist()


MODES = {"lb_seq": lb_seq, "lb_pack": lb_pack, "hand_seq": hand_seq, "hand_pack": hand_pack}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deterministic", action="store_true",
                        help="torch's deterministic algorithms, as a run sets them (trainer.deterministic)")
    args = parser.parse_args()
    if args.deterministic:
        set_determinism(0, True)
    print(f"digits MLP {HIDDEN}, epochs={args.epochs} batch={args.batch_size} lr={args.lr} sym{args.noise} "
          f"deterministic={args.deterministic} "
          f"threads={torch.get_num_threads()} repeats={args.repeats}, torch {torch.__version__}")
    warm = splits(2, args.noise)
    for fn in MODES.values():  # first calls pay one-time costs (imports, allocator); not timed
        fn(warm, 1, args.batch_size, args.lr)
    for k in args.ks:
        data = splits(k, args.noise)
        times: dict[str, dict[str, list[float]]] = {kind: {n: [] for n in MODES} for kind in ("wall", "cpu")}
        accs: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            for name, fn in MODES.items():
                clock, acc = fn(data, args.epochs, args.batch_size, args.lr)
                times["wall"][name].append(clock.wall)
                times["cpu"][name].append(clock.cpu)
                if acc:
                    accs[name] = acc
                print(f"K={k} repeat {repeat} {name:9s} wall {clock.wall:7.2f} s  cpu {clock.cpu:7.2f} s",
                      flush=True)
        pairs = {"lossbench seq/pack": ("lb_seq", "lb_pack"), "hand seq/pack": ("hand_seq", "hand_pack"),
                 "lossbench seq / hand seq": ("lb_seq", "hand_seq"),
                 "lossbench pack / hand pack": ("lb_pack", "hand_pack"),
                 "lossbench seq / hand pack": ("lb_seq", "hand_pack")}
        for kind, table in times.items():
            for name, ts in table.items():
                print(f"K={k} {kind:4s} {name:9s} median {statistics.median(ts):7.2f} s  "
                      f"min {min(ts):7.2f}  max {max(ts):7.2f}")
            for name, (a, b) in pairs.items():
                rs = [x / y for x, y in zip(table[a], table[b], strict=True)]
                print(f"K={k} {kind:4s} ratio {name:28s} median {statistics.median(rs):5.2f}  "
                      f"(min {min(rs):.2f}, max {max(rs):.2f}); "
                      f"fastest/fastest {min(table[a]) / min(table[b]):.2f}")
        for name, acc in accs.items():
            sd = statistics.stdev(acc)
            print(f"K={k} {name} final test acc mean {statistics.mean(acc):.4f} std {sd:.4f} "
                  f"(se {sd / len(acc) ** 0.5:.4f})")


if __name__ == "__main__":
    main()
