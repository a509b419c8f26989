"""scripts/bench_tabular.py: every block's command composes and passes lossbench's checks, and --report
renders its tables from summary.json files and the block log alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from lossbench.lifecycle.validation import check_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_tabular.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_tabular", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_block_composes_and_passes_the_checks(bench):
    blocks = bench.blocks()
    assert len(blocks) == 4 + 2 + 2 * len(bench.LDR_LOSSES)
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        for name, overrides in blocks.items():
            first = [o.split(",")[0] if "=" in o and "[" not in o else o for o in overrides]
            cfg = compose("config", [*first, "data_dir=/data"])
            check_config(cfg)
            if name.startswith("ldr-"):
                assert cfg.protocol.name == "ldr_tabular" and cfg.dataset.folds == 5
    GlobalHydra.instance().clear()


def test_report_renders_from_the_files(bench, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    for k, acc in enumerate([0.5, 0.7]):
        run = out / "ldr-vowel-ce" / f"vowel-ce-swap30-f{k}-s123"
        run.mkdir(parents=True)
        run.joinpath("summary.json").write_text(json.dumps(
            {"status": "completed", "noise": "swap30", "test_acc": acc, "provenance": {"torch": "2.x"}}))
    for seed, (lt, ce) in enumerate([(0.8, 0.7), (0.7, 0.72)]):
        for loss, acc in (("legendretron", lt), ("ce", ce)):
            run = out / f"legendretron-{loss}" / f"{loss}-clean-s{seed}"
            run.mkdir(parents=True)
            run.joinpath("summary.json").write_text(json.dumps({"status": "completed", "seed": seed,
                                                                "test_acc": acc}))
    log = [{"block": "ldr-vowel-ce", "command": "lossbench run -m ...", "cpu_s": 10.0, "wall_s": 20.0,
            "runs_trained": 2, "returncode": 0, "load_before": [1.0, 1, 1], "load_after": [2.0, 1, 1],
            "at": "2026-12-07T00:00:00+00:00"}]
    out.joinpath("blocks.jsonl").write_text("\n".join(json.dumps(e) for e in log) + "\n")
    monkeypatch.setattr("sys.argv", ["bench_tabular.py", "--report", "--out", str(out)])
    bench.main()
    text = capsys.readouterr().out
    assert "| `ce` | n/a | n/a | n/a | n/a | n/a | 60.0 ± 14.1 (2) | n/a | 5.0 |" in text
    assert "`legendretron` (LegendreTron) | 75.0 ± 7.1 (2) | 76.9 ± 2.9 (20)" in text
    assert "+4.0 points on average (1 of 2 splits better)" in text
    assert "load average 1.0-2.0" in text
