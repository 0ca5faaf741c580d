"""3DGS PLY: exact round trips, the file layout, other encodings, and every malformed case."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plyfile import PlyData, PlyElement, PlyListProperty

from splat_lion import PlyError, load_ply, save_ply
from splat_lion.ply import property_names


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact(tmp_path, random_scene, degree):
    g = random_scene(57, degree, extra=True)
    p = save_ply(g, tmp_path / "a.ply")
    h = load_ply(p)
    assert h.sh_degree == degree and h.count == g.count
    assert same_bits(h.params.data, g.params.data)
    assert set(h.extra) == {"label", "confidence"}
    for name in g.extra:
        assert same_bits(h.extra[name], g.extra[name])
    save_ply(h, tmp_path / "b.ply")
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_file_has_the_3dgs_properties_in_order(tmp_path, random_scene):
    p = save_ply(random_scene(57, 2), tmp_path / "a.ply")
    ply = PlyData.read(str(p))
    assert [q.name for q in ply["vertex"].properties] == property_names(2)
    assert all(ply["vertex"].data.dtype[name] == np.dtype("<f4") for name in property_names(2))
    assert not ply.text and ply.byte_order == "<"
    assert not any(ply["vertex"].data[n].any() for n in ("nx", "ny", "nz"))


def hand_built(n, degree, names=None, dtype="<f4", drop=(), replace=None):
    """A vertex table where property j of splat i holds 1000*i + j."""
    names = names or property_names(degree)
    names = [x for x in names if x not in drop]
    rows = np.zeros(n, [(x, (replace or {}).get(x, dtype)) for x in names])
    for j, x in enumerate(names):
        rows[x] = 1000 * np.arange(n) + j
    return rows


def write(path, rows, text=False, byte_order="<", extra_elements=()):
    PlyData([PlyElement.describe(rows, "vertex"), *extra_elements], text=text,
            byte_order=byte_order).write(str(path))
    return path


def test_f_rest_is_read_channel_major(tmp_path):
    rows = hand_built(4, 3)
    g = load_ply(write(tmp_path / "h.ply", rows))
    rest = np.stack([rows[f"f_rest_{i}"] for i in range(45)], 1)  # [N, 45]
    for coef in range(15):
        for channel in range(3):
            np.testing.assert_array_equal(g.shN[:, coef, channel], rest[:, channel * 15 + coef])
    np.testing.assert_array_equal(g.sh0[:, 0, 1], rows["f_dc_1"])
    np.testing.assert_array_equal(g.quats[:, 0], rows["rot_0"])  # w first
    np.testing.assert_array_equal(g.opacities, rows["opacity"])


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, ">")], ids=["ascii", "big-endian"])
def test_ascii_and_big_endian_files_load_the_same(tmp_path, text, byte_order):
    rows = hand_built(6, 1)
    want = load_ply(write(tmp_path / "le.ply", rows))
    got = load_ply(write(tmp_path / "other.ply", rows, text=text, byte_order=byte_order))
    np.testing.assert_array_equal(got.params.data, want.params.data)


def test_double_precision_properties_are_accepted(tmp_path):
    g = load_ply(write(tmp_path / "d.ply", hand_built(3, 0, dtype="<f8")))
    assert g.count == 3 and g.means[2, 1] == 2001


@pytest.mark.parametrize("build,match", [
    (lambda: hand_built(3, 1, drop=("opacity",)), "vertex property 'opacity' missing"),
    (lambda: hand_built(3, 1, drop=("f_rest_4",)), "'f_rest_4' missing: found 8 f_rest"),
    (lambda: hand_built(3, 3, drop=[f"f_rest_{i}" for i in range(10, 45)]),
     "found 10 f_rest properties; an SH degree needs 0, 9, 24 or 45"),
    (lambda: hand_built(3, 0, replace={"scale_1": "<i4"}),
     "vertex property 'scale_1' is int32, not a float"),
    (lambda: hand_built(3, 0, drop=("rot_3",)), "'rot_3' missing"),
    (lambda: hand_built(3, 0, names=property_names(0) + ["f_rest_01"]),
     "'f_rest_0' missing: found 1 f_rest properties \\(f_rest_01\\)"),
])
def test_malformed_vertex_tables_are_clear_errors(tmp_path, build, match):
    path = write(tmp_path / "bad.ply", build())
    with pytest.raises(PlyError, match=match) as e:
        load_ply(path)
    assert str(path) in str(e.value)


def test_no_vertex_element(tmp_path):
    face = PlyElement.describe(np.zeros(2, [("a", "<f4")]), "face")
    PlyData([face]).write(str(tmp_path / "f.ply"))
    with pytest.raises(PlyError, match="no 'vertex' element \\(found: face\\)"):
        load_ply(tmp_path / "f.ply")


def test_list_property_where_a_float_is_needed(tmp_path):
    rows = hand_built(2, 0, drop=("opacity",))
    table = np.empty(2, rows.dtype.descr + [("opacity", object)])
    for x in rows.dtype.names:
        table[x] = rows[x]
    table["opacity"] = [np.array([1.0], "f4"), np.array([2.0], "f4")]
    el = PlyElement.describe(table, "vertex", val_types={"opacity": "f4"})
    assert isinstance(el.properties[-1], PlyListProperty)
    PlyData([el]).write(str(tmp_path / "l.ply"))
    with pytest.raises(PlyError, match="'opacity' is a list, not a float"):
        load_ply(tmp_path / "l.ply")


@pytest.mark.parametrize("cut", [1, 100, 1000])
def test_truncated_file(tmp_path, random_scene, cut):
    data = save_ply(random_scene(57, 3, extra=True), tmp_path / "a.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[:-cut])
    with pytest.raises(PlyError, match="t.ply: not a readable PLY file"):
        load_ply(tmp_path / "t.ply")


def test_not_a_ply_and_missing_file(tmp_path):
    (tmp_path / "x.ply").write_text("hello\n")
    with pytest.raises(PlyError, match="not a readable PLY file"):
        load_ply(tmp_path / "x.ply")
    with pytest.raises(PlyError, match="nope.ply: no such file"):
        load_ply(tmp_path / "nope.ply")


def test_non_finite_values_are_reported_or_dropped(tmp_path):
    rows = hand_built(5, 0)
    rows["opacity"][1] = np.nan
    rows["scale_0"][[1, 3]] = np.inf
    path = write(tmp_path / "nf.ply", rows)
    with pytest.raises(PlyError, match=r"3 non-finite values in 2 splats \(opacity: 1, "
                                       r"scale_0: 2\); pass on_nonfinite='drop'"):
        load_ply(path)
    with pytest.warns(UserWarning, match="dropped 2 splats"):
        g = load_ply(path, on_nonfinite="drop")
    np.testing.assert_array_equal(g.means[:, 0], rows["x"][[0, 2, 4]])


def test_failed_save_keeps_the_previous_file(tmp_path, random_scene, monkeypatch):
    target = save_ply(random_scene(57, 3, extra=True), tmp_path / "scene.ply")
    before = target.read_bytes()

    def broken_write(self, stream):
        stream.write(b"ply\nformat binary_little_endian 1.0\n")
        raise OSError("disk full")

    monkeypatch.setattr(PlyData, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_ply(random_scene(57, 3, extra=True), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["scene.ply"], "the temporary file must be removed"


def test_saved_files_get_ordinary_permissions(tmp_path, random_scene):
    umask = os.umask(0o022)
    try:
        path = save_ply(random_scene(57, 3, extra=True), tmp_path / "a.ply")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_into_a_missing_folder_is_a_clear_error(tmp_path, random_scene):
    with pytest.raises(PlyError, match="does not exist"):
        save_ply(random_scene(57, 3, extra=True), tmp_path / "no" / "a.ply")


# -- fuzz: corrupted files raise PlyError, never anything else, never non-finite splats --

_VALID: dict[str, bytes] = {}


def valid_file(tmp_path_factory, random_scene) -> bytes:
    if "bin" not in _VALID:
        d = tmp_path_factory.mktemp("fuzz")
        g = random_scene(5, 1, extra=True)
        _VALID["bin"] = save_ply(g, d / "v.ply").read_bytes()
    return _VALID["bin"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255), st.sampled_from(
    ["set", "insert", "delete", "truncate"])), min_size=1, max_size=6))
def test_corrupted_files_raise_only_ply_error(tmp_path_factory, tmp_path, random_scene, edits):
    data = bytearray(valid_file(tmp_path_factory, random_scene))
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
    path = Path(tmp_path) / "fuzz.ply"
    path.write_bytes(bytes(data))
    try:
        g = load_ply(path)
    except PlyError:
        return
    host = np.asarray(g.params.data)
    for name in g.layout.names:
        assert np.isfinite(g.layout.view(host, name)).all()
