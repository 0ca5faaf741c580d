"""The allocation ledger (DESIGN §7): bytes per tag of the arrays alive now and at peak.

The bottom floor of the package: it imports nothing from splat_lion, so `backend.py` can
count every allocation it hands out (`backend.memory` is a Ledger) and everything above can
read the counts. Profiling a fit step, predicting memory and cross-checking with the device
live above the renderer, in memory.py; tables and plots in report.py.

    led = Ledger()
    led.add(array, "params")                   # counted under its tag until it is freed
    with MemoryTracker(led) as t:              # what a piece of code allocates
        with t.phase("project"):
            ...
    t.peak_bytes("projection"), t.peak_total, t.phases["project"]["peak_bytes"]

Cost: one weak reference and a few dict updates per allocation (under 1 µs on the CPU).
Counts are updated without a lock: allocating from several Python threads at once may
make them drift.
"""

from __future__ import annotations

import functools
import weakref
from contextlib import contextmanager, nullcontext

# What an allocation is for (DESIGN §7).
TAGS = ("params", "grads", "optimizer", "projection", "intersections", "image", "loss", "scratch")


def check_tag(tag: str) -> None:
    if tag not in TAGS:
        raise ValueError(f"allocation tag {tag!r} is not one of {', '.join(TAGS)}")


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

    def __init__(self) -> None:
        super().__init__()
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


class MemoryTracker(Counts):
    """Bytes of the arrays allocated inside `with tracker:` (and of those `include`d), per tag,
    now and at peak, and per named phase. Arrays allocated inside and freed after the block
    still leave the tracker when freed."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger
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


def _owner(a):
    """The array whose memory `a` uses: `a`, or the array it is a view of (None when that
    memory belongs to no array, e.g. a view of a bytes object)."""
    base = getattr(a, "base", 0)
    if base is None:
        return a
    if isinstance(base, type(a)) and base.base is None:
        return base
    return None
