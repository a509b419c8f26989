"""The short table a finished run prints: its headline figures and where its files are.

As Lightning's ``trainer.test`` does: test accuracy, the best validation accuracy (on the noisy
labels, what a practitioner can select on) and its epoch, the test NLL and ECE before and after
temperature scaling (fitted on the noisy validation labels), the run's folder and files. Plain
text (no rich), so that a run imports nothing for it.
"""

from __future__ import annotations

from pathlib import Path

FILES = ("summary.json", "metrics.jsonl", "noise.npz", "model_final.pt", "model_best.pt", "run.log",
         "metrics.csv", "tensorboard")


def _pct(value) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "n/a"


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"


def end_of_run_table(summary: dict, out_dir: Path) -> str:
    """The lines (one string) for a run's summary ``summary`` written in ``out_dir``."""
    out_dir = Path(out_dir)
    status = summary.get("status", "?")
    epochs = summary.get("epochs")
    seconds = summary.get("wall_time_s")
    took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    head = f"lossbench: run {status}, {epochs} epoch{'s' if epochs != 1 else ''}{took}"
    lines = [head]
    if status == "diverged":
        lines[0] = f"lossbench: run diverged at epoch {summary.get('diverged_epoch')} (loss not finite)"
    else:
        width = 34
        lines.append(f"  {'test accuracy':{width}}{_pct(summary.get('test_acc'))}")
        best_epoch = summary.get("best_val_epoch_noisy")
        at_best = summary.get("test_acc_at_best_val_noisy")
        there = f" (test accuracy there {_pct(at_best)})" if at_best is not None else ""
        best = _pct(summary.get("best_val_acc_noisy"))
        lines.append(f"  {'best validation accuracy (noisy)':{width}}{best} at epoch {best_epoch}{there}")
        scaled = "test_ece_ts_noisy" in summary
        if scaled:
            t = summary.get("temperature_noisy")
            lines.append(f"  {'':{width}}before -> after temperature scaling"
                         + (f" (T = {t:.3f}, fitted on the noisy validation labels)" if t else ""))
        for name, key in (("test NLL", "test_nll"), ("test ECE (15 bins)", "test_ece")):
            after = f" -> {_num(summary.get(f'{key}_ts_noisy'))}" if scaled else ""
            lines.append(f"  {name:{width}}{_num(summary.get(key))}{after}")
        stopping = summary.get("early_stopping") or {}
        if stopping.get("stopped_epoch"):
            lines.append(f"  {'early stopping':{width}}after epoch {stopping['stopped_epoch']} "
                         f"({stopping['monitor']} best at epoch {stopping['best_epoch']})")
        if summary.get("cut_down"):
            cut = ", ".join(f"{k}={v}" for k, v in summary["cut_down"].items())
            lines.append(f"  {'cut down':{width}}{cut} (a smoke test, not a result)")
    files = [name for name in FILES if (out_dir / name).exists()]
    lines.append(f"  {out_dir}: {', '.join(files)}")
    return "\n".join(lines)
