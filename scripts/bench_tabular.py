"""The tabular protocols measured: ldr_tabular on vowel and letter, legendretron_vehicle, AnyLoss on Pima.

    OMP_NUM_THREADS=1 nohup python scripts/bench_tabular.py --data-dir ../shared/data \\
        --out outputs/bench_tabular > outputs/bench_tabular.log 2>&1 &
    python scripts/bench_tabular.py --report --out outputs/bench_tabular > benchmarks/tabular.md

Each block is one `lossbench run -m` sweep (a process of its own, Hydra's basic launcher, one thread)
into --out/<block>; a block's finished runs are skipped when the script runs again, so it resumes
where it stopped. Every invocation of a block appends to --out/blocks.jsonl its command, the CPU time
of the process and its children (user + system, startup included), the wall time, the runs it
trained and the load average before and after. ``--report`` renders the Markdown tables from the
runs' summary.json files and that log only.

Blocks (the settings are the presets', see conf/protocol/ldr_tabular.yaml and legendretron_vehicle.yaml):

- ``ldr-<dataset>-<loss>``: +experiment=ldr_tabular, 5 folds, each loss at the middle of the official
  code's hyperparameter grid (the code cross-validates 3 values; that would triple the cost); vowel
  under clean and all six noise settings of the code's demo, letter under the README's three (clean,
  uniform 0.6, class-dependent 0.3), which keeps the whole table near an hour of CPU.
- ``legendretron-<loss>``: +experiment=legendretron_vehicle, seeds 0-19 (LegendreTron and its baseline,
  multinomial logistic regression: loss=ce on model=linear).
- ``pima-<loss>``: AnyLoss in its published binary form (F1 of the positive class, L = 73; and L = 30,
  the authors' tabular notebook) against CE and focal on pima_diabetes with the network and training of
  the authors' tabular experiments (doheonhan/anyloss_extension [Hyper_EXP]_Tabular.ipynb: a hidden
  layer of 2 with batch norm and sigmoid, Adam 0.01, 50 epochs, batch 5% of the training rows,
  StratifiedKFold(5, shuffle, random_state 2) test folds, standardised features), 3 seeds per fold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LDR_LOSSES = ["ce", "gce", "sce", "nce_rce", "nce_agce", "nce_aul", "ldr_kl", "aldr_kl"]
LDR_NOISE = {"vowel": ["clean", "uniform30", "uniform60", "uniform90", "swap10", "swap30", "swap50"],
             "letter": ["clean", "uniform60", "swap30"]}
FOLDS = "dataset.fold=0,1,2,3,4"
PIMA = ["dataset=pima_diabetes", "dataset.folds=5", FOLDS, "dataset.fold_holds=test",
        "dataset.split_seed=2", "dataset.stratify=true", "dataset.scaling=standard", "dataset.val_size=0",
        "model=mlp", "model.hidden=[2]", "model.batch_norm=true", "model.activation=sigmoid", "optim=adam",
        "optim.lr=0.01", "optim.weight_decay=0", "scheduler=none", "trainer.epochs=50",
        "trainer.batch_size=30", "seed=0,1,2", "noise=clean", "trainer.checkpoint_every=0"]
PIMA_LOSSES = {"anyloss": ["loss=anyloss", "loss.metric=f_beta", "loss.L=73"],
               "anyloss_L30": ["loss=anyloss", "loss.metric=f_beta", "loss.L=30"],
               "ce": ["loss=ce"], "focal": ["loss=focal"]}


DIFFERENCES = """## What differs from the authors' runs

- ldr_tabular: the code's train/test files are not all public (letter_test.npz is: 2,000 rows, a random
  tenth of the UCI file, features x / 7.5 - 1); here a seeded 10% holdout of the shared CSV, features
  scaled to [-1, 1] on the training rows. The shared vowel.csv (mlbench's Vowel) holds the speaker
  number and 9 of the 10 acoustic features (the second, x.2 of the ESL/UCI file, is absent), so vowel is
  not quite the vowel the code read. The code's KFold does not shuffle and its loader keeps one batch
  order; here KFold shuffles (seeded) and every epoch reshuffles. One seed (123), as the code.
- legendretron_vehicle: LIBSVM's vehicle.scale is scaled over all 846 rows; here to [-1, 1] from the
  training rows. lossbench's linear model has C outputs (the code's C - 1 and a fixed zero), so the
  baseline's L2 penalty covers one more weight row.
- AnyLoss: the authors standardise with the whole file's mean and std and train once per fold (a fixed
  Keras initialiser); here the training rows' statistics and 3 seeds per fold."""


def blocks() -> dict[str, list[str]]:
    """block name -> the overrides of its `lossbench run -m`, cheapest first."""
    out = {f"pima-{name}": [*PIMA, *loss] for name, loss in PIMA_LOSSES.items()}
    for loss in ("ce", "legendretron"):
        out[f"legendretron-{loss}"] = ["+experiment=legendretron_vehicle", f"loss={loss}"]
    for dataset, noise in LDR_NOISE.items():
        for loss in LDR_LOSSES:
            out[f"ldr-{dataset}-{loss}"] = ["+experiment=ldr_tabular", f"dataset={dataset}", f"loss={loss}",
                                            f"noise={','.join(noise)}", FOLDS]
    return out


def _summaries(folder: Path) -> list[dict]:
    found = []
    for path in sorted(folder.glob("*/summary.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def _log(out: Path) -> list[dict]:
    path = out / "blocks.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = blocks()
    if args.only:
        wanted = args.only.split(",")
        chosen = {k: v for k, v in chosen.items() if any(k.startswith(w) for w in wanted)}
    spent = sum(e["cpu_s"] for e in _log(out))
    for name, overrides in chosen.items():
        if args.max_cpu_minutes is not None and spent / 60 >= args.max_cpu_minutes:
            print(f"bench_tabular: {spent / 60:.1f} CPU-min spent, stopping before {name}", flush=True)
            break
        folder = out / name
        before_runs = sum(s.get("status") == "completed" for s in _summaries(folder))
        command = [sys.executable, "-m", "lossbench", "run", "-m", *overrides,
                   f"data_dir={Path(args.data_dir).resolve()}", "trainer.progress=none",
                   f"hydra.sweep.dir={folder}"]
        load = os.getloadavg()
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"bench_tabular: {name}: {shlex.join(command[2:])}", flush=True)
        proc = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        trained = sum(s.get("status") == "completed" for s in _summaries(folder)) - before_runs
        entry = {"block": name, "command": shlex.join(["lossbench", *command[3:-1]]),
                 "cpu_s": cpu, "wall_s": time.perf_counter() - started, "runs_trained": trained,
                 "returncode": proc.returncode, "load_before": load, "load_after": os.getloadavg(),
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(out / "blocks.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        spent += cpu
        print(f"bench_tabular: {name}: {trained} runs, {cpu:.0f} CPU-s, load {entry['load_after'][0]:.1f}",
              flush=True)


# ---------------------------------------------------------------------------------------------- report


def _cell(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "n/a"
    scaled = [v * scale for v in values]
    std = statistics.stdev(scaled) if len(scaled) > 1 else 0.0
    return f"{statistics.fmean(scaled):.1f} ± {std:.1f} ({len(scaled)})"


def _cpu_per_run(log: list[dict], names: list[str]) -> tuple[float, int]:
    """(mean CPU-seconds per trained run, runs) over the invocations of the named blocks."""
    entries = [e for e in log if e["block"] in names]
    runs = sum(e["runs_trained"] for e in entries)
    return (sum(e["cpu_s"] for e in entries) / runs if runs else float("nan")), runs


def _machine(log: list[dict]) -> str:
    loads = [e["load_before"][0] for e in log] + [e["load_after"][0] for e in log]
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    when = f"{log[0]['at']} to {log[-1]['at']}" if log else "?"
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    return (f"{os.cpu_count()} cores ({cpu}, {platform.machine()}), shared with other sessions: 1-minute "
            f"load average {load} at the blocks' starts and ends; measured {when} UTC")


def _ldr_table(out: Path, log: list[dict], dataset: str) -> list[str]:
    noises = LDR_NOISE[dataset]
    lines = [f"| loss | {' | '.join(noises)} | CPU-s per run |", "|---|" + "---|" * (len(noises) + 1)]
    for loss in LDR_LOSSES:
        name = f"ldr-{dataset}-{loss}"
        runs = [s for s in _summaries(out / name) if s.get("status") == "completed"]
        cells = [_cell([s["test_acc"] for s in runs if s["noise"] == n]) for n in noises]
        cpu, _ = _cpu_per_run(log, [name])
        lines.append(f"| `{loss}` | " + " | ".join(cells) + f" | {cpu:.1f} |")
    return lines


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    log = _log(out)
    every = [s for b in blocks() for s in _summaries(out / b)]
    prov = every[0].get("provenance", {}) if every else {}
    commits = sorted({str(s.get("provenance", {}).get("git_commit"))[:10] for s in every})
    total = sum(e["cpu_s"] for e in log)
    parts = ["# Tabular protocols (issue 25): ldr_tabular, legendretron_vehicle, AnyLoss on Pima", "",
             f"Made by `python scripts/bench_tabular.py --data-dir ../shared/data --out {args.out}` (the "
             f"runs, {total / 60:.0f} CPU-minutes in all) and `python scripts/bench_tabular.py --report "
             f"--out {args.out}` (this file). Machine: {_machine(log)}. torch {prov.get('torch', '?')}; the "
             f"runs' git commits (the worktree moved on while they ran): {', '.join(commits) or '?'}. One "
             "thread per run. CPU-s per run: the CPU time (user + system) of a block's `lossbench run -m` "
             "process and its children divided by the runs it trained, process startup included. Cells: "
             "mean ± std (runs), in %, of the test set of each run.", ""]
    for dataset, what in (("vowel", "all seven noise settings of the code's demo script"),
                          ("letter", "the README's three settings (cost: see the script's docstring)")):
        parts += [f"## ldr_tabular, {dataset}: test accuracy (%), last epoch, mean ± std over 5 folds", "",
                  f"`+experiment=ldr_tabular dataset={dataset}`, {what}; each loss at the middle value of "
                  "the official code's grid (the code cross-validates three values; not run here). "
                  "uniformNN: the LDR code's uniform noise at rate 0.NN (redrawn from all C classes), "
                  "swapNN: its class-dependent swaps at rate 0.NN.", "", *_ldr_table(out, log, dataset), ""]
    lt = {loss: [s for s in _summaries(out / f"legendretron-{loss}") if s.get("status") == "completed"]
          for loss in ("legendretron", "ce")}
    by_seed = {loss: {s["seed"]: s["test_acc"] for s in runs} for loss, runs in lt.items()}
    shared = sorted(set(by_seed["legendretron"]) & set(by_seed["ce"]))
    diffs = [by_seed["legendretron"][k] - by_seed["ce"][k] for k in shared]
    wins = sum(d > 0 for d in diffs)
    parts += ["## legendretron_vehicle: test accuracy (%), 20 splits (seeds 0-19)", "",
              "`+experiment=legendretron_vehicle`: linear model, Adam 0.01, x0.95 every 4 epochs, L2 0.01, "
              "240 epochs, batch 64, float64; 80/20 splits by train_test_split(random_state=seed).", "",
              "| loss | ours | published (legendretron_demo.ipynb) [code] | CPU-s per run |",
              "|---|---|---|---|"]
    for loss, label in (("legendretron", "`legendretron` (LegendreTron)"),
                        ("ce", "`ce` (multinomial logistic regression)")):
        published = "76.9 ± 2.9 (20)" if loss == "legendretron" else "not in the repository"
        cpu, _ = _cpu_per_run(log, [f"legendretron-{loss}"])
        parts.append(f"| {label} | {_cell([s['test_acc'] for s in lt[loss]])} | {published} | {cpu:.1f} |")
    if diffs:
        parts += ["", f"LegendreTron minus logistic regression, paired by split: "
                      f"{statistics.fmean(diffs) * 100:+.1f} points on average ({wins} of {len(diffs)} "
                      "splits better)."]
    parts += ["", "## AnyLoss (binary F1) against CE and focal on pima_diabetes", "",
              "The authors' tabular setting (see the script's docstring), 5 stratified test folds x 3 seeds; "
              "test F1 of the positive class (diabetes), balanced accuracy and accuracy, in %. focal: "
              "lossbench's default gamma 3.", "",
              "| loss | F1 | balanced accuracy | accuracy | CPU-s per run |", "|---|---|---|---|---|"]
    for name, overrides in PIMA_LOSSES.items():
        runs = [s for s in _summaries(out / f"pima-{name}") if s.get("status") == "completed"]
        cpu, _ = _cpu_per_run(log, [f"pima-{name}"])
        label = " ".join(f"`{o}`" for o in overrides)
        figures = [_cell([s[key] for s in runs]) for key in ("test_f1", "test_balanced_acc", "test_acc")]
        parts.append(f"| {label} | " + " | ".join(figures) + f" | {cpu:.1f} |")
    parts += ["", DIFFERENCES]
    parts += ["", "## Commands", "", "```"]
    seen = set()
    for entry in log:
        if entry["block"] not in seen:
            seen.add(entry["block"])
            cpu, runs = _cpu_per_run(log, [entry["block"]])
            parts.append(f"{entry['command']}   # {runs} runs, {cpu * runs / 60:.1f} CPU-min")
    parts += ["```", ""]
    print("\n".join(parts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/bench_tabular", help="where the runs and blocks.jsonl go")
    p.add_argument("--data-dir", default="../shared/data", help="the folder that holds tabular/*.csv")
    p.add_argument("--only", help="comma-separated block name prefixes (pima, legendretron, ldr-vowel, ...)")
    p.add_argument("--max-cpu-minutes", type=float, help="start no block once this much CPU is spent")
    p.add_argument("--report", action="store_true", help="render the Markdown tables from --out; run nothing")
    args = p.parse_args()
    report(args) if args.report else run(args)


if __name__ == "__main__":
    main()
