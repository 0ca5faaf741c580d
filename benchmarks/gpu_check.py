"""One prepared check for a lent GPU: everything a GPU session should learn, in one call.

    python benchmarks/gpu_check.py                   # on the GPU machine (under 9 minutes)
    python benchmarks/gpu_check.py --quick           # small sizes: a rehearsal (CI runs it
                                                     # under the CuPy stand-in)

Sections, in order; each is timed, and one that fails is recorded with its error and the
next one runs (a deadline, --budget-s, skips what would not finish in time):
  environment  the device, driver, CuPy, NVRTC, and `splat-lion info`'s self-test
  kernels      every kernel's registers, local (spill) and shared memory, as CuPy reports them
  tests        `pytest -m gpu` and the whole suite on the cuda backend (subprocesses)
  agreement    CPU vs GPU: image and alpha of a render, each attribute's gradient, a 30-step
               fit's held-out PSNR (within 0.05 dB), two GPU backward passes against each other
  optimizer    fused Lion fp32 / bf16 and Adam at 1M and 3M splats, masked (half the splats
               visible) and not, against a device copy of the same bytes (GB/s)
  step         one fit step of 1M splats at 1920x1080, each phase timed with CUDA events
               (bench_step's step and phases)
  overhead     20 steps: their wall time against the sum of their GPU time
Writes benchmarks/results/<date>-<backend>-<device>-gpu-check[-quick].json and a .log
beside it. Timings are marked `"gpu_timing": false` unless they came from a real GPU.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import bench_step
from bench_common import REPO, PhaseTimer, make_timer, result_fields, write_result

import splat_lion as sl
from splat_lion import kernels, selftest
from splat_lion.backend import why_chosen
from splat_lion.layout import Flat, Layout
from splat_lion.loss import photometric_loss
from splat_lion.optim import LrTable
from splat_lion.optim.lion import LION_CAUTIOUS
from splat_lion.problem import ProblemConfig, load_problem

FULL = {"optim_splats": (1_000_000, 3_000_000), "step_splats": 1_000_000,
        "step_size": (1920, 1080), "agree_res": 256, "fit_steps": 30, "overhead_steps": 20}
QUICK = {"optim_splats": (20_000,), "step_splats": 20_000, "step_size": (160, 90),
         "agree_res": 48, "fit_steps": 10, "overhead_steps": 5}


class Log:
    """Print and keep every line (the .log file)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


# -- sections ------------------------------------------------------------------------------------

def environment(be, log) -> dict:
    info = {"backend": be.name, "why": why_chosen(be), **be.describe()}
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except ImportError:
        info["cupy"] = None
    checks = selftest.run(be)
    info["selftest"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
    for key, value in info.items():
        log(f"  {key}: {value}")
    return info


def kernel_resources(be, log) -> list[dict]:
    """Per kernel: CuPy's RawKernel attributes (None where the backend has none)."""
    rows = []
    for family in kernels.families():
        source = kernels.family_path(family).read_text()
        for name in re.findall(r'extern "C" __global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?'
                               r'(\w+)\s*\(', source):
            kernel = kernels.function(family, name, backend=be)
            attrs = getattr(kernel, "attributes", None) or {}
            row = {"family": family, "kernel": name,
                   **{k: attrs.get(k) for k in ("num_regs", "local_size_bytes",
                                                 "shared_size_bytes", "max_threads_per_block")}}
            rows.append(row)
            log(f"  {family}.{name}: registers {row['num_regs']}, local "
                f"{row['local_size_bytes']} B, shared {row['shared_size_bytes']} B")
    return rows


def test_runs(log, timeout_s: float) -> dict:
    """`pytest -m gpu`, then the whole suite, on the cuda backend (subprocesses)."""
    out = {}
    for label, extra in (("gpu", ["-m", "gpu"]), ("all", [])):
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
        t0 = time.perf_counter()
        try:
            run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                 timeout=timeout_s, env=_env(SPLAT_LION_BACKEND="cuda"))
            tail = (run.stdout + run.stderr).strip().splitlines()[-1:] or [""]
            out[label] = {"returncode": run.returncode, "summary": tail[0],
                          "seconds": round(time.perf_counter() - t0, 1)}
        except subprocess.TimeoutExpired:
            out[label] = {"returncode": None, "summary": f"timed out after {timeout_s:.0f} s"}
        log(f"  pytest {label}: {out[label]['summary']}")
    return out


def agreement(be, log, size: dict) -> dict:
    """CPU and `be` on the same inputs: renders, gradients, a short fit, and the GPU's own
    run-to-run spread of the backward pass (float atomics in any order)."""
    cpu = sl.get_backend("cpu")
    cfg = ProblemConfig(resolution=size["agree_res"], views=5, init="perturbed")
    problems = {b.name: load_problem("knot", cfg, backend=b) for b in (cpu, be)}
    out = {}
    results = {}
    for name, p in problems.items():
        g = p.fresh_start()
        r = sl.render(g, p.train_cameras[0])
        _, v_image = photometric_loss(r.image, p.train_images[0])
        grads = sl.render_backward(r, v_image)
        grads2 = sl.render_backward(r, v_image)
        b = p.backend
        results[name] = {"image": b.to_numpy(r.image), "alpha": b.to_numpy(r.alpha),
                         "grads": {k: b.to_numpy(grads[k]) for k in grads.layout.names},
                         "again": {k: b.to_numpy(grads2[k]) for k in grads.layout.names}}
    c, d = results["cpu"], results[be.name]
    out["image_max_abs"] = float(np.abs(c["image"] - d["image"]).max())
    out["alpha_max_abs"] = float(np.abs(c["alpha"] - d["alpha"]).max())
    out["grad_rel"] = {k: _rel(c["grads"][k], d["grads"][k]) for k in c["grads"]}
    out["grad_rerun_rel"] = {k: _rel(d["grads"][k], d["again"][k]) for k in d["grads"]}
    psnr = {}
    for name, p in problems.items():
        g = p.fresh_start()
        sl.fit(g, p.train_cameras, p.train_images, sl.FitConfig.refine(size["fit_steps"]))
        psnr[name] = p.evaluate(g).psnr
    out["fit_psnr"] = psnr
    out["fit_psnr_diff"] = abs(psnr["cpu"] - psnr[be.name])
    out["fit_within_0.05_db"] = out["fit_psnr_diff"] <= 0.05
    for key in ("image_max_abs", "alpha_max_abs", "grad_rel", "grad_rerun_rel", "fit_psnr"):
        log(f"  {key}: {out[key]}")
    return out


def optimizer(be, log, splats: tuple[int, ...]) -> list[dict]:
    """Fused Lion (fp32, bf16) and Adam steps, with and without a visibility mask, against
    a device copy of the bytes fused Lion moves (20 per float)."""
    timed = make_timer(be)
    xp = be.xp
    rows = []
    for n in splats:
        lay = Layout.gaussians(n, 3)
        params = Flat(lay, be.asarray(np.random.default_rng(0).standard_normal(lay.total)
                                      .astype(np.float32), tag="params"))
        grads = Flat(lay, be.asarray(np.random.default_rng(1).standard_normal(lay.total)
                                     .astype(np.float32), tag="grads"))
        half = be.asarray(np.arange(n) % 2 == 0, tag="projection")
        src = be.zeros((lay.total * 5,), np.float32, tag="scratch")  # 20 bytes per float
        dst = be.zeros((lay.total * 5,), np.float32, tag="scratch")
        copy_ms = _median(timed, lambda: xp.copyto(dst, src))
        rows.append({"splats": n, "variant": "copy", "ms": copy_ms,
                     "gb_per_s": 40 * lay.total / copy_ms / 1e6})
        table = LrTable.lion_default(1.0, 30_000)
        caut = LION_CAUTIOUS["from_points"]  # the kernels the presets run from points
        for variant, opt in (("lion", sl.Lion(1e-4, lr_table=table, backend=be, cautious=caut)),
                             ("lion_bf16", sl.Lion(1e-4, lr_table=table, backend=be,
                                                   momentum_dtype="bfloat16", cautious=caut)),
                             ("adam", sl.Adam.for_3dgs(backend=be))):
            per_float = {"lion": 20, "lion_bf16": 16, "adam": 28}[variant]
            for masked in (False, True):
                visible = half if masked else None
                opt.step_all(params, grads, visible=visible)  # warm-up: state, compile
                ms = _median(timed, lambda: opt.step_all(params, grads, visible=visible))
                row = {"splats": n, "variant": variant, "masked": masked, "ms": ms,
                       "gb_per_s": per_float * lay.total / ms / 1e6, "of_copy": copy_ms / ms
                       * per_float / 20}
                rows.append(row)
                log(f"  N={n:,} {variant:<9} {'masked' if masked else 'all':<6} {ms:8.3f} ms "
                    f"{row['gb_per_s']:7.1f} GB/s ({row['of_copy']:.2f} of copy)")
    return rows


def step_phases(be, log, n: int, size: tuple[int, int], steps: int) -> dict:
    """One fit step of `n` random splats at `size`, each phase timed (CUDA events on a GPU),
    then `steps` steps: wall time against the sum of device time (bench_step's step)."""
    w, h = size
    spans: dict[str, float] = {}
    timer = PhaseTimer(be, spans)
    step = bench_step.make_step(be, *bench_step.synthetic(be, n, w, h), timer)
    step()  # warm-up: compiles, allocates optimizer state
    spans.clear()
    out = step()
    timer.collect()
    phases = dict(spans)
    log(f"  {n:,} splats at {w}x{h}, {int(out.bins['num_intersections']):,} intersections")
    for name, ms in phases.items():
        log(f"  {name:<14} {ms:9.3f} ms")
    spans.clear()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    be.synchronize()
    wall = (time.perf_counter() - t0) * 1e3
    timer.collect()
    device = sum(spans.values())
    log(f"  {steps} steps: wall {wall:.1f} ms, device {device:.1f} ms "
        f"({device / wall:.0%} of the wall time busy)")
    return {"splats": n, "width": w, "height": h,
            "intersections": int(out.bins["num_intersections"]), "phase_ms": phases,
            "steps": steps, "wall_ms": wall, "device_ms": device}


# -- helpers ---------------------------------------------------------------------------------------

def _median(timed, fn, repeats: int = 5) -> float:
    return float(np.median([timed(fn) for _ in range(repeats)]))


def _rel(a, b) -> float:
    """max |a - b| / max(|a|, tiny)."""
    return float(np.abs(a - b).max() / max(float(np.abs(a).max()), 1e-30)) if a.size else 0.0


def _env(**extra) -> dict:
    import os

    env = dict(os.environ)
    env.update(extra)
    return env


# -- the run ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a rehearsal)")
    p.add_argument("--budget-s", type=float, default=510.0,
                   help="skip sections that would start after this many seconds (default 510)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--test-timeout-s", type=float, default=240.0)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = p.parse_args(argv)
    size = QUICK if args.quick else FULL
    skip = set(filter(None, args.skip.split(",")))
    be = sl.get_backend()
    gpu = be.name == "cuda" and not getattr(be.xp, "IS_STANDIN", False)  # tests' CuPy stand-in
    log = Log()
    log(f"gpu_check on {be.name} ({'a real GPU' if gpu else 'no GPU: timings are not GPU'})")
    result = {**result_fields("gpu_check", be.name, be.describe()), "quick": args.quick,
              "gpu_timing": gpu, "sizes": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in size.items()}, "sections": {}}
    sections = [
        ("environment", lambda: environment(be, log)),
        ("kernels", lambda: kernel_resources(be, log)),
        ("tests", lambda: test_runs(log, args.test_timeout_s)),
        ("agreement", lambda: agreement(be, log, size)),
        ("optimizer", lambda: optimizer(be, log, size["optim_splats"])),
        ("step", lambda: step_phases(be, log, size["step_splats"], size["step_size"],
                                     size["overhead_steps"])),
    ]
    t_start = time.perf_counter()
    for name, run in sections:
        elapsed = time.perf_counter() - t_start
        if name in skip or elapsed > args.budget_s:
            why = "skipped (--skip)" if name in skip else f"skipped: {elapsed:.0f} s used"
            result["sections"][name] = {"status": why}
            log(f"[{name}] {why}")
            continue
        log(f"[{name}]")
        t0 = time.perf_counter()
        try:
            data, status = run(), "ok"
        except Exception as e:  # record and go on: one broken section must not lose the rest
            data, status = {"error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc()}, "failed"
            log(f"  FAILED: {type(e).__name__}: {e}")
        result["sections"][name] = {"status": status, "seconds": round(time.perf_counter() - t0, 2),
                                    "data": data}
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    out = write_result(result, "gpu-check", be.name, be.describe()["device"], args.quick,
                       args.out)
    out.with_suffix(".log").write_text("\n".join(log.lines) + "\n")
    failed = [n for n, s in result["sections"].items() if s["status"] == "failed"]
    log(f"done in {result['seconds']} s; {'failed: ' + ', '.join(failed) if failed else 'all ran'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
