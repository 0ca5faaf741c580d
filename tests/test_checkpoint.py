"""splat_lion/checkpoint.py: nested state round trips bit for bit; saves never clobber, write
through symlinks, keep modes and clean up after killed saves; every bad file (empty, garbage,
damaged, edited by hand, unreadable) is a CheckpointError naming the file and the field."""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from splat_lion import checkpoint
from splat_lion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from splat_lion.errors import OutputError


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


# -- reading: every bad file is a CheckpointError naming it --------------------------------------

def test_an_unreadable_checkpoint_names_the_file(tmp_path, deny_reading):
    path = save_checkpoint(tmp_path / "c.npz", {"step": 1})
    deny_reading(path)
    with pytest.raises(CheckpointError, match=r"c.npz: cannot read: Permission denied; check "):
        load_checkpoint(path)


def test_an_empty_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"c.npz: the file is empty \(0 bytes\): not a "
                                              r"splat-lion checkpoint"):
        load_checkpoint(tmp_path / "c.npz")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [
    pickle.dumps({"step": 1}),  # np.load would suggest allow_pickle=True for this one
    b"\x93NUMPY\x01\x00" + b"v" * 100,
    b"PK\x03\x04 not really a zip",
    b"hello",
], ids=["pickle", "npy", "zip-magic", "text"])
def test_garbage_is_not_a_splat_lion_checkpoint(tmp_path, content):
    (tmp_path / "c.npz").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"c.npz: not a readable splat-lion checkpoint") as e:
        load_checkpoint(tmp_path / "c.npz")
    assert "pickle" not in str(e.value)


def members(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def rewrite(path, edit):
    """Edit a checkpoint as a person would: its members, with the JSON decoded as "meta"."""
    m = members(path)
    m["meta"] = json.loads(m.pop("__meta__.json").tobytes())
    edit(m)
    meta = np.frombuffer(json.dumps(m.pop("meta")).encode(), np.uint8)
    np.savez(path, **{"__meta__.json": meta}, **m)


def edit_tree(edit):
    return lambda m: edit(m["meta"]["tree"])


HAND_EDITS = {
    "json_value": (edit_tree(lambda t: t.update(step="abc")), r"field 'step' was changed"),
    "nested_json": (edit_tree(lambda t: t["optimizer"].update(count=-1)),
                    r"field 'optimizer/count' was changed"),
    "json_removed": (edit_tree(lambda t: t.pop("name")), r"field 'name' was removed"),
    "json_added": (edit_tree(lambda t: t.update(extra=1)), r"field 'extra' was added"),
    "array_dtype": (lambda m: m.update(params=m["params"].astype(np.float64)),
                    r"array 'params' \(float64 \[5\]\) was changed"),
    "array_shape": (lambda m: m.update(params=m["params"][:3]),
                    r"array 'params' \(float32 \[3\]\) was changed"),
    "array_values": (lambda m: m["optimizer/momentum"].__setitem__(0, 7),
                     r"array 'optimizer/momentum' \(uint16 \[4\]\) was changed"),
    "array_removed": (lambda m: m.pop("params"), r"array 'params' was removed"),
}


def small_state():
    return {"step": 3, "name": "lion", "params": np.arange(5, dtype=np.float32),
            "optimizer": {"count": 2, "momentum": np.arange(4, dtype=np.uint16)}}


@pytest.mark.parametrize("case", HAND_EDITS)
def test_hand_edited_checkpoints_name_the_field(tmp_path, case):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    edit, match = HAND_EDITS[case]
    rewrite(path, edit)
    with pytest.raises(CheckpointError, match=f"c.npz: {match} after splat-lion wrote c.npz: "
                                              "a checkpoint edited by hand"):
        load_checkpoint(path)


def test_verify_false_loads_a_checkpoint_edited_on_purpose(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    rewrite(path, edit_tree(lambda t: t.update(step=4)))
    assert load_checkpoint(path, verify=False)["step"] == 4


def test_a_reference_to_a_missing_array_names_the_field(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    rewrite(path, lambda m: [m.pop("params"), m["meta"].pop("digests")])
    with pytest.raises(CheckpointError, match=r"field 'params' refers to array 'params', which "
                                              "the checkpoint does not hold"):
        load_checkpoint(path)


def test_checkpoints_without_digests_still_load(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    rewrite(path, lambda m: m["meta"].pop("digests"))
    np.testing.assert_array_equal(load_checkpoint(path)["params"], np.arange(5))


def test_array_headers_are_checked_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as zf:
        zf.writestr("__meta__.json.npy", npy_bytes(np.frombuffer(json.dumps(
            {"format": checkpoint.FORMAT, "tree": {"a": {"__array__": "a"}}}).encode(), np.uint8)))
        zf.writestr("a.npy", header.getvalue() + b"\0" * 24)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"c.npz: array 'a': its header says float64 "
                                                  r"\[1000000000000\] \(8000000000000 bytes\) but "
                                                  r"the member holds 24 bytes"):
            load_checkpoint(tmp_path / "c.npz")
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


def npy_bytes(a) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


def test_a_damaged_array_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    data = bytearray(path.read_bytes())
    at = data.index(np.arange(5, dtype=np.float32).tobytes())
    data[at + 5] ^= 0xFF  # a bit flip inside the params: the member's CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c.npz: not a readable splat-lion checkpoint: a "
                                              r"damaged archive \(BadZipFile: Bad CRC-32"):
        load_checkpoint(path)


def test_pickled_members_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("evil.npy", npy_bytes(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(CheckpointError, match=r"array 'evil': dtype object holds Python objects"):
        load_checkpoint(path)


# -- saving: atomic_write ------------------------------------------------------------------------

def test_a_save_writes_through_a_symlink(tmp_path):
    real = save_checkpoint(tmp_path / "real.npz", {"step": 1})
    (tmp_path / "link.npz").symlink_to("real.npz")
    save_checkpoint(tmp_path / "link.npz", {"step": 2})
    assert (tmp_path / "link.npz").is_symlink() and load_checkpoint(real)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]


def test_a_save_keeps_the_files_mode(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", {"step": 1})
    path.chmod(0o600)
    save_checkpoint(path, {"step": 2})
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_save_removes_temporaries_of_killed_saves(tmp_path):
    stale, fresh, other = (tmp_path / n for n in (".c.npz.k1ll3d_0.tmp", ".c.npz.4l1ve_00.tmp",
                                                  ".d.npz.k1ll3d_0.tmp"))
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - 2 * checkpoint.STALE_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_checkpoint(tmp_path / "c.npz", {"step": 1})
    assert not stale.exists() and fresh.exists() and other.exists()


@pytest.mark.parametrize("fail", ["mkstemp", "savez", "replace"])
def test_a_failed_save_is_an_output_error_naming_the_path(tmp_path, monkeypatch, fail):
    path = save_checkpoint(tmp_path / "c.npz", {"step": 1})
    error = {"mkstemp": PermissionError(13, "Permission denied"),
             "savez": OSError(28, "No space left on device"),
             "replace": OSError(30, "Read-only file system")}[fail]

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr({"mkstemp": checkpoint.tempfile, "savez": checkpoint.np,
                         "replace": checkpoint.os}[fail], fail, broken)
    with pytest.raises(OutputError, match=f"c.npz: cannot write.*: {error.strerror}"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_saving_onto_a_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder; give a file name"):
        save_checkpoint(tmp_path, {"step": 1})
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "c.npz", {"step": 1})


def test_a_tree_that_is_not_a_dict_is_refused(tmp_path):
    """Found by the fuzzer: with verify=False a checkpoint whose tree was made `false` loaded
    as False."""
    path = save_checkpoint(tmp_path / "c.npz", small_state())
    rewrite(path, lambda m: m["meta"].update(tree=False))
    with pytest.raises(CheckpointError, match=r"its __meta__.json member has no 'tree' of fields"):
        load_checkpoint(path, verify=False)
