"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") as one fused kernel.

    opt = Lion(1e-4, lr_table=LrTable.lion_default(extent)).with_betas(0.9, 0.99)
    opt.step_all(params, grads, visible=render.visible)   # every attribute, one launch
    opt.end_iteration()

One momentum buffer per tensor: half of Adam's state, a quarter with
momentum_dtype="bfloat16" (16-bit words, rounded to nearest even).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import kernels
from ..backend import Backend, get_backend
from .base import (BLOCK, DEFINES, FusedOptimizer, check_flat_arrays, check_nonfinite,
                   check_tables, dummy_arg, launch_tables, struct_arg, visible_arg)
from .lr_table import LION_DEFAULT_LR, LrTable

# momentum_dtype -> how the buffer is stored
MOMENTUM_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(np.uint16)}
# whether Lion's preset is cautious (Lion.cautious), by the lr preset (registry.RATES): from
# points the study's better Lion (+0.3 to +3.0 dB over plain Lion at equal views,
# docs/lion-vs-adam.md); refining, the paper's Lion (the demo's refit of planet: 32.9 dB
# plain, 31.1 cautious). The registry and Lion.for_splats read it
LION_CAUTIOUS: dict[str, bool] = {"from_points": True, "refine": False}


def lion_step(params, grads, momentum, segments, hyper, beta1, beta2, visible=None, *,
              cautious=False, nonfinite=None, record_step=None,
              backend: Backend | None = None) -> None:
    """One fused Lion step in place over a flat buffer (kernels/lion.cu; reference/lion.py).

    params, grads: [total] float32; momentum: [total] float32 or uint16 (bfloat16 words);
    segments: [S, 3] int64 host table (begin, end, width); hyper: [S, 2] float32 host table
    (lr, weight decay) per segment; visible: [N] bool (4-byte aligned) or None; cautious: no
    update where sign(c) disagrees with the gradient's sign (or g = 0); nonfinite:
    int32 [1] device array or None: where a gradient or an updated parameter is not finite,
    the kernel lowers it to `record_step` (an int >= 0), reading nothing back.
    """
    be = backend or get_backend()
    if getattr(momentum, "dtype", None) not in MOMENTUM_DTYPES.values():
        raise TypeError(f"momentum: expected float32 or uint16 (bfloat16 words), got "
                        f"{getattr(momentum, 'dtype', type(momentum).__name__)}")
    total = check_flat_arrays(be, params, grads, {"momentum": momentum})
    num_splats = check_tables(segments, hyper, total)
    mask = visible_arg(be, visible, num_splats)
    flag, record = check_nonfinite(be, nonfinite, record_step)
    name = ("lion_step_bf16" if momentum.dtype == np.uint16 else "lion_step") + \
        ("_cautious" if cautious else "") + ("" if mask is None else "_masked")
    kernel = kernels.function("lion", name, DEFINES, backend=be)
    mask = dummy_arg(be, np.uint8) if mask is None else mask
    for table, grid in launch_tables(segments, hyper):
        be.launch(kernel, grid, (BLOCK,),
                  (struct_arg(be, table), params, grads, momentum, mask, np.float32(beta1),
                   np.float32(beta2), flag, record))


@dataclass(frozen=True, eq=False)
class Lion(FusedOptimizer):
    """c = b1*m + (1-b1)*g;  p -= lr*s*(u + wd*p);  m = b2*m + (1-b2)*g,  u = sign(c),
    s = lr_scale(attribute), sign(+-0) = +0; cautious: u = 0 where u*g <= 0.
    Builders return new optimizers with fresh state."""

    # base learning rate (each attribute's lr is this times its lr_scale)
    lr: float
    # momentum weight in the update direction c
    beta1: float = 0.9
    # momentum decay
    beta2: float = 0.99
    # decoupled weight decay λ (multiplied by the attribute's lr)
    weight_decay: float = 0.0
    # attribute -> lr multiplier and schedule (None: 1.0 for every attribute)
    lr_table: LrTable | None = field(default=None, kw_only=True)
    # "float32", or "bfloat16" for momentum in 2 bytes
    momentum_dtype: str = field(default="float32", kw_only=True)
    # the cautious variant: no update where sign(c) disagrees with the gradient's sign
    # (Liang et al. 2024, without their rescaling); False: the paper's Lion. The presets
    # take LION_CAUTIOUS
    cautious: bool = field(default=False, kw_only=True)
    # backend to run on (None: splat_lion.get_backend() at each step)
    backend: Backend | None = field(default=None, kw_only=True, repr=False)

    state_names = ("momentum",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.cautious, bool):
            raise ValueError(f"cautious must be True or False, got {self.cautious!r}")
        if self.momentum_dtype not in MOMENTUM_DTYPES:
            raise ValueError(f"momentum_dtype must be one of {', '.join(MOMENTUM_DTYPES)}, "
                             f"got {self.momentum_dtype!r}")

    @classmethod
    def for_splats(cls, extent: float = 1.0, steps: int = 30_000, **kwargs) -> "Lion":
        """Lion as the presets fit from points: LrTable.lion_default, cautious as
        LION_CAUTIOUS says (pass cautious=False for the paper's Lion; to refine,
        lr_table=LrTable.lion_refine(extent, steps) and cautious=LION_CAUTIOUS["refine"])."""
        kwargs.setdefault("cautious", LION_CAUTIOUS["from_points"])
        return cls(LION_DEFAULT_LR, lr_table=LrTable.lion_default(extent, steps), **kwargs)

    def state_dtype(self, name: str) -> np.dtype:
        return MOMENTUM_DTYPES[self.momentum_dtype]

    def config(self) -> dict:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                "weight_decay": self.weight_decay, "momentum_dtype": self.momentum_dtype,
                "cautious": self.cautious}

    def _launch(self, be, params, grads, states, segments, hyper, visible, count, nonfinite,
                step) -> None:
        lion_step(params, grads, states["momentum"], segments, hyper, self.beta1, self.beta2,
                  visible, cautious=self.cautious, nonfinite=nonfinite, record_step=step,
                  backend=be)
