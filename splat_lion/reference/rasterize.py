"""Reference of kernels/rasterize.cu: a brute-force per-pixel renderer with no tiles.

Each pixel composites, front to back, every visible splat whose tile rectangle covers the
pixel (the rule 3DGS's tiled renderer realises), with the same thresholds as the kernel:
alpha = min(0.99, sigmoid(o) exp(power)), alpha < 1/255 skipped, stop before T < 1e-4.
Float64 throughout; the oracle for the whole projection-binning-rasterisation pipeline.
"""

from __future__ import annotations

import numpy as np

from .binning import tile_rect


def rasterize_fwd(means2d, conics, colors, opacities, radii, depths, background, width,
                  height, tile=16):
    """image [H, W, 3], alpha [H, W], last [H, W] int32 (see kernels/rasterize.cu)."""
    means2d, conics, colors = (np.asarray(a, np.float64) for a in (means2d, conics, colors))
    opacity = 1.0 / (1.0 + np.exp(-np.asarray(opacities, np.float64)))
    radii = np.asarray(radii)
    x0, x1, y0, y1 = tile_rect(means2d, radii, width, height, tile)
    # depth order with ties by index, as the stable sort of (tile | depth bits) keys gives
    order = np.lexsort((np.arange(len(radii)), np.asarray(depths, np.float32)))
    order = order[radii[order] > 0]
    image = np.zeros((height, width, 3))
    alpha_out = np.zeros((height, width))
    last = np.zeros((height, width), np.int32)
    bg = np.asarray(background, np.float64)
    for py in range(height):
        for px in range(width):
            tx, ty = px // tile, py // tile
            cand = order[(x0[order] <= tx) & (tx < x1[order]) & (y0[order] <= ty) & (ty < y1[order])]
            d = means2d[cand] - (px + 0.5, py + 0.5)
            a, b, c = conics[cand, 0], conics[cand, 1], conics[cand, 2]
            power = -0.5 * (a * d[:, 0] ** 2 + c * d[:, 1] ** 2) - b * d[:, 0] * d[:, 1]
            alpha = np.minimum(0.99, opacity[cand] * np.exp(power))
            used = (power <= 0) & (alpha >= 1 / 255)
            alpha = np.where(used, alpha, 0.0)
            T_after = np.cumprod(1 - alpha)
            stop = np.nonzero(used & (T_after < 1e-4))[0]
            n = stop[0] if len(stop) else len(cand)  # splats walked before stopping
            T_before = np.concatenate([[1.0], T_after[:-1]])[:n]
            w = alpha[:n] * T_before
            T = T_after[n - 1] if n else 1.0
            image[py, px] = (w[:, None] * colors[cand[:n]]).sum(0) + T * bg
            alpha_out[py, px] = 1 - T
            contributed = np.nonzero(used[:n])[0]
            last[py, px] = contributed[-1] + 1 if len(contributed) else 0
    return image, alpha_out, last
