"""Wrappers of kernels/sort.cu: a stable LSD radix sort of 32-bit keys carrying int32 values
(reference/sort.py: the same functions and arguments, less `be`).

    keys, values = radix_sort(keys, values, key_bits=13, be=be)   # sorted by the low 13 bits

A pass sorts by one digit of at most RADIX_BITS bits; `digits(key_bits)` splits the bits into
as few passes as that allows, as even as possible. Each thread walks ITEMS consecutive pairs
(`Geometry`). The counters and ping-pong buffers are workspaces (backend.py), so a sort
allocates nothing once its sizes have been seen. binning.py sorts the splats by depth, then
their intersections by tile, both with radix_sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .backend import Backend
from .checks import check_array

# Threads per block of the sort kernels: one warp, so a block's per-thread counters
# ([RADIX][SORT_THREADS] int32 = 33 KB with padding) fit in shared memory.
SORT_THREADS = 32
# The widest digit of one pass, in bits (RADIX = 256 counters per thread).
RADIX_BITS = 8
# Pairs each thread walks, in order: the counters cost R x 4 / ITEMS bytes per pair (1 byte
# at R = 256), and a thread's serial walk is ITEMS steps long.
ITEMS = 1024

DEFINES = {"SORT_THREADS": SORT_THREADS, "RADIX_BITS": RADIX_BITS}


@dataclass(frozen=True)
class Geometry:
    """How n pairs are split over threads and blocks: thread t walks [t*items, (t+1)*items)."""

    # pairs
    n: int
    # pairs per thread
    items: int
    # threads: ceil(n / items)
    g: int
    # blocks of SORT_THREADS: ceil(g / SORT_THREADS) (at least 1)
    gb: int

    @classmethod
    def of(cls, n: int, items: int = ITEMS) -> "Geometry":
        g = -(-n // items)
        return cls(n, items, g, max(1, -(-g // SORT_THREADS)))

    def counter_entries(self, bits: int) -> tuple[int, int]:
        """(entries of counts, of block_counts) for a digit of `bits` bits."""
        return (1 << bits) * self.g, (1 << bits) * self.gb + 1


def digits(key_bits: int) -> tuple[tuple[int, int], ...]:
    """(shift, bits) of each pass, lowest digit first: ceil(key_bits / RADIX_BITS) passes
    whose widths differ by at most one bit (13 bits: (0, 7), (7, 6)); none for 0 bits."""
    if not 0 <= key_bits <= 32:
        raise ValueError(f"key_bits must lie in 0..32, got {key_bits}")
    passes = -(-key_bits // RADIX_BITS)
    out, shift = [], 0
    for p in range(passes):
        bits = (key_bits - shift) // (passes - p) + (1 if (key_bits - shift) % (passes - p) else 0)
        out.append((shift, bits))
        shift += bits
    return tuple(out)


def _kernel(name: str, be: Backend):
    return kernels.function("sort", name, DEFINES, backend=be)


def _check_counters(geo: Geometry, bits: int, counts, block_counts, done, xp):
    c, b = geo.counter_entries(bits)
    check_array("counts", counts, np.int32, (c,), xp)
    check_array("block_counts", block_counts, np.int32, (b,), xp)
    if done is not None:
        check_array("done", done, np.int32, (1,), xp)


def _check_digit(shift: int, bits: int) -> None:
    if not (1 <= bits <= RADIX_BITS and 0 <= shift and shift + bits <= 32):
        raise ValueError(f"digit: bits must lie in 1..{RADIX_BITS} and shift + bits in ..32, "
                         f"got shift={shift}, bits={bits}")


def radix_count(keys, shift: int, bits: int, geo: Geometry, counts, block_counts, done,
                be: Backend) -> None:
    """The counters of a pass by the digit `bits` bits from `shift` of keys [n] uint32 (in
    their order before the pass): counts [R * g] per thread; block_counts [R * gb + 1] made
    bases (the exclusive prefix sum in digit-major order, then the total). done [1] must be
    zero (it is again afterwards)."""
    xp = be.xp
    _check_digit(shift, bits)
    check_array("keys", keys, np.uint32, (geo.n,), xp)
    _check_counters(geo, bits, counts, block_counts, done, xp)
    be.launch(_kernel("radix_count", be), (geo.gb,), (SORT_THREADS,),
              (keys, np.int64(geo.n), np.int64(geo.items), np.int64(geo.g), np.int64(geo.gb),
               np.int32(shift), np.int32(bits), counts, block_counts, done))


def radix_scatter(keys_in, vals_in, shift: int, bits: int, geo: Geometry, counts, bases,
                  keys_out, vals_out, be: Backend, *, gather=None) -> None:
    """One pass: keys_in [n] uint32 and vals_in [n] int32 (None: the indices) into keys_out
    and vals_out, stably ordered by the digit, from radix_count's counts and bases.
    gather=(src, dst): also dst[position] = src[value] (src int32 indexed by value, dst [n]
    int32)."""
    xp = be.xp
    n = geo.n
    _check_digit(shift, bits)
    check_array("keys_in", keys_in, np.uint32, (n,), xp)
    if vals_in is not None:
        check_array("vals_in", vals_in, np.int32, (n,), xp)
    check_array("keys_out", keys_out, np.uint32, (n,), xp)
    check_array("vals_out", vals_out, np.int32, (n,), xp)
    _check_counters(geo, bits, counts, bases, None, xp)
    if gather is not None:
        src, dst = gather
        check_array("gather source", src, np.int32, (None,), xp)
        check_array("gather destination", dst, np.int32, (n,), xp)
    else:
        src = dst = vals_out  # not read
    be.launch(_kernel("radix_scatter", be), (geo.gb,), (SORT_THREADS,),
              (keys_in, vals_out if vals_in is None else vals_in, np.int32(vals_in is not None),
               np.int64(n), np.int64(geo.items), np.int64(geo.g), np.int64(geo.gb),
               np.int32(shift), np.int32(bits), counts, bases, keys_out, vals_out, src, dst,
               np.int32(gather is not None)))


def radix_sort(keys, values=None, key_bits: int = 32, be: Backend | None = None, *,
               key: str = "sort", gather=None, in_place: bool = False):
    """(keys, values) [n] stably sorted by the low `key_bits` bits of the keys (uint32);
    values [n] int32, or None for the indices (then values is the sorting permutation).
    Bits above key_bits are ignored. gather=(src, dst): dst[i] = src[values[i]] too.
    Two launches per pass (radix_count, radix_scatter). The results are views of workspaces
    `key`.* (a later sort with that key makes new ones while these are held); for key_bits 0
    the keys are the input itself. in_place=True (values given): the inputs serve as one of
    the two buffers the passes alternate between (their contents are lost; the results may
    be the inputs themselves), which saves a copy of the pairs in memory."""
    from .backend import get_backend

    be = be or get_backend()
    xp = be.xp
    n = keys.shape[0] if getattr(keys, "ndim", 0) == 1 else -1
    check_array("keys", keys, np.uint32, (n,), xp)
    if values is not None:
        check_array("values", values, np.int32, (n,), xp)
    if n >= 2**31:
        raise ValueError(f"radix_sort sorts fewer than 2^31 keys (int32 positions), got {n}")
    plan = digits(key_bits)
    if in_place and values is None:
        raise ValueError("in_place needs the values: the indices have no buffer to sort in")
    if in_place and not plan:
        if gather is not None:
            xp.take(gather[0], values, out=gather[1])
        return keys, values
    if not plan or n == 0:
        out = be.workspace(f"{key}.values.0", n, np.int32, tag="intersections")
        if values is not None:
            out[...] = values
        else:
            out[...] = xp.arange(n, dtype=np.int32)
        if gather is not None:
            xp.take(gather[0], out, out=gather[1])
        return keys, out
    geo = Geometry.of(n)
    counts, block_counts, done = counters(geo, max(b for _, b in plan), be, key)
    bufs = [(be.workspace(f"{key}.keys.{i}", n, np.uint32, tag="intersections"),
             be.workspace(f"{key}.values.{i}", n, np.int32, tag="intersections"))
            for i in ((0,) if in_place else (0, 1))]
    if in_place:
        bufs.append((keys, values))
    src = (keys, values)
    try:
        for p, (shift, bits) in enumerate(plan):
            c, b = geo.counter_entries(bits)
            radix_count(src[0], shift, bits, geo, counts[:c], block_counts[:b], done, be)
            dst = bufs[p % 2]
            radix_scatter(src[0], src[1], shift, bits, geo, counts[:c], block_counts[:b], *dst,
                          be, gather=gather if p == len(plan) - 1 else None)
            src = dst
    except BaseException:
        be.workspaces.drop(f"{key}.done")  # a failed launch may leave it non-zero
        raise
    return src


def workspace_bytes(n: int, key_bits: int, *, in_place: bool = False) -> int:
    """Bytes of the workspaces radix_sort keeps for n keys of key_bits bits (the memory
    predictor's arithmetic): the two buffers of pairs (one with in_place) and the counters."""
    plan = digits(key_bits)
    if not plan or n == 0:
        return 0 if in_place else 4 * n
    geo = Geometry.of(n)
    c, b = geo.counter_entries(max(bits for _, bits in plan))
    return (1 if in_place else 2) * 8 * n + 4 * (c + b + 1)


def counters(geo: Geometry, bits: int, be: Backend, key: str = "sort"):
    """(counts, block_counts, done): workspaces for the counters of passes of up to `bits`
    bits over `geo` (cut them to a pass's digit: Geometry.counter_entries); done stays zero
    between launches (radix_count's last block resets it)."""
    c, b = geo.counter_entries(bits)
    return (be.workspace(f"{key}.counts", c, np.int32, tag="intersections"),
            be.workspace(f"{key}.block_counts", b, np.int32, tag="intersections"),
            be.workspace(f"{key}.done", 1, np.int32, tag="intersections", zeros=True))


def key_bits_for(count: int) -> int:
    """Bits of the keys 0..count-1: 0 for one value or none."""
    return max(0, int(count) - 1).bit_length()
