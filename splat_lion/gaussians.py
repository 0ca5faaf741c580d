"""Gaussians: N splats on the flat layout (DESIGN §4), with their activations.

    g = Gaussians.from_points(points, colors, sh_degree=3)    # 3DGS initialisation
    g.means            # [N, 3] view into g.params.data (one flat float32 buffer)
    g.scale_values()   # [N, 3] exp(scales): standard deviations
    g.to("cpu")        # the same splats on another backend

Stored values are pre-activation, as in 3DGS PLY files: scales = log σ, opacities = logit,
quats = unnormalised (w, x, y, z), sh0/shN = spherical-harmonic coefficients with
colour = SH_C0 * sh0 + 0.5 at degree 0. Properties a PLY file carried beyond the 3DGS ones
are kept in `extra` (name -> [N] array) and written back on save.
"""

from __future__ import annotations

import numpy as np

from .backend import Backend, backend_of, get_backend
from .layout import Flat, Layout
from .sh import DEGREES, SH_C0, empty_shN, rgb_to_sh0, sh_rest


class Gaussians:
    """N Gaussian splats: one flat parameter buffer (`params`) read by attribute."""

    def __init__(self, params: Flat, sh_degree: int, extra: dict[str, np.ndarray] | None = None):
        expected = Layout.gaussians(params.layout.count, sh_degree)
        if params.layout != expected:
            raise ValueError(f"params layout {params.layout!r} is not the Gaussian layout "
                             f"for SH degree {sh_degree}")
        self.params = params
        self.sh_degree = sh_degree
        self.extra = {} if extra is None else dict(extra)
        for name, a in self.extra.items():
            if np.asarray(a).shape != (self.count,):
                raise ValueError(f"extra property {name!r}: expected shape [{self.count}], "
                                 f"got {list(np.asarray(a).shape)}")

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, means, scales, quats, opacities, sh0, shN=None, *,
                    extra: dict[str, np.ndarray] | None = None,
                    backend: Backend | None = None) -> "Gaussians":
        """From stored (pre-activation) values: means [N,3], scales [N,3] (log σ),
        quats [N,4] (w,x,y,z), opacities [N] (logit), sh0 [N,1,3] or [N,3], shN [N,K-1,3]."""
        be = backend or get_backend()
        means = np.asarray(means)
        if means.ndim != 2 or means.shape[1] != 3:
            raise ValueError(f"means: expected shape [N, 3], got {list(means.shape)}")
        n = means.shape[0]
        sh0 = np.asarray(sh0)
        if sh0.shape == (n, 3):
            sh0 = sh0.reshape(n, 1, 3)
        degree = 0
        if shN is not None:
            shN = np.asarray(shN)
            rows = {sh_rest(d): d for d in DEGREES if d}  # shN rows -> SH degree
            if shN.ndim != 3 or shN.shape[1] not in rows:
                raise ValueError(f"shN: expected [N, K-1, 3] with K in 4, 9, 16 (or None), got "
                                 f"shape {list(shN.shape)}")
            degree = rows[shN.shape[1]]
        layout = Layout.gaussians(n, degree)
        values = {"means": means, "scales": scales, "quats": quats, "opacities": opacities,
                  "sh0": sh0, "shN": shN}
        host = np.zeros(layout.total, np.float32)
        for name, shape in layout.attributes:
            a = np.asarray(values[name])
            if a.shape != (n, *shape):
                raise ValueError(f"{name}: expected shape {[n, *shape]}, got {list(a.shape)}")
            layout.view(host, name)[...] = a
        return cls(Flat(layout, be.asarray(host, tag="params")), degree, extra)

    @classmethod
    def from_points(cls, points, colors, sh_degree: int = 3, opacity: float = 0.1, *,
                    backend: Backend | None = None) -> "Gaussians":
        """3DGS initialisation from a point cloud: points [N,3], colors [N,3]: floats in
        [0, 1], or uint8 in 0..255 (anything else is an error: 0-255 floats would silently
        saturate). Isotropic scale = sqrt of the mean squared distance to the 3 nearest
        neighbours (k-d tree, O(N log N)), identity rotation, the given opacity, sh0 from the
        colour."""
        points = np.asarray(points, np.float64)
        colors = _unit_colors(colors)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points: expected shape [N, 3], got {list(points.shape)}")
        if colors.shape != points.shape:
            raise ValueError(f"colors: expected shape {list(points.shape)}, got "
                             f"{list(colors.shape)}")
        if not 0.0 < opacity < 1.0:
            raise ValueError(f"opacity must lie in (0, 1), got {opacity}")
        n = points.shape[0]
        dist2 = mean_sq_dist_to_neighbours(points, 3)
        log_sigma = 0.5 * np.log(np.maximum(dist2, 1e-7))
        rest = sh_rest(sh_degree)
        return cls.from_arrays(
            points, np.repeat(log_sigma[:, None], 3, 1),
            np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), np.full(n, np.log(opacity / (1 - opacity))),
            rgb_to_sh0(colors).reshape(n, 1, 3),
            np.zeros((n, rest, 3)) if rest else None, backend=backend)

    @classmethod
    def random(cls, count: int, sh_degree: int = 3, box: float = 1.0, seed: int = 0, *,
               backend: Backend | None = None) -> "Gaussians":
        """`count` splats with random positions in [-box, box]^3 and random colours,
        initialised as from_points does."""
        rng = np.random.default_rng(seed)
        return cls.from_points(rng.uniform(-box, box, (count, 3)), rng.uniform(0, 1, (count, 3)),
                               sh_degree, backend=backend)

    # -- attributes ------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        return self.params.layout

    @property
    def count(self) -> int:
        return self.params.layout.count

    def __len__(self) -> int:
        return self.count

    def __getattr__(self, name: str):
        if name in ("means", "scales", "quats", "opacities", "sh0", "shN"):
            if name == "shN" and self.sh_degree == 0:
                return empty_shN(self.params.data, self.count)
            return self.params[name]
        raise AttributeError(name)

    @property
    def backend(self) -> Backend:
        return backend_of(self.params.data)

    # -- activations -----------------------------------------------------------------------
    def scale_values(self):
        """[N, 3] standard deviations: exp(scales)."""
        return self.backend.xp.exp(self.scales)

    def opacity_values(self):
        """[N] opacities in (0, 1): sigmoid(opacities)."""
        return 1.0 / (1.0 + self.backend.xp.exp(-self.opacities))

    def rotations(self):
        """[N, 4] unit quaternions (w, x, y, z)."""
        q = self.quats
        return q / self.backend.xp.linalg.norm(q, axis=1, keepdims=True)

    def base_colors(self):
        """[N, 3] view-independent colour: SH_C0 * sh0 + 0.5 (unclamped)."""
        return SH_C0 * self.sh0[:, 0, :] + 0.5

    def extent(self) -> float:
        """Scene extent for the lr table: 1.1 x the radius around the means' median that
        holds 99% of them (3DGS uses the cameras; this needs only the splats, and a few
        stray splats do not inflate it)."""
        m = self.backend.to_numpy(self.means).astype(np.float64)
        if len(m) == 0:
            return 1.0
        r = np.percentile(np.linalg.norm(m - np.median(m, axis=0), axis=1), 99)
        return float(1.1 * r) if r > 0 else 1.0

    # -- moving ------------------------------------------------------------------------------
    def to(self, backend: str | Backend) -> "Gaussians":
        """The same splats on `backend` ("cpu", "cuda" or a Backend); a copy."""
        be = get_backend(backend) if isinstance(backend, str) else backend
        data = be.asarray(self.backend.to_numpy(self.params.data).copy(), tag="params")
        return Gaussians(Flat(self.layout, data), self.sh_degree, self.extra)

    def __repr__(self) -> str:
        return (f"Gaussians({self.count} splats, SH degree {self.sh_degree}, "
                f"{self.backend.name}{', extra: ' + ', '.join(self.extra) if self.extra else ''})")


def _unit_colors(colors) -> np.ndarray:
    """Colours as float64 in [0, 1]: floats in [0, 1] as they are, uint8 divided by 255."""
    colors = np.asarray(colors)
    if colors.dtype == np.uint8:
        return colors.astype(np.float64) / 255.0
    if colors.dtype.kind != "f":
        raise ValueError(f"colors: expected floats in [0, 1] or uint8 in 0..255, got dtype "
                         f"{colors.dtype}: convert with colors.astype(np.uint8) or / 255")
    if colors.size and not (np.isfinite(colors).all() and colors.min() >= 0
                            and colors.max() <= 1):
        raise ValueError(f"colors: float colours must lie in [0, 1], got {colors.min():g} .. "
                         f"{colors.max():g}: divide 0..255 colours by 255 (or pass them as "
                         "uint8)")
    return colors.astype(np.float64)


def mean_sq_dist_to_neighbours(points: np.ndarray, k: int = 3) -> np.ndarray:
    """[N] mean squared distance from each point to its k nearest other points (k-d tree);
    fewer neighbours when N <= k, and 1.0 for a lone point."""
    from scipy.spatial import cKDTree  # here: importing it takes 0.2 s

    n = len(points)
    if n < 2:
        return np.ones(n)
    kk = min(k, n - 1)
    dist, _ = cKDTree(points).query(points, k=kk + 1)  # the first neighbour is the point
    return np.mean(dist[:, 1:] ** 2, axis=1)
