"""Real captures for the fitting loop: NeRF / instant-ngp / nerfstudio transforms.json and COLMAP.

    ds = load_dataset("garden/", downscale=4)    # detects the kind; or load_transforms/load_colmap
    ds.train_cameras[i], ds.train_images[i]      # pinhole Camera, [H, W, 3] float32 in [0, 1]
    ds.test_cameras, ds.test_images              # the held-out views
    ds.points, ds.point_colors                   # [P, 3] COLMAP points and RGB in [0, 1], or None
    ds.train_masks, ds.test_masks                # None, or [H, W] bool per view (keep_all=True)
    ds.distortion, ds.missing                    # what was undistorted; images skipped
    write_transforms("out/", cameras, images)    # and write_colmap(...): small datasets of your own

Conventions:
- Cameras come out as in cameras.py: world->camera, OpenCV axes (+x right, +y down, +z forward).
  transforms.json stores camera->world in OpenGL axes (+y up, -z forward): we flip the camera's
  y and z axes and invert. COLMAP stores world->camera in OpenCV axes already.
- K uses the pixel-centre convention of cameras.py (pixel (x, y) is sampled at (x+0.5, y+0.5)),
  which is COLMAP's: its principal point is used unchanged.
- Lens distortion. COLMAP cameras: SIMPLE_PINHOLE, PINHOLE, and SIMPLE_RADIAL, RADIAL, OPENCV,
  FULL_OPENCV, OPENCV_FISHEYE, SIMPLE_RADIAL_FISHEYE, RADIAL_FISHEYE with their parameters in
  COLMAP's order (FOV and THIN_PRISM_FISHEYE are refused: undistort those with colmap
  image_undistorter). transforms.json: k1, k2, k3, k4, p1, p2 at the top level or in a frame
  (a frame's value overrides the top level's, key by key; so do fl_x, fl_y, cx, cy, w, h), read
  as nerfstudio does: `camera_model` "OPENCV_FISHEYE" (or instant-ngp's "is_fisheye": true) is
  OpenCV's fisheye model with k1..k4; otherwise (no camera_model, "OPENCV", or another perspective
  name) OpenCV's model with k1, k2, p1, p2 and k3 (COLMAP's OPENCV, FULL_OPENCV when k3 != 0;
  k4 is refused there: nerfstudio's r^8 term has no COLMAP model), pinhole when all are 0.
- Each view with distortion is undistorted ONCE, at load, into a pinhole camera and image
  (undistort.undistort_image on the CPU backend, bilinear): after the downscale (the distorted
  image is box-filtered and its K scaled first; distortion is in normalised coordinates, so it
  does not change). By default the pinhole view is cropped to pixels the lens saw and the masks
  are None; keep_all=True keeps the whole field of view, and then train_masks / test_masks hold
  one [H, W] bool per view (True: a pixel the lens saw; all True for a view without distortion).
  Views without distortion are not resampled: their images are bit for bit the files'.
  `ds.distortion` says what was done ("" when nothing was), `ds.train_distortions[i]` which
  Distortion each view had.
- downscale=d makes every image round(w/d) x round(h/d) pixels (Python's round, at least 1),
  box-filtered, and scales K by the actual ratios new_w/w and new_h/h. A COLMAP folder's
  `images_d/` (the 3DGS layout) is read instead of resizing when it exists.
- Missing images: views whose image file does not exist (a frame of transforms.json, an image of
  COLMAP's images.txt/.bin) are skipped with ONE warning (MissingImagesWarning: how many, the
  first names) and listed in `ds.missing`; strict=True refuses them instead. Skipping down to
  fewer than 2 views is an error.
- Held-out views: transforms_train.json / transforms_test.json when present; otherwise view i
  of the views that have their image (in file order for transforms.json, by name for COLMAP)
  is held out when i % test_every == 0 (test_every=0: none). max_images keeps the first
  max_images views of each split.
- Images are read with Pillow: RGBA is composited on `background`, grey becomes RGB, 16-bit
  grey keeps its precision (Pillow reads 16-bit colour PNGs as 8-bit).

- Inputs are checked where they enter: focal lengths finite and > 0, principal points finite and
  within an image's size of the image, fields of view in (0°, 180°), poses finite rotations,
  points finite, image sizes read from the file's header before decoding (at most
  MAX_IMAGE_PIXELS), a capture of at least 2 views with at least one for training.

Every problem with the input raises DatasetError naming the file, the field (at the top level or
in frame i) or line, and the fix; so does a file that cannot be read (permissions, not UTF-8).
"""

from __future__ import annotations

import codecs
import json
import math
import re
import stat
import struct
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .backend import get_backend
from .cameras import CAMERA_MODELS, Camera, Distortion
from .errors import DatasetError
from .quaternion import quat_to_rotmat
from .undistort import undistort_image


class MissingImagesWarning(UserWarning):
    """Views skipped because their image file does not exist (strict=False)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    # training views: pinhole cameras and [H, W, 3] float32 images in [0, 1], numpy (host)
    train_cameras: list[Camera]
    train_images: list[np.ndarray]
    # held-out views, the same way
    test_cameras: list[Camera]
    test_images: list[np.ndarray]
    # [P, 3] float64 initial points in world coordinates, or None (transforms.json without any)
    points: np.ndarray | None
    # [P, 3] float64 RGB in [0, 1] of those points, or None
    point_colors: np.ndarray | None
    # "transforms" or "colmap"
    kind: str
    # the dataset folder
    root: Path
    # RGB in [0, 1] composited behind RGBA images
    background: tuple[float, float, float]
    # None when every pixel of every training view holds image (the default); else one [H, W]
    # bool per training view, True where the lens saw (keep_all=True leaves a border)
    train_masks: list[np.ndarray] | None
    # the same for the held-out views
    test_masks: list[np.ndarray] | None
    # the lens distortion each training view had before it was undistorted at load
    # (Distortion.none() or one with is_zero for a pinhole view)
    train_distortions: list[Distortion]
    # the same for the held-out views
    test_distortions: list[Distortion]
    # what was undistorted, for people: "" when no view had distortion
    distortion: str
    # the names of the images the capture lists but does not hold (skipped, strict=False)
    missing: tuple[str, ...]


def _is_file(path: Path) -> bool:
    """Path.is_file, but a path we may not look at (a folder without permission, a name too
    long) is a DatasetError naming it instead of an OSError."""
    return stat.S_ISREG(_mode(path))


def _is_dir(path: Path) -> bool:
    """Path.is_dir, with the errors of _is_file."""
    return stat.S_ISDIR(_mode(path))


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        return 0
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}; check the permissions of "
                           "the file and its folders") from None


def detect(source) -> str | None:
    """"transforms", "colmap", or None when `source` holds neither."""
    p = Path(source)
    if _is_file(p) and p.suffix == ".json":
        return "transforms"
    if not _is_dir(p):
        return None
    if _is_file(p / "transforms.json") or _is_file(p / "transforms_train.json"):
        return "transforms"
    if _is_dir(p / "sparse" / "0") or _is_dir(p / "sparse") or any(
            _is_file(p / f"cameras.{ext}") for ext in ("bin", "txt")):
        return "colmap"
    return None


def load_dataset(source, *, downscale: int = 1, background=(0, 0, 0), test_every: int = 8,
                 max_images: int | None = None, keep_all: bool = False,
                 strict: bool = False) -> Dataset:
    """Load a transforms.json or COLMAP folder, whichever `source` is (see detect).
    keep_all: keep the whole field of view of undistorted views (masks mark the border);
    strict: refuse views whose image file is missing instead of skipping them."""
    kind = detect(source)
    if kind is None:
        what = "not a dataset folder" if _is_dir(Path(source)) else "no such folder"
        raise DatasetError(f"{source}: {what}: expected transforms.json or transforms_train.json "
                           "(NeRF, instant-ngp, nerfstudio) or a COLMAP model (cameras, images, "
                           "points3D .bin or .txt) in sparse/0/, sparse/ or the folder itself")
    load = load_transforms if kind == "transforms" else load_colmap
    return load(source, downscale=downscale, background=background, test_every=test_every,
                max_images=max_images, keep_all=keep_all, strict=strict)


# -- shared helpers ------------------------------------------------------------------------------

def _check_options(downscale, test_every, max_images, keep_all, strict):
    for name, value in (("keep_all", keep_all), ("strict", strict)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if not isinstance(downscale, (int, np.integer)) or downscale < 1:
        raise ValueError(f"downscale must be an int >= 1, got {downscale!r}")
    if not isinstance(test_every, (int, np.integer)) or test_every < 0 or test_every == 1:
        raise ValueError(f"test_every must be 0 (no held-out views) or an int >= 2, "
                         f"got {test_every!r}")
    if max_images is not None and (not isinstance(max_images, (int, np.integer)) or max_images < 1):
        raise ValueError(f"max_images must be None or an int >= 1, got {max_images!r}")


def _split(items: list, test_every: int, max_images: int | None) -> tuple[list, list]:
    """Every test_every-th item (from the first) held out; each split cut to max_images."""
    test = [x for i, x in enumerate(items) if test_every and i % test_every == 0]
    train = [x for i, x in enumerate(items) if not (test_every and i % test_every == 0)]
    return train[:max_images], test[:max_images]


# the most pixels an image may have: read as [H, W, 3] float32 it takes 1.5 GiB (16384 x 8192).
# Pillow itself refuses images over 2 * Image.MAX_IMAGE_PIXELS (179M pixels) as a possible
# decompression bomb; this cap is below that, so our message (with the fix) comes first.
MAX_IMAGE_PIXELS = 1 << 27
_DOWNSCALE_HINT = ("make smaller copies of the images: for COLMAP an images_N folder (e.g. "
                   "`mogrify -path images_4 -resize 25% images/*`, then load with downscale=4, "
                   "the CLI's --downscale 4); for transforms.json resized images with fl_x, fl_y, "
                   "cx, cy, w and h scaled alike")


def _read_image(path: Path, background, where: str) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: alpha composited on `background`, grey made RGB. The size
    is read from the file's header and checked against MAX_IMAGE_PIXELS before decoding."""
    try:
        with warnings.catch_warnings():  # Pillow warns from 89M pixels; MAX_IMAGE_PIXELS decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DatasetError(f"{path}: the image is {w}x{h} pixels, more than the "
                                       f"{MAX_IMAGE_PIXELS} splat-lion reads; {_DOWNSCALE_HINT}"
                                       f" ({where})")
                im.load()
    except DatasetError:
        raise
    except Image.DecompressionBombError as e:  # Pillow refused it first: name what we can
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{found.group(1)} pixels" if found else "too many pixels"
        with open(path, "rb") as f:
            head = f.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            size = "{}x{} pixels".format(*struct.unpack(">II", head[16:24]))
        raise DatasetError(f"{path}: the image is {size}, more than the {MAX_IMAGE_PIXELS} "
                           f"splat-lion reads; {_DOWNSCALE_HINT} ({where})") from None
    except PermissionError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror}; check the file's permissions "
                           f"({where})") from None
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetError(f"{path}: not a readable image ({e}); {where}") from None
    except Exception as e:  # Pillow's decoders raise many kinds for a damaged file
        raise DatasetError(f"{path}: not a readable image ({type(e).__name__}: {e}); {where}"
                           ) from None
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit grey
        rgb = np.asarray(im, np.float32)[..., None].repeat(3, axis=2) / 65535.0
        return np.clip(rgb, 0.0, 1.0)
    if im.mode == "F":  # 32-bit float: may hold NaN or infinity
        grey = np.asarray(im, np.float32)
        if not np.isfinite(grey).all():
            raise DatasetError(f"{path}: {int((~np.isfinite(grey)).sum())} pixels are NaN or "
                               f"infinite; {where}: fix the image (a float image must be finite)")
        return np.clip(grey, 0.0, 1.0)[..., None].repeat(3, axis=2)
    if "A" in im.getbands() or im.has_transparency_data:
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0  # [H, W, 4]
        alpha = rgba[..., 3:]
        bg = np.asarray(background, np.float32).reshape(1, 1, 3)
        return rgba[..., :3] * alpha + bg * (1.0 - alpha)
    return np.asarray(im.convert("RGB"), np.float32) / 255.0


def _scaled_size(w: int, h: int, downscale: int) -> tuple[int, int]:
    return max(1, round(w / downscale)), max(1, round(h / downscale))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[H, W, 3] -> [h, w, 3], each channel box-filtered (area average) with Pillow."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
        size, Image.Resampling.BOX)) for c in range(3)]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)


def _scale_K(K: np.ndarray, w: int, h: int, new_w: int, new_h: int) -> np.ndarray:
    K = np.array(K, np.float64)
    K[0] *= new_w / w  # fx, cx
    K[1] *= new_h / h  # fy, cy
    return K


def _write_png(path: Path, image) -> None:
    """[H, W, 3] or [H, W, 4] floats in [0, 1] -> 8-bit PNG."""
    a = np.asarray(image, np.float64)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"{path.name}: expected an [H, W, 3] or [H, W, 4] image, "
                         f"got {list(a.shape)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)).save(path)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}; check the file's "
                           "permissions") from None


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a leading byte-order mark dropped), or a DatasetError naming
    the byte, its line and column."""
    data = _read_bytes(path)
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise DatasetError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, "
                           f"column {column}; save the file as UTF-8") from None


def _finite(value) -> bool:
    """Whether a JSON or parsed number is finite (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_intrinsics(where: str, fx, fy, cx, cy, w, h, names=("fx", "fy", "cx", "cy")) -> None:
    """Focal lengths finite and > 0, the principal point finite and within one image size of
    the image (a capture's K in pixels of its w x h images)."""
    for name, value in zip(names[:2], (fx, fy)):
        if not _finite(value) or value <= 0:
            raise DatasetError(f"{where}: focal length {name}={value!r} must be a finite number "
                               "> 0 (pixels)")
    for name, value, size, side in ((names[2], cx, w, "width"), (names[3], cy, h, "height")):
        if not _finite(value) or not -size <= value <= 2 * size:
            raise DatasetError(f"{where}: principal point {name}={value!r} must be finite and "
                               f"within the image or one image {side} ({size} pixels) of it; "
                               "it is in pixels from the image's corner")


def _check_count(source, train: list, test: list, views: int, how: str) -> None:
    """A capture needs at least one view for training (one view loads with test_every=0)."""
    if not views:
        raise DatasetError(f"{source}: no views with an image; {how}")
    if not train:
        which = ("its only view is held out (test_every holds out views 0, test_every, ...): "
                 "load it with test_every=0 (the CLI's --test-every 0), or add views"
                 if views == 1 else f"all {len(test)} views are held out: give "
                 "transforms_train.json frames, or load with another test_every")
        raise DatasetError(f"{source}: no training views: {which}")


def _check_views(cameras, images):
    if len(cameras) != len(images):
        raise ValueError(f"got {len(cameras)} cameras but {len(images)} images")
    for i, (cam, im) in enumerate(zip(cameras, images)):
        if np.shape(im)[:2] != (cam.height, cam.width):
            raise ValueError(f"images[{i}]: shape {list(np.shape(im))} does not match camera "
                             f"{i}'s {cam.height}x{cam.width} (height x width)")


def _skip_missing(source, total: int, missing: list, strict: bool, fix: str) -> tuple[str, ...]:
    """The names of the views without an image file, after ONE warning (or a DatasetError when
    strict, or when fewer than 2 views would be left). missing: (name, message) per view."""
    if not missing:
        return ()
    names = [name for name, _ in missing]
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    if strict:
        details = "; ".join(message for _, message in missing[:5])
        raise DatasetError(f"{source}: {len(missing)} of {total} views have no image file: "
                           f"{details}{more}; {fix}, or load with strict=False to skip them")
    first = ", ".join(names[:5]) + more
    if total - len(missing) < 2:
        raise DatasetError(f"{source}: only {total - len(missing)} of {total} views have their "
                           f"image file (missing: {first}); a fit needs at least 2; {fix}")
    warnings.warn(f"{source}: skipping {len(missing)} of {total} views whose image file is "
                  f"missing: {first} ({fix}; strict=True refuses instead)",
                  MissingImagesWarning, stacklevel=3)
    return tuple(names)


def _undistort(cam: Camera, image: np.ndarray, lens: Distortion, keep_all: bool, where: str):
    """(pinhole camera, [H, W, 3] float32 image, [H, W] bool mask or None) of one view; a view
    without distortion is returned as it is (no resampling)."""
    if lens.is_zero:
        return cam, image, None
    be = get_backend("cpu")  # images stay host arrays; the remap runs on the CPU runtime
    try:
        cam, image, valid = undistort_image(image, cam, lens, keep_all=keep_all, backend=be)
    except ValueError as e:
        raise DatasetError(f"{where}: cannot undistort {lens.model} {list(lens.params)}: {e}; "
                           "check the distortion parameters") from None
    image = np.ascontiguousarray(be.to_numpy(image), np.float32)
    valid = be.to_numpy(valid).astype(bool)
    return cam, image, None if valid.all() else valid


def _dataset(views: tuple[list, list], points, colors, kind: str, root: Path, background,
             keep_all: bool, missing: tuple[str, ...]) -> Dataset:
    """A Dataset of (camera, image, mask, distortion) per view of (train, test)."""
    def masks(split):
        if all(mask is None for _, _, mask, _ in split):
            return None
        return [np.ones(im.shape[:2], bool) if mask is None else mask for _, im, mask, _ in split]

    lenses = [lens for split in views for *_, lens in split]
    counts = Counter(lens.model for lens in lenses if not lens.is_zero)
    note = ""
    if counts:
        how = ("the whole field of view kept (train_masks/test_masks mark the pixels the lens saw)"
               if keep_all else "cropped to the pixels the lens saw")
        note = (f"{sum(counts.values())} of {len(lenses)} views undistorted to pinhole ("
                + ", ".join(f"{model}: {n}" for model, n in counts.items()) + f"), {how}")
    (train, test) = views
    return Dataset([v[0] for v in train], [v[1] for v in train], [v[0] for v in test],
                   [v[1] for v in test], points, colors, kind, root,
                   tuple(float(v) for v in background), masks(train), masks(test),
                   [v[3] for v in train], [v[3] for v in test], note, missing)


# -- transforms.json ---------------------------------------------------------------------------

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips the camera's y and z axes
_LENS_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
# camera_model values read the OpenCV way (k1, k2, k3, p1, p2), as nerfstudio reads them
_PERSPECTIVE = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
# COLMAP model -> (the transforms.json key of each parameter, None: must be 0; fisheye or not)
_TRANSFORMS_LENS = {
    "SIMPLE_RADIAL": (("k1",), False),
    "RADIAL": (("k1", "k2"), False),
    "OPENCV": (("k1", "k2", "p1", "p2"), False),
    "FULL_OPENCV": (("k1", "k2", "p1", "p2", "k3", None, None, None), False),
    "SIMPLE_RADIAL_FISHEYE": (("k1",), True),
    "RADIAL_FISHEYE": (("k1", "k2"), True),
    "OPENCV_FISHEYE": (("k1", "k2", "k3", "k4"), True),
}


def load_transforms(root, *, downscale=1, background=(0, 0, 0), test_every=8,
                    max_images=None, keep_all=False, strict=False) -> Dataset:
    """A NeRF-synthetic / instant-ngp / nerfstudio folder, or a transforms .json file itself."""
    _check_options(downscale, test_every, max_images, keep_all, strict)
    root = Path(root)
    if _is_file(root):
        files, root = [root], root.parent
    elif not _is_dir(root):
        raise DatasetError(f"{root}: no such folder")
    elif _is_file(root / "transforms_train.json"):
        files = [root / "transforms_train.json", root / "transforms_test.json"]
    elif _is_file(root / "transforms.json"):
        files = [root / "transforms.json"]
    else:
        raise DatasetError(f"{root}: no transforms.json or transforms_train.json in the folder")

    metas = [(f, _read_json(f)) for f in files if _is_file(f)]
    frames = [(f, meta, i, frame, _find_image(f, frame))  # image: None when missing
              for f, meta in metas for i, frame in enumerate(meta["frames"])]
    absent = []  # (file_path, message) of the frames without their image
    for f, _, i, frame, image in frames:
        if image is None:
            which = f"{f.name}: frame {i}" if len(metas) > 1 else f"frame {i}"
            absent.append((str(frame["file_path"]), (
                f"{which}: image file {f.parent / str(frame['file_path'])} not found (also "
                f"tried {', '.join(_IMAGE_EXTS[:3])})")))
    source = files[0] if len(metas) == 1 else root
    if not frames:
        raise DatasetError(f"{source}: no frames ('frames' is empty): list the capture's views "
                           "as {\"file_path\": ..., \"transform_matrix\": ...}")
    missing = _skip_missing(source, len(frames), absent, strict,
                            "fix file_path (it is relative to the json's folder) or add the images")
    frames = [fr for fr in frames if fr[4] is not None]
    if len(files) == 2:  # split given by the files
        train = [fr for fr in frames if fr[0] == files[0]][:max_images]
        test = [fr for fr in frames if fr[0] == files[1]][:max_images]
    else:
        train, test = _split(frames, test_every, max_images)
    _check_count(source, train, test, len(frames), "add frames (file_path, transform_matrix)")
    views = tuple([_transforms_view(*fr, downscale, background, keep_all) for fr in split]
                  for split in (train, test))
    return _dataset(views, None, None, "transforms", root, background, keep_all, missing)


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column "
                           f"{e.colno}; fix the file there") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be a transforms file") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise DatasetError(f"{path}: no 'frames' list; a transforms file is an object with "
                           "\"frames\": [{\"file_path\": ..., \"transform_matrix\": ...}, ...]")
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict):
            raise DatasetError(f"{path}: frame {i}: expected an object, got {frame!r}")
        for key in ("file_path", "transform_matrix"):
            if key not in frame:
                raise DatasetError(f"{path}: frame {i}: missing key '{key}'; every frame needs "
                                   "file_path and transform_matrix")
        if not isinstance(frame["file_path"], str):
            raise DatasetError(f"{path}: frame {i}: 'file_path' must be a string (the image's "
                               f"path, relative to the json's folder), got {frame['file_path']!r}")
    return meta


def _find_image(path: Path, frame: dict) -> Path | None:
    """The image file of a frame: file_path as given, or with an image extension added."""
    file = path.parent / frame["file_path"]
    try:
        found = [p for p in [file] + [Path(str(file) + e) for e in _IMAGE_EXTS] if _is_file(p)]
    except DatasetError as e:  # a name too long, a folder we may not look in
        raise DatasetError(f"{path}: file_path {frame['file_path']!r}: {e}") from None
    return found[0] if found else None


def _transforms_view(path: Path, meta: dict, i: int, frame: dict, file: Path, downscale: int,
                     background, keep_all: bool):
    where = f"frame {i} of {path}"

    def place(key) -> str:  # where a key's value comes from: the frame overrides the top level
        return f"frame {i}" if frame.get(key) is not None else "top level"

    def number(key, default=None):  # null counts as absent, in the frame and at the top level
        value = frame.get(key)
        value = meta.get(key) if value is None else value
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DatasetError(f"{path}: {place(key)}: '{key}' must be a number, got {value!r}")
        if not _finite(value):
            raise DatasetError(f"{path}: {place(key)}: '{key}' must be finite, got {value!r}")
        return value

    def angle(key, size):  # a field of view in radians -> a focal length in pixels
        value = number(key)
        if not 0 < value < math.pi:
            degrees = f" (if that is in degrees: {math.radians(value):.4g} radians)" if (
                2 * math.pi < value <= 360) else ""
            raise DatasetError(
                f"{path}: {place(key)}: '{key}' must be in (0, pi) radians, got {value!r}"
                f"{degrees}: it is read as the focal length w / (2 tan(angle / 2)), as "
                "instant-ngp and nerfstudio read it, which needs 0 < angle < 180 degrees (a "
                "fisheye wider than that: give fl_x and fl_y instead)")
        return 0.5 * size / math.tan(value / 2)

    lens = _transforms_lens(path, frame, meta, place, number)
    image = _read_image(file, background, where)  # [H, W, 3]
    h, w = image.shape[:2]
    if (number("w", w), number("h", h)) != (w, h):
        raise DatasetError(f"{path}: frame {i}: image {file.name} is {w}x{h} but w/h say "
                           f"{number('w', w)}x{number('h', h)} ({place('w')}); fix w and h or "
                           "the image")
    if number("fl_x") is not None:
        fx = number("fl_x")
        fy = number("fl_y", fx)
    elif number("camera_angle_x") is not None:
        fx = angle("camera_angle_x", w)
        fy = fx if number("camera_angle_y") is None else angle("camera_angle_y", h)
    else:
        raise DatasetError(f"{path}: frame {i}: no focal length: give fl_x (and fl_y) or "
                           "camera_angle_x, at the top level or in the frame")
    cx, cy = number("cx", w / 2), number("cy", h / 2)
    where_k = f"{path}: {place('fl_x' if frame.get('fl_x') is not None else 'cx')}"
    _check_intrinsics(where_k, fx, fy, cx, cy, w, h, ("fl_x", "fl_y", "cx", "cy"))
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], float)

    try:
        c2w = np.asarray(frame["transform_matrix"], np.float64)
    except (TypeError, ValueError, OverflowError):
        c2w = None
    if c2w is None or c2w.shape not in ((4, 4), (3, 4)) or not np.isfinite(c2w).all():
        raise DatasetError(f"{path}: frame {i}: transform_matrix must be 4x4 (or 3x4) finite "
                           f"numbers, got {frame['transform_matrix']!r}")
    last = c2w[3].tolist() if len(c2w) == 4 else [0, 0, 0, 1]
    c2w = np.vstack([c2w[:3], [0, 0, 0, 1]]) @ _OPENGL_TO_OPENCV  # camera->world, OpenCV axes
    viewmat = np.eye(4)
    viewmat[:3, :3] = c2w[:3, :3].T
    viewmat[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
    new_w, new_h = _scaled_size(w, h, downscale)
    try:
        cam = Camera(_scale_K(K, w, h, new_w, new_h), viewmat, new_w, new_h)
    except ValueError as e:
        raise DatasetError(f"{path}: frame {i}: {e}") from None
    if not np.allclose(last, (0, 0, 0, 1), rtol=0, atol=1e-6):
        raise DatasetError(f"{path}: frame {i}: transform_matrix's last row must be [0, 0, 0, 1] "
                           f"(a camera-to-world pose), got {last}")
    return *_undistort(cam, _resize(image, (new_w, new_h)), lens, keep_all, where), lens


def _transforms_lens(path: Path, frame: dict, meta: dict, place, number) -> Distortion:
    """The Distortion of one frame: camera_model (or instant-ngp's is_fisheye) and k1..k4,
    p1, p2, each from the frame or else the top level."""
    model = frame.get("camera_model", meta.get("camera_model"))
    if model is not None:
        if model not in _PERSPECTIVE + ("OPENCV_FISHEYE",):
            raise DatasetError(
                f"{path}: {place('camera_model')}: camera_model {model!r} is not supported; "
                "use OPENCV (k1, k2, k3, p1, p2) or OPENCV_FISHEYE (k1..k4), or make "
                "perspective images of the capture first")
        fisheye = model == "OPENCV_FISHEYE"
    else:
        flag = frame.get("is_fisheye", meta.get("is_fisheye", False))
        if not isinstance(flag, bool):
            raise DatasetError(f"{path}: {place('is_fisheye')}: 'is_fisheye' must be true or "
                               f"false, got {flag!r}")
        fisheye = flag
    k = {key: float(number(key) or 0.0) for key in _LENS_KEYS}  # absent or null: 0
    bad = [key for key in _LENS_KEYS if not math.isfinite(k[key])]
    if bad:
        raise DatasetError(f"{path}: {place(bad[0])}: '{bad[0]}' must be finite, got "
                           f"{k[bad[0]]}")
    if fisheye:
        for key in ("p1", "p2"):
            if k[key]:
                raise DatasetError(
                    f"{path}: {place(key)}: {key}={k[key]} with camera_model OPENCV_FISHEYE, "
                    "which has no tangential terms (k1..k4 only); drop p1 and p2, or set "
                    "camera_model to OPENCV if the lens is not a fisheye")
        return Distortion("OPENCV_FISHEYE", (k["k1"], k["k2"], k["k3"], k["k4"]))
    if k["k4"]:
        raise DatasetError(
            f"{path}: {place('k4')}: k4={k['k4']} is read only with camera_model OPENCV_FISHEYE "
            "(an OPENCV lens's r^8 term has no COLMAP model); set camera_model to "
            "OPENCV_FISHEYE if the lens is a fisheye, else drop k4")
    if k["k3"]:
        return Distortion("FULL_OPENCV", (k["k1"], k["k2"], k["p1"], k["p2"], k["k3"], 0, 0, 0))
    if any(k.values()):
        return Distortion("OPENCV", (k["k1"], k["k2"], k["p1"], k["p2"]))
    return Distortion.none()


def _transforms_lens_keys(distortion: Distortion | None) -> tuple[dict, dict]:
    """({"camera_model": ...} or {}, {k1: ..., ...}): a Distortion as transforms.json writes it."""
    if distortion is None or distortion.is_zero:
        return {}, {}
    if distortion.model not in _TRANSFORMS_LENS:
        raise ValueError(f"distortion: transforms.json has no way to write model "
                         f"{distortion.model}; use one of {', '.join(_TRANSFORMS_LENS)}")
    keys, fisheye = _TRANSFORMS_LENS[distortion.model]
    values = {}
    for key, value in zip(keys, distortion.params, strict=True):
        if key is None and value != 0:
            raise ValueError(f"distortion: {distortion.model} {list(distortion.params)}: "
                             "transforms.json has no k4, k5, k6 of FULL_OPENCV; they must be 0")
        if key is not None:
            values[key] = float(value)
    return ({"camera_model": "OPENCV_FISHEYE"} if fisheye else {}), values


def write_transforms(root, cameras, images, *, split=None, distortion: Distortion | None = None,
                     per_frame: bool = False, drop=()) -> None:
    """transforms.json (fl_x/fl_y/cx/cy/w/h, OpenGL camera->world) and images/0000.png...;
    with split (one "train"/"test" per view), transforms_train.json and transforms_test.json
    and the images in train/ and test/. Images: [H, W, 3] or RGBA [H, W, 4] floats in [0, 1],
    written as given. distortion: one Distortion for every view, written as nerfstudio does
    (k1, k2, k3, k4, p1, p2, and camera_model OPENCV_FISHEYE for a fisheye) at the top level,
    or in every frame with per_frame=True. drop: indices of views listed without their image
    file (a capture with missing images)."""
    root = Path(root)
    _check_views(cameras, images)
    splits = [None] * len(cameras) if split is None else list(split)
    if split is not None and (len(splits) != len(cameras)
                              or any(s not in ("train", "test") for s in splits)):
        raise ValueError(f"split: expected one 'train' or 'test' per camera, got {split!r}")
    drop = _check_drop(drop, len(cameras))
    model, lens = _transforms_lens_keys(distortion)
    root.mkdir(parents=True, exist_ok=True)
    keys = ("fl_x", "fl_y", "cx", "cy", "w", "h")
    intrinsics = [dict(zip(keys, (c.fx, c.fy, c.cx, c.cy, int(c.width), int(c.height))))
                  for c in cameras]
    shared = all(k == intrinsics[0] for k in intrinsics)
    for name in ([None] if split is None else ["train", "test"]):
        frames = []
        for i, (cam, image, s) in enumerate(zip(cameras, images, splits)):
            if s != name:
                continue
            file = f"{s or 'images'}/{i:04d}.png"
            if i not in drop:
                _write_png(root / file, image)
            c2w = np.linalg.inv(cam.viewmat) @ _OPENGL_TO_OPENCV  # back to OpenGL axes
            frames.append({"file_path": file, "transform_matrix": c2w.tolist(),
                           **({} if shared else intrinsics[i]), **(lens if per_frame else {})})
        meta = {**model, **(intrinsics[0] if shared and intrinsics else {}),
                **({} if per_frame else lens), "frames": frames}
        out = root / ("transforms.json" if name is None else f"transforms_{name}.json")
        out.write_text(json.dumps(meta, indent=2))


def _check_drop(drop, n: int) -> set[int]:
    drop = {int(i) for i in drop}
    if any(not 0 <= i < n for i in drop):
        raise ValueError(f"drop: expected view indices in 0..{n - 1}, got {sorted(drop)}")
    return drop


# -- COLMAP ------------------------------------------------------------------------------------

# model id -> (name, number of parameters), as COLMAP numbers them
_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4),
           3: ("RADIAL", 5), 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12),
           7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5),
           10: ("THIN_PRISM_FISHEYE", 12)}
_MODEL_IDS = {name: i for i, (name, _) in _MODELS.items()}


def load_colmap(root, *, downscale=1, background=(0, 0, 0), test_every=8,
                max_images=None, keep_all=False, strict=False) -> Dataset:
    """A COLMAP folder: the model in sparse/0/, sparse/ or the folder, the images in images/."""
    _check_options(downscale, test_every, max_images, keep_all, strict)
    root = Path(root)
    if not _is_dir(root):
        raise DatasetError(f"{root}: no such folder")
    model = _find_model(root)
    ext = "bin" if _is_file(model / "cameras.bin") else "txt"
    for name in ("cameras", "images", "points3D"):
        if not _is_file(model / f"{name}.{ext}"):
            raise DatasetError(f"{model / f'{name}.{ext}'}: missing; a COLMAP model needs "
                               f"cameras.{ext}, images.{ext} and points3D.{ext}")
    binary = ext == "bin"
    cams = (_cameras_bin if binary else _cameras_txt)(model / f"cameras.{ext}")
    images = (_images_bin if binary else _images_txt)(model / f"images.{ext}")
    points, colors = (_points_bin if binary else _points_txt)(model / f"points3D.{ext}")
    if not images:
        raise DatasetError(f"{model / f'images.{ext}'}: no images registered")
    for name, _, _, cam_id, where in images:
        if cam_id not in cams:
            raise DatasetError(f"{where}: image {name!r} refers to camera {cam_id}, which "
                               f"cameras.{ext} does not define; re-export the model")
    images.sort(key=lambda im: im[0])

    folder = root / f"images_{downscale}"
    if downscale == 1 or not _is_dir(folder):
        folder = root / "images"
    missing = _skip_missing(
        model / f"images.{ext}", len(images),
        [(name, f"{folder / name}: image file missing (image {name!r} of {where})")
         for name, *_, where in images if not _is_file(folder / name)],
        strict, f"put the images in {folder}")
    images = [im for im in images if _is_file(folder / im[0])]
    splits = _split(images, test_every, max_images)
    _check_count(model / f"images.{ext}", *splits, len(images),
                 "register images with colmap mapper, or put them in " + str(folder))
    views = ([], [])
    for split, out in zip(splits, views):
        for name, qvec, tvec, cam_id, where in split:
            K, lens, w, h = cams[cam_id]
            file = folder / name
            image = _read_image(file, background, f"image {name!r} of {where}")  # [H, W, 3]
            new_w, new_h = _scaled_size(w, h, downscale)
            got_h, got_w = image.shape[:2]
            if folder.name != "images":  # pre-scaled by someone else: take its size
                if abs(got_w - w / downscale) > 1 or abs(got_h - h / downscale) > 1:
                    raise DatasetError(f"{file}: is {got_w}x{got_h}, expected about "
                                       f"{new_w}x{new_h} (camera {cam_id} is {w}x{h}, "
                                       f"downscale {downscale}); regenerate {folder.name}/")
                new_w, new_h = got_w, got_h
            elif (got_w, got_h) != (w, h):
                raise DatasetError(f"{file}: is {got_w}x{got_h} but camera {cam_id} is {w}x{h}; "
                                   "use the images the model was made from")
            viewmat = np.eye(4)
            viewmat[:3, :3] = _quat_to_rotation(qvec, where)
            if not all(_finite(t) for t in tvec):
                raise DatasetError(f"{where}: image {name!r}: translation {list(tvec)} must be "
                                   "finite; re-export the model")
            viewmat[:3, 3] = tvec
            try:
                cam = Camera(_scale_K(K, w, h, new_w, new_h), viewmat, new_w, new_h)
            except ValueError as e:
                raise DatasetError(f"{where}: image {name!r}, camera {cam_id}: {e}") from None
            out.append((*_undistort(cam, _resize(image, (new_w, new_h)), lens, keep_all,
                                    f"{where}: image {name!r}, camera {cam_id}"), lens))
    return _dataset(views, points, colors, "colmap", root, background, keep_all, missing)


def _find_model(root: Path) -> Path:
    for d in (root / "sparse" / "0", root / "sparse", root):
        if any(_is_file(d / f"cameras.{ext}") for ext in ("bin", "txt")):
            return d
    raise DatasetError(f"{root}: no COLMAP model (cameras.bin or cameras.txt) in sparse/0/, "
                       "sparse/ or the folder itself; run colmap feature_extractor, a matcher "
                       "and mapper (it writes sparse/0/)")


# models whose parameters start with one focal length f (fx = fy = f); the others have fx, fy
_ONE_FOCAL = ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE",
              "RADIAL_FISHEYE")
_PINHOLES = ("SIMPLE_PINHOLE", "PINHOLE")


def _colmap_camera(cam_id: int, model: str, params, where: str, w: int = 1,
                   h: int = 1) -> tuple[np.ndarray, Distortion]:
    """[3, 3] K and the Distortion of a COLMAP camera of w x h pixels; DatasetError for a model
    we cannot undistort (FOV, THIN_PRISM_FISHEYE, unknown), a wrong number of parameters, a
    size below 1 pixel, or intrinsics that are not finite and plausible."""
    if model not in _PINHOLES and model not in CAMERA_MODELS:
        known = ", ".join(m for m in _MODEL_IDS if m in _PINHOLES or m in CAMERA_MODELS)
        raise DatasetError(f"{where}: camera {cam_id} has model {model}, which is not supported "
                           f"(supported: {known}); undistort the images with `colmap "
                           "image_undistorter` (it writes PINHOLE cameras)")
    focals = 1 if model in _ONE_FOCAL else 2
    count = _MODELS[_MODEL_IDS[model]][1] if model in _MODEL_IDS else (
        focals + 2 + len(CAMERA_MODELS[model]))
    if len(params) != count:
        raise DatasetError(f"{where}: camera {cam_id} ({model}) has {len(params)} parameters, "
                           f"expected {count}")
    fx, fy = params[0], params[focals - 1]
    cx, cy = params[focals], params[focals + 1]
    if w < 1 or h < 1:
        raise DatasetError(f"{where}: camera {cam_id} is {w}x{h} pixels; WIDTH and HEIGHT must "
                           "be >= 1")
    _check_intrinsics(f"{where}: camera {cam_id} ({model})", fx, fy, cx, cy, w, h,
                      ("f", "f", "cx", "cy") if focals == 1 else ("fx", "fy", "cx", "cy"))
    try:
        lens = Distortion(model, tuple(params[focals + 2:]))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: camera {cam_id} ({model}): {e}") from None
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64), lens


def _quat_to_rotation(q, where: str) -> np.ndarray:
    """[3, 3] rotation of a Hamilton quaternion (w, x, y, z), normalised first."""
    q = np.asarray(q, np.float64)
    with np.errstate(over="ignore"):  # a huge quaternion: infinite norm, refused below
        n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-12:
        raise DatasetError(f"{where}: quaternion {q.tolist()} is not a rotation")
    return quat_to_rotmat(q)


def _rotation_to_quat(R: np.ndarray) -> list[float]:
    """(w, x, y, z) of a rotation, dividing by the largest component for accuracy."""
    (a, b, c), (d, e, f), (g, h, i) = R
    t = a + e + i
    if t > 0:
        s = 2 * math.sqrt(1 + t)
        return [s / 4, (h - f) / s, (c - g) / s, (d - b) / s]
    if a > e and a > i:
        s = 2 * math.sqrt(1 + a - e - i)
        return [(h - f) / s, s / 4, (b + d) / s, (c + g) / s]
    if e > i:
        s = 2 * math.sqrt(1 + e - a - i)
        return [(c - g) / s, (b + d) / s, s / 4, (f + h) / s]
    s = 2 * math.sqrt(1 + i - a - e)
    return [(d - b) / s, (c + g) / s, (f + h) / s, s / 4]


def _text_lines(path: Path):
    """(line number, stripped line) of every line that is not blank or a comment."""
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield n, line.strip()


def _fields(where: str, tokens: list[str], types: str, layout: str) -> list:
    """tokens converted by `types` (i: int, f: float, s: str), or a DatasetError."""
    try:
        if len(tokens) < len(types):
            raise ValueError(f"{len(tokens)} fields, expected at least {len(types)}")
        conv = {"i": int, "f": float, "s": str}
        return [conv[t](v) for t, v in zip(types, tokens)]
    except ValueError as e:
        raise DatasetError(f"{where}: malformed line ({e}); expected {layout}") from None


def _cameras_txt(path: Path) -> dict:
    cams = {}  # camera id -> (K, width, height)
    for n, line in _text_lines(path):
        where = f"{path}:{n}"
        tokens = line.split()
        cam_id, model, w, h = _fields(where, tokens, "isii",
                                      "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        params = _fields(where, tokens[4:], "f" * len(tokens[4:]), "numeric PARAMS[]")
        cams[cam_id] = (*_colmap_camera(cam_id, model, params, where, w, h), w, h)
    return cams


def _images_txt(path: Path) -> list:
    images = []  # (name, qvec, tvec, camera id, where)
    lines = _read_text(path).splitlines()
    n = 0
    while n < len(lines):
        line, n = lines[n].strip(), n + 1
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{n}"
        tokens = line.split(maxsplit=9)
        image_id, *pose, cam_id, name = _fields(
            where, tokens, "ifffffffis", "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        points2d = lines[n].split() if n < len(lines) else []  # the next line, maybe empty
        if len(points2d) % 3:
            raise DatasetError(f"{path}:{n + 1}: malformed POINTS2D line of image {image_id}: "
                               f"{len(points2d)} fields, expected (X Y POINT3D_ID) triples")
        n += 1
        images.append((name.strip(), pose[:4], pose[4:], cam_id, where))
    return images


def _points_txt(path: Path):
    xyz, rgb, lines, ids = [], [], [], []
    for n, line in _text_lines(path):
        tokens = line.split()
        layout = "POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID POINT2D_IDX) pairs"
        values = _fields(f"{path}:{n}", tokens, "ifffiiif", layout)
        if len(tokens) % 2:
            raise DatasetError(f"{path}:{n}: malformed line (odd TRACK length); expected {layout}")
        xyz.append(values[1:4])
        rgb.append(values[4:7])
        lines.append(n)
        ids.append(values[0])
    return _point_arrays(xyz, rgb, lambda k: f"{path}:{lines[k]}: point {ids[k]}")


def _point_arrays(xyz, rgb, where):
    """[P, 3] float64 points and [P, 3] colours in [0, 1]; DatasetError naming the first point
    (where(k): file and line, or record) whose position is not finite or colour not 0..255."""
    xyz = np.array(xyz, np.float64).reshape(-1, 3)  # [P, 3]
    rgb = np.array(rgb, np.float64).reshape(-1, 3)  # [P, 3]
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{where(first)}: position {xyz[first].tolist()} is not finite "
                           f"({int(bad.sum())} of {len(xyz)} points are not); remove those "
                           "points or re-export the model")
    bad = ((rgb < 0) | (rgb > 255)).any(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{where(first)}: colour {rgb[first].tolist()}: point colours must "
                           "be 0..255")
    return xyz, rgb / 255.0


class _Binary:
    """Little-endian reads from a whole COLMAP .bin file, with errors saying what was read."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, _read_bytes(path), 0

    def _need(self, size: int, what: str):
        if self.pos + size > len(self.data):
            raise DatasetError(f"{self.path}: file ends while reading {what} (byte {self.pos} of "
                               f"{len(self.data)}): truncated or not a COLMAP binary model; "
                               "export it again (colmap model_converter)")

    def read(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        self._need(size, what)
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, size: int, what: str):
        self._need(size, what)
        self.pos += size

    def string(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            self._need(len(self.data) + 1 - self.pos, what)
        text, self.pos = self.data[self.pos:end].decode("utf-8", "replace"), end + 1
        return text

    def finish(self):
        if self.pos != len(self.data):
            raise DatasetError(f"{self.path}: {len(self.data) - self.pos} bytes left after the "
                               "last record: not a COLMAP binary model of this kind")


def _cameras_bin(path: Path) -> dict:
    f = _Binary(path)
    cams = {}
    (count,) = f.read("Q", "the number of cameras")
    for k in range(count):
        cam_id, model_id, w, h = f.read("iiQQ", f"camera record {k}")
        if model_id not in _MODELS:
            raise DatasetError(f"{path}: camera {cam_id} has unknown model id {model_id} "
                               f"(COLMAP's models are numbered 0..{max(_MODELS)}); undistort "
                               "the images with `colmap image_undistorter`")
        name, n_params = _MODELS[model_id]
        if name not in _PINHOLES and name not in CAMERA_MODELS:  # refused before its params
            _colmap_camera(cam_id, name, [], str(path))
        params = f.read("d" * n_params, f"the parameters of camera {cam_id}")
        cams[cam_id] = (*_colmap_camera(cam_id, name, list(params), str(path), w, h), w, h)
    f.finish()
    return cams


def _images_bin(path: Path) -> list:
    f = _Binary(path)
    images = []
    (count,) = f.read("Q", "the number of images")
    for k in range(count):
        image_id, *pose, cam_id = f.read("i7di", f"image record {k}")
        name = f.string(f"the name of image {image_id}")
        (n2d,) = f.read("Q", f"the number of 2D points of image {image_id}")
        f.skip(24 * n2d, f"the 2D points of image {image_id}")  # (x, y: double, id: int64)
        images.append((name, pose[:4], pose[4:], cam_id, f"{path} (image {image_id})"))
    f.finish()
    return images


def _points_bin(path: Path):
    f = _Binary(path)
    xyz, rgb, ids = [], [], []
    (count,) = f.read("Q", "the number of points")
    for k in range(count):
        point_id, x, y, z, r, g, b, _error, track = f.read("Q3d3BdQ", f"point record {k}")
        f.skip(8 * track, f"the track of point {point_id}")  # (image id, point2D idx: int32)
        xyz.append((x, y, z))
        rgb.append((r, g, b))
        ids.append(point_id)
    f.finish()
    return _point_arrays(xyz, rgb, lambda k: f"{path}: point {ids[k]} (record {k})")


def _exact(values) -> str:
    """Numbers as the shortest text that parses back to the same doubles."""
    return " ".join(repr(float(v)) for v in values)


def write_colmap(root, cameras, images, points, colors, *, binary: bool,
                 distortion: Distortion | None = None, drop=()) -> None:
    """root/sparse/0/{cameras,images,points3D}.{bin|txt} (one camera per image, ids from 1) and
    root/images/0000.png...; points [P, 3], colors [P, 3] in [0, 1]. Images are written as
    given. distortion: one Distortion for every view, written as COLMAP's model of that name
    and its parameters (a model with one focal length needs fx == fy); None (or a pinhole
    one): PINHOLE cameras. drop: indices of views registered without their image file."""
    root = Path(root)
    _check_views(cameras, images)
    drop = _check_drop(drop, len(cameras))
    points = np.asarray(points, np.float64).reshape(-1, 3)  # [P, 3]
    rgb = np.round(np.clip(np.asarray(colors, np.float64), 0, 1) * 255).astype(np.uint8)
    if rgb.shape != points.shape:
        raise ValueError(f"colors: expected shape {list(points.shape)}, got {list(rgb.shape)}")
    lens_model, extra = "PINHOLE", ()
    if distortion is not None and distortion.model in _MODEL_IDS:
        lens_model, extra = distortion.model, tuple(float(v) for v in distortion.params)
    if lens_model not in _PINHOLES and lens_model not in CAMERA_MODELS:
        raise ValueError(f"distortion: model {lens_model} cannot be read back; use one of "
                         f"{', '.join(CAMERA_MODELS)}")
    model = root / "sparse" / "0"
    model.mkdir(parents=True, exist_ok=True)
    cams, views = [], []  # (id, width, height, *params), (id, qvec + tvec, name)
    for i, (cam, image) in enumerate(zip(cameras, images)):
        name = f"{i:04d}.png"
        if i not in drop:
            _write_png(root / "images" / name, image)
        if lens_model in _ONE_FOCAL and cam.fx != cam.fy:
            raise ValueError(f"cameras[{i}]: fx={cam.fx} != fy={cam.fy}, but {lens_model} has "
                             "one focal length; use a model with fx and fy (PINHOLE, OPENCV...)")
        focals = (cam.fx,) if lens_model in _ONE_FOCAL else (cam.fx, cam.fy)
        cams.append((i + 1, cam.width, cam.height, *focals, cam.cx, cam.cy, *extra))
        views.append((i + 1, [*_rotation_to_quat(cam.viewmat[:3, :3]), *cam.viewmat[:3, 3]], name))
    if binary:
        model_id = _MODEL_IDS[lens_model]
        (model / "cameras.bin").write_bytes(struct.pack("<Q", len(cams)) + b"".join(
            struct.pack(f"<iiQQ{len(c) - 3}d", c[0], model_id, *c[1:]) for c in cams))
        (model / "images.bin").write_bytes(struct.pack("<Q", len(views)) + b"".join(
            struct.pack("<i7di", i, *pose, i) + name.encode() + b"\0" + struct.pack("<Q", 0)
            for i, pose, name in views))  # camera i for image i; no 2D points
        (model / "points3D.bin").write_bytes(struct.pack("<Q", len(points)) + b"".join(
            struct.pack("<Q3d3BdQ", k + 1, *p, *c, 0.0, 0)  # error 0, empty track
            for k, (p, c) in enumerate(zip(points, rgb))))
        return
    (model / "cameras.txt").write_text("# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n" + "".join(
        f"{c[0]} {lens_model} {c[1]} {c[2]} {_exact(c[3:])}\n" for c in cams))
    (model / "images.txt").write_text(
        "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then POINTS2D[] (here empty)\n"
        + "".join(f"{i} {_exact(pose)} {i} {name}\n\n" for i, pose, name in views))
    (model / "points3D.txt").write_text("# POINT3D_ID X Y Z R G B ERROR TRACK[]\n" + "".join(
        f"{k + 1} {_exact(p)} {c[0]} {c[1]} {c[2]} 0.0\n"
        for k, (p, c) in enumerate(zip(points, rgb))))
