"""Image losses with their gradients: L1, SSIM, PSNR, and 3DGS's 0.8·L1 + 0.2·(1 − SSIM).

    value, grad = photometric_loss(image, target)   # grad: dL/dimage, same shape [H, W, 3]
    value, grad = photometric_loss(image, target, mask)   # only where mask [H, W] is True
    float(value)                                    # the one host read (a sync on CuPy)

photometric_loss, the training loss, runs the fused kernels of kernels/ssim.cu (splat_lion/
ssim.py) on either backend: two launches a step, three the first time a target is seen, and
no host sync: `value` is a 0-d float32 array on the images' device (NumPy on the cpu backend);
read it with float(value) only when needed. The target's blurred mean and second moment (the
SSIM statistics that do not depend on the image) are computed once per target array and kept
while it lives (the "loss" tag: 8·C bytes per pixel, twice the float32 target); a target is
treated as read-only (a changed one must be a new array, or call clear_cache()). l1, ssim and
psnr (evaluation) are array operations on the images' own module (NumPy or CuPy) in the
images' precision, returning floats.

SSIM as 3DGS computes it: per channel, an 11×11 Gaussian window (σ = 1.5) with zero padding
("same" size), C1 = 0.01², C2 = 0.03², averaged over pixels and channels. With
m = w∗x, e_xx = w∗x², e_xy = w∗xy (∗: the window's correlation), s_x = e_xx − m_x²,
s_xy = e_xy − m_x m_y and S = (2 m_x m_y + C1)(2 s_xy + C2) / ((m_x² + m_y² + C1)(s_x + s_y + C2)):
    ∂S/∂m_x  = 2 m_y (A2 − A1)/(B1 B2) + 2 m_x S (1/B2 − 1/B1)
    ∂S/∂e_xx = −S / B2,   ∂S/∂e_xy = 2 A1 / (B1 B2)
and dS/dx = w∗(∂S/∂m_x) + 2x·w∗(∂S/∂e_xx) + y·w∗(∂S/∂e_xy) (the window is symmetric, so
its transpose is itself).

Masks (a capture undistorted with its whole field of view has pixels no camera saw): each
loss averages over the pixels where mask [H, W] is True only, and the target's masked-out
pixels are replaced by the render's own (held constant) so that SSIM windows reaching over
the border compare like with like; masked-out pixels then add nothing to L1 and get no
gradient of their own. (With a mask the target seen by SSIM depends on the render, so the
fused loss blurs it every step; a mask's count of valid pixels is read once per mask array.)
"""

from __future__ import annotations

import functools
import math
import weakref

import numpy as np

from .backend import Backend, backend_of
from .ssim import count_in_trackers, ssim_bwd, ssim_fwd, ssim_stats

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
L1_WEIGHT = 0.8  # 3DGS: (1 - λ) L1 + λ (1 - SSIM), λ = 0.2


def _xp(a):
    return np if isinstance(a, np.ndarray) else __import__("cupy")


def _check(image, target, mask=None):
    if image.shape != target.shape or image.ndim != 3:
        raise ValueError(f"image and target must both be [H, W, C]; got {list(image.shape)} and "
                         f"{list(target.shape)}")
    if mask is not None and (mask.shape != image.shape[:2] or mask.dtype != np.bool_):
        raise ValueError(f"mask must be [H, W] bool for an image of {list(image.shape)}, got "
                         f"{mask.dtype} {list(mask.shape)}")


def _masked(image, target, mask):
    """(target with the masked-out pixels set to the image's, per-pixel weights [H, W, 1]
    summing to 1 over the valid values)."""
    xp = _xp(image)
    if mask is None:
        return target, None
    m = mask[:, :, None]
    count = int(mask.sum()) * image.shape[2]
    if count == 0:
        raise ValueError("mask: no valid pixel")
    return xp.where(m, target, image), m.astype(image.dtype) / count


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """[size] normalised 1-D Gaussian; the 2-D window is its outer product."""
    x = np.arange(size) - size // 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def blur(a, window=None):
    """Separable "same" correlation of [H, W, C] with the Gaussian window, zero padding."""
    xp = _xp(a)
    w = gaussian_window() if window is None else window
    r = len(w) // 2
    h, wd = a.shape[:2]
    padded = xp.pad(a, ((r, r), (0, 0), (0, 0)))
    rows = sum(float(w[k]) * padded[k:k + h] for k in range(len(w)))
    padded = xp.pad(rows, ((0, 0), (r, r), (0, 0)))
    return sum(float(w[k]) * padded[:, k:k + wd] for k in range(len(w)))


def l1(image, target, mask=None):
    """(mean |image − target| over the valid pixels, gradient)."""
    _check(image, target, mask)
    xp = _xp(image)
    target, weight = _masked(image, target, mask)
    diff = image - target
    if weight is None:
        return float(xp.abs(diff).mean()), xp.sign(diff).astype(image.dtype) / diff.size
    return float((xp.abs(diff) * weight).sum()), (xp.sign(diff) * weight).astype(image.dtype)


def ssim(image, target, mask=None):
    """(mean SSIM over the valid pixels, gradient with respect to image)."""
    _check(image, target, mask)
    target, weight = _masked(image, target, mask)
    x, y = image, target.astype(image.dtype)
    mx, my = blur(x), blur(y)
    sx = blur(x * x) - mx * mx
    sy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    a1, a2 = 2 * mx * my + SSIM_C1, 2 * sxy + SSIM_C2
    b1, b2 = mx * mx + my * my + SSIM_C1, sx + sy + SSIM_C2
    s = a1 * a2 / (b1 * b2)
    w = 1 / s.size if weight is None else weight  # each SSIM value's weight in the mean
    d_mx = (2 * my * (a2 - a1) / (b1 * b2) + 2 * mx * s * (1 / b2 - 1 / b1)) * w
    d_exx = -s / b2 * w
    d_exy = 2 * a1 / (b1 * b2) * w
    grad = blur(d_mx) + 2 * x * blur(d_exx) + y * blur(d_exy)
    value = s.mean() if weight is None else (s * weight).sum()
    return float(value), grad.astype(image.dtype)


def psnr(image, target, mask=None) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (over the valid pixels); inf for
    identical images."""
    _check(image, target, mask)
    target, weight = _masked(image, target, mask)
    sq = (image - target) ** 2
    mse = float(sq.mean() if weight is None else (sq * weight).sum())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def photometric_loss(image, target, mask=None, l1_weight: float = L1_WEIGHT):
    """(value, dL/dimage) of l1_weight·L1 + (1 − l1_weight)·(1 − SSIM): 3DGS's training loss,
    over the pixels where mask is True when given, fused (kernels/ssim.cu).

    value: a 0-d float32 array on the images' device, not read back (float(value) reads it);
    grad: [H, W, C] float32 (in image's dtype when that is another float type: the kernels
    compute in float32 whatever the inputs)."""
    _check(image, target, mask)
    be = backend_of(image)
    x = _float32(be, image)
    view = _views.get(be, target)
    y = view.target(be, target)
    if mask is None:
        inv_count = 1.0 / (x.shape[0] * x.shape[1] * x.shape[2])
        stats = view.stats(be, y)
    else:
        seen = _masks.get(be, mask)
        mask = seen.mask(mask)
        inv_count = 1.0 / (seen.valid * x.shape[2])
        stats = None
    v_stats, partials = ssim_fwd(x, y, mask, stats, inv_count, l1_weight, be)
    value, grad = ssim_bwd(x, y, mask, v_stats, partials, inv_count, l1_weight, be)
    if grad.dtype != image.dtype:
        grad = _track(grad.astype(image.dtype))
    return value.reshape(()), grad


def _track(a):
    """Count `a` (made with xp) under the "loss" tag of its backend (ledger.py)."""
    return backend_of(a).track(a, tag="loss")


def _float32(be: Backend, a):
    """`a` as a C-contiguous float32 array (itself when it is one)."""
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return a
    return be.track(be.xp.ascontiguousarray(a, dtype=np.float32), tag="loss")


class _PerArray:
    """What photometric_loss keeps per target or mask array: an entry made on first sight,
    looked up by the array's identity, dropped when the array is freed."""

    def __init__(self, make):
        self._make = make
        self._entries: dict[int, tuple] = {}  # id(array) -> (weak reference, entry)

    def get(self, be: Backend, a):
        key = id(a)
        found = self._entries.get(key)
        if found is not None and found[0]() is a:
            return found[1]
        entry = self._make(be, a)
        try:
            ref = weakref.ref(a, functools.partial(self._drop, key))
        except TypeError:  # not weak-referenceable: cannot see it go, so do not keep it
            return entry
        self._entries[key] = (ref, entry)
        return entry

    def _drop(self, key: int, ref) -> None:
        found = self._entries.get(key)
        if found is not None and found[0] is ref:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


class _View:
    """What a target keeps while it lives: its float32 copy when it is not float32 and
    C-contiguous already, and, made on first use without a mask, its SSIM statistics
    (ssim_stats: [H, W, C, 2], the "loss" tag). Holds no reference to the target itself."""

    def __init__(self, be: Backend, target):
        converted = _float32(be, target)
        self._copy = None if converted is target else converted
        self._stats = None

    def target(self, be: Backend, target):
        """The target as the kernels read it."""
        if self._copy is None:
            return target
        count_in_trackers(be, self._copy)  # kept from an earlier call: this step holds it
        return self._copy

    def stats(self, be: Backend, target):
        """The statistics of `target` (this view's target as the kernels read it)."""
        if self._stats is None:
            self._stats = ssim_stats(target, be)
        else:
            count_in_trackers(be, self._stats)
        return self._stats


class _Mask:
    """What a mask keeps while it lives: its count of valid pixels (one host read, on first
    sight) and its C-contiguous copy when it is not C-contiguous. No reference to the mask."""

    def __init__(self, be: Backend, mask):
        contiguous = mask if mask.flags.c_contiguous else \
            be.track(be.xp.ascontiguousarray(mask), tag="loss")
        self._copy = None if contiguous is mask else contiguous
        self.valid = int(contiguous.sum())
        if self.valid == 0:
            raise ValueError("mask: no valid pixel")

    def mask(self, mask):
        """The mask as the kernels read it."""
        return mask if self._copy is None else self._copy


_views = _PerArray(_View)
_masks = _PerArray(_Mask)


def clear_cache() -> None:
    """Forget every target's statistics and every mask's count (they are also dropped when
    their array is freed): for a target changed in place."""
    _views.clear()
    _masks.clear()
