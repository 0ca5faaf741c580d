"""The `splat-lion` command: info, fit, render (run in-process through cli.main)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splat_lion import selftest
from splat_lion.cli import main
from splat_lion.frame import frame_of_splats
from splat_lion.problem import orbit_around


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


@pytest.mark.slow
def test_fit_command_writes_scene_metrics_and_images(tmp_path, capsys, monkeypatch):
    out = tmp_path / "fit"
    assert main(["fit", "planet", "--out", str(out), "--steps", "20", "--resolution", "32",
                 "--quiet", "--optimizer", "adam"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", "steps", "num_splats", "seconds"):
        assert key in metrics
    assert metrics["steps"] == 20 and metrics["psnr"] > metrics["psnr_before"]
    assert metrics["cautious"] is False  # Adam
    assert (out / "fitted.ply").is_file() and (out / "heldout_0.png").is_file()
    from PIL import Image

    assert Image.open(out / "heldout_0.png").size == (64, 32)  # target | render
    assert "held-out PSNR" in capsys.readouterr().out


def test_fit_command_rejects_an_unknown_scene(tmp_path, capsys):
    assert main(["fit", "garden", "--out", str(tmp_path)]) == 2
    assert "no bundled scene 'garden'" in capsys.readouterr().err


def test_render_command_writes_views_and_a_turntable(tmp_path, capsys):
    from PIL import Image

    import splat_lion as sl

    out = tmp_path / "r"
    assert main(["render", "knot", "--out", str(out), "--views", "3", "--orbit", "5",
                 "--resolution", "40", "--quiet", "--video", "gif"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "turntable.gif", "view_000.png", "view_001.png", "view_002.png"]
    g = sl.load_ply(sl.scenes.path("knot"), backend=sl.get_backend("cpu"))
    cam = orbit_around(frame_of_splats(g), 3, 40)[1]  # around the splats' centre
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
    assert "argument --orbit: must be an int in [1, 100000], got 0" in capsys.readouterr().err


# -- fit: captures, downscale, resume ------------------------------------------------------

@pytest.fixture(scope="module")
def shapes_capture(tmp_path_factory):
    """A tiny capture of the bundled `shapes` scene: 8 views at 32x24 with its points, written
    as a COLMAP binary model and as a transforms.json folder."""
    import splat_lion as sl
    from splat_lion.datasets import write_colmap, write_transforms

    root = tmp_path_factory.mktemp("capture")
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=sl.get_backend("cpu"))
    cams = sl.orbit_cameras(radius=2.6 * ref.extent(), n=8, width=32, height=24,
                            elevation_deg=25)
    images = [np.asarray(sl.render(ref, c).image).copy() for c in cams]
    points = np.asarray(ref.means, np.float64)[::8]
    colors = np.clip(np.asarray(ref.base_colors(), np.float64)[::8], 0, 1)
    write_colmap(root / "colmap", cams, images, points, colors, binary=True)
    write_transforms(root / "nerf", cams, images)
    return root, len(points)


@pytest.mark.slow
def test_fit_command_fits_a_colmap_capture_from_its_points(shapes_capture, tmp_path):
    root, num_points = shapes_capture
    out = tmp_path / "fit"
    assert main(["fit", str(root / "colmap"), "--out", str(out), "--steps", "60",
                 "--sh-degree", "1", "--densify", "on", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init"] == "points" and metrics["views_train"] == 7
    assert metrics["splat_history"][0][1] == num_points
    assert metrics["num_splats"] != num_points and metrics["densify_events"] >= 1
    assert metrics["psnr"] > metrics["psnr_before"]
    import splat_lion as sl

    assert sl.load_ply(out / "fitted.ply").count == metrics["num_splats"]


def test_fit_command_fits_a_transforms_capture_downscaled(shapes_capture, tmp_path):
    from PIL import Image

    root, _ = shapes_capture
    out = tmp_path / "fit"
    assert main(["fit", str(root / "nerf"), "--out", str(out), "--steps", "10",
                 "--downscale", "2", "--init-points", "300", "--sh-degree", "0", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init"] == "random" and metrics["splat_history"][0][1] == 300
    assert metrics["cautious"] is True  # Lion's preset from points (optim.lion.LION_CAUTIOUS)
    assert Image.open(out / "heldout_0.png").size == (2 * 16, 12)  # target | render, halved


@pytest.mark.slow
def test_fit_command_resumes_an_interrupted_run_exactly(tmp_path, monkeypatch, capsys):
    import importlib

    fit_module = importlib.import_module("splat_lion.fit")  # (splat_lion.fit is the function)
    args = ["fit", "planet", "--steps", "16", "--resolution", "24", "--checkpoint-every", "5",
            "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    real_loss, calls = fit_module.photometric_loss, []

    def interrupted_loss(*a):  # Ctrl-C during step 12
        calls.append(1)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return real_loss(*a)

    monkeypatch.setattr(fit_module, "photometric_loss", interrupted_loss)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    assert "checkpoint of step 10 continues with --resume" in capsys.readouterr().err
    monkeypatch.setattr(fit_module, "photometric_loss", real_loss)
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert "resuming at step 10" in capsys.readouterr().err
    assert (tmp_path / "cut" / "fitted.ply").read_bytes() == \
        (tmp_path / "whole" / "fitted.ply").read_bytes()
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 10
    assert metrics["loss_history"] == json.loads(
        (tmp_path / "whole" / "metrics.json").read_text())["loss_history"]


@pytest.mark.slow
def test_fit_command_refuses_to_resume_other_settings(tmp_path, capsys):
    args = ["fit", "planet", "--steps", "4", "--checkpoint-every", "2", "--quiet",
            "--out", str(tmp_path)]
    assert main([*args, "--resume"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err
    assert main([*args, "--resolution", "16"]) == 0
    assert main([*args, "--resolution", "24", "--resume"]) == 2
    assert "made for other views: resolution 16 -> 24" in capsys.readouterr().err
    assert main([*args, "--resolution", "16", "--resume", "--optimizer", "adam"]) == 2
    assert "another config: optimizer ('lion' -> 'adam')" in capsys.readouterr().err


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: p, "neither a transforms.json capture nor a COLMAP model"),
])
def test_fit_command_rejects_bad_sources(tmp_path, capsys, make, match):
    assert main(["fit", str(make(tmp_path)), "--out", str(tmp_path / "o")]) == 2
    assert match in capsys.readouterr().err


# -- memory: profile, --max-memory, info ------------------------------------------------------

def test_profile_command_writes_the_public_json(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["profile", "shapes", "--resolution", "48", "--json", str(out),
                 "--plot", str(tmp_path / "p.png")]) == 0
    report = json.loads(out.read_text())
    assert {"num_splats", "width", "height", "runs"} <= set(report)
    assert (report["width"], report["height"]) == (48, 48)
    runs = report["runs"]
    assert set(runs) == {"lion", "lion-bf16", "adam"}
    for run in runs.values():
        assert {"peak_bytes", "predicted_peak_bytes", "by_tag", "by_phase"} <= set(run)
        assert isinstance(run["peak_bytes"], int) and run["peak_bytes"] == max(
            run["by_phase"].values())
        assert abs(run["predicted_peak_bytes"] - run["peak_bytes"]) < 0.1 * run["peak_bytes"]
    state = {k: r["by_tag"]["optimizer"] for k, r in runs.items()}
    assert state["adam"] == 2 * state["lion"] == 4 * state["lion-bf16"]
    text = capsys.readouterr().out
    assert "predicted peak" in text and "backward" in text


@pytest.mark.parametrize("text,value", [("8GB", 8 * 2**30), ("512MiB", 512 * 2**20),
                                        ("1.5G", 3 * 2**29), ("2000", 2000), ("64kb", 65536)])
def test_memory_sizes_parse(text, value):
    from splat_lion.cli import parse_bytes

    assert parse_bytes(text) == value


@pytest.mark.slow
def test_fit_command_refuses_a_run_that_cannot_fit_max_memory(tmp_path, capsys):
    args = ["fit", "planet", "--out", str(tmp_path), "--steps", "2", "--quiet"]
    assert main([*args, "--max-memory", "1MB"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "more than --max-memory 1 MiB" in err
    assert not (tmp_path / "fitted.ply").exists()
    assert main([*args, "--max-memory", "1GB"]) == 0
    assert "predicted peak" in capsys.readouterr().err


@pytest.mark.slow
def test_max_memory_caps_densification(shapes_capture, tmp_path, capsys):
    """A budget that fits the start plus 5 splats: densification stops there."""
    from splat_lion.memory import predict_fit_peak
    from splat_lion.optim import optimizer_spec

    root, num_points = shapes_capture
    images = 8 * 24 * 32 * 3 * 4  # 7 training and 1 held-out float32 image of 32x24
    batch = optimizer_spec("lion").batch_size("from_points")  # the CLI's default from points
    budget = predict_fit_peak(num_points + 5, 32, 24, 1, "lion", image_bytes=images,
                              train_views=7, batch_size=batch)
    out = tmp_path / "fit"
    assert main(["fit", str(root / "colmap"), "--out", str(out), "--steps", "60",
                 "--sh-degree", "1", "--densify", "on", "--quiet", "--max-memory",
                 str(budget)]) == 0
    assert f"densification stops at {num_points + 5:,} splats" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["densify_events"] >= 1
    assert max(n for _, n in metrics["splat_history"]) <= num_points + 5
    assert metrics["num_splats"] <= num_points + 5


def test_info_predicts_the_memory_to_fit_a_scene(capsys):
    assert main(["info", "shapes", "--json"]) == 0
    step = json.loads(capsys.readouterr().out)["scene"]["bytes_fit_step_1080p"]
    assert step["adam"] > step["lion"] > step["lion-bf16"] > 1920 * 1080 * 12


def test_fit_command_without_held_out_views_reports_on_the_training_views(tmp_path, capsys):
    import splat_lion as sl
    from splat_lion.datasets import write_transforms

    ref = sl.load_ply(sl.scenes.path("shapes"), backend=sl.get_backend("cpu"))
    cams = sl.orbit_cameras(radius=2.6 * ref.extent(), n=3, width=16, height=16)
    write_transforms(tmp_path / "cap", cams, [np.asarray(sl.render(ref, c).image) for c in cams],
                     split=["train"] * 3)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "cap"), "--out", str(out), "--steps", "3",
                 "--init-points", "50", "--sh-degree", "0", "--quiet"]) == 0
    assert "no held-out views" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "training views" and np.isfinite(metrics["psnr"])


# -- real-world scenes: far from the origin, empty views, strict JSON, paths ------------------

def strict_json(path):
    """The file's JSON; Infinity or NaN (not JSON) fail."""
    def refuse(name):
        raise ValueError(f"{path.name} holds {name}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def far_ply(tmp_path_factory):
    """The bundled `shapes` moved 250 units away from the origin."""
    import splat_lion as sl

    g = sl.load_ply(sl.scenes.path("shapes"), backend=sl.get_backend("cpu"))
    g.means[...] += np.array([250.0, 80.0, -30.0], np.float32)
    return sl.save_ply(g, tmp_path_factory.mktemp("far") / "far.ply")


def test_a_ply_far_from_the_origin_renders_profiles_and_fits_in_view(far_ply, tmp_path, capsys):
    from PIL import Image

    assert main(["render", str(far_ply), "--out", str(tmp_path / "r"), "--views", "2",
                 "--resolution", "32"]) == 0
    assert "no splat" not in capsys.readouterr().err
    assert np.asarray(Image.open(tmp_path / "r" / "view_000.png")).max() > 60
    assert main(["profile", str(far_ply), "--resolution", "32", "--optimizer", "lion",
                 "--json", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.png")]) == 0
    assert strict_json(tmp_path / "p.json")["runs"]["lion"]["num_intersections"] > 100
    assert main(["fit", str(far_ply), "--out", str(tmp_path / "f"), "--steps", "3",
                 "--resolution", "24", "--quiet"]) == 0
    metrics = strict_json(tmp_path / "f" / "metrics.json")
    assert 10 < metrics["psnr_before"] < 60 and metrics["psnr"] is not None


def test_identical_images_give_a_strict_json_psnr_note(tmp_path, capsys):
    assert main(["fit", "planet", "--init", "scene", "--out", str(tmp_path), "--steps", "1",
                 "--resolution", "16", "--quiet", "--optimizer", "adam",
                 "--lr", "1e-12"]) == 0
    metrics = strict_json(tmp_path / "metrics.json")
    assert metrics["psnr_before"] is None and metrics["lr"] == 1e-12
    assert "identical" in capsys.readouterr().err


def test_views_that_see_nothing_warn_in_render_and_refuse_a_fit(tmp_path, capsys):
    away = ["--center", "0,0,1000", "--radius", "3"]  # high above, looking past the scene
    assert main(["render", "knot", "--out", str(tmp_path), "--views", "2", "--resolution",
                 "16", *away]) == 0
    assert "2 views show no splat" in capsys.readouterr().err
    assert main(["fit", "knot", "--out", str(tmp_path / "f"), "--steps", "2",
                 "--resolution", "16", "--quiet", *away]) == 2
    assert "not one splat is in any of the 2 held-out views" in capsys.readouterr().err
    assert main(["profile", "knot", "--resolution", "16", "--optimizer", "lion",
                 "--plot", str(tmp_path / "p.png"), *away]) == 0
    assert "the view profiled shows no splat" in capsys.readouterr().err


def test_render_follows_a_captures_cameras(shapes_capture, tmp_path, capsys):
    from PIL import Image

    root, _ = shapes_capture
    assert main(["render", "shapes", "--out", str(tmp_path), "--cameras", str(root / "nerf"),
                 "--views", "2", "--video", "gif", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.gif", "view_000.png",
                                                           "view_001.png"]
    gif = Image.open(tmp_path / "path.gif")
    assert gif.n_frames == 8 and gif.size == (32, 24)  # every camera of the capture


def test_batch_size_renders_that_many_views_a_step(tmp_path, capsys):
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "3", "--batch-size", "4",
                 "--resolution", "16", "--quiet"]) == 0
    metrics = strict_json(tmp_path / "metrics.json")
    assert (metrics["steps"], metrics["batch_size"], metrics["views_rendered"]) == (3, 4, 12)
    assert "4 views a step" in capsys.readouterr().err


def test_eval_every_records_held_out_scores(tmp_path):
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "6", "--eval-every", "3",
                 "--resolution", "16", "--quiet"]) == 0
    metrics = strict_json(tmp_path / "metrics.json")
    assert [e[0] for e in metrics["eval_history"]] == [2, 5]
    assert metrics["eval_history"][-1][1] == pytest.approx(metrics["psnr"], abs=1e-3)


def test_a_capture_fit_without_steps_says_its_default(shapes_capture, tmp_path, capsys,
                                                      monkeypatch):
    import splat_lion.problem as problem

    monkeypatch.setattr(problem, "CPU_CAPTURE_SECONDS", 0.0)  # the least: 300 steps
    real = problem.Problem.default_steps
    monkeypatch.setattr(problem.Problem, "default_steps",
                        lambda self, s, b=1: min(real(self, s, b), 5))
    root, _ = shapes_capture
    assert main(["fit", str(root / "nerf"), "--out", str(tmp_path), "--init-points", "50",
                 "--sh-degree", "0", "--quiet"]) == 0
    assert "5 steps of 4 views, the default for a capture on cpu" in capsys.readouterr().err


# -- hardening: options out of range, the error boundary --------------------------------------

@pytest.mark.parametrize("args,message", [
    (["fit", "planet", "--views", "1"], "argument --views: must be an int in [2, 100000], got 1"),
    (["fit", "planet", "--batch-size", "0"], "argument --batch-size: must be an int in [1, 4096]"),
    (["fit", "planet", "--resolution", "-64"], "argument --resolution: must be None or an int in"),
    (["fit", "planet", "--resolution", "100000"], "argument --resolution: must be None or an int"),
    (["fit", "planet", "--max-memory", "0"], "argument --max-memory: must be more than 0 bytes"),
    (["fit", "planet", "--radius", "0"], "argument --radius: must be None or a number in (0,"),
    (["fit", "planet", "--seed", "-1"], "argument --seed: must be an int in [0,"),
    (["fit", "planet", "--lr", "1000"], "argument --lr: must be None or a number in (0, 1]"),
    (["fit", "planet", "--steps", "ten"], "argument --steps: 'ten' is not an int in [1, 10000000]"),
    (["fit", "planet", "--init-points", "1000000000"], "argument --init-points: must be an int"),
    (["profile", "knot", "--downscale", "0"], "argument --downscale: must be an int in [1, 64]"),
    (["render", "knot", "--elevation", "90"], "argument --elevation: must be a number in (-90, 90)"),
    (["render", "knot", "--elevation", "nan"], "argument --elevation: must be a number in (-90, 90)"),
])
def test_options_out_of_their_range_are_refused_naming_the_option(tmp_path, capsys, args,
                                                                  message):
    assert main([*args, "--out", str(tmp_path)] if args[0] != "profile" else args) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_library_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply at all")
    assert main(["render", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("splat-lion: ") and err.count("\n") == 1 and "Traceback" not in err
    from splat_lion.errors import PlyError

    with pytest.raises(PlyError):
        main(["--debug", "render", str(bad), "--out", str(tmp_path / "r")])


# -- hardening: lost work ----------------------------------------------------------------------

def test_a_second_fit_into_a_busy_out_is_refused(tmp_path, capsys):
    from splat_lion.outputs import output_lock

    with output_lock(tmp_path):  # another fit holds the folder
        assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "2",
                     "--resolution", "16", "--quiet"]) == 2
    assert "another splat-lion fit is writing there" in capsys.readouterr().err
    assert not (tmp_path / "fitted.ply").exists()
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "2", "--resolution", "16",
                 "--quiet"]) == 0  # free again
    (tmp_path / "file").write_text("x")
    assert main(["fit", "planet", "--out", str(tmp_path / "file"), "--steps", "2"]) == 2
    assert "a file, not a folder" in capsys.readouterr().err


def test_a_failing_final_save_keeps_the_fitted_splats(tmp_path, capsys, monkeypatch):
    import errno

    import splat_lion as sl
    import splat_lion.cli as cli

    real = cli.save_ply

    def full_disk(g, path):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(g, path)

    monkeypatch.setattr(cli, "save_ply", full_disk)
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "3", "--resolution", "16",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "it is kept in" in err
    kept = err.split("it is kept in ")[1].split(" instead")[0]
    assert sl.load_ply(kept).count > 0


def test_resume_refuses_a_source_that_changed(tmp_path, capsys):
    import splat_lion as sl

    scene = tmp_path / "scene.ply"
    sl.save_ply(sl.load_ply(sl.scenes.path("planet")), scene)
    args = ["fit", str(scene), "--out", str(tmp_path / "o"), "--steps", "4", "--resolution", "16",
            "--checkpoint-every", "2", "--quiet"]
    assert main(args) == 0
    g = sl.load_ply(scene)
    g.means[...] += 0.01
    sl.save_ply(g, scene)  # replaced since the checkpoint
    assert main([*args, "--resume"]) == 2
    assert "made for other views: source_digest" in capsys.readouterr().err


def test_a_fit_that_cannot_fit_in_memory_is_refused_before_it_allocates(tmp_path, capsys,
                                                                      monkeypatch):
    import splat_lion.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda backend=None: 2**20)  # 1 MiB free
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "2", "--resolution", "32",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a fit of 6,510 splats at 32x32 with lion needs about" in err
    assert "only 1 MiB are available: try --downscale 2" in err
    assert main(["fit", "planet", "--out", str(tmp_path), "--init", "random", "--init-points",
                 "20000000", "--quiet"]) == 2
    assert "a random start of 20,000,000 splats needs about 19,531 MiB" in capsys.readouterr().err


def test_ctrl_c_before_the_first_checkpoint_does_not_ask_for_checkpoint_every(tmp_path, capsys,
                                                                            monkeypatch):
    import importlib

    fit_module = importlib.import_module("splat_lion.fit")

    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "photometric_loss", interrupted)
    args = ["fit", "planet", "--out", str(tmp_path), "--steps", "10", "--resolution", "16",
            "--quiet"]
    assert main([*args, "--checkpoint-every", "5"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; no checkpoint was written yet" in err and "--checkpoint-every" not in err
    assert main(args) == 130
    assert "no checkpoint: --checkpoint-every N makes resumable runs" in capsys.readouterr().err


# -- export -------------------------------------------------------------------------------------

def test_export_writes_each_format_from_a_fit_folder(tmp_path, capsys):
    from splat_lion.export import FORMATS, load_export
    from splat_lion.ply import load_ply

    assert main(["fit", "shapes", "--out", str(tmp_path / "fit"), "--steps", "2",
                 "--resolution", "16", "--quiet"]) == 0
    fitted = load_ply(tmp_path / "fit" / "fitted.ply")
    for fmt in ("splat", "spz", "compressed-ply"):
        out = tmp_path / f"shapes{FORMATS[fmt].suffix}"
        assert main(["export", str(tmp_path / "fit"), "--format", fmt, "--out", str(out)]) == 0
        back = load_export(out)
        assert back.count == fitted.count
        assert f"as {fmt}: {out}" in capsys.readouterr().out
    out = tmp_path / "v2.spz"
    assert main(["export", "shapes", "--format", "spz", "--out", str(out),
                 "--option", "version=2"]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip


@pytest.mark.parametrize("argv,message", [
    (["--format", "spz", "--option", "version=two"], "version must be an integer, like version=3"),
    (["--format", "splat", "--option", "sh=1"], "format splat takes NAME=VALUE among: none"),
    (["--format", "spz", "--option", "nonsense"], "format spz takes NAME=VALUE among: version=3"),
])
def test_export_refuses_bad_options_naming_them(tmp_path, capsys, argv, message):
    assert main(["export", "shapes", "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_export_of_a_folder_without_a_fit_says_what_to_give(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "splat"]) == 2
    assert "a folder without fitted.ply" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["depth", "median-depth", "alpha"])
def test_render_modes_write_colour_mapped_pngs(tmp_path, capsys, mode):
    from PIL import Image

    assert main(["render", "knot", "--out", str(tmp_path), "--views", "2", "--resolution", "32",
                 "--mode", mode, "--orbit", "3", "--video", "gif", "--quiet"]) == 0
    name = mode.replace("-", "_")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"turntable_{name}.gif", f"view_000_{name}.png", f"view_001_{name}.png"]
    rgb = np.asarray(Image.open(tmp_path / f"view_000_{name}.png").convert("RGB")).astype(int)
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    if mode == "alpha":
        assert grey.all() and rgb.max() == 255 and rgb.min() == 0  # opaque knot, empty corners
    else:  # colour-mapped where the knot is, neutral grey around it
        assert (~grey).mean() > 0.1 and grey[0, 0] and len(np.unique(rgb[~grey], axis=0)) > 20


# -- view, fit --viewer ------------------------------------------------------------------------

@pytest.fixture
def viewer_calls(monkeypatch):
    """The viewer's updates and waits, recorded; wait() closes at once instead of serving
    until Ctrl-C."""
    pytest.importorskip("viser")
    from splat_lion import viewer

    calls = []
    real_update = viewer.Viewer.update

    def update(self, g, step=None, psnr=None):
        calls.append(("update", g.count, step))
        real_update(self, g, step, psnr)

    monkeypatch.setattr(viewer.Viewer, "update", update)
    monkeypatch.setattr(viewer.Viewer, "wait", lambda self: (calls.append(("wait",)),
                                                             self.close()))
    return calls


def test_view_serves_a_fits_output_until_stopped(tmp_path, capsys, viewer_calls):
    assert main(["fit", "shapes", "--out", str(tmp_path), "--steps", "2", "--resolution", "16",
                 "--quiet"]) == 0
    assert main(["view", str(tmp_path), "--port", "18631"]) == 0
    assert viewer_calls == [("wait",)]
    assert "at http://127.0.0.1:186" in capsys.readouterr().err


def test_fit_viewer_updates_while_training_and_shows_the_result(tmp_path, capsys,
                                                                viewer_calls):
    assert main(["fit", "planet", "--out", str(tmp_path), "--steps", "25", "--resolution", "16",
                 "--viewer", "--viewer-every", "10", "--viewer-port", "18641", "--quiet"]) == 0
    updates = [c[2] for c in viewer_calls if c[0] == "update"]
    # on logging steps (at most 2% of the fit's time: some may be passed over), then the result
    assert updates[0] == 10 and all(u % 10 == 0 for u in updates[1:-1]) and updates[-1] is None
    assert viewer_calls[-1] == ("wait",)
    assert (tmp_path / "fitted.ply").exists()  # written before the viewer waits
    assert "the viewer shows the fitted splats at http://" in capsys.readouterr().err
