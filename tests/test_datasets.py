"""Dataset loaders: transforms.json and COLMAP (text and binary) round trips, the NeRF-synthetic
layout, downscaling, image modes, lens distortion (every COLMAP model, every transforms.json
variant, synthetic distorted captures undistorted at load), missing images, and a DatasetError
for every malformed input."""

from __future__ import annotations

import codecs
import json
import math
import shutil
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splat_lion import scenes
from splat_lion.backend import get_backend
from splat_lion.cameras import CAMERA_MODELS, Camera, Distortion, orbit_cameras
from splat_lion.datasets import (DatasetError, MissingImagesWarning, detect, load_colmap,
                                 load_dataset, load_transforms, write_colmap, write_transforms)
from splat_lion.ply import load_ply
from splat_lion.render import render
from splat_lion.undistort import distort_image, undistort_image

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
                                  "1 RADIAL 32 24 {f} 16 12 0.0 0.0",
                                  "1 OPENCV 32 24 {f} {f} 16 12 0 0 0 0",
                                  "1 FULL_OPENCV 32 24 {f} {f} 16 12 0 0 0 0 0 0 0 0"])
def test_colmap_pinhole_like_models_without_distortion(tmp_path, orbit, line):
    write_colmap(tmp_path, orbit["cameras"][:1], orbit["images"][:1], np.zeros((0, 3)),
                 np.zeros((0, 3)), binary=False)
    (tmp_path / "sparse/0/cameras.txt").write_text(line.format(f=repr(orbit["cameras"][0].fx)))
    ds = load_colmap(tmp_path, test_every=0)
    assert_same_cameras(ds.train_cameras, orbit["cameras"][:1])
    assert ds.points.shape == (0, 3)
    # zero distortion: no resampling, the file's pixels bit for bit, no masks, nothing to say
    file = np.asarray(Image.open(tmp_path / "images/0000.png"), np.float32) / 255
    assert np.array_equal(ds.train_images[0], file)
    assert ds.train_masks is None and ds.distortion == "" and ds.train_distortions[0].is_zero


# -- lens distortion: parsing and writers ---------------------------------------------------------

# one lens of every distorted COLMAP model, its coefficients in COLMAP's order, all distinct so a
# swapped pair shows
LENSES = {
    "SIMPLE_RADIAL": (-0.08,),
    "RADIAL": (-0.08, 0.02),
    "OPENCV": (-0.08, 0.02, 0.002, -0.001),
    "FULL_OPENCV": (-0.08, 0.02, 0.002, -0.001, 0.004, 0.01, -0.002, 0.001),
    "OPENCV_FISHEYE": (0.04, -0.01, 0.002, -0.0005),
    "SIMPLE_RADIAL_FISHEYE": (0.04,),
    "RADIAL_FISHEYE": (0.04, -0.01),
}
ONE_FOCAL = ("SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE")


def test_every_distorted_colmap_model_is_covered():
    assert set(LENSES) == set(CAMERA_MODELS) - {"PINHOLE", "SIMPLE_PINHOLE"}


def png(path) -> np.ndarray:
    """An 8-bit RGB PNG as the loaders read it: [H, W, 3] float32 in [0, 1]."""
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255


def undistorted(cam: Camera, image, lens: Distortion, keep_all=False):
    """What the loaders should make of one view: (camera, image, valid) of undistort_image on
    the CPU backend, or the view itself when the lens has no distortion."""
    if lens.is_zero:
        return cam, image, np.ones(image.shape[:2], bool)
    return undistort_image(image, cam, lens, keep_all=keep_all, backend=get_backend("cpu"))


def assert_views_undistorted(ds, cams, files, lenses, indices):
    """ds's training view k is cams[i] and the image file files[i], undistorted with lenses[i],
    for i = indices[k]."""
    assert len(ds.train_cameras) == len(indices)
    for k, i in enumerate(indices):
        want_cam, want_image, _ = undistorted(cams[i], png(files[i]), lenses[i])
        assert_same_cameras([ds.train_cameras[k]], [want_cam])
        np.testing.assert_allclose(ds.train_images[k], want_image, rtol=0, atol=1e-6)


def same_lens(a: Distortion, b: Distortion) -> bool:
    """Two Distortions that move every point alike (e.g. SIMPLE_RADIAL k and OPENCV k, 0, 0, 0)."""
    xy = np.stack(np.meshgrid(np.linspace(-0.8, 0.8, 9), np.linspace(-0.6, 0.6, 7)), -1)
    return a.fisheye == b.fisheye and np.allclose(a.distort(xy), b.distort(xy), rtol=0,
                                                   atol=1e-15)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("model", LENSES)
def test_colmap_model_round_trips(tmp_path, orbit, model, binary):
    lens = Distortion(model, LENSES[model])
    write_colmap(tmp_path, orbit["cameras"], orbit["images"], np.zeros((0, 3)), np.zeros((0, 3)),
                 binary=binary, distortion=lens)
    if not binary:
        first = (tmp_path / CAMERAS).read_text().splitlines()[1].split()
        assert first[1] == model and len(first) == 4 + (3 if model in ONE_FOCAL else 4) + len(
            LENSES[model])
    ds = load_colmap(tmp_path, test_every=0)
    assert ds.train_distortions == [lens] * 6 and ds.test_distortions == []
    assert ds.distortion.startswith(f"6 of 6 views undistorted to pinhole ({model}: 6)")
    files = [tmp_path / f"images/{i:04d}.png" for i in range(6)]
    assert_views_undistorted(ds, orbit["cameras"], files, [lens] * 6, range(6))


@pytest.mark.parametrize("model", LENSES)
def test_colmap_text_parameters_in_colmaps_order(tmp_path, orbit, model):
    """A cameras.txt line written by hand: f (or fx fy), cx, cy, then the coefficients."""
    write_colmap(tmp_path, orbit["cameras"][:2], orbit["images"][:2], np.zeros((0, 3)),
                 np.zeros((0, 3)), binary=False)
    focals = "30" if model in ONE_FOCAL else "30 31"
    (tmp_path / CAMERAS).write_text(
        f"1 {model} 32 24 {focals} 16.5 12.25 {' '.join(map(str, LENSES[model]))}\n"
        "2 PINHOLE 32 24 30 31 16 12\n")
    ds = load_colmap(tmp_path, test_every=0)
    lens = Distortion(model, LENSES[model])
    assert ds.train_distortions == [lens, Distortion("PINHOLE", ())]
    K = np.array([[30, 0, 16.5], [0, 30 if model in ONE_FOCAL else 31, 12.25], [0, 0, 1]])
    cams = [Camera(K, c.viewmat, W, H) for c in orbit["cameras"][:1]] + [
        Camera(np.array([[30, 0, 16], [0, 31, 12], [0, 0, 1]]), orbit["cameras"][1].viewmat, W, H)]
    files = [tmp_path / "images/0000.png", tmp_path / "images/0001.png"]
    assert_views_undistorted(ds, cams, files, [lens, Distortion.none()], [0, 1])
    assert ds.distortion.startswith(f"1 of 2 views undistorted to pinhole ({model}: 1)")


# how a transforms.json may say a lens -> the Distortion the loader reads from it
TRANSFORMS_LENSES = {
    "k1_k2_p1_p2": ({"k1": -0.08, "k2": 0.02, "p1": 0.002, "p2": -0.001},
                    Distortion("OPENCV", (-0.08, 0.02, 0.002, -0.001))),
    "k1_only": ({"k1": -0.08}, Distortion("OPENCV", (-0.08, 0, 0, 0))),
    "null_is_0": ({"k1": -0.08, "k3": None, "p1": None}, Distortion("OPENCV", (-0.08, 0, 0, 0))),
    "k3": ({"k1": -0.08, "k3": 0.004}, Distortion("FULL_OPENCV", (-0.08, 0, 0, 0, 0.004, 0, 0, 0))),
    "OPENCV": ({"camera_model": "OPENCV", "k2": 0.02},
               Distortion("OPENCV", (0, 0.02, 0, 0))),
    "SIMPLE_RADIAL": ({"camera_model": "SIMPLE_RADIAL", "k1": -0.08},  # nerfstudio reads it so
                      Distortion("OPENCV", (-0.08, 0, 0, 0))),
    "PINHOLE": ({"camera_model": "PINHOLE", "k1": 0.0}, Distortion.none()),
    "OPENCV_FISHEYE": ({"camera_model": "OPENCV_FISHEYE", "k1": 0.04, "k2": -0.01, "k3": 0.002,
                        "k4": -0.0005},
                       Distortion("OPENCV_FISHEYE", (0.04, -0.01, 0.002, -0.0005))),
    "OPENCV_FISHEYE_zero": ({"camera_model": "OPENCV_FISHEYE"},  # equidistant: not a pinhole
                            Distortion("OPENCV_FISHEYE", (0, 0, 0, 0))),
    "is_fisheye": ({"is_fisheye": True, "k1": 0.04},  # instant-ngp's flag
                   Distortion("OPENCV_FISHEYE", (0.04, 0, 0, 0))),
}


@pytest.mark.parametrize("where", ["top_level", "per_frame"])
@pytest.mark.parametrize("case", TRANSFORMS_LENSES)
def test_transforms_lens_variants(tmp_path, orbit, case, where):
    keys, lens = TRANSFORMS_LENSES[case]
    write("transforms", tmp_path, orbit)
    edit_json(tmp_path, lambda m: m.update(keys) if where == "top_level"
              else [frame.update(keys) for frame in m["frames"]])
    ds = load_transforms(tmp_path, test_every=0)
    assert ds.train_distortions == [lens] * 6
    files = [tmp_path / f"images/{i:04d}.png" for i in range(6)]
    assert_views_undistorted(ds, orbit["cameras"], files, [lens] * 6, range(6))
    assert (ds.distortion == "") == lens.is_zero


def test_transforms_frame_overrides_top_level_key_by_key(tmp_path, orbit):
    write("transforms", tmp_path, orbit)
    edit_json(tmp_path, lambda m: [m.update(k1=-0.08, p2=0.001),
                                   m["frames"][2].update(k1=-0.05, fl_x=33.0, cy=11.5),
                                   m["frames"][4].update(k1=0, p2=0)])
    ds = load_transforms(tmp_path, test_every=0)
    top = Distortion("OPENCV", (-0.08, 0, 0, 0.001))
    frame2 = Distortion("OPENCV", (-0.05, 0, 0, 0.001))
    lenses = [top, top, frame2, top, Distortion.none(), top]
    assert ds.train_distortions == lenses
    cams = list(orbit["cameras"])
    K = cams[2].K.copy()
    K[0, 0], K[1, 2] = 33.0, 11.5  # fl_y stays the top level's
    cams[2] = Camera(K, cams[2].viewmat, W, H)
    files = [tmp_path / f"images/{i:04d}.png" for i in range(6)]
    assert_views_undistorted(ds, cams, files, lenses, range(6))
    assert ds.distortion.startswith("5 of 6 views undistorted to pinhole (OPENCV: 5)")


WRITABLE = [m for m in LENSES if m != "FULL_OPENCV"]  # transforms.json has no k4..k6 of OpenCV


@pytest.mark.parametrize("per_frame", [False, True], ids=["top_level", "per_frame"])
@pytest.mark.parametrize("model", WRITABLE)
def test_transforms_lens_round_trips(tmp_path, views, model, per_frame):
    """Per-view intrinsics (each camera its own K, so fl_x... in every frame) and one lens."""
    cams = views["cameras"]
    lens = Distortion(model, LENSES[model])
    write_transforms(tmp_path, cams, views["images"], distortion=lens, per_frame=per_frame)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert "fl_x" in meta["frames"][0] and ("k1" in meta["frames"][0]) == per_frame
    assert meta.get("camera_model") == ("OPENCV_FISHEYE" if lens.fisheye else None)
    ds = load_transforms(tmp_path, test_every=3)
    assert all(same_lens(d, lens) for d in ds.train_distortions + ds.test_distortions)
    files = [tmp_path / f"images/{i:04d}.png" for i in range(6)]
    assert_views_undistorted(ds, cams, files, [ds.train_distortions[0]] * 6, TRAIN)


def test_transforms_per_frame_sizes(tmp_path, orbit):
    """w and h in each frame: views of different sizes, each its own distortion."""
    wide = Camera(np.array([[30.0, 0, 20], [0, 30, 10], [0, 0, 1]]), orbit["cameras"][1].viewmat,
                  40, 20)
    cams = [orbit["cameras"][0], wide]
    images = [orbit["images"][0], np.full((20, 40, 3), 0.25)]
    write_transforms(tmp_path, cams, images)
    edit_json(tmp_path, lambda m: m["frames"][1].update(k1=-0.05))
    ds = load_transforms(tmp_path, test_every=0)
    assert ds.train_distortions == [Distortion.none(), Distortion("OPENCV", (-0.05, 0, 0, 0))]
    files = [tmp_path / "images/0000.png", tmp_path / "images/0001.png"]
    assert_views_undistorted(ds, cams, files, ds.train_distortions, [0, 1])


@pytest.mark.parametrize("kind", ["transforms", "colmap"])
def test_downscale_comes_before_undistortion(tmp_path, orbit, kind):
    lens = Distortion("OPENCV", LENSES["OPENCV"])
    if kind == "transforms":
        write_transforms(tmp_path, orbit["cameras"], orbit["images"], distortion=lens)
    else:
        write_colmap(tmp_path, orbit["cameras"], orbit["images"], np.zeros((0, 3)),
                     np.zeros((0, 3)), binary=True, distortion=lens)
    ds = load(kind, tmp_path, test_every=0, downscale=2)
    half = [Camera(np.diag([0.5, 0.5, 1]) @ c.K, c.viewmat, W // 2, H // 2)
            for c in orbit["cameras"]]
    for k, cam in enumerate(half):
        image = png(tmp_path / f"images/{k:04d}.png").reshape(H // 2, 2, W // 2, 2, 3).mean((1, 3))
        want_cam, want_image, _ = undistorted(cam, image, lens)
        assert_same_cameras([ds.train_cameras[k]], [want_cam])
        np.testing.assert_allclose(ds.train_images[k], want_image, rtol=0, atol=1e-5)


def test_writers_refuse_lenses_their_format_cannot_hold(tmp_path, views, orbit):
    with pytest.raises(ValueError, match=r"no k4, k5, k6 of FULL_OPENCV"):
        write_transforms(tmp_path, orbit["cameras"], orbit["images"],
                         distortion=Distortion("FULL_OPENCV", LENSES["FULL_OPENCV"]))
    with pytest.raises(ValueError, match=r"cameras\[0\]: fx=30.0 != fy=31.0, but RADIAL has one "
                                         r"focal length"):
        write_colmap(tmp_path, views["cameras"], views["images"], views["points"],
                     views["colors"], binary=False, distortion=Distortion("RADIAL", (0.1, 0)))


# -- lens distortion: synthetic captures ----------------------------------------------------------

# lenses strong enough that ignoring them costs > 4 dB on the scene; "OPENCV_pincushion" is
# OPENCV with k1 > 0, and the storage each is written in, so every model and format is met
STRONG = {
    "SIMPLE_RADIAL": ("colmap_text", (-0.25,)),
    "RADIAL": ("transforms_per_frame", (-0.25, 0.06)),
    "OPENCV": ("transforms", (-0.25, 0.06, 0.004, -0.003)),
    "OPENCV_pincushion": ("colmap_binary", (0.15, 0.05, 0.004, -0.003)),
    "FULL_OPENCV": ("colmap_binary", (-0.25, 0.06, 0.004, -0.003, 0.01, 0.05, -0.01, 0.002)),
    "OPENCV_FISHEYE": ("transforms", (0.04, -0.01, 0.002, -0.0005)),
    "SIMPLE_RADIAL_FISHEYE": ("colmap_binary", (0.04,)),
    "RADIAL_FISHEYE": ("colmap_text", (0.04, -0.01)),
}
SW, SH = 256, 192  # large enough that the scene survives bilinear resampling twice (> 38 dB)


@pytest.fixture(scope="module")
def shapes():
    return load_ply(scenes.path("shapes"), backend=get_backend("cpu"))


def psnr(a, b, mask=None) -> float:
    """PSNR in dB of images in [0, 1], over the pixels of mask ([H, W] bool; None: all)."""
    err = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        err = err[mask]
    return float(10 * np.log10(1 / err.mean()))


def distorted_capture(g, lens: Distortion, n: int = 3):
    """n orbit cameras (SW x SH) and what their lens sees of `g`: a pinhole twice as wide and
    high renders the view, distort_image turns it into the distorted camera's image."""
    be = get_backend("cpu")
    cams = orbit_cameras(radius=4.0, n=n, width=SW, height=SH, fov_x_deg=50)
    images = []
    for cam in cams:
        wide = Camera(cam.K + np.array([[0, 0, SW / 2], [0, 0, SH / 2], [0, 0, 0]]),
                      cam.viewmat, 2 * SW, 2 * SH)
        image, valid = distort_image(be.to_numpy(render(g, wide).image), wide, cam, lens,
                                     backend=be)
        assert be.to_numpy(valid).all()  # the wide pinhole saw all the lens sees
        images.append(be.to_numpy(image))
    return cams, images


@pytest.mark.parametrize("keep_all", [False, True], ids=["cropped", "keep_all"])
@pytest.mark.parametrize("case", STRONG)
def test_distorted_capture_loads_as_pinhole_views_of_the_scene(tmp_path, shapes, case, keep_all):
    kind, params = STRONG[case]
    lens = Distortion(case.removesuffix("_pincushion"), params)
    cams, images = distorted_capture(shapes, lens)
    assert psnr(images[0], render(shapes, cams[0]).image) < 31  # the lens matters
    if kind.startswith("transforms"):
        write_transforms(tmp_path, cams, images, distortion=lens,
                         per_frame=kind == "transforms_per_frame")
    else:
        write_colmap(tmp_path, cams, images, np.zeros((0, 3)), np.zeros((0, 3)),
                     binary=kind == "colmap_binary", distortion=lens)
    ds = load_dataset(tmp_path, test_every=0, keep_all=keep_all)
    assert len(ds.train_cameras) == 3 and "3 of 3 views undistorted" in ds.distortion
    assert all(same_lens(d, lens) for d in ds.train_distortions)  # RADIAL: OPENCV k1, k2, 0, 0
    if keep_all:  # the whole field of view: a border the lens never saw, marked by the masks
        assert len(ds.train_masks) == 3 and all(m.dtype == bool for m in ds.train_masks)
        assert all(m.shape == im.shape[:2] and 0.8 < m.mean() < 1 for m, im in
                   zip(ds.train_masks, ds.train_images))
        assert "whole field of view" in ds.distortion
    else:
        assert ds.train_masks is None and "cropped" in ds.distortion
    for cam, want, image, mask in zip(cams, ds.train_cameras, ds.train_images,
                                      ds.train_masks or [None] * 3):
        np.testing.assert_allclose(want.viewmat, cam.viewmat, rtol=0, atol=1e-12)
        assert psnr(image, render(shapes, want).image, mask) >= 35


def test_keep_all_views_are_the_cropped_ones_and_more(tmp_path, shapes):
    lens = Distortion("OPENCV", STRONG["OPENCV"][1])
    cams, images = distorted_capture(shapes, lens, n=2)
    write_transforms(tmp_path, cams, images, distortion=lens)
    cropped = load_transforms(tmp_path, test_every=0)
    whole = load_transforms(tmp_path, test_every=0, keep_all=True)
    for a, b in zip(cropped.train_cameras, whole.train_cameras):
        assert b.width > a.width and b.height > a.height and a.fx == b.fx and a.fy == b.fy


# -- missing images ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def many():
    """Sixteen small orbit views, for captures that list more views than they hold."""
    cams = orbit_cameras(radius=4.0, n=16, width=16, height=12)
    rng = np.random.default_rng(3)
    return {"cameras": cams, "images": [rng.random((12, 16, 3)) for _ in cams]}


def write_with_missing(kind, root, v, drop):
    if kind == "transforms":
        write_transforms(root, v["cameras"], v["images"], drop=drop)
    else:
        write_colmap(root, v["cameras"], v["images"], np.zeros((0, 3)), np.zeros((0, 3)),
                     binary=kind == "colmap_binary", drop=drop)
    return root


MISSING_KINDS = ["transforms", "colmap_text", "colmap_binary"]


@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_missing_images_are_skipped_with_one_warning(tmp_path, many, kind):
    drop = [1, 3, 4, 8, 9, 12, 15]
    root = write_with_missing(kind, tmp_path, many, drop)
    prefix = "images/" if kind == "transforms" else ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root, test_every=3)
    assert len(caught) == 1 and caught[0].category is MissingImagesWarning
    message = str(caught[0].message)
    assert "skipping 7 of 16 views whose image file is missing: " in message
    assert ", ".join(f"{prefix}{i:04d}.png" for i in drop[:5]) + " and 2 more" in message
    assert ds.missing == tuple(f"{prefix}{i:04d}.png" for i in drop)
    kept = [i for i in range(16) if i not in drop]  # the split is over the views that load
    assert_same_cameras(ds.train_cameras, [many["cameras"][i] for k, i in enumerate(kept) if k % 3])
    assert_same_cameras(ds.test_cameras, [many["cameras"][i] for i in kept[::3]])


@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_complete_captures_do_not_warn(tmp_path, many, kind):
    root = write_with_missing(kind, tmp_path, many, [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(root).missing == ()


@pytest.mark.parametrize("kind, drop, match", [
    ("transforms", [2], (r"transforms.json: 1 of 16 views have no image file: frame 2: image "
                         r"file .*0002.png not found .*fix file_path.*strict=False to skip them")),
    ("colmap_text", [3], (r"images.txt: 1 of 16 views have no image file: .*images/0003.png: "
                          r"image file missing .*images.txt:8\).*put the images in")),
    ("colmap_binary", [3, 5], (r"images.bin: 2 of 16 views have no image file: .*images/0003"
                               r".png: image file missing \(image '0003.png' of .*images.bin "
                               r"\(image 4\)\); .*0005.png")),
])
def test_strict_refuses_missing_images(tmp_path, many, kind, drop, match):
    root = write_with_missing(kind, tmp_path, many, drop)
    with pytest.raises(DatasetError, match=match):
        load_dataset(root, strict=True)


@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_fewer_than_two_images_is_an_error(tmp_path, many, kind):
    root = write_with_missing(kind, tmp_path, many, [i for i in range(16) if i != 6])
    with pytest.raises(DatasetError, match=r"only 1 of 16 views have their image file \(missing: "
                                           r".*0000.png, .*0001.png.* and 10 more\)"):
        load_dataset(root)


def test_split_files_skip_missing_images_in_each(tmp_path, views):
    split = ["train", "test", "train", "train", "test", "train"]
    write_transforms(tmp_path, views["cameras"], views["images"], split=split, drop=[2, 4])
    with pytest.warns(MissingImagesWarning, match=r"2 of 6 views .*train/0002.png, test/0004.png"):
        ds = load_transforms(tmp_path)
    assert_same_cameras(ds.train_cameras, pick(views["cameras"], [0, 3, 5]))
    assert_same_cameras(ds.test_cameras, pick(views["cameras"], [1]))


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
    "unreadable_image": (lambda r: (r / "images/0001.png").write_bytes(b"not a png"),
                         r"0001.png: not a readable image .*frame 1"),
    "size_vs_wh": (lambda r: edit_json(r, lambda m: m.update(w=40)),
                   r"frame 1: image 0001.png is 32x24 but w/h say 40x24"),
    "no_focal": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y")]),
                 r"frame 1: no focal length: give fl_x .* or camera_angle_x"),
    "not_a_number": (lambda r: edit_json(r, lambda m: m.update(cx="16")),
                     r"transforms.json: top level: 'cx' must be a number, got '16'"),
    "not_a_number_in_frame": (lambda r: edit_json(r, lambda m: m["frames"][3].update(cy="12")),
                              r"transforms.json: frame 3: 'cy' must be a number, got '12'"),
    "bad_matrix": (lambda r: edit_json(r, lambda m: m["frames"][3].update(
        transform_matrix=[[1, 0], [0, 1]])), r"frame 3: transform_matrix must be 4x4"),
    "not_a_rotation": (lambda r: edit_json(r, lambda m: m["frames"][0].update(
        transform_matrix=(2 * np.eye(4)).tolist())), r"frame 0: viewmat: .* rotation"),
    "distortion_not_a_number": (lambda r: edit_json(r, lambda m: m.update(k1="0.1")),
                                r"transforms.json: top level: 'k1' must be a number"),
    "distortion_not_finite": (lambda r: edit_json(r, lambda m: m["frames"][1].update(
        k2=float("nan"))), r"transforms.json: frame 1: 'k2' must be finite, got nan"),
    "k4_without_fisheye": (lambda r: edit_json(r, lambda m: m.update(k1=-0.1, k4=0.01)),
                           (r"transforms.json: top level: k4=0.01 is read only with "
                            r"camera_model OPENCV_FISHEYE.* drop k4")),
    "tangential_fisheye": (lambda r: edit_json(r, lambda m: [
        m.update(camera_model="OPENCV_FISHEYE"), m["frames"][2].update(p1=0.001)]),
        (r"transforms.json: frame 2: p1=0.001 with camera_model OPENCV_FISHEYE, which has no "
         r"tangential terms")),
    "camera_model": (lambda r: edit_json(r, lambda m: m.update(camera_model="EQUIRECTANGULAR")),
                     (r"transforms.json: top level: camera_model 'EQUIRECTANGULAR' is not "
                      r"supported; use OPENCV .* or OPENCV_FISHEYE")),
    "camera_model_in_frame": (lambda r: edit_json(r, lambda m: m["frames"][4].update(
        camera_model="FISHEYE624")), r"frame 4: camera_model 'FISHEYE624' is not supported"),
    "is_fisheye": (lambda r: edit_json(r, lambda m: m.update(is_fisheye="yes")),
                   r"top level: 'is_fisheye' must be true or false, got 'yes'"),
    # where the inputs enter: finite, plausible intrinsics, fields of view and poses
    "empty": (lambda r: edit_json(r, lambda m: m.update(frames=[])),
              r"transforms.json: no frames \('frames' is empty\): list the capture's views"),
    "focal_nan": (lambda r: edit_json(r, lambda m: m.update(fl_x=float("nan"))),
                  r"transforms.json: top level: 'fl_x' must be finite, got nan"),
    "focal_inf_in_frame": (lambda r: edit_json(r, lambda m: m["frames"][2].update(
        fl_y=float("inf"))), r"transforms.json: frame 2: 'fl_y' must be finite, got inf"),
    "focal_huge_int": (lambda r: edit_json(r, lambda m: m.update(fl_x=10**400)),
                       r"top level: 'fl_x' must be finite, got 1000000000"),
    "focal_zero": (lambda r: edit_json(r, lambda m: m.update(fl_x=0)),
                   r"transforms.json: top level: focal length fl_x=0 must be a finite number > 0"),
    "focal_negative_in_frame": (lambda r: edit_json(r, lambda m: m["frames"][1].update(
        fl_x=30, fl_y=-30)), r"frame 1: focal length fl_y=-30 must be a finite number > 0"),
    "principal_nan": (lambda r: edit_json(r, lambda m: m.update(cx=float("nan"))),
                      r"top level: 'cx' must be finite, got nan"),
    "principal_far": (lambda r: edit_json(r, lambda m: m.update(cy=1e9)),
                      (r"top level: principal point cy=1000000000.0 must be finite and within "
                       r"the image or one image height \(24 pixels\) of it")),
    "angle_zero": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y"),
                                                     m.update(camera_angle_x=0)]),
                   (r"top level: 'camera_angle_x' must be in \(0, pi\) radians, got 0: it is "
                    r"read as the focal length w / \(2 tan\(angle / 2\)\)")),
    "angle_180": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y"),
                                                    m.update(camera_angle_x=math.pi)]),
                  r"'camera_angle_x' must be in \(0, pi\) radians, got 3.14159.*give fl_x"),
    "angle_in_degrees": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y"),
                                                           m.update(camera_angle_x=60)]),
                         r"got 60 \(if that is in degrees: 1.047 radians\)"),
    "angle_nan": (lambda r: edit_json(r, lambda m: [m.pop("fl_x"), m.pop("fl_y"),
                                                    m.update(camera_angle_x=float("nan"))]),
                  r"top level: 'camera_angle_x' must be finite, got nan"),
    "angle_y_negative": (lambda r: edit_json(r, lambda m: [
        m.pop("fl_x"), m.pop("fl_y"), m.update(camera_angle_x=1.0, camera_angle_y=-0.5)]),
        r"top level: 'camera_angle_y' must be in \(0, pi\) radians, got -0.5"),
    "matrix_huge_int": (lambda r: edit_json(r, lambda m: m["frames"][1]["transform_matrix"][0]
                                            .__setitem__(3, 10**400)),
                        r"frame 1: transform_matrix must be 4x4 \(or 3x4\) finite numbers"),
    "matrix_last_row": (lambda r: edit_json(r, lambda m: m["frames"][1]["transform_matrix"]
                                            .__setitem__(3, [0, 0, 1, 1])),
                        r"frame 1: transform_matrix's last row must be \[0, 0, 0, 1\]"),
    "file_path_not_a_string": (lambda r: edit_json(r, lambda m: m["frames"][2].update(
        file_path=7)), r"transforms.json: frame 2: 'file_path' must be a string"),
    "not_utf8": (lambda r: (r / "transforms.json").write_bytes(
        (r / "transforms.json").read_bytes().replace(b'"frames"', b'"fr\xe9mes"')),
        r"transforms.json: not UTF-8 text: byte 0xe9 at line \d+, column 6; save the file as "
        r"UTF-8"),
    "nested_too_deep": (lambda r: (r / "transforms.json").write_text("[" * 100_000),
                        r"transforms.json: JSON nested too deeply"),
}


@pytest.mark.parametrize("case", TRANSFORMS_ERRORS)
def test_transforms_errors(tmp_path, orbit, case):  # frame 0 is held out: frame 1 loads first
    write("transforms", tmp_path, orbit)
    mutate, match = TRANSFORMS_ERRORS[case]
    mutate(tmp_path)
    with pytest.raises(DatasetError, match=match) as error:
        load_transforms(tmp_path)
    assert "image_undistorter" not in str(error.value)  # no COLMAP model here to undistort


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
    "fov": (CAMERAS, 2, lambda s: "1 FOV 32 24 30 31 16 12 0.9",
            (r"cameras.txt:2: camera 1 has model FOV, which is not supported \(supported: "
             r"SIMPLE_PINHOLE, .*OPENCV_FISHEYE.*\); undistort the images with `colmap "
             r"image_undistorter`")),
    "unknown_model": (CAMERAS, 3, lambda s: "2 KANNALA 32 24 30 16 12",
                      r"cameras.txt:3: camera 2 has model KANNALA, which is not supported"),
    "opencv_param_count": (CAMERAS, 4, lambda s: "3 OPENCV 32 24 30 31 16 12 0.01 0 0",
                           r"cameras.txt:4: camera 3 \(OPENCV\) has 7 parameters, expected 8"),
    "param_count": (CAMERAS, 2, lambda s: "1 PINHOLE 32 24 30 31 16",
                    r"camera 1 \(PINHOLE\) has 3 parameters, expected 4"),
    "focal_inf": (CAMERAS, 2, lambda s: "1 PINHOLE 32 24 inf 31 16 12",
                  r"cameras.txt:2: camera 1 \(PINHOLE\): focal length fx=inf must be a finite "
                  r"number > 0"),
    "one_focal_nan": (CAMERAS, 3, lambda s: "2 SIMPLE_RADIAL 32 24 nan 16 12 0.01",
                      r"cameras.txt:3: camera 2 \(SIMPLE_RADIAL\): focal length f=nan"),
    "focal_negative": (CAMERAS, 2, lambda s: "1 PINHOLE 32 24 30 -31 16 12",
                       r"camera 1 \(PINHOLE\): focal length fy=-31.0 must be a finite number"),
    "principal_nan": (CAMERAS, 2, lambda s: "1 PINHOLE 32 24 30 31 nan 12",
                      r"camera 1 \(PINHOLE\): principal point cx=nan must be finite"),
    "zero_width": (CAMERAS, 2, lambda s: "1 PINHOLE 0 24 30 31 16 12",
                   r"cameras.txt:2: camera 1 is 0x24 pixels; WIDTH and HEIGHT must be >= 1"),
    "nan_translation": (IMAGES, 4, lambda s: " ".join(s.split()[:5] + ["nan"] + s.split()[6:]),
                        r"images.txt:4: image '0001.png': translation \[nan, .*\] must be finite"),
    "nan_point": (POINTS, 3, lambda s: " ".join(s.split()[:2] + ["nan"] + s.split()[3:]),
                  (r"points3D.txt:3: point 2: position \[.*, nan, .*\] is not finite \(1 of 50 "
                   r"points are not\); remove those points")),
    "inf_point": (POINTS, 2, lambda s: " ".join(s.split()[:3] + ["1e400"] + s.split()[4:]),
                  r"points3D.txt:2: point 1: position \[.*, inf\] is not finite"),
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
    "fov": ("cameras.bin", lambda b: patch_first_model_id(b, 7),
            r"cameras.bin: camera 1 has model FOV, which is not supported .*image_undistorter"),
    "unknown_model": ("cameras.bin", lambda b: patch_first_model_id(b, 99),
                      r"camera 1 has unknown model id 99"),
    # count (8), then camera 1: id, model (4 + 4), width, height (8 + 8), fx (8)
    "nan_focal": ("cameras.bin", lambda b: b[:32] + struct.pack("<d", math.nan) + b[40:],
                  r"cameras.bin: camera 1 \(PINHOLE\): focal length fx=nan must be a finite"),
    "zero_height": ("cameras.bin", lambda b: b[:24] + struct.pack("<Q", 0) + b[32:],
                    r"cameras.bin: camera 1 is 32x0 pixels"),
    # count (8), then point 1: id (8), x (8)
    "nan_point": ("points3D.bin", lambda b: b[:16] + struct.pack("<d", math.nan) + b[24:],
                  (r"points3D.bin: point 1 \(record 0\): position \[nan, .*\] is not finite "
                   r"\(1 of 50 points are not\)")),
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
    "wrong_size": (lambda r: Image.new("RGB", (16, 16)).save(r / "images/0000.png"),
                   r"0000.png: is 16x16 but camera 1 is 32x24"),
    "no_model": (lambda r: shutil.rmtree(r / "sparse"), r"no COLMAP model"),
    "no_images": (lambda r: (r / IMAGES).write_text("# nothing\n"), r"no images registered"),
    "not_utf8": (lambda r: edit_bytes(r / IMAGES, lambda b: b.replace(b"0002.png", b"\xe9.png")),
                 r"images.txt: not UTF-8 text: byte 0xe9 at line 6, column \d+; save the file as "
                 "UTF-8"),
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


@pytest.mark.parametrize("option", [{"keep_all": 1}, {"strict": "yes"}])
def test_bad_flags(tmp_path, orbit, option):
    write("transforms", tmp_path, orbit)
    with pytest.raises(TypeError, match=f"{next(iter(option))} must be True or False"):
        load_dataset(tmp_path, **option)


# -- inputs checked where they enter: views, images, files ---------------------------------------

@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_capture_of_one_image_is_a_clear_error_or_loads_with_test_every_0(tmp_path, orbit,
                                                                            binary):
    write_colmap(tmp_path, orbit["cameras"][:1], orbit["images"][:1], np.zeros((0, 3)),
                 np.zeros((0, 3)), binary=binary)
    with pytest.raises(DatasetError, match=r"images.(txt|bin): no training views: its only view "
                                           r"is held out .* load it with test_every=0"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, test_every=0)
    assert len(ds.train_cameras) == 1 and ds.test_cameras == []


def test_split_files_without_training_frames_are_a_clear_error(tmp_path, views):
    write_transforms(tmp_path, views["cameras"], views["images"], split=["test"] * 6)
    with pytest.raises(DatasetError, match=r"no training views: all 6 views are held out: give "
                                           r"transforms_train.json frames"):
        load_transforms(tmp_path)


def png_header(width: int, height: int) -> bytes:
    """The start of an RGB PNG of width x height pixels: its header and a bit of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\0" * 16)


@pytest.mark.parametrize("size", [(30000, 30000), (12000, 12000)])
def test_an_image_too_large_is_refused_before_decoding(tmp_path, orbit, size):
    """The size comes from the file's header: refused at once (30000x30000 is past Pillow's
    own limit, 12000x12000 only past ours), naming the file and the size and how to downscale."""
    write("transforms", tmp_path, orbit)
    (tmp_path / "images/0001.png").write_bytes(png_header(*size))
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=rf"0001.png: the image is {size[0]}x{size[1]} pixels, "
                                           r"more than the 134217728 splat-lion reads; make "
                                           r"smaller copies of the images: .*images_4"):
        load_transforms(tmp_path)
    assert time.perf_counter() - start < 1


def test_float_images_must_be_finite(tmp_path, orbit):
    write("transforms", tmp_path, orbit)
    grey = np.full((H, W), 0.5, np.float32)
    grey[3, 4] = np.nan
    Image.fromarray(grey, mode="F").save(tmp_path / "images/0001.tiff")
    edit_json(tmp_path, lambda m: m["frames"][1].update(file_path="images/0001.tiff"))
    with pytest.raises(DatasetError, match=r"0001.tiff: 1 pixels are NaN or infinite; frame 1"):
        load_transforms(tmp_path)


@pytest.mark.parametrize("kind, file", [
    ("transforms", "transforms.json"), ("transforms", "images/0001.png"),
    ("colmap", "sparse/0/cameras.txt"), ("colmap", "sparse/0/points3D.txt"),
    ("colmap_binary", "sparse/0/images.bin"), ("colmap", "images/0001.png"),
])
def test_an_unreadable_file_is_named(tmp_path, views, deny_reading, kind, file):
    write("colmap" if kind.startswith("colmap") else kind, tmp_path, views,
          binary=kind == "colmap_binary")
    deny_reading(tmp_path / file)
    with pytest.raises(DatasetError, match=rf"{file}: cannot read: Permission denied; check the "
                                           "file's permissions"):
        load_dataset(tmp_path, test_every=0)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, orbit):
    write("transforms", tmp_path, orbit)
    path = tmp_path / "transforms.json"
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert_same_cameras(load_transforms(tmp_path, test_every=0).train_cameras, orbit["cameras"])


def test_null_keys_count_as_absent(tmp_path, orbit):
    """JSON null (found by the fuzzer: a TypeError before) means 'not given': fl_y falls back to
    fl_x, a frame's cx to the top level's."""
    write("transforms", tmp_path, orbit)
    edit_json(tmp_path, lambda m: [m.update(fl_y=None, k1=None),
                                   m["frames"][1].update(cx=None)])
    ds = load_transforms(tmp_path, test_every=0)
    assert_same_cameras(ds.train_cameras, orbit["cameras"])  # orbit cameras have fx == fy


@pytest.mark.parametrize("kind, match", [
    ("transforms", r"transforms.json: file_path 'images/0000.png': .*images/0000.png: cannot read: "
                   r"Permission denied; check the permissions of the file and its folders"),
    ("colmap", r"images/0000.png: cannot read: Permission denied; check the permissions"),
])
def test_a_folder_without_permission_is_named(tmp_path, views, monkeypatch, kind, match):
    """What `chmod 000 images` does to a user: looking at a file inside fails (root looks
    anyway, so Path.stat refuses here as the kernel would)."""
    write(kind, tmp_path, views)
    images, real = tmp_path / "images", Path.stat

    def refusing(self, *args, **kwargs):
        if self.parent == images:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing)
    with pytest.raises(DatasetError, match=match):
        load_dataset(tmp_path, test_every=0)
