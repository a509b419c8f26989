"""Checkpoints written atomically with a digest, loaded back with weights_only=True."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import torch

from lossbench.core.io import atomic_file

log = logging.getLogger(__name__)

MAGIC = b"LOSSBENCH-CKPT1\n"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that is truncated, altered, or not a checkpoint."""


def save_checkpoint(path: Path, state: dict, sync: bool = True) -> None:
    """Serialize ``state``, prefix its sha256, write it atomically (``sync``: fsynced before the rename).

    The temporary file has a unique name (two writers never share one) and is
    removed if the write fails (a full disk leaves no partial file behind).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    with atomic_file(Path(path), "wb", sync=sync) as f:
        f.write(MAGIC + digest + b"\n" + payload)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint, verify its digest, unpickle only tensors and plain data."""
    raw = Path(path).read_bytes()
    header_len = len(MAGIC) + 65
    if not raw.startswith(MAGIC) or len(raw) < header_len:
        raise CorruptCheckpoint(f"{path}: not a lossbench checkpoint or truncated header")
    digest = raw[len(MAGIC) : header_len - 1].decode(errors="replace")
    payload = raw[header_len:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptCheckpoint(f"{path}: content does not match its sha256 (truncated or altered)")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a bad archive
        raise CorruptCheckpoint(f"{path}: cannot be read ({exc})") from exc


def rng_states(batch: torch.Generator, augment: torch.Generator, attack: torch.Generator,
               device: torch.device, dropout: torch.Generator | None = None) -> dict:
    """The random streams a training checkpoint carries: the batch order's, the augmentation's,
    the attack's and the dropout masks' generators, torch's global CPU state and, on CUDA, the device's."""
    return {
        "batch": batch.get_state(),
        "augment": augment.get_state(),
        "attack": attack.get_state(),
        **({"dropout": dropout.get_state()} if dropout is not None else {}),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng_states(rng: dict, batch: torch.Generator, augment: torch.Generator,
                       attack: torch.Generator, device: torch.device,
                       dropout: torch.Generator | None = None) -> None:
    """Set the streams ``rng_states`` saved (generator states are CPU byte tensors, whatever
    ``map_location`` did to them). A checkpoint from before the dropout stream leaves it as seeded."""
    batch.set_state(rng["batch"].cpu())
    augment.set_state(rng["augment"].cpu())
    attack.set_state(rng["attack"].cpu())
    if dropout is not None and rng.get("dropout") is not None:
        dropout.set_state(rng["dropout"].cpu())
    torch.set_rng_state(rng["torch"].cpu())
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"].cpu(), device)
