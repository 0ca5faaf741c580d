"""The flat parameter layout: every attribute of N splats in ONE buffer (DESIGN §4).

    layout = Layout.gaussians(count=1000, sh_degree=3)
    params = Flat.zeros(layout, tag="params")          # one [total] float32 array
    params.means                                        # [N, 3] view into it
    grads = Flat.zeros(layout, tag="grads")             # same layout, so one fused launch
    kept = layout.gather(params.data, index, new_count) # densify: params, grads, state alike

Attributes lie back to back, each starting at a multiple of 4 floats (16 bytes), so a 16-byte
vector load never straddles two attributes; the few floats of padding after an attribute are
zero and stay zero. Grads and every optimizer-state buffer use the same layout (of any dtype:
bfloat16 momentum is a uint16 buffer with the same element offsets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend, get_backend
from .sh import sh_rest

ALIGN = 4  # floats per 16 bytes: every segment starts at a multiple of this


@dataclass(frozen=True)
class Segment:
    # attribute name, e.g. "means"
    name: str
    # shape of one splat's value, e.g. (3,) for means, () for opacities
    shape: tuple[int, ...]
    # first element of this attribute in the flat buffer (a multiple of ALIGN)
    begin: int
    # one past its last element (begin + count * width); padding follows up to the next segment
    end: int

    @property
    def width(self) -> int:
        """Floats per splat."""
        return math.prod(self.shape)


class Layout:
    """Attribute name -> segment of a flat buffer, for `count` splats."""

    def __init__(self, attributes: list[tuple[str, tuple[int, ...]]] | tuple, count: int):
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        if not attributes:
            raise ValueError("a layout needs at least one attribute")
        count = int(count)
        segments, offset, names = [], 0, set()
        for name, shape in attributes:
            shape = tuple(int(s) for s in shape)
            if not name.isidentifier() or name in names:
                raise ValueError(f"attribute name {name!r} is not a fresh identifier")
            if any(s < 1 for s in shape):
                raise ValueError(f"attribute {name!r}: shape {shape} has an empty axis")
            names.add(name)
            seg = Segment(name, shape, offset, offset + count * math.prod(shape))
            segments.append(seg)
            offset = _round_up(seg.end, ALIGN)
        self.count = count
        self.segments: tuple[Segment, ...] = tuple(segments)
        self.total = offset  # elements in a buffer of this layout (a multiple of ALIGN)
        self._by_name = {s.name: s for s in segments}

    @classmethod
    def gaussians(cls, count: int, sh_degree: int = 3) -> "Layout":
        """The 3DGS attributes: means [N,3], scales [N,3] (log σ), quats [N,4] (w,x,y,z),
        opacities [N] (logit), sh0 [N,1,3], shN [N,K-1,3] with K = (sh_degree + 1)²."""
        rest = sh_rest(sh_degree)
        attrs = [("means", (3,)), ("scales", (3,)), ("quats", (4,)), ("opacities", ()),
                 ("sh0", (1, 3))]
        if rest:  # degree 0 stores no shN (Gaussians.shN is then empty_shN)
            attrs.append(("shN", (rest, 3)))
        return cls(attrs, count)

    # -- description -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    @property
    def attributes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((s.name, s.shape) for s in self.segments)

    def segment(self, name: str) -> Segment:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown attribute {name!r}: this layout has "
                           f"{', '.join(self.names)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def with_count(self, count: int) -> "Layout":
        """The same attributes for another number of splats."""
        return Layout(self.attributes, count)

    def segment_table(self) -> np.ndarray:
        """[S, 3] int64: (begin, end, width) per segment, for the fused optimizer kernels."""
        return np.array([(s.begin, s.end, s.width) for s in self.segments], np.int64).reshape(-1, 3)

    def nbytes(self, dtype=np.float32) -> int:
        return self.total * np.dtype(dtype).itemsize

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Layout) and self.count == other.count
                and self.attributes == other.attributes)

    def __hash__(self) -> int:
        return hash((self.count, self.attributes))

    def __repr__(self) -> str:
        attrs = ", ".join(f"{s.name}{list(s.shape)}" for s in self.segments)
        return f"Layout(count={self.count}, {attrs}; total={self.total})"

    # -- buffers ---------------------------------------------------------------------------
    def check_buffer(self, buffer, what: str = "buffer") -> None:
        if getattr(buffer, "ndim", None) != 1 or buffer.shape[0] != self.total:
            raise ValueError(f"{what}: expected a flat [{self.total}] array for {self!r}, got "
                             f"shape {list(getattr(buffer, 'shape', ()))}")
        if not buffer.flags.c_contiguous:
            raise ValueError(f"{what}: must be C-contiguous")

    def view(self, buffer, name: str):
        """Attribute `name` of a flat buffer, as a [count, *shape] view (no copy)."""
        self.check_buffer(buffer)
        s = self.segment(name)
        return buffer[s.begin:s.end].reshape((self.count, *s.shape))

    def zeros(self, dtype=np.float32, *, tag: str, backend: Backend | None = None):
        """A zero flat buffer of this layout (padding included)."""
        return (backend or get_backend()).zeros((self.total,), dtype, tag=tag)

    def gather(self, buffer, index, new_count: int, *, tag: str = "scratch",
               backend: Backend | None = None):
        """A new flat buffer for `with_count(new_count)`: row j of every attribute is row
        `index[j]` of `buffer`; rows j >= len(index) and rows whose index is -1 are zero.

        The one operation densification needs, applied alike to params, grads and every
        optimizer-state buffer, so they stay aligned (a clone keeps its parameters through its
        index while its optimizer state is gathered with -1, starting from zero).
        """
        be = backend or get_backend()
        self.check_buffer(buffer)
        xp = be.xp
        index = xp.asarray(index)
        if index.ndim != 1 or index.dtype.kind not in "iu":
            raise TypeError(f"index: expected a 1-D integer array, got {index.dtype} "
                            f"shape {list(index.shape)}")
        if index.shape[0] > new_count:
            raise ValueError(f"index has {index.shape[0]} rows, more than new_count={new_count}")
        if index.size and (int(index.max()) >= self.count or int(index.min()) < -1):
            raise ValueError(f"index values must lie in -1..{self.count - 1}")
        out_layout = self.with_count(new_count)
        out = out_layout.zeros(buffer.dtype, tag=tag, backend=be)
        rows = index.shape[0]
        valid = index >= 0
        src_rows = xp.where(valid, index, 0)
        for s_in, s_out in zip(self.segments, out_layout.segments):
            src = buffer[s_in.begin:s_in.end].reshape(self.count, s_in.width)
            dst = out[s_out.begin:s_out.end].reshape(new_count, s_out.width)
            if rows and self.count:
                dst[:rows] = xp.where(valid[:, None], src[src_rows], 0)
        return out


class Flat:
    """A flat buffer on a Layout, read by attribute: `flat.means`, `flat["shN"]`."""

    __slots__ = ("layout", "data")

    def __init__(self, layout: Layout, data):
        layout.check_buffer(data, "data")
        self.layout = layout
        self.data = data

    @classmethod
    def zeros(cls, layout: Layout, dtype=np.float32, *, tag: str,
              backend: Backend | None = None) -> "Flat":
        return cls(layout, layout.zeros(dtype, tag=tag, backend=backend))

    def __getattr__(self, name: str) -> Any:
        if name in Flat.__slots__ or name.startswith("__"):
            raise AttributeError(name)
        if name not in self.layout:
            raise AttributeError(f"no attribute {name!r}: this buffer has "
                                 f"{', '.join(self.layout.names)}")
        return self.layout.view(self.data, name)

    def __getitem__(self, name: str):
        return self.layout.view(self.data, name)

    def items(self):
        return [(name, self[name]) for name in self.layout.names]

    def __repr__(self) -> str:
        return f"Flat({self.layout!r}, dtype={self.data.dtype})"


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m
