"""The `splat-lion` command: info, fit, render (run in-process through cli.main)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splat_lion import selftest
from splat_lion.cli import main


@pytest.fixture(autouse=True)
def cpu_backend(monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")


def test_info_runs_the_self_test(capsys, monkeypatch):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend" in out and "cpu" in out and "all kernels OK" in out
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "cpu" and info["ok"] is True
    assert {c["name"] for c in info["selftest"]} == {"selftest_saxpy", "selftest_block_sum"}


def test_info_fails_when_a_kernel_computes_wrong_results(capsys, monkeypatch):
    monkeypatch.setattr(selftest.ref, "selftest_block_sum", lambda x: 1e9)
    assert main(["info"]) == 1
    assert "SELF-TEST FAILED" in capsys.readouterr().out


def test_info_describes_a_bundled_scene(capsys, monkeypatch):
    assert main(["info", "knot", "--json"]) == 0
    scene = json.loads(capsys.readouterr().out)["scene"]
    assert scene["splats"] > 0 and scene["sh_degree"] == 3
    assert scene["bytes_state_adam"] == 2 * scene["bytes_state_lion"] == 4 * scene[
        "bytes_state_lion_bf16"]
    assert main(["info", "knot"]) == 0
    assert "optimizer state: Lion" in capsys.readouterr().out


def test_info_rejects_an_unknown_scene(capsys):
    assert main(["info", "garden"]) == 2
    assert "no bundled scene 'garden'" in capsys.readouterr().err


def test_fit_command_writes_scene_metrics_and_images(tmp_path, capsys, monkeypatch):
    out = tmp_path / "fit"
    assert main(["fit", "planet", "--out", str(out), "--steps", "20", "--resolution", "32",
                 "--quiet", "--optimizer", "adam"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", "steps", "num_splats", "seconds"):
        assert key in metrics
    assert metrics["steps"] == 20 and metrics["psnr"] > metrics["psnr_before"]
    assert (out / "fitted.ply").is_file() and (out / "heldout_0.png").is_file()
    from PIL import Image

    assert Image.open(out / "heldout_0.png").size == (64, 32)  # target | render
    assert "held-out PSNR" in capsys.readouterr().out


def test_fit_command_rejects_an_unknown_scene(tmp_path, capsys):
    assert main(["fit", "garden", "--out", str(tmp_path)]) == 2
    assert "no bundled scene 'garden'" in capsys.readouterr().err


def test_render_command_writes_views_and_a_turntable(tmp_path, capsys):
    import splat_lion as sl
    from PIL import Image

    out = tmp_path / "r"
    assert main(["render", "knot", "--out", str(out), "--views", "3", "--orbit", "5",
                 "--resolution", "40", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "turntable.gif", "view_000.png", "view_001.png", "view_002.png"]
    g = sl.load_ply(sl.scenes.path("knot"), backend=sl.get_backend("cpu"))
    cam = sl.orbit_cameras(radius=2.6 * g.extent(), n=3, width=40, height=40,
                           elevation_deg=25)[1]
    want = np.asarray(sl.render(g, cam).image)
    got = np.asarray(Image.open(out / "view_001.png"), np.float32) / 255
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=0.5 / 255 + 1e-6)
    gif = Image.open(out / "turntable.gif")
    assert gif.n_frames == 5 and gif.size == (40, 40)
    assert "turntable.gif" in capsys.readouterr().out


def test_render_command_rejects_bad_arguments(tmp_path, capsys):
    assert main(["render", "garden", "--out", str(tmp_path)]) == 2
    assert "no bundled scene 'garden'" in capsys.readouterr().err
    assert main(["render", "knot", "--out", str(tmp_path), "--orbit", "0"]) == 2
    assert "--orbit must be >= 1" in capsys.readouterr().err
