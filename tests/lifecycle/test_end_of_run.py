"""The short table a finished run prints (issue 26, item 10), as Lightning's trainer.test does."""

from __future__ import annotations

from lossbench.lifecycle.summary_table import end_of_run_table


def test_the_table_holds_the_figures_a_researcher_looks_at_first(run_once):
    out, summary, proc = run_once("trainer.epochs=2")
    text = proc.stdout
    assert f"test accuracy {100 * summary['test_acc']:.2f}%" in " ".join(text.split())
    best = f"{100 * summary['best_val_acc_noisy']:.2f}% at epoch {summary['best_val_epoch_noisy']}"
    assert best in " ".join(text.split())
    assert f"{summary['test_ece']:.4f} -> {summary['test_ece_ts_noisy']:.4f}" in text
    assert f"{summary['test_nll']:.4f} -> {summary['test_nll_ts_noisy']:.4f}" in text
    assert str(out) in text and "summary.json" in text and "metrics.jsonl" in text


def test_no_table_when_the_console_is_asked_to_stay_quiet(run_once):
    _, _, proc = run_once("trainer.epochs=1", "trainer.progress=none")
    assert "test accuracy" not in proc.stdout


def test_a_diverged_run_says_so_and_a_run_without_calibrators_has_no_after_column(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    text = end_of_run_table({"status": "diverged", "diverged_epoch": 3, "epochs": 2}, tmp_path)
    assert "diverged at epoch 3" in text and "test accuracy" not in text
    plain = {"status": "completed", "epochs": 1, "test_acc": 0.5, "test_nll": 1.0, "test_ece": 0.1,
             "best_val_acc_noisy": 0.4, "best_val_epoch_noisy": 1, "wall_time_s": 1.0}
    text = end_of_run_table(plain, tmp_path)
    assert "after temperature scaling" not in text and "test ECE" in text
