"""splat_lion.layout: the flat parameter buffer, its views, and gather."""

from __future__ import annotations

import numpy as np
import pytest

from splat_lion import Flat, Layout


@pytest.mark.parametrize("sh_degree,width", [(0, 14), (1, 23), (2, 38), (3, 59)])
def test_gaussian_layout_has_the_3dgs_attributes(sh_degree, width):
    lay = Layout.gaussians(7, sh_degree)
    shapes = dict(lay.attributes)
    assert shapes["means"] == (3,) and shapes["quats"] == (4,) and shapes["opacities"] == ()
    assert shapes["sh0"] == (1, 3)
    assert sum(s.width for s in lay.segments) == width
    assert ("shN" in lay) == (sh_degree > 0)


@pytest.mark.parametrize("count", [0, 1, 5, 1001])
def test_segments_are_16_byte_aligned_and_disjoint(count):
    lay = Layout.gaussians(count, 3)
    ends = 0
    for s in lay.segments:
        assert s.begin % 4 == 0 and s.begin >= ends and s.end == s.begin + count * s.width
        ends = s.end
    assert lay.total % 4 == 0 and lay.total >= ends
    np.testing.assert_array_equal(lay.segment_table()[:, 0], [s.begin for s in lay.segments])


def test_views_alias_the_flat_buffer(be):
    lay = Layout.gaussians(10, 2)
    flat = Flat.zeros(lay, tag="params", backend=be)
    flat.means[:] = 1.5
    flat["shN"][3, 2, 1] = 7.0
    data = be.to_numpy(flat.data)
    seg = lay.segment("means")
    assert (data[seg.begin:seg.end] == 1.5).all()
    assert data.sum() == 1.5 * 30 + 7.0
    assert flat.shN.shape == (10, 8, 3) and flat.opacities.shape == (10,)


def test_unknown_attribute_and_wrong_buffer_are_clear_errors():
    lay = Layout.gaussians(4, 0)
    flat = Flat(lay, np.zeros(lay.total, np.float32))
    with pytest.raises(AttributeError, match="no attribute 'shN'.*means"):
        flat.shN
    with pytest.raises(KeyError, match="unknown attribute 'colors'"):
        lay.segment("colors")
    with pytest.raises(ValueError, match=rf"expected a flat \[{lay.total}\] array"):
        Flat(lay, np.zeros(lay.total + 4, np.float32))
    with pytest.raises(ValueError, match="fresh identifier"):
        Layout([("a", (1,)), ("a", (2,))], 3)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_gather_moves_rows_of_every_attribute_and_zeroes_new_ones(be, rng, dtype):
    lay = Layout.gaussians(6, 1)
    host = rng.integers(1, 1000, lay.total).astype(dtype)
    for s in lay.segments:  # padding stays zero in every buffer
        host[s.end:(lay.segments[lay.names.index(s.name) + 1].begin
                    if s.name != lay.names[-1] else lay.total)] = 0
    index = np.array([5, 0, -1, 2, 2])
    out = lay.gather(be.asarray(host, tag="scratch"), be.asarray(index, tag="scratch"), 7,
                     backend=be)
    new = lay.with_count(7)
    out_host = be.to_numpy(out)
    assert out_host.dtype == dtype and out_host.shape == (new.total,)
    for name in lay.names:
        src = lay.view(host, name)
        got = new.view(out_host, name)
        for j, i in enumerate(index):
            np.testing.assert_array_equal(got[j], src[i] if i >= 0 else 0)
        assert not got[len(index):].any()


def test_gather_rejects_bad_indices(cpu):
    lay = Layout.gaussians(3, 0)
    buf = np.zeros(lay.total, np.float32)
    with pytest.raises(ValueError, match="-1..2"):
        lay.gather(buf, np.array([3]), 4, backend=cpu)
    with pytest.raises(ValueError, match="more than new_count"):
        lay.gather(buf, np.array([0, 1]), 1, backend=cpu)
    with pytest.raises(TypeError, match="integer array"):
        lay.gather(buf, np.array([0.5]), 1, backend=cpu)
