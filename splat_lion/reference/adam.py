"""Reference of kernels/adam.cu: one Adam step (torch.optim.Adam's math) over a flat buffer."""

from __future__ import annotations

import numpy as np

from .common import segment_rows


def adam_step(params, grads, exp_avg, exp_avg_sq, segments, hyper, beta1, beta2, eps, step,
              visible=None):
    """Return (new_params, new_exp_avg, new_exp_avg_sq); the inputs are not modified.

    `step` is t, the 1-based count of this update. For each segment s with lr_s, wd_s =
    hyper[s], and each active element (as in lion_step):
        g' = g + wd_s*p;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2
        p -= (lr_s / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    Arithmetic in float32 in the kernel's order; the bias corrections 1/(1 - b1^t) and
    1/sqrt(1 - b2^t) in float64, rounded once to float32 (what the kernel receives).

    params, grads, exp_avg, exp_avg_sq: [total] float32; segments: [S, 3] int64;
    hyper: [S, 2] float32; visible: [N] bool.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    t, b1_64, b2_64 = np.float64(step), np.float64(beta1), np.float64(beta2)
    inv_bc1 = np.float32(1 / (1 - b1_64**t))
    inv_sqrt_bc2 = np.float32(1 / np.sqrt(1 - b2_64**t))
    p = np.array(params, np.float32)
    g = np.asarray(grads, np.float32)
    m = np.array(exp_avg, np.float32)
    v = np.array(exp_avg_sq, np.float32)
    b1, b2, eps32 = np.float32(beta1), np.float32(beta2), np.float32(eps)
    one = np.float32(1)
    for (begin, end, _, active), (lr, wd) in zip(segment_rows(segments, visible),
                                                 np.asarray(hyper, np.float32).reshape(-1, 2)):
        ps, gs, ms, vs = p[begin:end], g[begin:end], m[begin:end], v[begin:end]
        grad = gs + wd * ps
        new_m = b1 * ms + (one - b1) * grad
        new_v = b2 * vs + (one - b2) * grad * grad
        denom = np.sqrt(new_v) * inv_sqrt_bc2 + eps32
        new_p = ps - (lr * inv_bc1) * new_m / denom
        p[begin:end] = np.where(active, new_p, ps)
        m[begin:end] = np.where(active, new_m, ms)
        v[begin:end] = np.where(active, new_v, vs)
    return p, m, v

