"""The CUDA-on-CPU runtime runs real kernel shapes correctly (and CuPy agrees, with a GPU).

Every test launches a kernel from tests/kernels/ on each backend and compares with NumPy.
Outputs made with `be.empty` start poisoned (conftest.py's poisoned_outputs), so unwritten
elements fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_test_kernel, poison_value

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

BLOCK_SIZES = [32, 64, 96, 100, 256, 333, 1000, 1024]


def poisoned(be, shape, dtype):
    """An output array of the kernel under test; poisoned, as every `be.empty` here."""
    return be.empty(shape, dtype, tag="scratch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint32,
                                   np.uint64])
def test_outputs_start_poisoned(be, dtype):
    """The guarantee the tests here lean on (NaN counts as equal to NaN)."""
    np.testing.assert_array_equal(be.to_numpy(poisoned(be, (5,), dtype)),
                                  np.full(5, poison_value(dtype), dtype))


@pytest.mark.parametrize("block", BLOCK_SIZES)
@pytest.mark.parametrize("kernel", ["tree_sum", "shuffle_sum"])
def test_block_reduction_matches_numpy(be, rng, kernel, block):
    n = int(rng.integers(block * 3, block * 9))
    x = rng.integers(0, 10, n).astype(np.float32)  # integer-valued: every sum order is exact
    blocks = (n + block - 1) // block
    block_sums = poisoned(be, (blocks,), np.float32)
    total = be.zeros((1,), np.float32, tag="scratch")
    k = load_test_kernel(be, "reduce", kernel)
    shared = 4 * ((block + 31) // 32) if kernel == "shuffle_sum" else 0
    be.launch(k, (blocks,), (block,), (be.asarray(x, tag="scratch"), block_sums, total, np.int32(n)),
              shared_bytes=shared)
    want = np.add.reduceat(x, np.arange(0, n, block))
    np.testing.assert_array_equal(be.to_numpy(block_sums), want)
    assert be.to_numpy(total)[0] == x.sum()


@pytest.mark.parametrize("warp_sum_on_cpu", [False, True], ids=["direct", "warp-shuffle"])
@pytest.mark.parametrize("num_bins", [1, 5])
def test_warp_sum_atomic_add_both_variants(be, rng, warp_sum_on_cpu, num_bins):
    if be.name == "cuda" and not warp_sum_on_cpu:
        pytest.skip("the direct variant exists on the CPU only")
    n = 5000
    x = rng.integers(-3, 10, n).astype(np.float32)  # negatives leave early: partial warps
    x[: n // 2] = np.abs(x[: n // 2])  # and full warps in the first half
    defines = {"SPLAT_LION_WARP_SUM_ON_CPU": 1} if warp_sum_on_cpu else None
    k = load_test_kernel(be, "reduce", "binned_sum", defines)
    out = be.zeros((num_bins,), np.float32, tag="scratch")
    be.launch(k, ((n + 127) // 128,), (128,), (be.asarray(x, tag="scratch"), out,
                                               np.int32(num_bins), np.int32(n)))
    keep = x >= 0
    want = np.bincount((np.arange(n)[keep] // 32) % num_bins, weights=x[keep], minlength=num_bins)
    np.testing.assert_array_equal(be.to_numpy(out), want.astype(np.float32))


def shuffle_reference(v, src, delta, lane_mask, width):
    """CUDA's __shfl*_sync results for full warps (PTX shfl semantics)."""
    n = v.size
    lane = np.arange(n) % 32
    warp0 = np.arange(n) - lane
    seg = lane & ~(width - 1)
    idx = v[warp0 + seg + (src & (width - 1))]
    up = np.where(lane - seg >= delta, v[np.clip(np.arange(n) - delta, 0, n - 1)], v)
    down = np.where(lane + delta <= seg + width - 1, v[np.clip(np.arange(n) + delta, 0, n - 1)], v)
    xl = lane ^ lane_mask
    xor = np.where(xl <= seg + width - 1, v[warp0 + np.minimum(xl, 31)], v)
    return idx, up, down, xor


@pytest.mark.parametrize("width", [1, 2, 4, 8, 16, 32])
def test_shuffles_follow_cuda_semantics(be, rng, width):
    n = 128
    v = rng.integers(-1000, 1000, n).astype(np.int32)
    src, delta, lane_mask = int(rng.integers(0, 40)), int(rng.integers(0, 9)), int(rng.integers(0, 32))
    outs = [poisoned(be, (n,), np.int32) for _ in range(4)]
    k = load_test_kernel(be, "warp", "shuffles")
    be.launch(k, (n // 64,), (64,), (be.asarray(v, tag="scratch"), *outs, np.int32(src),
                                     np.int32(delta), np.int32(lane_mask), np.int32(width)))
    for name, got, want in zip(["idx", "up", "down", "xor"], outs,
                               shuffle_reference(v, src, delta, lane_mask, width)):
        np.testing.assert_array_equal(be.to_numpy(got), want, err_msg=name)


def test_shuffles_move_8_byte_values(be, rng):
    n = 64
    v = rng.standard_normal(n)
    out = poisoned(be, (n,), np.float64)
    out_ll = poisoned(be, (n,), np.int64)
    k = load_test_kernel(be, "warp", "shuffle_wide")
    be.launch(k, (1,), (n,), (be.asarray(v, tag="scratch"), out, out_ll))
    np.testing.assert_array_equal(be.to_numpy(out), v[np.arange(n) ^ 1])
    lane = np.arange(n) % 32
    src = np.where(lane < 31, np.arange(n) + 1, np.arange(n))
    np.testing.assert_array_equal(be.to_numpy(out_ll), src.astype(np.int64) << 33)


def test_votes_ballot_all_any(be, rng):
    n = 256
    v = rng.integers(0, 4, n).astype(np.int32)
    v[64:96] |= 1  # one warp where every predicate holds
    v[96:128] &= ~1  # one where none does
    ballot = poisoned(be, (n,), np.uint32)
    all_ = poisoned(be, (n,), np.int32)
    any_ = poisoned(be, (n,), np.int32)
    be.launch(load_test_kernel(be, "warp", "votes"), (2,), (128,),
              (be.asarray(v, tag="scratch"), ballot, all_, any_))
    p = (v & 1).reshape(-1, 32)
    want_ballot = (p.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(1).astype(np.uint32)
    np.testing.assert_array_equal(be.to_numpy(ballot), np.repeat(want_ballot, 32))
    np.testing.assert_array_equal(be.to_numpy(all_) != 0, np.repeat(p.all(1), 32))
    np.testing.assert_array_equal(be.to_numpy(any_) != 0, np.repeat(p.any(1), 32))


def test_activemask_leaves_out_exited_lanes(be, rng):
    n = 96  # three warps: the last has 32 lanes, blocks of 48 make partial warps too
    v = rng.integers(0, 100, n).astype(np.int32)
    out = poisoned(be, (n,), np.uint32)
    be.launch(load_test_kernel(be, "warp", "active_after_exit"), (2,), (48,),
              (be.asarray(v, tag="scratch"), out))
    got = be.to_numpy(out)
    for block in range(2):
        for w0 in (0, 32):
            ids = np.arange(block * 48 + w0, min(block * 48 + w0 + 32, block * 48 + 48))
            stays = v[ids] % 3 != 0
            mask = sum(1 << int(lane) for lane in np.nonzero(stays)[0])
            np.testing.assert_array_equal(got[ids], np.where(stays, mask, 0))


@pytest.mark.parametrize("block", [32, 100, 256, 1024])
@pytest.mark.parametrize("k", [1, 2, 7])
def test_syncthreads_count_and_or(be, block, k):
    out = poisoned(be, (3 * 3,), np.int32)
    be.launch(load_test_kernel(be, "warp", "block_votes"), (3,), (block,), (np.int32(k), out))
    count = (np.arange(block) % k == 0).sum()
    want = np.tile([count, int(count == block), int(count > 0)], 3)
    np.testing.assert_array_equal(be.to_numpy(out), want)


def tile_loop_reference(items, threshold, pixels, threads):
    scale = 1.0 + (np.arange(pixels) % 3).astype(np.float32)
    csum = np.cumsum(items[None, :] * scale[:, None].astype(np.float32), axis=1, dtype=np.float32)
    reached = csum >= threshold
    done = reached.any(1)
    count = np.where(done, reached.argmax(1) + 1, items.size)
    sums = csum[np.arange(pixels), count - 1]
    last_batch = np.where(done, (count - 1) // threads, -1)  # -1: never done
    num_batches = (items.size + threads - 1) // threads
    per_block = last_batch.reshape(-1, threads)
    batches = np.where((per_block >= 0).all(1), per_block.max(1) + 1, num_batches)
    return sums, count, batches


@pytest.mark.parametrize("block,grid", [((16, 16, 1), (3, 2, 1)), ((8, 4, 2), (2, 1, 3)),
                                         ((32, 1, 1), (5, 1, 1))])
def test_batched_tile_loop_with_early_exit(be, rng, block, grid):
    threads, blocks = int(np.prod(block)), int(np.prod(grid))
    pixels = threads * blocks
    num_items = threads * 6 + 17
    items = rng.integers(1, 4, num_items).astype(np.float32)  # exact float sums
    threshold = float(rng.integers(threads, threads * 4))
    out_sum = poisoned(be, (pixels,), np.float32)
    out_count = poisoned(be, (pixels,), np.int32)
    batches = poisoned(be, (blocks,), np.int32)
    k = load_test_kernel(be, "tile_loop", "batched_accumulate")
    be.launch(k, grid, block, (be.asarray(items, tag="scratch"), np.int32(num_items),
                               np.float32(threshold), out_sum, out_count, batches),
              shared_bytes=4 * threads)
    want_sum, want_count, want_batches = tile_loop_reference(items, threshold, pixels, threads)
    np.testing.assert_array_equal(be.to_numpy(out_count), want_count)
    np.testing.assert_array_equal(be.to_numpy(out_sum), want_sum)
    np.testing.assert_array_equal(be.to_numpy(batches), want_batches)
    assert (want_batches < (num_items + threads - 1) // threads).any(), "no block exited early"


@pytest.mark.parametrize("grid,block", [((2, 3, 4), (4, 2, 3)), ((5, 1, 1), (64, 1, 1)),
                                         ((1, 2, 1), (3, 5, 7)), ((3, 1, 2), (1, 1, 64))])
def test_3d_indices(be, grid, block):
    threads, blocks = int(np.prod(block)), int(np.prod(grid))
    out = poisoned(be, (blocks * threads, 12), np.uint32)
    be.launch(load_test_kernel(be, "indexing", "where_am_i"), grid, block, (out,))
    bz, by, bx, tz, ty, tx = np.meshgrid(*[np.arange(d) for d in (grid[2], grid[1], grid[0],
                                                                 block[2], block[1], block[0])],
                                         indexing="ij")
    want = np.stack([tx, ty, tz, bx, by, bz] + [np.full_like(tx, d) for d in (*block, *grid)],
                    axis=-1).reshape(-1, 12)
    np.testing.assert_array_equal(be.to_numpy(out), want)


def test_vector_types_and_make_functions(be, rng):
    n = 1001
    v = rng.standard_normal((n, 4)).astype(np.float32)
    out = poisoned(be, (n, 4), np.float32)
    out2 = poisoned(be, (n, 2), np.float32)
    be.launch(load_test_kernel(be, "indexing", "swizzle4"), ((n + 127) // 128,), (128,),
              (be.asarray(v, tag="scratch"), out, out2, np.int32(n)))
    want = np.stack([v[:, 3], v[:, 2] + 1, v[:, 1] * 2, v[:, 0] - 3], axis=1)
    np.testing.assert_array_equal(be.to_numpy(out), want)
    np.testing.assert_array_equal(be.to_numpy(out2), np.stack([v[:, 0] + v[:, 1], v[:, 2] * v[:, 3]], 1))


def test_atomics_across_blocks_under_contention(be, rng):
    n, num_bins = 200_000, 3  # ~800 blocks hammering 3 counters from every OS thread
    values = rng.integers(0, 1000, n).astype(np.int32)
    ints = be.zeros((num_bins,), np.int32, tag="scratch")
    floats = be.zeros((num_bins,), np.float32, tag="scratch")
    ulls = be.zeros((1,), np.uint64, tag="scratch")
    extremes = be.asarray(np.array([-1, 10**6], np.int32), tag="scratch")
    cas = be.zeros((1,), np.int32, tag="scratch")
    be.launch(load_test_kernel(be, "atomics", "contend"), ((n + 255) // 256,), (256,),
              (be.asarray(values, tag="scratch"), np.int32(n), np.int32(num_bins), ints, floats,
               ulls, extremes, cas))
    bins = values % num_bins
    np.testing.assert_array_equal(be.to_numpy(ints), np.bincount(bins, minlength=num_bins))
    np.testing.assert_array_equal(be.to_numpy(floats),
                                  np.bincount(bins, weights=values & 7, minlength=num_bins))
    assert int(be.to_numpy(ulls)[0]) == int((values.astype(np.uint64) << np.uint64(20)).sum())
    np.testing.assert_array_equal(be.to_numpy(extremes), [values.max(), values.min()])
    assert int(be.to_numpy(cas)[0]) == n


def test_math_functions_and_intrinsics(be, rng):
    n = 4096
    x = rng.uniform(0.01, 10.0, n).astype(np.float32)
    u = rng.integers(1, 2**32, n, dtype=np.uint64).astype(np.uint32)
    fout = poisoned(be, (n, 12), np.float32)
    uout = poisoned(be, (n, 8), np.uint32)
    be.launch(load_test_kernel(be, "intrinsics", "math_ops"), ((n + 255) // 256,), (256,),
              (be.asarray(x, tag="scratch"), be.asarray(u, tag="scratch"), fout, uout, np.int32(n)))
    xd = x.astype(np.float64)
    want = np.stack([1 / np.sqrt(xd), np.exp(-xd), np.log(xd), np.clip(xd - 1, 0, 1), 1 / xd,
                     np.sin(xd), np.cos(xd), np.minimum(xd, 2) + np.maximum(xd, 3),
                     np.minimum(xd, 1.5) + np.maximum(xd, 0.5), -xd, -xd + np.sqrt(xd),
                     np.minimum(np.arange(n), 7) + np.maximum(u.astype(np.int64) & 15, 3)], axis=1)
    # fast intrinsics (__expf, __logf) are approximate on GPUs: a few ulp, absolute near 0
    np.testing.assert_allclose(be.to_numpy(fout), want, rtol=2e-6, atol=2e-6)
    bits = np.unpackbits(u.view(np.uint8).reshape(n, 4)[:, ::-1], axis=1)  # MSB first
    brev = np.packbits(bits[:, ::-1], axis=1)[:, ::-1].copy().view(np.uint32).ravel()
    clz = np.where(bits.any(1), bits.argmax(1), 32)
    ffs = np.where(bits.any(1), bits[:, ::-1].argmax(1) + 1, 0)  # lowest set bit, 1-based
    want_u = np.stack([bits.sum(1), brev, clz, ffs, x.view(np.uint32), (-x).view(np.uint32),
                       ((u.astype(np.uint64) * np.uint64(0x9E3779B9)) >> np.uint64(32)),
                       np.full(n, 2)], axis=1).astype(np.uint32)
    np.testing.assert_array_equal(be.to_numpy(uout), want_u)
