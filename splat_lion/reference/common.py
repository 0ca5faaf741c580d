"""Helpers the references share: bfloat16 rounding (the reference of kernels/common.cuh's
bit operations) and segment_rows, the walk over a flat buffer's segments (lion, adam)."""

from __future__ import annotations

import numpy as np


def bf16_to_float(h: np.ndarray) -> np.ndarray:
    """bfloat16 words (uint16) -> float32: the word is the float's top half."""
    return (np.asarray(h, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def float_to_bf16(f: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 words, round to nearest even; NaN stays (a quiet) NaN."""
    u = np.ascontiguousarray(f, np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = (u >> np.uint32(16)) | np.uint32(0x0040)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def segment_rows(segments: np.ndarray, visible: np.ndarray | None):
    """Per segment: (begin, end, width, active) with `active` [end - begin] bool, True for the
    elements of visible splats (all when visible is None).  segments: [S, 3] int64."""
    for begin, end, width in np.asarray(segments, np.int64).reshape(-1, 3):
        n = (end - begin) // width
        if visible is None:
            active = np.ones(end - begin, bool)
        else:
            active = np.repeat(np.asarray(visible, bool)[:n], width)
        yield int(begin), int(end), int(width), active
