"""fit(): fit Gaussians to target images (DESIGN §1), a batch of views per step.

    result = fit(gaussians, cameras, targets, FitConfig(optimizer="lion", steps=300))
    result.gaussians, result.psnr_history

Each step, for each of its `batch_size` views (1 by default; random, every view once per
epoch): render -> 0.8·L1 + 0.2·(1 − SSIM) against its target -> render_backward, adding into
the step's one gradient buffer -> densification statistics of the view. Then
optimizer.step_all(..., visible=union of the views' masks) (ONE fused launch) ->
end_iteration (lr schedules) -> on its schedule clone / split / prune / opacity reset
(densify.py). Every schedule (lr decay, densification, the SH ramp: one degree every
`sh_degree_interval` steps) counts optimizer steps; a fit renders steps x batch_size views.
A NaN or infinity in the loss, the gradients or the parameters stops the fit with the step
and the attribute.

Checkpoints (every `checkpoint_every` steps into `checkpoint_dir/checkpoint.npz`) hold the
parameters, the optimizer and densifier state, the step, the RNG state and the view order:
`fit(..., resume=path)` continues exactly as the uninterrupted run would have, bit for bit on
the CPU backend (whose kernels sum in a fixed order; GPU atomics do not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import memory
from .cameras import Camera
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import check_ranges, ranged
from .densify import Densifier, DensifyConfig, DensifyEvent
from .errors import ConfigError, DivergenceError, NonFiniteError
from .gaussians import Gaussians
from .layout import Flat, Layout
from .loss import photometric_loss, psnr
from .optim.registry import RATES, optimizer_spec
from .render import render, render_backward

# The SH ramp, as a fraction of the run: 3DGS raises the degree every 1000 of 30 000 steps.
SH_RAMP = 1000 / 30_000


@dataclass(frozen=True)
class FitConfig:
    # "lion", "lion-bf16" (bfloat16 momentum) or "adam" (3DGS's baseline)
    optimizer: str = "lion"
    # optimisation steps, each of batch_size views (every schedule counts these steps)
    steps: int = ranged(300, 1, 10_000_000)
    # views rendered and back-propagated per step into one gradient (their sum), then one
    # optimizer step; the visibility mask is their union, densification counts each view
    batch_size: int = ranged(1, 1, 4096)
    # base learning rate; None: the preset's (Lion 1e-4, Adam 1e-3), scaled by the lr table
    lr: float | None = ranged(None, 0, 1, kind=float, optional=True, open_lo=True)
    # the lr preset by start (registry.RATES): "from_points" (Lion: LrTable.lion_default, big
    # steps that decay; Adam: LrTable.adam_from_points), for a start from points or random,
    # or "refine" (LrTable.lion_refine; Adam: adam_3dgs), for a start that is close
    rates: str = "from_points"
    # background colour composited behind the splats, RGB in [0, 1]
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # steps between raises of the active SH degree; None: steps / 30 (3DGS: 1000 of 30 000),
    # so that short runs ramp up too
    sh_degree_interval: int | None = ranged(None, 1, 10_000_000, optional=True)
    # skip splats outside the view in the optimizer step ("selective" Lion / Adam)
    selective: bool = True
    # seed of the view order and of the split splats' positions
    seed: int = ranged(0, 0, 2**63 - 1)
    # record the training PSNR every this many steps
    log_every: int = ranged(10, 1, 10_000_000)
    # adaptive density control (clone / split / prune / opacity reset); None: a fixed set.
    # The default is 3DGS's schedule (from step 500): short fits never reach it
    densify: DensifyConfig | None = DensifyConfig()
    # steps between checkpoints written to fit()'s checkpoint_dir; None: none
    checkpoint_every: int | None = ranged(None, 1, 10_000_000, optional=True)
    # steps between calls of fit()'s `evaluate` (held-out PSNR and SSIM); None: none
    eval_every: int | None = ranged(None, 1, 10_000_000, optional=True)

    def __post_init__(self):
        optimizer_spec(self.optimizer)  # a clear error for an unknown name
        check_ranges(self)
        if self.densify is not None and not isinstance(self.densify, DensifyConfig):
            raise TypeError(f"densify must be a DensifyConfig or None, got "
                            f"{type(self.densify).__name__}")
        if self.rates not in RATES:
            raise ConfigError(f"rates must be one of {', '.join(RATES)}, got {self.rates!r}")

    @property
    def sh_interval(self) -> int:
        """Steps between raises of the active SH degree (sh_degree_interval, or its default)."""
        return self.sh_degree_interval or max(1, round(self.steps * SH_RAMP))

    @classmethod
    def refine(cls, steps: int, **kwargs) -> "FitConfig":
        """Refining splats that are nearly right (a perturbed or pre-fitted scene): Lion's
        refine rates, no densification."""
        return cls(**{"steps": steps, "rates": "refine", "densify": None, **kwargs})

    @classmethod
    def from_points(cls, steps: int, **kwargs) -> "FitConfig":
        """A fit from a point cloud: 3DGS's densification schedule compressed into the views
        of `steps` steps (of kwargs' batch_size views)."""
        densify = DensifyConfig.for_steps(steps, kwargs.get("batch_size", 1))
        return cls(**{"steps": steps, "densify": densify, **kwargs})

    def to_dict(self) -> dict:
        """The config as JSON values (what a checkpoint records)."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class FitResult:
    # the fitted splats (the same object that was passed in, updated in place)
    gaussians: Gaussians
    # (step, training loss) every log_every steps
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    # (step, training PSNR in dB) every log_every steps
    psnr_history: list[tuple[int, float]] = field(default_factory=list)
    # (step, number of splats) every log_every steps
    splat_history: list[tuple[int, int]] = field(default_factory=list)
    # (step, PSNR, SSIM) of fit()'s `evaluate` every eval_every steps (and at the end)
    eval_history: list[tuple[int, float, float]] = field(default_factory=list)
    # what densification did, in order
    densify_events: list[DensifyEvent] = field(default_factory=list)
    # wall time of the fit in seconds (of all its runs, when resumed)
    seconds: float = 0.0
    # bytes of optimizer state at the end
    optimizer_state_bytes: int = 0
    # the step the fit started from (0, or the resumed checkpoint's)
    start_step: int = 0
    # peak bytes of the tracked arrays during the fit (parameters, targets, optimizer state,
    # and everything the steps allocate; memory.py), and each tag's own peak
    peak_bytes: int = 0
    peak_bytes_by_tag: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        """What metrics.json records of the run: memory, densification and histories."""
        return {"seconds": round(self.seconds, 2),
                "optimizer_state_bytes": self.optimizer_state_bytes,
                "peak_bytes": self.peak_bytes, "peak_bytes_by_tag": self.peak_bytes_by_tag,
                "resumed_from_step": self.start_step,
                "densify_events": len(self.densify_events),
                "loss_history": self.loss_history, "psnr_history": self.psnr_history,
                "splat_history": self.splat_history, "eval_history": self.eval_history}


def make_optimizer(config: FitConfig, extent: float, backend):
    """The optimizer config.optimizer names, at its preset rates for this fit (registry)."""
    return optimizer_spec(config.optimizer).make(extent, config.steps, lr=config.lr,
                                                 rates=config.rates, backend=backend)


def _check_nonfinite(be, opt, grads: Flat, params: Flat) -> None:
    """NonFiniteError naming the first step at which the optimizer kernel met a NaN or an
    infinity (step_all(check_finite=True) records it on the device), and the attribute."""
    bad = opt.nonfinite_step()
    if bad is None:
        return
    _check_finite(be, grads, bad, "gradients")
    _check_finite(be, params, bad, "parameters")
    raise NonFiniteError(f"step {bad}: a gradient or parameter held NaN or infinity (gone by "
                         "now); lower the learning rate or check the inputs")


def _check_finite(be, flat, step: int, what: str) -> None:
    """NonFiniteError naming the attribute of `flat` that holds a NaN or an infinity."""
    if bool(be.xp.isfinite(flat.data).all()):  # one reduction on the device, no copy
        return
    for name in flat.layout.names:  # the rare bad case: find the attribute
        values = be.to_numpy(flat[name])
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).any(axis=tuple(range(1, values.ndim))).sum())
            raise NonFiniteError(f"step {step}: {what} of '{name}' hold NaN or infinity in "
                                 f"{bad} splats; lower the learning rate or check the inputs")


# Divergence (beside NaN): a fit stops when, at a log step, an attribute's largest |value| has
# grown past RUNAWAY_GROWTH x its start (or past its floor, whichever is larger; scales are
# logs: past their start + RUNAWAY_LOG_SCALE), or when the logged loss stays above
# DIVERGE_LOSS x its first value for DIVERGE_PATIENCE log steps in a row.
RUNAWAY_GROWTH = 1e3
RUNAWAY_FLOOR = {"means": 1e3, "quats": 1e4, "opacities": 1e3, "sh0": 1e3, "shN": 1e3}
RUNAWAY_LOG_SCALE = 30.0  # σ grown or shrunk by e^30
DIVERGE_LOSS = 3.0
DIVERGE_PATIENCE = 5


class _Runaway:
    """The divergence checks of one fit (see RUNAWAY_GROWTH)."""

    def __init__(self, be, params: Flat, extent: float, lr_now: float) -> None:
        self.be, self.lr_now = be, lr_now
        start = self._max_abs(params)
        self.bounds = {}
        for name, v in start.items():
            if name == "scales":
                self.bounds[name] = v + RUNAWAY_LOG_SCALE
            else:
                floor = RUNAWAY_FLOOR.get(name, 1e3) * (extent if name == "means" else 1.0)
                self.bounds[name] = max(RUNAWAY_GROWTH * v, floor)
        self.first_loss: float | None = None
        self.high = 0  # log steps in a row with the loss above DIVERGE_LOSS x the first

    def _max_abs(self, params: Flat) -> dict[str, float]:
        xp = self.be.xp
        names = [n for n in params.layout.names if params[n].size]
        maxima = self.be.to_numpy(xp.stack([xp.abs(params[n]).max() for n in names]))
        return dict(zip(names, (float(v) for v in maxima)))  # one read back for all

    def check(self, params: Flat, step: int, loss: float) -> None:
        hint = (f"lower the learning rate (e.g. --lr {self.lr_now / 10:.2g}; it is "
                f"{self.lr_now:.2g}) or check the inputs")
        for name, v in self._max_abs(params).items():
            if v > self.bounds[name]:
                raise DivergenceError(f"step {step}: '{name}' ran away (largest |value| {v:.3g}, "
                                      f"past {self.bounds[name]:.3g}): the fit diverges; {hint}")
        self.first_loss = loss if self.first_loss is None else self.first_loss
        self.high = self.high + 1 if loss > DIVERGE_LOSS * self.first_loss else 0
        if self.high >= DIVERGE_PATIENCE:
            raise DivergenceError(f"step {step}: the loss ({loss:.4g}) has stayed above "
                                  f"{DIVERGE_LOSS:g}x its first value ({self.first_loss:.4g}) for "
                                  f"{self.high} log steps: the fit diverges; {hint}")


def _visible_union(be, union, visible, batch_size: int):
    """The union of a batch's visibility masks so far, with `visible` [N] bool (a render's,
    whose buffer the next render reuses) added: the first view's mask itself when the batch
    is one view, else a copy in the workspace fit.visible that later views OR into."""
    if batch_size == 1:
        return visible
    if union is None:
        union = be.workspace("fit.visible", visible.shape[0], np.bool_, tag="grads")
        be.xp.copyto(union, visible)
    else:
        be.xp.logical_or(union, visible, out=union)
    return union


CHECKPOINT_NAME = "checkpoint.npz"
# config fields a resumed fit may change: they do not alter the trajectory
_RESUME_MAY_CHANGE = ("checkpoint_every", "log_every", "eval_every")


def fit(gaussians: Gaussians, cameras: Sequence[Camera], targets, config: FitConfig = FitConfig(),
        optimizer=None, progress=None, *, masks=None, evaluate=None, checkpoint_dir=None,
        resume=None, context: dict | None = None, meta: dict | None = None) -> FitResult:
    """Fit `gaussians` (updated in place) to `targets[i]` [H, W, 3] seen by `cameras[i]`.

    masks: None, or one [H, W] bool (or None) per target: the loss counts only its True
    pixels (an undistorted capture's valid region).
    progress(step, loss, psnr): called every log_every steps when given.
    evaluate(gaussians) -> (psnr, ssim): called every config.eval_every steps and after the
    last (e.g. Problem.evaluate on held-out views); FitResult.eval_history records it.
    checkpoint_dir: where checkpoint.npz goes every config.checkpoint_every steps.
    resume: a checkpoint (path, or load_checkpoint's dict) of a fit with the same config,
    cameras and targets: its splats replace those of `gaussians` and the fit goes on from its
    step to config.steps.
    context: JSON values naming what made the cameras and targets (e.g. Problem.context),
    saved with each checkpoint; a resume with another context is refused, naming the change.
    meta: JSON values saved with each checkpoint as "meta" (the caller's own notes).
    """
    if len(cameras) != len(targets) or not cameras:
        raise ValueError(f"need one target per camera, got {len(cameras)} cameras and "
                         f"{len(targets)} targets")
    if config.checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("config.checkpoint_every is set: give fit() a checkpoint_dir")
    if config.checkpoint_every is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    g = gaussians
    be = g.backend
    targets = [be.asarray(np.asarray(t, np.float32) if isinstance(t, np.ndarray) else t,
                          tag="loss") for t in targets]
    for cam, t in zip(cameras, targets):
        if t.shape != (cam.height, cam.width, 3):
            raise ValueError(f"target of shape {list(t.shape)} does not match its camera "
                             f"({cam.height}, {cam.width}, 3)")
    masks = [None] * len(targets) if masks is None else list(masks)
    if len(masks) != len(targets):
        raise ValueError(f"need one mask (or None) per target, got {len(masks)} for "
                         f"{len(targets)} targets")
    for i, t in enumerate(targets):  # one reduction each, once: a bad image is named here
        if not bool(be.xp.isfinite(t).all()):
            raise NonFiniteError(f"target image {i} holds NaN or infinity: check the capture's "
                                 "images (or the targets passed to fit)")
    masks = [None if m is None else be.asarray(m, tag="loss") for m in masks]
    state = None
    if resume is not None:
        state = resume if isinstance(resume, dict) else load_checkpoint(resume)
        _check_resumable(state, config, len(cameras), context)
        _restore_gaussians(g, state["gaussians"])
    extent = float(state["extent"]) if state else g.extent()
    opt = optimizer or make_optimizer(config, extent, be)
    densifier = Densifier(config.densify, extent, be, g.count) if config.densify else None
    rng = np.random.default_rng(config.seed)
    result = FitResult(gaussians=g)
    order: list[int] = []
    if state:
        opt.load_state_dict(state["optimizer"])
        if densifier:
            densifier.load_state_dict(state["densifier"])
        rng.bit_generator.state = state["rng"]
        order = [int(i) for i in state["order"]]
        result.start_step = int(state["step"])
        result.seconds = float(state["seconds"])
        result.loss_history = [(int(s), v) for s, v in state["loss_history"]]
        result.psnr_history = [(int(s), v) for s, v in state["psnr_history"]]
        result.splat_history = [(int(s), int(n)) for s, n in state["splat_history"]]
        result.eval_history = [(int(s), p, q) for s, p, q in state.get("eval_history", [])]
        result.densify_events = [DensifyEvent(**e) for e in state["densify_events"]]
    # the start is checked once here; after, the optimizer kernel checks what it updates
    _check_finite(be, g.params, result.start_step, "parameters")
    runaway = _Runaway(be, g.params, extent, getattr(opt, "lr", float("nan")))
    start = time.perf_counter() - result.seconds
    be.workspaces.drop()  # made again in the first step, so that the peak counts them
    with memory.track(be) as tracker:  # what the fit holds at its peak (FitResult.peak_bytes)
        tracker.include(g.params.data, "params")
        for t in targets:
            tracker.include(t, "loss")
        for state in opt.flat_state.values():
            tracker.include(state.data, "optimizer")
        for step in range(result.start_step, config.steps):
            degree = min(g.sh_degree, step // config.sh_interval)
            logging = step % config.log_every == 0 or step == config.steps - 1
            observing = densifier is not None and densifier.active(step + 1)
            grads, visible, losses, psnrs = None, None, [], []
            for _ in range(config.batch_size):
                if not order:  # every view once per epoch, in a shuffled order (as 3DGS does)
                    order = [int(i) for i in rng.permutation(len(cameras))]
                view = order.pop()
                out = render(g, cameras[view], config.background, degree)
                value, grad = photometric_loss(out.image, targets[view], masks[view])  # device
                grads = render_backward(out, grad, into=grads)  # the batch's sum
                if config.selective:
                    visible = _visible_union(be, visible, out.visible, config.batch_size)
                if observing:
                    densifier.observe(out, grads)  # this view's screen-space gradients
                if logging:
                    losses.append(value)
                    psnrs.append(psnr(out.image, targets[view], masks[view]))
                del out
            # the kernel records the first step with a non-finite gradient or parameter
            opt.step_all(g.params, grads, visible=visible, check_finite=True)
            opt.end_iteration()
            if logging:
                _check_nonfinite(be, opt, grads, g.params)  # one read back, then rarely a scan
                value = float(np.mean([float(v) for v in losses]))  # read on log steps only
                if not np.isfinite(value):
                    raise NonFiniteError(f"step {step}: the loss is {value}; the parameters or "
                                         "the learning rate: lower the learning rate")
                runaway.check(g.params, step, value)
                p = float(np.mean(psnrs))
                result.loss_history.append((step, value))
                result.psnr_history.append((step, p))
                result.splat_history.append((step, g.count))
                if progress:
                    progress(step, value, p)
            del grads, visible
            if observing:
                event = densifier.after_step(step + 1, g, opt, rng)
                if event:
                    result.densify_events.append(event)
            last = step == config.steps - 1
            if evaluate and ((config.eval_every and (step + 1) % config.eval_every == 0) or last):
                result.eval_history.append((step, *map(float, evaluate(g))))
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
                result.seconds = time.perf_counter() - start
                save_checkpoint(Path(checkpoint_dir) / CHECKPOINT_NAME, _checkpoint(
                    step + 1, g, opt, densifier, rng, order, extent, config, len(cameras), result,
                    context, meta))
    result.seconds = time.perf_counter() - start
    result.optimizer_state_bytes = opt.state_bytes()
    result.peak_bytes = tracker.peak_total
    result.peak_bytes_by_tag = tracker.by_tag()
    return result


def _checkpoint(step, g, opt, densifier, rng, order, extent, config, views, result,
                context, meta) -> dict:
    be = g.backend
    return {
        "step": step, "config": config.to_dict(), "views": views, "extent": extent,
        "gaussians": {"params": be.to_numpy(g.params.data).copy(), "count": g.count,
                      "sh_degree": g.sh_degree,
                      "extra": {k: np.asarray(v) for k, v in g.extra.items()}},
        "optimizer": opt.state_dict(),
        "densifier": densifier.state_dict() if densifier else None,
        "rng": rng.bit_generator.state, "order": list(order),
        "seconds": result.seconds,
        "loss_history": result.loss_history, "psnr_history": result.psnr_history,
        "splat_history": result.splat_history, "eval_history": result.eval_history,
        "densify_events": [asdict(e) for e in result.densify_events],
        "context": context, "meta": meta,
    }


def _check_resumable(state: dict, config: FitConfig, views: int, context: dict | None) -> None:
    was, now = dict(state["config"]), config.to_dict()
    for name in _RESUME_MAY_CHANGE:
        was.pop(name, None)
        now.pop(name, None)
    changed = [f"{k} ({was.get(k)!r} -> {now.get(k)!r})" for k in sorted(set(was) | set(now))
               if was.get(k) != now.get(k)]
    if changed:
        raise CheckpointError(f"the checkpoint was made with another config: {', '.join(changed)};"
                              " resume with the same settings, or start a new fit")
    was = state.get("context")
    if context is not None and was != context:
        was = was or {}
        changed = [f"{k} {was.get(k)!r} -> {context.get(k)!r}"
                   for k in sorted(set(was) | set(context)) if was.get(k) != context.get(k)]
        raise CheckpointError(f"the checkpoint was made for other views: {', '.join(changed)}; "
                              "resume with the same settings, or start a new fit")
    if int(state["views"]) != views:
        raise CheckpointError(f"the checkpoint was made with {state['views']} training views, "
                              f"now there are {views}: resume with the same cameras")
    if int(state["step"]) > config.steps:
        raise CheckpointError(f"the checkpoint is at step {state['step']}, past steps="
                              f"{config.steps}")


def _restore_gaussians(g: Gaussians, saved: dict) -> None:
    layout = Layout.gaussians(int(saved["count"]), int(saved["sh_degree"]))
    data = np.asarray(saved["params"])
    if data.dtype != np.float32 or data.shape != (layout.total,):
        raise CheckpointError(f"checkpoint parameters: expected float32 [{layout.total}] for "
                              f"{layout.count} splats, got {data.dtype} {list(data.shape)}")
    g.params = Flat(layout, g.backend.asarray(data.copy(), tag="params"))
    g.sh_degree = int(saved["sh_degree"])
    g.extra = {k: np.asarray(v) for k, v in saved["extra"].items()}
