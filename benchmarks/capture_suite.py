"""Capture-like scenes for optimizer studies: synthetic COLMAP captures, richer than the bundled
scenes, that splat-lion's loaders read like real ones.

    python benchmarks/capture_suite.py                       # every scene, 128 px, in the cache
    python benchmarks/capture_suite.py garden --size 256 --views 96 --out /tmp/suite

    from capture_suite import SUITE, make_capture          # benchmarks/ on sys.path
    folder = make_capture("garden", root)                  # root/garden-128
    problem = sl.load_problem(folder, sl.ProblemConfig())  # a start from its points3D

Each scene is tens of thousands of ground-truth splats (flat discs on textured surfaces) made
from a fixed seed, so a capture's files are the same bytes every time on one machine:

    statue  a glossy statue on a pedestal, a paved ground and a sky dome with hills
    room    inside a room: textured walls, floor and ceiling, a table with objects, a shelf of
            books, pictures and a window; some cameras stand in the middle looking around
    garden  a lawn cluttered with flowers, rocks, bushes and a table of pots and fruit, trees
            and a sky around it; fine colour texture and view-dependent (SH degree 1) colour

The views (VIEWS by default, `views` to change) are a walk-around: camera arcs around the
subject (about 300 degrees, not full circles; a little hand-held jitter) with every fifth view
a close-up that sees only part of the scene. Images are size x 3/4 size pixels (PINHOLE, 60
degrees across), rendered on the CPU backend on a black background that no pixel shows (the
backdrop covers every view). The loader holds out every 8th view (test_every). points3D holds
POINTS points like a sparse SfM cloud: true centres seen by three or more views, moved by a
little noise, with their colours, and OUTLIER_SHARE of them stray points.

A capture folder is reused when its `suite.json` (written last) records the same settings
(this file's digest among them); anything else there is made again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

import splat_lion as sl
from splat_lion.datasets import write_colmap
from splat_lion.sh import rgb_to_sh0

SUITE: tuple[str, ...] = ("statue", "room", "garden")
VERSION = 1  # of the generator: a cached capture made by another version is made again
SEED = 20_260_415  # every scene's splats, views and points derive from it
VIEWS = 64  # views of a capture when none are asked for
CLOSE_EVERY = 5  # every this-many-th view (the 5th, 10th, ...) is a close-up
FOV_X_DEG = 60.0  # horizontal field of view of every camera
POINTS = 4000  # points in points3D
OUTLIER_SHARE = 0.03  # ... of which this share are stray points
MIN_TRACK = 3  # a point's splat is seen by at least this many views
# of this file as imported: what made a cached capture (a changed generator makes it again)
SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
DEFAULT_OUT = Path.home() / ".cache" / "splat-lion" / "capture-suite"


# -- noise and colour ------------------------------------------------------------------------

class Noise:
    """3-D value noise in [-1, 1]: random values at integer lattice points (hashed into a
    table), interpolated with smoothstep weights."""

    def __init__(self, rng: np.random.Generator, size: int = 4096):
        self.table = rng.uniform(-1.0, 1.0, size)

    def __call__(self, p: np.ndarray, freq: float = 1.0) -> np.ndarray:
        """[N] noise at points p [N, 3] scaled by freq."""
        p = np.asarray(p, np.float64) * freq
        cell = np.floor(p).astype(np.int64)
        f = p - cell
        w = f * f * (3.0 - 2.0 * f)  # [N, 3] smoothstep weights
        out = np.zeros(len(p))
        for corner in np.ndindex(2, 2, 2):
            c = cell + corner  # [N, 3]
            h = (c[:, 0] * 73_856_093) ^ (c[:, 1] * 19_349_663) ^ (c[:, 2] * 83_492_791)
            weight = np.prod(np.where(corner, w, 1.0 - w), axis=1)
            out += weight * self.table[h % len(self.table)]
        return out

    def fbm(self, p: np.ndarray, freq: float, octaves: int = 4) -> np.ndarray:
        """[N] sum of octaves, each at twice the frequency and half the amplitude (about
        [-1, 1])."""
        out = sum(0.5**k * self(p, freq * 2**k) for k in range(octaves))
        return out / (2.0 - 0.5 ** (octaves - 1))


def mix(a, b, t) -> np.ndarray:
    """[N, 3] colours a + t (b - a): a, b rgb [3] or [N, 3], t [N] (clipped to [0, 1])."""
    t = np.clip(np.asarray(t, np.float64), 0, 1)[:, None]
    return (1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)


def hue(h: np.ndarray, sat: float = 0.7, val: float = 0.85) -> np.ndarray:
    """[N, 3] rgb of hues h [N] (turns)."""
    k = (np.asarray(h)[:, None] * 6.0 + np.array([5.0, 3.0, 1.0])) % 6.0
    return val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


# -- surfaces: points [M, 3] and unit normals [M, 3] -----------------------------------------

def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def plane(rng, origin, u, v, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """A parallelogram origin + s u + t v (s, t in [0, 1]): a jittered grid at `spacing`,
    normals u x v."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    nu = max(1, round(np.linalg.norm(u) / spacing))
    nv = max(1, round(np.linalg.norm(v) / spacing))
    s, t = np.meshgrid((np.arange(nu) + 0.5) / nu, (np.arange(nv) + 0.5) / nv, indexing="ij")
    st = np.stack([s.ravel(), t.ravel()], 1) + rng.uniform(-0.3, 0.3, (nu * nv, 2)) / [nu, nv]
    points = np.asarray(origin, np.float64) + st[:, :1] * u + st[:, 1:] * v
    return points, np.tile(unit(np.cross(u, v)), (len(points), 1))


def box(rng, lo, hi, spacing: float, bottom: bool = False):
    """The faces of an axis-aligned box [lo, hi] with outward normals (no bottom face unless
    asked: it stands on something)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    d = hi - lo
    ex, ey, ez = np.diag(d)
    faces = [(lo, ey, ex), (lo + ez, ex, ey),  # bottom, top
             (lo, ex, ez), (lo + ey, ez, ex), (lo, ez, ey), (lo + ex, ey, ez)]
    faces = faces if bottom else faces[1:]
    parts = [plane(rng, o, u, v, spacing) for o, u, v in faces]
    return np.concatenate([p for p, _ in parts]), np.concatenate([n for _, n in parts])


def fibonacci(n: int) -> np.ndarray:
    """[n, 3] unit vectors spread evenly over the sphere."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def ellipsoid(center, radii, spacing: float, bump=None):
    """An ellipsoid's surface, its radius times 1 + bump(direction) [M] if given."""
    radii = np.asarray(radii, np.float64)
    area = 4 * math.pi * (np.prod(radii) ** (2 / 3))
    d = fibonacci(max(8, round(area / spacing**2)))
    scale = 1.0 if bump is None else (1.0 + bump(d))[:, None]
    points = np.asarray(center, np.float64) + d * radii * scale
    return points, unit(d / radii)  # normals of the undisplaced ellipsoid: close enough


def cylinder(rng, base, radius: float, height: float, spacing: float):
    """The side of an upright cylinder standing at base [3]."""
    na = max(6, round(2 * math.pi * radius / spacing))
    nz = max(1, round(height / spacing))
    a, z = np.meshgrid(2 * math.pi * (np.arange(na) + 0.5) / na, (np.arange(nz) + 0.5) / nz,
                       indexing="ij")
    a = a.ravel() + rng.uniform(-0.3, 0.3, a.size) * 2 * math.pi / na
    normals = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
    points = np.asarray(base, np.float64) + radius * normals
    points[:, 2] += z.ravel() * height
    return points, normals


def disc(rng, center, r0: float, r1: float, spacing: float, growth: float = 0.0):
    """A flat ring r0 <= r <= r1 around center, normal +z, and the spacing at each point [M]:
    `spacing` at r0, growing by `growth` x r beyond (far ground needs fewer, larger splats)."""
    points, spacings, r = [], [], r0
    while r < r1:
        step = spacing + growth * r
        n = max(6, round(2 * math.pi * (r + step / 2) / step))
        a = 2 * math.pi * (np.arange(n) + rng.uniform(0, 1)) / n
        rr = r + step * (0.5 + rng.uniform(-0.3, 0.3, n))
        points.append(np.stack([rr * np.cos(a), rr * np.sin(a), np.zeros(n)], 1))
        spacings.append(np.full(n, step))
        r += step
    points = np.concatenate(points) + np.asarray(center, np.float64)
    return points, np.tile([0.0, 0.0, 1.0], (len(points), 1)), np.concatenate(spacings)


def dome(radius: float, spacing: float, below_deg: float = 10.0):
    """A sphere of `radius` around the origin above -below_deg elevation, normals inward."""
    d = fibonacci(round(4 * math.pi * radius**2 / spacing**2))
    d = d[d[:, 2] > -math.sin(math.radians(below_deg))]
    return radius * d, -d


# -- splats ---------------------------------------------------------------------------------

def quats_facing(normals: np.ndarray, spin: np.ndarray) -> np.ndarray:
    """[N, 4] (w, x, y, z): the rotation taking +z to each normal [N, 3], after a turn of
    spin [N] radians about +z."""
    n = unit(normals)
    align = np.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], 1)
    flipped = align[:, 0] < 1e-6  # normal -z: half a turn about x
    align[flipped] = [0.0, 1.0, 0.0, 0.0]
    align = unit(align)
    c, s = np.cos(spin / 2), np.sin(spin / 2)  # q = align * (c, 0, 0, s)
    w, x, y, z = align.T
    return np.stack([w * c - z * s, x * c + y * s, y * c - x * s, z * c + w * s], 1)


def sheen(normals: np.ndarray, gloss: float) -> np.ndarray:
    """[N, 3, 1] degree-1 SH rows adding gloss x (-d . n) to the colour seen along the unit
    view direction d (camera to splat): brighter face on. 3DGS's degree 1 basis is
    (-C1 y, C1 z, -C1 x) of d."""
    c1 = 0.4886025119029199
    n = normals
    return (gloss / c1) * np.stack([n[:, 1], -n[:, 2], n[:, 0]], 1)[:, :, None]


@dataclass(frozen=True)
class Scene:
    """A scene's ground truth: its splats' stored values (as Gaussians.from_arrays takes them)
    and what the capture needs beside them."""

    # the splats' stored values: centres [N, 3], log sigma [N, 3], quaternions [N, 4]
    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    # [N] opacity logits, [N, 3] sh0, [N, 3, 3] shN (SH degree 1)
    opacities: np.ndarray
    sh0: np.ndarray
    shN: np.ndarray
    # [N] bool: the splats of the subject (what the arcs circle and the close-ups look at)
    subject: np.ndarray
    # [N, 3] base colours in [0, 1] (points3D's colours)
    colors: np.ndarray

    @property
    def count(self) -> int:
        return len(self.means)

    def gaussians(self, backend=None) -> sl.Gaussians:
        return sl.Gaussians.from_arrays(self.means, self.scales, self.quats, self.opacities,
                                        self.sh0, self.shN, backend=backend)


class Builder:
    """Collects splats part by part: flat discs on surfaces, or loose blobs (leaves)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.parts: list[dict] = []

    def surface(self, points, normals, colors, spacing, *, subject: bool = False,
                opacity: float = 0.99, gloss: float = 0.0, thickness: float = 0.1) -> None:
        """Discs tangent to the surface: sigma about 0.8 spacing (a float or [N]) across, a
        little anisotropic, `thickness` x that along the normal; gloss: how much brighter a
        disc looks seen face on than edge on (SH degree 1)."""
        rng, n = self.rng, len(points)
        spacing = np.broadcast_to(np.asarray(spacing, np.float64), (n,))[:, None]
        sigma = 0.8 * spacing * rng.uniform(0.85, 1.2, (n, 2))  # [N, 2]: neighbours overlap
        scales = np.log(np.concatenate([sigma, thickness * sigma[:, :1]], 1))
        self._add(points, scales, quats_facing(normals, rng.uniform(0, 2 * math.pi, n)),
                  colors, subject, opacity, gloss, unit(normals))

    def blobs(self, points, colors, sigma: float, *, subject: bool = False,
              opacity: float = 0.9, gloss: float = 0.0) -> None:
        """Flat splats of random orientation and size about sigma (foliage)."""
        rng, n = self.rng, len(points)
        s = sigma * rng.uniform(0.6, 1.4, (n, 1)) * [1.0, 0.6, 0.1]
        normals = unit(rng.normal(size=(n, 3)))
        self._add(points, np.log(s), quats_facing(normals, rng.uniform(0, 2 * math.pi, n)),
                  colors, subject, opacity, gloss, normals)

    def _add(self, points, scales, quats, colors, subject, opacity, gloss, normals) -> None:
        n = len(points)
        colors = np.clip(np.broadcast_to(np.asarray(colors, np.float64), (n, 3)), 0.02, 0.98)
        alpha = np.clip(opacity + self.rng.uniform(-0.02, 0.02, n), 0.05, 0.995)
        self.parts.append({
            "means": points, "scales": scales, "quats": quats,
            "opacities": np.log(alpha / (1 - alpha)), "sh0": rgb_to_sh0(colors),
            "shN": sheen(normals, gloss) * (0.6 + 0.4 * colors[:, None, :]),
            "subject": np.full(n, subject), "colors": colors})

    def scene(self) -> Scene:
        return Scene(**{k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]})


def sky(b: Builder, noise: Noise, radius: float = 30.0) -> None:
    """A sky dome (blue to pale at the horizon, with clouds) and a ring of wooded hills at
    0.62 of its radius."""
    p, n = dome(radius, 0.045 * radius)
    elevation = np.clip(p[:, 2] / radius, 0, 1)
    clouds = np.clip(noise.fbm(p, 3.0 / radius) * 1.8, 0, 1) * (elevation > 0.08)
    c = mix(mix([0.78, 0.85, 0.92], [0.32, 0.52, 0.86], elevation**0.6), [0.97, 0.97, 0.97],
            clouds)
    b.surface(p, n, c, 0.045 * radius, opacity=0.99)
    r = 0.62 * radius  # the hills: a ring wall facing inward, its height following noise
    a = np.linspace(0, 2 * math.pi, round(2 * math.pi * r / 0.4), endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)  # [A, 3]
    top = r * (0.12 + 0.08 * noise(ring * 3.0) + 0.04 * noise(ring * 11.0))  # [A]
    rows = np.linspace(-0.05, 1.0, 16)  # fractions of the height
    p = np.concatenate([ring * r + np.c_[0 * a, 0 * a, h * top] for h in rows])
    c = mix([0.16, 0.3, 0.14], [0.33, 0.42, 0.22],
            0.5 + noise.fbm(p, 0.4) + 0.3 * np.repeat(rows, len(a)))
    b.surface(p, -np.tile(ring, (len(rows), 1)), c, 0.5, opacity=0.99)


# -- the scenes -----------------------------------------------------------------------------

def statue(rng: np.random.Generator) -> Scene:
    b, noise = Builder(rng), Noise(rng)
    sky(b, noise)
    # paving: square stones with dark joints near the statue, plain far ground beyond
    p, n, _ = disc(rng, (0, 0, 0), 0.0, 5.0, 0.05)
    stone = np.floor(p[:, :2] / 0.5)
    joint = np.min(np.abs(p[:, :2] / 0.5 - np.round(p[:, :2] / 0.5)), axis=1) < 0.06
    tint = 0.5 + 0.5 * noise(np.c_[stone, np.zeros(len(p))] * 1.0 + 0.5)
    c = mix([0.55, 0.5, 0.45], [0.72, 0.68, 0.6], tint + 0.25 * noise.fbm(p, 6.0))
    c[joint] *= 0.45
    b.surface(p, n, c, 0.05)
    p, n, step = disc(rng, (0, 0, 0), 5.0, 19.0, 0.05, growth=0.06)
    b.surface(p, n, mix([0.35, 0.42, 0.22], [0.5, 0.5, 0.32], 0.5 + noise.fbm(p, 0.3)), step)
    # the pedestal: marble veins
    p, n = box(rng, (-0.45, -0.45, 0.0), (0.45, 0.45, 0.6), 0.025)
    veins = np.abs(np.sin(8 * p[:, 0] + 6 * p[:, 2] + 4 * noise.fbm(p, 3.0))) ** 0.2
    b.surface(p, n, mix([0.45, 0.43, 0.42], [0.93, 0.92, 0.9], veins), 0.025, subject=True,
              gloss=0.08)
    # the figure: a bumpy bronze body, a head, arms; greenish patina in the hollows

    def bumps(d):
        return 0.12 * noise.fbm(d + 3.0, 2.0)
    parts = [ellipsoid((0, 0, 1.15), (0.3, 0.24, 0.55), 0.018, bumps),
             ellipsoid((0, 0, 1.88), (0.17, 0.17, 0.2), 0.015, bumps),
             ellipsoid((0.34, 0.05, 1.25), (0.08, 0.08, 0.4), 0.016),
             ellipsoid((-0.3, 0.1, 1.35), (0.08, 0.28, 0.08), 0.016)]
    for p, n in parts:
        patina = 0.5 + noise.fbm(p, 9.0) - 0.3 * n[:, 2]
        c = mix([0.55, 0.36, 0.18], [0.3, 0.52, 0.42], patina)
        b.surface(p, n, c, 0.017, subject=True, gloss=0.25)
    return b.scene()


def room(rng: np.random.Generator) -> Scene:
    b, noise = Builder(rng), Noise(rng)
    X, Y, Z = 3.0, 2.5, 2.6  # the room: [-X, X] x [-Y, Y] x [0, Z]
    # floor: planks along x with their own tone and grain
    p, n = plane(rng, (-X, -Y, 0), (0, 2 * Y, 0), (2 * X, 0, 0), 0.055)
    plank = np.floor((p[:, 1] + Y) / 0.2)
    tone = 0.5 + 0.5 * noise(np.c_[plank * 1.7, plank * 0.3, 0 * plank])
    grain = np.sin(p[:, 0] * 25 + 6 * noise.fbm(p * [0.5, 6, 1], 2.0))
    c = mix([0.42, 0.27, 0.15], [0.7, 0.5, 0.3], 0.6 * tone + 0.2 * grain + 0.2)
    c[np.abs((p[:, 1] + Y) / 0.2 - np.round((p[:, 1] + Y) / 0.2)) < 0.08] *= 0.55
    b.surface(p, n, c, 0.055, gloss=0.06)
    # ceiling, plain and a little uneven
    p, n = plane(rng, (-X, -Y, Z), (2 * X, 0, 0), (0, 2 * Y, 0), 0.1)
    b.surface(p, n, mix([0.8, 0.8, 0.78], [0.9, 0.9, 0.88], 0.5 + noise.fbm(p, 1.0)), 0.1)
    # walls (normals inward): striped paper on the long ones, brick on the short ones
    walls = [((-X, -Y, 0), (2 * X, 0, 0), (0, 0, Z)), ((X, Y, 0), (-2 * X, 0, 0), (0, 0, Z)),
             ((X, -Y, 0), (0, 2 * Y, 0), (0, 0, Z)), ((-X, Y, 0), (0, -2 * Y, 0), (0, 0, Z))]
    for i, (o, u, v) in enumerate(walls):
        p, n = plane(rng, o, u, v, 0.065)
        along = (p - o) @ unit(np.asarray(u, np.float64))
        if i < 2:
            stripes = (np.floor(along / 0.15) % 2) * 0.6 + 0.2 * noise.fbm(p, 4.0)
            c = mix([0.7, 0.62, 0.5], [0.55, 0.6, 0.55] if i else [0.6, 0.45, 0.45], stripes)
        else:
            row = np.floor(p[:, 2] / 0.12)
            col = np.floor((along + 0.1 * (row % 2)) / 0.24)
            mortar = (np.abs(p[:, 2] / 0.12 - np.round(p[:, 2] / 0.12)) < 0.1) | (
                np.abs((along + 0.1 * (row % 2)) / 0.24 - np.round(
                    (along + 0.1 * (row % 2)) / 0.24)) < 0.05)
            c = mix([0.55, 0.25, 0.18], [0.75, 0.42, 0.3],
                    0.5 + 0.5 * noise(np.c_[row, col, 0 * row] + 0.5))
            c[mortar] = [0.78, 0.76, 0.72]
        b.surface(p, n, c, 0.065)
    # a window (bright sky, cross bars) and two pictures, just off the walls
    p, n = plane(rng, (-1.0, Y - 0.01, 1.0), (2.0, 0, 0), (0, 0, 1.1), 0.03)
    n = -n
    sky_c = mix([0.62, 0.78, 0.95], [0.95, 0.96, 0.98], 0.5 + noise.fbm(p, 2.0))
    bars = (np.abs(p[:, 0]) < 0.03) | (np.abs(p[:, 2] - 1.55) < 0.03)
    sky_c[bars] = [0.9, 0.9, 0.88]
    b.surface(p, n, sky_c, 0.03)
    for o, u in (((-2.2, -Y + 0.01, 1.1), (1.2, 0, 0)), ((X - 0.01, -1.0, 1.2), (0, 1.3, 0))):
        p, n = plane(rng, o, u, (0, 0, 0.8), 0.02)
        c = hue(0.6 + 0.4 * noise.fbm(p, 5.0), 0.6, 0.8)
        b.surface(p, n, c, 0.02)
    # a bookshelf against the -x wall: a frame and rows of books
    p, n = box(rng, (-X, 0.2, 0.0), (-X + 0.35, 1.6, 2.0), 0.04)
    b.surface(p, n, [0.35, 0.22, 0.12], 0.04)
    for shelf in range(4):
        z0, y = 0.1 + 0.48 * shelf, 0.25
        while y < 1.5:
            w, h = rng.uniform(0.03, 0.07), rng.uniform(0.25, 0.4)
            p, n = plane(rng, (-X + 0.36, y, z0), (0, w, 0), (0, 0, h), 0.012)  # the spine
            band = np.abs(p[:, 2] - z0 - 0.8 * h) < 0.02  # a title band
            c = hue(np.full(len(p), rng.uniform()), 0.6, 0.7)
            c[band] = [0.85, 0.75, 0.4]
            b.surface(p, n, c, 0.012, gloss=0.05)
            y += w + 0.005
    # the subject: a table and what is on it; a rug under it
    p, n, _ = disc(rng, (0.3, -0.2, 0.005), 0.0, 1.3, 0.04)
    c = hue(np.floor(np.hypot(p[:, 0] - 0.3, p[:, 1] + 0.2) / 0.2) * 0.13 + 0.02, 0.5, 0.65)
    b.surface(p, n, c * (0.85 + 0.15 * noise.fbm(p, 12.0)[:, None]), 0.04)
    top = 0.75
    p, n = box(rng, (-0.4, -0.7, top - 0.05), (1.0, 0.3, top), 0.025, bottom=True)
    b.surface(p, n, mix([0.5, 0.32, 0.18], [0.66, 0.45, 0.28], 0.5 + noise.fbm(p, 5.0)), 0.025,
              subject=True, gloss=0.05)
    for x, y in ((-0.35, -0.65), (0.95, -0.65), (-0.35, 0.25), (0.95, 0.25)):
        p, n = cylinder(rng, (x, y, 0.0), 0.03, top - 0.05, 0.02)
        b.surface(p, n, [0.4, 0.25, 0.14], 0.02, subject=True)
    for k in range(9):  # cups, boxes and balls on the table
        x, y = rng.uniform(-0.3, 0.9), rng.uniform(-0.6, 0.2)
        kind, color = k % 3, hue(np.full(1, rng.uniform()), 0.65, 0.85)[0]
        if kind == 0:
            p, n = cylinder(rng, (x, y, top), 0.05, 0.12, 0.012)
        elif kind == 1:
            p, n = box(rng, (x, y, top), (x + 0.12, y + 0.08, top + 0.1), 0.012)
        else:
            p, n = ellipsoid((x, y, top + 0.06), (0.06, 0.06, 0.06), 0.012)
        shade = 0.75 + 0.25 * noise.fbm(p, 20.0)[:, None]
        b.surface(p, n, color * shade, 0.012, subject=True, gloss=0.15)
    return b.scene()


def garden(rng: np.random.Generator) -> Scene:
    b, noise = Builder(rng), Noise(rng)
    sky(b, noise)
    # lawn with fine grass colour, a gravel path across it, rough grass beyond
    p, n, _ = disc(rng, (0, 0, 0), 0.0, 4.0, 0.05)
    path = np.abs(p[:, 1] - 0.4 * np.sin(p[:, 0])) < 0.35 + 0.05 * noise(p, 3.0)
    grass = mix([0.2, 0.4, 0.12], [0.42, 0.62, 0.2], 0.5 + 0.6 * noise.fbm(p, 14.0))
    gravel = mix([0.5, 0.47, 0.42], [0.75, 0.72, 0.66], 0.5 + rng.uniform(-0.5, 0.5, len(p)))
    b.surface(p, n, np.where(path[:, None], gravel, grass), 0.05)
    p, n, step = disc(rng, (0, 0, 0), 4.0, 19.0, 0.05, growth=0.06)
    b.surface(p, n, mix([0.25, 0.38, 0.14], [0.4, 0.5, 0.2], 0.5 + noise.fbm(p, 0.5)), step)
    # the subject, within 1.8 of the centre: rocks, flowers, bushes, a table with pots and fruit
    for _ in range(10):
        c0 = np.r_[rng.uniform(-1.6, 1.6, 2), 0.0]
        r = rng.uniform(0.08, 0.2)
        p, n = ellipsoid(c0, (r, r * 0.8, r * 0.6), 0.02,
                         lambda d, c0=c0: 0.25 * noise.fbm(d + c0, 2.5))
        b.surface(p, n, mix([0.35, 0.33, 0.3], [0.62, 0.6, 0.55], 0.5 + noise.fbm(p, 25.0)),
                  0.02, subject=True)
    flowers = rng.uniform(-1.7, 1.7, (60, 2))
    flowers = flowers[np.abs(flowers[:, 1] - 0.4 * np.sin(flowers[:, 0])) > 0.4]  # off the path
    for x, y in flowers:
        h = rng.uniform(0.15, 0.4)
        p, n = cylinder(rng, (x, y, 0.0), 0.008, h, 0.01)
        b.surface(p, n, [0.2, 0.45, 0.15], 0.01, subject=True)
        p, n = ellipsoid((x, y, h + 0.02), (0.045, 0.045, 0.02), 0.01)
        b.surface(p, n, hue(np.full(len(p), rng.uniform()), 0.8, 0.95), 0.01, subject=True,
                  gloss=0.2)
    for _ in range(5):  # bushes: foliage blobs in a ball
        c0 = np.r_[rng.uniform(-1.5, 1.5, 2), 0.0]
        r = rng.uniform(0.2, 0.35)
        d = fibonacci(1400) * rng.uniform(0.5, 1.0, (1400, 1)) ** 0.5
        p = c0 + d * [r, r, r * 0.8] + [0, 0, 0.7 * r]
        b.blobs(p, mix([0.1, 0.3, 0.08], [0.3, 0.55, 0.15], 0.5 + noise.fbm(p, 10.0)), 0.035,
                subject=True, gloss=0.1)
    top = 0.6
    p, n = box(rng, (0.4, -1.3, top - 0.04), (1.3, -0.7, top), 0.02, bottom=True)
    wood = mix([0.45, 0.3, 0.18], [0.62, 0.45, 0.3], 0.5 + 0.5 * np.sin(p[:, 0] * 60))
    b.surface(p, n, wood, 0.02, subject=True)
    for x, y in ((0.45, -1.25), (1.25, -1.25), (0.45, -0.75), (1.25, -0.75)):
        p, n = cylinder(rng, (x, y, 0.0), 0.025, top - 0.04, 0.02)
        b.surface(p, n, [0.4, 0.27, 0.16], 0.02, subject=True)
    for k in range(8):
        x, y = rng.uniform(0.5, 1.2), rng.uniform(-1.2, -0.8)
        if k % 2:  # a terracotta pot
            p, n = cylinder(rng, (x, y, top), 0.04, 0.08, 0.01)
            b.surface(p, n, mix([0.6, 0.3, 0.18], [0.75, 0.42, 0.25], 0.5 + noise.fbm(p, 30.0)),
                      0.01, subject=True)
        else:  # a piece of fruit
            p, n = ellipsoid((x, y, top + 0.035), (0.035, 0.035, 0.035), 0.007)
            b.surface(p, n, hue(np.full(len(p), rng.uniform(0, 0.2)), 0.8, 0.9), 0.007,
                      subject=True, gloss=0.3)
    return b.scene()


SCENES = {"statue": statue, "room": room, "garden": garden}


def scene(name: str) -> Scene:
    """The ground truth of scene `name` (the same splats every time)."""
    check_name(name)
    return SCENES[name](np.random.default_rng([SEED, SUITE.index(name)]))


# -- the views --------------------------------------------------------------------------------

def arc(n: int, center, radius: float, height: float, start_deg: float, end_deg: float):
    """n eyes [n, 3] from azimuth start_deg to end_deg on a circle around center's vertical,
    `height` above the ground."""
    az = np.radians(np.linspace(start_deg, end_deg, n))
    return np.stack([center[0] + radius * np.cos(az), center[1] + radius * np.sin(az),
                     np.full(n, height)], 1)


def statue_walk(rng, n: int):
    """(kind, eye, target) of the arcs, and the close-up after an eye."""
    look = np.array([0.0, 0.0, 1.0])
    eyes = np.concatenate([arc(n - n // 2, look, 3.4, 1.3, 0, 300),
                           arc(n // 2, look, 4.6, 2.8, 290, -5)])
    arcs = [("arc", e, look) for e in eyes]

    def close(eye):
        side = unit((eye - look) * [1, 1, 0])
        target = np.r_[0.25 * side[:2], rng.uniform(0.3, 1.9)]
        return target + 0.5 * unit(side + [0, 0, rng.uniform(-0.3, 0.3)]), target
    return arcs, close


def room_walk(rng, n: int):
    look = np.array([0.3, -0.2, 0.75])  # the table
    az = np.radians(np.linspace(0, 300, n - n // 2))  # along the walls, looking in
    inward = [("arc", np.array([0.3 + 2.3 * math.cos(a), -0.2 + 1.8 * math.sin(a), 1.6]), look)
              for a in az]
    around = []  # from above the table's middle, looking out at the walls
    for e in arc(n // 2, look, 0.4, 1.55, 20, 380):
        out = unit((e - look) * [1, 1, 0])
        around.append(("around", e, e + out * 3.0 + [0, 0, rng.uniform(-1.2, 0.4)]))
    features = np.array([[-2.75, 0.9, 1.0], [-2.75, 0.5, 1.6], [-1.6, -2.45, 1.5],
                         [2.95, -0.35, 1.6], [0.0, 2.45, 1.5], [-2.75, 1.3, 0.4]])

    def close(eye):
        if rng.uniform() < 0.5:  # the table's things, from the side of the last view
            side = unit((eye - look) * [1, 1, 0])
            target = look + np.r_[0.4 * side[:2], 0.05] + rng.uniform(-0.15, 0.15, 3)
            return target + 0.35 * unit(side + [0, 0, rng.uniform(1.2, 2.5)]), target
        target = features[rng.integers(len(features))]  # a wall's shelf, picture, window
        to_middle = unit((np.array([0.0, 0.0, target[2]]) - target) * [1, 1, 0])
        return target + 0.8 * to_middle + rng.uniform(-0.2, 0.2, 3), target
    return inward + around, close


def garden_walk(rng, n: int):
    look = np.array([0.0, 0.0, 0.2])
    eyes = np.concatenate([arc(n - n // 2, look, 3.6, 1.6, 0, 300),
                           arc(n // 2, look, 4.6, 3.0, 300, 0)])
    arcs = [("arc", e, look) for e in eyes]

    def close(eye):
        side = unit((eye - look) * [1, 1, 0])
        target = np.r_[rng.uniform(0.3, 1.2) * side[:2] + rng.uniform(-0.4, 0.4, 2), 0.15]
        return target + 0.75 * unit(side + [0, 0, rng.uniform(0.5, 1.2)]), target
    return arcs, close


WALKS = {"statue": statue_walk, "room": room_walk, "garden": garden_walk}


def rig(name: str, size: int = 128, views: int | None = None) -> list[tuple[str, sl.Camera]]:
    """The views of capture `name` in capture order, each with its kind: "arc" (circling the
    subject, looking at it), "around" (the room's middle, looking out) or "close"."""
    check_name(name)
    count = VIEWS if views is None else views
    rng = np.random.default_rng([SEED, SUITE.index(name), 1])
    n_close = count // CLOSE_EVERY
    arcs, close = WALKS[name](rng, count - n_close)
    out, k = [], 0
    for i in range(count):
        if i % CLOSE_EVERY == CLOSE_EVERY - 1:
            eye, target = close(arcs[k - 1][1])
            kind = "close"
        else:
            kind, eye, target = arcs[k]
            k += 1
        shake = 0.01 * np.linalg.norm(target - eye)  # hand-held: a little off the plan
        out.append((kind, sl.Camera.look_at(eye + rng.normal(0, shake, 3),
                                            target + rng.normal(0, 2 * shake, 3),
                                            width=size, height=size * 3 // 4,
                                            fov_x_deg=FOV_X_DEG)))
    return out


# -- the capture ------------------------------------------------------------------------------

def check_name(name: str) -> None:
    if name not in SUITE:
        raise ValueError(f"no capture-suite scene {name!r}: there are {', '.join(SUITE)}")


def settings(name: str, size: int, views: int | None) -> dict:
    """What makes a capture: a folder made with other settings, or by another version of this
    file, is made again."""
    return {"version": VERSION, "source": SOURCE_DIGEST, "seed": SEED, "name": name, "size": size,
            "views": VIEWS if views is None else views, "points": POINTS}


def sfm_points(s: Scene, seen: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """POINTS points [P, 3] and colours [P, 3] like a sparse SfM cloud: centres of splats seen
    by MIN_TRACK or more views, moved by noise of half their size, colours a little off;
    OUTLIER_SHARE of them anywhere in the box of the others, of any colour."""
    n_out = round(POINTS * OUTLIER_SHARE)
    tracked = np.flatnonzero(seen >= MIN_TRACK)
    pick = rng.choice(tracked, POINTS - n_out, replace=len(tracked) < POINTS - n_out)
    pick.sort()
    size = np.exp(s.scales[pick]).max(1, keepdims=True)  # [P, 1]
    points = s.means[pick] + rng.normal(0, 0.5, (len(pick), 3)) * size
    colors = np.clip(s.colors[pick] + rng.normal(0, 0.02, (len(pick), 3)), 0, 1)
    lo, hi = np.percentile(points, [5, 95], axis=0)
    points = np.concatenate([points, rng.uniform(lo, hi, (n_out, 3))])
    return points, np.concatenate([colors, rng.uniform(0, 1, (n_out, 3))])


def make_capture(name: str, root: Path, *, size: int = 128, views: int | None = None) -> Path:
    """Write (or reuse, when a complete one made with the same settings is there) the COLMAP
    capture `name` under root/<name>-<size>[-<views>] and return its folder."""
    check_name(name)
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16 (image width in pixels), got {size!r}")
    if views is not None and (not isinstance(views, int) or views < 10):
        raise ValueError(f"views must be None or an int >= 10, got {views!r}")
    folder = Path(root) / (f"{name}-{size}" + ("" if views is None else f"-{views}"))
    wanted = settings(name, size, views)
    marker = folder / "suite.json"
    if marker.is_file() and json.loads(marker.read_text()).get("settings") == wanted:
        return folder
    t0 = time.perf_counter()
    be = sl.get_backend("cpu")
    truth = scene(name)
    g = truth.gaussians(be)
    cams = rig(name, size, views)
    images, seen, subject_seen = [], np.zeros(truth.count, np.int64), []
    for _, cam in cams:
        out = sl.render(g, cam)
        visible = be.to_numpy(out.visible)  # [N] bool: in the view
        images.append(be.to_numpy(out.image))
        seen += visible
        subject_seen.append(round(float(visible[truth.subject].mean()), 4))
    points, colors = sfm_points(truth, seen, np.random.default_rng([SEED, SUITE.index(name), 2]))
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # whole or not at all
    shutil.rmtree(tmp, ignore_errors=True)
    write_colmap(tmp, [c for _, c in cams], images, points, colors, binary=True)
    held = len(range(0, len(cams), 8))  # the loader's default test_every
    info = {"settings": wanted, "splats": truth.count, "subject_splats": int(truth.subject.sum()),
            "train": len(cams) - held, "held_out": held, "width": cams[0][1].width,
            "height": cams[0][1].height, "kinds": [k for k, _ in cams],
            "subject_seen": subject_seen,  # per view, the share of the subject in it
            "never_seen": int((seen == 0).sum())}
    (tmp / "suite.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    print(f"{folder}: made in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return folder


def describe(folder: Path) -> dict:
    """What make_capture recorded in the folder's suite.json."""
    return json.loads((Path(folder) / "suite.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help=f"scenes (default: all of {', '.join(SUITE)})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    p.add_argument("--size", type=int, default=128, help="image width in pixels (height 3/4)")
    p.add_argument("--views", type=int, default=None, help=f"views per scene (default {VIEWS})")
    args = p.parse_args(argv)
    for name in args.names:
        if name not in SUITE:
            p.error(f"no scene {name!r}: there are {', '.join(SUITE)}")
    print(f"{'scene':<8} {'splats':>8} {'train/held-out':>15} {'points':>7} {'size':>8} "
          f"{'seconds':>8}  folder")
    for name in args.names or SUITE:
        t0 = time.perf_counter()
        folder = make_capture(name, args.out, size=args.size, views=args.views)
        d = describe(folder)
        print(f"{name:<8} {d['splats']:>8,} {d['train']:>8}/{d['held_out']:<6} "
              f"{d['settings']['points']:>7} {d['width']:>4}x{d['height']:<3} "
              f"{time.perf_counter() - t0:>8.1f}  {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
