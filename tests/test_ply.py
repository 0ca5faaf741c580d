"""3DGS PLY: exact round trips, the file layout, other encodings, and every malformed case."""

from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pytest
from plyfile import PlyData, PlyElement, PlyListProperty

from splat_lion import PlyError, load_ply, save_ply
from splat_lion.errors import OutputError
from splat_lion.backend import backend_of
from splat_lion.ply import property_names


def host(a) -> np.ndarray:
    """`a` as a NumPy array: splats load onto the default backend (CuPy's where a GPU is)."""
    return backend_of(a).to_numpy(a)


def same_bits(a, b) -> bool:
    a, b = host(a), host(b)
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
            np.testing.assert_array_equal(host(g.shN[:, coef, channel]),
                                          rest[:, channel * 15 + coef])
    np.testing.assert_array_equal(host(g.sh0[:, 0, 1]), rows["f_dc_1"])
    np.testing.assert_array_equal(host(g.quats[:, 0]), rows["rot_0"])  # w first
    np.testing.assert_array_equal(host(g.opacities), rows["opacity"])


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, ">")], ids=["ascii", "big-endian"])
def test_ascii_and_big_endian_files_load_the_same(tmp_path, text, byte_order):
    rows = hand_built(6, 1)
    want = load_ply(write(tmp_path / "le.ply", rows))
    got = load_ply(write(tmp_path / "other.ply", rows, text=text, byte_order=byte_order))
    np.testing.assert_array_equal(host(got.params.data), host(want.params.data))


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
    np.testing.assert_array_equal(host(g.means[:, 0]), rows["x"][[0, 2, 4]])


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


# -- sizes: element counts checked against the file before anything is allocated ---------------

def with_count(data: bytes, old: int, new: int) -> bytes:
    return data.replace(f"element vertex {old}\n".encode(), f"element vertex {new}\n".encode(), 1)


@pytest.mark.parametrize("byte_order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("count, match", [
    (6, r"\(vertex 6 x 68 bytes\) need 408 bytes but the body holds 476 \(7 vertex rows\): a "
        r"header count smaller than the body would load only a prefix; fix the count"),
    (8, r"\(vertex 8 x 68 bytes\) need 544 bytes but the body holds 476 \(7 vertex rows\): the "
        r"file is truncated or its count is wrong"),
], ids=["smaller", "larger"])
def test_a_binary_body_must_match_its_header_count(tmp_path, byte_order, count, match):
    data = write(tmp_path / "a.ply", hand_built(7, 0), byte_order=byte_order).read_bytes()
    (tmp_path / "b.ply").write_bytes(with_count(data, 7, count))
    with pytest.raises(PlyError, match=r"b.ply: not a readable PLY file: the header's elements "
                                       + match):
        load_ply(tmp_path / "b.ply")


def test_ascii_rows_beyond_the_header_count_are_refused(tmp_path):
    data = write(tmp_path / "a.ply", hand_built(7, 0), text=True).read_bytes()
    (tmp_path / "b.ply").write_bytes(with_count(data, 7, 6))
    with pytest.raises(PlyError, match=r"b.ply: not a readable PLY file: \d+ characters follow "
                                       r"the last element the header declares \(vertex 6\)"):
        load_ply(tmp_path / "b.ply")


def test_bytes_after_an_element_with_lists_are_refused(tmp_path):
    faces = np.empty(2, [("vertex_indices", object)])
    faces["vertex_indices"] = [np.array([0, 1, 2], "i4"), np.array([2, 3, 4, 5], "i4")]
    face = PlyElement.describe(faces, "face")
    path = write(tmp_path / "a.ply", hand_built(7, 0), extra_elements=[face])
    assert load_ply(path).count == 7
    path.write_bytes(path.read_bytes() + b"\0" * 5)
    with pytest.raises(PlyError, match=r"5 bytes follow the last element the header declares "
                                       r"\(vertex 7, face 2\)"):
        load_ply(path)


def header(fmt: str, count: int, lists: bool) -> bytes:
    props = "".join(f"property float {name}\n" for name in property_names(0))
    more = "property list uchar int indices\n" if lists else ""
    return f"ply\nformat {fmt} 1.0\nelement vertex {count}\n{props}{more}end_header\n".encode()


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("lists", [False, True], ids=["scalars", "with-a-list"])
def test_a_huge_count_in_a_small_file_fails_at_once(tmp_path, fmt, lists):
    """A 400-byte header claiming 30M splats (with a list property in the vertex element or
    not): refused from the header and the file's size, nothing allocated for the claim."""
    body = b"0 " * 17 + b"1 0\n" if fmt == "ascii" else b"\0" * 69
    path = tmp_path / "huge.ply"
    path.write_bytes(header(fmt, 30_000_000, lists) + body)
    assert 380 < path.stat().st_size < 520
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(PlyError, match=r"huge.ply: not a readable PLY file: the header.*"
                                           r"\(vertex 30000000 x \d+ bytes"):
            load_ply(path)
        assert time.perf_counter() - start < 0.2
        assert tracemalloc.get_traced_memory()[1] < 1 << 20  # bytes: far below the claim
    finally:
        tracemalloc.stop()


def test_a_negative_count_is_refused(tmp_path):
    path = tmp_path / "n.ply"
    path.write_bytes(header("binary_little_endian", -3, False))
    with pytest.raises(PlyError, match=r"'element vertex -3': a count must be >= 0"):
        load_ply(path)


def test_a_header_without_its_end_is_refused(tmp_path):
    path = tmp_path / "endless.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\ncomment " + b"x" * (1 << 21))
    start = time.perf_counter()
    with pytest.raises(PlyError, match=r"no 'end_header' line in the first 1048576 bytes"):
        load_ply(path)
    assert time.perf_counter() - start < 0.5


def test_zero_padded_f_rest_names_are_named(tmp_path):
    names = [f"f_rest_{i:02d}" if name.startswith("f_rest_") else name
             for i, name in enumerate(property_names(1), -9)]
    path = write(tmp_path / "z.ply", hand_built(3, 1, names=names))
    with pytest.raises(PlyError, match=r"z.ply: vertex properties f_rest_00, f_rest_01, "
                                       r"f_rest_02, ... have zero-padded numbers \(9 of 9 f_rest "
                                       r"properties\); 3DGS names them f_rest_0, f_rest_1, ... "
                                       r"without leading zeros: rename them"):
        load_ply(path)


def test_an_unreadable_file_is_named(tmp_path, random_scene, deny_reading):
    path = save_ply(random_scene(5, 0), tmp_path / "a.ply")
    deny_reading(path)
    with pytest.raises(PlyError, match=r"a.ply: cannot read: Permission denied; check the file's "
                                       "permissions"):
        load_ply(path)


def test_a_folder_is_not_a_ply_file(tmp_path):
    with pytest.raises(PlyError, match="a folder, not a PLY file"):
        load_ply(tmp_path)


# -- saves: through symlinks, keeping modes, cleaning up after killed saves ----------------------

def test_a_save_writes_through_a_symlink(tmp_path, random_scene):
    real = save_ply(random_scene(5, 0), tmp_path / "real.ply")
    (tmp_path / "link.ply").symlink_to("real.ply")
    g = random_scene(9, 1)
    save_ply(g, tmp_path / "link.ply")
    assert (tmp_path / "link.ply").is_symlink() and load_ply(real).count == 9
    (tmp_path / "dangling.ply").symlink_to("new.ply")  # a link to nothing yet: the target appears
    save_ply(g, tmp_path / "dangling.ply")
    assert (tmp_path / "dangling.ply").is_symlink() and load_ply(tmp_path / "new.ply").count == 9


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664], ids=oct)
def test_a_save_keeps_the_files_mode(tmp_path, random_scene, mode):
    path = save_ply(random_scene(5, 0), tmp_path / "a.ply")
    path.chmod(mode)
    save_ply(random_scene(5, 0), path)
    assert path.stat().st_mode & 0o777 == mode


def test_a_save_removes_temporaries_of_killed_saves(tmp_path, random_scene):
    """A save killed before its rename leaves .NAME.XXXXXXXX.tmp; the next save of the same
    file removes those older than a minute (a younger one may be a save still running)."""
    killed = [tmp_path / f".scene.ply.k1ll3d_{i}.tmp" for i in range(3)]
    running = tmp_path / ".scene.ply.runn1ng_.tmp"
    other = tmp_path / ".other.ply.k1ll3d_0.tmp"
    old = time.time() - 120
    for p in [*killed, running, other]:
        p.write_bytes(b"ply\n" + b"\0" * 1000)
        if p is not running:
            os.utime(p, (old, old))
    save_ply(random_scene(5, 0), tmp_path / "scene.ply")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.ply.k1ll3d_0.tmp", ".scene.ply.runn1ng_.tmp", "scene.ply"])


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"),
                                   OSError(28, "No space left on device"),
                                   OSError(30, "Read-only file system")],
                         ids=["permission", "disk-full", "read-only"])
def test_a_refused_write_is_an_output_error_naming_the_path(tmp_path, random_scene, monkeypatch,
                                                            error):
    target = save_ply(random_scene(5, 0), tmp_path / "scene.ply")
    before = target.read_bytes()

    def refused(self, stream):
        raise error

    monkeypatch.setattr(PlyData, "write", refused)
    with pytest.raises(OutputError, match=rf"scene.ply: cannot write: {error.strerror}; the "
                                          "previous file is unchanged"):
        save_ply(random_scene(5, 0), target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["scene.ply"]


def test_no_permission_to_create_a_file_is_an_output_error(tmp_path, random_scene, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refused)
    with pytest.raises(OutputError, match=rf"new.ply: cannot write in {tmp_path}: Permission "
                                          "denied; nothing was written"):
        save_ply(random_scene(5, 0), tmp_path / "new.ply")


def test_saving_onto_a_folder_is_a_ply_error(tmp_path, random_scene):
    (tmp_path / "out.ply").mkdir()
    with pytest.raises(PlyError, match=r"out.ply: is a folder; give a file name inside it"):
        save_ply(random_scene(5, 0), tmp_path / "out.ply")
