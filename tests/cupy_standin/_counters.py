"""What the stand-in counts: host syncs (with their call sites), device operations,
allocations, RawKernel launches and host-to-device copies.

Counting is a few integer additions per operation; a call site (a walk up the stack to
the first frame outside the stand-in) is taken only for syncs, which are rare, and for
operations only inside `counting(trace=True)`.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
_ROOT = Path(__file__).resolve().parents[2]  # the checkout: call sites are shown from here

FIELDS = ("syncs", "ops", "allocations", "launches", "transfers", "explicit_syncs")


class _Totals:
    """The running totals since the process started (never reset: `counting` subtracts)."""

    __slots__ = FIELDS

    def __init__(self) -> None:
        for f in FIELDS:
            setattr(self, f, 0)


TOTALS = _Totals()
_active: list["Counting"] = []  # the counting() blocks we are inside
_tracing = [False]  # whether one of them records operation sites


def _where(f) -> str:
    path = Path(f.f_code.co_filename)
    try:
        shown = path.resolve().relative_to(_ROOT)
    except ValueError:
        shown = path
    return f"{shown}:{f.f_lineno} ({f.f_code.co_name})"


def call_site() -> str:
    """file:line (function) of the innermost frame outside the stand-in, then its caller's
    (`be.to_numpy` is rarely the interesting one)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_HERE):
        f = f.f_back
    if f is None:
        return "?"
    return _where(f) + (f" <- {_where(f.f_back)}" if f.f_back is not None else "")


def sync(kind: str) -> None:
    """A device -> host read that waits for the device: float(), int(), bool(), .item(),
    .get(), .tolist(), asnumpy, printing, or an operation whose output size depends on
    the data (boolean-mask indexing, nonzero): `kind` says which."""
    TOTALS.syncs += 1
    if _active:
        site = f"{kind} at {call_site()}"
        for c in _active:
            c.sync_sites.append(site)


def explicit_sync() -> None:
    """deviceSynchronize, Device.synchronize, Event.synchronize: waits, but reads nothing."""
    TOTALS.explicit_syncs += 1


def op(name: str) -> None:
    """One device operation (a CuPy call that launches work on the device)."""
    TOTALS.ops += 1
    if _tracing[0]:
        site = f"{name} at {call_site()}"
        for c in _active:
            if c.op_sites is not None:
                c.op_sites[site] += 1


def allocation() -> None:
    TOTALS.allocations += 1


def launch() -> None:
    TOTALS.launches += 1


def transfer() -> None:
    """A host -> device copy (cupy.asarray / cupy.array of host data)."""
    TOTALS.transfers += 1


class Counting:
    """`with counting() as c:` ... then c.syncs, c.ops, c.allocations, c.launches,
    c.transfers, c.explicit_syncs (counts inside the block), c.sync_sites (one line per
    sync: kind and call site), c.op_sites (trace=True: a Counter of "name at site")."""

    def __init__(self, trace: bool = False) -> None:
        self.trace = trace
        self.sync_sites: list[str] = []
        self.op_sites: collections.Counter | None = collections.Counter() if trace else None
        self._start: dict[str, int] = {}
        self._end: dict[str, int] | None = None

    def __enter__(self) -> "Counting":
        self._start = {f: getattr(TOTALS, f) for f in FIELDS}
        _active.append(self)
        _tracing[0] = any(c.trace for c in _active)
        return self

    def __exit__(self, *exc) -> None:
        self._end = {f: getattr(TOTALS, f) for f in FIELDS}
        _active.remove(self)
        _tracing[0] = any(c.trace for c in _active)

    def _get(self, field: str) -> int:
        end = self._end if self._end is not None else {f: getattr(TOTALS, f) for f in FIELDS}
        return end[field] - self._start[field]

    syncs = property(lambda self: self._get("syncs"))
    ops = property(lambda self: self._get("ops"))
    allocations = property(lambda self: self._get("allocations"))
    launches = property(lambda self: self._get("launches"))
    transfers = property(lambda self: self._get("transfers"))
    explicit_syncs = property(lambda self: self._get("explicit_syncs"))

    def as_dict(self) -> dict[str, int]:
        return {f: self._get(f) for f in FIELDS}

    def report(self, top: int = 15) -> str:
        lines = [", ".join(f"{f} {v}" for f, v in self.as_dict().items())]
        lines += [f"  sync: {s}" for s in self.sync_sites]
        if self.op_sites:
            lines += [f"  {n:4d} x {s}" for s, n in self.op_sites.most_common(top)]
        return "\n".join(lines)


def counting(trace: bool = False) -> Counting:
    """Count what the stand-in does inside a `with` block (see Counting)."""
    return Counting(trace)
