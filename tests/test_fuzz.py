"""Property-based fuzz of every reader of outside files: transforms.json, COLMAP text and
binary, checkpoints and ASCII PLY (binary PLY: tests/test_ply.py). Small valid files are
mutated byte by byte and field by field; a reader must then return a sane result or raise one
of the library's own errors (SplatLionError), never another exception, never hang (each
example runs under a time limit) and never allocate much more than the file (each example
runs under tracemalloc, which counts NumPy's buffers too).

Examples per test: SPLAT_LION_FUZZ_EXAMPLES (default 300: about a second a test on 2 cores,
which CI runs; 3000 and more to hunt).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splat_lion.cameras import orbit_cameras
from splat_lion.checkpoint import load_checkpoint, save_checkpoint
from splat_lion.datasets import load_colmap, load_transforms, write_colmap, write_transforms
from splat_lion.errors import SplatLionError
from splat_lion.backend import get_backend
from splat_lion.gaussians import Gaussians
from splat_lion.ply import load_ply, save_ply

# skipped views are a warning, not an error: fine here
pytestmark = pytest.mark.filterwarnings("ignore::splat_lion.datasets.MissingImagesWarning")
EXAMPLES = int(os.environ.get("SPLAT_LION_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
# per example: seconds before it counts as a hang, traced bytes before it counts as a blow-up
TIME_LIMIT_S = 20
MEMORY_LIMIT = 64 << 20


@contextlib.contextmanager
def bounded():
    """Fail the example if it runs past TIME_LIMIT_S or allocates past MEMORY_LIMIT."""
    def hang(signum, frame):
        raise TimeoutError(f"a reader ran past {TIME_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(TIME_LIMIT_S)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak < MEMORY_LIMIT, f"a reader allocated {peak} bytes"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_or_our_error(read, *args, **kwargs):
    """read(...) or None when it raised one of the library's errors; anything else fails."""
    with bounded():
        try:
            return read(*args, **kwargs)
        except SplatLionError:
            return None


# -- mutations --------------------------------------------------------------------------------

EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255),
                           st.sampled_from(["set", "insert", "delete", "truncate"])),
                 min_size=1, max_size=6)


def edit_bytes(data: bytes, edits) -> bytes:
    """Bytes set, inserted, deleted, or the tail cut, each at a relative position."""
    data = bytearray(data)
    for where, byte, how in edits:
        i = min(int(where * len(data)), max(len(data) - 1, 0))
        if how == "set" and data:
            data[i] = byte
        elif how == "insert":
            data.insert(i, byte)
        elif how == "delete" and data:
            del data[i]
        elif how == "truncate":
            del data[i:]
    return bytes(data)


# values a person (or a broken exporter) might put anywhere in a JSON file
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2**70, 2**70),
    st.sampled_from([10**400, -10**400, 0, 1, 180, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.pi, 1e-300, 1e300]),
    st.text(max_size=8), st.sampled_from(["OPENCV", "OPENCV_FISHEYE", "images/0000.png", ""]),
    st.lists(st.floats(-2, 2), max_size=5), st.builds(dict),
    st.builds(lambda: [[1, 0], [0, 1]]))  # fresh objects: edits may change them in place
TRANSFORMS_KEYS = ["fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y",
                   "k1", "k2", "k3", "k4", "p1", "p2", "camera_model", "is_fisheye", "frames",
                   "file_path", "transform_matrix"]


def json_paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON tree, the root included."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_paths(v, (*prefix, i))


def edit_json(data, draw):
    """One field of a JSON tree replaced, removed, or a known key added next to it."""
    paths = list(json_paths(data))
    path = draw(st.sampled_from(paths[1:]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "replace":
        parent[path[-1]] = draw(JSON_VALUES)
    elif how == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(TRANSFORMS_KEYS))] = draw(JSON_VALUES)
    else:
        parent.append(draw(JSON_VALUES))
    return data


# -- transforms.json ---------------------------------------------------------------------------

def small_capture(root, kind: str):
    """Three 8x6 views (all for training with test_every=0) and, for COLMAP, five points."""
    rng = np.random.default_rng(5)
    cams = orbit_cameras(radius=4.0, n=3, width=8, height=6)
    images = [rng.random((6, 8, 3)) for _ in cams]
    if kind == "transforms":
        write_transforms(root, cams, images)
    else:
        write_colmap(root, cams, images, rng.standard_normal((5, 3)), rng.random((5, 3)),
                     binary=kind == "colmap_binary")
    return root


def check_dataset(ds) -> None:
    """What a loader returns is finite and consistent."""
    if ds is None:
        return
    assert ds.train_cameras, "a capture loaded without training views"
    for cam, image in zip(ds.train_cameras + ds.test_cameras, ds.train_images + ds.test_images):
        assert np.isfinite(cam.K).all() and cam.fx > 0 and cam.fy > 0
        assert np.isfinite(cam.viewmat).all()
        assert image.shape == (cam.height, cam.width, 3) and np.isfinite(image).all()
    if ds.points is not None:
        assert np.isfinite(ds.points).all()


@pytest.fixture(scope="module")
def transforms_capture(tmp_path_factory):
    root = small_capture(tmp_path_factory.mktemp("transforms"), "transforms")
    return root, (root / "transforms.json").read_bytes()


@FUZZ
@given(edits=EDITS)
def test_transforms_json_byte_mutations(transforms_capture, edits):
    root, valid = transforms_capture
    (root / "transforms.json").write_bytes(edit_bytes(valid, edits))
    check_dataset(read_or_our_error(load_transforms, root, test_every=0))


@FUZZ
@given(data=st.data(), count=st.integers(1, 4))
def test_transforms_json_field_mutations(transforms_capture, data, count):
    root, valid = transforms_capture
    meta = json.loads(valid)
    for _ in range(count):
        meta = edit_json(meta, data.draw)
    (root / "transforms.json").write_text(json.dumps(meta))
    check_dataset(read_or_our_error(load_transforms, root, test_every=0))


# -- COLMAP text -------------------------------------------------------------------------------

TOKENS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "0", "1", "99999999999999999999",
                     "-99999999999999999999", "abc", "", "1.5", "0.5", "-0.0", "PINHOLE",
                     "SIMPLE_RADIAL", "OPENCV", "OPENCV_FISHEYE", "FOV", "0000.png", "#"]),
    st.integers(-10, 10).map(str), st.floats(allow_nan=False, width=32).map(repr))


@pytest.fixture(scope="module")
def colmap_text(tmp_path_factory):
    root = small_capture(tmp_path_factory.mktemp("colmap_text"), "colmap_text")
    return root, {n: (root / "sparse/0" / f"{n}.txt").read_bytes()
                  for n in ("cameras", "images", "points3D")}


def restore(root, files: dict, ext: str) -> None:
    for name, data in files.items():
        (root / "sparse/0" / f"{name}.{ext}").write_bytes(data)


@FUZZ
@given(name=st.sampled_from(["cameras", "images", "points3D"]), edits=EDITS)
def test_colmap_text_byte_mutations(colmap_text, name, edits):
    root, files = colmap_text
    restore(root, files, "txt")
    (root / "sparse/0" / f"{name}.txt").write_bytes(edit_bytes(files[name], edits))
    check_dataset(read_or_our_error(load_colmap, root, test_every=0))


@FUZZ
@given(data=st.data(), name=st.sampled_from(["cameras", "images", "points3D"]),
       count=st.integers(1, 4))
def test_colmap_text_token_mutations(colmap_text, data, name, count):
    """Tokens replaced, dropped or added; lines dropped or doubled."""
    root, files = colmap_text
    restore(root, files, "txt")
    lines = [line.split(" ") for line in files[name].decode().split("\n")]
    for _ in range(count):
        row = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["replace", "drop", "add", "drop_line", "double_line"]))
        tokens = lines[row]
        at = data.draw(st.integers(0, max(len(tokens) - 1, 0)))
        if how == "replace" and tokens:
            tokens[at] = data.draw(TOKENS)
        elif how == "drop" and tokens:
            del tokens[at]
        elif how == "add":
            tokens.insert(at, data.draw(TOKENS))
        elif how == "drop_line" and len(lines) > 1:
            del lines[row]
        elif how == "double_line":
            lines.insert(row, list(tokens))
    (root / "sparse/0" / f"{name}.txt").write_text("\n".join(" ".join(t) for t in lines))
    check_dataset(read_or_our_error(load_colmap, root, test_every=0))


# -- COLMAP binary ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def colmap_binary(tmp_path_factory):
    root = small_capture(tmp_path_factory.mktemp("colmap_binary"), "colmap_binary")
    return root, {n: (root / "sparse/0" / f"{n}.bin").read_bytes()
                  for n in ("cameras", "images", "points3D")}


WORDS = st.sampled_from([struct.pack("<d", v) for v in (math.nan, math.inf, -math.inf, 0.0,
                                                        -1.0, 1e308, 5e-324)]
                        + [struct.pack("<Q", v) for v in (0, 1, 2**31, 2**32 + 1, 2**62,
                                                          2**64 - 1)]
                        + [struct.pack("<i", v) for v in (-1, 0, 7, 10, 11, 2**31 - 1)])


@FUZZ
@given(name=st.sampled_from(["cameras", "images", "points3D"]), edits=EDITS,
       words=st.lists(st.tuples(st.floats(0, 1), WORDS), max_size=3))
def test_colmap_binary_mutations(colmap_binary, name, edits, words):
    """Bytes edited, and words (counts, ids, model ids, doubles) overwritten with extremes."""
    root, files = colmap_binary
    restore(root, files, "bin")
    data = bytearray(edit_bytes(files[name], edits))
    for where, word in words:
        at = int(where * max(len(data) - len(word), 0))
        data[at:at + len(word)] = word
    (root / "sparse/0" / f"{name}.bin").write_bytes(bytes(data))
    check_dataset(read_or_our_error(load_colmap, root, test_every=0))


# -- checkpoints ------------------------------------------------------------------------------

def small_state():
    rng = np.random.default_rng(3)
    return {"step": 12, "loss": 0.25, "name": "lion", "none": None, "flags": [True, False],
            "rng": np.random.default_rng(7).bit_generator.state,
            "params": rng.standard_normal(24).astype(np.float32),
            "optimizer": {"momentum": rng.integers(0, 2**16, 24).astype(np.uint16),
                          "count": np.arange(6, dtype=np.int64).reshape(2, 3), "history": [
                              (0, 1.5), (10, 0.5)]}}


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "c.npz", small_state()).read_bytes()


def check_state(state) -> None:
    if state is not None:
        assert isinstance(state, dict)


@FUZZ
@given(edits=EDITS, verify=st.booleans())
def test_checkpoint_byte_mutations(checkpoint_bytes, tmp_path, edits, verify):
    path = tmp_path / "c.npz"
    path.write_bytes(edit_bytes(checkpoint_bytes, edits))
    check_state(read_or_our_error(load_checkpoint, path, verify=verify))


def npz_members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


NPY_HEADERS = st.fixed_dictionaries({
    "descr": st.sampled_from(["<f4", "<f8", ">i8", "<u2", "|b1", "<c16", "|S3", "<U2", "|V4",
                              "|u1"]),
    "fortran_order": st.booleans(),
    "shape": st.lists(st.sampled_from([0, 1, 2, 3, 24, 10**6, 2**40]), max_size=3).map(tuple)})


@FUZZ
@given(data=st.data(), verify=st.booleans())
def test_checkpoint_member_mutations(checkpoint_bytes, tmp_path, data, verify):
    """A checkpoint re-packed with its JSON edited field by field, array headers replaced
    (dtype, order, shape), members dropped, renamed or compressed."""
    members = npz_members(checkpoint_bytes)
    how = data.draw(st.sampled_from(["json", "header", "drop", "rename", "deflate"]))
    name = data.draw(st.sampled_from(sorted(members)))
    if how == "json":
        meta = np.load(io.BytesIO(members["__meta__.json.npy"]))
        tree = json.loads(meta.tobytes())
        for _ in range(data.draw(st.integers(1, 3))):
            tree = edit_json(tree, data.draw)
        out = io.BytesIO()
        np.save(out, np.frombuffer(json.dumps(tree).encode(), np.uint8))
        members["__meta__.json.npy"] = out.getvalue()
    elif how == "header":
        body = members[name]
        start = 10 + struct.unpack("<H", body[8:10])[0]  # .npy 1.0: magic, version, length
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, data.draw(NPY_HEADERS))
        members[name] = header.getvalue() + body[start:]
    elif how == "drop":
        del members[name]
    elif how == "rename":
        members[data.draw(st.sampled_from(["x.npy", "x", "params/0.npy", name + ".npy"]))] = (
            members.pop(name))
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if how == "deflate"
                         else zipfile.ZIP_STORED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    check_state(read_or_our_error(load_checkpoint, path, verify=verify))


# -- ASCII PLY --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ascii_ply():
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
             "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rng = np.random.default_rng(2)
    head = "ply\nformat ascii 1.0\nelement vertex 4\n" + "".join(
        f"property float {n}\n" for n in names) + "property list uchar int ids\nend_header\n"
    rows = "".join(" ".join(f"{v:.3f}" for v in rng.standard_normal(len(names))) + " 2 0 1\n"
                   for _ in range(4))
    return (head + rows).encode()


@FUZZ
@given(edits=EDITS, count=st.sampled_from([None, 0, 3, 5, 10**6, 30_000_000, 10**30]))
def test_ascii_ply_mutations(ascii_ply, tmp_path, edits, count):
    data = ascii_ply if count is None else ascii_ply.replace(b"vertex 4",
                                                            f"vertex {count}".encode())
    path = tmp_path / "a.ply"
    path.write_bytes(edit_bytes(data, edits))
    g = read_or_our_error(load_ply, path)
    if g is not None:
        assert np.isfinite(g.backend.to_numpy(g.params.data)).all()


@pytest.fixture(scope="module")
def binary_ply(tmp_path_factory):
    """A valid binary PLY of 5 splats at SH degree 1 with extra properties."""
    rng = np.random.default_rng(0)
    g = Gaussians.from_arrays(rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) - 3,
                              rng.normal(size=(5, 4)), rng.normal(size=5),
                              rng.normal(size=(5, 1, 3)), rng.normal(size=(5, 3, 3)),
                              backend=get_backend("cpu"))
    g.extra["label"] = np.arange(5, dtype=np.int32)
    return save_ply(g, tmp_path_factory.mktemp("ply") / "v.ply").read_bytes()


@FUZZ
@given(edits=EDITS)
def test_binary_ply_mutations(binary_ply, tmp_path, edits):
    """Corrupted binary PLY files raise PlyError (or load), never anything else, and a file
    that loads holds no non-finite splat."""
    path = tmp_path / "b.ply"
    path.write_bytes(edit_bytes(binary_ply, edits))
    g = read_or_our_error(load_ply, path)
    if g is not None:
        values = g.backend.to_numpy(g.params.data)
        for name in g.layout.names:
            assert np.isfinite(g.layout.view(values, name)).all()
