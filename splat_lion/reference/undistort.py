"""Reference of kernels/undistort.cu: bilinear remap of an image through a map of source
positions. Same function and arguments as splat_lion/undistort.py's `remap`, less `backend`."""

from __future__ import annotations

import numpy as np


def remap(image, source_xy):
    """(out [H2, W2, C] float64, valid [H2, W2] bool).

    image [H, W, C]; source_xy [H2, W2, 2]: (u, v) in pixel units, pixel (i, j) centred at
    (i + 0.5, j + 0.5). valid = 0 <= u <= W and 0 <= v <= H (False for NaN).
    With px = u - 0.5, py = v - 0.5, x0 = floor(px), y0 = floor(py), a = px - x0,
    b = py - y0:
        out = (1-a)(1-b) I[y0, x0] + a(1-b) I[y0, x0+1] + (1-a) b I[y0+1, x0] + a b I[y0+1, x0+1]
    with every index clamped to the image (the nearest pixel centres between the border and
    the outermost centres); out = 0 where not valid.
    """
    img = np.asarray(image, np.float64)
    src = np.asarray(source_xy, np.float64)
    h, w, _ = img.shape
    u, v = src[..., 0], src[..., 1]
    with np.errstate(invalid="ignore"):
        valid = (u >= 0) & (u <= w) & (v >= 0) & (v <= h)
    px = np.where(valid, u - 0.5, 0.0)
    py = np.where(valid, v - 0.5, 0.0)
    x0, y0 = np.floor(px), np.floor(py)
    a, b = (px - x0)[..., None], (py - y0)[..., None]
    xa, xb = np.clip(x0, 0, w - 1).astype(np.int64), np.clip(x0 + 1, 0, w - 1).astype(np.int64)
    ya, yb = np.clip(y0, 0, h - 1).astype(np.int64), np.clip(y0 + 1, 0, h - 1).astype(np.int64)
    out = ((1 - a) * (1 - b) * img[ya, xa] + a * (1 - b) * img[ya, xb]
           + (1 - a) * b * img[yb, xa] + a * b * img[yb, xb])
    out[~valid] = 0.0
    return out, valid
