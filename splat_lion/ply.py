"""3DGS PLY scenes: exact load and save (DESIGN §6).

    g = load_ply("scene.ply")            # Gaussians; ASCII, little- or big-endian input
    save_ply(g, "fitted.ply")            # binary little-endian, written atomically

The vertex properties, in order: x y z, nx ny nz (zeros), f_dc_0..2,
f_rest_0..(3*(K-1)-1), opacity, scale_0..2, rot_0..3, all float32, values stored before
activation. f_rest is channel-major: the K-1 red coefficients, then green, then blue.
The SH degree follows from the f_rest count (0, 9, 24 or 45). Vertex properties beyond these
are kept in `Gaussians.extra` and written back after them. Any problem with a file raises
PlyError naming the file and the field. Element counts are checked against the file's size
before anything is allocated for them: a binary body must match its header exactly, an ASCII
one must be able to hold its rows, and nothing may follow the last element.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyListProperty

from .backend import Backend
from .checkpoint import atomic_write
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
    if path.is_dir():
        raise PlyError(f"{path}: a folder, not a PLY file")
    if not path.is_file():
        raise PlyError(f"{path}: no such file")
    ply = _read(path)
    elements = {el.name: el for el in ply.elements}
    vertex = elements.get("vertex")
    if vertex is None:
        raise PlyError(f"{path}: no 'vertex' element (found: "
                       f"{', '.join(elements) or 'none'}); 3DGS stores one splat per vertex")
    data = vertex.data
    fields = {p.name for p in vertex.properties}
    lists = {p.name for p in vertex.properties if isinstance(p, PlyListProperty)}

    rest = sorted(m.group(1) for name in fields if (m := re.fullmatch(r"f_rest_(\d+)", name)))
    padded = [f"f_rest_{r}" for r in rest if r != str(int(r))]  # f_rest_00: a leading zero
    some = ", ".join(padded[:3]) + (", ..." if len(padded) > 3 else "")
    if padded and sorted({int(r) for r in rest}) == list(range(len(rest))):
        raise PlyError(f"{path}: vertex properties {some} have zero-padded numbers ({len(padded)} "
                       f"of {len(rest)} f_rest properties); 3DGS names them f_rest_0, f_rest_1, "
                       "... without leading zeros: rename them in the header")
    if rest != [str(i) for i in sorted(range(len(rest)), key=str)]:
        numbers = {int(r) for r in rest}
        missing = sorted(set(range(len(rest) + 1)) - numbers)[0]
        also = f" ({some} zero-padded: 3DGS writes no leading zeros)" if padded else ""
        first = ", ".join("f_rest_" + r for r in rest[:3]) + (", ..." if len(rest) > 3 else "")
        raise PlyError(f"{path}: vertex property 'f_rest_{missing}' missing: found "
                       f"{len(rest)} f_rest properties ({first}); they must be f_rest_0 "
                       f"upwards{also}")
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


# bytes of each PLY scalar type, by every name plyfile accepts
_TYPE_SIZES = {**dict.fromkeys(("char", "int8", "uchar", "uint8", "i1", "u1", "b1"), 1),
               **dict.fromkeys(("short", "int16", "ushort", "uint16", "i2", "u2"), 2),
               **dict.fromkeys(("int", "int32", "uint", "uint32", "float", "float32", "i4", "u4",
                                "f4"), 4),
               **dict.fromkeys(("double", "float64", "f8"), 8)}
# no 3DGS writer makes a header this long (theirs are about 2 KB)
MAX_HEADER_BYTES = 1 << 20


def _read(path: Path) -> PlyData:
    """The file through plyfile, once its element counts are known to fit the file's size
    (checked before plyfile allocates anything; see _check_counts); then its body must end
    where its last element does."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = _scan_header(path, f.read(min(size, MAX_HEADER_BYTES)), size)
            f.seek(0)
            text = header is not None and header[0] == "ascii"
            stream = io.TextIOWrapper(f, "ascii", newline="") if text else f
            try:
                ply = PlyData.read(stream)  # binary: memory-mapped, one bulk read
                if header is None:  # (plyfile read a header we could not: nothing to compare)
                    left = 0
                elif text:
                    left = len(stream.read().strip())
                else:
                    left = size - f.tell()
            finally:
                if text:
                    stream.detach()
    except PlyError:
        raise
    except OSError as e:
        raise PlyError(f"{path}: cannot read: {e.strerror or e}; check the file's "
                       "permissions") from None
    except Exception as e:  # plyfile raises many kinds for malformed input
        raise PlyError(f"{path}: not a readable PLY file: {type(e).__name__}: {e}") from None
    if left:
        counts = ", ".join(f"{el.name} {el.count}" for el in ply.elements)
        what = f"{left} characters" if text else f"{left} bytes"
        raise PlyError(f"{path}: not a readable PLY file: {what} follow the last element the "
                       f"header declares ({counts}): a header count smaller than the body "
                       "would load only a prefix; fix the count in 'element ...' or export "
                       "the file again")
    return ply


def _scan_header(path: Path, head: bytes, size: int):
    """(format, [(element, count, fixed bytes per row, has lists, properties)], header
    bytes) of a PLY header, after checking its counts against the file's size; None when
    the header is not one plyfile reads (plyfile then says why)."""
    nl = b"\r\n" if head[3:5] == b"\r\n" else head[3:4]
    if head[:3] != b"ply" or nl not in (b"\n", b"\r", b"\r\n"):
        return None
    end = head.find(nl + b"end_header" + nl)
    if end < 0:
        if size > MAX_HEADER_BYTES:
            raise PlyError(f"{path}: no 'end_header' line in the first {MAX_HEADER_BYTES} "
                           "bytes: not a PLY file, or a header no 3DGS tool writes")
        return None
    header_bytes = end + len(nl + b"end_header" + nl)
    fmt, elements = None, []
    try:
        lines = head[:end].decode("ascii").split(nl.decode())
    except UnicodeDecodeError:
        return None
    for line in lines[1:]:
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "format" and len(tokens) == 3:
            fmt = tokens[1]
        elif tokens[0] == "element" and len(tokens) == 3:
            try:
                count = int(tokens[2])
            except ValueError:
                return None
            if count < 0:
                raise PlyError(f"{path}: 'element {tokens[1]} {tokens[2]}': a count must be "
                               ">= 0")
            elements.append([tokens[1], count, 0, False, 0])
        elif tokens[0] == "property" and elements:
            sizes = [_TYPE_SIZES.get(t) for t in tokens[1:-1] if t != "list"]
            if not sizes or None in sizes:
                return None
            element = elements[-1]
            element[2] += sizes[0]  # a scalar, or a list's length
            element[3] |= tokens[1] == "list"
            element[4] += 1
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        return None
    _check_counts(path, fmt, elements, size - header_bytes)
    return fmt, elements, header_bytes


def _check_counts(path: Path, fmt: str, elements: list, body: int) -> None:
    """Refuse element counts the body cannot hold, before anything is allocated for them. A
    binary body without list properties must match its header exactly; with lists, every row
    needs at least its scalars and list lengths. An ASCII row needs at least one character and
    one separator per property."""
    def listing(rows):
        return ", ".join(f"{name} {count} x {each} bytes" for name, count, each in rows)

    if fmt == "ascii":
        rows = [(name, count, max(1, 2 * props)) for name, count, _, _, props in elements]
        need = sum(count * each for _, count, each in rows) - 1
        if need > body:
            raise PlyError(f"{path}: not a readable PLY file: the header declares more rows "
                           f"than its {body}-byte ASCII body can hold ({listing(rows)} at "
                           f"least: {need} bytes): a wrong count in 'element ...' or a "
                           "truncated file; export it again")
        return
    rows = [(name, count, each) for name, count, each, _, _ in elements]
    need = sum(count * each for _, count, each in rows)
    if any(lists for *_, lists, _ in elements):
        if need > body:
            raise PlyError(f"{path}: not a readable PLY file: the header's elements "
                           f"({listing(rows)} at least) need {need} bytes but the body holds "
                           f"{body}: truncated, or a wrong count in 'element ...'; export it "
                           "again")
        return
    if need != body:
        fix = ("a header count smaller than the body would load only a prefix" if body > need
               else "the file is truncated or its count is wrong")
        single = ""
        if len(rows) == 1 and rows[0][2]:
            name, _, each = rows[0]
            single = f" ({body // each} {name} rows" + (
                f" and {body % each} bytes" if body % each else "") + ")"
        raise PlyError(f"{path}: not a readable PLY file: the header's elements "
                       f"({listing(rows)}) need {need} bytes but the body holds {body}"
                       f"{single}: {fix}; fix the count in 'element ...' or export the file "
                       "again")


def save_ply(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write binary little-endian 3DGS PLY. The file appears whole or not at all
    (checkpoint.atomic_write: a temporary sibling renamed over `path`; through a symlink the
    link's target is replaced; an existing file keeps its mode; temporary files of killed
    saves are cleaned). PlyError when `path` cannot be a file (its folder missing, a folder);
    OutputError (an OSError) naming the path and the cause when the system refuses the write
    (a full disk, no permission): the previous file is then unchanged."""
    path = Path(path)
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

    ply = PlyData([PlyElement.describe(rows, "vertex")], text=False, byte_order="<")
    return atomic_write(path, ply.write, error=PlyError)
