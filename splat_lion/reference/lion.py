"""Reference of kernels/lion.cu: one Lion step over a flat buffer, segment by segment."""

from __future__ import annotations

import numpy as np

from .common import bf16_to_float, float_to_bf16, segment_rows


def lion_step(params, grads, momentum, segments, hyper, beta1, beta2, visible=None,
              cautious=False):
    """Return (new_params, new_momentum); the inputs are not modified.

    For each segment s (attribute) with lr_s, wd_s = hyper[s], and each active element:
        c = b1*m + (1-b1)*g;  u = sign(c);  p -= lr_s * (u + wd_s * p);  m = b2*m + (1-b2)*g
    with `cautious`, u = u if u*g > 0 else 0 (no update against the gradient, where g = 0, or
    where c or g is NaN).
    sign(+-0) = +0 and sign(NaN) = NaN (np.sign). Active: inside the segment (not padding) and, with
    `visible`, of a visible splat; inactive elements keep p and m unchanged.
    Arithmetic in float32, in the kernel's order; bfloat16 momentum (uint16 words) is decoded
    before and rounded to nearest even after.

    params, grads: [total] float32; momentum: [total] float32 or uint16;
    segments: [S, 3] int64 (begin, end, width); hyper: [S, 2] float32; visible: [N] bool.
    """
    p = np.array(params, np.float32)
    g = np.asarray(grads, np.float32)
    bf16 = np.asarray(momentum).dtype == np.uint16
    m = bf16_to_float(momentum).copy() if bf16 else np.array(momentum, np.float32)
    b1, b2 = np.float32(beta1), np.float32(beta2)
    one = np.float32(1)
    for (begin, end, _, active), (lr, wd) in zip(segment_rows(segments, visible),
                                                 np.asarray(hyper, np.float32).reshape(-1, 2)):
        ps, gs, ms = p[begin:end], g[begin:end], m[begin:end]
        c = b1 * ms + (one - b1) * gs
        u = np.sign(c)
        if cautious:
            with np.errstate(invalid="ignore"):
                u = np.where(u * gs > 0, u, np.float32(0))
        new_p = ps - lr * (u + wd * ps)
        new_m = b2 * ms + (one - b2) * gs
        p[begin:end] = np.where(active, new_p, ps)
        m[begin:end] = np.where(active, new_m, ms)
    return p, (float_to_bf16(m) if bf16 else m)
