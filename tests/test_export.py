"""Exports (splat_lion/export.py): each format's bytes against a record built by hand from its
published description, its round trip within the format's precision, atomic writes and the
errors that name the option to change."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData
from scipy.spatial import cKDTree

from splat_lion import Gaussians, scenes
from splat_lion.errors import ConfigError, OutputError
from splat_lion.export import (FORMATS, OPTIONS, ExportError, export, format_of, load_export,
                               morton_order)
from splat_lion.ply import load_ply
from splat_lion.sh import SH_C0

SUFFIXES = {name: f.suffix for name, f in FORMATS.items()}


@pytest.fixture(autouse=True)
def cpu_backend(monkeypatch):
    """The formats are checked on the CPU backend's arrays (export copies any backend's to
    the host first)."""
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")


def scene(means, log_scales, quats, alphas, colours, shN=None) -> Gaussians:
    """Splats from activated values: opacities from alphas, sh0 from colours."""
    alphas = np.asarray(alphas, np.float64)
    return Gaussians.from_arrays(
        np.asarray(means, np.float64), np.asarray(log_scales, np.float64),
        np.asarray(quats, np.float64), np.log(alphas / (1 - alphas)),
        (np.asarray(colours, np.float64) - 0.5) / SH_C0, shN)


def unit(q):
    q = np.asarray(q, np.float64)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def angle(q1, q2):
    """[N] rotation angle (radians) between the rotations of quaternions q1 and q2."""
    dot = np.abs((unit(q1) * unit(q2)).sum(1))
    return 2 * np.arccos(np.minimum(dot, 1.0))


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def host(g):
    return {a: np.asarray(getattr(g, a), np.float64)
            for a in ("means", "scales", "quats", "opacities", "sh0", "shN")}


def matched(original, decoded):
    """`original`'s arrays reordered to the decoded splats (matched by their positions)."""
    _, idx = cKDTree(original["means"]).query(decoded["means"])
    assert sorted(idx) == list(range(len(idx))), "decoded splats are no permutation"
    return {k: v[idx] for k, v in original.items()}


# -- choosing a format -----------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("a.splat", "splat"), ("A.SPZ", "spz"),
                                       ("s.compressed.ply", "compressed-ply")])
def test_format_follows_the_suffix(name, fmt):
    assert format_of(name) == fmt


@pytest.mark.parametrize("name, says", [("scene.ply", "save_ply"), ("scene.obj", ".spz")])
def test_unknown_suffix_says_which_suffixes_export(name, says):
    with pytest.raises(ConfigError, match=says):
        format_of(name)


def test_every_format_has_help_suffix_and_options():
    assert set(OPTIONS) == set(FORMATS)
    for f in FORMATS.values():
        assert f.help and f.suffix.startswith(".")
    assert len(set(SUFFIXES.values())) == len(SUFFIXES)


# -- antimatter15 .splat ---------------------------------------------------------------------

def test_splat_record_is_the_published_layout(tmp_path):
    # two splats; the larger (volume x opacity) goes first
    g = scene([[9, 9, 9], [1.0, -2.0, 3.5]], np.log([[0.1] * 3, [0.25, 0.5, 2.0]]),
              [[1, 0, 0, 0], [0.5, 0.5, -0.5, 0.5]], [0.5, 191 / 255],
              [[0.5, 0.5, 0.5], [200 / 255, 30 / 255, 1.2]])
    blob = export(g, tmp_path / "s.splat").read_bytes()
    sigma = np.exp(np.asarray(g.scales, np.float64))  # exp of the stored log-scales
    # position 3 x f32, scale 3 x f32, RGBA u8 (colour clamped), rotation u8 (q x 128 + 128)
    first = struct.pack("<3f3f4B4B", 1.0, -2.0, 3.5, *sigma[1], 200, 30, 255, 191,
                        192, 192, 64, 192)
    second = struct.pack("<3f3f4B4B", 9, 9, 9, *sigma[0], 128, 128, 128, 128,
                         255, 128, 128, 128)  # w = 1 x 128 + 128 = 256: clamped to 255
    assert blob == first + second


def test_splat_round_trip_within_its_precision(tmp_path, random_scene):
    g = random_scene(500, 2)
    a = host(g)
    b = host(load_export(export(g, tmp_path / "s.splat")))
    a = matched(a, b)
    np.testing.assert_array_equal(b["means"], a["means"])  # float32, exact
    np.testing.assert_allclose(np.exp(b["scales"]), np.exp(a["scales"]), rtol=1e-6)
    colour = np.clip(0.5 + SH_C0 * a["sh0"][:, 0], 0, 1)
    assert np.abs(0.5 + SH_C0 * b["sh0"][:, 0] - colour).max() <= 0.5 / 255 + 1e-9
    assert np.abs(sigmoid(b["opacities"]) - sigmoid(a["opacities"])).max() <= 0.5 / 255 + 1e-9
    # each component within 1/256 (1/128 where clamped): the angle within 2 |dq| <= 1/64
    assert angle(a["quats"], b["quats"]).max() <= 1 / 64
    assert b["shN"].shape[1] == 0  # .splat stores no SH


# -- PlayCanvas compressed PLY ------------------------------------------------------------------

def test_compressed_ply_header_is_playcanvas_schema(tmp_path, random_scene):
    path = export(random_scene(300, 3), tmp_path / "s.compressed.ply")
    head = path.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    assert head[:4] == ["ply", "format binary_little_endian 1.0",
                        "comment Generated by splat-lion", "element chunk 2"]
    chunk = [f"property float {p}" for p in
             ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
              "min_scale_x", "min_scale_y", "min_scale_z",
              "max_scale_x", "max_scale_y", "max_scale_z",
              "min_r", "min_g", "min_b", "max_r", "max_g", "max_b")]
    vertex = ["element vertex 300", "property uint packed_position",
              "property uint packed_rotation", "property uint packed_scale",
              "property uint packed_color"]
    sh = ["element sh 300", *(f"property uchar f_rest_{i}" for i in range(45))]
    assert head[4:] == chunk + vertex + sh


def test_compressed_ply_record_is_the_published_packing(tmp_path):
    # three splats in one chunk, in Morton order already
    shN = np.zeros((3, 3, 3))
    shN[1] = np.arange(9).reshape(3, 3).T * 0.25  # channel-major f_rest_i = i / 4
    shN[2] = -4.5
    g = scene([[0, 0, 0], [0.5, 0.5, 3], [1, 2, 4]],
              [[-2, -2, -2], [-1, -1.5, -2], [0, -1, -2]],
              [[1, 0, 0, 0], [0, 0, -1, 0], [0.5, 0.5, -0.5, 0.5]],
              [0.5, 0.25, 0.8], [[0] * 3, [0.25] * 3, [1] * 3], shN)
    body = export(g, tmp_path / "s.compressed.ply").read_bytes().split(b"end_header\n")[1]
    bounds = np.frombuffer(body, "<f4", 18)
    np.testing.assert_allclose(bounds, [0, 0, 0, 1, 2, 4, -2, -2, -2, 0, -1, -2,
                                        0, 0, 0, 1, 1, 1], atol=1e-6)
    packed = np.frombuffer(body, "<u4", 12, 72).reshape(3, 4)
    # position 11-10-11 in the chunk's box: (0.5, 0.25, 0.75) -> 1024, 256, 1535
    assert packed[:, 0].tolist() == [0, (1024 << 21) | (256 << 11) | 1535, 0xFFFFFFFF]
    # rotation: largest's index (w x y z), then the others as unorm10(c sqrt(1/2) + 1/2):
    # 0 -> 512, 0.5 -> 873, -0.5 -> 150; (0, 0, -1, 0) is negated so the largest is positive
    zeros = (512 << 20) | (512 << 10) | 512
    assert packed[:, 1].tolist() == [zeros, (2 << 30) | zeros, (873 << 20) | (150 << 10) | 873]
    # log-scale 11-10-11 in the chunk's range (z's range is empty: 0)
    assert packed[:, 2].tolist() == [0, (1024 << 21) | (512 << 11), (2047 << 21) | (1023 << 11)]
    # colour 8-8-8 in the chunk's range, then opacity x 255
    assert packed[:, 3].tolist() == [0x00000080, 0x40404040, 0xFFFFFFCC]
    # SH: trunc((f / 8 + 1/2) x 256), channel-major as in 3DGS PLY
    sh = np.frombuffer(body, np.uint8, 27, 120).reshape(3, 9)
    assert sh.tolist() == [[128] * 9, [128 + 8 * i for i in range(9)], [0] * 9]
    assert len(body) == 72 + 48 + 27


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_compressed_ply_round_trip_within_its_precision(tmp_path, random_scene, degree):
    g = random_scene(1000, degree)
    path = export(g, tmp_path / "s.compressed.ply")
    b = host(load_export(path))
    a = matched(host(g), b)
    order = morton_order(host(g)["means"])
    np.testing.assert_array_equal(b["means"].shape, a["means"].shape)
    chunk = PlyData.read(str(path))["chunk"].data
    ci = np.arange(len(order)) // 256

    def step(names, levels):  # [N, 3] half a quantisation step of each splat's chunk
        lo = np.stack([chunk[f"min_{n}"] for n in names], 1)[ci]
        hi = np.stack([chunk[f"max_{n}"] for n in names], 1)[ci]
        return (hi - lo) / np.array(levels) / 2 + 1e-6

    assert (np.abs(b["means"] - a["means"]) <= step("xyz", [2047, 1023, 2047])).all()
    assert (np.abs(b["scales"] - a["scales"])
            <= step(["scale_x", "scale_y", "scale_z"], [2047, 1023, 2047])).all()
    colour = SH_C0 * b["sh0"][:, 0] + 0.5
    assert (np.abs(colour - (SH_C0 * a["sh0"][:, 0] + 0.5)) <= step("rgb", [255] * 3)).all()
    assert np.abs(sigmoid(b["opacities"]) - sigmoid(a["opacities"])).max() <= 0.5 / 255 + 1e-9
    # three components in steps of sqrt(2) / 1023: the angle within 2 sqrt(3) x that step
    assert angle(a["quats"], b["quats"]).max() <= 2 * np.sqrt(3) * np.sqrt(2) / 1023
    # SH: 8 / 256 a level, decoded at the level's middle
    assert np.abs(b["shN"] - a["shN"]).max(initial=0) <= 1 / 64 + 1e-9


def test_compressed_ply_without_sh(tmp_path, random_scene):
    path = export(random_scene(10, 2), tmp_path / "s.compressed.ply", sh=False)
    assert [el.name for el in PlyData.read(str(path)).elements] == ["chunk", "vertex"]
    assert load_export(path).sh_degree == 0


def test_morton_order_keeps_chunks_small(rng):
    points = rng.uniform(-1, 1, (4096, 3))
    order = morton_order(points)
    assert sorted(order) == list(range(4096))
    boxes = points[order].reshape(16, 256, 3)
    volume = np.prod(boxes.max(1) - boxes.min(1), axis=1)
    assert volume.mean() < 8 / 4  # random chunks would each span nearly the whole cube (8)


# -- Niantic .spz -------------------------------------------------------------------------------

def known_spz_splat():
    shN = np.array([[[0, 0.5, -0.3], [1.0, -1.0, 0.1], [0.25, 0, 0]]])
    return Gaussians.from_arrays([[1.0, -0.5, 2.25]], [[-10, -5, 0]], [[0.8, 0, -0.6, 0]],
                                 [np.log(0.6 / 0.4)], [[0, 1, -1]], shN)


@pytest.mark.parametrize("version", [2, 3])
def test_spz_record_is_the_published_layout(tmp_path, version):
    blob = export(known_spz_splat(), tmp_path / "s.spz", version=version).read_bytes()
    assert blob[:2] == b"\x1f\x8b"  # gzip
    raw = gzip.decompress(blob)
    # magic "NGSP", version, points, SH degree, fractional bits, flags, reserved
    header = struct.pack("<IIIBBBB", 0x5053474E, version, 1, 1, 12, 0, 0)
    assert raw[:4] == b"NGSP"
    # positions: 24-bit little-endian x 4096: 4096, -2048, 9216
    positions = bytes([0x00, 0x10, 0x00, 0x00, 0xF8, 0xFF, 0x00, 0x24, 0x00])
    alpha = bytes([153])  # 0.6 x 255
    colours = bytes([128, 166, 89])  # f_dc x 0.15 x 255 + 127.5, rounded half away from 0
    scales = bytes([0, 80, 160])  # (log-scale + 10) x 16
    if version == 3:
        # x y z w = (0, -0.6, 0, 0.8): w largest (index 3); then x, y, z as sign bit and
        # 9 bits of |c| / sqrt(1/2) x 511: 0, -434, 0
        rotation = struct.pack("<I", (3 << 30) | (((1 << 9) | 434) << 10))
    else:
        rotation = bytes([128, 51, 128])  # x y z x 127.5 + 127.5 (w >= 0)
    # SH: x 128 + 128, then to the middle of 8-level buckets (5 bits), clamped
    sh = bytes([128, 192, 88, 255, 0, 144, 160, 128, 128])
    assert raw == header + positions + alpha + colours + scales + rotation + sh


@pytest.mark.parametrize("version, bound", [
    (3, 2 * np.sqrt(3) * np.sqrt(0.5) / 511),  # 3 components in steps of sqrt(1/2) / 511
    (2, 0.25),  # x y z in steps of 1/127.5; w from them is coarse where w is near 0
])
def test_spz_round_trip_within_its_precision(tmp_path, random_scene, version, bound):
    g = random_scene(1000, 3, spread=100.0)
    a = host(g)
    b = host(load_export(export(g, tmp_path / "s.spz", version=version)))
    assert np.abs(b["means"] - a["means"]).max() <= 0.5 / 4096 + 1e-5  # float32 at 100
    assert np.abs(b["scales"] - a["scales"]).max() <= 0.5 / 16 + 1e-9
    assert np.abs(sigmoid(b["opacities"]) - sigmoid(a["opacities"])).max() <= 0.5 / 255 + 1e-9
    # the colour 0.5 + SH_C0 f_dc within SH_C0 / (0.15 x 255) / 2 = 0.94 / 255
    colour_error = SH_C0 * np.abs(b["sh0"] - a["sh0"]).max()
    assert colour_error <= SH_C0 / (0.15 * 255) / 2 + 1e-7
    assert colour_error < 1 / 255
    assert angle(a["quats"], b["quats"]).max() <= bound
    # SH: half a level (1/256), then 4 levels of 1/128 (degree 1, 5 bits) or 8 (4 bits)
    error = np.abs(b["shN"] - a["shN"]).max(axis=(0, 2))
    assert (error[:3] <= 4.5 / 128 + 1e-7).all() and (error[3:] <= 8.5 / 128 + 1e-7).all()


def test_spz_with_all_sh_bits_keeps_sh_to_half_a_level(tmp_path, random_scene):
    g = random_scene(200, 2)
    b = load_export(export(g, tmp_path / "s.spz", sh1_bits=8, sh_rest_bits=8))
    assert np.abs(np.asarray(b.shN) - np.asarray(g.shN)).max() <= 0.5 / 128 + 1e-7


def test_spz_far_position_names_the_fractional_bits_that_fit(tmp_path):
    g = Gaussians.from_arrays([[3000.0, 0, 0]], [[0, 0, 0]], [[1, 0, 0, 0]], [0], [[0, 0, 0]])
    with pytest.raises(ExportError, match="fractional_bits=11"):
        export(g, tmp_path / "s.spz")
    b = load_export(export(g, tmp_path / "s.spz", fractional_bits=11))
    assert float(b.means[0, 0]) == 3000.0


def test_spz_antialiased_flag(tmp_path, random_scene):
    raw = gzip.decompress(export(random_scene(3, 0), tmp_path / "s.spz",
                                 antialiased=True).read_bytes())
    assert raw[14] == 0x1


# -- every format ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_bundled_scene_exports_and_reads_back(tmp_path, fmt):
    g = load_ply(scenes.path("knot"))
    path = export(g, tmp_path / f"knot{SUFFIXES[fmt]}")
    back = load_export(path)
    assert back.count == g.count
    assert os.path.getsize(path) < os.path.getsize(scenes.path("knot")) / 2
    a, b = host(g), host(back)
    _, idx = cKDTree(a["means"]).query(b["means"])
    assert np.abs(b["means"] - a["means"][idx]).max() < 0.01


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_export_leaves_the_old_file(tmp_path, random_scene, monkeypatch, fmt):
    path = tmp_path / f"s{SUFFIXES[fmt]}"
    path.write_bytes(b"old")
    bad = random_scene(5, 1)
    bad.means[2, 1] = np.nan
    with pytest.raises(ExportError, match="means: 1 splats hold NaN"):
        export(bad, path)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        export(random_scene(5, 1), path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left


@pytest.mark.parametrize("call, says", [
    (dict(format="obj"), "format: 'obj' is not an export format"),
    (dict(format="splat", sh=True), "sh: not an option of format 'splat'"),
    (dict(format="spz", version=4), "version: spz version 2 or 3"),
    (dict(format="spz", sh1_bits=9), "sh1_bits: expected an integer in 1..8"),
    (dict(format="compressed-ply", sh="yes"), "sh: expected True"),
])
def test_bad_options_are_named(tmp_path, random_scene, call, says):
    with pytest.raises(ConfigError, match=says):
        export(random_scene(4, 1), tmp_path / "out.bin", **call)
    assert not (tmp_path / "out.bin").exists()


def test_reading_a_file_of_another_format_says_so(tmp_path):
    (tmp_path / "x.spz").write_bytes(b"not gzip")
    with pytest.raises(ExportError, match="x.spz: not a gzip-compressed .spz"):
        load_export(tmp_path / "x.spz")
    (tmp_path / "x.splat").write_bytes(b"0" * 33)
    with pytest.raises(ExportError, match="no whole number of 32-byte splats"):
        load_export(tmp_path / "x.splat")


# -- PlayCanvas .sog ---------------------------------------------------------------------------

def sog_member(path, name):
    """meta.json of a .sog as a dict, or one of its images as [H, W, 4] uint8."""
    with zipfile.ZipFile(path) as z:
        if name == "meta.json":
            return json.loads(z.read(name))
        return np.asarray(Image.open(io.BytesIO(z.read(name))).convert("RGBA"))


def test_sog_bundle_is_the_published_layout(tmp_path):
    # two splats: Morton order keeps them; position sign(x) ln(|x| + 1), 16 bits in the box
    g = scene([[0, 0, 0], [1, -1, 3]], [[-1, -2, -3], [-3, -2, -1]],
              [[1, 0, 0, 0], [0, 0.6, 0, -0.8]], [0.5, 0.8], [[0.2, 0.4, 0.6], [0.6, 0.4, 0.2]],
              np.full((2, 3, 3), 0.125))
    path = export(g, tmp_path / "s.sog")
    meta = sog_member(path, "meta.json")
    assert meta["version"] == 2 and meta["count"] == 2
    np.testing.assert_allclose(meta["means"]["mins"], [0, -np.log(2), 0])
    np.testing.assert_allclose(meta["means"]["maxs"], [np.log(2), 0, np.log(4)])
    assert [len(meta[k]["codebook"]) for k in ("scales", "sh0", "shN")] == [256] * 3
    assert meta["shN"]["bands"] == 1 and meta["shN"]["count"] == 1024 * 2 ** -9
    low, high = sog_member(path, "means_l.webp"), sog_member(path, "means_u.webp")
    assert low.shape == high.shape == (4, 4, 4)  # width: ceil(sqrt(2) / 4) x 4; height alike
    assert low[0, :2].tolist() == high[0, :2].tolist() == [[0, 255, 0, 255], [255, 0, 255, 255]]
    # quats: the three others (w x y z order) x sqrt(2), x 127.5 + 127.5; alpha 252 + largest;
    # (0, 0.6, 0, -0.8) is negated so that z, the largest, is positive: -0.6 sqrt(2) -> 19
    assert sog_member(path, "quats.webp")[0, :2].tolist() == [[128, 128, 128, 252],
                                                             [128, 19, 128, 255]]
    assert sog_member(path, "sh0.webp")[0, :2, 3].tolist() == [128, 204]  # opacity x 255
    # fewer distinct values than codebook entries: they come back to float32
    b = load_export(path)
    for name in ("scales", "sh0", "shN"):
        np.testing.assert_allclose(getattr(b, name), getattr(g, name), rtol=1e-6, atol=1e-7)


def test_sog_round_trip_within_its_precision(tmp_path, random_scene):
    g = random_scene(600, 3)
    # four SH rows, repeated: the palette finds them, their 180 values fit the codebook
    g.shN[...] = g.shN[np.arange(600) % 4]
    path = export(g, tmp_path / "s.sog")
    b = host(load_export(path))
    a = matched(host(g), b)
    meta = sog_member(path, "meta.json")
    # positions: half a 16-bit step of the log-transformed box, times d|x| / dt = |x| + 1
    span = np.array(meta["means"]["maxs"]) - np.array(meta["means"]["mins"])
    assert (np.abs(b["means"] - a["means"]) <= (np.abs(a["means"]) + 1) * span / 65535).all()
    # three components in steps of sqrt(2) / 255
    assert angle(a["quats"], b["quats"]).max() <= 2 * np.sqrt(3) * np.sqrt(2) / 255
    assert np.abs(sigmoid(b["opacities"]) - sigmoid(a["opacities"])).max() <= 0.5 / 255 + 1e-9
    # scales and colours: each the codebook entry nearest the original value
    for name in ("scales", "sh0"):
        book = np.array(meta[name]["codebook"])
        nearest = book[np.abs(a[name][..., None] - book).argmin(-1)]
        np.testing.assert_allclose(b[name], nearest, rtol=1e-6)
    np.testing.assert_allclose(b["shN"], a["shN"], atol=1e-6)
