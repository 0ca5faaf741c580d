"""Exports of splats to the formats web viewers and engines open, and readers for them.

    export(g, "scene.splat")                     # the format from the suffix
    export(g, "scene.spz", version=2)            # a format's options as keywords
    h = load_export("scene.spz")                 # Gaussians again, at the format's precision

FORMATS names each format with its help text and file suffix. Every format stores 3DGS's
own axes (those of its PLY, as each format's reference converter does) and its precision:

  splat           antimatter15's .splat (antimatter15/splat, main.js and convert.py): 32 bytes
                  a splat, no header: position 3 x float32, scale 3 x float32 (exp of the
                  log-scale), RGBA 4 x uint8 (0.5 + SH_C0 * f_dc and sigmoid(opacity), times
                  255), rotation 4 x uint8 (w x y z of the unit quaternion, times 128, plus
                  128). Bytes are rounded and clamped as the viewer's converter does
                  (Uint8ClampedArray); splats go by importance, exp(sum of log-scales) x
                  opacity, largest first. No SH beyond the base colour.
  compressed-ply  PlayCanvas's compressed PLY (playcanvas/splat-transform, compressed-chunk.ts):
                  splats in Morton order, in chunks of 256 with each chunk's min and max of
                  position, log-scale and colour; per splat 4 x uint32: position and
                  log-scale 11-10-11 bits within the chunk's box, rotation 2-10-10-10 (the
                  largest component's index, then the other three, x sqrt(1/2) + 1/2), colour
                  8-8-8 within the chunk's range and opacity 8 bits; SH in an `sh` element,
                  1 byte a coefficient over [-4, 4].
  spz             Niantic's .spz, version 3 or 2 (nianticlabs/spz, load-spz.cc): gzip of a
                  16-byte header and, attribute by attribute, 24-bit fixed-point positions,
                  alphas, colours (f_dc x 0.15 x 255 + 127.5), log-scales ((s + 10) x 16),
                  rotations (v3: smallest three, 4 bytes; v2: x y z with w >= 0, 3 bytes) and SH
                  (1 byte each, 5 bits kept at degree 1, 4 above, by default). Version 4
                  (zstd streams) is not written: every loader reads 2 and 3.
  sog             PlayCanvas's SOG, version 2 (splat-transform, write-sog.ts / read-sog.ts):
                  a zip of meta.json and lossless WebP images (Pillow), one texel a splat in
                  Morton order: positions sign(x) ln(|x| + 1), 16 bits within the box (two
                  images); rotations smallest three x sqrt(2), 8 bits, alpha 252 + the
                  largest's index; log-scales and f_dc through 256-entry 1-D k-means codebooks,
                  opacity 8 bits; SH beyond degree 0 as labels into a k-means palette (as
                  splat-transform sizes it: up to 64 Ki entries) whose values go through a
                  codebook. The k-means costs N x palette x 45 multiply-adds an iteration.

Bad options raise ConfigError naming the option; splats a format cannot hold (NaN, a position
past spz's fixed point) raise ExportError. Files are written atomically (checkpoint.
atomic_write): a failed export leaves an existing file as it was.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import get_backend
from .checkpoint import atomic_write
from .errors import ConfigError, ExportError, OutputError
from .gaussians import Gaussians
from .sh import SH_C0, sh_rest


@dataclass(frozen=True)
class Format:
    # what the format is, for --format's help
    help: str
    # the file name's ending that picks the format
    suffix: str


FORMATS: dict[str, Format] = {
    "splat": Format("antimatter15 .splat: 32 bytes a splat (float32 position and scale, 8-bit "
                    "colour, opacity and rotation); base colour only, no SH", ".splat"),
    "compressed-ply": Format("PlayCanvas compressed PLY (SuperSplat, PlayCanvas): chunks of 256 "
                             "splats, 11-10-11-bit positions and scales, 8-bit colour and SH",
                             ".compressed.ply"),
    "spz": Format("Niantic .spz (version 3, or 2 with version=2): gzip, 24-bit positions, "
                  "8-bit scales, colours, rotations and SH", ".spz"),
    "sog": Format("PlayCanvas SOG (a zip of lossless WebP images and meta.json): 16-bit "
                  "positions, codebooks of scales and colours, k-means palette of SH", ".sog"),
}

# options each format takes (name -> default)
OPTIONS: dict[str, dict] = {
    "splat": {},
    "compressed-ply": {"sh": True},
    "spz": {"version": 3, "fractional_bits": 12, "sh1_bits": 5, "sh_rest_bits": 4,
            "antialiased": False},
    "sog": {"iterations": 10},
}


def format_of(path: str | os.PathLike) -> str:
    """The format a file name's suffix names; ConfigError for one no format uses."""
    name = Path(path).name.lower()
    for fmt, f in sorted(FORMATS.items(), key=lambda kv: -len(kv[1].suffix)):
        if name.endswith(f.suffix):
            return fmt
    known = ", ".join(f"{f.suffix} ({fmt})" for fmt, f in FORMATS.items())
    hint = " (a .ply is a full 3DGS PLY: ply.save_ply)" if name.endswith(".ply") else ""
    raise ConfigError(f"{path}: no export format ends so{hint}; format: name the file with one "
                      f"of {known}, or pass format=")


def export(g: Gaussians, path: str | os.PathLike, format: str | None = None, **options) -> Path:
    """Write the splats `g` to `path` in `format` (one of FORMATS; None: from the suffix) with
    the format's `options` (OPTIONS). The file appears whole or not at all. Returns `path`."""
    fmt = format_of(path) if format is None else format
    if fmt not in FORMATS:
        raise ConfigError(f"format: {fmt!r} is not an export format; choose one of "
                          f"{', '.join(FORMATS)}")
    unknown = sorted(set(options) - set(OPTIONS[fmt]))
    if unknown:
        takes = ", ".join(OPTIONS[fmt]) or "none"
        raise ConfigError(f"{', '.join(unknown)}: not an option of format {fmt!r} (its options: "
                          f"{takes})")
    data = _host(g)
    encode = {"splat": _encode_splat, "compressed-ply": _encode_compressed_ply,
              "spz": _encode_spz, "sog": _encode_sog}[fmt]
    blob = encode(data, **{**OPTIONS[fmt], **options})
    return atomic_write(path, lambda f: f.write(blob), error=OutputError)


def load_export(path: str | os.PathLike, format: str | None = None) -> Gaussians:
    """Read an exported file back into Gaussians (CPU), decoded as the format's viewers do."""
    fmt = format_of(path) if format is None else format
    if fmt not in FORMATS:
        raise ConfigError(f"format: {fmt!r} is not an export format; choose one of "
                          f"{', '.join(FORMATS)}")
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ExportError(f"{path}: cannot read: {e.strerror or e}") from None
    decode = {"splat": _decode_splat, "compressed-ply": _decode_compressed_ply,
              "spz": _decode_spz, "sog": _decode_sog}[fmt]
    return decode(blob, path)


# -- shared ------------------------------------------------------------------------------------

def _host(g: Gaussians) -> dict[str, np.ndarray]:
    """The splats as float64 NumPy arrays: means, scales (log), quats (unit, w x y z), opacities
    (logit), sh0 [N, 3], shN [N, K-1, 3]; ExportError when there are none or one is not
    finite."""
    be = g.backend
    d = {a: be.to_numpy(getattr(g, a)).astype(np.float64)
         for a in ("means", "scales", "quats", "opacities", "sh0", "shN")}
    d["sh0"] = d["sh0"].reshape(-1, 3)
    if g.count == 0:
        raise ExportError("no splats to export")
    for name, a in d.items():
        bad = ~np.isfinite(a.reshape(g.count, -1)).all(1)
        if bad.any():
            raise ExportError(f"{name}: {int(bad.sum())} splats hold NaN or infinite values "
                              f"(the first: splat {int(np.argmax(bad))}); no format stores them: "
                              "drop them first")
    norm = np.linalg.norm(d["quats"], axis=1, keepdims=True)
    if (norm == 0).any():
        raise ExportError(f"quats: {int((norm == 0).sum())} splats have a zero quaternion, no "
                          "rotation: drop them or set them to (1, 0, 0, 0)")
    d["quats"] = d["quats"] / norm
    return d


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p, eps: float):
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def _round(x):
    """Round half away from zero (C's round, which the reference encoders use)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _to_u8(x):
    return np.clip(_round(x), 0, 255).astype(np.uint8)


def _gaussians(means, scales, quats, opacities, sh0, shN=None) -> Gaussians:
    n = len(means)
    return Gaussians.from_arrays(means, scales, quats, opacities, np.reshape(sh0, (n, 1, 3)),
                                 shN if shN is not None and shN.shape[1] else None,
                                 backend=get_backend("cpu"))


def _truncated(path: Path, what: str, need: int, got: int) -> ExportError:
    return ExportError(f"{path}: not a whole {what} file: {need} bytes needed, {got} found")


# -- antimatter15 .splat -------------------------------------------------------------------------

# one splat of a .splat file: 32 bytes, little-endian
SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                         ("rot", "u1", 4)])


def _encode_splat(d) -> bytes:
    alpha = _sigmoid(d["opacities"])
    # the viewer's order: importance = volume x opacity, largest first
    order = np.argsort(-np.exp(d["scales"].sum(1)) * alpha, kind="stable")
    rec = np.zeros(len(order), SPLAT_RECORD)
    rec["position"] = d["means"][order]
    rec["scale"] = np.exp(d["scales"][order])
    rgba = np.concatenate([0.5 + SH_C0 * d["sh0"], alpha[:, None]], 1)[order]
    rec["rgba"] = np.clip(np.round(rgba * 255), 0, 255)  # Uint8ClampedArray: round half even
    rec["rot"] = np.clip(np.round(d["quats"][order] * 128 + 128), 0, 255)
    return rec.tobytes()


def _decode_splat(blob: bytes, path: Path) -> Gaussians:
    if len(blob) % SPLAT_RECORD.itemsize:
        raise ExportError(f"{path}: not a .splat file: {len(blob)} bytes is no whole number of "
                          f"{SPLAT_RECORD.itemsize}-byte splats")
    rec = np.frombuffer(blob, SPLAT_RECORD)
    rgba = rec["rgba"] / 255.0
    return _gaussians(rec["position"], np.log(np.maximum(rec["scale"], 1e-30)),
                      (rec["rot"] - 128.0) / 128, _logit(rgba[:, 3], 0.5 / 255),
                      (rgba[:, :3] - 0.5) / SH_C0)


# -- PlayCanvas compressed PLY ------------------------------------------------------------------

CHUNK = 256  # splats per chunk
CHUNK_PROPERTIES = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                    "min_scale_x", "min_scale_y", "min_scale_z",
                    "max_scale_x", "max_scale_y", "max_scale_z",
                    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED_PROPERTIES = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


def morton_order(points: np.ndarray) -> np.ndarray:
    """Indices of `points` [N, 3] in Morton (Z) order on a 1024³ grid over their box; runs of
    more than 256 points in one cell are ordered again over their own box (as splat-transform
    does, so that a chunk's box stays small)."""
    order = np.arange(len(points))
    lo, hi = points.min(0), points.max(0)
    size = np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum((points - lo) * (1024 / size), 1023).astype(np.uint64)
    code = np.zeros(len(points), np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cell[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    order = np.argsort(code, kind="stable")
    code = code[order]
    starts = np.flatnonzero(np.diff(code, prepend=code[:1] + np.uint64(1)) != 0)
    ends = np.append(starts[1:], len(code))
    for a, b in zip(starts, ends):
        if b - a > CHUNK and (hi > lo).any():
            sub = order[a:b]
            if (points[sub].max(0) > points[sub].min(0)).any():
                order[a:b] = sub[morton_order(points[sub])]
    return order


def _unorm(v, bits: int):
    """Values in [0, 1] to `bits`-bit integers (round to nearest, clamped)."""
    top = (1 << bits) - 1
    return np.clip(np.floor(v * top + 0.5), 0, top).astype(np.uint32)


def _normalise(x, lo, hi):
    """x within [lo, hi] per chunk: x [C, 256, k], lo and hi [C, 1, k]; 0 where hi - lo is
    below 1e-5, as PlayCanvas's packer does."""
    span = hi - lo
    t = np.where(span < 1e-5, 0.0, (x - lo) / np.where(span < 1e-5, 1.0, span))
    return np.where(x <= lo, 0.0, np.where(x >= hi, 1.0, t))


def _encode_compressed_ply(d, *, sh: bool) -> bytes:
    if not isinstance(sh, bool):
        raise ConfigError(f"sh: expected True (write the SH beyond degree 0) or False, got {sh!r}")
    n = len(d["means"])
    chunks = -(-n // CHUNK)
    order = morton_order(d["means"])
    # pad the last chunk with its last splat
    padded = np.concatenate([order, np.full(chunks * CHUNK - n, order[-1])])

    def per_chunk(a):  # [N, k] -> [C, 256, k]
        return a[padded].reshape(chunks, CHUNK, -1)

    pos = per_chunk(d["means"].astype(np.float32)).astype(np.float64)
    scale = per_chunk(d["scales"].astype(np.float32)).astype(np.float64)
    colour = per_chunk((SH_C0 * d["sh0"] + 0.5).astype(np.float32)).astype(np.float64)
    boxes = []
    for a, clamp in ((pos, None), (scale, 20.0), (colour, None)):
        lo, hi = a.min(1, keepdims=True), a.max(1, keepdims=True)
        if clamp:  # some scenes hold huge scales
            lo, hi = np.clip(lo, -clamp, clamp), np.clip(hi, -clamp, clamp)
        # the reader sees float32 bounds: normalise with those
        boxes.append((lo.astype(np.float32).astype(np.float64),
                      hi.astype(np.float32).astype(np.float64)))
    (plo, phi), (slo, shi), (clo, chi) = boxes

    def pack_11_10_11(t):
        return (_unorm(t[..., 0], 11) << 21) | (_unorm(t[..., 1], 10) << 11) | _unorm(t[..., 2], 11)

    packed = np.zeros((chunks, CHUNK, 4), "<u4")
    packed[..., 0] = pack_11_10_11(_normalise(pos, plo, phi))
    packed[..., 1] = per_chunk(_pack_rotation_2_10_10_10(d["quats"]))[..., 0]
    packed[..., 2] = pack_11_10_11(_normalise(scale, slo, shi))
    c = _normalise(colour, clo, chi)
    alpha = per_chunk(_sigmoid(d["opacities"])[:, None])[..., 0]
    packed[..., 3] = ((_unorm(c[..., 0], 8) << 24) | (_unorm(c[..., 1], 8) << 16)
                      | (_unorm(c[..., 2], 8) << 8) | _unorm(alpha, 8))
    bounds = np.concatenate([plo, phi, slo, shi, clo, chi], 2).reshape(chunks, 18)

    rest = d["shN"].shape[1] if sh else 0
    lines = ["ply", "format binary_little_endian 1.0", "comment Generated by splat-lion",
             f"element chunk {chunks}", *(f"property float {p}" for p in CHUNK_PROPERTIES),
             f"element vertex {n}", *(f"property uint {p}" for p in PACKED_PROPERTIES)]
    body = [bounds.astype("<f4").tobytes(), packed.reshape(-1, 4)[:n].tobytes()]
    if rest:
        lines += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(3 * rest))]
        coeffs = d["shN"][order].transpose(0, 2, 1).reshape(n, -1)  # channel-major, as 3DGS
        body.append(np.clip(np.trunc((coeffs / 8 + 0.5) * 256), 0, 255).astype(np.uint8)
                    .tobytes())
    return "\n".join(lines + ["end_header"]).encode("ascii") + b"\n" + b"".join(body)


def _pack_rotation_2_10_10_10(q):
    """[N] uint32 of unit quaternions [N, 4] (w x y z): the largest component's index in bits
    30-31, then the other three in order (bits 20-29, 10-19, 0-9), each as
    unorm10(c x sqrt(1/2) + 1/2), the sign chosen so that the largest is positive."""
    largest = np.argmax(np.abs(q), 1)
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    out = largest.astype(np.uint32)
    for k in range(3):  # the k-th component other than the largest
        idx = k + (k >= largest)
        out = (out << 10) | _unorm(q[np.arange(len(q)), idx] * np.sqrt(0.5) + 0.5, 10)
    return out[:, None]


def _unpack_rotation_2_10_10_10(p):
    p = p.astype(np.int64)
    largest = p >> 30
    q = np.zeros((len(p), 4))
    rest = np.stack([(p >> 20) & 1023, (p >> 10) & 1023, p & 1023], 1) / 1023.0
    rest = (rest - 0.5) / np.sqrt(0.5)
    rows = np.arange(len(p))
    for k in range(3):
        q[rows, k + (k >= largest)] = rest[:, k]
    q[rows, largest] = np.sqrt(np.maximum(0, 1 - (rest ** 2).sum(1)))
    return q


def _decode_compressed_ply(blob: bytes, path: Path) -> Gaussians:
    from plyfile import PlyData

    try:
        ply = PlyData.read(io.BytesIO(blob))
    except Exception as e:  # plyfile raises many kinds for malformed input
        raise ExportError(f"{path}: not a readable PLY file: {type(e).__name__}: {e}") from None
    elements = {el.name: el.data for el in ply.elements}
    if "chunk" not in elements or "vertex" not in elements:
        raise ExportError(f"{path}: not a compressed PLY: it needs elements 'chunk' and 'vertex' "
                          f"(found {', '.join(elements)})")
    chunk, vertex = elements["chunk"], elements["vertex"]
    for el, names in ((chunk, CHUNK_PROPERTIES[:12]), (vertex, PACKED_PROPERTIES)):
        missing = [p for p in names if p not in el.dtype.names]
        if missing:
            raise ExportError(f"{path}: not a compressed PLY: property {missing[0]} missing")
    n = len(vertex)
    if len(chunk) != -(-n // CHUNK):
        raise ExportError(f"{path}: {len(chunk)} chunks for {n} splats: expected {-(-n // CHUNK)}")
    ci = np.arange(n) // CHUNK

    def lerp(names, t):
        lo = np.stack([chunk[f"min_{a}"] for a in names], 1)[ci].astype(np.float64)
        hi = np.stack([chunk[f"max_{a}"] for a in names], 1)[ci].astype(np.float64)
        return lo * (1 - t) + hi * t

    def unpack_11_10_11(p):
        p = p.astype(np.int64)
        return np.stack([(p >> 21) / 2047.0, ((p >> 11) & 1023) / 1023.0, (p & 2047) / 2047.0], 1)

    colour = np.stack([(vertex["packed_color"].astype(np.int64) >> s) & 255
                       for s in (24, 16, 8, 0)], 1) / 255.0
    rgb = lerp("rgb", colour[:, :3]) if "min_r" in chunk.dtype.names else colour[:, :3]
    shN = None
    if "sh" in elements:
        sh = elements["sh"]
        b = np.stack([sh[f"f_rest_{i}"] for i in range(len(sh.dtype.names))], 1).astype(np.float64)
        t = np.where(b == 0, 0.0, np.where(b == 255, 1.0, (b + 0.5) / 256))
        shN = ((t - 0.5) * 8).reshape(n, 3, -1).transpose(0, 2, 1)
    return _gaussians(lerp("xyz", unpack_11_10_11(vertex["packed_position"])),
                      lerp(("scale_x", "scale_y", "scale_z"),
                           unpack_11_10_11(vertex["packed_scale"])),
                      _unpack_rotation_2_10_10_10(vertex["packed_rotation"]),
                      _logit(colour[:, 3], 0.5 / 255), (rgb - 0.5) / SH_C0, shN)


# -- Niantic .spz ----------------------------------------------------------------------------

SPZ_MAGIC = 0x5053474E  # "NGSP" in the file
SPZ_HEADER = struct.Struct("<IIIBBBB")  # magic, version, points, SH degree, fraction bits, flags, 0
SPZ_COLOR_SCALE = 0.15  # f_dc x this + 0.5 is the stored colour (in 0..1, x 255)
SPZ_ANTIALIASED = 0x1  # flags: trained with antialiasing (mip-splatting)


def _check_int(name: str, value, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ConfigError(f"{name}: expected an integer in {lo}..{hi} ({what}), got {value!r}")
    return int(value)


def _encode_spz(d, *, version, fractional_bits, sh1_bits, sh_rest_bits, antialiased) -> bytes:
    if version not in (2, 3) or isinstance(version, bool):
        raise ConfigError(f"version: spz version 2 or 3 (3: smallest-three rotations, read by "
                          f"every current loader; 4, zstd, is not written), got {version!r}")
    fractional_bits = _check_int("fractional_bits", fractional_bits, 0, 23,
                                 "bits after the point of 24-bit positions")
    sh1_bits = _check_int("sh1_bits", sh1_bits, 1, 8, "bits kept of degree-1 SH")
    sh_rest_bits = _check_int("sh_rest_bits", sh_rest_bits, 1, 8, "bits kept of degree 2-3 SH")
    if not isinstance(antialiased, bool):
        raise ConfigError(f"antialiased: expected True or False, got {antialiased!r}")
    n = len(d["means"])
    fixed = _round(d["means"] * (1 << fractional_bits))
    if np.abs(fixed).max() > (1 << 23) - 1:
        far = float(np.abs(d["means"]).max())
        fits = max((b for b in range(24) if far * (1 << b) < (1 << 23) - 0.5), default=None)
        fix = (f"pass fractional_bits={fits} (a step of {2.0 ** -fits:g})" if fits is not None
               else "move the scene nearer the origin")
        raise ExportError(f"means: a coordinate of {far:g} does not fit spz's 24-bit positions "
                          f"with fractional_bits={fractional_bits} (up to "
                          f"{((1 << 23) - 1) / (1 << fractional_bits):g}): {fix}")
    fixed = fixed.astype(np.int64) & 0xFFFFFF
    positions = np.stack([fixed & 255, (fixed >> 8) & 255, fixed >> 16], -1).astype(np.uint8)
    alphas = _to_u8(_sigmoid(d["opacities"]) * 255)
    colours = _to_u8(d["sh0"] * (SPZ_COLOR_SCALE * 255) + 127.5)
    scales = _to_u8((d["scales"] + 10) * 16)
    xyzw = d["quats"][:, [1, 2, 3, 0]]  # spz's order
    rotations = _pack_smallest_three(xyzw) if version >= 3 else _pack_first_three(xyzw)
    rest = d["shN"].shape[1]
    bucket = np.full((rest, 1), 1 << (8 - sh_rest_bits))
    bucket[:3] = 1 << (8 - sh1_bits)
    q = _round(d["shN"] * 128) + 128  # [N, K-1, 3]: coefficient-major, channel inner
    q = (q + bucket // 2) // bucket * bucket
    sh = np.clip(q, 0, 255).astype(np.uint8)
    flags = SPZ_ANTIALIASED if antialiased else 0
    header = SPZ_HEADER.pack(SPZ_MAGIC, version, n, _degree(rest), fractional_bits, flags, 0)
    raw = b"".join([header, positions.tobytes(), alphas.tobytes(), colours.tobytes(),
                    scales.tobytes(), rotations.tobytes(), sh.tobytes()])
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _degree(rest: int) -> int:
    return {sh_rest(d): d for d in range(4)}[rest]


def _pack_smallest_three(q):
    """[N, 4] uint8 of unit quaternions (x y z w): a little-endian uint32 with the largest
    component's index in bits 30-31, then per other component (in order, first highest) a
    sign bit and 9 bits of |c| / sqrt(1/2); the sign flipped so the largest is positive."""
    rows = np.arange(len(q))
    largest = np.argmax(np.abs(q), 1)
    negate = q[rows, largest] < 0
    comp = largest.astype(np.uint32)
    for k in range(3):
        c = q[rows, k + (k >= largest)]
        sign = ((c < 0) ^ negate).astype(np.uint32)
        mag = np.floor(511 * np.abs(c) / np.sqrt(0.5) + 0.5).astype(np.uint32)
        comp = (comp << 10) | (sign << 9) | np.minimum(mag, 511)
    return comp.astype("<u4").view(np.uint8).reshape(-1, 4)


def _pack_first_three(q):
    """[N, 3] uint8 of unit quaternions (x y z w): x y z of the one with w >= 0, x 127.5 +
    127.5."""
    q = q * np.where(q[:, 3] < 0, -1.0, 1.0)[:, None]
    return _to_u8(q[:, :3] * 127.5 + 127.5)


def _decode_spz(blob: bytes, path: Path) -> Gaussians:
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError) as e:
        raise ExportError(f"{path}: not a gzip-compressed .spz (version 2 or 3): {e}") from None
    if len(raw) < SPZ_HEADER.size:
        raise _truncated(path, ".spz", SPZ_HEADER.size, len(raw))
    magic, version, n, degree, fbits, _, _ = SPZ_HEADER.unpack_from(raw)
    if magic != SPZ_MAGIC or version not in (2, 3) or degree > 3:
        raise ExportError(f"{path}: not a .spz of version 2 or 3 with SH degree <= 3 (magic "
                          f"{magic:#x}, version {version}, SH degree {degree})")
    rest = sh_rest(degree)
    rot_bytes = 4 if version >= 3 else 3
    sizes = [9, 1, 3, 3, rot_bytes, 3 * rest]
    need = SPZ_HEADER.size + n * sum(sizes)
    if len(raw) < need:
        raise _truncated(path, ".spz", need, len(raw))
    parts, at = [], SPZ_HEADER.size
    for size in sizes:
        parts.append(np.frombuffer(raw, np.uint8, n * size, at).reshape(n, size))
        at += n * size
    positions, alphas, colours, scales, rotations, sh = parts
    b = positions.reshape(n, 3, 3).astype(np.int64)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    if version >= 3:
        xyzw = _unpack_smallest_three(rotations)
    else:
        xyz = rotations / 127.5 - 1
        xyzw = np.concatenate([xyz, np.sqrt(np.maximum(0, 1 - (xyz ** 2).sum(1)))[:, None]], 1)
    return _gaussians(fixed / (1 << fbits), scales / 16.0 - 10, xyzw[:, [3, 0, 1, 2]],
                      _logit(alphas[:, 0] / 255.0, 0.5 / 255),
                      (colours / 255.0 - 0.5) / SPZ_COLOR_SCALE,
                      ((sh.astype(np.float64) - 128) / 128).reshape(n, rest, 3))


def _unpack_smallest_three(r):
    comp = r.astype(np.int64) @ np.array([1, 1 << 8, 1 << 16, 1 << 24])
    rows = np.arange(len(r))
    largest = comp >> 30
    q = np.zeros((len(r), 4))
    for k in range(3):  # the last stored component is in the lowest bits
        c = (comp >> (10 * (2 - k))) & 1023
        value = np.sqrt(0.5) * (c & 511) / 511 * np.where(c >> 9, -1.0, 1.0)
        q[rows, k + (k >= largest)] = value
    q[rows, largest] = np.sqrt(np.maximum(0, 1 - (q ** 2).sum(1)))
    return q


# -- PlayCanvas .sog ---------------------------------------------------------------------------

SOG_FILES = {"means": ["means_l.webp", "means_u.webp"], "scales": ["scales.webp"],
             "quats": ["quats.webp"], "sh0": ["sh0.webp"],
             "shN": ["shN_centroids.webp", "shN_labels.webp"]}


def _log_transform(x):
    return np.sign(x) * np.log1p(np.abs(x))


def _webp(rgba: np.ndarray, width: int, height: int) -> bytes:
    """Lossless WebP of [k, 4] uint8 texels laid row by row into width x height (zeros after)."""
    from PIL import Image  # here: only .sog needs it

    texels = np.zeros((width * height, 4), np.uint8)
    texels[:len(rgba)] = rgba
    out = io.BytesIO()
    Image.fromarray(texels.reshape(height, width, 4), "RGBA").save(
        out, "WEBP", lossless=True, quality=100, exact=True)
    return out.getvalue()


def codebook_1d(values: np.ndarray, size: int = 256, iterations: int = 10):
    """(codebook [size] ascending, labels uint8 like `values`): 1-D k-means (Lloyd's
    iterations from the quantiles), each value labelled with its nearest entry."""
    flat = np.sort(values.ravel())
    centres = np.quantile(flat, (np.arange(size) + 0.5) / size)
    for _ in range(iterations):
        label = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
        count = np.bincount(label, minlength=size)
        total = np.bincount(label, flat, minlength=size)
        centres = np.sort(np.where(count > 0, total / np.maximum(count, 1), centres))
    cut = (centres[1:] + centres[:-1]) / 2
    return centres.astype(np.float32), np.searchsorted(cut, values).astype(np.uint8)


def kmeans(points: np.ndarray, k: int, iterations: int, seed: int = 0):
    """(centroids [k, D], labels [N]): Lloyd's k-means from k distinct random points; an
    emptied cluster keeps its centroid. Costs N x k x D x `iterations` multiply-adds."""
    rng = np.random.default_rng(seed)
    centroids = points[rng.choice(len(points), k, replace=False)].copy()
    labels = np.zeros(len(points), np.int64)
    single = points.astype(np.float32)  # the distances in float32: twice as fast
    for step in range(iterations + 1):
        c = centroids.astype(np.float32)
        norms = (c ** 2).sum(1)
        rows = max(1, (1 << 24) // k)  # [rows, k] distances at a time: 64 MiB
        for a in range(0, len(points), rows):
            labels[a:a + rows] = np.argmin(norms - 2 * single[a:a + rows] @ c.T, 1)
        if step == iterations:
            break
        count = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, points)
        moved = count > 0
        centroids[moved] = sums[moved] / count[moved, None]
    return centroids, labels


def _encode_sog(d, *, iterations) -> bytes:
    import json
    import zipfile

    iterations = _check_int("iterations", iterations, 0, 1000, "k-means iterations of the SH")
    n = len(d["means"])
    width = -(-int(np.ceil(np.sqrt(n))) // 4) * 4
    height = -(-n // width // 4) * 4
    if max(width, height) > 16383:
        raise ExportError(f"{n} splats: more than a .sog's 16383 x 16383 WebP texels hold")
    order = morton_order(d["means"])
    d = {k: v[order] for k, v in d.items()}
    files = {}

    # positions: sign(x) log(|x| + 1), 16 bits within the box, low and high bytes apart
    t = _log_transform(d["means"])
    lo, hi = t.min(0), t.max(0)
    q = np.round(65535 * (t - lo) / np.where(hi > lo, hi - lo, 1)).astype(np.int64)
    opaque = np.full((n, 1), 255, np.uint8)
    files["means_l.webp"] = _webp(np.concatenate([(q & 255).astype(np.uint8), opaque], 1),
                                  width, height)
    files["means_u.webp"] = _webp(np.concatenate([(q >> 8).astype(np.uint8), opaque], 1),
                                  width, height)
    # rotations: smallest three of w x y z, x sqrt(2), 8 bits; alpha 252 + the largest's index
    rows = np.arange(n)
    largest = np.argmax(np.abs(d["quats"]), 1)
    quat = d["quats"] * np.where(d["quats"][rows, largest] < 0, -1, 1)[:, None] * np.sqrt(2)
    rest = np.stack([quat[rows, k + (k >= largest)] for k in range(3)], 1)
    files["quats.webp"] = _webp(np.concatenate(
        [_to_u8(255 * (rest * 0.5 + 0.5)), (252 + largest)[:, None].astype(np.uint8)], 1),
        width, height)
    # log-scales and f_dc: one 256-entry codebook each, a label a channel
    scales_book, labels = codebook_1d(d["scales"])
    files["scales.webp"] = _webp(np.concatenate([labels, opaque], 1), width, height)
    sh0_book, labels = codebook_1d(d["sh0"])
    alpha = _to_u8(_sigmoid(d["opacities"]) * 255)[:, None]
    files["sh0.webp"] = _webp(np.concatenate([labels, alpha], 1), width, height)
    meta = {"version": 2, "asset": {"generator": "splat-lion"}, "count": n,
            "means": {"mins": lo.tolist(), "maxs": hi.tolist(), "files": SOG_FILES["means"]},
            "scales": {"codebook": scales_book.tolist(), "files": SOG_FILES["scales"]},
            "quats": {"files": SOG_FILES["quats"]},
            "sh0": {"codebook": sh0_book.tolist(), "files": SOG_FILES["sh0"]}}
    coeffs = d["shN"].shape[1]
    if coeffs:
        # SH beyond degree 0: a palette of k-means centroids (channel-major rows), its values
        # through a 256-entry codebook; each splat a 16-bit palette label
        palette = int(min(64, 2.0 ** np.floor(np.log2(n / 1024))) * 1024)
        k = min(palette, n)
        rows_sh = d["shN"].transpose(0, 2, 1).reshape(n, 3 * coeffs)
        centroids, labels = kmeans(rows_sh, k, iterations)
        book, cb = codebook_1d(centroids)
        texels = np.stack([cb[:, :coeffs], cb[:, coeffs:2 * coeffs], cb[:, 2 * coeffs:],
                           np.full((k, coeffs), 255, np.uint8)], 2).reshape(-1, 4)
        files["shN_centroids.webp"] = _webp(texels, 64 * coeffs, -(-k // 64))
        files["shN_labels.webp"] = _webp(np.stack(
            [labels & 255, labels >> 8, np.zeros(n, np.int64), np.full(n, 255)], 1)
            .astype(np.uint8), width, height)
        meta["shN"] = {"count": palette, "bands": _degree(coeffs), "codebook": book.tolist(),
                       "files": SOG_FILES["shN"]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("meta.json", json.dumps(meta))
        for name, blob in files.items():
            z.writestr(name, blob)
    return out.getvalue()


def _decode_sog(blob: bytes, path: Path) -> Gaussians:
    import json
    import zipfile

    from PIL import Image

    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
        meta = json.loads(z.read("meta.json"))
        n = int(meta["count"])

        def texels(name, count=None):
            rgba = np.asarray(Image.open(io.BytesIO(z.read(name))).convert("RGBA"))
            return rgba.reshape(-1, 4)[:n if count is None else count].astype(np.int64)

        means_l, means_u = (texels(f) for f in meta["means"]["files"])
        lo, hi = np.array(meta["means"]["mins"]), np.array(meta["means"]["maxs"])
        t = lo + (hi - lo) * ((means_u[:, :3] << 8) | means_l[:, :3]) / 65535
        means = np.sign(t) * np.expm1(np.abs(t))
        quats = texels(meta["quats"]["files"][0])
        largest = quats[:, 3] - 252
        rest = (quats[:, :3] / 255 * 2 - 1) / np.sqrt(2)
        q = np.zeros((n, 4))
        rows = np.arange(n)
        for k in range(3):
            q[rows, k + (k >= largest)] = rest[:, k]
        q[rows, largest] = np.sqrt(np.maximum(0, 1 - (rest ** 2).sum(1)))
        scales = np.array(meta["scales"]["codebook"])[texels(meta["scales"]["files"][0])[:, :3]]
        sh0 = texels(meta["sh0"]["files"][0])
        colour = np.array(meta["sh0"]["codebook"])[sh0[:, :3]]
        shN = None
        if "shN" in meta:
            centroids_file, labels_file = meta["shN"]["files"]
            cen = np.asarray(Image.open(io.BytesIO(z.read(centroids_file))).convert("RGBA"))
            coeffs = cen.shape[1] // 64
            palette = cen.reshape(-1, coeffs, 4)[:, :, :3]  # [K, coeffs, 3] codebook indices
            label = texels(labels_file)
            values = np.array(meta["shN"]["codebook"])[palette[label[:, 0] | label[:, 1] << 8]]
            shN = values  # [N, coeffs, 3]
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as e:
        raise ExportError(f"{path}: not a readable .sog: {type(e).__name__}: {e}") from None
    return _gaussians(means, scales, q, _logit(sh0[:, 3] / 255.0, 0.5 / 255), colour, shN)
