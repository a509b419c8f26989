"""The reader of wandb's run files, on files wandb itself wrote."""

from __future__ import annotations

import shutil

import pytest

from lossbench.tracking.wandb_file import (
    BLOCK_SIZE,
    CorruptRunFile,
    read_payloads,
    read_run,
    run_files,
)

BIG = "x" * 100_000  # a config record longer than a block: first, middle and last chunks


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """An offline run written by wandb: a big config, 400 steps, nested summary, exit code 3."""
    import wandb

    root = tmp_path_factory.mktemp("wandb_file")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_CONFIG_DIR", str(root / "config"))
        wandb.teardown()
        run = wandb.init(dir=root, project="p", group="g", job_type="digits", name="n", tags=["a", "b"],
                         notes="hi", config={"big": BIG, "loss": "focal", "loss.gamma": 2.5},
                         reinit="finish_previous")
        for step in range(400):
            run.log({"epoch": step, "value": step / 8, "text": "y" * (step % 60)}, step=step)
        run.config.update({"late": 1})
        run.summary["nested"] = {"list": [1, None, 2.5], "deep": {"x": "z"}}
        run.summary["gone"] = 1
        del run.summary["gone"]
        run.finish(exit_code=3)
        wandb.teardown()
    return root


def test_reads_back_what_wandb_wrote(written):
    [path] = run_files(written)  # the latest-run link is not listed twice
    assert path.stat().st_size > 2 * BLOCK_SIZE
    run = read_run(path)
    assert (run.project, run.group, run.job_type, run.name, run.notes) == ("p", "g", "digits", "n", "hi")
    assert run.tags == ["a", "b"] and run.run_id and run.exit_code == 3
    assert run.config == {"big": BIG, "loss": "focal", "loss.gamma": 2.5, "late": 1}
    assert [row["epoch"] for row in run.history] == list(range(400))
    assert all(row["value"] == row["epoch"] / 8 and row["text"] == "y" * (row["epoch"] % 60)
               for row in run.history)
    assert run.summary["nested"] == {"list": [1, None, 2.5], "deep": {"x": "z"}}
    assert "gone" not in run.summary
    assert run.summary["value"] == 399 / 8 and run.run_dir == written


def test_torn_tail_reads_the_complete_records(written, tmp_path):
    [path] = run_files(written)
    data = path.read_bytes()
    torn = tmp_path / "run-torn.wandb"
    torn.write_bytes(data[: len(data) - 20])
    run = read_run(torn)
    assert run.exit_code is None
    assert len(run.history) == 400 and run.config["loss"] == "focal"


def test_corruption_is_reported(written, tmp_path):
    [path] = run_files(written)
    data = bytearray(path.read_bytes())
    data[7 + 7 + 3] ^= 0xFF  # inside the payload of the first chunk (after file and chunk headers)
    bad = tmp_path / "run-bad.wandb"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRunFile, match="checksum mismatch"):
        list(read_payloads(bad))
    other = tmp_path / "run-other.wandb"
    shutil.copy(__file__, other)
    with pytest.raises(CorruptRunFile, match="not a wandb run file"):
        list(read_payloads(other))
