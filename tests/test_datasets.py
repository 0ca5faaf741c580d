"""Dataset loaders: transforms.json and COLMAP (text and binary) round trips, the NeRF-synthetic
layout, downscaling, image modes, and a DatasetError for every malformed input."""

from __future__ import annotations

import json
import math
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from splat_lion import scenes
from splat_lion.backend import get_backend
from splat_lion.cameras import Camera, orbit_cameras
from splat_lion.datasets import (DatasetError, detect, load_colmap, load_dataset, load_transforms,
                                 write_colmap, write_transforms)
from splat_lion.ply import load_ply
from splat_lion.render import render

W, H = 32, 24
QUANT = 1 / 255 + 1e-6  # 8-bit PNG quantisation (rounding: at most half of this)
TRAIN, TEST = [1, 2, 4, 5], [0, 3]  # test_every=3 over 6 views


@pytest.fixture(scope="module")
def views():
    """Six renders of the `shapes` scene, each camera with its own intrinsics, and 50 points."""
    be = get_backend("cpu")
    g = load_ply(scenes.path("shapes"), backend=be)
    cams = [Camera(np.array([[30.0 + i, 0, 15.5 + 0.1 * i], [0, 31.0 + i, 12.25 - 0.1 * i],
                             [0, 0, 1]]), c.viewmat, W, H)
            for i, c in enumerate(orbit_cameras(radius=4.0, n=6, width=W, height=H))]
    images = [be.to_numpy(render(g, c).image) for c in cams]
    rng = np.random.default_rng(7)
    return {"cameras": cams, "images": images, "points": rng.standard_normal((50, 3)),
            "colors": rng.random((50, 3))}


@pytest.fixture(scope="module")
def orbit():
    """Six orbit views sharing one K (fx = fy, centred principal point), as NeRF data has."""
    be = get_backend("cpu")
    g = load_ply(scenes.path("shapes"), backend=be)
    cams = orbit_cameras(radius=4.0, n=6, width=W, height=H)
    return {"cameras": cams, "images": [be.to_numpy(render(g, c).image) for c in cams]}


def assert_same_cameras(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_allclose(a.K, b.K, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.viewmat, b.viewmat, rtol=0, atol=1e-6)


def assert_same_images(got, want, atol=QUANT):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


def pick(items, indices):
    return [items[i] for i in indices]


def write(kind, root, v, binary=False):
    if kind == "transforms":
        write_transforms(root, v["cameras"], v["images"])
    else:
        write_colmap(root, v["cameras"], v["images"], v["points"], v["colors"], binary=binary)
    return root


def load(kind, root, **kwargs):
    return (load_transforms if kind == "transforms" else load_colmap)(root, **kwargs)


# -- round trips ---------------------------------------------------------------------------------

def test_transforms_round_trip(tmp_path, views):
    ds = load_transforms(write("transforms", tmp_path, views), test_every=3)
    assert ds.kind == "transforms" and ds.root == tmp_path and ds.points is None
    assert ds.point_colors is None and ds.background == (0.0, 0.0, 0.0)
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], TRAIN))
    assert_same_cameras(ds.test_cameras, pick(views["cameras"], TEST))
    assert_same_images(ds.train_images, pick(views["images"], TRAIN))
    assert_same_images(ds.test_images, pick(views["images"], TEST))


def test_transforms_shared_intrinsics_are_written_once(tmp_path, orbit):
    write("transforms", tmp_path, orbit)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert meta["w"] == W and meta["h"] == H and "fl_x" not in meta["frames"][0]
    ds = load_transforms(tmp_path, test_every=0)
    assert_same_cameras(ds.train_cameras, orbit["cameras"]) and ds.test_cameras == []


def test_transforms_split_files_give_the_split(tmp_path, views):
    split = ["train", "test", "train", "train", "test", "train"]
    write_transforms(tmp_path, views["cameras"], views["images"], split=split)
    assert not (tmp_path / "transforms.json").exists()
    ds = load_transforms(tmp_path, test_every=3)  # the files decide, not test_every
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], [0, 2, 3, 5]))
    assert_same_cameras(ds.test_cameras, pick(views["cameras"], [1, 4]))
    assert_same_images(ds.test_images, pick(views["images"], [1, 4]))


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_round_trip(tmp_path, views, binary):
    ds = load_colmap(write("colmap", tmp_path, views, binary), test_every=3)
    assert ds.kind == "colmap" and ds.root == tmp_path
    assert (tmp_path / "sparse" / "0" / ("images.bin" if binary else "images.txt")).is_file()
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], TRAIN))
    assert_same_cameras(ds.test_cameras, pick(views["cameras"], TEST))
    assert_same_images(ds.train_images, pick(views["images"], TRAIN))
    assert_same_images(ds.test_images, pick(views["images"], TEST))
    assert ds.points.dtype == np.float64 and np.array_equal(ds.points, views["points"])
    np.testing.assert_array_equal(ds.point_colors, np.round(views["colors"] * 255) / 255)


def test_colmap_text_and_binary_are_identical(tmp_path, views):
    text = load_colmap(write("colmap", tmp_path / "t", views, False), test_every=3)
    binary = load_colmap(write("colmap", tmp_path / "b", views, True), test_every=3)
    for split in ("train", "test"):
        for a, b in zip(getattr(text, f"{split}_cameras"), getattr(binary, f"{split}_cameras"),
                        strict=True):
            assert np.array_equal(a.K, b.K) and np.array_equal(a.viewmat, b.viewmat)
            assert (a.width, a.height) == (b.width, b.height)
        for a, b in zip(getattr(text, f"{split}_images"), getattr(binary, f"{split}_images"),
                        strict=True):
            assert np.array_equal(a, b)
    assert np.array_equal(text.points, binary.points)
    assert np.array_equal(text.point_colors, binary.point_colors)


@pytest.mark.parametrize("kind", ["transforms", "colmap"])
def test_loaded_camera_renders_the_original_image(tmp_path, views, cpu, kind):
    g = load_ply(scenes.path("shapes"), backend=cpu)
    ds = load(kind, write(kind, tmp_path, views), test_every=3)
    for cam, want in zip(ds.test_cameras, pick(views["images"], TEST)):
        np.testing.assert_allclose(cpu.to_numpy(render(g, cam).image), want, rtol=0, atol=1e-4)


# -- NeRF-synthetic layout -----------------------------------------------------------------------

def opengl_camera_to_world(cam: Camera) -> list:
    """transform_matrix as NeRF stores it, built from the camera's axes: columns right, up
    (= -down), back (= -forward) and the camera centre."""
    right, down, forward = cam.viewmat[:3, :3]
    return np.vstack([np.column_stack([right, -down, -forward, cam.position]),
                      [0, 0, 0, 1]]).tolist()


def test_nerf_synthetic_layout(tmp_path, orbit, cpu):
    g = load_ply(scenes.path("shapes"), backend=cpu)
    written = {}
    for split, indices in (("train", [0, 1, 2, 3]), ("test", [4, 5])):
        frames = []
        for i in indices:
            cam = orbit["cameras"][i]
            out = render(g, cam)  # straight RGB = premultiplied / alpha, as NeRF PNGs store
            alpha = cpu.to_numpy(out.alpha)[..., None]
            rgb = np.clip(cpu.to_numpy(out.image) / np.maximum(alpha, 1e-6), 0, 1)
            rgba = np.round(np.concatenate([rgb, alpha], 2) * 255).astype(np.uint8)
            (tmp_path / split).mkdir(exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(tmp_path / split / f"r_{i}.png")
            written[i] = rgba / 255.0
            frames.append({"file_path": f"./{split}/r_{i}",
                           "transform_matrix": opengl_camera_to_world(cam)})
        meta = {"camera_angle_x": math.radians(50.0), "frames": frames}
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps(meta))

    assert detect(tmp_path) == "transforms"
    ds = load_dataset(tmp_path, background=(1, 1, 1))
    assert ds.background == (1.0, 1.0, 1.0) and len(ds.train_cameras) == 4
    assert_same_cameras(ds.train_cameras + ds.test_cameras, orbit["cameras"])
    for i, (cam, image) in enumerate(zip(ds.train_cameras + ds.test_cameras,
                                         ds.train_images + ds.test_images)):
        a = written[i][..., 3:]
        np.testing.assert_allclose(image, written[i][..., :3] * a + (1 - a), rtol=0, atol=1e-6)
        # the loaded camera sees the scene as the file says: compare with a render on white
        want = cpu.to_numpy(render(g, cam, background=(1, 1, 1)).image)
        np.testing.assert_allclose(image, want, rtol=0, atol=2 * QUANT)


# -- downscale, images_N, max_images, image modes ------------------------------------------------

@pytest.mark.parametrize("kind", ["transforms", "colmap"])
def test_downscale_halves_sizes_and_scales_K(tmp_path, views, kind):
    root = write(kind, tmp_path, views)
    full = load(kind, root, test_every=3)
    half = load(kind, root, test_every=3, downscale=2)
    for a, b, image_a, image_b in zip(full.train_cameras, half.train_cameras, full.train_images,
                                      half.train_images, strict=True):
        assert (b.width, b.height) == (W // 2, H // 2)
        np.testing.assert_allclose(b.K[:2], a.K[:2] / 2, rtol=0, atol=1e-12)
        assert np.array_equal(a.viewmat, b.viewmat)
        box = image_a.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))  # 2x2 area average
        np.testing.assert_allclose(image_b, box, rtol=0, atol=1e-6)


def test_downscale_rounds_odd_sizes(tmp_path):
    cam = Camera(np.array([[40.0, 0, 16.5], [0, 41.0, 12.5], [0, 0, 1]]), np.eye(4), 33, 25)
    write_transforms(tmp_path, [cam], [np.full((25, 33, 3), 0.5)])
    ds = load_transforms(tmp_path, downscale=2, test_every=0)
    (c,) = ds.train_cameras
    assert (c.width, c.height) == (round(33 / 2), round(25 / 2)) == (16, 12)
    np.testing.assert_allclose([c.fx, c.cx, c.fy, c.cy],
                               [40 * 16 / 33, 16.5 * 16 / 33, 41 * 12 / 25, 12.5 * 12 / 25])
    assert ds.train_images[0].shape == (12, 16, 3)


def test_colmap_reads_an_images_N_folder(tmp_path, views):
    write("colmap", tmp_path, views)
    (tmp_path / "images_2").mkdir()
    for p in (tmp_path / "images").iterdir():  # 17 wide: within a pixel of 32/2 is accepted
        Image.new("RGB", (17, 12), (51, 51, 51)).save(tmp_path / "images_2" / p.name)
    ds = load_colmap(tmp_path, downscale=2, test_every=0)
    for cam, want, image in zip(ds.train_cameras, views["cameras"], ds.train_images, strict=True):
        assert (cam.width, cam.height) == (17, 12) and np.all(image == np.float32(51 / 255))
        np.testing.assert_allclose(cam.K[0], want.K[0] * 17 / 32)
        np.testing.assert_allclose(cam.K[1], want.K[1] / 2)


@pytest.mark.parametrize("kind", ["transforms", "colmap"])
def test_max_images_limits_each_split(tmp_path, views, kind):
    ds = load(kind, write(kind, tmp_path, views), test_every=3, max_images=1)
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], TRAIN[:1]))
    assert_same_cameras(ds.test_cameras, pick(views["cameras"], TEST[:1]))
    assert len(ds.train_images) == len(ds.test_images) == 1


@pytest.mark.parametrize("mode", ["I;16", "L", "LA", "P"])
def test_image_modes_become_rgb(tmp_path, orbit, mode):
    write_transforms(tmp_path, orbit["cameras"][:1], orbit["images"][:1])
    ramp = np.linspace(0, 1, W * H).reshape(H, W)
    if mode == "I;16":
        Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / "images/0000.png")
        want, atol = ramp, 1 / 65535  # 16 bits kept
    elif mode == "L":
        Image.fromarray(np.round(ramp * 255).astype(np.uint8)).save(tmp_path / "images/0000.png")
        want, atol = ramp, QUANT
    elif mode == "LA":  # grey at 0.8 over alpha = ramp, on a (0, 0.5, 1) background
        la = np.stack([np.full((H, W), 204), np.round(ramp * 255)], 2).astype(np.uint8)
        Image.fromarray(la, "LA").save(tmp_path / "images/0000.png")
        want, atol = 0.8 * ramp[..., None] + np.array([0, 0.5, 1]) * (1 - ramp[..., None]), QUANT
    else:
        Image.fromarray(np.round(ramp * 255).astype(np.uint8)).convert("P").save(
            tmp_path / "images/0000.png")
        want, atol = ramp, 2 * QUANT  # the web palette is coarse; convert("P") dithers
    ds = load_transforms(tmp_path, test_every=0, background=(0, 0.5, 1))
    image = ds.train_images[0]
    assert image.shape == (H, W, 3) and image.dtype == np.float32
    want = np.broadcast_to(want[..., None] if want.ndim == 2 else want, (H, W, 3))
    if mode != "P":
        np.testing.assert_allclose(image, want, rtol=0, atol=atol)
    else:
        assert np.array_equal(image[..., 0], image[..., 1])


# -- detection -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout, kind", [
    ("transforms.json", "transforms"), ("transforms_train.json", "transforms"),
    ("sparse/0/", "colmap"), ("sparse/", "colmap"), ("cameras.bin", "colmap"),
    ("cameras.txt", "colmap"), ("notes.txt", None)])
def test_detect(tmp_path, layout, kind):
    p = tmp_path / layout
    if layout.endswith("/"):
        p.mkdir(parents=True)
    else:
        p.write_text("{}")
    assert detect(tmp_path) == kind
    assert detect(tmp_path / "missing") is None


@pytest.mark.parametrize("where", ["sparse/0", "sparse", "."])
def test_colmap_model_is_found_where_it_lives(tmp_path, views, where):
    write("colmap", tmp_path, views, binary=True)
    if where != "sparse/0":
        for p in (tmp_path / "sparse" / "0").iterdir():
            shutil.move(p, tmp_path / where / p.name)
        (tmp_path / "sparse" / "0").rmdir()
    ds = load_dataset(tmp_path, test_every=3)
    assert ds.kind == "colmap"
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], TRAIN))


def test_colmap_pose_is_a_hamilton_quaternion_world_to_camera(tmp_path, orbit):
    write_colmap(tmp_path, orbit["cameras"][:1], orbit["images"][:1], np.zeros((0, 3)),
                 np.zeros((0, 3)), binary=False)
    s = math.sqrt(0.5)  # 90 degrees about +z: x -> y, y -> -x
    (tmp_path / IMAGES).write_text(f"1 {s} 0 0 {s} 1 2 3 1 0000.png\n\n")
    (cam,) = load_colmap(tmp_path, test_every=0).train_cameras
    np.testing.assert_allclose(cam.viewmat, [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3],
                                             [0, 0, 0, 1]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("line", ["1 SIMPLE_PINHOLE 32 24 {f} 16 12",
                                  "1 SIMPLE_RADIAL 32 24 {f} 16 12 0",
                                  "1 RADIAL 32 24 {f} 16 12 0.0 0.0"])
def test_colmap_pinhole_like_models_without_distortion(tmp_path, orbit, line):
    write_colmap(tmp_path, orbit["cameras"][:1], orbit["images"][:1], np.zeros((0, 3)),
                 np.zeros((0, 3)), binary=False)
    (tmp_path / "sparse/0/cameras.txt").write_text(line.format(f=repr(orbit["cameras"][0].fx)))
    ds = load_colmap(tmp_path, test_every=0)
    assert_same_cameras(ds.train_cameras, orbit["cameras"][:1])
    assert ds.points.shape == (0, 3)


# -- errors --------------------------------------------------------------------------------------

def edit_json(root, edit, name="transforms.json"):
    meta = json.loads((root / name).read_text())
    edit(meta)
    (root / name).write_text(json.dumps(meta))


def edit_line(path, number, edit):
    lines = path.read_text().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def edit_bytes(path, edit):
    path.write_bytes(edit(path.read_bytes()))


TRANSFORMS_ERRORS = {
    "bad_json": (lambda r: (r / "transforms.json").write_text('{\n  "frames": [,]\n}'),
                 r"transforms.json: not valid JSON: .* line 2, column 14"),
    "no_frames": (lambda r: (r / "transforms.json").write_text("{}"), r"no 'frames' list"),
    "missing_key": (lambda r: edit_json(r, lambda m: m["frames"][1].pop("transform_matrix")),
                    r"transforms.json: frame 1: missing key 'transform_matrix'"),
    "missing_image": (lambda r: (r / "images/0002.png").unlink(),
                      r"frame 2: image file .*0002.png not found"),
    "unreadable_image": (lambda r: (r / "images/0001.png").write_bytes(b"not a png"),
                         r"0001.png: not a readable image .*frame 1"),
    "size_vs_wh": (lambda r: edit_json(r, lambda m: m.update(w=40)),
                   r"frame 1: image 0001.png is 32x24 but w/h say 40x24"),
    "no_focal": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y")]),
                 r"frame 1: no focal length: give fl_x .* or camera_angle_x"),
    "not_a_number": (lambda r: edit_json(r, lambda m: m.update(cx="16")),
                     r"frame 1: 'cx' must be a number, got '16'"),
    "bad_matrix": (lambda r: edit_json(r, lambda m: m["frames"][3].update(
        transform_matrix=[[1, 0], [0, 1]])), r"frame 3: transform_matrix must be 4x4"),
    "not_a_rotation": (lambda r: edit_json(r, lambda m: m["frames"][0].update(
        transform_matrix=(2 * np.eye(4)).tolist())), r"frame 0: viewmat: .* rotation"),
    "distortion": (lambda r: edit_json(r, lambda m: m.update(k1=0.01)),
                   r"lens distortion k1=0.01 .* undistort"),
}


@pytest.mark.parametrize("case", TRANSFORMS_ERRORS)
def test_transforms_errors(tmp_path, orbit, case):  # frame 0 is held out: frame 1 loads first
    write("transforms", tmp_path, orbit)
    mutate, match = TRANSFORMS_ERRORS[case]
    mutate(tmp_path)
    with pytest.raises(DatasetError, match=match):
        load_transforms(tmp_path)


CAMERAS, IMAGES, POINTS = (f"sparse/0/{n}.txt" for n in ("cameras", "images", "points3D"))
COLMAP_TEXT_ERRORS = {
    "short_camera": (CAMERAS, 3, lambda s: s[:9],
                     r"cameras.txt:3: malformed line .* expected CAMERA_ID MODEL WIDTH HEIGHT"),
    "bad_param": (CAMERAS, 2, lambda s: s + " x", r"cameras.txt:2: malformed line"),
    "bad_image_line": (IMAGES, 4, lambda s: s.replace(" ", " q", 1),
                       r"images.txt:4: malformed line .* IMAGE_ID QW"),
    "bad_points2d": (IMAGES, 5, lambda s: "1.0 2.0", r"images.txt:5: malformed POINTS2D"),
    "unknown_camera": (IMAGES, 6, lambda s: " ".join(s.split()[:8] + ["99", "0002.png"]),
                       r"images.txt:6: image '0002.png' refers to camera 99"),
    "bad_point": (POINTS, 2, lambda s: s.replace(" ", " ,", 1), r"points3D.txt:2: malformed"),
    "odd_track": (POINTS, 3, lambda s: s + " 1", r"points3D.txt:3: malformed .* TRACK"),
    "opencv": (CAMERAS, 2, lambda s: "1 OPENCV 32 24 30 31 16 12 0 0 0 0",
               r"cameras.txt:2: camera 1 has model OPENCV, .*`colmap image_undistorter`"),
    "distorted": (CAMERAS, 4, lambda s: "3 SIMPLE_RADIAL 32 24 30 16 12 0.01",
                  r"cameras.txt:4: camera 3 \(SIMPLE_RADIAL\) has nonzero distortion .*undistort"),
    "param_count": (CAMERAS, 2, lambda s: "1 PINHOLE 32 24 30 31 16",
                    r"camera 1 \(PINHOLE\) has 3 parameters, expected 4"),
}


@pytest.mark.parametrize("case", COLMAP_TEXT_ERRORS)
def test_colmap_text_errors(tmp_path, views, case):
    write("colmap", tmp_path, views)
    file, line, edit, match = COLMAP_TEXT_ERRORS[case]
    edit_line(tmp_path / file, line, edit)
    with pytest.raises(DatasetError, match=match):
        load_colmap(tmp_path)


def patch_first_model_id(data: bytes, model_id: int) -> bytes:
    return data[:12] + struct.pack("<i", model_id) + data[16:]  # after count (8) and id (4)


COLMAP_BINARY_ERRORS = {
    "truncated_images": ("images.bin", lambda b: b[:-5],
                         r"images.bin: file ends while reading the number of 2D points of image 6"),
    "truncated_cameras": ("cameras.bin", lambda b: b[:-3],
                          r"cameras.bin: file ends while reading the parameters of camera 6"),
    "truncated_points": ("points3D.bin", lambda b: b[:20], r"points3D.bin: .*point record 0"),
    "trailing_bytes": ("points3D.bin", lambda b: b + b"\0", r"points3D.bin: 1 bytes left"),
    "opencv": ("cameras.bin", lambda b: patch_first_model_id(b, 4),
               r"cameras.bin: camera 1 has model OPENCV"),
    "unknown_model": ("cameras.bin", lambda b: patch_first_model_id(b, 99),
                      r"camera 1 has unknown model id 99"),
}


@pytest.mark.parametrize("case", COLMAP_BINARY_ERRORS)
def test_colmap_binary_errors(tmp_path, views, case):
    write("colmap", tmp_path, views, binary=True)
    name, edit, match = COLMAP_BINARY_ERRORS[case]
    edit_bytes(tmp_path / "sparse/0" / name, edit)
    with pytest.raises(DatasetError, match=match):
        load_colmap(tmp_path)


COLMAP_FOLDER_ERRORS = {
    "missing_points": (lambda r: (r / POINTS).unlink(), r"points3D.txt: missing"),
    "missing_image": (lambda r: (r / "images/0003.png").unlink(),
                      r"images/0003.png: image file missing .*images.txt:8"),
    "wrong_size": (lambda r: Image.new("RGB", (16, 16)).save(r / "images/0000.png"),
                   r"0000.png: is 16x16 but camera 1 is 32x24"),
    "no_model": (lambda r: shutil.rmtree(r / "sparse"), r"no COLMAP model"),
    "no_images": (lambda r: (r / IMAGES).write_text("# nothing\n"), r"no images registered"),
}


@pytest.mark.parametrize("case", COLMAP_FOLDER_ERRORS)
def test_colmap_folder_errors(tmp_path, views, case):
    write("colmap", tmp_path, views)
    mutate, match = COLMAP_FOLDER_ERRORS[case]
    mutate(tmp_path)
    with pytest.raises(DatasetError, match=match):
        load_colmap(tmp_path, test_every=0)


@pytest.mark.parametrize("load_fn", [load_dataset, load_transforms, load_colmap])
def test_missing_folder(tmp_path, load_fn):
    with pytest.raises(DatasetError, match=r"missing: no such folder"):
        load_fn(tmp_path / "missing")


def test_folder_without_a_dataset(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"not a dataset folder: expected transforms.json"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("option", [{"downscale": 0}, {"downscale": 1.5}, {"test_every": 1},
                                    {"test_every": -2}, {"max_images": 0}])
def test_bad_options(tmp_path, orbit, option):
    write("transforms", tmp_path, orbit)
    with pytest.raises(ValueError, match=next(iter(option))):
        load_dataset(tmp_path, **option)
