"""Wrappers of kernels/ssim.cu: 3DGS's photometric loss, l1_weight·L1 + (1 − l1_weight)·(1 − SSIM),
fused (reference/ssim.py: the same functions and arguments, less `be`).

    stats = ssim_stats(target, be)                 # [H, W, C, 2]: once per target (loss.py caches)
    v_stats, partials = ssim_fwd(image, target, mask, stats, inv_count, l1_weight, be)
    value, v_image = ssim_bwd(image, target, mask, v_stats, partials, inv_count, l1_weight, be)

image, target: [H, W, C] float32; mask: [H, W] bool or None (then `stats` is required; with a
mask it must be None: the target seen through a mask depends on the image, ssim_fwd blurs it
itself); inv_count: 1 / (valid pixels · C); l1_weight: λ. ssim_fwd's v_stats [3, H, W, C]
(dL/dm_x, dL/de_xx, dL/de_xy) and partials [tiles_y · tiles_x · C] (each block's share of the
loss) share one buffer, the step's scratch; ssim_bwd's value [1] is the loss,
(1 − λ) + Σ partials, left on the device.

Outputs are views of backend workspaces (be.workspace), counted under the "loss" tag: a fit
step allocates nothing here after warm-up. Each output's buffer is kept per image shape, so it
is exactly the size needed (another shape's buffer of that output is let go); one still held
(a caller keeps last step's dL/dimage or value) is never handed out again. A buffer reused
from an earlier call counts in the memory trackers open now (memory.track) as if made here.
ssim_stats allocates (its statistics are kept with their target by loss.py).
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .backend import Backend
from .checks import check_array
from .kernels import BLOCK, TILE

# Output tile side of a block (the kernels' SSIM_TILE, passed as -D from here).
SSIM_TILE = 2 * TILE
DEFINES = {"SSIM_TILE": SSIM_TILE}
# The kernels index values with int: 3·H·W·C (v_stats) must stay below 2^31.
MAX_VALUES = (2**31 - 1) // 3


def ssim_grid(height: int, width: int, channels: int) -> tuple[int, int, int]:
    """(tiles_x, tiles_y, channels): one block per SSIM_TILE² tile and channel."""
    return -(-width // SSIM_TILE), -(-height // SSIM_TILE), channels


def num_partials(height: int, width: int, channels: int) -> int:
    """Blocks of ssim_fwd: the length of its partials."""
    tx, ty, c = ssim_grid(height, width, channels)
    return tx * ty * c


def _check_image(name: str, a, be: Backend, shape=None) -> tuple[int, int, int]:
    check_array(name, a, np.float32, shape or (None, None, None), be.xp)
    h, w, c = a.shape
    if min(h, w, c) < 1 or c > 65535 or h * w * c > MAX_VALUES:
        raise ValueError(f"{name}: expected [H, W, C] with H, W >= 1, 1 <= C <= 65535 and "
                         f"H·W·C <= {MAX_VALUES}, got {list(a.shape)}")
    return h, w, c


def _mask_arg(mask, h: int, w: int, be: Backend):
    """(uint8 mask array, has_mask) kernel arguments; a 1-byte dummy without a mask."""
    if mask is None:
        return be.table(np.zeros(1, np.uint8)), np.int32(0)
    check_array("mask", mask, np.bool_, (h, w), be.xp)
    return mask.view(np.uint8), np.int32(1)


def count_in_trackers(be: Backend, a) -> None:
    """Count `a`, an array kept from an earlier call, in the MemoryTrackers open on `be` now
    (memory.track), as they count resident optimizer state (`include`): reusing it allocates
    nothing, yet the step holds it. (Arrays made inside a tracker are counted there already.)"""
    for tracker in be.memory._scopes:
        tracker.include(a)


def _output(be: Backend, name: str, shape: tuple[int, ...]):
    """A view of output `name`'s workspace for this shape (see the module's docstring)."""
    key = f"ssim.{name}.{'x'.join(map(str, shape))}"
    be.workspaces.drop(f"ssim.{name}.", keep=key)
    out = be.workspace(key, shape, np.float32, tag="loss")
    count_in_trackers(be, out)
    return out


def _launch(name: str, h: int, w: int, c: int, args, be: Backend) -> None:
    be.launch(kernels.function("ssim", name, DEFINES, backend=be), ssim_grid(h, w, c),
              (BLOCK,), args)


def ssim_stats(target, be: Backend):
    """The target's blurred mean and second moment per channel: [H, W, C, 2] (m_y, e_yy)."""
    h, w, c = _check_image("target", target, be)
    stats = be.empty((h, w, c, 2), np.float32, tag="loss")
    _launch("ssim_stats", h, w, c,
            (target, np.int32(w), np.int32(h), np.int32(c), stats), be)
    return stats


def ssim_fwd(image, target, mask, stats, inv_count: float, l1_weight: float, be: Backend):
    """(v_stats [3, H, W, C], partials [tiles_y · tiles_x · C]): the loss's gradient with
    respect to each value's m_x, e_xx, e_xy, and each block's share of the loss."""
    h, w, c = _check_image("image", image, be)
    _check_image("target", target, be, (h, w, c))
    mask_arg, has_mask = _mask_arg(mask, h, w, be)
    if mask is None:
        if stats is None:
            raise ValueError("stats: required without a mask (ssim_stats(target))")
        check_array("stats", stats, np.float32, (h, w, c, 2), be.xp)
    else:
        if stats is not None:
            raise ValueError("stats: must be None with a mask (the kernel blurs the target "
                             "seen through the mask itself)")
        stats = be.table(np.zeros(2, np.float32))  # not read
    n, blocks = h * w * c, num_partials(h, w, c)
    scratch = _output(be, "scratch", (3 * n + blocks,))
    v_stats, partials = scratch[:3 * n].reshape(3, h, w, c), scratch[3 * n:]
    _launch("ssim_fwd", h, w, c,
            (image, target, mask_arg, has_mask, stats, np.int32(w), np.int32(h), np.int32(c),
             np.float32(inv_count), np.float32(l1_weight), v_stats, partials), be)
    return v_stats, partials


def ssim_bwd(image, target, mask, v_stats, partials, inv_count: float, l1_weight: float,
             be: Backend):
    """(value [1], v_image [H, W, C]): the loss, (1 − l1_weight) + Σ partials, and
    dL/dimage."""
    h, w, c = _check_image("image", image, be)
    _check_image("target", target, be, (h, w, c))
    mask_arg, has_mask = _mask_arg(mask, h, w, be)
    check_array("v_stats", v_stats, np.float32, (3, h, w, c), be.xp)
    blocks = num_partials(h, w, c)
    check_array("partials", partials, np.float32, (blocks,), be.xp)
    value = _output(be, "value", (1,))
    v_image = _output(be, "v_image", (h, w, c))
    _launch("ssim_bwd", h, w, c,
            (image, target, mask_arg, has_mask, v_stats, partials, np.int32(blocks),
             np.int32(w), np.int32(h), np.int32(c), np.float32(inv_count),
             np.float32(l1_weight), value, v_image), be)
    return value, v_image
