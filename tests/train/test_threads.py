"""trainer.threads: auto from the model's cost, the cores and the sweep's parallel jobs; counts as given."""

from __future__ import annotations

import pytest
import torch

from lossbench.models.mlp import MLP
from lossbench.train import threads as T
from lossbench.train.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread_after():
    yield
    torch.set_num_threads(1)


def test_forward_flops_of_an_mlp_by_hand():
    model = MLP((64,), 10, hidden=(32,))
    x = torch.randn(5, 64)
    # two FLOPs per multiply-add of each linear layer, per sample
    assert T.forward_flops(model, x) == 5 * 2 * (64 * 32 + 32 * 10)
    assert model.training  # left as it was


@pytest.mark.parametrize(
    ("kwargs", "threads", "reason"),
    [
        (dict(setting=3, device_type="cpu", batch_flops=1e12, cores=8), 3, "set by trainer.threads"),
        (dict(setting="auto", device_type="cpu", batch_flops=1.1e7, cores=8), 1, "small model (11 MFLOP"),
        (dict(setting="auto", device_type="cpu", batch_flops=1e10, cores=8), 8, "8 cores, 1 job(s)"),
        (dict(setting="auto", device_type="cpu", batch_flops=1e10, cores=8, jobs=4), 2, "4 job(s) at once"),
        (dict(setting="auto", device_type="cpu", batch_flops=1e10, cores=2, jobs=4), 1, "2 cores"),
        (dict(setting="auto", device_type="cpu", batch_flops=1e10, cores=8, omp_limit=3), 3, "OMP_NUM"),
        (dict(setting="auto", device_type="cuda", batch_flops=None, cores=8, jobs=2), 4, "8 cores, 2 job(s)"),
    ],
)
def test_choose_threads(kwargs, threads, reason):
    choice = T.choose_threads(**kwargs)
    assert choice.threads == threads
    assert reason in choice.reason
    assert choice.setting == str(kwargs["setting"])
    assert choice.provenance() == {"num_threads": threads, "threads_setting": str(kwargs["setting"]),
                                   "threads_reason": choice.reason}


def test_small_batch_threshold_is_where_the_default_mlp_sits():
    default_mlp = MLP((64,), 10, hidden=(256, 256))
    batch_flops = T.forward_flops(default_mlp, torch.randn(64, 64))  # the default run's batch of 64
    assert batch_flops < T.SMALL_BATCH_FLOPS


@pytest.mark.parametrize("bad", [0, -2, "many", True, 1.5])
def test_bad_threads_are_refused_with_the_allowed_values(bad):
    with pytest.raises(ValueError, match=r"must be 'auto' or an integer from 1 to 1024, got "):
        Trainer(device="cpu", threads=bad)


def test_trainer_accepts_auto_and_counts():
    assert Trainer(device="cpu", threads="auto").threads == "auto"
    assert Trainer(device="cpu", threads=2).threads == 2


@pytest.mark.parametrize(("n_jobs", "cores", "workers"), [(-1, 8, 8), (-2, 8, 7), (3, 8, 3), (-20, 4, 1)])
def test_joblib_workers_follow_joblib(n_jobs, cores, workers):
    assert T.joblib_workers(n_jobs, cores) == workers


def test_parallel_jobs_outside_hydra_is_one():
    assert T.parallel_jobs(8) == (1, "one run")


@pytest.mark.parametrize(
    ("overrides", "jobs"),
    [
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 2),
        (["hydra/launcher=joblib"], 8),                     # n_jobs=-1: one job per core
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=64"], 8),
        (["hydra/launcher=submitit_local"], 8),             # every job at once
        (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=4"], 2),
        (["hydra/launcher=slurm"], 1),                      # a SLURM job has its own allocation
        ([], 1),                                            # the basic launcher: one job after another
    ],
)
def test_parallel_jobs_of_a_sweep(hydra_job, overrides, jobs):
    hydra_job(*overrides)
    assert T.parallel_jobs(8)[0] == jobs


def test_apply_threads_sets_torch_and_records_why(hydra_job, monkeypatch):
    hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    monkeypatch.setattr(T, "available_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    big = MLP((1, 28, 28), 10, hidden=(2048, 2048))
    choice = T.apply_threads("auto", big, torch.randn(2, 1, 28, 28), 256, torch.device("cpu"))
    assert choice.threads == 2 and torch.get_num_threads() == 2
    assert "joblib n_jobs=2" in choice.reason
    small = MLP((64,), 10, hidden=(16,))
    assert T.apply_threads("auto", small, torch.randn(2, 64), 64, torch.device("cpu")).threads == 1
    assert torch.get_num_threads() == 1


def test_forward_flops_of_a_convolution_by_hand():
    from torch import nn

    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, groups=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2))
    x = torch.randn(2, 3, 10, 10)
    # 2 x (C_in / groups x k x k) multiply-adds per output element
    first = 2 * (3 * 9) * (2 * 8 * 10 * 10)
    second = 2 * (4 * 9) * (2 * 8 * 8 * 8)
    assert T.forward_flops(conv, x) == first + second


def test_counting_flops_does_not_load_dynamo():
    import subprocess
    import sys

    code = ("import sys, torch; from lossbench.models.mlp import MLP; from lossbench.train.threads import "
            "forward_flops; forward_flops(MLP((64,), 10), torch.zeros(2, 64)); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_packed_workers_share_the_cores(hydra_job):
    """hydra/launcher=packed with workers=2 runs two packs at once: each gets half of the cores."""
    from lossbench.train.threads import parallel_jobs

    hydra_job("hydra/launcher=packed", "hydra.launcher.workers=2")
    assert parallel_jobs(8) == (2, "packed workers=2")
    hydra_job("hydra/launcher=packed")
    assert parallel_jobs(8) == (1, "packed workers=1")


def test_a_change_of_threads_is_carried_through_every_later_checkpoint():
    """Resumed with 2 threads, then again with 1: the run is still not bit-identical, and says so."""
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first, change = T.bitwise_record(cpu)
        assert change is None and first["changes"] == [] and first["num_threads"] == 1
        torch.set_num_threads(2)
        second, change = T.bitwise_record(cpu, first)
        assert change == "num_threads 1 -> 2"
        torch.set_num_threads(1)
        third, change = T.bitwise_record(cpu, second)
        assert change == "num_threads 2 -> 1"
        assert third["changes"] == ["num_threads 1 -> 2", "num_threads 2 -> 1"]
        assert T.bitwise_record(cpu, third)[1] is None  # the same count again adds nothing
        assert T.bitwise_record(torch.device("cpu"), {"num_threads": 1, "device": "cuda:0"})[1] == \
            "device cuda:0 -> cpu"
    finally:
        torch.set_num_threads(before)
