"""scripts/apl_mnist_reference.py: the reference cells come from completed, unmodified runs only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "apl_mnist_reference.py"


def _load():
    spec = importlib.util.spec_from_file_location("apl_mnist_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, loss: str, noise: str, seed: int, acc: float | None, overrides=()) -> None:
    run = root / f"{loss}-{noise}-s{seed}"
    (run / ".hydra").mkdir(parents=True)
    history = [{"epoch": 0, "train_seconds": 10.0, "seconds": 12.0, "test_acc": 0.5}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(h) for h in history) + "\n")
    if acc is not None:
        (run / "summary.json").write_text(json.dumps({
            "status": "completed", "protocol": "apl_mnist", "test_acc": acc, "wall_time_s": 30.0,
            "overrides": ["+experiment=apl_mnist", f"loss={loss}", f"noise={noise}", f"seed={seed}",
                          "data_dir=/d", *overrides]}))


def test_reference_cells_and_markdown(tmp_path, monkeypatch):
    script = _load()
    data = tmp_path / "apl_mnist.yaml"
    data.write_text("preset: apl_mnist\nreference: []\nclaims: []\n")
    monkeypatch.setattr(script, "DATA_FILE", data)
    root = tmp_path / "runs"
    _run(root, "ce", "sym80", 0, 0.90)
    _run(root, "ce", "sym80", 1, 0.94)
    _run(root, "gce", "sym80", 0, 0.80, overrides=("trainer.epochs=2",))   # modified: not a reference
    _run(root, "nce_rce", "sym80", 0, None)                                  # still training
    runs = script._runs(root)
    assert script.write_reference(runs, "test") == 1
    written = yaml.safe_load(data.read_text())
    assert written["reference"] == [{"loss": "ce", "noise": "sym80", "mean": 92.0, "std": pytest.approx(2.83),
                                     "n": 2, "mark": "[lossbench]", "source": "test"}]
    assert written["claims"] == []
    text = script.markdown(runs, root)
    assert "| ce | not run | not run | not run | 92.00 ± 2.83 (2) |" in text and "# apl_mnist" in text
    assert "| gce | not run | not run | not run | not run |" in text
    assert "| nce_rce-sym80-s0 | training | 1 | 50.00 | 10 | 12 |  |" in text


def test_markdown_page_keeps_the_hand_written_sections(tmp_path):
    script = _load()
    page = tmp_path / "apl_mnist.md"
    kept = "## GCE at sym 0.8: cause\n\nfindings\n\n## More\n\nx\n"
    page.write_text("# old title\n\nold table\n\n" + kept)
    script.write_markdown(page, "# new title\n\nnew table\n")
    assert page.read_text() == "# new title\n\nnew table\n\n" + kept
    fresh = tmp_path / "fresh.md"
    script.write_markdown(fresh, "# t\n")
    assert fresh.read_text() == "# t\n"
