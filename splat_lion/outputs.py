"""The folder a fit writes into: a lock against a second fit there, and saves that never
lose the result.

    with output_lock(out_dir):                       # OutputError if another fit holds it
        ...
        save_or_keep(lambda p: save_ply(g, p), out_dir / "fitted.ply")

A save that fails (a full disk, a folder made read-only meanwhile) writes the same thing to
the system's temporary folder instead and raises OutputError saying where it went.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError, SplatLionError

LOCK_NAME = ".splat-lion.lock"


@contextlib.contextmanager
def output_lock(folder):
    """Hold `folder`'s lock for the block (made if missing): OutputError at once when another
    process holds it. The lock goes with the process, however it ends."""
    import fcntl  # POSIX; splat-lion's CPU runtime needs Linux or macOS anyway

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: a file, not a folder: give --out a folder")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise OutputError(f"{folder}: another splat-lion fit is writing there (process "
                              f"{holder}); wait for it to end, or give another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock


def save_or_keep(save: Callable[[Path], object], path) -> Path:
    """save(path); when that fails, save(a path in the temporary folder) and raise
    OutputError naming both and the cause (the work is kept either way, if at all possible)."""
    path = Path(path)
    try:
        save(path)
        return path
    except (OSError, SplatLionError) as e:
        cause = e
    kept = Path(tempfile.gettempdir()) / f"splat-lion-{os.getpid()}-{path.name}"
    try:
        save(kept)
    except (OSError, SplatLionError) as e:
        raise OutputError(f"could not write {path} ({cause}), nor keep it in {kept} ({e})"
                          ) from None
    raise OutputError(f"could not write {path} ({cause}); it is kept in {kept} instead")
