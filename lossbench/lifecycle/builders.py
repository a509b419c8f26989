"""What a run is built from, from its composed config: the loss, the data with its noisy labels, the
model, the sinks its records go to, and all of them at once (``build_parts``: a job's setup phase).
The task function (lossbench.lifecycle.run), the config checks (lossbench.lifecycle.validation),
packed sweeps and ``lossbench evaluate`` build them the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from lossbench import noise as noise_lib
from lossbench.calibrate import Calibrator, build_calibrators
from lossbench.core.errors import ConfigError
from lossbench.core.sink import Sink
from lossbench.data.split import Split, check_sizes
from lossbench.data.subset import builder_config, take_subset
from lossbench.data.transforms import BatchTransform
from lossbench.detect.base import Detection
from lossbench.detect.runner import detection_context, run_detector
from lossbench.losses.base import Loss, check_reduction
from lossbench.noise.base import NoiseModel, NoisyLabels
from lossbench.reweight.base import ReweightContext, Reweighter
from lossbench.train.objective import check_training, parameter_groups
from lossbench.train.sinks import JsonlSink, progress_sinks
from lossbench.train.threads import apply_threads
from lossbench.train.trainer import Trainer, set_determinism


def build_loss(cfg: DictConfig, num_classes: int, num_train: int | None = None) -> Loss:
    """Instantiate ``cfg.loss``, passing ``num_classes`` (and ``num_train``, the size of the
    training set, for losses with per-sample state) to losses whose constructor takes them;
    ``loss.reduction`` (mean | sum, every loss) is set on the instance for the training step."""
    factory = instantiate(cfg, _partial_=True)
    given = dict(factory.keywords)
    reduction = given.pop("reduction", "mean")  # how the step reduces the batch (Objective), not the loss's
    params = inspect.signature(factory.func).parameters
    known = {"num_classes": num_classes, "num_train": num_train}
    kwargs = {k: v for k, v in known.items() if k in params and v is not None and k not in given}
    loss = factory.func(*factory.args, **given, **kwargs)
    loss.reduction = check_reduction(reduction)
    return loss


def build_data(cfg: DictConfig, split: Split | None = None) -> tuple[NoiseModel, Split, NoisyLabels]:
    """The run's dataset with its noisy labels (on the CPU): (noise model, split, noisy labels).

    ``split``: the clean dataset, already built (the runs of a pack share it).
    """
    noise_model = instantiate(cfg.noise)
    split = instantiate(builder_config(cfg.dataset)) if split is None else split
    split, noisy = noise_lib.apply(noise_model, split, int(cfg.noise_seed))
    subset = cfg.dataset.get("subset")
    if subset is not None:  # after the noise: each kept sample keeps the full run's noisy label
        try:
            split, noisy = take_subset(split, noisy, subset, int(cfg.dataset.get("subset_seed", 0)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return noise_model, split, noisy


def build_model(cfg: DictConfig, trainer: Trainer, split: Split) -> nn.Module:
    """A freshly initialised model of the run's architecture on the trainer's device
    (its initial weights come from torch's global generator)."""
    return trainer.prepare_model(instantiate(cfg.model)(split.input_shape, split.num_classes))


def _display_name(out_dir: Path, choices: dict) -> str:
    """``#N loss/noise`` for a job of a sweep; empty for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    job = HydraConfig.get().job.num
    return f"#{job} {choices.get('loss', '?')}/{choices.get('noise', '?')}"


def build_sinks(cfg, out_dir: Path, choices: dict, progress: str) -> list[Sink]:
    """metrics.jsonl always; the log lines and progress display; metrics.csv, TensorBoard and W&B when
    ``logger.csv``, ``logger.tensorboard``, ``logger.wandb`` are set."""
    sinks: list[Sink] = [JsonlSink(Path(out_dir) / "metrics.jsonl")]
    sinks.extend(progress_sinks(str(progress), name=_display_name(out_dir, choices)))
    if cfg.logger.get("csv", False) or cfg.logger.get("tensorboard", False):
        from lossbench.tracking.files import CSV_NAME, TENSORBOARD_DIR, CsvSink, TensorBoardSink

        if cfg.logger.get("csv", False):
            sinks.append(CsvSink(Path(out_dir) / CSV_NAME))
        if cfg.logger.get("tensorboard", False):
            sinks.append(TensorBoardSink(Path(out_dir) / TENSORBOARD_DIR))
    if cfg.logger.get("wandb", False):
        from lossbench.tracking.wandb import WandbSink

        sinks.append(WandbSink(cfg, Path(out_dir), choices))
    return sinks


@dataclass
class Parts:
    """Everything a run trains with, built in memory before anything is written."""

    trainer: Trainer
    seed: int
    noise_model: NoiseModel
    split: Split
    noisy: NoisyLabels
    model: nn.Module
    loss_fn: Loss
    reweight: Reweighter
    optimizer: torch.optim.Optimizer
    scheduler: object
    calibrators: list[Calibrator]
    detection: Detection | None
    adversarial: object
    robust: object
    threads: object


def build_parts(cfg: DictConfig, config: dict, out_dir: Path, resuming: bool,
                data: Callable[[DictConfig], tuple[NoiseModel, Split, NoisyLabels]],
                to_device: Callable[[Split, torch.device], Split] | None = None) -> Parts:
    """Every part a run trains with, built in memory from its config (``config``: the validated
    container of ``cfg``); nothing is written. ``data`` builds the (CPU) split with its noise,
    ``to_device`` moves it to the trainer's device (default ``Split.to``). A detector's scores are
    computed here (read back from ``out_dir`` when ``resuming``) and written later by the run."""
    trainer = Trainer(**config["trainer"])
    seed = int(cfg.seed)
    set_determinism(seed, trainer.deterministic)
    noise_model, split, noisy = data(cfg)
    try:
        check_sizes(split)
    except ValueError as exc:
        raise ConfigError(f"dataset: {exc}") from None
    device = trainer.torch_device
    split = split.to(device) if to_device is None else to_device(split, device)
    torch.manual_seed(seed)
    model = build_model(cfg, trainer, split)
    threads = apply_threads(trainer.threads, model, BatchTransform(split, trainer.channels_last)(
        split.x_train[:2], train=False), trainer.batch_size, device)
    loss_fn = trainer.prepare_loss(build_loss(cfg.loss, split.num_classes, len(split.y_train)))
    calibrators = build_calibrators(cfg.get("calibrator"))
    for calibrator in calibrators:
        calibrator.check(len(split.y_val), split.num_classes)
    reweight = instantiate(cfg.reweight)
    adversarial = instantiate(cfg.adversarial)
    check_training(loss_fn, reweight, split.y_train_noisy, trainer.batch_size, device, adversarial)
    detector = instantiate(cfg.detect)
    # computed here, written with noise.npz once nothing can refuse the run any more
    detection = run_detector(detector, detection_context(
        split, seed, device, trainer.eval_batch_size,
        make_model=lambda s: build_model(cfg, trainer, s),
        train=lambda m, s, epochs: _warmup(cfg, trainer, m, s, epochs, seed),
    ), out_dir, reuse=resuming, save=False)
    reweight.setup(ReweightContext(
        split=split, loss=loss_fn, true_T=noisy.expected_T, device=device, seed=seed,
        make_model=lambda: build_model(cfg, trainer, split),
        train_warmup=lambda m, epochs: _warmup(cfg, trainer, m, split, epochs, seed),
        detection=detection,
    ))
    adversarial.setup(split)
    robust = instantiate(cfg.attack)
    robust.setup(split)
    optimizer = instantiate(cfg.optim)(parameter_groups(model, loss_fn))
    scheduler = instantiate(cfg.scheduler)(optimizer)
    return Parts(trainer, seed, noise_model, split, noisy, model, loss_fn, reweight, optimizer,
                 scheduler, calibrators, detection, adversarial, robust, threads)


def _warmup(cfg: DictConfig, trainer: Trainer, model, split, epochs: int, seed: int):
    """Train ``model`` with cross-entropy on the noisy labels for ``epochs`` (estimators).

    The run's optimizer at a constant learning rate: the run's scheduler is sized
    for ``trainer.epochs``, not for the warm-up.
    """
    from lossbench.losses.comp_sum import CrossEntropy

    warm = replace(trainer, epochs=int(epochs), progress="none", checkpoint_every=0)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    warm.fit(model, CrossEntropy(), Reweighter(), optimizer, scheduler, split, seed)
    return model
