"""Make the three bundled scenes in scenes/ (listed in scenes/README.md):

    python scenes/make_scenes.py        # rewrites scenes/shapes.ply, planet.ply, knot.ply

    shapes  SH degree 1: a sphere, a torus and a cube of flat splats, patterned
    planet  SH degree 0: a noise-displaced sphere with oceans, land, snow and clouds
    knot    SH degree 3: a trefoil-knot tube, glossy: highlight and rim colour follow the view

Every scene is procedural and built from fixed seeds, so running the script twice gives
byte-identical files on one machine. Splats are flat discs lying on a surface: two tangent
standard deviations about 0.6x the local sample spacing (so neighbours overlap into an
opaque skin) and a thin one along the normal. All scenes sit around the origin within a
radius of about 1.6.

View direction `d` (for SH colours) is the unit vector from the camera to the splat, as in
3DGS (`dir = mean - campos`), and colour = sum_k Y_k(d) * sh_k + 0.5 with the 3DGS basis.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if (HERE.parent / "splat_lion").is_dir():  # a checkout: use its splat_lion, installed or not
    sys.path.insert(0, str(HERE.parent))

from splat_lion import Gaussians, get_backend, save_ply
from splat_lion.sh import rgb_to_sh0

# Light direction (towards the light) for the baked shading and the knot's highlight.
LIGHT = np.array([0.4, 0.5, 0.77]) / np.linalg.norm([0.4, 0.5, 0.77])


# -- geometry helpers -------------------------------------------------------------------------
def normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def fibonacci_sphere(n: int) -> np.ndarray:
    """[n, 3] unit vectors spread evenly over the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def frames_from_normals(n: np.ndarray) -> np.ndarray:
    """[N, 3, 3] right-handed frames whose columns are (tangent, bitangent, normal)."""
    helper = np.where(np.abs(n[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    t1 = normalize(np.cross(helper, n))
    t2 = np.cross(n, t1)
    return np.stack([t1, t2, n], 2)


def quats_from_frames(r: np.ndarray) -> np.ndarray:
    """[N, 4] unit quaternions (w, x, y, z) of rotation matrices r [N, 3, 3] (columns = the
    splat's local x, y, z axes in world space)."""
    if not np.allclose(np.linalg.det(r), 1.0, atol=1e-6):
        raise ValueError("frames must be right-handed rotations")
    d0, d1, d2 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    w = 0.5 * np.sqrt(np.maximum(0.0, 1.0 + d0 + d1 + d2))
    x = 0.5 * np.sqrt(np.maximum(0.0, 1.0 + d0 - d1 - d2))
    y = 0.5 * np.sqrt(np.maximum(0.0, 1.0 - d0 + d1 - d2))
    z = 0.5 * np.sqrt(np.maximum(0.0, 1.0 - d0 - d1 + d2))
    x = np.copysign(x, r[:, 2, 1] - r[:, 1, 2])
    y = np.copysign(y, r[:, 0, 2] - r[:, 2, 0])
    z = np.copysign(z, r[:, 1, 0] - r[:, 0, 1])
    return normalize(np.stack([w, x, y, z], 1))


def rotation(axis, angle: float) -> np.ndarray:
    """[3, 3] rotation by `angle` radians about `axis` (Rodrigues)."""
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def lerp_colors(t: np.ndarray, stops: list[tuple[float, tuple[float, float, float]]]):
    """[N, 3] colours interpolated piecewise-linearly along `stops` (position, rgb) at t [N]."""
    pos = [p for p, _ in stops]
    return np.stack([np.interp(t, pos, [c[i] for _, c in stops]) for i in range(3)], 1)


def hue(h: np.ndarray, sat: float = 0.75, val: float = 0.9) -> np.ndarray:
    """[N, 3] rgb of hue h [N] (in turns, wraps) at fixed saturation and value."""
    k = (np.asarray(h)[:, None] * 6.0 + np.array([5.0, 3.0, 1.0])) % 6.0
    return val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


# -- spherical harmonics (3DGS basis and signs) ---------------------------------------------
def sh_basis(d: np.ndarray, degree: int) -> np.ndarray:
    """[M, (degree+1)^2] real SH basis at unit directions d [M, 3], as 3DGS evaluates it."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xx, yy, zz = x * x, y * y, z * z
    cols = [np.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        c1 = 0.4886025119029199
        cols += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        cols += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                 0.31539156525252005 * (2 * zz - xx - yy), -1.0925484305920792 * x * z,
                 0.5462742152960396 * (xx - yy)]
    if degree >= 3:
        cols += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
                 -0.4570457994644658 * y * (4 * zz - xx - yy),
                 0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                 -0.4570457994644658 * x * (4 * zz - xx - yy),
                 1.445305721320277 * z * (xx - yy), -0.5900435899266435 * x * (xx - 3 * yy)]
    return np.stack(cols, 1)


def fit_sh(view_color, degree: int, directions: int = 512):
    """sh0 [N, 1, 3] and shN [N, K-1, 3] (None at degree 0) fitting view_color(d) -> [N, 3]
    rgb, by least squares over `directions` evenly spread unit view directions d."""
    dirs = fibonacci_sphere(directions)
    basis = sh_basis(dirs, degree)  # [M, K]
    target = np.stack([view_color(d) for d in dirs]) - 0.5  # [M, N, 3]
    # einsum, not BLAS matmul: same bits on every run
    coeffs = np.einsum("km,mnc->nkc", np.linalg.pinv(basis), target, optimize=False)
    return coeffs[:, :1], (coeffs[:, 1:] if degree > 0 else None)


# -- noise ------------------------------------------------------------------------------------
class ValueNoise:
    """3-D value noise: random values on the integer lattice, smoothstep-interpolated."""

    def __init__(self, rng: np.random.Generator):
        self.perm = rng.permutation(256)
        self.values = rng.uniform(-1.0, 1.0, 256)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """[N] noise in [-1, 1] at points p [N, 3]."""
        cell = np.floor(p).astype(np.int64)
        f = p - cell
        u = f * f * (3.0 - 2.0 * f)  # smoothstep weights
        out = np.zeros(len(p))
        for corner in np.ndindex(2, 2, 2):
            c = cell + corner
            h = self.perm[(self.perm[(self.perm[c[:, 0] & 255] + c[:, 1]) & 255] + c[:, 2]) & 255]
            w = np.prod(np.where(np.array(corner) == 1, u, 1.0 - u), axis=1)
            out += w * self.values[h]
        return out

    def fbm(self, p: np.ndarray, octaves: int, lacunarity: float = 2.0, gain: float = 0.5):
        """[N] fractal sum of `octaves` noise layers, each `lacunarity` x finer and `gain` x
        weaker than the last, normalised to about [-1, 1]."""
        total, amp, norm = np.zeros(len(p)), 1.0, 0.0
        for o in range(octaves):
            # a fixed offset per octave so the lattices of successive layers do not line up
            total += amp * self(p * lacunarity ** o + 17.31 * o)
            norm += amp
            amp *= gain
        return total / norm


# -- assembling splats ------------------------------------------------------------------------
def splats(means, frames, sigmas, opacity, rgb=None, sh=None):
    """Gaussians from world means [N,3], frames [N,3,3] (columns: local axes), sigmas [N,3]
    (standard deviation along each local axis), opacity [N] in (0,1), and either rgb [N,3]
    (degree 0) or sh = (sh0, shN) from fit_sh."""
    sh0, shN = (rgb_to_sh0(rgb)[:, None, :], None) if sh is None else sh
    return Gaussians.from_arrays(
        means, np.log(sigmas), quats_from_frames(frames), np.log(opacity / (1.0 - opacity)),
        sh0, shN, backend=get_backend("cpu"))


def concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def surface(means, frames, sig_t1, sig_t2, rgb, rng, normal_frac=0.25):
    """A patch of flat splats: tangent sigmas jittered by +-10%, normal sigma `normal_frac`
    of the smaller tangent one, opacity 0.85..0.97 (opaque skin, not exactly uniform)."""
    n = len(means)
    jitter = rng.uniform(0.9, 1.1, (n, 2))
    s1, s2 = sig_t1 * jitter[:, 0], sig_t2 * jitter[:, 1]
    sigmas = np.stack([s1, s2, normal_frac * np.minimum(s1, s2)], 1)
    return {"means": means, "frames": frames, "sigmas": sigmas,
            "opacity": rng.uniform(0.85, 0.97, n), "rgb": rgb}


# -- scene 1: shapes --------------------------------------------------------------------------
def make_shapes() -> Gaussians:
    """A patterned sphere, torus and cube: large smooth shapes with sharp colour edges."""
    rng = np.random.default_rng(1)
    density = 560.0  # splats per unit area: ~0.042 spacing, ~6000 splats in all
    parts = []

    # Sphere, radius 0.55: six coloured longitude wedges (large scale) crossed by white
    # latitude rings every 30 degrees (fine scale, ~0.07 wide).
    radius, centre = 0.55, np.array([-0.8, -0.2, 0.4])
    n = int(density * 4 * np.pi * radius ** 2)
    dirs = fibonacci_sphere(n)  # pattern coordinates; the ball is then tilted by 35 deg
    normals = dirs @ rotation([1, 1, 0], 0.6).T
    lon = np.arctan2(dirs[:, 1], dirs[:, 0])
    lat = np.degrees(np.arcsin(np.clip(dirs[:, 2], -1, 1)))
    wedges = np.array([[0.85, 0.15, 0.15], [0.95, 0.55, 0.1], [0.95, 0.85, 0.15],
                       [0.2, 0.7, 0.25], [0.15, 0.35, 0.85], [0.55, 0.2, 0.75]])
    rgb = wedges[((lon + np.pi) / (2 * np.pi) * 6).astype(int) % 6]
    ring = np.abs(((lat + 15) % 30) - 15) < 3.5
    rgb[ring] = 0.95
    spacing = np.sqrt(4 * np.pi * radius ** 2 / n)
    parts.append(surface(centre + radius * normals, frames_from_normals(normals),
                         0.6 * spacing, 0.6 * spacing, rgb, rng))

    # Torus, radii 0.5 and 0.17, tilted: a 16 x 6 magenta/cream checkerboard. A regular
    # (u, v) grid; the sigma along u follows the local ring length, so splats stretch on the
    # outer side (anisotropic, aligned with the surface).
    big, small, centre = 0.5, 0.17, np.array([0.8, 0.45, 0.25])
    n_u = int(np.sqrt(density) * 2 * np.pi * big)
    n_v = int(np.sqrt(density) * 2 * np.pi * small)
    u, v = np.meshgrid(np.arange(n_u) * 2 * np.pi / n_u, np.arange(n_v) * 2 * np.pi / n_v,
                       indexing="ij")
    u = (u + np.pi / n_u * (np.arange(n_v) % 2)).ravel()  # stagger alternate rings
    v = v.ravel()
    rot = rotation([1, 0.3, 0], 1.0)
    ring_r = big + small * np.cos(v)
    local = np.stack([ring_r * np.cos(u), ring_r * np.sin(u), small * np.sin(v)], 1)
    e_u = np.stack([-np.sin(u), np.cos(u), np.zeros_like(u)], 1)
    e_v = np.stack([-np.sin(v) * np.cos(u), -np.sin(v) * np.sin(u), np.cos(v)], 1)
    nrm = np.cross(e_u, e_v)
    frames = rot @ np.stack([e_u, e_v, nrm], 2)
    checker = ((u / (2 * np.pi) * 16).astype(int) + (v / (2 * np.pi) * 6).astype(int)) % 2
    rgb = np.where(checker[:, None] == 1, [0.85, 0.2, 0.6], [0.95, 0.9, 0.75])
    parts.append(surface(centre + local @ rot.T, frames, 0.6 * ring_r * 2 * np.pi / n_u,
                         0.6 * small * 2 * np.pi / n_v, rgb, rng))

    # Cube, half-size 0.38, turned: one colour per face, each face a 4 x 4 light/dark
    # checker (cell 0.19) with a dark border (~0.04) along every edge.
    half, centre = 0.38, np.array([0.1, -0.2, -0.7])
    rot = rotation([0.3, 1, 0.5], 0.7)
    k = round(2 * half * np.sqrt(density))  # samples per face edge
    a, b = np.meshgrid((np.arange(k) + 0.5) / k * 2 - 1, (np.arange(k) + 0.5) / k * 2 - 1,
                       indexing="ij")
    a, b = a.ravel(), b.ravel()
    face_colors = [[0.9, 0.3, 0.1], [0.1, 0.6, 0.55], [0.95, 0.75, 0.1],
                   [0.3, 0.3, 0.85], [0.6, 0.85, 0.2], [0.8, 0.15, 0.35]]
    eye = np.eye(3)
    for face, (axis, sign) in enumerate([(i, s) for i in range(3) for s in (1, -1)]):
        t1, t2 = eye[(axis + 1) % 3], eye[(axis + 2) % 3]
        if sign < 0:
            t1, t2 = t2, t1  # keep (t1, t2, normal) right-handed
        nrm = sign * eye[axis]
        local = half * (nrm + a[:, None] * t1 + b[:, None] * t2)
        shade = np.where(((a + 1) * 2).astype(int) % 2 != ((b + 1) * 2).astype(int) % 2,
                         1.0, 0.7)
        border = np.maximum(np.abs(a), np.abs(b)) > 0.9
        rgb = np.array(face_colors[face]) * shade[:, None]
        rgb[border] = 0.1
        frames = rot @ np.tile(np.stack([t1, t2, nrm], 1), (len(a), 1, 1))
        parts.append(surface(centre + local @ rot.T, frames, np.full(len(a), 0.6 * 2 * half / k),
                             np.full(len(a), 0.6 * 2 * half / k), rgb, rng))

    p = concat(parts)
    normals = p["frames"][:, :, 2]

    # SH degree 1: faces turned to the camera are brighter (x1.0) than at grazing view
    # (x0.75); linear in d, so degree 1 holds it exactly.
    def view_color(d):
        return p["rgb"] * (0.75 - 0.25 * (normals @ d))[:, None]

    return splats(p["means"], p["frames"], p["sigmas"], p["opacity"],
                  sh=fit_sh(view_color, 1))


# -- scene 2: planet --------------------------------------------------------------------------
def make_planet() -> Gaussians:
    """A small planet: fractal-noise relief on a sphere (continents down to hills), coloured
    by height, slope and latitude, under a half-transparent cloud layer."""
    rng = np.random.default_rng(2)
    noise = ValueNoise(rng)
    base = 0.9  # sea-level radius
    relief = 0.12  # mountain height above sea level at the highest land
    n_ground = 6000  # ~0.041 spacing on the surface

    def height(d):  # [N] fractal height in ~[-1, 1] at unit directions d
        # 4 octaves: lattice spacings ~0.5 (continents) down to ~0.06 (hills), the finest
        # still ~1.5 sample spacings so the splats can hold it
        return noise.fbm(d * 1.8, octaves=4)

    dirs = fibonacci_sphere(n_ground)
    h = height(dirs)
    sea = np.quantile(h, 0.55)  # 55% of the surface is ocean
    land = np.clip((h - sea) / (h.max() - sea), 0.0, 1.0)  # 0 at the coast, 1 on top

    def radius_at(d):
        return base + relief * np.clip((height(d) - sea) / (h.max() - sea), 0.0, 1.0)

    means = dirs * radius_at(dirs)[:, None]
    # normal of the displaced surface by finite differences along two tangents
    frames0 = frames_from_normals(dirs)
    eps = 0.02  # about half a sample spacing
    p1 = normalize(dirs + eps * frames0[:, :, 0])
    p2 = normalize(dirs + eps * frames0[:, :, 1])
    normals = normalize(np.cross(p1 * radius_at(p1)[:, None] - means,
                                 p2 * radius_at(p2)[:, None] - means))
    slope = 1.0 - np.sum(normals * dirs, 1)  # 0 flat, grows on steep ground

    depth = np.clip((sea - h) / (sea - h.min()), 0.0, 1.0)  # 0 at the coast, 1 deepest
    ocean = lerp_colors(depth, [(0.0, (0.2, 0.6, 0.75)), (0.25, (0.08, 0.35, 0.65)),
                                (1.0, (0.03, 0.1, 0.35))])
    ground = lerp_colors(land, [(0.0, (0.9, 0.82, 0.55)), (0.04, (0.45, 0.75, 0.25)),
                                (0.3, (0.15, 0.5, 0.15)), (0.5, (0.5, 0.4, 0.25)),
                                (0.65, (0.55, 0.5, 0.45)), (0.72, (0.97, 0.97, 0.99)),
                                (1.0, (0.97, 0.97, 0.99))])
    rock = np.clip((slope - 0.05) * 4.0, 0.0, 0.6)[:, None]  # steep slopes show bare rock
    ground = (1 - rock) * ground + rock * np.array([0.42, 0.36, 0.32])
    rgb = np.where((h < sea)[:, None], ocean, ground)
    # polar ice, its edge roughened by the same noise
    ice = np.abs(dirs[:, 2]) + 0.08 * h > 0.88
    rgb[ice] = [0.92, 0.95, 1.0]
    # baked soft lighting so relief reads in a flat colour render
    rgb *= (0.75 + 0.25 * np.clip(normals @ LIGHT, -1, 1))[:, None]

    spacing = np.sqrt(4 * np.pi * base ** 2 / n_ground)
    ground_part = surface(means, frames_from_normals(normals), np.full(n_ground, 0.6 * spacing),
                          np.full(n_ground, 0.6 * spacing), rgb, rng)

    # Clouds: a shell just above the highest peak, kept where a second noise field is high
    # (about a sixth of the sky); half-transparent splats (opacity 0.25..0.6), so not every
    # splat in the scenes is opaque. Puffier than ground splats (normal sigma 2/3 of the
    # tangent one) so edge-on clouds on the limb do not pile up into bright lines.
    cdirs = fibonacci_sphere(3000)
    cover = noise.fbm(cdirs * 3.0 + 40.0, octaves=4)
    keep = cover > np.quantile(cover, 0.83)
    cdirs, cover = cdirs[keep], cover[keep]
    nc = len(cdirs)
    cloud_r = base + relief + 0.03
    cspacing = np.sqrt(4 * np.pi / 3000) * cloud_r
    strength = (cover - cover.min()) / (cover.max() - cover.min())
    cloud_part = {
        "means": cdirs * cloud_r,
        "frames": frames_from_normals(cdirs),
        "sigmas": np.stack([np.full(nc, 0.6 * cspacing), np.full(nc, 0.6 * cspacing),
                            np.full(nc, 0.4 * cspacing)], 1),
        "opacity": 0.25 + 0.35 * strength,
        "rgb": np.tile([0.97, 0.97, 0.98], (nc, 1)),
    }
    p = concat([ground_part, cloud_part])
    return splats(p["means"], p["frames"], p["sigmas"], p["opacity"], rgb=p["rgb"])


# -- scene 3: knot ----------------------------------------------------------------------------
def make_knot() -> Gaussians:
    """A glossy trefoil-knot tube, SH degree 3: a rainbow along the knot (large scale), a
    helical stripe (middle) and thin dark rings (fine), with a specular highlight and an
    iridescent rim that move with the view."""
    rng = np.random.default_rng(3)
    scale, tube = 0.45, 0.2  # knot spans ~2.7 across; strands pass >= 0.55 apart
    target = 6500  # splats: 6500 x 248 bytes ~ 1.6 MB at SH degree 3

    def curve(t):  # trefoil, with first and second derivatives
        c = np.stack([np.sin(t) + 2 * np.sin(2 * t), np.cos(t) - 2 * np.cos(2 * t),
                      -np.sin(3 * t)], 1)
        d1 = np.stack([np.cos(t) + 4 * np.cos(2 * t), -np.sin(t) + 4 * np.sin(2 * t),
                       -3 * np.cos(3 * t)], 1)
        d2 = np.stack([-np.sin(t) - 8 * np.sin(2 * t), -np.cos(t) + 8 * np.cos(2 * t),
                       9 * np.sin(3 * t)], 1)
        return scale * c, scale * d1, scale * d2

    # arc length table, to space rings evenly along the tube
    fine = np.linspace(0, 2 * np.pi, 8193)
    seg = np.linalg.norm(np.diff(curve(fine)[0], axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    length = arc[-1]
    spacing = np.sqrt(2 * np.pi * tube * length / target)
    n_rings = int(length / spacing)
    n_around = int(2 * np.pi * tube / spacing)
    s = np.arange(n_rings) / n_rings  # arc-length fraction of each ring
    t = np.interp(s * length, arc, fine)

    c, d1, d2 = curve(t)
    tangent = normalize(d1)
    normal = normalize(d2 - np.sum(d2 * tangent, 1, keepdims=True) * tangent)  # Frenet
    binormal = np.cross(tangent, normal)
    curvature = np.linalg.norm(np.cross(d1, d2), axis=1) / np.linalg.norm(d1, axis=1) ** 3

    # a ring of n_around splats per ring, alternate rings staggered by half a step
    ring = np.repeat(np.arange(n_rings), n_around)
    theta = (np.tile(np.arange(n_around), n_rings) + 0.5 * (ring % 2)) * 2 * np.pi / n_around
    cos_t, sin_t = np.cos(theta)[:, None], np.sin(theta)[:, None]
    nrm = cos_t * normal[ring] + sin_t * binormal[ring]
    around = -sin_t * normal[ring] + cos_t * binormal[ring]
    means = c[ring] + tube * nrm
    frames = np.stack([around, tangent[ring], nrm], 2)  # around x along = normal
    # rings crowd on the inside of a bend: the along-tube sigma follows the local gap
    squeeze = 1.0 - curvature[ring] * tube * np.cos(theta)
    part = surface(means, frames, np.full(len(ring), 0.6 * 2 * np.pi * tube / n_around),
                   0.6 * spacing * squeeze, None, rng)

    u = s[ring]  # position along the knot, 0..1
    albedo = hue(u * 2.0, sat=0.8, val=0.9)  # rainbow, twice round the knot (large scale)
    helix = np.cos(2 * theta + u * 2 * np.pi * 12) > 0.5  # two stripes, 12 turns (middle)
    albedo[helix] = 0.55 * albedo[helix] + 0.45  # pale stripe
    dark_ring = (u * 48) % 1.0 < 0.3  # 48 dark rings ~0.08 long, 1.5 sample gaps (fine)
    albedo[dark_ring] *= 0.3
    base = albedo * (0.6 + 0.4 * np.clip(nrm @ LIGHT, 0, 1))[:, None]  # baked diffuse
    rim_color = hue(u * 2.0 + 0.5, sat=0.6, val=1.0)  # complementary hue at grazing angles

    # The view-dependent colour, fitted by SH degree 3 over all view directions. Both terms
    # are smooth in d so degree 3 holds them fairly well: a broad highlight (cosine power 4)
    # where the view ray reflects towards the light, and a rim of the complementary hue
    # where the tube is seen edge-on.
    def view_color(d):
        facing = -(nrm @ d)  # 1 when the surface faces the camera
        reflected = d - 2 * (nrm @ d)[:, None] * nrm
        spec = np.clip(reflected @ LIGHT, 0, 1) ** 4
        rim = (1 - facing ** 2) ** 2
        return (0.85 * base + 0.3 * rim[:, None] * rim_color
                + 0.45 * spec[:, None] * np.array([1.0, 0.97, 0.9]))

    return splats(part["means"], part["frames"], part["sigmas"], part["opacity"],
                  sh=fit_sh(view_color, 3))


SCENES = {"shapes": make_shapes, "planet": make_planet, "knot": make_knot}


def main(out_dir: Path = HERE) -> None:
    for name, make in SCENES.items():
        g = make()
        path = save_ply(g, Path(out_dir) / f"{name}.ply")
        print(f"{path}: {g.count} splats, SH degree {g.sh_degree}, "
              f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
