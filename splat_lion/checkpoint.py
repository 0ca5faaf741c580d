"""Checkpoint files: a nested dict of NumPy arrays and JSON values in one `.npz`; and the
atomic save every writer of the package shares (`atomic_write`, also used by ply.save_ply).

    save_checkpoint("out/checkpoint.npz", {"step": 100, "params": array, "optimizer": {...}})
    state = load_checkpoint("out/checkpoint.npz")     # the same dict, arrays bit for bit

Arrays are stored as npz members named by their key path ("optimizer/flat/momentum");
everything else (numbers, strings, lists, None) goes into one JSON member. No pickle: a
checkpoint can be opened safely. fit.py decides what goes in (DESIGN §1: params, optimizer
state, step, RNG state).

Saving (atomic_write): the file appears whole or not at all. It is written to a temporary
sibling `.NAME.XXXXXXXX.tmp`, fsynced and renamed over the file, so a crash or a full disk
never leaves a half-written file in place of the previous one. Through a symlink the link's
target is replaced and the link kept; an existing file keeps its permission bits; temporary
files of earlier saves of the same file that were killed before their rename (older than
STALE_SECONDS) are removed. A write the system refuses (a full disk, no permission) raises
OutputError, an OSError, naming the file and the cause.

Loading checks sizes before allocating: each array's header (dtype, shape) must match the
bytes its member holds. Each checkpoint records a digest of every JSON field and every array;
a file edited by hand (or damaged) is refused naming the field that changed. Any problem
raises CheckpointError naming the file and the field.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import CheckpointError, OutputError, SplatLionError

FORMAT = "splat-lion checkpoint 1"
_META = "__meta__.json"
# a temporary file of a save this old (seconds) belongs to a save that was killed
STALE_SECONDS = 60.0
# bytes read at a time from an array member
_CHUNK = 1 << 24


# -- atomic saves --------------------------------------------------------------------------------

def atomic_write(path, write: Callable, *, error: type[SplatLionError] = CheckpointError) -> Path:
    """Write `path` whole or not at all: write(f) fills an open binary file (a temporary
    sibling), which is fsynced and renamed over the file (see the module's docstring).
    `error`: the error for a path that cannot be a file (its folder missing, a folder);
    a failed write raises OutputError. Returns `path`."""
    link = Path(path)
    target = Path(os.path.realpath(link)) if link.is_symlink() else link
    folder = target.parent
    if not folder.is_dir():
        raise error(f"{link}: folder {folder} does not exist")
    if target.is_dir():
        raise error(f"{link}: is a folder; give a file name inside it")
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise OutputError(f"{link}: cannot write: {_cause(e)}") from e
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OutputError(f"{link}: cannot write in {folder}: {_cause(e)}; nothing was written"
                          ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if old is None:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a new file is an ordinary one
        else:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))  # a 0600 file stays 0600
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, SplatLionError):
            kept = "the previous file is unchanged" if old else "nothing was written"
            raise OutputError(f"{link}: cannot write: {_cause(e)}; {kept}") from e
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return link


def remove_stale_temporaries(target, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files atomic_write leaves when a save of `target` is killed before
    its rename (`.NAME.XXXXXXXX.tmp` beside it, older than `older_than` seconds); returns them."""
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _cause(e: OSError) -> str:
    return e.strerror or str(e)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- checkpoints ---------------------------------------------------------------------------------

def save_checkpoint(path, state: dict) -> Path:
    """Write `state` (a dict of arrays, JSON values, and dicts and lists of them) atomically;
    OutputError when it cannot be written (the previous checkpoint is kept)."""
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict, got {type(state).__name__}")
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, "", arrays)
    meta = {"format": FORMAT, "tree": tree,
            "digests": {"fields": _field_digests(tree), "arrays": {
                k: _array_digest(a) for k, a in arrays.items()}}}
    members = {_META: np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays}
    return atomic_write(path, lambda f: np.savez(f, **members), error=CheckpointError)


def load_checkpoint(path, *, verify: bool = True) -> dict:
    """The state save_checkpoint wrote, arrays bit for bit. verify=False skips the digest check
    (a checkpoint edited on purpose); the file's structure is checked either way."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file (fit writes "
                              "checkpoint.npz inside its checkpoint folder)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there (fit writes one every "
                              "checkpoint_every steps; the CLI into its --out folder)")
    not_ours = f"{path}: not a readable splat-lion checkpoint"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if not head:
                raise CheckpointError(f"{path}: the file is empty (0 bytes): not a splat-lion "
                                      "checkpoint (they are written whole); delete it")
            if head != b"PK\x03\x04":
                raise CheckpointError(f"{not_ours}: not an .npz archive (it starts with "
                                      f"{head!r}); splat-lion writes checkpoints with "
                                      "save_checkpoint (fit's checkpoint_every)")
            archive = f.seek(0, os.SEEK_END)
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                infos = {info.filename: info for info in zf.infolist()}
                if _META + ".npy" not in infos:
                    raise CheckpointError(f"{not_ours}: an .npz archive without its {_META} "
                                          "member (written by something else)")
                for name, info in infos.items():
                    _check_member_size(info, archive, f"{not_ours}: member {name!r}")
                meta = _read_meta(zf, infos.pop(_META + ".npy"), path, not_ours)
                arrays = {}
                for name, info in infos.items():
                    if not name.endswith(".npy"):
                        raise CheckpointError(f"{not_ours}: member {name!r} is not an array")
                    arrays[name[:-4]] = _read_array(zf, info, f"{path}: array '{name[:-4]}'")
    except SplatLionError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {_cause(e)}; check the file's "
                              "permissions") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
            NotImplementedError, RuntimeError, OverflowError, KeyError) as e:
        # zipfile raises these for a damaged archive (bad CRC, unsupported compression, ...)
        raise CheckpointError(f"{not_ours}: a damaged archive ({type(e).__name__}: {e})"
                              ) from None
    if verify and "digests" in meta:
        _verify(meta, arrays, path)
    return _join(meta["tree"], arrays, "", path)


def _check_member_size(info: zipfile.ZipInfo, archive: int, where: str) -> None:
    """The sizes a member declares must fit the archive (np.savez stores members as they are;
    np.savez_compressed deflates them, at most ~1000:1), so nothing is allocated for data the
    file cannot hold."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"{where}: compression method {info.compress_type}; checkpoints "
                              "are stored or deflated (np.savez, np.savez_compressed)")
    if info.compress_size > archive or (
            info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size) \
            or info.file_size > 1100 * info.compress_size + 1024:
        raise CheckpointError(f"{where}: declares {info.file_size} bytes ({info.compress_size} "
                              f"stored) in a {archive}-byte file: a damaged archive")


def _read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, not_ours: str) -> dict:
    raw = _read_array(zf, info, f"{not_ours}: its {_META} member")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{not_ours}: its {_META} member is {raw.dtype} "
                              f"{list(raw.shape)}, not bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{not_ours}: its {_META} member is not JSON ({e})") from None
    if not isinstance(meta, dict) or "format" not in meta:
        raise CheckpointError(f"{not_ours}: its {_META} member names no format")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path}: format {meta['format']!r}, this "
                              f"version reads {FORMAT!r}")
    if not isinstance(meta.get("tree"), dict):
        raise CheckpointError(f"{not_ours}: its {_META} member has no 'tree' of fields")
    digests = meta.get("digests")
    if digests is not None and not (
            isinstance(digests, dict) and all(isinstance(digests.get(k), dict) and all(
                isinstance(v, str) for v in digests[k].values()) for k in ("fields", "arrays"))):
        raise CheckpointError(f"{not_ours}: its {_META} member has malformed 'digests'")
    return meta


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One .npy member: its header checked against the member's size before anything is
    allocated, then read in chunks; no pickled objects."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise CheckpointError(f"{where}: .npy version {version} (splat-lion writes 1.0)")
        if dtype.hasobject or dtype.itemsize == 0:
            raise CheckpointError(f"{where}: dtype {dtype} holds Python objects or nothing; a "
                                  "checkpoint holds plain numbers")
        if any(d < 0 for d in shape):
            raise CheckpointError(f"{where}: negative shape {list(shape)}")
        size = math.prod(shape) * dtype.itemsize
        held = info.file_size - f.tell()
        if size != held:
            raise CheckpointError(f"{where}: its header says {dtype} {list(shape)} ({size} "
                                  f"bytes) but the member holds {held} bytes")
        out = np.empty(shape, dtype, order="F" if fortran else "C")
        if size:
            flat = out.reshape(-1, order="A").view(np.uint8)
            pos = 0
            while pos < size:
                chunk = f.read(min(_CHUNK, size - pos))
                if not chunk:
                    raise CheckpointError(f"{where}: ends after {pos} of {size} bytes")
                flat[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
                pos += len(chunk)
            f.read(1)  # reach the end: zipfile checks the member's CRC there
    return out


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


def _join(tree: Any, arrays: dict, where: str, path: Path) -> Any:
    if isinstance(tree, dict):
        if "__array__" in tree:
            key = tree["__array__"]
            if set(tree) != {"__array__"} or not isinstance(key, str) or key not in arrays:
                raise CheckpointError(f"{path}: field '{where}' refers to array {key!r}, which "
                                      "the checkpoint does not hold")
            return arrays[key]
        return {k: _join(v, arrays, f"{where}/{k}" if where else k, path)
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join(v, arrays, f"{where}/{i}", path) for i, v in enumerate(tree)]
    return tree


# -- digests: a checkpoint edited by hand names the field that changed ---------------------------

def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(f"{a.dtype.str}{list(a.shape)}".encode(), digest_size=16)
    h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


def _field_digests(tree: Any, where: str = "", out: dict | None = None) -> dict:
    """{field path: digest} of every value of the JSON tree that is not a dict (lists whole)."""
    out = {} if out is None else out
    if isinstance(tree, dict) and "__array__" not in tree:
        for k, v in tree.items():
            _field_digests(v, f"{where}/{k}" if where else k, out)
        if not tree:
            out[where] = _digest(b"{}")
    else:
        out[where] = _digest(json.dumps(tree, sort_keys=True).encode())
    return out


def _verify(meta: dict, arrays: dict, path: Path) -> None:
    edited = f"after splat-lion wrote {path.name}: a checkpoint edited by hand or damaged; " \
             "restore the original, start a new fit, or load it with verify=False"
    want, got = meta["digests"]["fields"], _field_digests(meta["tree"])
    for field in sorted(set(want) | set(got)):
        if field not in got:
            raise CheckpointError(f"{path}: field '{field}' was removed {edited}")
        if field not in want:
            raise CheckpointError(f"{path}: field '{field}' was added {edited}")
        if want[field] != got[field]:
            raise CheckpointError(f"{path}: field '{field}' was changed {edited}")
    want = meta["digests"]["arrays"]
    for key in sorted(set(want) | set(arrays)):
        if key not in arrays:
            raise CheckpointError(f"{path}: array '{key}' was removed {edited}")
        if key not in want:
            raise CheckpointError(f"{path}: array '{key}' was added {edited}")
        if want[key] != _array_digest(arrays[key]):
            a = arrays[key]
            raise CheckpointError(f"{path}: array '{key}' ({a.dtype} {list(a.shape)}) was "
                                  f"changed {edited}")
