"""Fabricated run directories, shaped like the ones `lossbench run` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FAMILY = {"ce": "comp-sum", "gce": "robust", "mae": "robust", "focal": "calibration"}
RATE = {"clean": 0.0, "sym20": 0.2, "sym60": 0.6}


def _config(loss: str, noise: str, seed: int, extra: dict | None = None) -> dict:
    config = {
        "seed": seed,
        "noise_seed": seed,
        "dataset": {"_target_": "lossbench.data.digits.digits", "test_size": 0.25},
        "model": {"_target_": "lossbench.models.mlp.MLP", "hidden": [256, 256]},
        "loss": {"_target_": f"x.{loss}"},
        "noise": {"_target_": "x.Symmetric", "rate": RATE.get(noise, 0.4)},
        "trainer": {"epochs": 3},
    }
    for key, value in (extra or {}).items():
        group, name = key.split(".")
        config[group][name] = value
    return config


def _yaml(data) -> str:
    return json.dumps(data)  # JSON is YAML


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, loss, noise, seed, status="completed", **figures)``: one fabricated run dir.

    ``status`` "completed"/"diverged" writes summary.json, "failed" failure.json,
    "unfinished" neither. ``history`` (list of dicts) becomes metrics.jsonl;
    ``config`` (dotted keys) changes the config; ``choices`` the Hydra choices (``{"dataset": "mnist"}``);
    ``root`` the folder the run goes in (default tmp_path/sweep); other keywords go into the summary.
    """

    def make(name: str, loss: str, noise: str, seed: int, status: str = "completed",
             history: list[dict] | None = None, config: dict | None = None, choices: dict | None = None,
             root: Path | None = None, **figures) -> Path:
        run = (root or tmp_path / "sweep") / name
        (run / ".hydra").mkdir(parents=True)
        cfg = _config(loss, noise, seed, config)
        overrides = [f"loss={loss}", f"noise={noise}", f"seed={seed}"]
        overrides += [f"{k}={v}" for k, v in (config or {}).items()]
        choices = {"dataset": "digits", "model": "mlp", "loss": loss, "noise": noise, "reweight": "none",
                   **(choices or {})}
        (run / ".hydra" / "config.yaml").write_text(_yaml(cfg))
        (run / ".hydra" / "overrides.yaml").write_text(_yaml(overrides))
        (run / ".hydra" / "hydra.yaml").write_text(_yaml(
            {"hydra": {"runtime": {"choices": {**choices, "hydra/launcher": "basic"}}}}))
        for record in history or []:
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if status in ("completed", "diverged"):
            summary = {"status": status, **choices, "loss_family": FAMILY.get(loss), "seed": seed,
                       "noise_kind": "symmetric", "noise_rate": RATE.get(noise, 0.4), **figures,
                       "overrides": overrides, "provenance": {"torch": "2.x"}, "config": cfg}
            (run / "summary.json").write_text(json.dumps(summary))
        elif status == "failed":
            failure = {"status": "failed", "phase": "setup", "error": "ValueError: bad q\nmore",
                       "traceback": "Traceback ...", **choices, "overrides": overrides}
            (run / "failure.json").write_text(json.dumps(failure))
        return run

    return make


def write_wandb_file(run_dir: Path, run_id: str, summary: dict, config: dict,
                     history: list[dict] = ()) -> Path:
    """A W&B offline run file as wandb lays it out (``wandb/offline-run-<time>-<id>/run-<id>.wandb``),
    framed as lossbench/tracking/wandb_file.py reads it: small records, one FULL chunk each."""
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2 as pb

    def items(kind, data: dict):
        return [kind(key=k, value_json=json.dumps(v)) for k, v in data.items()]

    records = [pb.Record(run=pb.RunRecord(run_id=run_id, project="p",
                                          config=pb.ConfigRecord(update=items(pb.ConfigItem, config))))]
    records += [pb.Record(history=pb.HistoryRecord(item=items(pb.HistoryItem, row))) for row in history]
    records.append(pb.Record(summary=pb.SummaryRecord(update=items(pb.SummaryItem, summary))))
    records.append(pb.Record(exit=pb.RunExitRecord(exit_code=0)))
    data = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for record in records:
        payload = record.SerializeToString()
        assert len(payload) < 30_000, "keep fabricated records inside one block"
        if 32 * 1024 - len(data) % (32 * 1024) < 7 + len(payload):
            data += bytes(32 * 1024 - len(data) % (32 * 1024))
        data += struct.pack("<IHB", zlib.crc32(payload, zlib.crc32(bytes([1]))), len(payload), 1) + payload
    folder = Path(run_dir) / "wandb" / f"offline-run-20261201_100000-{run_id}"
    folder.mkdir(parents=True)
    path = folder / f"run-{run_id}.wandb"
    path.write_bytes(bytes(data))
    return path
