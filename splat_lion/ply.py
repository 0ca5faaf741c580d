"""3DGS PLY scenes: exact load and save (DESIGN §6).

    g = load_ply("scene.ply")            # Gaussians; ASCII, little- or big-endian input
    save_ply(g, "fitted.ply")            # binary little-endian, written atomically

The vertex properties, in order: x y z, nx ny nz (zeros), f_dc_0..2,
f_rest_0..(3*(K-1)-1), opacity, scale_0..2, rot_0..3, all float32, values stored before
activation. f_rest is channel-major: the K-1 red coefficients, then green, then blue.
The SH degree follows from the f_rest count (0, 9, 24 or 45). Vertex properties beyond these
are kept in `Gaussians.extra` and written back after them. Any problem with a file raises
PlyError naming the file and the field.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyListProperty

from .backend import Backend
from .errors import PlyError
from .gaussians import Gaussians
from .sh import DEGREES, sh_rest

F_REST_COUNTS = {3 * sh_rest(d): d for d in DEGREES}  # f_rest properties -> SH degree
_NORMALS = ("nx", "ny", "nz")


def property_names(sh_degree: int) -> list[str]:
    """The 3DGS vertex properties for an SH degree, in file order."""
    rest = 3 * sh_rest(sh_degree)
    return (["x", "y", "z", *_NORMALS, "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def load_ply(path: str | os.PathLike, *, on_nonfinite: str = "error",
             backend: Backend | None = None) -> Gaussians:
    """Read a 3DGS PLY file. on_nonfinite: "error" (default), or "drop" to drop every splat
    with a NaN or infinite value (with a warning saying how many)."""
    if on_nonfinite not in ("error", "drop"):
        raise ValueError(f"on_nonfinite must be 'error' or 'drop', got {on_nonfinite!r}")
    path = Path(path)
    if not path.is_file():
        raise PlyError(f"{path}: no such file")
    try:
        ply = PlyData.read(str(path))  # binary: memory-mapped, one bulk read; copied out below
        elements = {el.name: el for el in ply.elements}
        vertex = elements.get("vertex")
        data = None if vertex is None else vertex.data
    except Exception as e:  # plyfile raises many kinds for malformed input
        raise PlyError(f"{path}: not a readable PLY file: {type(e).__name__}: {e}") from None
    if vertex is None:
        raise PlyError(f"{path}: no 'vertex' element (found: "
                       f"{', '.join(elements) or 'none'}); 3DGS stores one splat per vertex")
    fields = {p.name for p in vertex.properties}
    lists = {p.name for p in vertex.properties if isinstance(p, PlyListProperty)}

    rest = sorted(m.group(1) for name in fields if (m := re.fullmatch(r"f_rest_(\d+)", name)))
    if rest != [str(i) for i in sorted(range(len(rest)), key=str)]:
        numbers = {int(r) for r in rest}
        missing = sorted(set(range(len(rest) + 1)) - numbers)[0]
        raise PlyError(f"{path}: vertex property 'f_rest_{missing}' missing: found "
                       f"{len(rest)} f_rest properties ({', '.join('f_rest_' + r for r in rest[:3])}"
                       f"{', ...' if len(rest) > 3 else ''}); they must be f_rest_0 upwards")
    if len(rest) not in F_REST_COUNTS:
        raise PlyError(f"{path}: found {len(rest)} f_rest properties; an SH degree needs "
                       "0, 9, 24 or 45")
    degree = F_REST_COUNTS[len(rest)]
    required = [n for n in property_names(degree) if n not in _NORMALS]
    for name in required:
        if name not in fields:
            raise PlyError(f"{path}: vertex property '{name}' missing (a 3DGS scene needs "
                           f"{', '.join(required[:3])}, f_dc_0..2, opacity, scale_0..2, "
                           "rot_0..3)")
        if name in lists or np.dtype(data.dtype[name]).kind != "f":
            what = "a list" if name in lists else str(data.dtype[name])
            raise PlyError(f"{path}: vertex property '{name}' is {what}, not a float: 3DGS "
                           "stores float32")

    n = len(data)
    column = {name: np.asarray(data[name], np.float32) for name in required}
    finite = np.ones(n, bool)
    bad_counts = {}
    for name in required:
        ok = np.isfinite(column[name])
        if not ok.all():
            bad_counts[name] = int((~ok).sum())
            finite &= ok
    if bad_counts:
        listing = ", ".join(f"{k}: {v}" for k, v in bad_counts.items())
        if on_nonfinite == "error":
            raise PlyError(f"{path}: {sum(bad_counts.values())} non-finite values in "
                           f"{int((~finite).sum())} splats ({listing}); pass "
                           "on_nonfinite='drop' to drop those splats")
        warnings.warn(f"{path}: dropped {int((~finite).sum())} splats with non-finite values "
                      f"({listing})", stacklevel=2)
        column = {k: v[finite] for k, v in column.items()}
        n = int(finite.sum())

    rest = sh_rest(degree)
    rest_cols = np.stack([column[f"f_rest_{i}"] for i in range(3 * rest)], 1) if rest else None
    # other scalar vertex properties travel along (list properties are not kept)
    extra = {name: np.array(data[name])[finite] for name in data.dtype.names
             if name not in required and name not in _NORMALS and name not in lists}

    def cols(*names):
        return np.stack([column[c] for c in names], 1)

    return Gaussians.from_arrays(
        cols("x", "y", "z"),
        cols("scale_0", "scale_1", "scale_2"),
        cols("rot_0", "rot_1", "rot_2", "rot_3"),
        column["opacity"],
        cols("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),
        # channel-major in the file: [N, 3, K-1] -> [N, K-1, 3]
        None if rest_cols is None else rest_cols.reshape(n, 3, rest).transpose(0, 2, 1),
        extra=extra, backend=backend)


def save_ply(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write binary little-endian 3DGS PLY. The file appears whole or not at all: it is
    written to a temporary file in the same folder, then renamed over `path`."""
    path = Path(path)
    if not path.parent.is_dir():
        raise PlyError(f"{path}: folder {path.parent} does not exist")
    g = gaussians
    be = g.backend
    n = g.count
    names = property_names(g.sh_degree)
    extra_names = [e for e in g.extra if e not in names]
    dtype = [(name, "<f4") for name in names] + [
        (e, np.asarray(g.extra[e]).dtype.newbyteorder("<").str) for e in extra_names]
    rows = np.zeros(n, dtype=dtype)
    host = {a: be.to_numpy(getattr(g, a)) for a in ("means", "scales", "quats", "opacities",
                                                    "sh0", "shN")}
    for i, c in enumerate("xyz"):
        rows[c] = host["means"][:, i]
    for i in range(3):
        rows[f"f_dc_{i}"] = host["sh0"][:, 0, i]
        rows[f"scale_{i}"] = host["scales"][:, i]
    rest = host["shN"].transpose(0, 2, 1).reshape(n, -1)  # channel-major; [N, 0] at degree 0
    for i in range(rest.shape[1]):
        rows[f"f_rest_{i}"] = rest[:, i]
    rows["opacity"] = host["opacities"]
    for i in range(4):
        rows[f"rot_{i}"] = host["quats"][:, i]
    for e in extra_names:
        rows[e] = g.extra[e]

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved scene is an ordinary file
        with os.fdopen(fd, "wb") as f:
            PlyData([PlyElement.describe(rows, "vertex")], text=False, byte_order="<").write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
