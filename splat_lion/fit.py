"""fit(): fit Gaussians to target images (DESIGN §1), one view per step.

    result = fit(gaussians, cameras, targets, FitConfig(optimizer="lion", steps=300))
    result.gaussians, result.psnr_history

Each step: render a random training view -> 0.8·L1 + 0.2·(1 − SSIM) against its target ->
render_backward -> optimizer.step_all(..., visible=...) (ONE fused launch) ->
end_iteration (lr schedules). The SH degree rises by one every `sh_degree_interval` steps.
A NaN or infinity in the loss, the gradients or the parameters stops the fit with the step
and the attribute. Not yet here: densification, checkpoints, datasets (see issue 6).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .cameras import Camera
from .gaussians import Gaussians
from .loss import photometric_loss, psnr
from .optim import Adam, Lion, LrTable
from .optim.lr_table import ADAM_3DGS_LR, LION_DEFAULT_LR
from .render import render, render_backward

OPTIMIZERS = ("lion", "lion-bf16", "adam")


@dataclass(frozen=True)
class FitConfig:
    # "lion", "lion-bf16" (bfloat16 momentum) or "adam" (3DGS's baseline)
    optimizer: str = "lion"
    # optimisation steps (one view each)
    steps: int = 300
    # base learning rate; None: the preset's (Lion 1e-4, Adam 1e-3), scaled by the lr table
    lr: float | None = None
    # background colour composited behind the splats, RGB in [0, 1]
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # steps between raises of the active SH degree (3DGS: 1000)
    sh_degree_interval: int = 1000
    # skip splats outside the view in the optimizer step ("selective" Lion / Adam)
    selective: bool = True
    # seed of the view order
    seed: int = 0
    # record the training PSNR every this many steps
    log_every: int = 10

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        for name in ("steps", "sh_degree_interval", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.lr is not None and not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")

    @classmethod
    def quick(cls, **kwargs) -> "FitConfig":
        """A short fit for demos and tests on a CPU."""
        return cls(**{"steps": 150, "log_every": 10, **kwargs})


@dataclass
class FitResult:
    # the fitted splats (the same object that was passed in, updated in place)
    gaussians: Gaussians
    # (step, training loss) every log_every steps
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    # (step, training PSNR in dB) every log_every steps
    psnr_history: list[tuple[int, float]] = field(default_factory=list)
    # wall time of the fit in seconds
    seconds: float = 0.0
    # bytes of optimizer state at the end
    optimizer_state_bytes: int = 0


class NonFiniteError(FloatingPointError):
    """A NaN or infinity appeared during a fit; the message names the step and attribute."""


def make_optimizer(config: FitConfig, extent: float, backend):
    if config.optimizer == "adam":
        table = LrTable.adam_3dgs(extent, config.steps)
        return Adam(config.lr or ADAM_3DGS_LR, lr_table=table, backend=backend)
    table = LrTable.lion_default(extent, config.steps)
    return Lion(config.lr or LION_DEFAULT_LR, lr_table=table, backend=backend,
                momentum_dtype="bfloat16" if config.optimizer == "lion-bf16" else "float32")


def _check_finite(be, flat, step: int, what: str) -> None:
    for name in flat.layout.names:
        values = be.to_numpy(flat[name])
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).any(axis=tuple(range(1, values.ndim))).sum())
            raise NonFiniteError(f"step {step}: {what} of '{name}' hold NaN or infinity in "
                                 f"{bad} splats; lower the learning rate or check the inputs")


def fit(gaussians: Gaussians, cameras: Sequence[Camera], targets, config: FitConfig = FitConfig(),
        optimizer=None, progress=None) -> FitResult:
    """Fit `gaussians` (updated in place) to `targets[i]` [H, W, 3] seen by `cameras[i]`.
    `progress(step, loss, psnr)` is called every log_every steps when given."""
    if len(cameras) != len(targets) or not cameras:
        raise ValueError(f"need one target per camera, got {len(cameras)} cameras and "
                         f"{len(targets)} targets")
    g = gaussians
    be = g.backend
    targets = [be.asarray(np.asarray(t, np.float32) if isinstance(t, np.ndarray) else t,
                          tag="loss") for t in targets]
    for cam, t in zip(cameras, targets):
        if t.shape != (cam.height, cam.width, 3):
            raise ValueError(f"target of shape {list(t.shape)} does not match its camera "
                             f"({cam.height}, {cam.width}, 3)")
    opt = optimizer or make_optimizer(config, g.extent(), be)
    rng = np.random.default_rng(config.seed)
    result = FitResult(gaussians=g)
    start = time.perf_counter()
    order: list[int] = []
    for step in range(config.steps):
        if not order:  # every view once per epoch, in a shuffled order (as 3DGS does)
            order = list(rng.permutation(len(cameras)))
        view = order.pop()
        degree = min(g.sh_degree, step // config.sh_degree_interval)
        out = render(g, cameras[view], config.background, degree)
        value, grad = photometric_loss(out.image, targets[view])
        if not np.isfinite(value):
            raise NonFiniteError(f"step {step}: the loss is {value}; check the parameters")
        grads = render_backward(out, grad)
        _check_finite(be, grads, step, "gradients")
        opt.step_all(g.params, grads, visible=out.visible if config.selective else None)
        opt.end_iteration()
        _check_finite(be, g.params, step, "parameters")
        if step % config.log_every == 0 or step == config.steps - 1:
            p = psnr(out.image, targets[view])
            result.loss_history.append((step, value))
            result.psnr_history.append((step, p))
            if progress:
                progress(step, value, p)
    result.seconds = time.perf_counter() - start
    result.optimizer_state_bytes = opt.state_bytes()
    return result
