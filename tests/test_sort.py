"""kernels/sort.cu (the radix sort binning uses) vs reference/sort.py and NumPy's stable
argsort."""

from __future__ import annotations

import re

import numpy as np
import pytest

from splat_lion import kernels, sort
from splat_lion.reference import sort as ref
from splat_lion.sort import Geometry, digits, radix_count, radix_scatter, radix_sort

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


def random_keys(rng, n, bits, distinct):
    """n uint32 keys below 2^bits, drawn from `distinct` values (few: many ties)."""
    values = rng.integers(0, 2**bits, distinct, dtype=np.uint64).astype(np.uint32)
    return values[rng.integers(0, distinct, n)]


@pytest.mark.parametrize("n, bits, distinct", [
    (0, 32, 1), (1, 32, 1), (1000, 32, 5), (5000, 13, 8000), (100_000, 32, 1 << 20),
    (70_001, 16, 300), (3000, 4, 16), (2048, 8, 256)])
def test_radix_sort_matches_numpys_stable_argsort(be, rng, n, bits, distinct):
    keys = random_keys(rng, n, bits, distinct)
    values = rng.integers(-5, 2**31 - 1, n).astype(np.int32)
    got_keys, got_values = radix_sort(be.asarray(keys, tag="scratch"),
                                      be.asarray(values, tag="scratch"), bits, be)
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(be.to_numpy(got_keys), keys[order])
    np.testing.assert_array_equal(be.to_numpy(got_values), values[order])


@pytest.mark.parametrize("bits", [0, 7, 32])
def test_without_values_the_sort_gives_the_permutation(be, rng, bits):
    keys = random_keys(rng, 4000, 32, 50)
    low = keys & np.uint32((1 << bits) - 1) if bits < 32 else keys
    _, order = radix_sort(be.asarray(keys, tag="scratch"), None, bits, be)
    np.testing.assert_array_equal(be.to_numpy(order), np.argsort(low, kind="stable"))


def test_the_high_bits_are_ignored(be, rng):
    keys = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    want_keys, want_values = ref.radix_sort(keys, None, 9)
    got_keys, got_values = radix_sort(be.asarray(keys, tag="scratch"), None, 9, be)
    np.testing.assert_array_equal(be.to_numpy(got_keys), want_keys)
    np.testing.assert_array_equal(be.to_numpy(got_values), want_values)


def test_gather_reads_the_source_at_each_sorted_value(be, rng):
    keys = random_keys(rng, 5000, 32, 100)
    src = rng.integers(0, 50, 5000).astype(np.int32)
    dst = be.empty(5000, np.int32, tag="scratch")
    _, order = radix_sort(be.asarray(keys, tag="scratch"), None, 32, be,
                          gather=(be.asarray(src, tag="scratch"), dst))
    np.testing.assert_array_equal(be.to_numpy(dst), src[be.to_numpy(order)])


# Small geometries: many threads and blocks per pass, ragged last thread and block.
GEOMETRIES = [(1, 1), (1000, 7), (5000, 64), (20_000, 1024), (33 * 32 * 3 + 5, 3)]


@pytest.mark.parametrize("n, items", GEOMETRIES)
@pytest.mark.parametrize("shift, bits", [(0, 8), (5, 3), (24, 8), (0, 1)])
def test_radix_count_matches_reference(be, rng, n, items, shift, bits):
    geo = Geometry.of(n, items)
    keys = random_keys(rng, n, 32, 40)
    c, b = geo.counter_entries(bits)
    counts = be.empty(c, np.int32, tag="scratch")
    bases = be.empty(b, np.int32, tag="scratch")
    done = be.zeros(1, np.int32, tag="scratch")
    radix_count(be.asarray(keys, tag="scratch"), shift, bits, geo, counts, bases, done, be)
    want_counts, want_bases = ref.radix_count(keys, shift, bits, geo)
    np.testing.assert_array_equal(be.to_numpy(counts), want_counts)
    np.testing.assert_array_equal(be.to_numpy(bases), want_bases)
    assert be.to_numpy(done)[0] == 0  # ready for the next launch


@pytest.mark.parametrize("n, items", GEOMETRIES)
@pytest.mark.parametrize("with_values", [True, False])
def test_radix_scatter_matches_reference(be, rng, n, items, with_values):
    geo = Geometry.of(n, items)
    keys = random_keys(rng, n, 32, 40)
    values = rng.integers(0, 2**31 - 1, n).astype(np.int32) if with_values else None
    shift, bits = 3, 6
    counts, bases = ref.radix_count(keys, shift, bits, geo)
    keys_out = be.empty(n, np.uint32, tag="scratch")
    vals_out = be.empty(n, np.int32, tag="scratch")
    radix_scatter(be.asarray(keys, tag="scratch"),
                  None if values is None else be.asarray(values, tag="scratch"), shift, bits,
                  geo, be.asarray(counts, tag="scratch"), be.asarray(bases, tag="scratch"),
                  keys_out, vals_out, be)
    want_keys, want_values = ref.radix_scatter(keys, values, shift, bits)
    np.testing.assert_array_equal(be.to_numpy(keys_out), want_keys)
    np.testing.assert_array_equal(be.to_numpy(vals_out), want_values)


@pytest.mark.parametrize("key_bits, want", [
    (0, ()), (4, ((0, 4),)), (8, ((0, 8),)), (9, ((0, 5), (5, 4))), (13, ((0, 7), (7, 6))),
    (16, ((0, 8), (8, 8))), (17, ((0, 6), (6, 6), (12, 5))),
    (32, ((0, 8), (8, 8), (16, 8), (24, 8)))])
def test_digits_are_as_few_and_as_even_as_the_radix_allows(key_bits, want):
    assert digits(key_bits) == want


def test_key_bits_cover_the_keys():
    assert [sort.key_bits_for(c) for c in (0, 1, 2, 3, 4, 5, 256, 257)] == [0, 0, 1, 2, 2, 3,
                                                                          8, 9]


def test_a_second_sort_of_the_same_size_allocates_nothing(be, rng):
    keys = be.asarray(random_keys(rng, 30_000, 32, 1000), tag="scratch")
    radix_sort(keys, None, 32, be, key="test.sort")
    before = len(be.workspaces.buffers()), be.memory.current_bytes()
    radix_sort(keys, None, 32, be, key="test.sort")
    assert (len(be.workspaces.buffers()), be.memory.current_bytes()) == before
    be.workspaces.drop("test.")


def test_a_held_result_is_not_overwritten_by_the_next_sort(be, rng):
    a = random_keys(rng, 5000, 32, 100)
    b = random_keys(rng, 5000, 32, 100)
    first = radix_sort(be.asarray(a, tag="scratch"), None, 32, be, key="test.held")
    radix_sort(be.asarray(b, tag="scratch"), None, 32, be, key="test.held")
    np.testing.assert_array_equal(be.to_numpy(first[1]), np.argsort(a, kind="stable"))
    be.workspaces.drop("test.")


@pytest.mark.parametrize("bad, match", [
    ({"keys": np.zeros(10, np.int32)}, "keys"),
    ({"values": np.zeros(10, np.int64)}, "values"),
    ({"values": np.zeros(9, np.int32)}, "values"),
    ({"key_bits": 33}, "key_bits must lie in 0..32"),
])
def test_radix_sort_refuses_bad_arguments(be, bad, match):
    args = {"keys": np.zeros(10, np.uint32), "values": np.zeros(10, np.int32), "key_bits": 8,
            **bad}
    with pytest.raises((TypeError, ValueError), match=match):
        radix_sort(be.asarray(args["keys"], tag="scratch"),
                   be.asarray(args["values"], tag="scratch"), args["key_bits"], be)


def test_the_kernels_defaults_are_the_wrappers_defines():
    text = (kernels.kernel_dir() / "sort.cu").read_text()
    for name, value in sort.DEFINES.items():
        assert re.search(rf"#define {name} {value}\b", text), name
