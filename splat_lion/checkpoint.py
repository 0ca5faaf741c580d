"""Checkpoint files: a nested dict of NumPy arrays and JSON values in one `.npz`.

    save_checkpoint("out/checkpoint.npz", {"step": 100, "params": array, "optimizer": {...}})
    state = load_checkpoint("out/checkpoint.npz")     # the same dict, arrays bit for bit

Arrays are stored as npz members named by their key path ("optimizer/flat/momentum");
everything else (numbers, strings, lists, None) goes into one JSON member. No pickle: a
checkpoint can be opened safely. Saving writes a temporary file and renames it, so a crash
or a full disk never leaves a half-written checkpoint in place of the previous one.
fit.py decides what goes in (DESIGN §1: params, optimizer state, step, RNG state).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

FORMAT = "splat-lion checkpoint 1"
_META = "__meta__.json"


def save_checkpoint(path, state: dict) -> Path:
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "tree": _split(state, "", arrays)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.frombuffer(json.dumps(meta).encode(), np.uint8)},
                     **arrays)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there (fit writes one every "
                              "checkpoint_every steps; the CLI into its --out folder)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz[_META].tobytes())
            arrays = {k: npz[k] for k in npz.files if k != _META}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable splat-lion checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, this version reads "
                              f"{FORMAT!r}")
    return _join(meta["tree"], arrays)


def _split(value: Any, key: str, arrays: dict) -> Any:
    """JSON-able tree with each array replaced by {"__array__": key}, arrays collected."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str) or "/" in k:
                raise TypeError(f"checkpoint key {key}/{k!r}: keys must be strings without '/'")
        return {k: _split(v, f"{key}/{k}" if key else k, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join(tree: Any, arrays: dict) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        return {k: _join(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join(v, arrays) for v in tree]
    return tree


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
