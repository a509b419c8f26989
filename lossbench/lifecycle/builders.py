"""What a run is built from, from its composed config: the loss, the data with its noisy labels, the
model, the sinks its records go to. The task function (lossbench.lifecycle.run), the config checks
(lossbench.lifecycle.validation), packed sweeps and ``lossbench evaluate`` build them the same way.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from lossbench import noise as noise_lib
from lossbench.core.errors import ConfigError
from lossbench.core.sink import Sink
from lossbench.data.split import Split
from lossbench.data.subset import builder_config, take_subset
from lossbench.losses.base import Loss, check_reduction
from lossbench.noise.base import NoiseModel, NoisyLabels
from lossbench.train.sinks import JsonlSink, progress_sinks
from lossbench.train.trainer import Trainer


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
