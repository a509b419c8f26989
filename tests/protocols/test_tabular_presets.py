"""The tabular presets run what the authors' code computes: ldr_tabular's losses against the formulas of
Optimization-AI/ICML2023_LDR loss.py (re-derived here), its datasets and noise, legendretron_vehicle's
optimizer against the code's explicit L2 penalty; and `lossbench reproduce` over datasets and folds."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from lossbench.lifecycle.builders import build_loss
from lossbench.protocols import compose_preset, preset_grid
from lossbench.protocols.reproduce import main as reproduce_main
from lossbench.protocols.reproduce import plan, run_subdir

C = 11
Z = torch.tensor([[2.0, -1.0, 0.5, 0.0, 1.5, -2.0, 0.3, 0.1, -0.4, 0.9, -1.2],
                  [-0.5, 0.2, 3.0, -1.0, 0.0, 0.4, -0.3, 1.1, 0.7, -2.2, 0.6],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1]], dtype=torch.float64)
Y = torch.tensor([0, 5, 10])


def _code(name: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The LDR code's loss values (loss.py, its experiment.py settings), per sample, re-derived."""
    p = z.softmax(1)
    py = p.gather(1, y[:, None])[:, 0]
    onehot = F.one_hot(y, z.shape[1]).double()
    nce = -z.log_softmax(1).gather(1, y[:, None])[:, 0] / -z.log_softmax(1).sum(1)
    if name == "gce":  # GCELoss(q = 0.7), k = 0: (1 - p_y^q) / q, no truncation
        return (1 - py**0.7) / 0.7
    if name == "sce":  # SCELoss(balance = 0.5, A = 4)
        return 0.5 * -py.log() + 0.5 * 4 * (1 - py)
    if name == "nce_rce":  # NCEandRCE(alpha = 5, beta = 10 - 5): RCE clamps p at 1e-7 and the one-hot at 1e-4
        rce = -(p.clamp(1e-7, 1) * onehot.clamp(1e-4, 1).log()).sum(1)
        return 5 * nce + 5 * rce
    if name == "nce_agce":  # NCEandAGCE(alpha 5, beta 5), AGCE a = 3, q = 1.5
        return 5 * nce + 5 * ((3 + 1) ** 1.5 - (3 + py) ** 1.5) / 1.5
    if name == "nce_aul":  # NCEandAUL(alpha 5, beta 5), AUL a = 6, q = 1.5
        return 5 * nce + 5 * ((6 - py) ** 1.5 - (6 - 1) ** 1.5) / 1.5
    if name == "ldr_kl":  # LDRLoss_V1(threshold = 0.1, Lambda = 10)
        s = F.softplus(z)
        s = s / s.mean(1, keepdim=True)
        d = (0.1 * (1 - onehot) + s - s.gather(1, y[:, None])) / 10
        return 10 * torch.log(torch.exp(d).mean(1))
    if name == "ce":
        return -py.log()
    raise KeyError(name)


@pytest.mark.parametrize("loss", ["ce", "gce", "sce", "nce_rce", "nce_agce", "nce_aul", "ldr_kl"])
def test_ldr_tabular_losses_are_the_codes(loss):
    cfg = compose_preset("ldr_tabular", [f"loss={loss}"])
    ours = build_loss(cfg.loss, C, 3).compute(Z, Y)
    assert torch.allclose(ours.double(), _code(loss, Z, Y), rtol=1e-6, atol=1e-6), loss


def test_ldr_tabular_sweeps_both_datasets_folds_and_the_codes_noise():
    cfg = compose_preset("ldr_tabular")
    grid = preset_grid(cfg)
    assert grid["dataset"] == ["vowel", "letter"] and grid["dataset.fold"] == ["0", "1", "2", "3", "4"]
    assert grid["seed"] == ["123"]  # SEED = 123
    assert grid["noise"] == ["clean", "uniform30", "uniform60", "uniform90", "swap10", "swap30", "swap50"]
    assert set(grid["loss"]) == {"ce", "gce", "sce", "nce_rce", "nce_agce", "nce_aul", "ldr_kl", "aldr_kl"}
    for noise in grid["noise"][1:]:
        model = instantiate(compose_preset("ldr_tabular", [f"noise={noise}"]).noise)
        kind = noise.rstrip("0123456789")
        assert model.rate == pytest.approx(int(noise[len(kind):]) / 100)
        assert (model.convention == "uniform") if kind == "uniform" else (model.pairs == "auto")


def test_legendretron_vehicle_weight_decay_is_the_codes_explicit_penalty():
    """The demo adds 0.5 * 0.01 * sum theta^2 to the loss and steps Adam(lr 0.01); the preset's Adam with
    weight_decay 0.01 takes the same steps (its gradient of the penalty is 0.01 theta)."""
    cfg = compose_preset("legendretron_vehicle")
    torch.manual_seed(0)
    w0 = torch.randn(5, dtype=torch.float64)
    target = torch.randn(5, dtype=torch.float64)
    ours, code = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    opt_ours = instantiate(cfg.optim)([ours])
    opt_code = torch.optim.Adam([code], lr=0.01)
    for _ in range(20):
        for w, opt, penalty in ((ours, opt_ours, 0.0), (code, opt_code, 0.5 * 0.01)):
            opt.zero_grad()
            ((w - target).pow(2).sum() + penalty * w.pow(2).sum()).backward()
            opt.step()
    assert torch.allclose(ours, code, rtol=0, atol=1e-12)
    fresh = instantiate(cfg.optim)([torch.nn.Parameter(torch.zeros(1))])
    scheduler = instantiate(cfg.scheduler)(fresh)
    lrs = []
    for _ in range(12):  # one step per epoch
        lrs.append(fresh.param_groups[0]["lr"])
        fresh.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01] * 4 + [0.0095] * 4 + [0.01 * 0.95**2] * 4)


def test_reproduce_plans_datasets_and_folds(tmp_path, capsys):
    runs, subset, _ = plan("ldr_tabular", [], "ce", "swap30", None, tmp_path / "runs", "letter", "0,3")
    assert subset == {"dataset": ["letter"], "loss": ["ce"], "noise": ["swap30"], "dataset.fold": ["0", "3"],
                      "seed": ["123"]}
    assert [r.run_dir.name for r in runs] == ["letter-ce-swap30-f0-s123", "letter-ce-swap30-f3-s123"]
    assert runs[1].choices() == {"dataset": "letter", "loss": "ce", "noise": "swap30", "dataset.fold": "3",
                                 "seed": "123"}
    pattern = "${hydra.runtime.choices.loss}-s${seed}"
    assert run_subdir(pattern, "ce", "clean", "1", dataset="vowel", fold="2") == "ce-s1"
    with pytest.raises(SystemExit):
        reproduce_main(["ldr_tabular", "--folds", "9", "--dir", str(tmp_path / "runs"), "--dry-run"])
    assert "--folds 9 not in preset ldr_tabular's grid; known: 0, 1, 2, 3, 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce_main(["apl_mnist", "--folds", "0", "--dir", str(tmp_path / "runs"), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--folds: preset apl_mnist's grid does not sweep dataset.fold" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_reproduce_ldr_tabular_end_to_end(shared_data, tmp_path, cli):
    """Two folds of vowel, 3 epochs: the runs land in their directories with the protocol's settings and
    the code's swap noise, and the report counts the two folds as replicates."""
    argv = ["reproduce", "ldr_tabular", "--datasets", "vowel", "--losses", "ce", "--noise", "swap30",
            "--folds", "0,1", "--dir", str(tmp_path / "runs"), f"data_dir={shared_data}", "trainer.epochs=3",
            "trainer.progress=none"]
    proc = cli(*argv, cwd=tmp_path, env={"COLUMNS": "200"})
    summaries = [json.loads((tmp_path / "runs" / f"vowel-ce-swap30-f{k}-s123" / "summary.json").read_text())
                 for k in (0, 1)]
    for k, s in enumerate(summaries):
        assert s["status"] == "completed" and s["protocol"] == "ldr_tabular" and s["seed"] == 123
        assert s["data"]["validation"] == f"fold {k} of 5 of the pool" and s["num_test"] == 99
        assert s["class_names"][:2] == ["hid", "hId"] and s["noise_kind"] == "swap"
        assert 0.2 < s["realized_noise_rate"] < 0.35  # 0.3 on 10 of the 11 classes
    assert summaries[0]["num_val"] + summaries[0]["num_train"] == 891
    assert "deviate from the preset in trainer.epochs=3" in proc.stdout.replace("\n", " ")
    report = cli("report", str(tmp_path / "runs"), "--format", "md", cwd=tmp_path)
    assert "over seeds and folds" in report.stdout and "(2)" in report.stdout
    assert math.isfinite(summaries[0]["test_acc"])
