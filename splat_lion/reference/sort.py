"""Reference of kernels/sort.cu: one stable radix pass, its counters, and the whole sort.

Same functions and arguments as splat_lion/sort.py, less the backend `be` (and outputs are
returned rather than written into buffers):

    radix_count    the counters before a pass: per-thread counts and per-block bases
    radix_scatter  one pass: pairs stably ordered by one digit of the keys
    radix_sort     every pass: pairs stably ordered by the low key_bits bits
"""

from __future__ import annotations

import numpy as np

from ..sort import SORT_THREADS, Geometry


def digit(keys, shift, bits):
    """[n] int64: bits [shift, shift + bits) of each uint32 key."""
    return ((np.asarray(keys, np.uint32) >> np.uint32(shift)) & np.uint32((1 << bits) - 1)
            ).astype(np.int64)


def radix_count(keys, shift, bits, geo: Geometry):
    """(counts [R * g], bases [R * gb + 1]) int32 of keys [n] for a digit of `bits` bits:
    counts[d * g + t] = keys of digit d among thread t's [t*items, (t+1)*items);
    block b = threads [b*SORT_THREADS, (b+1)*SORT_THREADS); bases[d * gb + b] = keys of a
    smaller digit + keys of digit d in blocks before b (an exclusive prefix sum in digit-major
    order); bases[R * gb] = n."""
    r = 1 << bits
    d = digit(keys, shift, bits)
    thread = np.arange(geo.n) // geo.items
    counts = np.zeros((r, geo.g), np.int64)
    np.add.at(counts, (d, thread), 1)
    blocks = np.zeros((r, geo.gb), np.int64)
    np.add.at(blocks, (d, thread // SORT_THREADS), 1)
    flat = blocks.ravel()
    bases = np.concatenate([[0], np.cumsum(flat)])
    return counts.ravel().astype(np.int32), bases.astype(np.int32)


def radix_scatter(keys_in, vals_in, shift, bits):
    """(keys_out, vals_out): the pairs stably ordered by the digit (vals_in None: the
    indices 0..n-1)."""
    keys_in = np.asarray(keys_in, np.uint32)
    vals = np.arange(keys_in.size, dtype=np.int32) if vals_in is None else \
        np.asarray(vals_in, np.int32)
    order = np.argsort(digit(keys_in, shift, bits), kind="stable")
    return keys_in[order], vals[order]


def radix_sort(keys, values=None, key_bits=32):
    """(keys, values) stably sorted by the low key_bits bits of the keys (values None: the
    indices, i.e. the sorting permutation)."""
    keys = np.asarray(keys, np.uint32)
    values = np.arange(keys.size, dtype=np.int32) if values is None else \
        np.asarray(values, np.int32)
    low = keys & np.uint32((1 << key_bits) - 1) if key_bits < 32 else keys
    order = np.argsort(low, kind="stable")
    return keys[order], values[order]
