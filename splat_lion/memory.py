"""Memory of a fit step (DESIGN §7), above the renderer: measured, predicted, cross-checked.

    with memory.track(be) as t:                 # what a piece of code allocates (ledger.py)
        with t.phase("project"):
            out = project_fwd(g, cam)
    prof = profile_step(g, cam, target, optimizer)     # one fit step, by tag and by phase
    pred = predict_memory(g.count, w, h, g.sh_degree, "lion",
                          num_intersections=prof["num_intersections"])
    cap = max_splats_within(budget, w, h, sh_degree, "lion", image_bytes=...)

What is counted (ledger.py keeps the counts): every array the backend hands out (`empty`,
`zeros`, `asarray` when it makes or first sees an array, `table`, `argsort`, `cumsum`,
`workspace`: binning's buffers, the backward pass's), and arrays made with `xp` that the
wrappers hand to `be.track(a, tag=...)` where they make them (dL/dimage in loss.py,
means2d_norm). The fused loss's buffers and the target's cached SSIM statistics are
counted under "loss".
CuPy's pool rounds each block up to 512 bytes and keeps freed blocks; `cross_check()` sets
the tracked total beside the pool's and the driver's numbers. Tables and plots of these
results: report.py.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import Backend, get_backend
from .binning import workspace_bytes as binning_workspace_bytes
from .errors import ConfigError, MemoryBudgetError
from .kernels import TILE, num_tiles
from .layout import Layout
from .ledger import TAGS, MemoryTracker
from .loss import photometric_loss
from .optim.registry import optimizer_name, optimizer_spec
from .render import render, render_backward
from .sh import sh_rest
from .ssim import num_partials

# The phases of a fit step, in order (profile_step's "by_phase").
PHASES = ("project", "binning", "rasterize", "loss", "backward", "optimizer")

# predict_memory's default estimate of tile intersections: a splat's pixel bounding square
# has side sqrt(COVERAGE * W * H / N) + PAD, i.e. the splats' squares cover the image
# COVERAGE times over (the bundled scenes: 8 to 14), PAD for the radius rounded up; a square
# of side s touches (s / 16 + 1)² tiles of 16 x 16 on average.
COVERAGE = 10.0
PAD = 3.0



def track(backend: Backend | None = None) -> MemoryTracker:
    """A MemoryTracker on `backend`'s ledger (default: get_backend()); use as
    `with track(be) as t:`."""
    return MemoryTracker((backend or get_backend()).memory)


def cross_check(backend: Backend | None = None) -> dict:
    """The tracked total beside what the device reports. On CUDA: CuPy's default pool
    (`used_bytes`: blocks in use, rounded up to 512 bytes; `total_bytes`: held from the
    driver, in use or cached) and cudaMemGetInfo (every process and context on the GPU).
    On the CPU only the tracked total."""
    be = backend or get_backend()
    out = {"backend": be.name, "tracked_bytes": be.memory.current_bytes()}
    if be.name == "cuda":
        cp = be.xp
        pool = cp.get_default_memory_pool()
        free, total = cp.cuda.runtime.memGetInfo()
        out.update(pool_used_bytes=int(pool.used_bytes()), pool_total_bytes=int(pool.total_bytes()),
                   device_free_bytes=int(free), device_total_bytes=int(total),
                   device_used_bytes=int(total - free))
    return out


def available_bytes(backend: Backend | None = None) -> int | None:
    """Memory a new allocation can have now: the GPU's free bytes plus what CuPy's pool holds
    unused, or on the CPU the system's available memory (Linux /proc/meminfo); None when
    unknown."""
    be = backend or get_backend()
    if be.name == "cuda":
        pool = be.xp.get_default_memory_pool()
        free, _ = be.xp.cuda.runtime.memGetInfo()
        return int(free) + int(pool.total_bytes()) - int(pool.used_bytes())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def require_memory(needed: int, what: str, fix: str, backend: Backend | None = None) -> None:
    """MemoryBudgetError when `needed` bytes exceed what is available now (see
    available_bytes): `what` needs about N MiB, M MiB are free; `fix`."""
    free = available_bytes(backend)
    if free is not None and needed > free:
        raise MemoryBudgetError(f"{what} needs about {needed / 2**20:,.0f} MiB, but only "
                                f"{free / 2**20:,.0f} MiB are available: {fix}")


# -- one fit step, measured ------------------------------------------------------------------

def profile_step(gaussians, camera, target, optimizer, *, background=(0.0, 0.0, 0.0),
                 sh_degree: int | None = None, selective: bool = True) -> dict:
    """Run ONE fit step (render, 3DGS loss, backward, optimizer.step_all, end_iteration;
    the Gaussians are updated) under a MemoryTracker, one phase per stage (PHASES).

    Counted: the parameters, the optimizer state (if it exists already: then
    "optimizer_state_resident" is true, as in every step of a fit but the first), the
    target (tag "loss") and everything the step allocates, including the arrays the
    wrappers make with xp and count through be.track, and the fused loss's buffers ("loss").
    The backend's workspaces (binning's buffers, the
    backward pass's) are let go of first, so the step makes them in the phase that uses
    them, as a fit's first step does; later steps hold them from the start, at the same
    peak. The render runs through render(..., phase=tracker.phase): the same code as a fit
    step.

    Returns the JSON of `splat-lion profile`: {"peak_bytes": int, "by_tag": {tag: its own
    peak}, "by_phase": {phase: peak total}, "at_peak": {tag: bytes when the total peaked},
    "num_intersections": M (give it to predict_memory), "num_splats", "width", "height",
    "sh_degree", "optimizer", "optimizer_state_resident", "backend", "loss"}, plus
    "cross_check" on CUDA.
    """
    g = gaussians
    be = g.backend
    degree = g.sh_degree if sh_degree is None else sh_degree
    state = dict(getattr(optimizer, "flat_state", {}) or {})
    be.workspaces.drop()  # made again inside: counted in their phases
    with track(be) as t:
        t.include(g.params.data, "params")
        for flat in state.values():
            t.include(flat.data, "optimizer")
        if isinstance(target, np.ndarray):
            target = target.astype(np.float32, copy=False)
        target = t.include(be.asarray(target, tag="loss"), "loss")
        out = render(g, camera, background, degree, phase=t.phase)
        with t.phase("loss"):
            value, v_image = photometric_loss(out.image, target)
        with t.phase("backward"):
            grads = render_backward(out, v_image)
        with t.phase("optimizer"):
            optimizer.step_all(g.params, grads, visible=out.visible if selective else None)
        optimizer.end_iteration()
    result = {
        "peak_bytes": t.peak_total,
        "by_tag": t.by_tag(),
        "by_phase": {p: t.phases[p]["peak_bytes"] for p in PHASES},
        "at_peak": t.at_peak(),
        "num_intersections": int(out.bins["num_intersections"]),
        "num_splats": g.count,
        "width": camera.width,
        "height": camera.height,
        "sh_degree": g.sh_degree,
        "optimizer": optimizer_name(optimizer),
        "optimizer_state_resident": bool(state),
        "backend": be.name,
        "loss": float(value),
    }
    if be.name == "cuda":
        result["cross_check"] = cross_check(be)
    return result


# -- prediction ------------------------------------------------------------------------------

def default_intersections_per_splat(num_splats: int, width: int, height: int) -> float:
    """Estimated tile intersections per splat (see COVERAGE, PAD); within ~30% on the bundled
    scenes from 64² to 1024². Scenes with large background splats can need several times
    more: give predict_memory the count profile_step measures."""
    if num_splats == 0:
        return 0.0
    side = math.sqrt(COVERAGE * width * height / num_splats) + PAD
    tx, ty = num_tiles(width, height)
    return min((side / TILE + 1) ** 2, float(tx * ty))


def predict_memory(num_splats: int, width: int, height: int, sh_degree: int, optimizer: str,
                   momentum_dtype: str | None = None, intersections_per_splat: float | None = None,
                   *, num_intersections: int | None = None,
                   optimizer_state_resident: bool = True, batch_size: int = 1) -> dict:
    """Tracked bytes of one fit step (what profile_step measures), from the sizes alone.

    optimizer: "lion", "adam", or "lion-bf16" (= "lion" with momentum_dtype="bfloat16");
    momentum_dtype: Lion's "float32" (default) or "bfloat16". Tile intersections M:
    num_intersections (exact, e.g. profile_step's), else num_splats x intersections_per_splat,
    else default_intersections_per_splat(). optimizer_state_resident: the state exists before
    the step (every step of a fit but the first; False: it is made in the optimizer phase).
    batch_size: views per step (FitConfig.batch_size); they run one after another into the
    same buffers, so a batch adds only its visibility union, N bytes.

    Returns {tag: its peak bytes for every tag, "peak": peak total bytes, "by_phase": {phase:
    peak total}, "num_intersections": M used}. Derivation: a list of the moments at which
    each phase peaks, each the bytes per tag alive then, read off the wrappers' allocations:
      params      4·P, P = Layout.gaussians(N, d).total floats (attributes padded to 4)
      optimizer   state buffers x P x 4 bytes (Lion 1, bf16 Lion 1 x 2 bytes, Adam 2)
      projection  project_fwd: radii, means2d, depths, conics, colors, tiles_touched: 44·N;
                  + the visibility mask N (bool, written by binning)
      binning     workspaces, kept from then on (binning.workspace_bytes): the depth sort
                  of N (16·N + its counters), tile counts and their prefix sum 8·N, tile
                  ids and ids 8·M, the tile sort (8·M + its counters), tile ranges 8·T
      image       rasterize_fwd: image 12·HW, alpha 4·HW, last 4·HW
      loss        target 12·HW; from the loss on: the target's SSIM statistics 24·HW (kept
                  with it), the fused loss's scratch 36·HW + 4·B, its value 4 and
                  dL/dimage 12·HW (workspaces, kept); the zero dL/dalpha 4·HW (a workspace,
                  from the backward pass on)
      grads       the flat grads 4·P and the screen-space gradients (means2d, conics,
                  colors) 32·N, both workspaces the kernels write into; a batch of views
                  (batch_size > 1) also its visibility union N (a workspace)
    with N splats, M intersections, T tiles of 16², K = (d + 1)² SH coefficients, B blocks
    of the fused loss (ssim.num_partials).
    """
    _check_int("num_splats", num_splats, 0)
    _check_int("width", width, 1)
    _check_int("height", height, 1)
    _check_int("batch_size", batch_size, 1)
    rest = sh_rest(sh_degree)  # checks the degree
    optimizer_spec(optimizer)  # checks the name
    if momentum_dtype is not None:
        if momentum_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"momentum_dtype must be 'float32' or 'bfloat16', got "
                             f"{momentum_dtype!r}")
        if optimizer == "adam" and momentum_dtype != "float32":
            raise ConfigError("momentum_dtype: Adam keeps float32 moments; bfloat16 momentum "
                             "is Lion's (optimizer='lion')")
        if optimizer == "lion-bf16" and momentum_dtype != "bfloat16":
            raise ConfigError("optimizer 'lion-bf16' has bfloat16 momentum; for float32 "
                             "momentum use optimizer='lion'")
        if optimizer == "lion" and momentum_dtype == "bfloat16":
            optimizer = "lion-bf16"
    if num_intersections is not None and intersections_per_splat is not None:
        raise ConfigError("give num_intersections or intersections_per_splat, not both")
    if num_intersections is not None:
        _check_int("num_intersections", num_intersections, 0)
        m = int(num_intersections)
    else:
        if intersections_per_splat is None:
            ipp = default_intersections_per_splat(num_splats, width, height)
        else:
            ipp = intersections_per_splat
            if isinstance(ipp, bool) or not isinstance(ipp, (int, float, np.number)) \
                    or not math.isfinite(ipp) or ipp < 0:
                raise ConfigError(f"intersections_per_splat must be a finite number >= 0, got "
                                 f"{ipp!r}")
        m = round(num_splats * ipp)

    n, hw = int(num_splats), int(width) * int(height)
    p = Layout.gaussians(n, sh_degree).total
    state = optimizer_spec(optimizer).state_bytes(p)
    dummy = 4 if rest == 0 else 0  # [1] float32 stand-in for shN at SH degree 0

    base = {"params": 4 * p, "loss": 12 * hw,
            "optimizer": state if optimizer_state_resident else 0}
    projected = {"projection": 44 * n}
    binned = binning_workspace_bytes(n, m, width, height)
    binned = {**projected, "projection": 44 * n + binned["projection"],
              "intersections": binned["intersections"]}
    rendered = {**binned, "image": 20 * hw}
    v_alpha = 4 * hw  # render_backward's zero dL/dalpha, a workspace
    # flat grads + means2d, conics, colors (+ a batch's visibility union): workspaces
    grads = 4 * p + 32 * n + (n if batch_size > 1 else 0)
    # the loss tag from the loss on (C = 3): target, statistics, scratch, dL/dimage, value
    loss_bytes = 84 * hw + 4 * num_partials(int(height), int(width), 3) + 4
    moments = [
        ("project", {**projected, "scratch": dummy}),
        ("binning", binned),
        ("rasterize", rendered),
        ("loss", {**rendered, "loss": loss_bytes}),
        ("backward", {**rendered, "loss": loss_bytes + v_alpha, "grads": grads}),
        ("optimizer", {**rendered, "loss": loss_bytes + v_alpha, "grads": grads,
                       "optimizer": state}),
    ]
    by_tag = dict.fromkeys(TAGS, 0)
    by_phase = dict.fromkeys(PHASES, 0)
    for phase, moment in moments:
        alive = {**base, **moment}
        for tag, b in alive.items():
            by_tag[tag] = max(by_tag[tag], b)
        by_phase[phase] = max(by_phase[phase], sum(alive.values()))
    return {**by_tag, "peak": max(by_phase.values()), "by_phase": by_phase,
            "num_intersections": m}


def predict_fit_peak(num_splats: int, width: int, height: int, sh_degree: int, optimizer: str,
                     *, image_bytes: int | None = None, train_views: int = 1,
                     batch_size: int = 1) -> int:
    """Predicted peak bytes of a fit: one step at its peak (predict_memory, with its
    batch_size) with all the images the fit keeps, `image_bytes` (training and held-out;
    default: the one target predict_memory counts), and the SSIM statistics (24·HW) that
    the loss keeps for each of its `train_views` targets once seen (predict_memory counts
    one)."""
    _check_int("train_views", train_views, 1)
    step = predict_memory(num_splats, width, height, sh_degree, optimizer,
                          batch_size=batch_size)["peak"]
    hw = width * height
    stats = 24 * hw * (train_views - 1)
    return step + stats + (0 if image_bytes is None else int(image_bytes) - 12 * hw)


def max_splats_within(budget: int, num_splats: int, width: int, height: int, sh_degree: int,
                      optimizer: str, *, image_bytes: int | None = None,
                      train_views: int = 1, batch_size: int = 1,
                      what: str = "the memory budget") -> int:
    """The most splats (at least `num_splats`, at most 64x as many) whose fit is predicted
    to stay within `budget` bytes (predict_fit_peak); MemoryBudgetError when even
    `num_splats` do not fit. `what` names the budget in that error (e.g. an option)."""
    def peak(n: int) -> int:
        return predict_fit_peak(n, width, height, sh_degree, optimizer, image_bytes=image_bytes,
                                train_views=train_views, batch_size=batch_size)

    start = peak(num_splats)
    if start > budget:
        raise MemoryBudgetError(
            f"a fit of {num_splats:,} splats at {width}x{height} with {optimizer} needs about "
            f"{start / 2**20:,.0f} MiB (predicted), more than {what} {budget / 2**20:,.0f} MiB")
    lo, hi = num_splats, max(num_splats, 1) * 64  # binary search for the largest that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if peak(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name} must be an int >= {least}, got {value!r}")
