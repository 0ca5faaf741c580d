"""splat_lion/checkpoint.py: nested state round trips bit for bit; saves never clobber."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import checkpoint
from splat_lion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_a_nested_state_round_trips_bit_for_bit(tmp_path, rng):
    bf16 = rng.integers(0, 2**16, 37).astype(np.uint16)
    state = {
        "step": 120, "loss": 0.1 + 0.2, "name": "lion", "none": None, "flags": [True, False],
        "rng": np.random.default_rng(7).bit_generator.state,  # 128-bit integers
        "params": rng.standard_normal(1001).astype(np.float32),
        "optimizer": {"flat": {"momentum": bf16, "count": 3}, "history": [(0, 1.5), (10, 0.5)]},
        "nan": np.array([np.nan, -0.0, np.inf], np.float32),
    }
    got = load_checkpoint(save_checkpoint(tmp_path / "c.npz", state))
    for key in ("step", "loss", "name", "none", "flags", "rng"):
        assert got[key] == state[key], key
    np.testing.assert_array_equal(got["params"], state["params"])
    assert got["optimizer"]["flat"]["momentum"].dtype == np.uint16
    np.testing.assert_array_equal(got["optimizer"]["flat"]["momentum"], bf16)
    assert got["optimizer"]["history"] == [[0, 1.5], [10, 0.5]]  # tuples come back as lists
    assert got["nan"].tobytes() == state["nan"].tobytes()


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", {"step": 1, "a": np.arange(3.0)})
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", broken)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"step": 2, "a": np.arange(4.0)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable splat-lion checkpoint"):
        load_checkpoint(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(TypeError, match="keys must be strings without '/'"):
        save_checkpoint(tmp_path / "c.npz", {"a/b": 1})
