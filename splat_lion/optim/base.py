"""The Optimizer protocol, and what the fused optimizers (Lion, Adam) share.

An optimizer updates one named tensor (`step`) or every attribute of a flat layout in ONE
kernel launch (`step_all`). Its state (momentum, ...) lives in buffers of the parameters'
layout, so densification gathers state exactly like parameters (`gather`), and an opacity
reset can zero one attribute's state (`zero_state`). `end_iteration()` advances the step the
learning-rate schedules read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
class _State:
    # iterations completed (end_iteration calls): what the lr schedules read
    iteration: int = 0
    # per named tensor (step()): state buffers, and updates applied so far
    named: dict[str, dict[str, Any]] = field(default_factory=dict)
    named_steps: dict[str, int] = field(default_factory=dict)
    # the flat layout's state buffers (step_all()), their layout, and updates applied so far
    flat: dict[str, Any] | None = None
    flat_layout: Layout | None = None
    flat_steps: int = 0


class FusedOptimizer:
    """Base of Lion and Adam; subclasses are frozen dataclasses with fields lr,
    weight_decay, lr_table, backend, and define state_names, state_dtype() and _launch()."""

    state_names: ClassVar[tuple[str, ...]] = ()
    lr: float
    weight_decay: float
    lr_table: LrTable | None
    backend: Backend | None

    def __post_init__(self) -> None:
        _check_number("lr", self.lr)
        _check_number("weight_decay", self.weight_decay)
        if self.lr_table is not None and not isinstance(self.lr_table, LrTable):
            raise TypeError(f"lr_table: expected an LrTable, got {type(self.lr_table).__name__}")
        object.__setattr__(self, "_s", _State())

    # -- to be defined by subclasses ----------------------------------------------------
    def state_dtype(self, name: str) -> np.dtype:
        raise NotImplementedError

    def _launch(self, be, params, grads, states, segments, hyper, visible, step) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    # -- learning rates -----------------------------------------------------------------
    @property
    def iteration(self) -> int:
        return self._s.iteration

    def end_iteration(self) -> None:
        self._s.iteration += 1

    def lr_scale(self, name: str) -> float:
        return 1.0 if self.lr_table is None else self.lr_table.scale(name, self._s.iteration)

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
        state = self._s.named.get(name)
        if state is None:
            state = {k: be.zeros(param.shape, self.state_dtype(k), tag="optimizer")
                     for k in self.state_names}
            self._s.named[name] = state
            self._s.named_steps[name] = 0
        elif next(iter(state.values())).shape != param.shape:
            raise ValueError(f"param {name!r}: shape {list(param.shape)} differs from its "
                             f"optimizer state {list(next(iter(state.values())).shape)}")
        self._s.named_steps[name] += 1
        segments = np.array([[0, param.size, 1]], np.int64)
        self._launch(be, param.reshape(-1), grad.reshape(-1),
                     {k: v.reshape(-1) for k, v in state.items()}, segments,
                     self._hyper([name]), None, self._s.named_steps[name])

    def step_all(self, params: Flat, grads: Flat, visible=None) -> None:
        if not isinstance(params, Flat) or not isinstance(grads, Flat):
            raise TypeError("step_all(params, grads): both must be Flat buffers "
                            f"(got {type(params).__name__}, {type(grads).__name__})")
        layout = params.layout
        if grads.layout != layout:
            raise ValueError(f"grads layout {grads.layout!r} differs from params layout {layout!r}")
        be = self._be()
        if self._s.flat is None:
            self._s.flat = {k: layout.zeros(self.state_dtype(k), tag="optimizer", backend=be)
                            for k in self.state_names}
            self._s.flat_layout = layout
        elif self._s.flat_layout != layout:
            raise ValueError(
                f"params have {layout.count} splats ({layout!r}) but the optimizer state was "
                f"made for {self._s.flat_layout.count}: after adding or removing splats, call "
                "optimizer.gather(index, new_count) with the index used for the parameters")
        self._s.flat_steps += 1
        self._launch(be, params.data, grads.data, self._s.flat, layout.segment_table(),
                     self._hyper(layout.names), visible, self._s.flat_steps)

    # -- state surgery --------------------------------------------------------------------
    @property
    def flat_state(self) -> dict[str, Flat]:
        """The step_all state buffers by name (empty before the first step_all)."""
        if self._s.flat is None:
            return {}
        return {k: Flat(self._s.flat_layout, v) for k, v in self._s.flat.items()}

    def gather(self, index, new_count: int) -> None:
        """Re-index the step_all state like the parameters (Layout.gather): row j takes row
        index[j]; rows past len(index), or with index -1, start from zero state."""
        if self._s.flat is None:
            return
        layout = self._s.flat_layout
        self._s.flat = {k: layout.gather(v, index, new_count, tag="optimizer", backend=self._be())
                        for k, v in self._s.flat.items()}
        self._s.flat_layout = layout.with_count(new_count)

    def zero_state(self, attribute: str) -> None:
        """Zero one attribute's step_all state (3DGS does so for opacities on a reset)."""
        for buf in self._s.flat.values() if self._s.flat is not None else ():
            self._s.flat_layout.view(buf, attribute)[...] = 0

    def state_bytes(self) -> int:
        """Bytes of optimizer state held now (named and flat)."""
        arrays = [a for st in self._s.named.values() for a in st.values()]
        arrays += list(self._s.flat.values()) if self._s.flat is not None else []
        return sum(int(a.nbytes) for a in arrays)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: config (for reference), iteration, and
        every state buffer as a NumPy array."""
        be = self._be()
        out: dict[str, Any] = {"optimizer": type(self).__name__, "config": self.config(),
                               "iteration": self._s.iteration, "named": {}, "flat": None}
        for name, st in self._s.named.items():
            out["named"][name] = {"step": self._s.named_steps[name],
                                  **{k: be.to_numpy(v).copy() for k, v in st.items()}}
        if self._s.flat is not None:
            lay = self._s.flat_layout
            out["flat"] = {"count": lay.count,
                           "attributes": [[n, list(shape)] for n, shape in lay.attributes],
                           "step": self._s.flat_steps,
                           **{k: be.to_numpy(v).copy() for k, v in self._s.flat.items()}}
        return out

    def load_state_dict(self, state: dict) -> None:
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

        s = _State(iteration=int(state["iteration"]))
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
        object.__setattr__(self, "_s", s)


def _check_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_betas(**betas: float) -> None:
    for name, b in betas.items():
        if isinstance(b, bool) or not isinstance(b, (int, float, np.floating)) \
                or not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {b!r}")
