"""menon_mnist end to end, smoke-sized: two cells of the grid on a few hundred real MNIST images for one
epoch through `lossbench reproduce`, then `report --against menon_mnist` with both published columns."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from lossbench.report.cli import main as report_main


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as MNIST's: magic (0, 0, uint8 = 0x08, ndim), big-endian sizes, then the bytes."""
    path.write_bytes(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory, shared_data) -> Path:
    """The first 320 training and 100 test images of MNIST, in torchvision's layout."""
    import torchvision.datasets as tvd

    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, train, n in (("train", True, 320), ("t10k", False, 100)):
        full = tvd.MNIST(str(shared_data), train=train, download=False)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", full.data[:n].numpy())
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", full.targets[:n].numpy())
    return root


@pytest.mark.slow
def test_smoke_reproduce_menon_mnist_then_both_published_columns(small_mnist, tmp_path, cli):
    runs = tmp_path / "runs"
    proc = cli("reproduce", "menon_mnist", "--losses", "ce,phuber_ce", "--noise", "sym60", "--seeds", "0",
               "--dir", str(runs), f"data_dir={small_mnist}", "trainer.epochs=1", "trainer.progress=none",
               cwd=tmp_path, env={"COLUMNS": "250"})
    for name in ("ce-sym60-s0", "phuber_ce-sym60-s0"):
        summary = json.loads((runs / name / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["protocol"] == "menon_mnist"
        assert summary["model"] == "lenet5" and summary["num_train"] == 320 and summary["epochs"] == 1
        assert summary["config"]["noise"]["rng"] == "numpy_legacy" and summary["noise_seed"] == 0
    assert "Menon et al. 2020" in proc.stdout and "[Re] Mizrahi et al. 2021" in proc.stdout
    md = tmp_path / "against.md"
    report_main([str(runs), "--against", "menon_mnist", "--out", str(md)])
    text = md.read_text()
    ce = json.loads((runs / "ce-sym60-s0" / "summary.json").read_text())["test_acc"] * 100
    assert "Menon et al. 2020" in text and "[Re] Mizrahi et al. 2021" in text
    assert "91.10 \\[figure]" in text and "98.00 ± 0.10 \\[README]" in text  # ce at rho 0.6, both sources
    assert f"{ce - 91.1:+.2f}" in text and f"{ce - 98.0:+.2f}" in text
    assert "PHuber-CE beats CE at rho 0.6 by more than 5 points" in text
