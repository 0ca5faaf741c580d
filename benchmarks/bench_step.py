"""One fit step, phase by phase: where its time goes, what it launches, syncs and allocates,
and the bytes it must move (so: the time it would take at a GPU's memory bandwidth).

    python benchmarks/bench_step.py                  # the backend at hand
    python benchmarks/bench_step.py --quick          # smaller frames (a rehearsal; CI)
    python tests/cupy_standin/run.py benchmarks/bench_step.py --quick   # CUDA path counts

Cases: the bundled scene `knot` from an orbit view, and a synthetic frame of random splats
(1M at 1920x1080 on a GPU; 50k at 480x270 on the CPU; --quick: 5k at 160x90). Each is
warmed up (compiles, optimizer state), then one step is timed per phase (CUDA events on a
GPU, the wall clock around a synchronize on the CPU; median of --repeats):

  project      project_fwd: cull, 2D mean and conic, SH colour
  binning      tiles touched, prefix sum, keys, sort, tile ranges
  rasterize    rasterize_fwd
  loss         0.8 L1 + 0.2 (1 - SSIM) and its gradient
  rasterize_bwd, project_bwd
  optimizer    Lion.step_all (one launch) and end_iteration

Counts per step: RawKernel launches (the backend's counter); under the CuPy stand-in also host
syncs, device operations and allocations. Bytes per phase come from a model of what each
kernel reads and writes (BYTES below: per splat N, per intersection M, per pixel P, per
parameter float F); `h200_ms` is that traffic at the device-to-device copy rate measured on an
H200 (4.3 TB/s, counting bytes read and written): a floor, not a prediction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

from bench_common import PhaseTimer, result_fields, write_result

import splat_lion as sl
from splat_lion.loss import photometric_loss

H200_COPY_BYTES_PER_S = 4.3e12  # device-to-device copy on an H200 (device/KINDS.md)
PHASES = ("project", "binning", "rasterize", "loss", "rasterize_bwd", "project_bwd", "optimizer")
# bytes moved per phase: (per splat, per intersection, per pixel, per parameter float)
BYTES = {
    "project": (59 * 4 + 44, 0, 0, 0),          # read the splat's parameters, write 44 B out
    "binning": (130, 28, 0, 0),                 # depth sort of N, then a 1-pass tile sort of M
    "rasterize": (0, 4 + 36, 20, 0),            # each intersection's id and splat; image out
    "loss": (0, 0, 144, 0),                     # fused SSIM + L1: 2 passes over image, cached
                                                # target statistics and their scratch
    "rasterize_bwd": (0, 4 + 36 + 36, 40, 0),   # splats read again, gradients added back
    "project_bwd": (59 * 4 + 44 + 36 + 59 * 4, 0, 0, 0),  # parameters in, gradients out
    "optimizer": (0, 0, 0, 20),                 # Lion: read p, g, m; write p, m
}
FULL = {"gpu": (1_000_000, 1920, 1080), "cpu": (50_000, 480, 270)}
QUICK = (5_000, 160, 90)


def make_step(be, g, cam, target, timer: PhaseTimer):
    """A fit step of `g` against `target` seen by `cam` (Lion, the visibility mask), every
    phase of it timed by `timer`; returns the render."""
    opt = sl.Lion.for_splats(g.extent(), backend=be)

    def step():
        out = sl.render(g, cam, phase=timer.phase)
        with timer.phase("loss"):
            _, v_image = photometric_loss(out.image, target)
        grads = sl.render_backward(out, v_image, phase=timer.phase)
        with timer.phase("optimizer"):
            opt.step_all(g.params, grads, visible=out.visible, check_finite=True)
            opt.end_iteration()
        return out

    return step


def step_case(be, g, cam, target, repeats: int) -> dict:
    spans: dict[str, float] = {}
    timer = PhaseTimer(be, spans)
    step = make_step(be, g, cam, target, timer)
    step()  # warm-up
    counts = _counting()
    launches = be.launch_count
    with counts as c:
        out = step()
    timer.collect()
    per_step = {"launches": be.launch_count - launches, **c.summary()}
    runs = {name: [] for name in PHASES}
    for _ in range(repeats):
        spans.clear()
        out = step()
        timer.collect()
        for name in PHASES:
            runs[name].append(spans.get(name, 0.0))
    n, m = g.count, int(out.bins["num_intersections"])
    pixels, floats = cam.width * cam.height, g.layout.total
    phases = {}
    for name in PHASES:
        per = BYTES[name]
        moved = per[0] * n + per[1] * m + per[2] * pixels + per[3] * floats
        phases[name] = {"ms": statistics.median(runs[name]), "bytes": moved,
                        "h200_ms": 1e3 * moved / H200_COPY_BYTES_PER_S}
    total = sum(p["ms"] for p in phases.values())
    return {"splats": n, "width": cam.width, "height": cam.height, "intersections": m,
            "ms": total, "h200_ms": sum(p["h200_ms"] for p in phases.values()),
            "phases": phases, "counts": per_step}


class _NoCounts:
    """Counts only the stand-in can give: none on real CuPy or the CPU."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def summary(self) -> dict:
        return {}


class _StandinCounts:
    """The stand-in's counters (tests/cupy_standin), under its run.py."""

    def __init__(self) -> None:
        import cupy_standin  # on sys.path under tests/cupy_standin/run.py

        self.inner = cupy_standin.counting()

    def __enter__(self):
        self.c = self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def summary(self) -> dict:
        return {"syncs": self.c.syncs, "device_ops": self.c.ops,
                "allocations": self.c.allocations}


def _counting():
    be = sl.get_backend()
    if be.name == "cuda" and getattr(be.xp, "IS_STANDIN", False):
        return _StandinCounts()
    return _NoCounts()


def synthetic(be, n: int, width: int, height: int):
    """`n` splats in a 4-unit box seen by a 60° camera at 5 units; σ about 1% of the box."""
    rng = np.random.default_rng(0)
    means = rng.uniform(-2, 2, (n, 3))
    g = sl.Gaussians.from_arrays(
        means, np.full((n, 3), np.log(0.02)), np.tile([1.0, 0, 0, 0], (n, 1)),
        rng.normal(0, 1, n), rng.uniform(-1, 1, (n, 1, 3)), rng.uniform(-0.1, 0.1, (n, 15, 3)),
        backend=be)
    cam = sl.orbit_cameras(radius=5.0, n=1, width=width, height=height, fov_x_deg=60)[0]
    target = be.asarray(rng.uniform(0, 1, (height, width, 3)).astype(np.float32), tag="loss")
    return g, cam, target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller frames (a rehearsal)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = p.parse_args(argv)
    be = sl.get_backend()
    problem = sl.load_problem("knot", sl.ProblemConfig(resolution=128 if args.quick else 256,
                                                       views=4, init="perturbed"), backend=be)
    n, w, h = QUICK if args.quick else FULL["gpu" if be.name == "cuda" else "cpu"]
    cases = {"knot": (problem.fresh_start(), problem.train_cameras[0], problem.train_images[0]),
             "synthetic": synthetic(be, n, w, h)}
    result = {**result_fields("step", be.name, be.describe()), "quick": args.quick,
              "repeats": args.repeats, "cases": {}}
    for name, (g, cam, target) in cases.items():
        row = step_case(be, g, cam, target, args.repeats)
        result["cases"][name] = row
        print(f"{name}: {row['splats']:,} splats at {row['width']}x{row['height']}, "
              f"{row['intersections']:,} intersections: {row['ms']:.2f} ms "
              f"(H200 traffic floor {row['h200_ms']:.3f} ms); per step {row['counts']}")
        for phase, r in row["phases"].items():
            print(f"  {phase:<14} {r['ms']:9.3f} ms  {r['bytes'] / 2**20:9.2f} MiB  "
                  f"floor {r['h200_ms']:.4f} ms")
    write_result(result, "step", be.name, be.describe()["device"], args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
