"""End-to-end smoke test of the default run."""


def test_default_run_writes_summary(run_once):
    out, summary, _ = run_once("trainer.epochs=3")
    assert summary["status"] == "completed"
    assert (out / "metrics.jsonl").read_text().count("\n") == 3
    assert (out / ".hydra" / "config.yaml").exists()
    assert 0.0 <= summary["test_acc"] <= 1.0
