"""Distorted captures to pinhole images, once at load: the wrapper of kernels/undistort.cu
(reference/undistort.py: `remap` with the same arguments, less `backend`) and the host
geometry around it.

    pinhole, image, valid = undistort_image(image, camera, distortion)   # what a loader runs
    pinhole = undistorted_camera(camera, distortion)        # COLMAP's choice, no black border
    out, valid = remap(image, source_xy)                    # the kernel: bilinear, any C

`camera` is the capture's Camera (its K maps *distorted* normalised coordinates to pixels)
and `distortion` its cameras.Distortion; every output Camera is a pinhole with the same
viewmat, near and far. Pixel (i, j) is centred at (i + 0.5, j + 0.5), as in cameras.py.
The maps are computed on the host in float64 (cameras.Distortion) and cached per camera, so
a capture whose views share one camera computes its map once.
"""

from __future__ import annotations

import functools

import numpy as np

from . import kernels
from .backend import Backend, get_backend
from .cameras import Camera, Distortion
from .checks import check_array
from .kernels import BLOCK

# COLMAP's image_undistorter defaults (UndistortCameraOptions): how much the undistorted
# image may shrink or grow, per axis, to meet the border constraint
MIN_SCALE = 0.2
MAX_SCALE = 2.0

# maps kept by undistort_image and distort_image, per distinct camera of a capture (each
# [H, W, 2] float32 on the host: 66 MB at 4K), and undistorted intrinsics (small)
_CACHE_SIZE = 4
_INTRINSICS_CACHE_SIZE = 256


def remap(image, source_xy, *, backend: Backend | None = None):
    """(out [H2, W2, C] float32, valid [H2, W2] bool): out[y, x] is the bilinear sample of
    image [H, W, C] float32 at source_xy[y, x] = (u, v) [H2, W2, 2] float32, in pixel units
    (pixel (i, j) centred at (i + 0.5, j + 0.5)). valid: the position lies inside
    [0, W] x [0, H] (NaN: never); between the border and the outermost pixel centres the
    nearest centres are sampled; invalid pixels are 0. Both arrays on the backend."""
    be = backend or get_backend()
    xp = be.xp
    check_array("image", image, np.float32, (None, None, None), xp)
    check_array("source_xy", source_xy, np.float32, (None, None, 2), xp)
    h, w, c = image.shape
    if not (h and w and c):
        raise ValueError(f"image: expected [H, W, C] with H, W, C >= 1, got {list(image.shape)}")
    h2, w2 = source_xy.shape[:2]
    out = be.empty((h2, w2, c), np.float32, tag="image")
    valid = be.empty((h2, w2), np.bool_, tag="image")
    n = h2 * w2
    if n:
        be.launch(kernels.function("undistort", "undistort_remap", backend=be),
                  ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                  (image, np.int32(w), np.int32(h), np.int32(c), source_xy, np.int64(n),
                   out, valid))
    return out, valid


def undistorted_camera(camera: Camera, distortion: Distortion, *,
                       keep_all: bool = False) -> Camera:
    """The pinhole Camera to undistort `camera`'s images into, chosen as COLMAP's
    image_undistorter (UndistortCamera) does: the same focal lengths, the principal point
    and the size scaled per axis.

    The centres of the distorted image's border pixels are undistorted into the pinhole
    with the capture's own K. By default (COLMAP's blank_pixels = 0) the image is cropped to
    the innermost of them on each side, so every output pixel has a source (no black
    border); keep_all=True (blank_pixels = 1) grows it to the outermost, keeping the whole
    field of view (some output pixels invalid). Each axis's scale is clamped to
    [MIN_SCALE, MAX_SCALE] = [0.2, 2], COLMAP's defaults; the size is int(scale * size) and
    the principal point scales with it. A distortion that is_zero gives the camera back.

    A wide fisheye cannot be kept whole: a ray at θ from the axis lands f θ_d from the
    centre of the fisheye image but f tan θ from that of the pinhole (tan 60° = 1.73 for a
    120° field, infinite at 90°). keep_all's scale is tan θ / θ_d at the border's farthest
    pixels (the corners), and it stops at MAX_SCALE = 2: for an equidistant lens once the
    corners pass θ = 67° (a 134° diagonal field; a fisheye 120° across has its corners near
    75°), and the image is cut off there, as in COLMAP. Border pixels at 90° or more, with no
    pinhole coordinates, count as infinitely far out.
    """
    _check_inputs(camera, distortion)
    K, width, height = _undistorted_intrinsics(*_intrinsics_key(camera), distortion, keep_all)
    return _camera_like(camera, K, width, height)


def undistort_map(camera: Camera, distortion: Distortion, pinhole: Camera) -> np.ndarray:
    """[H2, W2, 2] float32 (host): for each pixel of `pinhole` (H2 x W2), where its ray lands
    in `camera`'s distorted image, in pixel units: K (distort(K_pinhole⁻¹ (x + 0.5, y + 0.5))),
    computed in float64. NaN off the lens's first branch (Distortion.first_branch: a pinhole
    pixel beyond the fold of a strong polynomial would sample the image a second time), so
    remap marks it invalid. One evaluation of the lens per pixel, no iterations."""
    _check_inputs(camera, distortion)
    xy = _normalised_grid(pinhole)
    with np.errstate(over="ignore", invalid="ignore"):
        xy_d = distortion.distort(xy)
        xy_d[~distortion.first_branch(xy)] = np.nan
        return _to_pixels(camera, xy_d).astype(np.float32)


def distort_map(pinhole: Camera, camera: Camera, distortion: Distortion) -> np.ndarray:
    """[H, W, 2] float32 (host): for each pixel of the distorted `camera` (H x W), where its
    ray lands in `pinhole`'s image, in pixel units: K_pinhole undistort(K⁻¹ (x + 0.5,
    y + 0.5)), computed in float64; NaN where the ray has no pinhole coordinates (a fisheye
    at 90° or more from the axis)."""
    _check_inputs(camera, distortion)
    with np.errstate(over="ignore", invalid="ignore"):
        return _to_pixels(pinhole, distortion.undistort(_normalised_grid(camera))
                          ).astype(np.float32)


def undistort_image(image, camera: Camera, distortion: Distortion, *, keep_all: bool = False,
                    backend: Backend | None = None):
    """(pinhole Camera, out [H2, W2, C] float32, valid [H2, W2] bool): `image` [H, W, C]
    (float, NumPy or on the backend) seen by the distorted `camera`, resampled (bilinear)
    into the pinhole undistorted_camera(camera, distortion, keep_all=keep_all) returns.
    out and valid live on the backend; with the default keep_all=False every pixel is valid.
    The map is cached per (intrinsics, size, distortion, keep_all)."""
    be = backend or get_backend()
    _check_inputs(camera, distortion)
    image = _image_on(be, image, camera)
    key = _intrinsics_key(camera)
    K, width, height = _undistorted_intrinsics(*key, distortion, keep_all)
    source_xy = _cached_undistort_map(*key, distortion, keep_all)
    out, valid = remap(image, be.track(be.xp.array(source_xy), tag="scratch"), backend=be)
    return _camera_like(camera, K, width, height), out, valid


def distort_image(image, pinhole: Camera, camera: Camera, distortion: Distortion, *,
                  backend: Backend | None = None):
    """(out [H, W, C] float32, valid [H, W] bool): what the distorted `camera` (its size,
    K and `distortion`) would have seen, from `image` [H', W', C] rendered with the pinhole
    Camera `pinhole` (the same viewmat): the reverse of undistort_image, through the same
    kernel (bilinear). valid: the ray lands inside the pinhole image. Tests and synthetic
    captures use it; render `pinhole` wide enough (e.g. undistorted_camera(..., keep_all=
    True)) to cover the field of view."""
    be = backend or get_backend()
    _check_inputs(camera, distortion)
    if not isinstance(pinhole, Camera):
        raise TypeError(f"pinhole: expected a Camera, got {type(pinhole).__name__}")
    image = _image_on(be, image, pinhole, name="image (seen by pinhole)")
    source_xy = _cached_distort_map(*_intrinsics_key(pinhole), *_intrinsics_key(camera),
                                    distortion)
    return remap(image, be.track(be.xp.array(source_xy), tag="scratch"), backend=be)


# -- helpers ---------------------------------------------------------------------------
def _check_inputs(camera, distortion) -> None:
    if not isinstance(camera, Camera):
        raise TypeError(f"camera: expected a Camera, got {type(camera).__name__}")
    if not isinstance(distortion, Distortion):
        raise TypeError(f"distortion: expected a cameras.Distortion, got "
                        f"{type(distortion).__name__} (Distortion.none() for a pinhole)")


def _image_on(be: Backend, image, camera: Camera, name: str = "image"):
    """`image` as a C-contiguous float32 [H, W, C] array on the backend, sized for camera."""
    shape = tuple(image.shape) if hasattr(image, "shape") else None
    if shape is None or len(shape) != 3 or shape[:2] != (camera.height, camera.width):
        raise ValueError(f"{name}: expected shape [{camera.height}, {camera.width}, C] (the "
                         f"camera's height and width), got {list(shape) if shape else image!r}")
    if np.dtype(image.dtype).kind != "f":
        raise TypeError(f"{name}: expected a float image (values in [0, 1]), got dtype "
                        f"{np.dtype(image.dtype).name}: convert it first, e.g. "
                        "image.astype(np.float32) / 255")
    return be.asarray(image, np.float32, tag="image")


def _intrinsics_key(camera: Camera) -> tuple:
    """(fx, fy, cx, cy, width, height): all a map depends on, hashable."""
    return camera.fx, camera.fy, camera.cx, camera.cy, int(camera.width), int(camera.height)


def _intrinsics_camera(fx, fy, cx, cy, width, height) -> Camera:
    return Camera(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), np.eye(4), width, height)


def _camera_like(camera: Camera, K, width: int, height: int) -> Camera:
    """A Camera with `camera`'s viewmat, near and far, and these intrinsics."""
    return Camera(np.array(K, np.float64), camera.viewmat.copy(), width, height,
                  near=camera.near, far=camera.far)


def _normalised_grid(camera: Camera) -> np.ndarray:
    """[H, W, 2] float64: K⁻¹ (x + 0.5, y + 0.5) of every pixel centre."""
    x = (np.arange(camera.width) + 0.5 - camera.cx) / camera.fx
    y = (np.arange(camera.height) + 0.5 - camera.cy) / camera.fy
    grid = np.empty((camera.height, camera.width, 2))
    grid[..., 0] = x[None, :]
    grid[..., 1] = y[:, None]
    return grid


def _to_pixels(camera: Camera, xy) -> np.ndarray:
    """[..., 2] normalised coordinates -> pixel positions with camera's K."""
    return np.stack([camera.fx * xy[..., 0] + camera.cx, camera.fy * xy[..., 1] + camera.cy],
                    axis=-1)


@functools.lru_cache(maxsize=_INTRINSICS_CACHE_SIZE)
def _undistorted_intrinsics(fx, fy, cx, cy, width, height, distortion, keep_all):
    """(K [3, 3] as nested tuples, width, height) of undistorted_camera (see there)."""
    if distortion.is_zero:
        return ((fx, 0.0, cx), (0.0, fy, cy), (0.0, 0.0, 1.0)), width, height
    camera = _intrinsics_camera(fx, fy, cx, cy, width, height)

    def undistorted(u, v):
        """Distorted pixel positions -> their positions in the pinhole with the same K."""
        xy_d = np.stack([(u - cx) / fx, (v - cy) / fy], axis=-1)
        return _to_pixels(camera, distortion.undistort(xy_d))

    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    # the centres of the border pixels, undistorted; a border pixel without a pinhole
    # position (a fisheye ray at 90° or more) lies infinitely far out
    left = np.nan_to_num(undistorted(np.full(height, 0.5), ys)[:, 0], nan=-np.inf)
    right = np.nan_to_num(undistorted(np.full(height, width - 0.5), ys)[:, 0], nan=np.inf)
    top = np.nan_to_num(undistorted(xs, np.full(width, 0.5))[:, 1], nan=-np.inf)
    bottom = np.nan_to_num(undistorted(xs, np.full(width, height - 0.5))[:, 1], nan=np.inf)

    def scale(c, size, low, high):
        """The factor on `size` (and c) that keeps every border centre (keep_all) or leaves
        no blank pixel, clamped; low, high: the undistorted border centres on either side."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if keep_all:  # the outermost border centre on each side lands on the border
                inverse = min(c / (c - low.min()), (size - 0.5 - c) / (high.max() - c))
            else:  # the innermost does
                inverse = max(c / (c - low.max()), (size - 0.5 - c) / (high.min() - c))
            return float(np.clip(np.float64(1.0) / inverse, MIN_SCALE, MAX_SCALE))

    width2 = int(max(1.0, scale(cx, width, left, right) * width))
    height2 = int(max(1.0, scale(cy, height, top, bottom) * height))
    cx2 = cx * width2 / width
    cy2 = cy * height2 / height
    return ((fx, 0.0, cx2), (0.0, fy, cy2), (0.0, 0.0, 1.0)), width2, height2


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_undistort_map(fx, fy, cx, cy, width, height, distortion, keep_all):
    camera = _intrinsics_camera(fx, fy, cx, cy, width, height)
    K, width2, height2 = _undistorted_intrinsics(fx, fy, cx, cy, width, height, distortion,
                                                 keep_all)
    source_xy = undistort_map(camera, distortion, Camera(np.array(K), np.eye(4), width2, height2))
    source_xy.setflags(write=False)  # shared by every call with these intrinsics
    return source_xy


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_distort_map(pfx, pfy, pcx, pcy, pwidth, pheight, fx, fy, cx, cy, width, height,
                        distortion):
    source_xy = distort_map(_intrinsics_camera(pfx, pfy, pcx, pcy, pwidth, pheight),
                            _intrinsics_camera(fx, fy, cx, cy, width, height), distortion)
    source_xy.setflags(write=False)
    return source_xy
