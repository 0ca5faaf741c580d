"""The scene frame: where a scene is, how big, and which way is up. Orbit views circle its
centre, random starts fill the region around it, and the CLI's --center/--radius/--up
override it.

    frame = frame_of_cameras(dataset.train_cameras)  # where a capture's cameras look
    frame = frame_of_splats(gaussians)               # where a PLY's splats are
    orbit_cameras(center=frame.center, radius=2.6 * frame.radius, up=frame.up, ...)

From cameras: the centre is the point nearest to every optical axis in the least-squares
sense (cameras around an object look at it); when the axes are nearly parallel (a
forward-facing capture) it is the point one camera-spread in front of the mean camera. The
radius is what a camera sees around the centre: the median distance from the cameras to it
times the tangent of half the narrower field of view. Up is the cameras' mean up (-y of each
camera, OpenCV axes).

From splats: the centre is the opacity-weighted median of the means (per axis) and the
radius 1.1 x the opacity-weighted 99th percentile of their distance to it (a few stray or
transparent splats do not move either). A PLY carries no up: +z (the bundled scenes',
nerfstudio's exports'); the splats' flattest principal axis was tried and picks a wrong axis
on the bundled scene `shapes`, so it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import Camera
from .errors import ConfigError

# Weakest eigenvalue of the mean (I - d dᵀ) over the eigenvalues' mean below which the axes
# count as parallel (a forward-facing capture): their crossing point is then ill-defined.
PARALLEL_AXES = 1e-3


@dataclass(frozen=True, eq=False)
class SceneFrame:
    # [3] the scene's centre in world coordinates
    center: np.ndarray
    # radius of the region of interest around the centre, world units (> 0)
    radius: float
    # [3] unit vector pointing up
    up: np.ndarray
    # how it was found: "cameras", "splats" or "given"
    source: str = "given"

    def __post_init__(self):
        c = np.asarray(self.center, np.float64)
        u = np.asarray(self.up, np.float64)
        if c.shape != (3,) or not np.isfinite(c).all():
            raise ConfigError(f"center: expected 3 finite numbers, got {c.tolist()}")
        if u.shape != (3,) or not np.isfinite(u).all() or np.linalg.norm(u) == 0:
            raise ConfigError(f"up: expected a nonzero 3-vector, got {u.tolist()}")
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise ConfigError(f"radius must be a finite number > 0, got {self.radius!r}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "up", u / np.linalg.norm(u))
        object.__setattr__(self, "radius", float(self.radius))

    def to_json(self) -> dict:
        return {"center": [round(float(v), 6) for v in self.center],
                "radius": round(self.radius, 6), "up": [round(float(v), 6) for v in self.up],
                "source": self.source}


def frame_of_cameras(cameras: list[Camera]) -> SceneFrame:
    """The frame of a capture: where its cameras' optical axes meet, what they see there,
    and their mean up (see the module's docstring)."""
    if not cameras:
        raise ValueError("frame_of_cameras: no cameras")
    eyes = np.stack([c.position for c in cameras])  # [V, 3]
    rot = np.stack([c.viewmat[:3, :3] for c in cameras])  # [V, 3, 3] rows: camera axes
    forward, down = rot[:, 2], rot[:, 1]  # [V, 3] each, unit
    # minimise sum_i |(I - d_i d_iᵀ)(c - p_i)|²: A c = b
    proj = np.eye(3) - forward[:, :, None] * forward[:, None, :]  # [V, 3, 3]
    a, b = proj.sum(0), np.einsum("vij,vj->i", proj, eyes)
    eig = np.linalg.eigvalsh(a)
    mean_eye = eyes.mean(0)
    if eig[0] > PARALLEL_AXES * eig.mean():
        center = np.linalg.solve(a, b)
    else:  # forward-facing: one camera spread in front of the mean camera
        spread = max(float(np.linalg.norm(eyes - mean_eye, axis=1).max()), 1e-3)
        look = forward.mean(0)
        center = mean_eye + spread * look / max(np.linalg.norm(look), 1e-12)
    distance = float(np.median(np.linalg.norm(eyes - center, axis=1)))
    half_fov = np.array([min(np.arctan2(0.5 * c.width, c.fx), np.arctan2(0.5 * c.height, c.fy))
                         for c in cameras])
    radius = max(distance * float(np.tan(np.median(half_fov))), 1e-6)
    return SceneFrame(center, radius, -down.mean(0), "cameras")


def frame_of_splats(g) -> SceneFrame:
    """The frame of splats `g` (a Gaussians): opacity-weighted median centre and 1.1 x the
    weighted 99th percentile distance to it; up +z. Empty splats: the unit frame at 0."""
    if g.count == 0:
        return SceneFrame(np.zeros(3), 1.0, np.array([0.0, 0.0, 1.0]), "splats")
    be = g.backend
    means = be.to_numpy(g.means).astype(np.float64)  # [N, 3]
    weight = be.to_numpy(g.opacity_values()).astype(np.float64)  # [N]
    if not weight.sum() > 0:
        weight = np.ones_like(weight)
    center = np.array([weighted_percentile(means[:, k], weight, 50) for k in range(3)])
    dist = np.linalg.norm(means - center, axis=1)
    radius = 1.1 * weighted_percentile(dist, weight, 99)
    return SceneFrame(center, radius if radius > 0 else 1.0, np.array([0.0, 0.0, 1.0]),
                      "splats")


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of `values` with `weights`: the smallest value whose
    cumulative weight reaches q% of the total."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    i = int(np.searchsorted(cum, q / 100 * cum[-1]))
    return float(values[order][min(i, len(values) - 1)])
