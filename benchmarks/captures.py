"""Fit real captures with Lion and Adam: how a capture's quality is reported.

    python benchmarks/captures.py garden/ lego/ --downscale 4 --steps 7000
    python benchmarks/captures.py my_capture/ --optimizers lion --steps 30000   # on a GPU
    python benchmarks/captures.py --quick      # a tiny synthetic capture it writes (tests)

Each folder is any capture `splat-lion fit` reads (COLMAP, NeRF-synthetic or instant-ngp /
nerfstudio transforms.json, distorted or not). Per capture and optimizer: the capture's own
start (its points, else random splats where its cameras look), 3DGS's densification schedule
compressed into --steps, the same seed; then held-out PSNR and SSIM (over the valid pixels),
splats, seconds and tracked peak memory. Writes the JSON to benchmarks/results/ and, per
capture, `<name>.png` beside it: a held-out target, then each optimizer's render.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_common import OtherLoad, result_fields, write_result

import splat_lion as sl
from splat_lion import report
from splat_lion.densify import DensifyConfig
from splat_lion.optim import OPTIMIZER_NAMES


def run(problem, optimizer: str, steps: int, seed: int) -> tuple[dict, np.ndarray]:
    """One fit of the problem's start; (its row, the first held-out render)."""
    g = problem.fresh_start()
    config = sl.FitConfig(optimizer=optimizer, steps=steps, seed=seed,
                          background=problem.background, densify=DensifyConfig.for_steps(steps))
    t0 = time.perf_counter()
    result = sl.fit(g, problem.train_cameras, problem.train_images, config,
                    masks=problem.train_masks)
    seconds = time.perf_counter() - t0
    held = problem.evaluate(g)
    row = {"optimizer": optimizer, "psnr": held.psnr, "ssim": held.ssim, "on": held.on,
           "splats": g.count, "seconds": round(seconds, 2), "peak_bytes": result.peak_bytes,
           "optimizer_state_bytes": result.optimizer_state_bytes}
    print(f"  {optimizer:<10} {held.on} PSNR {held.psnr:6.2f} dB  SSIM {held.ssim:.4f}  "
          f"{g.count:>7,} splats  {seconds:7.1f} s  peak {result.peak_bytes / 2**20:,.0f} MiB",
          flush=True)
    return row, problem.backend.to_numpy(held.images[0])


def synthetic_capture(root: Path) -> Path:
    """A tiny instant-ngp-style capture of the bundled `shapes`: 8 views at 48x36 on an arc
    around it, 20 units from the origin, with OPENCV distortion (k1, k2, p1, p2 at the top
    level of transforms.json) and no points."""
    from splat_lion.cameras import Distortion
    from splat_lion.datasets import write_transforms
    from splat_lion.undistort import distort_image

    be = sl.get_backend("cpu")
    ref = sl.load_ply(sl.scenes.path("shapes"), backend=be)
    ref.means[...] += np.array([20.0, 0.0, 0.0], np.float32)
    lens = Distortion("OPENCV", (-0.08, 0.01, 0.001, -0.0005))
    cams = sl.orbit_cameras(center=(20.0, 0.0, 0.0), radius=4.5, n=8, width=48, height=36)
    images = [np.asarray(distort_image(sl.render(ref, c).image, c, c, lens, backend=be)[0])
              for c in cams]
    write_transforms(root, cams, images, distortion=lens)
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("captures", nargs="*", type=Path, help="capture folders")
    p.add_argument("--downscale", type=int, default=4)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--optimizers", default="lion,adam",
                   help=f"comma-separated, of {', '.join(OPTIMIZER_NAMES)}")
    p.add_argument("--sh-degree", type=int, default=3)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a synthetic capture it writes itself, 20 steps (a smoke run)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    args = p.parse_args(argv)
    optimizers = args.optimizers.split(",")
    for name in optimizers:
        sl.optim.optimizer_spec(name)  # a clear error for an unknown name
    with tempfile.TemporaryDirectory() as tmp:
        captures = args.captures
        if args.quick:
            captures = [synthetic_capture(Path(tmp) / "synthetic")]
            args.steps, args.downscale, args.sh_degree = 20, 1, 1
        if not captures:
            p.error("give capture folders, or --quick")
        be = sl.get_backend()
        load = OtherLoad()
        result = {**result_fields("captures", be.name, be.describe()),
                  "command": "python benchmarks/captures.py " + " ".join(argv or sys.argv[1:]),
                  "steps": args.steps, "downscale": args.downscale, "seed": args.seed,
                  "captures": []}
        pictures = []
        for folder in captures:
            problem = sl.load_problem(folder, sl.ProblemConfig(
                downscale=args.downscale, sh_degree=args.sh_degree, max_images=args.max_images,
                seed=args.seed), backend=be)
            print(f"{folder}: {problem.description}; {args.steps} steps", flush=True)
            rows, renders = [], []
            for name in optimizers:
                row, image = run(problem, name, args.steps, args.seed)
                rows.append(row)
                renders.append(image)
            target = be.to_numpy(problem.eval_views()[1][0])
            pictures.append((folder.name, np.concatenate([target, *renders], axis=1)))
            result["captures"].append({"capture": str(folder), "name": folder.name,
                                       "description": problem.description,
                                       "frame": problem.frame.to_json(), "rows": rows})
        result["other_load"] = load.share()
        out = write_result(result, "captures", be.name, be.describe()["device"], args.quick,
                           args.out)
        for name, picture in pictures:  # target | one render per optimizer
            print(f"wrote {report.save_image(picture, out.with_name(f'{out.stem}-{name}.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
