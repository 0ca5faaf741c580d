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

    def step_all(self, params: Flat, grads: Flat, visible=None) -> None:
        """Update every attribute of a flat layout in place, in one launch; `visible` [N]
        bool skips invisible splats entirely (no update, no state decay)."""

    def end_iteration(self) -> None:
        """Advance the iteration the learning-rate schedules read."""

    def lr_scale(self, name: str) -> float:
        """Multiplier on the base lr for `name` at the current iteration (1.0 if unlisted)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


# -- launch helpers shared by the fused kernels' wrappers ----------------------------------

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
    if not np.isfinite(hyper).all() or (hyper < 0).any():
        raise ValueError(f"hyper: learning rates and weight decays must be finite and >= 0, "
                         f"got {hyper.tolist()}")
    counts = set(((end - begin) // width).tolist())
    return counts.pop() if len(counts) == 1 else None


def visible_arg(be: Backend, visible, num_splats: int | None):
    """(uint8 mask array, has_visible) kernel arguments; a 1-element dummy without a mask."""
    if visible is None:
        return be.zeros((1,), np.uint8, tag="scratch"), np.int32(0)
    check_array("visible", visible, np.bool_, (None,), be.xp)
    if num_splats is None or visible.shape[0] != num_splats:
        raise ValueError(f"visible: expected one entry per splat ({num_splats}), got "
                         f"{visible.shape[0]}")
    return visible.view(np.uint8), np.int32(1)


def grid_for(total: int) -> tuple[int]:
    """One thread per 4-float chunk. (The kernels also loop grid-stride, but a capped grid
    makes each CPU-run thread stride through memory: 8x slower at 3M splats there.)"""
    chunks = (total + 3) // 4
    return (max(1, (chunks + BLOCK - 1) // BLOCK),)


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

    def _launch(self, be, params, grads, states, segments, hyper, visible, step) -> None:
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
                     self._hyper([name]), None, st.named_steps[name])

    def step_all(self, params: Flat, grads: Flat, visible=None) -> None:
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
        self._launch(be, params.data, grads.data, st.flat, layout.segment_table(),
                     self._hyper(layout.names), visible, st.flat_steps)

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
