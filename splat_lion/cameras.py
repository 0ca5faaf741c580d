"""Cameras in OpenCV axes (+x right, +y down, +z forward), DESIGN §1: the pinhole Camera
every render uses, and the lens distortion of real captures (COLMAP's camera models).

    cam = Camera(K, viewmat, width, height)        # K: 3x3 intrinsics; viewmat: 4x4 world->camera
    cams = orbit_cameras(center=(0, 0, 0), radius=4.0, n=8, width=128, height=128)
    d = Distortion("OPENCV", (k1, k2, p1, p2))     # what the lens does to pinhole coordinates
    xy_d = d.distort(xy)                           # [..., 2] (x/z, y/z) -> distorted, float64
    xy = d.undistort(xy_d)                         # the inverse (iterative, to ~1e-12)

Pixel (x, y) is sampled at its centre, (x + 0.5, y + 0.5) in K's coordinates. A distorted
camera is a Camera (its K maps distorted normalised coordinates to pixels) plus a
Distortion; splat_lion/undistort.py turns its images into pinhole ones.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Camera:
    # [3, 3] pinhole intrinsics: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], in pixels
    K: np.ndarray
    # [4, 4] world-to-camera transform (rotation and translation), OpenCV axes
    viewmat: np.ndarray
    # image width in pixels
    width: int
    # image height in pixels
    height: int
    # splats nearer than this (camera z) are culled
    near: float = 0.01
    # splats farther than this are culled
    far: float = 1e10

    def __post_init__(self):
        K = np.asarray(self.K, np.float64)
        V = np.asarray(self.viewmat, np.float64)
        if K.shape != (3, 3) or K[0, 1] != 0 or K[1, 0] != 0 or tuple(K[2]) != (0, 0, 1):
            raise ValueError(f"K: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        if not np.isfinite(K).all():
            raise ValueError(f"K: intrinsics must be finite, got fx={K[0, 0]}, fy={K[1, 1]}, "
                             f"cx={K[0, 2]}, cy={K[1, 2]}")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K: focal lengths must be > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        if V.shape != (4, 4) or tuple(V[3]) != (0, 0, 0, 1) or not np.isfinite(V).all():
            raise ValueError(f"viewmat: expected a finite 4x4 [R | t; 0 0 0 1], got {V.tolist()}")
        R = V[:3, :3]
        with np.errstate(all="ignore"):  # huge entries: not a rotation, no overflow warning
            rotation = np.allclose(R @ R.T, np.eye(3), atol=1e-4) and np.linalg.det(R) > 0
        if not rotation:
            raise ValueError("viewmat: the upper 3x3 must be a rotation (orthonormal, det +1)")
        for what, v in (("width", self.width), ("height", self.height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{what} must be a positive int, got {v!r}")
            object.__setattr__(self, what, int(v))  # NumPy integers welcome, stored as int
        if not 0 < self.near < self.far:
            raise ValueError(f"need 0 < near < far, got near={self.near}, far={self.far}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "viewmat", V)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def position(self) -> np.ndarray:
        """[3] camera centre in world coordinates: -Rᵀ t."""
        return -self.viewmat[:3, :3].T @ self.viewmat[:3, 3]

    @classmethod
    def look_at(cls, eye, target, up=(0, 0, 1), *, width: int, height: int,
                fov_x_deg: float = 60.0, **kwargs) -> Camera:
        """A camera at `eye` looking at `target`, `up` pointing up in the image, with a
        horizontal field of view and the principal point at the image centre."""
        eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
        for name, v in (("eye", eye), ("target", target), ("up", up)):
            if v.shape != (3,) or not np.isfinite(v).all():
                raise ValueError(f"look_at: {name} must be 3 finite numbers, got {v.tolist()}")
        if not 0 < fov_x_deg < 180:
            raise ValueError(f"look_at: fov_x_deg must be in (0, 180) degrees for a pinhole "
                             f"camera, got {fov_x_deg}")
        forward = target - eye
        if not np.linalg.norm(forward) > 0:
            raise ValueError(f"look_at: eye and target are the same point {eye.tolist()}")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("look_at: `up` is parallel to the viewing direction")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        viewmat = np.eye(4)
        viewmat[:3, :3] = R
        viewmat[:3, 3] = -R @ eye
        f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
        return cls(K, viewmat, width, height, **kwargs)


def orbit_cameras(center=(0.0, 0.0, 0.0), radius: float = 4.0, n: int = 8, width: int = 128,
                  height: int = 128, *, elevation_deg: float = 20.0, fov_x_deg: float = 50.0,
                  up=(0.0, 0.0, 1.0)) -> list[Camera]:
    """`n` cameras evenly spaced on a circle of `radius` around `center` at an elevation
    above the plane normal to `up`, all looking at the centre with `up` up in the image
    (z up by default; azimuth 0 lies towards x, or towards y when `up` is near x)."""
    center = np.asarray(center, np.float64)
    up = np.asarray(up, np.float64)
    if up.shape != (3,) or not np.isfinite(up).all() or np.linalg.norm(up) == 0:
        raise ValueError(f"up: expected a nonzero 3-vector, got {up.tolist()}")
    up = up / np.linalg.norm(up)
    a = np.eye(3)[0] if abs(up[0]) < 0.9 else np.eye(3)[1]
    e1 = a - (a @ up) * up  # the orbit plane: e1, e2 orthonormal, normal to up
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        az = 2 * math.pi * i / n
        eye = center + radius * (math.cos(el) * (math.cos(az) * e1 + math.sin(az) * e2)
                                 + math.sin(el) * up)
        cams.append(Camera.look_at(eye, center, up, width=width, height=height,
                                   fov_x_deg=fov_x_deg))
    return cams


# COLMAP camera model name -> its distortion coefficients, in COLMAP's order (the parameters
# after the focal length(s) and the principal point). COLMAP names SIMPLE_RADIAL's and
# SIMPLE_RADIAL_FISHEYE's one coefficient "k"; here it is k1 like the others.
CAMERA_MODELS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": (),
    "PINHOLE": (),
    "SIMPLE_RADIAL": ("k1",),
    "RADIAL": ("k1", "k2"),
    "OPENCV": ("k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"),
    "SIMPLE_RADIAL_FISHEYE": ("k1",),
    "RADIAL_FISHEYE": ("k1", "k2"),
}

# Distortion.undistort: Newton steps at most, and the residual (normalised units) it must reach
_NEWTON_STEPS = 60
_RESIDUAL = 1e-12


@dataclass(frozen=True)
class Distortion:
    """What a lens does to pinhole coordinates, as COLMAP's camera models define it.

    Coordinates are normalised: xy = (x/z, y/z) of a point in camera axes for a pinhole,
    xy_d the distorted ones; pixels are K @ (xy_d, 1) with the capture's K (fx, fy, cx, cy).

    Perspective models (x, y; r² = x² + y²):
        g = (1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶)    (absent k's are 0)
        x_d = x g + 2 p1 x y + p2 (r² + 2 x²)
        y_d = y g + 2 p2 x y + p1 (r² + 2 y²)
    SIMPLE_RADIAL and RADIAL have k1 (and k2) only, OPENCV adds p1, p2, FULL_OPENCV has all
    (OpenCV's and COLMAP's formulas).
    Fisheye models (equidistant projection): θ = atan(r) is the angle from the optical axis,
        θ_d = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸),    xy_d = xy θ_d / r
    (OPENCV_FISHEYE; SIMPLE_RADIAL_FISHEYE has k1 only, RADIAL_FISHEYE k1, k2), so a ray at
    θ lands θ_d from the centre: fields of view of 120° and more stay finite.

    `undistort` inverts `distort` by Newton's method started at xy_d, on the lens's first
    branch only: radii below `fold`, where the radial map (r g(r²), or θ_d(θ)) first stops
    increasing, and for a fisheye θ < 90° (a ray at 90° or more has no pinhole coordinates).
    Where no inverse exists there (a point beyond the fold of a strong polynomial) it
    returns NaN.
    """

    # COLMAP's camera model name, a key of CAMERA_MODELS
    model: str = "PINHOLE"
    # its distortion coefficients in COLMAP's order (names: CAMERA_MODELS[model]), unitless
    params: tuple[float, ...] = ()

    def __post_init__(self):
        if not isinstance(self.model, str) or self.model not in CAMERA_MODELS:
            raise ValueError(f"Distortion: unknown camera model {self.model!r}: known are "
                             f"{', '.join(CAMERA_MODELS)}")
        names = CAMERA_MODELS[self.model]
        raw = self.params
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__"):
            raise TypeError(f"Distortion({self.model}): params must be a sequence of "
                            f"{len(names)} numbers ({', '.join(names) or 'none'}), got {raw!r}")
        if len(raw) != len(names):
            raise ValueError(f"Distortion({self.model}): expected {len(names)} params "
                             f"({', '.join(names) or 'none'}), got {len(raw)}: {tuple(raw)}")
        try:
            params = tuple(float(p) for p in raw)
        except (TypeError, ValueError):
            raise TypeError(f"Distortion({self.model}): params must be numbers, got {tuple(raw)}"
                            ) from None
        bad = [f"{n}={p}" for n, p in zip(names, params) if not math.isfinite(p)]
        if bad:
            raise ValueError(f"Distortion({self.model}): params must be finite, got "
                             f"{', '.join(bad)}")
        object.__setattr__(self, "params", params)

    @classmethod
    def none(cls) -> Distortion:
        """No distortion: a pinhole."""
        return cls("PINHOLE", ())

    @property
    def fisheye(self) -> bool:
        """The *_FISHEYE models: equidistant projection (θ_d from θ = atan(r))."""
        return self.model.endswith("_FISHEYE")

    @property
    def is_zero(self) -> bool:
        """No distortion at all: a pinhole model, or a perspective one with every coefficient
        0 (a fisheye never is: even with zero k's its projection is equidistant)."""
        return not self.fisheye and not any(self.params)

    def coefficient(self, name: str) -> float:
        """The coefficient `name` (k1, p2, ...), 0 when the model has none of that name."""
        names = CAMERA_MODELS[self.model]
        return self.params[names.index(name)] if name in names else 0.0

    @functools.cached_property
    def fold(self) -> float:
        """Where the lens's first branch ends: the smallest radius r (perspective models,
        tangential terms aside) or angle θ (fisheye, in radians, at most π/2) at which the
        radial map r g(r²) or θ_d(θ) stops increasing; inf if it never does."""
        # scan a grid to the first sign change of the slope, then bisect it
        if self.fisheye:
            grid = np.linspace(0.0, math.pi / 2, 20001)
        else:
            grid = np.concatenate([np.linspace(0.0, 4.0, 20001), np.geomspace(4.0, 1e6, 20001)[1:]])
        bad = np.nonzero(self._radial_slope(grid) <= 0)[0]
        if not bad.size:
            return math.pi / 2 if self.fisheye else math.inf
        lo, hi = grid[bad[0] - 1], grid[bad[0]]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self._radial_slope(np.array([mid]))[0] > 0 else (lo, mid)
        return float(lo)

    def _radial_slope(self, r):
        """d/dr of the radial map: of θ_d(θ) at θ = r (fisheye), else of r g(r²) (and g
        itself where it is smaller: g <= 0 folds the image through the centre)."""
        if self.fisheye:
            return self._fisheye_poly(r * r)[1]
        zero = np.zeros_like(r)
        _, jac = self._radial_only()._perspective(r, zero)
        return np.minimum(jac[..., 0, 0], jac[..., 1, 1])  # along r, and across (g)

    def _radial_only(self) -> Distortion:
        """This distortion without its tangential terms (p1 = p2 = 0)."""
        names = CAMERA_MODELS[self.model]
        return Distortion(self.model, tuple(0.0 if n in ("p1", "p2") else p
                                            for n, p in zip(names, self.params)))

    # -- the maps ----------------------------------------------------------------------
    def distort(self, xy) -> np.ndarray:
        """[..., 2] pinhole normalised coordinates (x/z, y/z) -> [..., 2] distorted normalised
        coordinates, float64."""
        xy = _points("xy", xy)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.fisheye:
                r = np.hypot(xy[..., 0], xy[..., 1])
                theta = np.arctan(r)
                theta_d = theta * self._fisheye_poly(theta * theta)[0]
                scale = np.where(r > 0, theta_d / np.where(r > 0, r, 1.0), 1.0)
                return xy * scale[..., None]
            return self._perspective(xy[..., 0], xy[..., 1])[0]

    def first_branch(self, xy) -> np.ndarray:
        """[...] bool: the pinhole points [..., 2] the lens maps one to one, the only ones
        `undistort` returns: radius below `fold` (fisheye: θ = atan(r) below it), and for the
        perspective models a Jacobian of `distort` that keeps orientation (det > 0)."""
        xy = _points("xy", xy)
        r = np.hypot(xy[..., 0], xy[..., 1])
        if self.fisheye:
            return np.arctan(r) < self.fold
        if self.is_zero:
            return np.isfinite(r)
        with np.errstate(over="ignore", invalid="ignore"):
            jac = self._perspective(xy[..., 0], xy[..., 1])[1]
            det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
            return (r < self.fold) & (det > 0)

    def undistort(self, xy_d) -> np.ndarray:
        """[..., 2] distorted normalised coordinates -> [..., 2] pinhole ones, float64: the
        inverse of `distort` (Newton's method to a residual below 1e-12), NaN where none
        exists (see the class docstring)."""
        xy_d = _points("xy_d", xy_d)
        if self.is_zero:
            return xy_d.copy()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.fisheye:
                return self._undistort_fisheye(xy_d)
            return self._undistort_perspective(xy_d)

    # -- perspective models ------------------------------------------------------------
    def _perspective(self, x, y):
        """(xy_d [..., 2], jacobian [..., 2, 2] d xy_d / d xy) of the perspective models."""
        c = self.coefficient
        r2 = x * x + y * y
        num = 1 + r2 * (c("k1") + r2 * (c("k2") + r2 * c("k3")))
        d_num = c("k1") + r2 * (2 * c("k2") + r2 * 3 * c("k3"))  # d num / d r²
        den = 1 + r2 * (c("k4") + r2 * (c("k5") + r2 * c("k6")))
        d_den = c("k4") + r2 * (2 * c("k5") + r2 * 3 * c("k6"))
        g = num / den
        dg = (d_num * den - num * d_den) / (den * den)  # d g / d r²
        p1, p2 = c("p1"), c("p2")
        xd = x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * g + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
        jac = np.empty(x.shape + (2, 2))
        jac[..., 0, 0] = g + 2 * x * x * dg + 2 * p1 * y + 6 * p2 * x
        jac[..., 0, 1] = 2 * x * y * dg + 2 * p1 * x + 2 * p2 * y
        jac[..., 1, 0] = 2 * x * y * dg + 2 * p2 * y + 2 * p1 * x
        jac[..., 1, 1] = g + 2 * y * y * dg + 2 * p2 * x + 6 * p1 * y
        return np.stack([xd, yd], axis=-1), jac

    def _undistort_perspective(self, xy_d):
        xy = xy_d.copy()
        for _ in range(_NEWTON_STEPS):
            f, jac = self._perspective(xy[..., 0], xy[..., 1])
            f -= xy_d
            det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
            step = np.stack([jac[..., 1, 1] * f[..., 0] - jac[..., 0, 1] * f[..., 1],
                             jac[..., 0, 0] * f[..., 1] - jac[..., 1, 0] * f[..., 0]],
                            axis=-1) / det[..., None]
            xy -= step
            if not (np.abs(step) > 1e-15 * (1 + np.abs(xy))).any():
                break
        residual = np.abs(self._perspective(xy[..., 0], xy[..., 1])[0] - xy_d).max(axis=-1)
        ok = (residual <= _RESIDUAL * (1 + np.abs(xy_d).max(axis=-1))) & self.first_branch(xy)
        return np.where(ok[..., None], xy, np.nan)

    # -- fisheye models ----------------------------------------------------------------
    def _fisheye_poly(self, t2):
        """(1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸, d(θ · that)/dθ) at θ² = t2."""
        k = self.params + (0.0,) * (4 - len(self.params))
        poly = 1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))
        d_theta_d = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
        return poly, d_theta_d

    def _undistort_fisheye(self, xy_d):
        theta_d = np.hypot(xy_d[..., 0], xy_d[..., 1])
        theta = theta_d.copy()
        for _ in range(_NEWTON_STEPS):
            poly, slope = self._fisheye_poly(theta * theta)
            step = (theta * poly - theta_d) / slope
            theta -= step
            if not (np.abs(step) > 1e-15 * (1 + theta)).any():
                break
        poly, slope = self._fisheye_poly(theta * theta)
        residual = np.abs(theta * poly - theta_d)
        ok = (residual <= _RESIDUAL * (1 + theta_d)) & (theta >= 0) & (theta < self.fold)  # <= π/2
        # xy = xy_d tan(θ) / θ_d (-> 1 at the centre)
        scale = np.where(theta_d > 0, np.tan(theta) / np.where(theta_d > 0, theta_d, 1.0), 1.0)
        return np.where(ok[..., None], xy_d * scale[..., None], np.nan)


def _points(name: str, a) -> np.ndarray:
    """`a` as a float64 array of shape [..., 2] (a copy: callers may write to it)."""
    a = np.array(a, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape [..., 2] (normalised x, y), got {list(a.shape)}")
    return a
