"""Quaternions (w, x, y, z), Hamilton convention, as 3DGS stores rotations: the one home of
the quaternion -> rotation matrix formula, for NumPy and CuPy arrays alike (`xp`).

    R = quat_to_rotmat(quats)            # [N, 4] -> [N, 3, 3], normalised first
    R = quat_to_rotmat(q, cupy)          # on the GPU
"""

from __future__ import annotations

import numpy as np


def quat_to_rotmat(quats, xp=np):
    """[..., 3, 3] rotation matrices of quaternions [..., 4] (w, x, y, z), normalised here.
    A zero quaternion gives NaN: callers that read untrusted input check the norm first."""
    q = quats / xp.linalg.norm(quats, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return xp.stack([
        xp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        xp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        xp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
