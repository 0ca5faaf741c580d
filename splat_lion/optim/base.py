"""The Optimizer protocol, and what the fused optimizers (Lion, Adam) share.

An optimizer updates one named tensor (`step`) or every attribute of a flat layout in ONE
kernel launch (`step_all`). Its state (momentum, ...) lives in buffers of the parameters'
layout, so densification gathers state exactly like parameters (`gather`), and an opacity
reset can zero one attribute's state (`zero_state`). `end_iteration()` advances the step the
learning-rate schedules read.

A fused optimizer is a frozen dataclass of hyper-parameters plus one mutable part, its
`state` (OptimizerState: iteration, state buffers, update counts), visible and documented.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..backend import Backend, get_backend
from ..checks import check_aligned, check_array
from ..kernels import BLOCK
from ..layout import ALIGN, Flat, Layout
from .lr_table import LrTable


@runtime_checkable
class Optimizer(Protocol):
    def step(self, name: str, param, grad) -> None:
        """Update one named tensor in place (state created on first use)."""

    def step_all(self, params: Flat, grads: Flat, visible=None, *,
                 check_finite: bool = False) -> None:
        """Update every attribute of a flat layout in place, in one launch; `visible` [N]
        bool skips invisible splats entirely (no update, no state decay). `check_finite`:
        the launch also notes, on the device, the first iteration at which a gradient or an
        updated parameter is infinite or NaN (read it with nonfinite_step())."""

    def end_iteration(self) -> None:
        """Advance the iteration the learning-rate schedules read."""

    def lr_scale(self, name: str) -> float:
        """Multiplier on the base lr for `name` at the current iteration (1.0 if unlisted)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


# -- launch helpers shared by the fused kernels' wrappers ----------------------------------

# Chunks of 4 floats each thread of the fused kernels takes, and the entries one launch's
# segment table holds: passed to kernels/common.cuh as OPTIM_CHUNKS and OPTIM_MAX_SEGMENTS
# (its defaults are for tools that compile without them), so this is their one home.
CHUNKS_PER_THREAD = 4
MAX_SEGMENTS = 8
DEFINES = {"OPTIM_CHUNKS": CHUNKS_PER_THREAD, "OPTIM_MAX_SEGMENTS": MAX_SEGMENTS}
# Elements one table entry may hold: the kernels' offsets into it are 32-bit and their division
# by the width is exact below 2^30 (division_magic). Larger attributes are cut into pieces.
MAX_ENTRY_ELEMENTS = 1 << 30
# The step that records nothing (common.cuh, OPTIM_NO_STEP): INT_MAX.
NO_STEP = np.iinfo(np.int32).max

# One entry of the segment table (common.cuh, struct OptimSegment), and the table: one kernel
# parameter, passed by value.
SEGMENT_DTYPE = np.dtype([("begin", "<i8"), ("len", "<u4"), ("width", "<u4"), ("magic", "<u4"),
                          ("shift", "<u4"), ("splat0", "<u4"), ("first_block", "<i4"),
                          ("lr", "<f4"), ("wd", "<f4")], align=True)
TABLE_DTYPE = np.dtype([("seg", SEGMENT_DTYPE, (MAX_SEGMENTS,))], align=True)


def division_magic(width: int) -> tuple[int, int]:
    """(magic, shift) such that (e * magic) >> shift == e // width for every 0 <= e < 2^30: the
    kernels' one division per chunk. With l = ceil(log2 width) and shift = max(32, 30 + l),
    magic = ceil(2^shift / width) exceeds 2^shift / width by err / width, err < width <= 2^l,
    so e * magic / 2^shift = e / width + e * err / (width 2^shift), the last term below
    1 / width: the floor is kept. For width >= 2, shift >= 32 and magic < 2^32, so the GPU
    takes the high word of one 32-bit product (IMAD.HI) and shifts it; width 1 is (1, 0)."""
    if width == 1:
        return 1, 0
    shift = max(32, 30 + (width - 1).bit_length())
    return -(-(1 << shift) // width), shift


def check_tables(segments: np.ndarray, hyper: np.ndarray, total: int) -> int | None:
    """Validate the host segment and hyper-parameter tables of a fused step; return the
    number of splats every segment holds (None if the segments disagree).
    segments: [S, 3] int64 (begin, end, width); hyper: [S, 2] float32 (lr, weight decay)."""
    check_array("segments", segments, np.int64, (None, 3))
    num = segments.shape[0]
    check_array("hyper", hyper, np.float32, (num, 2))
    if num == 0:
        raise ValueError("segments: at least one segment is needed")
    begin, end, width = segments[:, 0], segments[:, 1], segments[:, 2]
    if (begin[0] != 0 or (begin % ALIGN).any() or (np.diff(begin) < 0).any() or (width < 1).any()
            or (end < begin).any() or (end[:-1] > begin[1:]).any() or end[-1] > total
            or ((end - begin) % width).any()):
        raise ValueError(f"segments: not a valid layout table for a buffer of {total} elements: "
                         f"{segments.tolist()}")
    if (width > MAX_ENTRY_ELEMENTS // ALIGN).any():
        raise ValueError(f"segments: a splat of more than {MAX_ENTRY_ELEMENTS // ALIGN} floats "
                         f"is not supported, got widths {width.tolist()}")
    if not np.isfinite(hyper).all() or (hyper < 0).any():
        raise ValueError(f"hyper: learning rates and weight decays must be finite and >= 0, "
                         f"got {hyper.tolist()}")
    counts = set(((end - begin) // width).tolist())
    return counts.pop() if len(counts) == 1 else None


@functools.lru_cache(maxsize=64)
def _plan(segments_key: bytes) -> tuple[tuple[np.ndarray, np.ndarray, int], ...]:
    """Per launch: (its table, learning rates and weight decays left at 0; the segment each
    entry comes from; its blocks). Entries hold at most MAX_ENTRY_ELEMENTS elements, cut at
    splat boundaries that are multiples of 4 splats (so every entry starts 16-byte aligned,
    and a width-1 entry's mask bytes 4-aligned); empty segments have none."""
    segments = np.frombuffer(segments_key, np.int64).reshape(-1, 3)
    entries = []  # (segment index, begin, len, width, splat0)
    for i, (begin, end, width) in enumerate(segments.tolist()):
        splats = (end - begin) // width
        per_entry = MAX_ENTRY_ELEMENTS // width // ALIGN * ALIGN
        for s0 in range(0, splats, per_entry):
            n = min(per_entry, splats - s0)
            entries.append((i, begin + s0 * width, n * width, width, s0))
    chunks_per_block = BLOCK * CHUNKS_PER_THREAD
    out = []
    for lo in range(0, len(entries), MAX_SEGMENTS):
        table = np.zeros(1, TABLE_DTYPE)
        seg = table["seg"][0]
        seg["first_block"] = np.iinfo(np.int32).max  # unused entries: never reached
        source = np.zeros(MAX_SEGMENTS, np.int64)
        blocks = 0
        for j, (i, begin, length, width, s0) in enumerate(entries[lo:lo + MAX_SEGMENTS]):
            magic, shift = division_magic(width)
            seg[j] = (begin, length, width, magic, shift, s0, blocks, 0.0, 0.0)
            source[j] = i
            chunks = -(-length // ALIGN)
            blocks += -(-chunks // chunks_per_block)
        table.setflags(write=False)
        out.append((table, source, blocks))
    return tuple(out)


def launch_tables(segments: np.ndarray, hyper: np.ndarray) -> list[tuple[np.ndarray, tuple]]:
    """The launches of a fused step over `segments` with `hyper` (ONE for any layout of up to
    MAX_SEGMENTS attributes of at most 2^30 floats each): per launch, (its OptimTable, a
    NumPy array of one TABLE_DTYPE element holding each entry's learning rate and weight
    decay; its grid). The geometry is computed once per segment table (_plan)."""
    out = []
    for base, source, blocks in _plan(np.ascontiguousarray(segments, np.int64).tobytes()):
        table = base.copy()
        seg = table["seg"][0]
        seg["lr"] = hyper[source, 0]
        seg["wd"] = hyper[source, 1]
        out.append((table, (max(1, blocks),)))
    return out


def struct_arg(be: Backend, record: np.ndarray):
    """A struct kernel parameter from a NumPy array of one structured element: CuPy passes a
    size-one NumPy array by value (its bytes); the CPU runtime takes the structured scalar."""
    return record[0] if be.xp is np else record


def visible_arg(be: Backend, visible, num_splats: int | None):
    """The uint8 mask kernel argument, or None without a mask. 4-byte aligned: a width-1
    attribute reads the mask bytes of its 4 splats as one word."""
    if visible is None:
        return None
    check_array("visible", visible, np.bool_, (None,), be.xp)
    if num_splats is None or visible.shape[0] != num_splats:
        raise ValueError(f"visible: expected one entry per splat ({num_splats}), got "
                         f"{visible.shape[0]}")
    check_aligned("visible", visible, 4)
    return visible.view(np.uint8)


def dummy_arg(be: Backend, dtype, value=0):
    """A 1-element device array for a pointer argument the kernel does not use (no mask) or
    never writes (no non-finite record): cached, made once per backend."""
    return be.table(np.full(1, value, dtype))


def check_nonfinite(be: Backend, nonfinite, record_step) -> tuple[object, np.int32]:
    """(flag array, step) kernel arguments: `nonfinite` an int32 [1] device array the kernel
    lowers to `record_step` where a value turns non-finite, or None (a dummy, and NO_STEP:
    nothing is recorded)."""
    if nonfinite is None:
        return dummy_arg(be, np.int32, NO_STEP), np.int32(NO_STEP)
    check_array("nonfinite", nonfinite, np.int32, (1,), be.xp)
    if isinstance(record_step, bool) or not isinstance(record_step, (int, np.integer)) or \
            not 0 <= record_step < NO_STEP:
        raise ValueError(f"record_step: expected an int in [0, {NO_STEP}) to record with "
                         f"nonfinite, got {record_step!r}")
    return nonfinite, np.int32(record_step)


def check_flat_arrays(be: Backend, params, grads, states: dict[str, Any]) -> int:
    """Checks of the flat arrays of a fused step; returns their length."""
    xp = be.xp
    check_array("params", params, np.float32, (None,), xp)
    total = params.shape[0]
    check_array("grads", grads, np.float32, (total,), xp)
    for name, a in states.items():
        check_array(name, a, a.dtype, (total,), xp)
    for name, a in [("params", params), ("grads", grads), *states.items()]:
        check_aligned(name, a, 4 * a.dtype.itemsize)
    return total


# -- the fused optimizers' common behaviour ------------------------------------------------

@dataclass
class OptimizerState:
    """What a fused optimizer changes as it runs; everything else about it is frozen config.
    state_dict() saves it, load_state_dict() replaces it."""

    # iterations completed (end_iteration calls): what the lr schedules read
    iteration: int = 0
    # step(): per named tensor, its state buffers by state name ("momentum", "exp_avg", ...)
    named: dict[str, dict[str, Any]] = field(default_factory=dict)
    # step(): per named tensor, the updates applied to it so far (Adam's t)
    named_steps: dict[str, int] = field(default_factory=dict)
    # step_all(): the flat state buffers by state name (None before the first step_all)
    flat: dict[str, Any] | None = None
    # step_all(): the layout of those buffers (the parameters' layout)
    flat_layout: Layout | None = None
    # step_all(): the updates applied so far (Adam's t)
    flat_steps: int = 0
    # step_all(check_finite=True): int32 [1] device array, the first iteration at which a
    # gradient or an updated parameter was not finite, NO_STEP (INT_MAX) if none (not saved)
    nonfinite: Any = None

    def replace_with(self, other: "OptimizerState") -> None:
        """Take every value of `other` (load_state_dict checks everything first, then swaps)."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))


@dataclass(frozen=True, eq=False)
class FusedOptimizer:
    """Base of Lion and Adam. A subclass is a frozen dataclass whose fields are its
    hyper-parameters (at least lr, beta1, beta2, weight_decay, lr_table, backend) and defines
    state_names, state_dtype(), config() and _launch(). Its one mutable part is `state`."""

    # the running state (iteration, state buffers, update counts); every new optimizer,
    # a builder's too, starts with a fresh one
    state: OptimizerState = field(default_factory=OptimizerState, init=False, repr=False,
                                  compare=False)

    state_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check_number("lr", self.lr)
        check_number("weight_decay", self.weight_decay)
        check_betas(beta1=self.beta1, beta2=self.beta2)
        if self.lr_table is not None and not isinstance(self.lr_table, LrTable):
            raise TypeError(f"lr_table: expected an LrTable, got {type(self.lr_table).__name__}")

    # -- to be defined by subclasses ----------------------------------------------------
    def state_dtype(self, name: str) -> np.dtype:
        raise NotImplementedError

    def _launch(self, be, params, grads, states, segments, hyper, visible, count, nonfinite,
                step) -> None:
        """One fused step: `count` is this update's 1-based count (Adam's t); `nonfinite` the
        flag array to lower to `step` where a value turns non-finite, or None."""
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    # -- builders -----------------------------------------------------------------------
    def with_betas(self, beta1: float, beta2: float) -> "FusedOptimizer":
        """The same optimizer with other betas, and fresh state."""
        return replace(self, beta1=beta1, beta2=beta2)

    def with_weight_decay(self, weight_decay: float) -> "FusedOptimizer":
        """The same optimizer with another weight decay, and fresh state."""
        return replace(self, weight_decay=weight_decay)

    # -- learning rates -----------------------------------------------------------------
    @property
    def iteration(self) -> int:
        return self.state.iteration

    def end_iteration(self) -> None:
        self.state.iteration += 1

    def lr_scale(self, name: str) -> float:
        return 1.0 if self.lr_table is None else self.lr_table.scale(name, self.state.iteration)

    def effective_lr(self, name: str) -> float:
        """The learning rate `name` is updated with now: lr x lr_scale(name)."""
        return self.lr * self.lr_scale(name)

    def _hyper(self, names) -> np.ndarray:
        return np.array([[self.effective_lr(n), self.weight_decay] for n in names],
                        np.float32).reshape(-1, 2)

    def _be(self) -> Backend:
        return self.backend or get_backend()

    # -- stepping -----------------------------------------------------------------------
    def step(self, name: str, param, grad) -> None:
        be = self._be()
        check_array(f"param {name!r}", param, np.float32, None, be.xp)
        check_array(f"grad {name!r}", grad, np.float32, param.shape, be.xp)
        st = self.state
        buffers = st.named.get(name)
        if buffers is None:
            buffers = {k: be.zeros(param.shape, self.state_dtype(k), tag="optimizer")
                       for k in self.state_names}
            st.named[name] = buffers
            st.named_steps[name] = 0
        elif next(iter(buffers.values())).shape != param.shape:
            raise ValueError(f"param {name!r}: shape {list(param.shape)} differs from its "
                             f"optimizer state {list(next(iter(buffers.values())).shape)}")
        st.named_steps[name] += 1
        segments = np.array([[0, param.size, 1]], np.int64)
        self._launch(be, param.reshape(-1), grad.reshape(-1),
                     {k: v.reshape(-1) for k, v in buffers.items()}, segments,
                     self._hyper([name]), None, st.named_steps[name], None, None)

    def step_all(self, params: Flat, grads: Flat, visible=None, *,
                 check_finite: bool = False) -> None:
        """Update every attribute in one launch (Optimizer.step_all). check_finite=True: the
        kernel also lowers the optimizer's flag to the current iteration where a gradient or
        an updated parameter of the updated splats is infinite or NaN; nothing is read back
        (nonfinite_step() reads it, reset_nonfinite() clears it)."""
        if not isinstance(params, Flat) or not isinstance(grads, Flat):
            raise TypeError("step_all(params, grads): both must be Flat buffers "
                            f"(got {type(params).__name__}, {type(grads).__name__})")
        layout = params.layout
        if grads.layout != layout:
            raise ValueError(f"grads layout {grads.layout!r} differs from params layout {layout!r}")
        be = self._be()
        st = self.state
        if st.flat is None:
            st.flat = {k: layout.zeros(self.state_dtype(k), tag="optimizer", backend=be)
                       for k in self.state_names}
            st.flat_layout = layout
        elif st.flat_layout != layout:
            raise ValueError(
                f"params have {layout.count} splats ({layout!r}) but the optimizer state was "
                f"made for {st.flat_layout.count}: after adding or removing splats, call "
                "optimizer.gather(index, new_count) with the index used for the parameters")
        st.flat_steps += 1
        nonfinite = None
        if check_finite:
            if st.nonfinite is None:
                st.nonfinite = be.asarray(np.full(1, NO_STEP, np.int32), tag="optimizer")
            nonfinite = st.nonfinite
        self._launch(be, params.data, grads.data, st.flat, layout.segment_table(),
                     self._hyper(layout.names), visible, st.flat_steps, nonfinite,
                     st.iteration)

    # -- non-finite values ---------------------------------------------------------------
    def nonfinite_step(self) -> int | None:
        """The first iteration whose step_all(check_finite=True) met a gradient or an updated
        parameter that is infinite or NaN, None if none has (since reset_nonfinite()). ONE
        host read (a device sync); find the attribute on the host afterwards."""
        st = self.state
        if st.nonfinite is None:
            return None
        value = int(self._be().to_numpy(st.nonfinite)[0])
        return None if value == NO_STEP else value

    def reset_nonfinite(self) -> None:
        """Forget what nonfinite_step() reports (on the device; nothing is read)."""
        if self.state.nonfinite is not None:
            self.state.nonfinite.fill(NO_STEP)

    # -- state surgery --------------------------------------------------------------------
    @property
    def flat_state(self) -> dict[str, Flat]:
        """The step_all state buffers by name (empty before the first step_all)."""
        st = self.state
        if st.flat is None:
            return {}
        return {k: Flat(st.flat_layout, v) for k, v in st.flat.items()}

    def gather(self, index, new_count: int) -> None:
        """Re-index the step_all state like the parameters (Layout.gather): row j takes row
        index[j]; rows past len(index), or with index -1, start from zero state."""
        st = self.state
        if st.flat is None:
            return
        st.flat = {k: st.flat_layout.gather(v, index, new_count, tag="optimizer",
                                            backend=self._be())
                   for k, v in st.flat.items()}
        st.flat_layout = st.flat_layout.with_count(new_count)

    def zero_state(self, attribute: str) -> None:
        """Zero one attribute's step_all state (3DGS does so for opacities on a reset)."""
        st = self.state
        for buf in st.flat.values() if st.flat is not None else ():
            st.flat_layout.view(buf, attribute)[...] = 0

    def state_bytes(self) -> int:
        """Bytes of optimizer state held now (named and flat)."""
        st = self.state
        arrays = [a for buffers in st.named.values() for a in buffers.values()]
        arrays += list(st.flat.values()) if st.flat is not None else []
        return sum(int(a.nbytes) for a in arrays)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: config (for reference), iteration, and
        every state buffer as a NumPy array."""
        be, st = self._be(), self.state
        out: dict[str, Any] = {"optimizer": type(self).__name__, "config": self.config(),
                               "iteration": st.iteration, "named": {}, "flat": None}
        for name, buffers in st.named.items():
            out["named"][name] = {"step": st.named_steps[name],
                                  **{k: be.to_numpy(v).copy() for k, v in buffers.items()}}
        if st.flat is not None:
            lay = st.flat_layout
            out["flat"] = {"count": lay.count,
                           "attributes": [[n, list(shape)] for n, shape in lay.attributes],
                           "step": st.flat_steps,
                           **{k: be.to_numpy(v).copy() for k, v in st.flat.items()}}
        return out

    def load_state_dict(self, state: dict) -> None:
        """Replace the running state by a state_dict()'s (all of it checked first)."""
        if state.get("optimizer") != type(self).__name__:
            raise ValueError(f"state_dict is for {state.get('optimizer')!r}, not "
                             f"{type(self).__name__}")
        be = self._be()

        def restore(entry: dict, where: str) -> dict:
            out = {}
            for k in self.state_names:
                a = np.asarray(entry.get(k))
                if a.dtype != self.state_dtype(k):
                    raise ValueError(f"state_dict {where}: {k} has dtype {a.dtype}, this "
                                     f"optimizer keeps {np.dtype(self.state_dtype(k)).name}")
                out[k] = be.asarray(a.copy(), tag="optimizer")
            return out

        s = OptimizerState(iteration=int(state["iteration"]))
        for name, entry in state["named"].items():
            s.named[name] = restore(entry, f"tensor {name!r}")
            s.named_steps[name] = int(entry["step"])
        if state["flat"] is not None:
            f = state["flat"]
            s.flat_layout = Layout([(n, tuple(shape)) for n, shape in f["attributes"]], f["count"])
            s.flat = restore(f, "flat state")
            for k, v in s.flat.items():
                s.flat_layout.check_buffer(v, f"state_dict flat {k}")
            s.flat_steps = int(f["step"])
        self.state.replace_with(s)


def check_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_betas(**betas: float) -> None:
    for name, b in betas.items():
        if isinstance(b, bool) or not isinstance(b, (int, float, np.floating)) \
                or not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {b!r}")
