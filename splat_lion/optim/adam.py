"""Adam as one fused kernel: the baseline Lion is compared with (quality and memory).

torch.optim.Adam's update and bias correction (weight decay as L2 on the gradient), eps
1e-15 as 3DGS uses, the same flat layout and visibility mask as Lion ("selective Adam":
invisible splats keep parameters and both moments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import kernels
from ..backend import Backend, get_backend
from .base import (BLOCK, DEFINES, FusedOptimizer, check_flat_arrays, check_nonfinite,
                   check_number, check_tables, dummy_arg, launch_tables, struct_arg, visible_arg)
from .lr_table import ADAM_3DGS_LR, LrTable


def adam_step(params, grads, exp_avg, exp_avg_sq, segments, hyper, beta1, beta2, eps, step,
              visible=None, *, nonfinite=None, record_step=None,
              backend: Backend | None = None) -> None:
    """One fused Adam step in place over a flat buffer (kernels/adam.cu; reference/adam.py).

    params, grads, exp_avg, exp_avg_sq: [total] float32; segments: [S, 3] int64 host table;
    hyper: [S, 2] float32 host table (lr, weight decay); step: t >= 1; visible: [N] bool
    (4-byte aligned); nonfinite: int32 [1] device array or None: where a gradient or an
    updated parameter is not finite, the kernel lowers it to `record_step` (an int >= 0).
    """
    be = backend or get_backend()
    total = check_flat_arrays(be, params, grads, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq})
    for name, a in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected dtype float32, got {a.dtype}")
    num_splats = check_tables(segments, hyper, total)
    mask = visible_arg(be, visible, num_splats)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step: expected an int >= 1 (the 1-based count of this update), "
                         f"got {step!r}")
    flag, record = check_nonfinite(be, nonfinite, record_step)
    # torch.optim.Adam's bias corrections in float64, rounded once to the kernel's float32
    inv_bc1 = np.float32(1.0 / (1.0 - float(beta1) ** int(step)))
    inv_sqrt_bc2 = np.float32(1.0 / math.sqrt(1.0 - float(beta2) ** int(step)))
    kernel = kernels.function("adam", "adam_step" if mask is None else "adam_step_masked",
                              DEFINES, backend=be)
    mask = dummy_arg(be, np.uint8) if mask is None else mask
    for table, grid in launch_tables(segments, hyper):
        be.launch(kernel, grid, (BLOCK,),
                  (struct_arg(be, table), params, grads, exp_avg, exp_avg_sq, mask,
                   np.float32(beta1), np.float32(beta2), np.float32(eps), inv_bc1, inv_sqrt_bc2,
                   flag, record))


@dataclass(frozen=True, eq=False)
class Adam(FusedOptimizer):
    """torch.optim.Adam over the flat layout, one launch per step_all."""

    # base learning rate (each attribute's lr is this times its lr_scale)
    lr: float
    # first-moment decay
    beta1: float = 0.9
    # second-moment decay
    beta2: float = 0.999
    # added to the bias-corrected sqrt of the second moment (3DGS: 1e-15)
    eps: float = 1e-15
    # L2 weight decay added to the gradient, as torch.optim.Adam does
    weight_decay: float = 0.0
    # attribute -> lr multiplier and schedule (None: 1.0 for every attribute)
    lr_table: LrTable | None = field(default=None, kw_only=True)
    # backend to run on (None: splat_lion.get_backend() at each step)
    backend: Backend | None = field(default=None, kw_only=True, repr=False)

    state_names = ("exp_avg", "exp_avg_sq")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("eps", self.eps)

    @classmethod
    def for_3dgs(cls, extent: float = 1.0, steps: int = 30_000, **kwargs) -> "Adam":
        """Adam with the original 3DGS learning rates."""
        return cls(ADAM_3DGS_LR, lr_table=LrTable.adam_3dgs(extent, steps), **kwargs)

    def state_dtype(self, name: str) -> np.dtype:
        return np.dtype(np.float32)

    def config(self) -> dict:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _launch(self, be, params, grads, states, segments, hyper, visible, count, nonfinite,
                step) -> None:
        adam_step(params, grads, states["exp_avg"], states["exp_avg_sq"], segments, hyper,
                  self.beta1, self.beta2, self.eps, count, visible, nonfinite=nonfinite,
                  record_step=step, backend=be)
