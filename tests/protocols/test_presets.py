"""Every published protocol composes, and its pinned values equal the official code's settings.

The expected values are transcribed from the official repositories (read 2026-12; see each preset's
comments): HanxunH/Active-Passive-Losses configs/, Virusdoll/Active-Negative-Loss config/,
torrvision/focal_calibration train.py + train_utils.py, UCSC-REAL/cifar-10-100n main.py.
"""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.lifecycle.builders import build_loss
from lossbench.protocols import compose_preset, load_protocol, preset_grid, preset_names

LOG_1E4 = math.log(1e-4)  # RCE's A in the APL/ANL code: the one-hot clamped at 1e-4

APL_CIFAR10 = {"dataset": "cifar10", "model": "cnn8", "trainer.epochs": 120, "trainer.batch_size": 128,
               "optim.lr": 0.01, "optim.momentum": 0.9, "optim.nesterov": False, "optim.weight_decay": 1e-4,
               "scheduler": "cosine", "scheduler.eta_min": 0.0, "trainer.grad_clip": 5.0,
               "dataset.augment": "crop_flip", "dataset.val_size": 0}
BASE = {
    "apl_mnist": {"dataset": "mnist", "model": "cnn4", "trainer.epochs": 50, "trainer.batch_size": 128,
                  "optim.lr": 0.01, "optim.momentum": 0.9, "optim.nesterov": True, "optim.weight_decay": 1e-2,
                  "scheduler": "cosine", "scheduler.eta_min": 0.001, "trainer.grad_clip": 5.0,
                  "dataset.augment": None, "dataset.val_size": 0, "noise.convention": "flip",
                  "noise.count": "equal", "trainer.l1": 0.0},
    "apl_cifar10": {**APL_CIFAR10, "noise.count": "exact_per_target"},
    "apl_cifar100": {"dataset": "cifar100", "model": "resnet50", "trainer.epochs": 200, "optim.lr": 0.1,
                     "optim.momentum": 0.9, "optim.weight_decay": 1e-5, "scheduler.eta_min": 0.0,
                     "trainer.grad_clip": 5.0, "trainer.batch_size": 128, "dataset.val_size": 0,
                     "dataset.augment": "crop_flip_rotate"},
    "anl_cifar10": {**APL_CIFAR10, "noise.count": "exact_per_target"},
    "anl_cifar100": {"dataset": "cifar100", "model": "resnet34", "trainer.epochs": 200, "optim.lr": 0.1,
                     "optim.momentum": 0.9, "optim.weight_decay": 1e-5, "scheduler.eta_min": 0.0,
                     "trainer.grad_clip": 5.0, "trainer.batch_size": 128, "dataset.val_size": 0,
                     "dataset.augment": "crop_flip_rotate", "noise.count": "exact_per_target"},
    # HanxunH/SCELoss-Reproduce train.py, dataset.py, slurm/*.slurm
    "sce_cifar10": {"dataset": "cifar10", "model": "cnn8", "trainer.epochs": 120, "trainer.batch_size": 128,
                    "optim.lr": 0.01, "optim.momentum": 0.9, "optim.nesterov": True,
                    "optim.weight_decay": 1e-2, "scheduler": "multistep", "scheduler.milestones": [40, 80],
                    "scheduler.gamma": 0.1, "trainer.grad_clip": 5.0, "dataset.augment": "crop_flip",
                    "dataset.val_size": 0},
    "sce_cifar100": {"dataset": "cifar100", "model": "resnet34", "trainer.epochs": 150,
                     "trainer.batch_size": 128, "optim.lr": 0.01, "optim.momentum": 0.9,
                     "optim.nesterov": True, "optim.weight_decay": 1e-2, "scheduler": "multistep",
                     "scheduler.milestones": [40, 80], "scheduler.gamma": 0.1, "trainer.grad_clip": 5.0,
                     "dataset.augment": "crop_flip_rotate", "dataset.val_size": 0},
    # the code's summed loss with its own lr 0.1, wd 5e-4 and clip 2 (on the sum); its scheduler steps
    # before each epoch, so its drops come after 149 and 249 epochs (train.py)
    "mukhoti_cifar10": {"dataset": "cifar10", "model": "resnet50", "trainer.epochs": 350,
                        "trainer.batch_size": 128, "optim.lr": 0.1, "optim.momentum": 0.9,
                        "optim.weight_decay": 5e-4, "trainer.grad_clip": 2.0, "loss.reduction": "sum",
                        "scheduler": "multistep",
                        "scheduler.milestones": [149, 249], "scheduler.gamma": 0.1, "dataset.val_size": 5000,
                        "noise": "clean", "dataset.augment": "crop_flip"},
    "mukhoti_cifar100": {"dataset": "cifar100", "model": "resnet50", "trainer.epochs": 350,
                         "optim.lr": 0.1, "optim.weight_decay": 5e-4, "trainer.grad_clip": 2.0,
                         "loss.reduction": "sum", "scheduler.milestones": [149, 249],
                         "dataset.val_size": 5000},
    "cifar10n": {"dataset": "cifar10", "model": "resnet34", "trainer.epochs": 100, "trainer.batch_size": 128,
                 "optim.lr": 0.1, "optim.momentum": 0.9, "optim.weight_decay": 5e-4, "scheduler": "multistep",
                 "scheduler.milestones": [60], "scheduler.gamma": 0.1, "trainer.grad_clip": None,
                 "dataset.val_size": 0, "noise": "cifar10n_worst", "noise.labels": "worst"},
    "cifar100n": {"dataset": "cifar100", "model": "resnet34", "trainer.epochs": 100, "optim.lr": 0.1,
                  "optim.weight_decay": 5e-4, "scheduler.milestones": [60], "noise": "cifar100n"},
    # dmizr/phuber conf/hparams/mnist_lenet.yaml, conf/dataset/mnist.yaml, phuber/network.py
    "menon_mnist": {"dataset": "mnist", "model": "lenet5", "model.init": "code", "trainer.epochs": 20,
                    "trainer.batch_size": 32, "optim": "adam", "optim.lr": 1e-3, "optim.weight_decay": 1e-3,
                    "scheduler": "exp_decay", "scheduler.decay_rate": 0.1, "scheduler.decay_steps": 10000,
                    "scheduler.staircase": False, "trainer.grad_clip": None, "dataset.val_size": 0,
                    "dataset.augment": None, "noise_seed": 0, "noise.convention": "flip",
                    "noise.count": "binomial", "noise.rng": "numpy_legacy", "trainer.channels_last": True},
    # Optimization-AI/ICML2023_LDR experiment.py, models.py, optimizers.py (lr: argparse default)
    "ldr_tabular": {"dataset": "vowel", "model": "ldr_mlp", "model.width": None, "model.activation": "tanh",
                    "model.init": "xavier_normal", "trainer.epochs": 100, "trainer.batch_size": 64,
                    "optim": "sgd", "optim.lr": 0.01, "optim.momentum": 0.9, "optim.nesterov": False,
                    "optim.weight_decay": 5e-3, "scheduler": "multistep", "scheduler.milestones": [50, 75],
                    "scheduler.gamma": 0.1, "dataset.folds": 5, "dataset.fold_holds": "val",
                    "dataset.stratify": False, "dataset.test_size": 0.1, "dataset.scaling": "minmax",
                    "noise": "clean"},
    # khflam/legendretron legendretron_demo.ipynb, lib/models.py
    "legendretron_vehicle": {"dataset": "vehicle", "model": "linear", "loss": "legendretron", "optim": "adam",
                             "optim.lr": 0.01, "optim.weight_decay": 0.01, "scheduler": "step",
                             "scheduler.step_size": 4, "scheduler.gamma": 0.95, "trainer.epochs": 240,
                             "trainer.batch_size": 64, "trainer.dtype": "float64", "dataset.test_size": 0.2,
                             "dataset.val_size": 0, "dataset.stratify": False, "dataset.split_seed": 0,
                             "loss.blocks": 2, "loss.hidden": 2, "loss.depth": 4, "loss.actnorm_init": "data",
                             "noise": "clean"},
}
REPORTS = {"apl_mnist": "test_acc", "apl_cifar10": "test_acc", "apl_cifar100": "test_acc",
           "anl_cifar10": "test_acc", "anl_cifar100": "test_acc", "sce_cifar10": "best_test_acc",
           "sce_cifar100": "best_test_acc", "mukhoti_cifar10": "test_acc", "mukhoti_cifar100": "test_acc",
           "cifar10n": "best_test_acc", "cifar100n": "best_test_acc", "menon_mnist": "test_acc",
           "ldr_tabular": "test_acc", "legendretron_vehicle": "test_acc"}
# (preset, loss or noise override): pinned values
PER_CHOICE = {
    ("apl_mnist", "loss=gce"): {"loss.q": 0.7},
    ("apl_mnist", "loss=sce"): {"loss.alpha": 0.01, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("apl_mnist", "loss=nce_rce"): {"loss.alpha": 1.0, "loss.beta": 10.0, "loss.A": LOG_1E4},
    ("apl_mnist", "loss=nce_mae"): {"loss.alpha": 1.0, "loss.beta": 10.0, "loss.mae_scale": 1.0},
    ("apl_mnist", "loss=nfl_rce"): {"loss.alpha": 1.0, "loss.beta": 10.0, "loss.gamma": 0.5,
                                    "loss.A": LOG_1E4, "loss.detach_weight": True},
    ("apl_mnist", "loss=anl_ce"): {"loss.alpha": 1.0, "loss.beta": 1.0, "loss.min_prob": 1e-7,
                                   "optim.weight_decay": 0.0, "trainer.l1": 1e-6, "optim.lr": 0.01},
    ("apl_cifar10", "loss=focal"): {"loss.gamma": 0.5, "loss.detach_weight": True},
    ("apl_cifar10", "loss=sce"): {"loss.alpha": 0.1, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("apl_cifar10", "loss=rce"): {"loss.A": LOG_1E4},
    ("apl_cifar10", "loss=mae"): {"loss.scale": 1.0},
    ("apl_cifar10", "loss=nce_rce"): {"loss.alpha": 1.0, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("apl_cifar10", "loss=nfl_mae"): {"loss.alpha": 1.0, "loss.beta": 1.0, "loss.mae_scale": 1.0,
                                      "loss.detach_weight": True},
    ("apl_cifar100", "loss=sce"): {"loss.alpha": 6.0, "loss.beta": 0.1, "loss.A": LOG_1E4},
    ("apl_cifar100", "loss=nce_rce"): {"loss.alpha": 10.0, "loss.beta": 0.1, "loss.A": LOG_1E4},
    ("apl_cifar100", "loss=nce_mae"): {"loss.alpha": 10.0, "loss.beta": 1.0, "loss.mae_scale": 1.0},
    ("apl_cifar100", "loss=nfl_rce"): {"loss.alpha": 10.0, "loss.beta": 0.1, "loss.detach_weight": True},
    ("apl_cifar100", "noise=asym40"): {"noise.grouping": "blocks", "noise.count": "binomial",
                                       "noise.rate": 0.4},
    ("apl_cifar100", "noise=sym40"): {"noise.count": "exact"},
    ("apl_mnist", "noise=sym80"): {"noise.count": "equal", "noise.rate": 0.8},
    ("apl_mnist", "noise=asym20"): {"noise.count": "binomial", "noise.rate": 0.2},
    ("anl_cifar10", "loss=anl_ce"): {"loss.alpha": 5.0, "loss.beta": 5.0, "optim.weight_decay": 0.0,
                                     "trainer.l1": 5e-5},
    ("anl_cifar10", "loss=anl_fl"): {"loss.alpha": 5.0, "loss.beta": 5.0, "loss.gamma": 0.5,
                                     "loss.detach_weight": True, "optim.weight_decay": 0.0,
                                     "trainer.l1": 5e-5},
    ("anl_cifar10", "loss=nce_agce"): {"loss.alpha": 1.0, "loss.beta": 4.0, "loss.a": 6.0, "loss.q": 1.5,
                                       "optim.weight_decay": 1e-4},
    ("anl_cifar100", "loss=nce_aul"): {"loss.alpha": 10.0, "loss.beta": 0.015, "loss.a": 6.0, "loss.q": 3.0,
                                       "optim.weight_decay": 1e-5},
    ("apl_cifar10", "loss=ngce_rce"): {"loss.q": 0.1, "loss.alpha": 1.0, "loss.beta": 1.0, "loss.A": LOG_1E4,
                                       "loss.min_prob": 1e-7},
    ("apl_cifar10", "loss=ngce_mae"): {"loss.mae_scale": 1.0, "loss.min_prob": 1e-7},
    ("apl_cifar100", "loss=ngce"): {"loss.q": 0.7, "loss.scale": 1.0, "loss.min_prob": 1e-7},
    ("anl_cifar10", "loss=focal"): {"loss.gamma": 0.5, "loss.detach_weight": True},
    ("anl_cifar10", "loss=nfl_rce"): {"loss.alpha": 1.0, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("anl_cifar100", "loss=anl_ce"): {"loss.alpha": 10.0, "loss.beta": 1.0, "optim.weight_decay": 0.0,
                                      "trainer.l1": 5e-7},
    ("anl_cifar100", "loss=anl_fl"): {"loss.alpha": 10.0, "loss.beta": 1.0, "trainer.l1": 5e-7,
                                      "loss.detach_weight": True, "optim.weight_decay": 0.0},
    ("anl_cifar100", "loss=nce_rce"): {"loss.alpha": 10.0, "loss.beta": 0.1, "optim.weight_decay": 1e-5},
    ("anl_cifar100", "loss=sce"): {"loss.alpha": 6.0, "loss.beta": 0.1},
    ("anl_cifar100", "noise=asym30"): {"noise.grouping": "blocks", "noise.count": "exact_per_target"},
    ("sce_cifar10", "noise=sym40"): {"noise.convention": "flip", "noise.count": "exact"},
    ("sce_cifar100", "noise=sym80"): {"noise.convention": "flip", "noise.count": "exact"},
    ("sce_cifar10", "loss=sce"): {"loss.alpha": 0.1, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("sce_cifar100", "loss=sce"): {"loss.alpha": 6.0, "loss.beta": 1.0, "loss.A": LOG_1E4},
    ("menon_mnist", "loss=gce"): {"loss.q": 0.7},
    ("menon_mnist", "loss=phuber_ce"): {"loss.tau": 10.0},
    ("menon_mnist", "loss=phuber_gce"): {"loss.tau": 10.0, "loss.q": 0.7},
    ("menon_mnist", "loss=ce_clip"): {"loss.max_norm": 0.1, "trainer.grad_clip": None},
    ("menon_mnist", "noise=sym20"): {"noise.rate": 0.2, "noise.convention": "flip", "noise.count": "binomial",
                                     "noise.rng": "numpy_legacy"},
    ("menon_mnist", "noise=sym60"): {"noise.rate": 0.6, "noise.rng": "numpy_legacy", "noise_seed": 0},
    ("menon_mnist", "noise=clean"): {"noise": "clean", "noise_seed": 0},
    ("mukhoti_cifar10", "loss=mse"): {"optim.lr": 0.1, "optim.weight_decay": 5e-4, "trainer.grad_clip": 2.0,
                                      "loss.reduction": "mean"},
    ("mukhoti_cifar10", "loss=focal"): {"loss.gamma": 3.0, "loss.detach_weight": False},
    ("mukhoti_cifar10", "loss=flsd53"): {"loss.gamma_below": 5.0, "loss.gamma_above": 3.0,
                                         "loss.threshold": 0.2},
    ("mukhoti_cifar10", "loss=label_smoothing"): {"loss.epsilon": 0.05 * 10 / 9},
    ("mukhoti_cifar100", "loss=label_smoothing"): {"loss.epsilon": 0.05 * 100 / 99},
    ("mukhoti_cifar100", "loss=mse"): {"optim.lr": 0.1, "optim.weight_decay": 5e-4, "loss.reduction": "mean"},
    ("ldr_tabular", "dataset=letter"): {"optim.lr": 1e-3, "optim.weight_decay": 5e-3},  # the README's letter
    ("ldr_tabular", "loss=gce"): {"loss.q": 0.7},
    ("ldr_tabular", "loss=sce"): {"loss.alpha": 0.5, "loss.beta": 0.5, "loss.A": "paper"},
    ("ldr_tabular", "loss=nce_rce"): {"loss.alpha": 5.0, "loss.beta": 5.0, "loss.A": "code"},
    ("ldr_tabular", "loss=nce_agce"): {"loss.alpha": 5.0, "loss.beta": 5.0, "loss.a": 3.0, "loss.q": 1.5},
    ("ldr_tabular", "loss=nce_aul"): {"loss.alpha": 5.0, "loss.beta": 5.0, "loss.a": 6.0, "loss.q": 1.5},
    ("ldr_tabular", "loss=ldr_kl"): {"loss.lam": 10.0, "loss.margin": 0.1,
                                     "loss.score_transform": "softplus_mean"},
    ("ldr_tabular", "loss=aldr_kl"): {"loss.lam0": 10.0, "loss.alpha": 2.0, "loss.margin": 0.1,
                                      "loss.score_transform": "abs_mean", "loss.q_floor": 1e-5},
    ("ldr_tabular", "noise=uniform60"): {"noise.rate": 0.6, "noise.convention": "uniform"},
    ("ldr_tabular", "noise=swap30"): {"noise.rate": 0.3, "noise.pairs": "auto", "noise.count": "binomial"},
    ("legendretron_vehicle", "loss=ce"): {"model": "linear", "trainer.dtype": "float64", "optim.lr": 0.01},
    ("legendretron_vehicle", "seed=7"): {"dataset.split_seed": 7},
}


def _value(cfg, key: str):
    if "." not in key and key in cfg.hydra.runtime.choices:  # a group's choice; else a top-level value
        return cfg.hydra.runtime.choices[key]
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _check(cfg, expected: dict) -> None:
    for key, want in expected.items():
        got = _value(cfg, key)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12, abs=0), key
        else:
            assert got == want, key


def test_the_presets_are_the_issue_s_list():
    assert set(preset_names()) == set(BASE)


@pytest.mark.parametrize("name", sorted(BASE))
def test_preset_pins_the_official_settings(name):
    cfg = compose_preset(name)
    _check(cfg, BASE[name])
    assert cfg.protocol.name == name and cfg.protocol.reports == REPORTS[name]
    assert load_protocol(name).metric == REPORTS[name]
    for (preset, override), expected in PER_CHOICE.items():
        if preset == name:
            _check(compose_preset(name, [override]), expected)


def test_command_line_wins_over_the_preset_and_its_loss_settings():
    cfg = compose_preset("apl_mnist", ["loss=anl_ce", "optim.weight_decay=0.5", "loss.beta=3"])
    assert cfg.optim.weight_decay == 0.5 and cfg.loss.beta == 3 and cfg.trainer.l1 == 1e-6


@pytest.mark.parametrize("name", sorted(BASE))
def test_every_grid_choice_composes_and_builds(name):
    """Every loss (under the grid's first noise) and every noise (under its first loss) of the grid
    composes, and its loss, noise model and optimizer instantiate. Per-loss and per-noise settings are
    separate files (protocol_loss, protocol_noise), so this covers every file a grid job reads."""
    import torch

    grid = preset_grid(compose_preset(name))
    assert len(grid["seed"]) >= 1 and len(set(grid["loss"])) == len(grid["loss"])
    jobs = {(loss, grid["noise"][0]) for loss in grid["loss"]} | {(grid["loss"][0], n) for n in grid["noise"]}
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        for loss, noise in sorted(jobs):
            cfg = compose("config", [f"+experiment={name}", f"loss={loss}", f"noise={noise}"])
            build_loss(cfg.loss, 10, 100)
            instantiate(cfg.noise)
            instantiate(cfg.optim)([torch.nn.Parameter(torch.zeros(1))])
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", ["mnist_quick", "optuna_gce", "optuna_focal"])
def test_lossbench_s_own_presets_still_compose(name):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", [f"+experiment={name}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.protocol.name == "none"
    if name == "mnist_quick":
        assert cfg.trainer.epochs == 1 and cfg.hydra.runtime.choices.model == "cnn4"
