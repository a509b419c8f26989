"""Adversarial training on digits and MNIST: clean and robust accuracy, and the cost per epoch.

    python scripts/bench_adversarial.py --part digits      # full grid, 3 seeds -> outputs/bench_adversarial/
    python scripts/bench_adversarial.py --part mnist       # cnn4 on a training subset (see MNIST_SETUP)
    python scripts/bench_adversarial.py --part mnist --losses comp_sum_tau0.5   # one loss of LOSSES
    python scripts/bench_adversarial.py --part timing      # seconds per epoch, standard vs adversarial
    python scripts/bench_adversarial.py --report           # benchmarks/adversarial.md from the .jsonl files
    python scripts/bench_adversarial.py --part digits --smoke   # 1 seed, 2 epochs, a few cells (CPU check)

Runs are in process (Hydra compose of the package's config, then lossbench.lifecycle.run's own build_*
functions, Trainer.fit and evaluate_model), one JSON line per finished run; an interrupted part
resumes where it stopped. The MNIST part trains on a fixed, seeded subset of the training split
(``--mnist-train``), since adversarial training costs k + 1 forward-backward passes per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.lifecycle.builders import build_data, build_loss, build_model
from lossbench.train.final_eval import evaluate_model
from lossbench.train.trainer import Diverged, Trainer, set_determinism

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "bench_adversarial"
LOSSES = {
    "ce": ["loss=ce"],
    "gce": ["loss=gce"],
    "comp_sum τ=0.5": ["loss=comp_sum", "loss.tau=0.5"],
    "comp_sum τ=1.5": ["loss=comp_sum", "loss.tau=1.5"],
    # tau < 1: the gradient grows as p_y^-(1 - tau), and at lr 0.1 tau = 0.5 diverges on clean labels
    # (none and pgd_at); the same loss with its gradient norm clipped at 5 (not the shared protocol)
    "comp_sum τ=0.5 clip=5": ["loss=comp_sum", "loss.tau=0.5", "trainer.grad_clip=5"],
}
METHODS = ("none", "pgd_at", "trades", "adv_comp_sum")
NOISES = ("clean", "sym40")
DIGITS_SETUP = ["dataset=digits", "model=mlp", "attack=pgd", "attack.size=null"]
# MNIST: eps 0.1 (not the usual 0.3) for training and evaluation, 5 PGD steps in training: at this
# budget (2,000 training images, 4 epochs) that is where adversarial training shows.
MNIST_SETUP = [
    "dataset=mnist",
    "model=cnn4",
    "trainer.batch_size=128",
    "trainer.epochs=4",
    "attack=pgd",
    "attack.size=300",
    "attack.attack.eps=0.1",
    "adversarial.eps=0.1",
    "adversarial.steps=5",
]
# MNIST validation and test subsets (per-epoch clean evaluation of cnn4 on 16,000 images would cost more
# than the training epoch on this shared CPU): 500 validation, 2,000 test images, fixed seeds.
MNIST_EVAL = (500, 2000)


def compose_cfg(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


def _first(n_all: int, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n_all, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def subset_train(split, n: int | None, seed: int = 0, n_val: int | None = None, n_test: int | None = None):
    """The first ``n`` (``n_val``, ``n_test``) of fixed permutations of the training (validation,
    test) split; None keeps a split whole."""
    if n is not None and n < len(split.y_train):
        keep = _first(len(split.y_train), n, seed)
        split = replace(
            split,
            x_train=split.x_train[keep],
            y_train=split.y_train[keep],
            y_train_noisy=split.y_train_noisy[keep],
            train_idx=split.train_idx[keep],
        )
    if n_val is not None and n_val < len(split.y_val):
        keep = _first(len(split.y_val), n_val, seed + 1)
        split = replace(
            split,
            x_val=split.x_val[keep],
            y_val=split.y_val[keep],
            y_val_noisy=split.y_val_noisy[keep],
            val_idx=split.val_idx[keep],
        )
    if n_test is not None and n_test < len(split.y_test):
        keep = _first(len(split.y_test), n_test, seed + 2)
        split = replace(split, x_test=split.x_test[keep], y_test=split.y_test[keep])
    return split


def run_one(
    overrides: list[str],
    train_subset: int | None = None,
    val_subset: int | None = None,
    test_subset: int | None = None,
) -> dict:
    """One run as lossbench.lifecycle.run._run does it (no output directory): the figures the tables use."""
    cfg = compose_cfg(
        [o for o in overrides if not (o.startswith("adversarial.") and "adversarial=none" in overrides)]
    )
    trainer = Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True))
    seed = int(cfg.seed)
    set_determinism(seed, trainer.deterministic)
    _, split, noisy = build_data(cfg)
    split = subset_train(split, train_subset, 0, val_subset, test_subset).to(trainer.torch_device)
    torch.manual_seed(seed)
    model = build_model(cfg, trainer, split)
    loss_fn = build_loss(cfg.loss, split.num_classes, len(split.y_train))
    reweight = instantiate(cfg.reweight)
    adversarial = instantiate(cfg.adversarial)
    adversarial.setup(split)
    robust = instantiate(cfg.attack)
    robust.setup(split)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    started = time.perf_counter()
    try:
        history = trainer.fit(
            model,
            loss_fn,
            reweight,
            optimizer,
            scheduler,
            split,
            seed,
            adversarial=adversarial,
            robust=robust,
        )
    except Diverged as exc:
        return {
            "status": "diverged",
            "diverged_epoch": exc.epoch,
            "test_acc": None,
            "test_robust_acc": None,
            "adversarial_settings": adversarial.settings(),
            "num_train": len(split.y_train),
            "wall_s": time.perf_counter() - started,
        }
    out = evaluate_model(trainer, model, split, robust=robust, loss=loss_fn)
    return {
        "status": "completed",
        "test_acc": out["test_acc"],
        "test_robust_acc": out.get("test_robust_acc"),
        "robust_attack_settings": out.get("robust_attack_settings"),
        "robust_eval_size": out.get("robust_eval_size"),
        "adversarial_settings": adversarial.settings(),
        "num_train": len(split.y_train),
        "train_seconds": sum(r["train_seconds"] for r in history),
        "wall_s": time.perf_counter() - started,
        "epochs": len(history),
    }


def cli_name(loss: str) -> str:
    """A LOSSES label as typed after ``--losses``: "comp_sum τ=0.5 clip=5" -> "comp_sum_tau0.5_clip5"."""
    return loss.replace(" τ=", "_tau").replace(" clip=", "_clip")


def grid(
    part: str, seeds: list[int], epochs: int | None, smoke: bool, losses: tuple[str, ...] = ()
) -> list[tuple[dict, list[str]]]:
    setup = DIGITS_SETUP if part == "digits" else MNIST_SETUP
    chosen = {k: v for k, v in LOSSES.items() if not losses or cli_name(k) in losses}
    if smoke:
        chosen = dict(list(chosen.items())[:1])
    cells = []  # seed outermost: an interrupted part leaves whole tables with fewer seeds
    for seed in seeds:
        for noise in NOISES:
            for loss, loss_over in chosen.items():
                for method in METHODS:
                    key = dict(part=part, loss=loss, method=method, noise=noise, seed=seed)
                    over = [
                        *setup,
                        *loss_over,
                        f"adversarial={method}",
                        f"noise={noise}",
                        f"seed={seed}",
                        "trainer.progress=none",
                        "trainer.checkpoint_every=0",
                        "trainer.device=cpu",
                    ]
                    if method == "none":
                        over = [o for o in over if not o.startswith("adversarial.")]
                    if epochs is not None:
                        over.append(f"trainer.epochs={epochs}")
                    cells.append((key, over))
    return cells


def run_part(
    part: str,
    seeds: list[int],
    epochs: int | None,
    smoke: bool,
    mnist_train: int,
    out: Path,
    losses: tuple[str, ...] = (),
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    done = (
        {json.dumps(r["key"], sort_keys=True) for r in map(json.loads, out.read_text().splitlines())}
        if out.exists()
        else set()
    )
    for key, over in grid(part, seeds, epochs, smoke, losses):
        if json.dumps(key, sort_keys=True) in done:
            continue
        if part == "mnist":
            result = run_one(over, mnist_train, *MNIST_EVAL)
        else:
            result = run_one(over)
        with out.open("a") as f:
            f.write(json.dumps({"key": key, "overrides": over, **result}) + "\n")
        print(
            key,
            result["status"],
            result["test_acc"],
            result["test_robust_acc"],
            f"{result['wall_s']:.0f}s",
            flush=True,
        )


def timing(out: Path, mnist_train: int, device: str = "cpu", gpu_train: int = 10000, only=()) -> None:
    """Seconds per training epoch (train only, no evaluation), same process, 1 epoch each.

    ``device=cuda``: resnet18 on CIFAR-shaped synthetic data (epoch time measured with CUDA
    synchronisation by the trainer); on CPU the same case runs as a smoke check on ``gpu_train`` images.
    """
    rows = []
    cases = [
        ("digits", "mlp", None, ["dataset=digits", "model=mlp"]),
        ("mnist", "mlp", mnist_train, ["dataset=mnist", "model=mlp", "trainer.batch_size=128"]),
        ("mnist", "cnn4", mnist_train, ["dataset=mnist", "model=cnn4", "trainer.batch_size=128"]),
    ]
    if device != "cpu" or gpu_train < 1000:
        cases = [
            (
                "synthetic_cifar10",
                "resnet18",
                gpu_train,
                ["dataset=synthetic_cifar10", "model=resnet18", "trainer.batch_size=128"]
                + (
                    ["dataset.num_samples=400", "dataset.test_size=100", "dataset.val_size=100"]
                    if gpu_train < 1000
                    else []
                ),
            )
        ]
    for dataset, model, n, over in cases:
        if only and dataset not in only:
            continue
        for rep in range(3):  # methods interleaved within each repetition: ratios under the same load
            for method in ("none", "pgd_at", "trades", "adv_comp_sum"):
                o = [
                    *over,
                    f"adversarial={method}",
                    "trainer.epochs=1",
                    "trainer.progress=none",
                    "trainer.checkpoint_every=0",
                    f"trainer.device={device}",
                    f"seed={rep}",
                ]
                r = run_one(o, n, *(MNIST_EVAL if dataset == "mnist" else (None, None)))
                rows.append(
                    dict(
                        dataset=dataset,
                        model=model,
                        method=method,
                        rep=rep,
                        num_train=r["num_train"],
                        seconds=r["train_seconds"],
                    )
                )
                print(rows[-1], flush=True)
    timed = {(r["dataset"], r["model"]) for r in rows}  # rows of the cases not timed now are kept
    kept = [r for r in (json.loads(line) for line in out.read_text().splitlines() if line.strip())
            if (r["dataset"], r["model"]) not in timed] if out.exists() else []
    out.write_text("\n".join(json.dumps(r) for r in kept + rows) + "\n")


def _ms(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "–"
    m = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {statistics.stdev(values) * scale:.1f}"


def accuracy_table(path: Path) -> list[str]:
    runs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    cells = defaultdict(list)
    for r in runs:
        k = r["key"]
        cells[(k["loss"], k["method"], k["noise"])].append(r)
    losses = list(dict.fromkeys(r["key"]["loss"] for r in runs))
    lines = [
        "| loss | training | " + " | ".join(f"{n}: test acc | {n}: robust acc" for n in NOISES) + " |",
        "|---|---|" + "---|---|" * len(NOISES),
    ]
    for loss in losses:
        for method in METHODS:
            row = []
            for noise in NOISES:
                rs = cells.get((loss, method, noise), [])
                ok = [r for r in rs if r.get("status", "completed") == "completed"]
                bad = len(rs) - len(ok)
                n = f" (n={len(ok)}" + (f", {bad} diverged)" if bad else ")") if rs else ""
                row += [_ms([r["test_acc"] for r in ok]) + n, _ms([r["test_robust_acc"] for r in ok])]
            lines.append(f"| {loss} | {method} | " + " | ".join(row) + " |")
    return lines


def timing_table(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    groups = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["model"], r["num_train"])].append(r)
    lines = [
        "| dataset | model | train samples | method | s / epoch (measured) | s / sample (ms) | × standard |",
        "|---|---|---|---|---|---|---|",
    ]
    for (dataset, model, n), rs in groups.items():
        base = statistics.mean(r["seconds"] for r in rs if r["method"] == "none")
        for method in METHODS:
            secs = [r["seconds"] for r in rs if r["method"] == method]
            if not secs:
                continue
            m = statistics.mean(secs)
            lines.append(
                f"| {dataset} | {model} | {n} | {method} | {m:.2f} ({', '.join(f'{s:.2f}' for s in secs)})"
                f" | {1000 * m / n:.3f} | {m / base:.1f} |"
            )
    return lines


def cost_from_runs(path: Path) -> list[str]:
    """Training seconds per epoch (evaluation excluded) of the accuracy runs, per method, and the ratio
    to standard training; the runs ran one after another in one process on a shared CPU."""
    runs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    per = defaultdict(list)
    for r in runs:
        if r.get("status", "completed") == "completed":
            per[r["key"]["method"]].append(r["train_seconds"] / r["epochs"])
    if "none" not in per:
        return []
    base = statistics.median(per["none"])
    lines = ["| method | s / epoch, median (min-max) | runs | × standard |", "|---|---|---|---|"]
    for method in METHODS:
        if per.get(method):
            v = per[method]
            lines.append(
                f"| {method} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) | {len(v)} | "
                f"{statistics.median(v) / base:.1f} |"
            )
    return lines


def provenance() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    return (
        f"torch {torch.__version__}, {platform.machine()}, CPU, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', '?')}, git {commit}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("digits", "mnist", "timing"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--mnist-train", type=int, default=2000)
    p.add_argument("--smoke", action="store_true")
    p.add_argument(
        "--losses",
        nargs="+",
        default=(),
        choices=[cli_name(k) for k in LOSSES],
        help="digits/mnist: the losses to run (default all of LOSSES)",
    )
    p.add_argument("--only", nargs="*", default=(), help="timing only: datasets to time (default all)")
    p.add_argument("--device", default="cpu", help="timing only: cuda times resnet18 on synthetic CIFAR-10")
    p.add_argument("--out-dir", type=Path, default=OUT)
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.smoke:
        args.seeds, args.epochs, args.mnist_train = (
            args.seeds[:1],
            args.epochs or 2,
            min(args.mnist_train, 500),
        )
    if args.part == "timing":
        timing(
            args.out_dir
            / ("timing.jsonl" if args.device == "cpu" and not args.smoke else f"timing_{args.device}.jsonl"),
            args.mnist_train,
            args.device,
            64 if args.smoke else 10000,
            tuple(args.only),
        )
    elif args.part:
        run_part(
            args.part,
            args.seeds,
            args.epochs,
            args.smoke,
            args.mnist_train,
            args.out_dir / f"{args.part}.jsonl",
            tuple(args.losses),
        )
    if args.report:
        print(
            "\n".join(
                [
                    "## digits",
                    *accuracy_table(args.out_dir / "digits.jsonl"),
                    "",
                    "## mnist",
                    *accuracy_table(args.out_dir / "mnist.jsonl"),
                    "",
                    "## cost (digits runs)",
                    *cost_from_runs(args.out_dir / "digits.jsonl"),
                    "",
                    "## cost (mnist runs)",
                    *cost_from_runs(args.out_dir / "mnist.jsonl"),
                    "",
                    "## timing",
                    *timing_table(args.out_dir / "timing.jsonl"),
                    "",
                    provenance(),
                ]
            )
        )


if __name__ == "__main__":
    main()
