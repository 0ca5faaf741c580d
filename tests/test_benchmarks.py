"""The benchmark scripts run end to end (tiny sizes), so a GPU session can trust them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_optim  # noqa: E402
import bench_ply  # noqa: E402
import bench_render  # noqa: E402
import bench_runtime  # noqa: E402
import lion_vs_adam  # noqa: E402


def test_bench_optim_runs_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "optim.json"
    assert bench_optim.main(["--sizes", "2000", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    variants = {r["variant"] for r in result["rows"]}
    assert variants == set(bench_optim.BYTES_PER_FLOAT)
    assert all(r["ms"] > 0 and r["gb_per_s"] > 0 for r in result["rows"])
    assert result["targets_apply"] is False


def test_bench_runtime_runs_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "runtime.json"
    assert bench_runtime.main(["--quick", "--repeats", "1", "--out", str(out)]) == 0
    assert {r["case"] for r in json.loads(out.read_text())["rows"]} == {"axpy", "tree_sum",
                                                                       "warp_sum"}


def test_bench_ply_runs_and_writes_json(tmp_path):
    out = tmp_path / "ply.json"
    assert bench_ply.main(["--splats", "3000", "--repeats", "1", "--out", str(out)]) == 0
    assert {r["op"] for r in json.loads(out.read_text())["rows"]} == {"save", "load"}


def test_bench_render_runs_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "render.json"
    assert bench_render.main(["--sizes", "48x32", "--splats", "300", "--repeats", "1",
                              "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["forward_ms"] > 0 and row["backward_ms"] > 0 and row["intersections"] > 0


def test_lion_vs_adam_study_runs_writes_json_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out, md, runs = tmp_path / "study.json", tmp_path / "study.md", tmp_path / "runs.jsonl"
    args = ["--quick", "--round2", "--out", str(out), "--markdown", str(md), "--runs", str(runs)]
    assert lion_vs_adam.main(args) == 0
    result = json.loads(out.read_text())
    final = {e["run"]: e for e in result["final"] if "psnr" in e}
    adam, lion = (final[result["best"][o]["label"]] for o in ("adam", "lion"))
    bf16 = next(e for e in final.values() if e["momentum"] == "bfloat16")
    assert adam["state_bytes"] == 2 * lion["state_bytes"] == 4 * bf16["state_bytes"]
    assert {r["stage"] for r in result["search"]} >= {"preset", "variant", "round 2"}
    assert "### Final" in md.read_text()
    logged = runs.read_text()
    assert lion_vs_adam.main(args) == 0  # every run is in the log: nothing runs again
    assert runs.read_text() == logged
    # --bests: no search, the final runs at the bests of that JSON (here into a new log)
    out2, runs2 = tmp_path / "again.json", tmp_path / "runs2.jsonl"
    assert lion_vs_adam.main(["--quick", "--bests", str(out), "--out", str(out2), "--runs",
                              str(runs2)]) == 0
    again = json.loads(out2.read_text())
    assert {o: b["label"] for o, b in again["best"].items()} == \
        {o: b["label"] for o, b in result["best"].items()}
    assert again["search"] == [] and {r["stage"] for r in again["runs"]} == {"final"}


@pytest.mark.parametrize("cautious", [False, True], ids=["plain", "cautious"])
def test_study_lion_without_group_betas_matches_the_lion_kernel(cautious):
    import splat_lion as sl
    from splat_lion.layout import Flat, Layout

    be = sl.get_backend("cpu")
    layout = Layout.gaussians(37, 1)
    rng = np.random.default_rng(0)
    params = [Flat(layout, be.asarray(rng.normal(size=layout.total).astype(np.float32),
                                      tag="params")) for _ in range(2)]
    params[1].data[...] = params[0].data
    table = sl.LrTable.lion_default(1.0, 10)
    kernel = sl.Lion(1e-3, 0.9, 0.99, 0.1, lr_table=table, backend=be, cautious=cautious)
    study = lion_vs_adam.StudyLion(1e-3, 0.9, 0.99, 0.1, lr_table=table, backend=be,
                                   cautious=cautious)
    for _ in range(3):
        grads = Flat(layout, be.asarray(rng.normal(size=layout.total).astype(np.float32),
                                        tag="grads"))
        visible = be.asarray(rng.random(layout.count) < 0.7, tag="scratch")
        for opt, p in zip((kernel, study), params):
            opt.step_all(p, grads, visible=visible)
            opt.end_iteration()
    np.testing.assert_allclose(params[1].data, params[0].data, rtol=0, atol=1e-6)


def test_study_adam_moves_only_where_adams_step_agrees_with_the_gradient():
    """Cautious Adam (the study's twin of cautious Lion): the same moments as the Adam kernel,
    and each step is Adam's step where it agrees with the gradient's sign, else none."""
    import splat_lion as sl
    from splat_lion.layout import Flat, Layout

    be = sl.get_backend("cpu")
    layout = Layout.gaussians(41, 1)
    rng = np.random.default_rng(1)
    start = rng.normal(size=layout.total).astype(np.float32)
    table = sl.LrTable.adam_3dgs(1.0, 10)
    kernel = sl.Adam(1e-2, lr_table=table, backend=be)
    study = lion_vs_adam.StudyAdam(1e-2, lr_table=table, backend=be)
    params = [Flat(layout, be.asarray(start.copy(), tag="params")) for _ in range(2)]
    skipped = 0
    for _ in range(4):
        grads = Flat(layout, be.asarray(rng.normal(size=layout.total).astype(np.float32),
                                        tag="grads"))
        visible = be.asarray(rng.random(layout.count) < 0.7, tag="scratch")
        before = [p.data.copy() for p in params]
        for opt, p in zip((kernel, study), params):
            opt.step_all(p, grads, visible=visible)
            opt.end_iteration()
        step = before[0] - params[0].data  # Adam's step from the same moments (wd 0)
        agree = step * grads.data > 0
        skipped += int((~agree & (step != 0)).sum())
        np.testing.assert_allclose(params[1].data, before[1] - np.where(agree, step, 0),
                                   rtol=0, atol=1e-6)
    assert skipped > 0, "no step disagreed with its gradient: the test tests nothing"
    for name in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(study.flat_state[name].data, kernel.flat_state[name].data)


def test_captures_benchmark_fits_a_synthetic_capture_and_writes_json(tmp_path, monkeypatch):
    import captures

    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "captures.json"
    assert captures.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    rows = {r["optimizer"]: r for r in result["captures"][0]["rows"]}
    assert set(rows) == {"lion", "adam"} and all(r["psnr"] > 5 for r in rows.values())
    assert rows["adam"]["optimizer_state_bytes"] == 2 * rows["lion"]["optimizer_state_bytes"]
    assert result["captures"][0]["frame"]["center"] == pytest.approx([20.0, 0.0, 0.0], abs=1e-6)
    assert (tmp_path / "captures-synthetic.png").is_file()


def test_gpu_check_runs_every_section_and_writes_json_and_log(tmp_path, monkeypatch):
    """On the CPU backend (CI also runs it under the CuPy stand-in); the test runs of the
    suite are left out here, the suite being what runs this."""
    import gpu_check

    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "gpu-check.json"
    assert gpu_check.main(["--quick", "--skip", "tests", "--out", str(out)]) == 0
    result = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    sections = result["sections"]
    assert result["gpu_timing"] is False and sections["tests"]["status"].startswith("skipped")
    for name in ("environment", "kernels", "agreement", "optimizer", "step"):
        assert sections[name]["status"] == "ok", (name, sections[name])
    kernels = {(k["family"], k["kernel"]) for k in sections["kernels"]["data"]}
    assert ("lion", "lion_step") in kernels and ("rasterize", "rasterize_bwd") in kernels
    assert sections["agreement"]["data"]["fit_within_0.05_db"]
    assert list(sections["step"]["data"]["phase_ms"]) == list(gpu_check.bench_step.PHASES)
    assert out.with_suffix(".log").read_text().startswith("gpu_check on cpu")


def test_bench_step_times_every_phase_and_writes_json(tmp_path, monkeypatch):
    import bench_step

    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")
    out = tmp_path / "step.json"
    assert bench_step.main(["--quick", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    for case in ("knot", "synthetic"):
        row = result["cases"][case]
        assert list(row["phases"]) == list(bench_step.PHASES)
        assert row["counts"]["launches"] >= 7 and row["intersections"] > 0
        assert all(p["bytes"] > 0 and p["ms"] > 0 for p in row["phases"].values())
