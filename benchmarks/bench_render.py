"""Time a render, forward and backward: 256², 512² and 1920x1080 for 10k, 100k and 1M splats.

    python benchmarks/bench_render.py                 # the full grid (a GPU; slow on a CPU)
    python benchmarks/bench_render.py --quick         # 10k and 100k at 256² and 512²
    python benchmarks/bench_render.py --sizes 256x256 --splats 5000

Splats: random in a ball of radius 1 (SH degree 3, σ ~ 1-3% of the scene, opacity ~0.5),
seen by an orbit camera at distance 3.5 with a 50° horizontal field of view. Forward =
render() (project, bin, rasterise); backward = render_backward() with a random image
gradient. Median of --repeats after a warm-up; CUDA events on a GPU. On a lent GPU, gsplat's
time for the same scene is a separate step (not installable here).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from functools import partial
from pathlib import Path

import numpy as np

from bench_common import make_timer, result_fields, write_result

from splat_lion import Gaussians, get_backend, orbit_cameras, render, render_backward

SIZES = ("256x256", "512x512", "1920x1080")
SPLATS = (10_000, 100_000, 1_000_000)
QUICK_SIZES, QUICK_SPLATS = ("256x256", "512x512"), (10_000, 100_000)


def random_scene(n: int, be, seed: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((n, 3))
    means = direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.random((n, 1)) ** (1 / 3)
    return Gaussians.from_arrays(
        means, np.log(rng.uniform(0.01, 0.03, (n, 3))), rng.standard_normal((n, 4)),
        rng.uniform(-1, 1, n), rng.uniform(-1, 1, (n, 1, 3)), rng.uniform(-0.2, 0.2, (n, 15, 3)),
        backend=be)


def forward(box: dict, g: Gaussians, cam) -> None:
    box["out"] = render(g, cam)


def backward(box: dict, v_image) -> None:
    render_backward(box["out"], v_image)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("cpu", "cuda"), default=None)
    p.add_argument("--sizes", nargs="+", default=None, help="WxH, e.g. 512x512")
    p.add_argument("--splats", type=int, nargs="+", default=None)
    p.add_argument("--quick", action="store_true", help="10k and 100k splats at 256² and 512²")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    counts = args.splats or (QUICK_SPLATS if args.quick else SPLATS)

    be = get_backend(args.backend)
    info = be.describe()
    print(f"backend {be.name}: {info['device']}\ncompiler: {info['compiler']}\n")
    timed = make_timer(be)
    rng = np.random.default_rng(1)
    rows = []
    print(f"{'splats':>9} {'size':>10} {'fwd ms':>9} {'bwd ms':>9} {'intersections':>14}")
    for n in counts:
        g = random_scene(n, be)
        for size in sizes:
            w, h = (int(v) for v in size.split("x"))
            cam = orbit_cameras(radius=3.5, n=1, width=w, height=h, fov_x_deg=50)[0]
            v_image = be.asarray(rng.standard_normal((h, w, 3)).astype(np.float32), tag="loss")
            out = render(g, cam)  # warm-up: compiles, allocates
            render_backward(out, v_image)
            fwd, bwd = [], []
            box: dict = {}  # the latest forward output, for the backward pass
            for _ in range(args.repeats):
                fwd.append(timed(partial(forward, box, g, cam)))
                bwd.append(timed(partial(backward, box, v_image)))
            row = {"splats": n, "width": w, "height": h,
                   "forward_ms": round(statistics.median(fwd), 3),
                   "backward_ms": round(statistics.median(bwd), 3),
                   "forward_ms_all": [round(t, 3) for t in fwd],
                   "backward_ms_all": [round(t, 3) for t in bwd],
                   "intersections": int(out.bins["num_intersections"]),
                   "visible": int(be.to_numpy(out.visible).sum())}
            rows.append(row)
            print(f"{n:>9,} {size:>10} {row['forward_ms']:>9.2f} {row['backward_ms']:>9.2f} "
                  f"{row['intersections']:>14,}")
    result = {**result_fields("render", be.name, info),
              "python": platform.python_version(), "numpy": np.__version__,
              "repeats": args.repeats, "sh_degree": 3, "rows": rows,
              "gsplat": "not measured (no GPU in this run)" if be.name == "cpu" else "not installed"}
    write_result(result, "render", be.name, info["device"], args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
