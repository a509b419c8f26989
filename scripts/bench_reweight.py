"""CE with every reweighting strategy on digits under asym40 and sym60: a Markdown accuracy table.

    python scripts/bench_reweight.py                    # seeds 0,1,2, 30 epochs -> benchmarks/reweight.md
    python scripts/bench_reweight.py --seeds 0 --epochs 5 --out /tmp/t.md

`lossbench run -m` sweeps (all jobs of a sweep in one process): one for the
plain strategies (none, class_balanced, loss_based), one per transition-matrix
strategy (importance, forward, backward, rent) over reweight.transition=true,anchor.
The table is built from the runs' summary.json files only. Re-running with the
same --sweep-dir skips finished runs, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN = ("none", "class_balanced", "loss_based")
TRANSITION = ("importance", "forward", "backward", "rent")
NOISES = ("asym40", "sym60")


def sweep_commands(seeds: list[int], epochs: int, sweep_dir: Path, extra: list[str]) -> list[list[str]]:
    common = [
        "loss=ce",
        f"noise={','.join(NOISES)}",
        f"seed={','.join(map(str, seeds))}",
        f"trainer.epochs={epochs}",
        "trainer.checkpoint_every=0",
        "trainer.progress=none",
        *extra,
    ]
    # one sweep per transition strategy: lossbench's override check composes each swept
    # value alone, and reweight.transition exists only once reweight is one of them
    return [
        ["lossbench", "run", "-m", f"reweight={','.join(PLAIN)}", *common,
         f"hydra.sweep.dir={sweep_dir / 'plain'}"],
        *(["lossbench", "run", "-m", f"reweight={name}", "reweight.transition=true,anchor", *common,
           f"hydra.sweep.dir={sweep_dir / name}"] for name in TRANSITION),
    ]


def collect(sweep_dir: Path) -> dict[tuple[str, str, str], list[dict]]:
    """Summaries below ``sweep_dir`` keyed by (strategy, transition source or "", noise)."""
    runs: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for path in sorted(sweep_dir.glob("*/*/summary.json")):
        s = json.loads(path.read_text())
        source = s.get("reweight_transition_source", "")
        if not source and s["reweight"] in TRANSITION:  # diverged before a summary of T
            transition = s["config"]["reweight"].get("transition")
            source = "true" if transition is True else str(transition)
        runs[(s["reweight"], source, s["noise"])].append(s)
    return runs


def _cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "n/a"
    values = [v * scale for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def _acc(rs: list[dict], key: str) -> str:
    done = [s[key] for s in rs if s.get("status") == "completed"]
    cell = _cell(done)
    failed = len(rs) - len(done)
    return cell + (f" ({failed} diverged)" if failed else "")


def render(runs: dict, commands: list[str]) -> str:
    first = next((s for rs in runs.values() for s in rs), {})
    all_runs = [s for rs in runs.values() for s in rs]
    wall_s = sum(s.get("wall_time_s", 0.0) for s in all_runs)
    prov = first.get("provenance", {})
    cfg = first.get("config", {})
    n_seeds = max((len(rs) for rs in runs.values()), default=0)
    lines = [
        "# Reweighting strategies on digits: CE under asym40 and sym60",
        "",
        f"Test accuracy (%) of `loss=ce` with each strategy, mean ± std over {n_seeds} seeds "
        f"(noise_seed = seed, so each seed also redraws the noisy labels). *final*: the model "
        "after the last epoch; *sel.*: at the epoch of best (noisy) validation accuracy. "
        "`T = true` uses the noise model's expected transition matrix (an oracle); `T = anchor` "
        "the anchor-point estimate of Patrini et al. 2017 from a model warmed up with CE on the "
        "noisy labels (10 epochs, constant learning rate, 97th percentile), whose mean absolute "
        "error against the true T is in the last columns (for scale: taking T = I scores 0.040 "
        "on asym40 and 0.120 on sym60).",
        "",
        "| strategy | T | asym40 final | asym40 sel. | sym60 final | sym60 sel. "
        "| T MAE asym40 | T MAE sym60 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = [(r, "") for r in PLAIN] + [(r, src) for r in TRANSITION for src in ("true", "anchor")]
    for name, source in order:
        row = [name, source or "–"]
        for noise in NOISES:
            rs = runs.get((name, source, noise), [])
            row += [_acc(rs, "final_test_acc"), _acc(rs, "test_acc_at_best_val_noisy")]
        for noise in NOISES:
            rs = runs.get((name, source, noise), [])
            maes = [s["reweight_transition_mae"] for s in rs if s.get("reweight_transition_mae") is not None]
            row.append(_cell(maes, scale=1.0, digits=3) if source == "anchor" else "–")
        lines.append("| " + " | ".join(row) + " |")
    trainer, optim = cfg.get("trainer", {}), cfg.get("optim", {})
    lines += [
        "",
        f"Setup: digits (scikit-learn 8x8, {first.get('num_train')} train / {first.get('num_val')} "
        f"val / {first.get('num_test')} test), MLP {cfg.get('model', {}).get('hidden')}, "
        f"SGD lr {optim.get('lr')} momentum {optim.get('momentum')} weight decay "
        f"{optim.get('weight_decay')}, cosine schedule, {trainer.get('epochs')} epochs, batch "
        f"{trainer.get('batch_size')}; every strategy with its conf/reweight default. "
        f"torch {prov.get('torch', '?')}, device {prov.get('device', '?')}, "
        f"{platform.machine()}, git {str(prov.get('git_commit', '?'))[:10]}"
        f"{' (dirty tree)' if prov.get('git_dirty') else ''}; {len(all_runs)} runs, "
        f"{wall_s / 60:.1f} min of run time in all "
        "(CPU shared with other jobs; accuracy is the point here, not time).",
        "",
        "Commands:",
        "",
        "```",
        shlex.join(["python", "scripts/bench_reweight.py", *(a for a in sys.argv[1:] if a != "--no-run")]),
        *commands,
        "```",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sweep-dir", type=Path, default=REPO / "outputs" / "bench_reweight")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "reweight.md")
    parser.add_argument("--no-run", action="store_true", help="only rebuild the table from --sweep-dir")
    parser.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sweep_dir = args.sweep_dir.resolve()
    shown = sweep_dir.relative_to(REPO) if sweep_dir.is_relative_to(REPO) else sweep_dir
    commands = sweep_commands(seeds, args.epochs, shown, args.extra)
    if not args.no_run:
        for command in commands:
            print("+", shlex.join(command), flush=True)
            subprocess.run([sys.executable, "-m", *command], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    text = render(collect(sweep_dir), [shlex.join(c) for c in commands])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
