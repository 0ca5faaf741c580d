"""Adaptive density control (3DGS §5): the operations on the splats, and the 3DGS schedule
that decides when to run them.

The operations (clone, split, prune, reset_opacity) change the Gaussians and keep the
optimizer state and the extra PLY properties aligned with them: each moves params, state and
extras through ONE gather index (`reindex`, DESIGN §4, §5); new splats start with zero
optimizer state. clone, split and prune return `origin`: the row each splat had before (-1
for a new one), so that a strategy can carry its own per-splat statistics along (`carry`).
They know no schedule.

The 3DGS strategy, `Densifier`, is the statistics plus the schedule:

    densifier = Densifier(DensifyConfig(), extent=g.extent(), backend=g.backend)
    # every step, after the optimizer step:
    densifier.observe(out, grads)                     # this view's gradient statistics
    event = densifier.after_step(step + 1, g, optimizer, rng)   # maybe densify / reset

Statistics, per splat, over the views it was visible in: the norm of its screen-space mean
gradient in normalised device units (the pixel gradient times (W/2, H/2): what 3DGS's and
gsplat's threshold 0.0002 assumes), averaged; and its largest screen radius.
Every `interval` steps after `start_step`, before `stop_step`:
  clone  splats whose average gradient >= grad_threshold and largest σ <= percent_dense x extent:
         an exact copy, which starts with zero optimizer state (the original keeps its own)
  split  the same but larger: two children sampled from the parent's Gaussian, σ / 1.6,
         zero optimizer state; the parent goes
  prune  opacity < prune_opacity; after the first opacity reset also largest σ >
         max_world_scale x extent (and, when set, screen radius > max_screen_radius)
and the statistics restart. Every `reset_interval` steps: opacity <- min(opacity,
reset_opacity) and the opacity's optimizer state is zeroed (3DGS does so for Adam).
Another strategy (a splat budget, MCMC-style relocation) is another class with the methods
of `Strategy`, built from the same operations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from .errors import ConfigError
from .gaussians import Gaussians
from .layout import Flat
from .quaternion import quat_to_rotmat

SPLIT_CHILDREN = 2  # children per split splat (3DGS: N = 2)
SPLIT_SHRINK = 0.8 * SPLIT_CHILDREN  # a child's σ is its parent's / 1.6 (3DGS)
# views between opacity resets in DensifyConfig.for_steps: 3DGS's 3000 at any length of fit.
# Compressed with the rest (300 views apart in a fit of 3000 views) they cost Adam 0.8 dB and
# Lion 2.2 dB on the capture suite's room: Lion's sign steps take ~100 steps to raise an
# opacity back from 0.01 (docs/lion-vs-adam.md)
RESET_VIEWS = 3000


@dataclass(frozen=True)
class DensifyConfig:
    # densification starts after this step (3DGS: 500)
    start_step: int = 500
    # no densification, pruning or opacity reset from this step on (3DGS: 15 000)
    stop_step: int = 15_000
    # steps between densifications (3DGS: 100)
    interval: int = 100
    # average screen-space gradient (normalised device units) from which a splat is densified
    grad_threshold: float = 0.0002
    # splats whose largest σ is at most this fraction of the scene extent are cloned, larger split
    percent_dense: float = 0.01
    # splats less opaque than this are pruned at each densification
    prune_opacity: float = 0.005
    # steps between opacity resets (3DGS: 3000); None: never reset
    reset_interval: int | None = 3000
    # the opacity a reset caps every splat at
    reset_opacity: float = 0.01
    # after the first reset, prune splats whose largest σ exceeds this fraction of the extent
    max_world_scale: float = 0.1
    # after the first reset, prune splats wider than this on screen (pixels); None: never
    # (3DGS's code means to at 20 px but zeroes its radii first, so it never does; gsplat: off)
    max_screen_radius: float | None = None
    # add no splats past this count (None: no limit); the strongest gradients go first
    max_splats: int | None = None

    def __post_init__(self):
        for name in ("start_step", "stop_step", "interval"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (1 if name == "interval" else 0):
                raise ConfigError(f"densify {name} must be an int >= "
                                 f"{1 if name == 'interval' else 0}, got {v!r}")
        for name in ("grad_threshold", "percent_dense", "prune_opacity", "reset_opacity",
                     "max_world_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"densify {name} must be a finite number > 0, got {v!r}")
        if not self.reset_opacity < 1 or not self.prune_opacity < 1:
            raise ConfigError("densify reset_opacity and prune_opacity must be < 1")
        if self.reset_interval is not None and (not isinstance(self.reset_interval, int)
                                                or self.reset_interval < 1):
            raise ConfigError(f"densify reset_interval must be None or an int >= 1, got "
                             f"{self.reset_interval!r}")
        if self.max_splats is not None and (not isinstance(self.max_splats, int)
                                            or self.max_splats < 1):
            raise ConfigError(f"densify max_splats must be None or an int >= 1, got "
                             f"{self.max_splats!r}")

    @classmethod
    def for_steps(cls, steps: int, batch_size: int = 1, **kwargs) -> "DensifyConfig":
        """3DGS's schedule, made for 30 000 views, compressed into the views of `steps` steps
        of `batch_size` views: the same fractions of the run, with at least 25 views between
        densifications and at least one densification; opacity resets NOT compressed: every
        RESET_VIEWS views (3DGS's own spacing at any length), where that comes before
        densification stops; then counted in steps (each at least one), so that a batched fit
        densifies after the same views as one of a view a step."""
        f = steps * batch_size / 30_000
        interval = max(round(100 * f), 25)
        start = max(round(500 * f), interval)
        stop = max(round(15_000 * f), start + interval + 1)

        def in_steps(views: int) -> int:
            return max(1, round(views / batch_size))

        return cls(**{"start_step": in_steps(start), "interval": in_steps(interval),
                      "stop_step": max(in_steps(stop), in_steps(start) + in_steps(interval) + 1),
                      "reset_interval": in_steps(RESET_VIEWS) if RESET_VIEWS < stop else None,
                      **kwargs})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DensifyEvent:
    # the step (1-based: steps completed) this happened after
    step: int
    # splats before and after
    before: int
    after: int
    # splats cloned, split (parents), pruned; whether the opacity was reset
    cloned: int = 0
    split: int = 0
    pruned: int = 0
    reset: bool = False


# -- the operations ----------------------------------------------------------------------------

def reindex(g: Gaussians, optimizer, index, fresh=None) -> None:
    """Splat j becomes a copy of splat index[j] [M] int: its parameters, its optimizer state
    and its extra PLY properties, all through this one index; where `fresh` [M] bool is True
    the copy is a new splat and starts with zero optimizer state. Row arrays (index, fresh,
    and the other operations' rows and masks) live on the splats' backend."""
    be = g.backend
    xp = be.xp
    count = int(index.shape[0])
    g.params = Flat(g.layout.with_count(count),
                    g.layout.gather(g.params.data, index, count, tag="params", backend=be))
    if optimizer is not None:
        optimizer.gather(index if fresh is None else xp.where(fresh, -1, index), count)
    if g.extra:
        host = be.to_numpy(index)
        g.extra = {k: np.asarray(v)[host] for k, v in g.extra.items()}


def _appended(xp, kept, new_rows):
    """(index, fresh, origin) of the splats `kept` followed by copies of `new_rows`."""
    index = xp.concatenate([kept, new_rows])
    fresh = xp.concatenate([xp.zeros(kept.shape[0], bool), xp.ones(new_rows.shape[0], bool)])
    return index, fresh, xp.where(fresh, -1, index)


def clone(g: Gaussians, optimizer, rows):
    """Append an exact copy of each splat in `rows` [K] int, after the others; a copy starts
    with zero optimizer state (the original keeps its own). Returns origin [N + K]."""
    xp = g.backend.xp
    index, fresh, origin = _appended(xp, xp.arange(g.count), rows)
    reindex(g, optimizer, index, fresh)
    return origin


def split(g: Gaussians, optimizer, rows, rng: np.random.Generator):
    """Replace each splat in `rows` [S] int by SPLIT_CHILDREN children drawn from its Gaussian,
    σ / SPLIT_SHRINK, with zero optimizer state: the other splats keep their order, then come
    every parent's first child, then every parent's second. Draws one [SPLIT_CHILDREN * S, 3]
    standard normal sample from `rng` (none when S = 0). Returns origin [N + S]."""
    xp = g.backend.xp
    parent = xp.zeros(g.count, bool)
    parent[rows] = True
    kept = xp.nonzero(~parent)[0]
    index, fresh, origin = _appended(xp, kept, xp.concatenate([rows] * SPLIT_CHILDREN))
    reindex(g, optimizer, index, fresh)
    if rows.shape[0]:
        _place_children(g.params, int(kept.shape[0]), rng, xp)
    return origin


def prune(g: Gaussians, optimizer, remove):
    """Drop the splats where `remove` [N] bool is True, with their state; the others keep their
    order. Returns origin [N - removed]."""
    keep = g.backend.xp.nonzero(~remove)[0]
    reindex(g, optimizer, keep)
    return keep


def reset_opacity(g: Gaussians, optimizer, opacity: float) -> None:
    """Cap every splat's opacity at `opacity` (0 < opacity < 1) and zero the opacities'
    optimizer state (3DGS does so for Adam)."""
    if not 0 < opacity < 1:
        raise ValueError(f"reset_opacity: opacity must lie in (0, 1), got {opacity!r}")
    xp = g.backend.xp
    cap = np.float32(math.log(opacity / (1 - opacity)))
    xp.minimum(g.opacities, cap, out=g.opacities)
    if optimizer is not None:
        optimizer.zero_state("opacities")


def carry(values, origin, xp):
    """A per-splat array (a strategy's statistics) moved like the splats by an operation that
    returned `origin`: row j takes values[origin[j]], and a new splat zero."""
    return xp.where(origin >= 0, values[xp.maximum(origin, 0)], 0).astype(values.dtype)


def _place_children(params: Flat, first: int, rng, xp) -> None:
    """Sample the split children's means from their parent's Gaussian and shrink their σ.
    Rows `first` to the end of `params` hold copies of their parents."""
    rows = slice(first, params.layout.count)
    sigma = xp.exp(params.scales[rows])  # [C, 3]
    q = params.quats[rows]
    z = xp.asarray(rng.standard_normal(sigma.shape).astype(np.float32))  # [C, 3]
    offset = xp.einsum("cij,cj->ci", quat_to_rotmat(q, xp), sigma * z)
    params.means[rows] += offset.astype(np.float32)
    params.scales[rows] = xp.log(sigma / SPLIT_SHRINK).astype(np.float32)


# -- strategies: when to run the operations ----------------------------------------------------

class Strategy(Protocol):
    """What fit() calls on a densification strategy (Densifier is 3DGS's)."""

    def active(self, step: int) -> bool:
        """Whether it still wants statistics after `step` steps."""

    def observe(self, out, grads) -> None:
        """Take one rendered view's render output and gradients."""

    def after_step(self, step: int, g: Gaussians, optimizer, rng: np.random.Generator
                   ) -> DensifyEvent | None:
        """Run the operations its schedule says after `step` steps (1-based)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Densifier:
    """3DGS's strategy for one fit: the gradient statistics, and the schedule on which they
    drive the operations (clone, split, prune, reset_opacity)."""

    def __init__(self, config: DensifyConfig, extent: float, backend, count: int):
        self.config = config
        self.extent = float(extent)
        self.backend = backend
        self._resets = 0
        self._zero_stats(count)

    def _zero_stats(self, count: int) -> None:
        be = self.backend
        self.grad_sum = be.zeros((count,), np.float32, tag="grads")  # [N] Σ |v_ndc| over views
        self.seen = be.zeros((count,), np.int32, tag="grads")  # [N] views the splat was in
        self.max_radius = be.zeros((count,), np.float32, tag="grads")  # [N] pixels

    # -- statistics ---------------------------------------------------------------------------
    def observe(self, out, grads) -> None:
        """Add one rendered view's screen-space gradients (render_backward's grads.means2d)."""
        xp = self.backend.xp
        cam = out.camera
        v = grads.means2d  # [N, 2] per pixel
        ndc = xp.sqrt((v[:, 0] * (0.5 * cam.width)) ** 2 + (v[:, 1] * (0.5 * cam.height)) ** 2)
        vis = out.visible
        self.grad_sum += xp.where(vis, ndc, 0).astype(np.float32)
        self.seen += vis.astype(np.int32)
        radii = out.projected["radii"].astype(np.float32)
        xp.maximum(self.max_radius, xp.where(vis, radii, 0), out=self.max_radius)

    def average_grad(self):
        """[N] mean screen-space gradient norm over the views each splat was seen in."""
        xp = self.backend.xp
        return xp.where(self.seen > 0, self.grad_sum / xp.maximum(self.seen, 1), 0)

    # -- the schedule -------------------------------------------------------------------------
    def active(self, step: int) -> bool:
        """Whether statistics are still gathered after `step` steps."""
        return step < self.config.stop_step

    def after_step(self, step: int, g: Gaussians, optimizer, rng: np.random.Generator
                   ) -> DensifyEvent | None:
        """Run what the schedule says after `step` steps (1-based) on `g` and `optimizer`."""
        c = self.config
        if step >= c.stop_step:
            return None
        event = None
        if step > c.start_step and step % c.interval == 0:
            event = self.densify_and_prune(g, optimizer, rng)
            event.step = step
        if c.reset_interval is not None and step % c.reset_interval == 0:
            self.reset_opacity(g, optimizer)
            event = event or DensifyEvent(step, g.count, g.count)
            event.reset = True
        return event

    def reset_opacity(self, g: Gaussians, optimizer) -> None:
        reset_opacity(g, optimizer, self.config.reset_opacity)
        self._resets += 1

    def densify_and_prune(self, g: Gaussians, optimizer, rng: np.random.Generator
                          ) -> DensifyEvent:
        """Clone, split, then prune, as the statistics and the config say; restart the
        statistics. The event's step is 0 (after_step sets it)."""
        c, xp = self.config, self.backend.xp
        n = g.count
        if self.grad_sum.shape[0] != n:
            raise ValueError(f"the densifier's statistics hold {self.grad_sum.shape[0]} splats "
                             f"but the Gaussians {n}: add or remove splats only through it")
        avg = self.average_grad()
        sigma_max = xp.exp(g.scales).max(axis=1) if n else xp.zeros(0, np.float32)
        grow = avg >= c.grad_threshold
        if c.max_splats is not None:  # each clone or split adds one splat
            grow = _strongest(grow, avg, max(c.max_splats - n, 0), xp)
        small = sigma_max <= c.percent_dense * self.extent
        clone_idx = xp.nonzero(grow & small)[0]
        split_idx = xp.nonzero(grow & ~small)[0]
        n_clone, n_split = int(clone_idx.shape[0]), int(split_idx.shape[0])

        # 1. grow: [originals | clones], then split: [originals but parents | clones | children]
        radius = carry(self.max_radius, clone(g, optimizer, clone_idx), xp)
        radius = carry(radius, split(g, optimizer, split_idx, rng), xp)

        # 2. prune: transparent splats, and (after a reset) oversized ones
        grown = g.count
        remove = 1.0 / (1.0 + xp.exp(-g.opacities)) < c.prune_opacity
        if self._resets:
            remove |= xp.exp(g.scales).max(axis=1) > c.max_world_scale * self.extent
            if c.max_screen_radius is not None:
                remove |= radius > c.max_screen_radius
        prune(g, optimizer, remove)
        self._zero_stats(g.count)
        return DensifyEvent(0, n, g.count, cloned=n_clone, split=n_split,
                            pruned=grown - g.count)

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        be = self.backend
        return {"grad_sum": be.to_numpy(self.grad_sum).copy(),
                "seen": be.to_numpy(self.seen).copy(),
                "max_radius": be.to_numpy(self.max_radius).copy(), "resets": self._resets}

    def load_state_dict(self, state: dict) -> None:
        be = self.backend
        self.grad_sum = be.asarray(np.asarray(state["grad_sum"], np.float32), tag="grads")
        self.seen = be.asarray(np.asarray(state["seen"], np.int32), tag="grads")
        self.max_radius = be.asarray(np.asarray(state["max_radius"], np.float32), tag="grads")
        self._resets = int(state["resets"])


def _strongest(mask, score, budget: int, xp):
    """`mask` limited to its `budget` highest-`score` entries."""
    if int(mask.sum()) <= budget:
        return mask
    ranked = xp.argsort(-xp.where(mask, score, -xp.inf), kind="stable")
    out = xp.zeros_like(mask)
    out[ranked[:budget]] = True
    return out
