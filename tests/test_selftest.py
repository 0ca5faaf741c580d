"""kernels/selftest.cu against its reference, and the `splat-lion info` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splat_lion import selftest
from splat_lion.cli import main
from splat_lion.reference import selftest as ref


@pytest.mark.parametrize("n", [0, 1, 255, 256, 100_001])
def test_saxpy_matches_reference(be, rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    want = ref.selftest_saxpy(x, y, -1.25)
    got = be.to_numpy(selftest.selftest_saxpy(be.asarray(x, tag="scratch"),
                                              be.asarray(y, tag="scratch").copy(), -1.25, be))
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=2e-7)  # GPUs may fuse into an FMA


@pytest.mark.parametrize("n", [0, 1, 31, 257, 1_000_000])
def test_block_sum_matches_reference(be, rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    got = selftest.selftest_block_sum(be.asarray(x, tag="scratch"), be)
    assert got == pytest.approx(ref.selftest_block_sum(x), abs=1e-6 * max(1.0, float(np.abs(x).sum())))


def test_wrappers_check_their_arguments(cpu):
    x = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        selftest.selftest_saxpy(x.astype(np.float64), x, 1.0, cpu)
    with pytest.raises(ValueError, match=r"y: expected shape \[10\], got \[9\]"):
        selftest.selftest_saxpy(x, x[:9].copy(), 1.0, cpu)
    with pytest.raises(ValueError, match="x: must be C-contiguous"):
        selftest.selftest_block_sum(np.zeros(20, np.float32)[::2], cpu)


def test_info_runs_the_self_test(capsys, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend" in out and "cpu" in out and "all kernels OK" in out
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "cpu" and info["ok"] is True
    assert {c["name"] for c in info["selftest"]} == {"selftest_saxpy", "selftest_block_sum"}


def test_info_fails_when_a_kernel_computes_wrong_results(capsys, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    monkeypatch.setattr(selftest.ref, "selftest_block_sum", lambda x: 1e9)
    assert main(["info"]) == 1
    assert "SELF-TEST FAILED" in capsys.readouterr().out


def test_info_describes_a_bundled_scene(capsys, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
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
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
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
