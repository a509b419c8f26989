"""Noisy-label detectors against the truth, and what training on the cleaned labels buys.

    python scripts/bench_detect.py --dataset digits                      # 3 seeds, 5 noise models
    python scripts/bench_detect.py --dataset mnist --seeds 0 --epochs 10 data_dir=/path/to/data
    python scripts/bench_detect.py --no-run --dataset digits              # rebuild the table only

For each noise model: CE and GCE without detection, and CE with `reweight=drop_flagged`
after each detector (recov, fast_recov, confident_learning). `lossbench run -m` sweeps,
one per detector; the table is built from the runs' summary.json files only, and a
rerun with the same --sweep-dir skips finished runs. The tables are appended to --out
under a heading per dataset (an existing section for the dataset is replaced).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOISES = ("sym20", "sym60", "asym40", "pair45", "idn40")
DETECTORS = ("recov", "fast_recov", "confident_learning")


def sweep_commands(args, sweep_dir: Path) -> dict[str, list[str]]:
    common = [
        f"dataset={args.dataset}",
        f"noise={','.join(NOISES)}",
        f"seed={args.seeds}",
        f"trainer.epochs={args.epochs}",
        "trainer.checkpoint_every=0",
        "trainer.progress=none",
        *args.extra,
    ]
    per_detector = {
        "recov": [
            f"detect.repetitions={args.repetitions}",
            f"detect.representation={args.recov_representation}",
        ],
        "fast_recov": [],
        "confident_learning": [f"detect.epochs={args.fold_epochs}"],
    }
    commands = {
        "baseline": [
            "lossbench",
            "run",
            "-m",
            "loss=ce,gce",
            "detect=none",
            *common,
            f"hydra.sweep.dir={sweep_dir / 'baseline'}",
        ]
    }
    for name in DETECTORS:
        commands[name] = [
            "lossbench",
            "run",
            "-m",
            "loss=ce",
            f"detect={name}",
            "reweight=drop_flagged",
            f"detect.warmup_epochs={args.fold_epochs}",
            *per_detector[name],
            *common,
            f"hydra.sweep.dir={sweep_dir / name}",
        ]
    return commands


def collect(sweep_dir: Path) -> dict[tuple[str, str], list[dict]]:
    """Summaries keyed by (method, noise); method is the loss without detection, else the detector."""
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(sweep_dir.glob("*/*/summary.json")):
        s = json.loads(path.read_text())
        method = s["loss"] if s.get("detect", "none") == "none" else s["detect"]
        runs[(method, s["noise"])].append(s)
    return runs


def _cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def render(runs: dict, args, commands: dict[str, list[str]]) -> str:
    all_runs = [s for rs in runs.values() for s in rs]
    first = next(iter(all_runs), {})
    cfg, prov = first.get("config", {}), first.get("provenance", {})
    n_seeds = max((len(rs) for rs in runs.values()), default=0)
    methods = ("ce", "gce", *DETECTORS)
    lines = [
        f"## {args.dataset}",
        "",
        f"Final test accuracy (%) and detection F1 (%), mean ± std over {n_seeds} seed(s) "
        "(noise_seed = seed). ce / gce: no detection. recov, fast_recov, confident_learning: CE "
        "trained with `reweight=drop_flagged` after that detector. Rate: the detector's estimated "
        "noise rate against the realized one on the training split (%).",
        "",
        "| method | "
        + " | ".join(f"{n} acc" for n in NOISES)
        + " | "
        + " | ".join(f"{n} F1" for n in NOISES)
        + " |",
        "|---|" + "---|" * (2 * len(NOISES)),
    ]
    for method in methods:
        accs = [
            _cell([s.get("test_acc") for s in runs.get((method, n), []) if s.get("status") == "completed"])
            for n in NOISES
        ]
        f1s = [
            _cell([s.get("detect_f1") for s in runs.get((method, n), [])]) if method in DETECTORS else "–"
            for n in NOISES
        ]
        lines.append(f"| {method} | " + " | ".join(accs) + " | " + " | ".join(f1s) + " |")
    lines += [
        "",
        "| detector | "
        + " | ".join(f"{n} est. / real rate" for n in NOISES)
        + " | seconds per detection | trainings |",
        "|---|" + "---|" * (len(NOISES) + 2),
    ]
    for method in DETECTORS:
        row, secs, trainings = [], [], set()
        for n in NOISES:
            rs = runs.get((method, n), [])
            row.append(
                f"{_cell([s.get('detect_estimated_rate') for s in rs])} / "
                f"{_cell([s.get('detect_realized_rate') for s in rs])}"
            )
            secs += [s["detect_seconds"] for s in rs if "detect_seconds" in s]
            trainings |= {s.get("detect_trainings") for s in rs if "detect_trainings" in s}
        lines.append(
            f"| {method} | " + " | ".join(row) + f" | {_cell(secs, 1.0, 1)} | "
            f"{', '.join(map(str, sorted(t for t in trainings if t is not None))) or '–'} |"
        )
    if any("detect_auroc" in s for s in all_runs):  # runs made before lossbench scored it have none
        lines += [
            "",
            "AUROC (%) of each detector's scores against the true mask (how well it ranks the wrong "
            "labels above the right ones, whatever its threshold):",
            "",
            "| detector | " + " | ".join(f"{n} AUROC" for n in NOISES) + " |",
            "|---|" + "---|" * len(NOISES),
        ]
        for method in DETECTORS:
            cells = [_cell([s.get("detect_auroc") for s in runs.get((method, n), [])]) for n in NOISES]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    trainer, optim = cfg.get("trainer", {}), cfg.get("optim", {})
    wall = sum(s.get("wall_time_s", 0.0) for s in all_runs)
    lines += [
        "",
        f"Setup: {args.dataset} ({first.get('num_train')} train / {first.get('num_val')} val / "
        f"{first.get('num_test')} test), MLP {cfg.get('model', {}).get('hidden')}, SGD lr {optim.get('lr')}, "
        f"cosine, {trainer.get('epochs')} epochs, batch {trainer.get('batch_size')}. recov: "
        f"{args.repetitions} repetitions x 5 folds of a logistic regression on the "
        f"{args.recov_representation}; fast_recov: 10 iterations x 5 folds of a logistic regression on the "
        f"penultimate features of an MLP warmed up {args.fold_epochs} epochs; confident_learning: 5 MLPs "
        f"trained {args.fold_epochs} epochs each for the out-of-fold probabilities. torch "
        f"{prov.get('torch', '?')}, {prov.get('device', '?')}, {platform.machine()}, git "
        f"{str(prov.get('git_commit', '?'))[:10]}{' (dirty)' if prov.get('git_dirty') else ''}; "
        f"{len(all_runs)} runs, {wall / 60:.1f} min of run time in all (2-core machine shared with other "
        "jobs: seconds are an upper bound).",
        "",
        "```",
        *(shlex.join(c) for c in commands.values()),
        "```",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    return "\n".join(lines)


HEADER = """# Noisy-label detection: ReCoV, fastReCoV, confident learning

What each detector finds, scored against the true noise mask lossbench knows, and the test
accuracy of CE trained without the flagged samples, against CE and GCE trained on all labels.
Made by `scripts/bench_detect.py`.

"""


def write_section(out: Path, dataset: str, section: str) -> None:
    text = out.read_text() if out.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(dataset)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    )
    out.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fold-epochs", type=int, default=10, help="epochs of each fold / warm-up model")
    parser.add_argument("--repetitions", type=int, default=625, help="ReCoV repetitions")
    parser.add_argument("--recov-representation", default="inputs", choices=("inputs", "features"))
    parser.add_argument("--sweep-dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "detect.md")
    parser.add_argument("--no-run", action="store_true")
    parser.add_argument(
        "--only", help="comma list of sweeps to run (baseline, recov, fast_recov, confident_learning)"
    )
    parser.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args(argv)
    sweep_dir = (args.sweep_dir or REPO / "outputs" / f"bench_detect_{args.dataset}").resolve()
    commands = sweep_commands(args, sweep_dir)
    if not args.no_run:
        only = set(args.only.split(",")) if args.only else set(commands)
        for name, command in commands.items():
            if name in only:
                print("+", shlex.join(command), flush=True)
                subprocess.run(
                    [sys.executable, "-m", *command], cwd=REPO, check=False, stdout=subprocess.DEVNULL
                )
    section = render(collect(sweep_dir), args, commands)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(args.out, args.dataset, section)
    print(section)


if __name__ == "__main__":
    main()
