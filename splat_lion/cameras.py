"""Pinhole cameras in OpenCV axes (+x right, +y down, +z forward), DESIGN §1.

    cam = Camera(K, viewmat, width, height)        # K: 3x3 intrinsics; viewmat: 4x4 world->camera
    cams = orbit_cameras(center=(0, 0, 0), radius=4.0, n=8, width=128, height=128)

Pixel (x, y) is sampled at its centre, (x + 0.5, y + 0.5) in K's coordinates.
"""

from __future__ import annotations

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
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K: focal lengths must be > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        if V.shape != (4, 4) or tuple(V[3]) != (0, 0, 0, 1) or not np.isfinite(V).all():
            raise ValueError(f"viewmat: expected a finite 4x4 [R | t; 0 0 0 1], got {V.tolist()}")
        R = V[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
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
                fov_x_deg: float = 60.0, **kwargs) -> "Camera":
        """A camera at `eye` looking at `target`, `up` pointing up in the image, with a
        horizontal field of view and the principal point at the image centre."""
        eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
        forward = target - eye
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
