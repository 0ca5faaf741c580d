"""Reference of kernels/project.cu: per-splat projection and SH colour, forward and backward.

Forward, per splat (float64, vectorised):
    t = W μ + T                                      camera coordinates (OpenCV axes)
    culled if t.z < near or t.z > far
    Σ = R S Sᵀ Rᵀ, R from the normalised quaternion (w, x, y, z), S = diag(exp(scales))
    u = clamp(t.x / t.z, ±1.3·tan_fov_x), v = clamp(t.y / t.z, ±1.3·tan_fov_y)
    J = [[fx/z, 0, -fx·u/z], [0, fy/z, -fy·v/z]]   (the EWA Jacobian, clamped as 3DGS)
    Σ2 = J W Σ Wᵀ Jᵀ + 0.3·I                         (0.3 px low-pass)
    culled if det(Σ2) <= 0
    conic = Σ2⁻¹ as (A, B, C); mean2d = (fx·x/z + cx, fy·y/z + cy); depth = z
    radius = ceil(3·sqrt(λmax)), λmax = mid + sqrt(max(0.1, mid² - det)), mid = (a + c)/2
    tiles: [floor((m - r)/T), ceil((m + r)/T)) clamped to the grid; culled if empty
    colour = max(Σ_k Y_k(d)·sh_k + 0.5, 0), d = normalise(μ - camera centre), degree ≤ 3
Culled splats have radius 0, tiles_touched 0 and zeros elsewhere.

Backward: the gradient of a scalar loss through project_fwd, given its gradients with
respect to means2d, conics and colors: here by central finite differences of the forward
pass in float64 (slow, exact to ~1e-7): the definition the kernel's analytic backward is
tested against.
"""

from __future__ import annotations

import numpy as np

from ..quaternion import quat_to_rotmat
from ..sh import SH_C0, sh_coeffs

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


def project_fwd(means, scales, quats, sh0, shN, viewmat, fx, fy, cx, cy, width, height,  # noqa: N803
                near, far, sh_degree, tile=16) -> dict[str, np.ndarray]:
    """means [N,3], scales [N,3] (log σ), quats [N,4], sh0 [N,1,3], shN [N,K-1,3];
    viewmat [4,4]. Returns radii [N] int32, means2d [N,2], depths [N], conics [N,3],
    colors [N,3], tiles_touched [N] int32 (float64 arrays)."""
    means, scales, quats = (np.asarray(a, np.float64) for a in (means, scales, quats))
    sh = np.concatenate([np.asarray(sh0, np.float64).reshape(-1, 1, 3),
                         np.asarray(shN, np.float64).reshape(len(means), -1, 3)], 1)
    V = np.asarray(viewmat, np.float64)
    W, T = V[:3, :3], V[:3, 3]
    t = means @ W.T + T
    x, y, z = t[:, 0], t[:, 1], t[:, 2]
    visible = (z >= near) & (z <= far)
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
    grid_x, grid_y = -(-width // tile), -(-height // tile)
    x0 = np.clip(np.floor((means2d[:, 0] - radii) / tile), 0, grid_x)
    x1 = np.clip(np.ceil((means2d[:, 0] + radii) / tile), 0, grid_x)
    y0 = np.clip(np.floor((means2d[:, 1] - radii) / tile), 0, grid_y)
    y1 = np.clip(np.ceil((means2d[:, 1] + radii) / tile), 0, grid_y)
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


def project_bwd(means, scales, quats, sh0, shN, viewmat, fx, fy, cx, cy, width, height,  # noqa: N803
                near, far, sh_degree, v_means2d, v_conics, v_colors, eps=1e-6, tile=16):
    """Gradients (v_means [N,3], v_scales [N,3], v_quats [N,4], v_sh0 [N,1,3], v_shN) of
    L = Σ v_means2d·means2d + Σ v_conics·conics + Σ v_colors·colors, by central
    differences of project_fwd in float64."""
    args = [np.array(a, np.float64) for a in (means, scales, quats, sh0, shN)]
    rest = (viewmat, fx, fy, cx, cy, width, height, near, far, sh_degree, tile)

    def loss(arrays) -> float:
        out = project_fwd(*arrays, *rest)
        return float((out["means2d"] * v_means2d).sum() + (out["conics"] * v_conics).sum()
                     + (out["colors"] * v_colors).sum())

    grads = []
    for a in args:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss(args)
            a[idx] = old - eps
            down = loss(args)
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return tuple(grads)
