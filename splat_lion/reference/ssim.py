"""Reference of kernels/ssim.cu: 3DGS's photometric loss λ·L1 + (1 − λ)·(1 − SSIM), fused.

Same functions and arguments as splat_lion/ssim.py, less the backend `be`. Float64 NumPy.

Per channel, with w the 11-tap Gaussian (σ = 1.5) and "∗" its separable correlation with zero
padding ("same" size); x = image, y' = the target with its masked-out pixels replaced by x
(held constant), y' = target without a mask:
    m_x = w∗x, e_xx = w∗x², e_xy = w∗(x y'), m_y = w∗y', e_yy = w∗y'²
    s_x = e_xx − m_x², s_y = e_yy − m_y², s_xy = e_xy − m_x m_y
    S = (2 m_x m_y + C1)(2 s_xy + C2) / ((m_x² + m_y² + C1)(s_x + s_y + C2))
Each value weighs v = inv_count where valid, 0 where masked out (inv_count = 1 / (valid
pixels · C)), and
    L = (1 − λ) + Σ v (λ |x − y'| − (1 − λ) S)
    dL/dx = w∗(dL/dm_x) + 2x·w∗(dL/de_xx) + y'·w∗(dL/de_xy) + λ v sign(x − y'),
with dL/dq = −(1 − λ) v ∂S/∂q for q in (m_x, e_xx, e_xy) (loss.py's docstring).
"""

from __future__ import annotations

import numpy as np

from ..loss import SSIM_C1, SSIM_C2, gaussian_window
from ..ssim import SSIM_TILE


def _blur(a):
    """[H, W, C] correlated with the Gaussian window along H then W, zero padding, same size."""
    w = gaussian_window()
    r = len(w) // 2
    h, wd = a.shape[:2]
    rows = np.pad(a, ((r, r), (0, 0), (0, 0)))
    a = sum(w[k] * rows[k:k + h] for k in range(len(w)))
    cols = np.pad(a, ((0, 0), (r, r), (0, 0)))
    return sum(w[k] * cols[:, k:k + wd] for k in range(len(w)))


def _seen(image, target, mask):
    """(x, y', valid [H, W, 1] bool) in float64."""
    x = np.asarray(image, np.float64)
    y = np.asarray(target, np.float64)
    if mask is None:
        return x, y, np.ones(x.shape[:2] + (1,), bool)
    valid = np.asarray(mask, bool)[:, :, None]
    return x, np.where(valid, y, x), valid


def ssim_stats(target):
    """[H, W, C, 2]: (m_y, e_yy) = (w∗y, w∗y²) of the target."""
    y = np.asarray(target, np.float64)
    return np.stack([_blur(y), _blur(y * y)], axis=-1)


def ssim_fwd(image, target, mask, stats, inv_count, l1_weight):
    """(v_stats [3, H, W, C]: dL/dm_x, dL/de_xx, dL/de_xy; partials [tiles_y·tiles_x·C]: the
    sum of v (λ |x − y'| − (1 − λ) S) over each SSIM_TILE² tile of each channel, ordered
    channel, tile row, tile column)."""
    x, y, valid = _seen(image, target, mask)
    mx, exx, exy = _blur(x), _blur(x * x), _blur(x * y)
    if mask is None:
        my, eyy = stats[..., 0], stats[..., 1]
    else:
        my, eyy = _blur(y), _blur(y * y)
    sx, sy, sxy = exx - mx**2, eyy - my**2, exy - mx * my
    a1, a2 = 2 * mx * my + SSIM_C1, 2 * sxy + SSIM_C2
    b1, b2 = mx**2 + my**2 + SSIM_C1, sx + sy + SSIM_C2
    s = a1 * a2 / (b1 * b2)
    v = np.where(valid, inv_count, 0.0)
    dl_ds = -(1 - l1_weight) * v
    v_stats = np.stack([
        dl_ds * (2 * my * (a2 - a1) / (b1 * b2) + 2 * mx * s * (1 / b2 - 1 / b1)),
        dl_ds * (-s / b2),
        dl_ds * (2 * a1 / (b1 * b2)),
    ])
    share = v * (l1_weight * np.abs(x - y) - (1 - l1_weight) * s)  # [H, W, C]
    h, w, c = share.shape
    ty, tx = -(-h // SSIM_TILE), -(-w // SSIM_TILE)
    padded = np.zeros((ty * SSIM_TILE, tx * SSIM_TILE, c))
    padded[:h, :w] = share
    tiles = padded.reshape(ty, SSIM_TILE, tx, SSIM_TILE, c).sum(axis=(1, 3))  # [ty, tx, C]
    return v_stats, tiles.transpose(2, 0, 1).ravel()


def ssim_bwd(image, target, mask, v_stats, partials, inv_count, l1_weight):
    """(value [1]: (1 − λ) + Σ partials, v_image [H, W, C]: dL/dimage)."""
    x, y, valid = _seen(image, target, mask)
    v_mx, v_exx, v_exy = (np.asarray(a, np.float64) for a in v_stats)
    v_l1 = np.where(valid, l1_weight * inv_count, 0.0) * np.sign(x - y)
    v_image = _blur(v_mx) + 2 * x * _blur(v_exx) + y * _blur(v_exy) + v_l1
    value = (1 - l1_weight) + np.sum(np.asarray(partials, np.float64))
    return np.array([value]), v_image
