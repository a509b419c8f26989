"""Checkpoints: atomic, digest-checked, loaded with weights_only=True."""

import pytest
import torch

from lossbench.train.checkpoint import CorruptCheckpoint, load_checkpoint, save_checkpoint


def _state():
    return {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 4,
            "history": [{"epoch": 0, "test_acc": 0.5}], "rng": torch.get_rng_state()}


def test_round_trip(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state())
    back = load_checkpoint(path)
    assert back["epoch"] == 4
    assert torch.equal(back["model"]["w"], _state()["model"]["w"])
    assert back["history"] == [{"epoch": 0, "test_acc": 0.5}]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_checkpoint_is_detected(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state())
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-100] ^= 0xFF
    elif damage == "garbage":
        raw = bytearray(b"not a checkpoint at all" * 10)
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpoint):
        load_checkpoint(path)


def test_unsafe_pickle_is_refused(tmp_path):
    import hashlib
    import io

    from lossbench.train.checkpoint import MAGIC

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer)
    payload = buffer.getvalue()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    with pytest.raises(CorruptCheckpoint, match="cannot be read"):
        load_checkpoint(path)
