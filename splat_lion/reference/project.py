"""Reference of kernels/project.cu: per-splat projection and SH colour.

project_fwd(means, scales, quats, sh0, shN, camera, sh_degree) is splat_lion/project.py's
project_fwd(g, camera, sh_degree) with the Gaussians `g` given as its fields g.means, ...,
g.shN (stored, pre-activation values; float64 arrays so that finite differences can
perturb them).

Forward, per splat (float64, vectorised):
    t = W μ + T                                      camera coordinates (OpenCV axes)
    culled if t.z < near or t.z > far
    Σ = R S Sᵀ Rᵀ, R from the normalised quaternion (w, x, y, z), S = diag(exp(scales))
    u = clamp(t.x / t.z, ±1.3·tan_fov_x), v = clamp(t.y / t.z, ±1.3·tan_fov_y)
    J = [[fx/z, 0, -fx·u/z], [0, fy/z, -fy·v/z]]   (the EWA Jacobian, clamped as 3DGS)
    Σ2 = J W Σ Wᵀ Jᵀ + 0.3·I                         (0.3 px low-pass)
    culled if det(Σ2) <= 0
    conic = Σ2⁻¹ as (A, B, C); mean2d = (fx·x/z + cx, fy·y/z + cy); depth = z
    radius = min(ceil(3·sqrt(λmax)), MAX_RADIUS), λmax = mid + sqrt(max(0.1, mid² - det)),
    mid = (a + c)/2 (a NaN radius culls the splat)
    tiles: reference/binning.py's tile_rect of (mean2d, radius); culled if it is empty
    colour = max(Σ_k Y_k(d)·sh_k + 0.5, 0), d = normalise(μ - camera centre), degree ≤ 3
Culled splats have radius 0, tiles_touched 0 and zeros elsewhere.

Backward (the project_bwd kernel) has no NumPy function here: its oracle is float64 central
differences of project_fwd (tests/conftest.py, finite_differences). An analytic reference
would repeat the kernel's chain rule through the EWA Jacobian, the quaternion and the SH
basis, as long as the kernel and no easier to trust; the difference quotient of this
forward pass is the definition itself, exact to ~1e-7 in float64.
"""

from __future__ import annotations

import numpy as np

from ..quaternion import quat_to_rotmat
from ..sh import SH_C0, sh_coeffs, sh_degree_of
from .binning import tile_rect

MAX_RADIUS = 2.0**24  # kernels/project.cu's: a capped radius covers any image

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """[N, (degree+1)²] real SH basis of 3DGS at unit directions dirs [N, 3]."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    out = [np.full_like(x, SH_C0)]
    if degree > 0:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        out += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy),
                SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree > 2:
        out += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z,
                SH_C3[2] * y * (4 * zz - xx - yy), SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
                SH_C3[4] * x * (4 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
                SH_C3[6] * x * (xx - 3 * yy)]
    return np.stack(out, 1)


def project_fwd(means, scales, quats, sh0, shN, camera, sh_degree=None) -> dict:
    """means [N,3], scales [N,3] (log σ), quats [N,4], sh0 [N,1,3], shN [N,K-1,3] (K-1 may
    be 0); camera: a splat_lion.cameras.Camera; sh_degree: the degree evaluated, at most
    the scene's (None: the scene's, from K). Returns radii [N] int32, means2d [N,2],
    depths [N], conics [N,3], colors [N,3] (float64), tiles_touched [N] int32."""
    means, scales, quats = (np.asarray(a, np.float64) for a in (means, scales, quats))
    sh = np.concatenate([np.asarray(sh0, np.float64).reshape(-1, 1, 3),
                         np.asarray(shN, np.float64).reshape(len(means), -1, 3)], 1)
    if sh_degree is None:
        sh_degree = sh_degree_of(sh.shape[1])
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    width, height = camera.width, camera.height
    V = np.asarray(camera.viewmat, np.float64)
    W, T = V[:3, :3], V[:3, 3]
    t = means @ W.T + T
    x, y, z = t[:, 0], t[:, 1], t[:, 2]
    visible = (z >= camera.near) & (z <= camera.far)
    zs = np.where(visible, z, 1.0)  # culled splats: any finite value, zeroed below

    R = quat_to_rotmat(quats)
    M = R * np.exp(scales)[:, None, :]  # R S
    cov_cam = W @ (M @ M.transpose(0, 2, 1)) @ W.T
    lim_x, lim_y = 1.3 * 0.5 * width / fx, 1.3 * 0.5 * height / fy
    u = np.clip(x / zs, -lim_x, lim_x)
    v = np.clip(y / zs, -lim_y, lim_y)
    J = np.zeros((len(means), 2, 3))
    J[:, 0, 0] = fx / zs
    J[:, 0, 2] = -fx * u / zs
    J[:, 1, 1] = fy / zs
    J[:, 1, 2] = -fy * v / zs
    cov2 = J @ cov_cam @ J.transpose(0, 2, 1) + 0.3 * np.eye(2)
    a, b, c = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    det = a * c - b * b
    visible &= det > 0
    det = np.where(visible, det, 1.0)
    conics = np.stack([c / det, -b / det, a / det], 1)
    means2d = np.stack([fx * x / zs + cx, fy * y / zs + cy], 1)
    mid = 0.5 * (a + c)
    radii = np.ceil(3 * np.sqrt(mid + np.sqrt(np.maximum(0.1, mid * mid - det))))
    visible &= radii > 0  # NaN: culled
    radii = np.minimum(np.where(visible, radii, 0.0), MAX_RADIUS)
    x0, x1, y0, y1 = tile_rect(means2d, radii, width, height)
    tiles = (x1 - x0) * (y1 - y0)
    visible &= tiles > 0

    campos = -W.T @ T
    d = means - campos
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    k = sh_coeffs(sh_degree)
    colors = np.maximum(np.einsum("nk,nkc->nc", sh_basis(d, sh_degree), sh[:, :k]) + 0.5, 0)

    vis = visible[:, None]
    return {"radii": np.where(visible, radii, 0).astype(np.int32),
            "means2d": np.where(vis, means2d, 0.0), "depths": np.where(visible, z, 0.0),
            "conics": np.where(vis, conics, 0.0), "colors": np.where(vis, colors, 0.0),
            "tiles_touched": np.where(visible, tiles, 0).astype(np.int32)}

