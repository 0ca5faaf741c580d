"""Reports (splat_lion/report.py): memory tables and plots, and the pictures of a fit."""

from __future__ import annotations

import sys

import pytest

from splat_lion import memory, report
from splat_lion.ledger import TAGS


def fake_profile(scale: int) -> dict:
    by_tag = {t: scale * (i + 1) * 2**20 for i, t in enumerate(TAGS)}
    return {"peak_bytes": sum(by_tag.values()), "by_tag": by_tag, "at_peak": by_tag,
            "by_phase": {p: scale * 2**20 for p in memory.PHASES}}


def test_format_table_lists_tags_and_phases_with_the_runs_side_by_side():
    runs = {"lion": fake_profile(1), "adam": {**fake_profile(2), "predicted_peak_bytes": 2**30}}
    text = report.format_table(runs)
    header, *rows = text.splitlines()
    assert header.split() == ["MiB", "lion", "adam"]
    for label in (*TAGS, *memory.PHASES, "peak", "predicted peak"):
        assert any(r.strip().startswith(label) for r in rows), label
    assert "1024.0" in text  # the predicted peak, in MiB


def test_plot_profile_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"splat-lion\[plot\]"):
        report.plot_profile({"lion": fake_profile(1)}, tmp_path / "m.png")


def test_plot_profile_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = report.plot_profile({"lion": fake_profile(1), "adam": fake_profile(2)},
                               tmp_path / "memory.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- depth and alpha as pictures ------------------------------------------------------------------

def without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.parametrize("matplotlib", ["installed", "missing"])
def test_depth_to_rgb_maps_near_to_far_and_paints_empty_pixels_grey(monkeypatch, matplotlib):
    import numpy as np

    if matplotlib == "installed":
        pytest.importorskip("matplotlib")
    else:
        without_matplotlib(monkeypatch)
    depth = np.tile(np.linspace(2.0, 6.0, 50, dtype=np.float32), (10, 1))
    alpha = np.ones_like(depth)
    alpha[:, :5] = 0.0  # nothing there: depth 0, as render writes it
    depth[:, :5] = 0.0
    rgb = report.depth_to_rgb(depth, alpha, near=2.5, far=5.5)
    assert rgb.shape == (10, 50, 3) and rgb.dtype == np.float32
    assert (rgb >= 0).all() and (rgb <= 1).all()
    np.testing.assert_array_equal(rgb[:, :5], np.broadcast_to(report.NO_DEPTH, (10, 5, 3)))
    near, far = report.TURBO_17[0], report.TURBO_17[-1]  # turbo's ends, dark blue and dark red
    np.testing.assert_allclose(rgb[0, 5], near, atol=0.031)  # 2.44 < near: clipped
    np.testing.assert_allclose(rgb[0, -1], far, atol=0.031)
    assert rgb[0, 10, 2] > rgb[0, 10, 0] and rgb[0, 45, 0] > rgb[0, 45, 2]  # blue near, red far
    # by default the range is the valid depths' 1st to 99th percentile
    auto = report.depth_to_rgb(depth, alpha)
    assert report.depth_range(depth, alpha) == pytest.approx(np.percentile(depth[:, 5:],
                                                                           (1, 99)))
    np.testing.assert_array_equal(auto[:, :5], rgb[:, :5])
    # a median depth of 0 (T never fell below 0.5) is no depth, whatever alpha says
    depth[:, 5:8] = 0.0
    np.testing.assert_array_equal(report.depth_to_rgb(depth, alpha)[:, :8],
                                  np.broadcast_to(report.NO_DEPTH, (10, 8, 3)))


def test_turbo_without_matplotlib_is_matplotlibs_within_its_stated_error(monkeypatch):
    import numpy as np

    mpl = pytest.importorskip("matplotlib")
    t = np.linspace(0.0, 1.0, 1001)
    want = mpl.colormaps["turbo"](t)[:, :3]
    np.testing.assert_allclose(report.colormap(t), want, atol=1e-6)
    without_matplotlib(monkeypatch)
    np.testing.assert_allclose(report.colormap(t), want, atol=0.031)
    with pytest.raises(ImportError, match=r"'viridis' needs matplotlib"):
        report.colormap(t, "viridis")


def test_alpha_to_rgb_is_grey_levels_and_depth_range_spans_frames():
    import numpy as np

    alpha = np.array([[0.0, 0.5], [1.0, 1.2]], np.float32)
    np.testing.assert_array_equal(report.alpha_to_rgb(alpha)[..., 1], [[0, 0.5], [1, 1]])
    assert report.alpha_to_rgb(alpha).shape == (2, 2, 3)
    frames = np.stack([np.full((4, 4), 2.0), np.full((4, 4), 8.0)])
    assert report.depth_range(frames, np.ones_like(frames), percentiles=(0, 100)) == (2.0, 8.0)
    assert report.depth_range(frames, np.zeros_like(frames)) == (0.0, 1.0)  # nothing seen
    with pytest.raises(ValueError, match=r"\[H, W\] images of one shape"):
        report.depth_to_rgb(frames, frames)


def test_a_depth_render_saves_as_a_png(tmp_path, cpu, random_scene, camera):
    import numpy as np
    from PIL import Image

    from splat_lion.render import render

    out = render(random_scene(200, 0, cpu), camera(48, 32), depth=True)
    path = report.save_image(report.depth_to_rgb(out.depth, out.alpha), tmp_path / "depth.png")
    image = np.asarray(Image.open(path))
    assert image.shape == (32, 48, 3) and len(np.unique(image.reshape(-1, 3), axis=0)) > 20
