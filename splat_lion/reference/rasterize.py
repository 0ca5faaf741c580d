"""Reference of kernels/rasterize.cu: front-to-back alpha compositing, pixel by pixel.

Same functions and arguments as splat_lion/rasterize.py, less the backend `be` (and the
test-only `defines`). Float64 throughout, a Python loop over pixels: for small images.

Forward. Pixel (px, py), sampled at its centre p = (px + 0.5, py + 0.5), walks the splats of
its tile t, ids[ranges[t, 0]:ranges[t, 1]] (front to back after binning), in that order:
    d = mean2d - p;  power = -(A dx² + C dy²)/2 - B dx dy      (conic = (A, B, C))
    skipped if power > 0;  alpha = min(0.99, sigmoid(opacity) exp(power));
    skipped if alpha < 1/255;  the walk stops before the splat that would take T below 1e-4
    image = Σ_i c_i alpha_i T_i + T_final background,  T_i = Π_{j<i} (1 - alpha_j)
    alpha_out = 1 - T_final;  last = splats walked up to and including the last contributor
With depths z [N] (project_fwd's view-space z), from the same walk, w_i = alpha_i T_i:
    depth = Σ_i w_i z_i / alpha_out where alpha_out > 0, else 0   (expected depth, normalised)
    median_depth = z_i of the first splat with T_{i+1} < 0.5, else 0 (T stays >= 0.5)

Backward. Given g = dL/dimage and g_alpha = dL/dalpha_out at the pixel, over the splats that
contributed (those passing the thresholds among the first `last` of its tile):
    dL/dc_i     = alpha_i T_i g
    dL/dalpha_i = T_i c_i·g - (Σ_{k>i} alpha_k T_k c_k·g + T_final background·g) / (1 - alpha_i)
                  + g_alpha T_final / (1 - alpha_i)
then through alpha = min(0.99, sigmoid(o) exp(power)) (no gradient where the 0.99 clamp
holds) to power, hence mean2d and conic, and to the opacity logit o; summed over pixels.
With g_depth = dL/ddepth: depth = D / alpha_out with D = Σ_i w_i z_i, so g_D = g_depth /
alpha_out and g_alpha gains -g_depth D / alpha_out²; D is composited as a fourth colour
channel z over a background of depth 0: c_i·g above becomes c_i·g + z_i g_D, and
    dL/dz_i = alpha_i T_i g_D
This is the direct sum; the kernel computes the same with 3DGS's back-to-front recurrence.
"""

from __future__ import annotations

import numpy as np

from ..kernels import TILE, num_tiles


def _tile_splats(ranges, ids, width, height):
    """For every pixel: (px, py, the ids of its tile's splats in order)."""
    tiles_x, _ = num_tiles(width, height)
    for py in range(height):
        for px in range(width):
            start, end = ranges[(py // TILE) * tiles_x + px // TILE]
            yield px, py, ids[start:end]


def _splats_at(px, py, k, means2d, conics, opacities):
    """At pixel (px, py), for splats k: d [K, 2], gauss = exp(min(power, 0)) [K],
    sigmoid(opacity) [K], raw alpha [K], alpha [K] (0 where skipped)."""
    d = means2d[k] - (px + 0.5, py + 0.5)
    a, b, c = conics[k, 0], conics[k, 1], conics[k, 2]
    power = -0.5 * (a * d[:, 0] ** 2 + c * d[:, 1] ** 2) - b * d[:, 0] * d[:, 1]
    gauss = np.exp(np.minimum(power, 0.0))
    sigma = 1.0 / (1.0 + np.exp(-opacities[k]))
    raw = sigma * gauss
    alpha = np.minimum(0.99, raw)
    used = (power <= 0) & (alpha >= 1 / 255)
    return d, gauss, sigma, raw, np.where(used, alpha, 0.0)


def _float64(*arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


def rasterize_fwd(ranges, ids, means2d, conics, colors, opacities, background, width, height,
                  depths=None):
    """(image [H, W, 3], alpha [H, W], last [H, W] int32), and with depths [N] also
    (depth [H, W], median_depth [H, W]).

    ranges [T, 2] int32 and ids [M] int32 from binning; means2d [N, 2], conics [N, 3],
    colors [N, 3], opacities [N] (logits), background [3]; depths [N] view-space z.
    """
    means2d, conics, colors, opacities, bg = _float64(means2d, conics, colors, opacities,
                                                      background)
    z = None if depths is None else np.asarray(depths, np.float64)
    image = np.zeros((height, width, 3))
    alpha_out = np.zeros((height, width))
    last = np.zeros((height, width), np.int32)
    depth = np.zeros((height, width))
    median = np.zeros((height, width))
    for px, py, k in _tile_splats(ranges, ids, width, height):
        _, _, _, _, alpha = _splats_at(px, py, k, means2d, conics, opacities)
        T_after = np.cumprod(1 - alpha)
        stop = np.nonzero((alpha > 0) & (T_after < 1e-4))[0]
        n = stop[0] if len(stop) else len(k)  # splats walked before the stop
        T_before = np.concatenate([[1.0], T_after[:-1]])[:n]
        T = T_after[n - 1] if n else 1.0
        w = alpha[:n] * T_before
        image[py, px] = (w[:, None] * colors[k[:n]]).sum(0) + T * bg
        alpha_out[py, px] = 1 - T
        contributed = np.nonzero(alpha[:n])[0]
        last[py, px] = contributed[-1] + 1 if len(contributed) else 0
        if z is not None:
            depth[py, px] = (w * z[k[:n]]).sum() / (1 - T) if T < 1 else 0.0
            below = np.nonzero(T_after[:n] < 0.5)[0]  # the first is a contributor
            median[py, px] = z[k[below[0]]] if len(below) else 0.0
    if z is None:
        return image, alpha_out, last
    return image, alpha_out, last, depth, median


def rasterize_bwd(ranges, ids, means2d, conics, colors, opacities, background, width, height,
                  alpha, last, v_image, v_alpha, depths=None, depth=None, v_depth=None):
    """Gradients {means2d [N, 2], conics [N, 3], colors [N, 3], opacities [N] (logits)} of a
    loss, given its gradients v_image [H, W, 3] and v_alpha [H, W] with respect to
    rasterize_fwd's image and alpha. `last` [H, W] is the forward pass's; `alpha` (the
    kernel reads T_final = 1 - alpha) is accepted for the wrapper's signature, the
    transmittances are recomputed here in float64. With depths [N] and v_depth [H, W]
    (dL/ddepth of the normalised expected depth) also "depths" [N]; `depth` (the kernel
    reads the forward pass's) is accepted likewise and recomputed."""
    means2d, conics, colors, opacities, bg = _float64(means2d, conics, colors, opacities,
                                                      background)
    v_image, v_alpha = _float64(v_image, v_alpha)
    n = len(means2d)
    out = {"means2d": np.zeros((n, 2)), "conics": np.zeros((n, 3)), "colors": np.zeros((n, 3)),
           "opacities": np.zeros(n)}
    if depths is not None:
        z, v_depth = _float64(depths, v_depth)
        out["depths"] = np.zeros(n)
    for px, py, k in _tile_splats(ranges, ids, width, height):
        k = k[:last[py, px]]
        d, gauss, sigma, raw, a = _splats_at(px, py, k, means2d, conics, opacities)
        T = np.concatenate([[1.0], np.cumprod(1 - a)])
        T_before, T_final = T[:-1], T[-1]
        g = v_image[py, px]
        w = a * T_before  # each splat's weight in the pixel's colour (0 if skipped)
        c_g = colors[k] @ g  # c_i·g, and with depth + z_i g_D
        g_alpha = v_alpha[py, px]
        if depths is not None and T_final < 1:
            g_D = v_depth[py, px] / (1 - T_final)
            g_alpha -= g_D * (w * z[k]).sum() / (1 - T_final)
            c_g = c_g + z[k] * g_D
            np.add.at(out["depths"], k, w * g_D)
        cg = w * c_g
        behind = cg[::-1].cumsum()[::-1] - cg  # Σ_{k>i} alpha_k T_k c_k·g
        g_a = (T_before * c_g - (behind + T_final * (bg @ g)) / (1 - a)
               + g_alpha * T_final / (1 - a))
        g_raw = np.where((a > 0) & (raw < 0.99), g_a, 0.0)
        g_power = g_raw * sigma * gauss
        dx, dy = d[:, 0], d[:, 1]
        A, B, C = conics[k, 0], conics[k, 1], conics[k, 2]
        np.add.at(out["colors"], k, w[:, None] * g)
        np.add.at(out["means2d"], k, g_power[:, None] * np.stack([-(A * dx + B * dy),
                                                                  -(C * dy + B * dx)], 1))
        np.add.at(out["conics"], k, g_power[:, None] * np.stack([-0.5 * dx * dx, -dx * dy,
                                                                 -0.5 * dy * dy], 1))
        np.add.at(out["opacities"], k, g_raw * gauss * sigma * (1 - sigma))
    return out
