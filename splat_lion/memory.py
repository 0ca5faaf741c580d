"""Memory accounting (DESIGN §7): bytes per allocation tag, now and at peak, per phase of a step.

    be = get_backend()
    be.memory.current_bytes("params")          # tagged arrays alive on this backend now
    with memory.track(be) as t:                 # what a piece of code allocates
        with t.phase("project"):
            out = project_fwd(g, cam)
    t.peak_bytes("projection"), t.peak_total, t.phases["project"]["peak_bytes"]

    prof = profile_step(g, cam, target, optimizer)     # one fit step, by tag and by phase
    pred = predict_memory(g.count, w, h, g.sh_degree, "lion",
                          num_intersections=prof["num_intersections"])
    print(format_table({"lion": prof, "adam": ...}))

What is counted: every array the backend hands out (`empty`, `zeros`, `asarray` when it makes
or first sees an array, `table`, `argsort`, `cumsum`, `track`), from its creation until it is
freed, at its `nbytes`, under its tag. Not counted: arrays made with `xp` directly (NumPy/CuPy
temporaries such as SSIM's blurs in loss.py, or the gather after the sort in binning.py)
unless handed to `be.track(a, tag=...)`; profile_step does so for the ones a step keeps.
CuPy's pool rounds each block up to 512 bytes and keeps freed blocks; `cross_check()` sets
the tracked total beside the pool's and the driver's numbers.

Cost: one weak reference and a few dict updates per allocation (under 1 µs on the CPU).
Counts are updated without a lock: allocating from several Python threads at once may
make them drift.
"""

from __future__ import annotations

import functools
import math
import weakref
from contextlib import contextmanager, nullcontext

import numpy as np

from .backend import TAGS, Backend, check_tag, get_backend
from .sh import sh_rest

# The phases of a fit step, in order (profile_step's "by_phase").
PHASES = ("project", "binning", "rasterize", "loss", "backward", "optimizer")

# Optimizer names, as FitConfig.optimizer spells them -> (state buffers, bytes per element).
OPTIMIZER_STATE = {"lion": (1, 4), "lion-bf16": (1, 2), "adam": (2, 4)}

# predict_memory's default estimate of tile intersections: a splat's pixel bounding square
# has side sqrt(COVERAGE * W * H / N) + PAD, i.e. the splats' squares cover the image
# COVERAGE times over (the bundled scenes: 8 to 14), PAD for the radius rounded up; a square
# of side s touches (s / 16 + 1)² tiles of 16 x 16 on average.
COVERAGE = 10.0
PAD = 3.0

MIB = 2**20


class Counts:
    """Bytes per tag now and at peak, and the peak of their total."""

    def __init__(self) -> None:
        self._current = dict.fromkeys(TAGS, 0)
        self._peak = dict.fromkeys(TAGS, 0)
        self._total = 0
        self._peak_total = 0
        self._at_peak = dict(self._current)  # bytes per tag when the total peaked

    def _add(self, tag: str, n: int) -> None:
        cur = self._current[tag] + n
        self._current[tag] = cur
        if cur > self._peak[tag]:
            self._peak[tag] = cur
        self._total += n
        if self._total > self._peak_total:
            self._peak_total = self._total
            self._at_peak = dict(self._current)

    def _sub(self, tag: str, n: int) -> None:
        self._current[tag] -= n
        self._total -= n

    def current_bytes(self, tag: str | None = None) -> int:
        """Bytes alive now under `tag`, or in all (None)."""
        if tag is None:
            return self._total
        check_tag(tag)
        return self._current[tag]

    def peak_bytes(self, tag: str | None = None) -> int:
        """Most bytes alive at once under `tag` since the last reset_peak(), or of the total."""
        if tag is None:
            return self._peak_total
        check_tag(tag)
        return self._peak[tag]

    @property
    def peak_total(self) -> int:
        """Most bytes alive at once, all tags together, since the last reset_peak()."""
        return self._peak_total

    def by_tag(self) -> dict[str, int]:
        """tag -> its own peak (the tags need not peak together: their sum can exceed
        peak_total)."""
        return dict(self._peak)

    def at_peak(self) -> dict[str, int]:
        """tag -> bytes alive when the total peaked (sums to peak_total)."""
        return dict(self._at_peak)

    def reset_peak(self) -> None:
        """Peaks start again from what is alive now."""
        self._peak = dict(self._current)
        self._peak_total = self._total
        self._at_peak = dict(self._current)


class Ledger(Counts):
    """Every counted array alive on one backend (`backend.memory`); always on."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        # id(array) -> [weak reference, tag, nbytes, trackers that count it]
        self._live: dict[int, list] = {}
        # trackers inside whose `with` block we are: new arrays count in them too
        self._scopes: tuple[MemoryTracker, ...] = ()

    def add(self, a, tag: str):
        """Count `a`, an array just made, under `tag` until it is freed; returns `a`."""
        n = a.nbytes
        key = id(a)
        if n and key not in self._live:
            try:
                ref = weakref.ref(a, functools.partial(self._release, key))
            except TypeError:  # not weak-referenceable: cannot see it go, so do not count it
                return a
            scopes = self._scopes
            self._live[key] = [ref, tag, n, scopes]
            self._add(tag, n)
            for t in scopes:
                t._add(tag, n)
        return a

    def adopt(self, a, tag: str):
        """Count `a` (made elsewhere) unless it is counted already; a view counts as the
        array it views (once, whoever asks first); returns `a`."""
        owner = _owner(a)
        if owner is not None and id(owner) not in self._live:
            self.add(owner, tag)
        return a

    def _release(self, key: int, ref) -> None:
        entry = self._live.get(key)
        if entry is None or entry[0] is not ref:
            return
        del self._live[key]
        _, tag, n, scopes = entry
        self._sub(tag, n)
        for t in scopes:
            t._sub(tag, n)

    def tag_of(self, a) -> str | None:
        """The tag `a` is counted under (None if it is not counted)."""
        entry = self._live.get(id(a))
        return None if entry is None else entry[1]

    def cross_check(self) -> dict:
        return cross_check(self.backend)


class MemoryTracker(Counts):
    """Bytes of the arrays allocated inside `with tracker:` (and of those `include`d), per tag,
    now and at peak, and per named phase. Arrays allocated inside and freed after the block
    still leave the tracker when freed."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.ledger: Ledger = backend.memory
        # phase name -> {"peak_bytes": total, "by_tag": {tag: peak}, "at_peak": {tag: bytes}}
        self.phases: dict[str, dict] = {}

    @property
    def active(self) -> bool:
        return self in self.ledger._scopes

    def __enter__(self) -> MemoryTracker:
        if self.active:
            raise RuntimeError("this MemoryTracker is already active")
        self.ledger._scopes = (*self.ledger._scopes, self)
        return self

    def __exit__(self, *exc) -> None:
        self.ledger._scopes = tuple(t for t in self.ledger._scopes if t is not self)

    def include(self, a, tag: str | None = None):
        """Count `a`, an array alive already (parameters, optimizer state), as if allocated
        here: under the tag the backend counts it with, else under `tag`. A view counts as
        the array it views, if that is counted. Returns `a`."""
        led = self.ledger
        owner = _owner(a)
        if owner is None:
            return a
        entry = led._live.get(id(owner))
        if entry is None:
            if tag is None:
                raise ValueError("include: the backend does not count this array; pass its tag")
            check_tag(tag)
            led.add(owner, tag)  # counts in the active trackers too
            entry = led._live.get(id(owner))
            if entry is None:  # zero bytes
                return a
        if self not in entry[3]:
            entry[3] = (*entry[3], self)
            self._add(entry[1], entry[2])
        return a

    @contextmanager
    def phase(self, name: str):
        """Record the peak (total and per tag) reached inside the block as phase `name`
        (a repeated name keeps the larger peaks). Activates the tracker if needed."""
        saved = (self._peak, self._peak_total, self._at_peak)
        self.reset_peak()
        try:
            with nullcontext() if self.active else self:
                yield self
        finally:
            rec = self.phases.setdefault(name, {"peak_bytes": -1, "by_tag": dict.fromkeys(TAGS, 0),
                                                "at_peak": {}})
            for tag in TAGS:
                rec["by_tag"][tag] = max(rec["by_tag"][tag], self._peak[tag])
            if self._peak_total > rec["peak_bytes"]:
                rec["peak_bytes"] = self._peak_total
                rec["at_peak"] = dict(self._at_peak)
            # the enclosing peaks include this phase's
            peak, peak_total, at_peak = saved
            self._peak = {t: max(peak[t], self._peak[t]) for t in TAGS}
            if peak_total >= self._peak_total:
                self._peak_total, self._at_peak = peak_total, at_peak

    def cross_check(self) -> dict:
        return cross_check(self.backend)


def _owner(a):
    """The array whose memory `a` uses: `a`, or the array it is a view of (None when that
    memory belongs to no array, e.g. a view of a bytes object)."""
    base = getattr(a, "base", 0)
    if base is None:
        return a
    if isinstance(base, type(a)) and base.base is None:
        return base
    return None


def track(backend: Backend | None = None) -> MemoryTracker:
    """A MemoryTracker on `backend` (default: get_backend()); use as `with track(be) as t:`."""
    return MemoryTracker(backend or get_backend())


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


# -- one fit step, measured ------------------------------------------------------------------

def optimizer_name(optimizer) -> str:
    """"lion", "lion-bf16", "adam" (FitConfig's names), else the class name in lower case."""
    name = type(optimizer).__name__.lower()
    if name == "lion" and getattr(optimizer, "momentum_dtype", "float32") == "bfloat16":
        return "lion-bf16"
    return name


def profile_step(gaussians, camera, target, optimizer, *, background=(0.0, 0.0, 0.0),
                 sh_degree: int | None = None, selective: bool = True) -> dict:
    """Run ONE fit step (render, 3DGS loss, backward, optimizer.step_all, end_iteration;
    the Gaussians are updated) under a MemoryTracker, one phase per stage (PHASES).

    Counted: the parameters, the optimizer state (if it exists already: then
    "optimizer_state_resident" is true, as in every step of a fit but the first), the
    target (tag "loss") and everything the step allocates, including the arrays the
    wrappers make with xp and count through be.track: the sorted keys and ids
    ("intersections"), the visibility mask ("projection"), dL/dimage ("loss") and
    means2d_norm ("grads"). Not counted: other temporaries made with xp (SSIM's). The
    render runs through render(..., phase=tracker.phase): the same code as a fit step.

    Returns the JSON of `splat-lion profile`: {"peak_bytes": int, "by_tag": {tag: its own
    peak}, "by_phase": {phase: peak total}, "at_peak": {tag: bytes when the total peaked},
    "num_intersections": M (give it to predict_memory), "num_splats", "width", "height",
    "sh_degree", "optimizer", "optimizer_state_resident", "backend", "loss"}, plus
    "cross_check" on CUDA.
    """
    # here, not at the top: backend.py imports this module when it makes a backend
    from .loss import photometric_loss
    from .render import render, render_backward

    g = gaussians
    be = g.backend
    degree = g.sh_degree if sh_degree is None else sh_degree
    state = dict(getattr(optimizer, "flat_state", {}) or {})
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
    from .binning import num_tiles
    from .kernels import TILE

    if num_splats == 0:
        return 0.0
    side = math.sqrt(COVERAGE * width * height / num_splats) + PAD
    tx, ty = num_tiles(width, height)
    return min((side / TILE + 1) ** 2, float(tx * ty))


def predict_memory(num_splats: int, width: int, height: int, sh_degree: int, optimizer: str,
                   momentum_dtype: str | None = None, intersections_per_splat: float | None = None,
                   *, num_intersections: int | None = None,
                   optimizer_state_resident: bool = True) -> dict:
    """Tracked bytes of one fit step (what profile_step measures), from the sizes alone.

    optimizer: "lion", "adam", or "lion-bf16" (= "lion" with momentum_dtype="bfloat16");
    momentum_dtype: Lion's "float32" (default) or "bfloat16". Tile intersections M:
    num_intersections (exact, e.g. profile_step's), else num_splats x intersections_per_splat,
    else default_intersections_per_splat(). optimizer_state_resident: the state exists before
    the step (every step of a fit but the first; False: it is made in the optimizer phase).

    Returns {tag: its peak bytes for every tag, "peak": peak total bytes, "by_phase": {phase:
    peak total}, "num_intersections": M used}. Derivation: a list of the moments at which
    each phase peaks, each the bytes per tag alive then, read off the wrappers' allocations:
      params      4·P, P = Layout.gaussians(N, d).total floats (attributes padded to 4)
      optimizer   state buffers x P x 4 bytes (Lion 1, bf16 Lion 1 x 2 bytes, Adam 2)
      projection  project_fwd: radii, means2d, depths, conics, colors, tiles_touched: 44·N;
                  + the visibility mask N (bool)
      binning     cumsum 8·N + argsort 8·M (scratch) + unsorted keys 8·M, ids 4·M; then the
                  sorted keys 8·M replace the unsorted (20·M at once), sorted ids 4·M, and
                  tile ranges 8·T
      image       rasterize_fwd: image 12·HW, alpha 4·HW, last 4·HW (+ background 12)
      loss        target 12·HW, dL/dimage 12·HW, dL/dalpha 4·HW (backward)
      grads       rasterize_bwd 36·N + project_bwd (52 + 12·(K-1))·N + the flat grads 4·P,
                  all alive at once; after: flat grads 4·P, means2d 8·N, means2d_norm 4·N
    with N splats, M intersections, T tiles of 16², K = (d + 1)² SH coefficients.
    """
    from .binning import num_tiles
    from .layout import Layout

    _check_int("num_splats", num_splats, 0)
    _check_int("width", width, 1)
    _check_int("height", height, 1)
    rest = sh_rest(sh_degree)  # checks the degree
    if optimizer not in OPTIMIZER_STATE:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_STATE)}, got "
                         f"{optimizer!r}")
    if momentum_dtype is not None:
        if momentum_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"momentum_dtype must be 'float32' or 'bfloat16', got "
                             f"{momentum_dtype!r}")
        if optimizer == "adam" and momentum_dtype != "float32":
            raise ValueError("momentum_dtype: Adam keeps float32 moments; bfloat16 momentum "
                             "is Lion's (optimizer='lion')")
        if optimizer == "lion-bf16" and momentum_dtype != "bfloat16":
            raise ValueError("optimizer 'lion-bf16' has bfloat16 momentum; for float32 "
                             "momentum use optimizer='lion'")
        if optimizer == "lion" and momentum_dtype == "bfloat16":
            optimizer = "lion-bf16"
    if num_intersections is not None and intersections_per_splat is not None:
        raise ValueError("give num_intersections or intersections_per_splat, not both")
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
                raise ValueError(f"intersections_per_splat must be a finite number >= 0, got "
                                 f"{ipp!r}")
        m = round(num_splats * ipp)

    n, hw = int(num_splats), int(width) * int(height)
    p = Layout.gaussians(n, sh_degree).total
    tx, ty = num_tiles(width, height)
    t = tx * ty
    buffers, itemsize = OPTIMIZER_STATE[optimizer]
    state = buffers * p * itemsize
    dummy = 4 if rest == 0 else 0  # [1] float32 stand-in for shN at SH degree 0

    base = {"params": 4 * p, "loss": 12 * hw,
            "optimizer": state if optimizer_state_resident else 0}
    projected = {"projection": 44 * n, "image": 12}
    rendered = {**projected, "projection": 45 * n, "intersections": 12 * m + 8 * t,
                "image": 12 + 20 * hw}
    moments = [
        ("project", {**projected, "scratch": dummy}),
        # unsorted keys and ids 12·M, the sort's order 8·M, then the sorted keys 8·M (the
        # unsorted ones go as the sorted replace them), then tile ranges 8·T
        ("binning", {**projected, "scratch": 8 * n + 8 * m, "intersections": 20 * m}),
        ("binning", {**projected, "scratch": 8 * n + 8 * m, "intersections": 12 * m + 8 * t}),
        ("rasterize", rendered),
        ("loss", {**rendered, "loss": 24 * hw}),
        ("backward", {**rendered, "loss": 28 * hw,
                      "grads": 36 * n + (52 + 12 * rest) * n + dummy + 4 * p}),
        ("backward", {**rendered, "loss": 24 * hw, "grads": 4 * p + 12 * n}),
        ("optimizer", {**rendered, "loss": 24 * hw, "grads": 4 * p + 12 * n, "optimizer": state}),
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


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


# -- reports -----------------------------------------------------------------------------------

def format_table(runs: dict[str, dict]) -> str:
    """A text table of profile_step results (name -> profile), side by side, in MiB: the peak
    (and "predicted_peak_bytes" where a run has it), each tag's own peak, each phase's peak."""
    if not runs:
        raise ValueError("format_table: no runs to show")
    names = list(runs)
    biggest = max(r["peak_bytes"] for r in runs.values())
    digits = 3 if biggest < 10 * MIB else 2 if biggest < 1024 * MIB else 1
    width = max(10, *(len(n) for n in names))

    def row(label: str, values) -> str:
        cells = ("" if v is None else f"{v / MIB:.{digits}f}" for v in values)
        return f"{label:<24}" + "".join(f"{c:>{width + 2}}" for c in cells)

    lines = [f"{'MiB':<24}" + "".join(f"{n:>{width + 2}}" for n in names),
             row("peak", (r["peak_bytes"] for r in runs.values()))]
    if any("predicted_peak_bytes" in r for r in runs.values()):
        lines.append(row("predicted peak", (r.get("predicted_peak_bytes") for r in runs.values())))
    lines.append("by tag (each tag's peak)")
    for tag in TAGS:
        lines.append(row(f"  {tag}", (r["by_tag"].get(tag, 0) for r in runs.values())))
    lines.append("by phase (peak of the total)")
    phases = [p for p in PHASES if any(p in r["by_phase"] for r in runs.values())]
    phases += [p for r in runs.values() for p in r["by_phase"] if p not in phases]
    for p in dict.fromkeys(phases):
        lines.append(row(f"  {p}", (r["by_phase"].get(p) for r in runs.values())))
    return "\n".join(lines)


def plot_profile(runs: dict[str, dict], path, title: str | None = None):
    """A PNG at `path`: one bar per run (optimizer), the tags stacked as they stood when the
    total peaked ("at_peak"; each tag's own peak for a run without it), in MiB; a predicted
    peak, where given, as a black tick. Needs matplotlib (pip install 'splat-lion[plot]')."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"plot_profile needs matplotlib ({e}): pip install 'splat-lion[plot]' "
                          "or pip install matplotlib") from None
    if not runs:
        raise ValueError("plot_profile: no runs to plot")
    names = list(runs)
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bottom = np.zeros(len(names))
    for tag in TAGS:
        values = np.array([r.get("at_peak", r["by_tag"]).get(tag, 0) / MIB for r in runs.values()])
        if values.any():
            ax.bar(names, values, bottom=bottom, label=tag)
            bottom += values
    predicted = [(i, r["predicted_peak_bytes"] / MIB) for i, r in enumerate(runs.values())
                 if "predicted_peak_bytes" in r]
    if predicted:
        ax.scatter(*zip(*predicted), marker="_", s=900, color="black", label="predicted peak")
    ax.set_ylabel("MiB at the step's peak")
    ax.set_title(title or "memory per fit step, by tag")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
