"""The Lion-vs-Adam study: which learning rates Lion wants for splats, and how it compares.

    python benchmarks/lion_vs_adam.py                        # the bundled scenes, CPU-sized
    python benchmarks/lion_vs_adam.py my_scene.ply --steps 3000 --resolution 256
    python benchmarks/lion_vs_adam.py --quick                # a smoke run (tests use it)

For each scene: orbit views around it (every fifth held out), a start (the scene perturbed:
colours, positions, opacities; or --init points: its centres, grey, with densification),
then fits with the same views, seed and steps:
  1. Adam at the 3DGS rates (LrTable.adam_3dgs, base 1e-3): the baseline.
  2. Lion with 3DGS's relative rates (LrTable.adam_3dgs's table) at base lr 1e-4 x each
     --lr-mults multiplier, weight decay 0, visibility mask on.
  3. At each scene's best multiplier: each --weight-decays value, the mask off, and bf16
     momentum (not with --sweep-only).
--lion-decay F makes every Lion rate decay log-linearly to F x its start over the run.
Reported per run: held-out PSNR and SSIM, optimizer state bytes, seconds. The multiplier
with the best mean PSNR over the scenes is printed; LrTable.lion_default (points start) and
LrTable.lion_refine (perturbed start) were set from these runs, recorded with the commands
in docs/lion-vs-adam.md. JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench_common import OtherLoad, result_fields, write_result

import splat_lion as sl
from splat_lion.densify import DensifyConfig
from splat_lion.optim import LION_DEFAULT_LR, optimizer_spec
from splat_lion.problem import ORBIT_RADIUS, ProblemConfig, load_problem


def lion_table(extent: float, steps: int, decay: float | None):
    """3DGS's relative rates (LrTable.adam_3dgs's table, which the base lr scales); with
    `decay`, every entry that is constant there instead decays log-linearly to `decay` x
    its rate over the run (means keep their own decay). LrTable.lion_default and
    lion_refine are this table with decay 0.1 at the multipliers the study chose."""
    from dataclasses import replace

    table = sl.LrTable.adam_3dgs(extent, steps)
    if decay is None:
        return table
    return replace(table, entries={
        name: e if e.final_scale is not None else replace(e, final_scale=e.scale * decay,
                                                            decay_steps=steps)
        for name, e in table.entries})


def run(problem, args, name: str, optimizer: str, lr_mult: float = 1.0,
        weight_decay: float = 0.0, selective: bool = True) -> dict:
    g = problem.fresh_start()  # the same start for every run of a scene
    be = g.backend
    densify = DensifyConfig.for_steps(args.steps) if args.init == "points" else None
    config = sl.FitConfig(optimizer=optimizer, steps=args.steps, seed=args.seed,
                          selective=selective, densify=densify)
    extent = g.extent()
    spec = optimizer_spec(optimizer)  # the class and its options (bf16 momentum)
    table = (sl.LrTable.adam_3dgs(extent, args.steps) if spec.cls is sl.Adam
             else lion_table(extent, args.steps, args.lion_decay))
    opt = spec.cls(spec.base_lr * lr_mult, lr_table=table, backend=be,
                   **dict(spec.options)).with_weight_decay(weight_decay)
    t0 = time.perf_counter()
    result = sl.fit(g, problem.train_cameras, problem.train_images, config, optimizer=opt)
    seconds = time.perf_counter() - t0
    held = problem.evaluate(g)
    row = {"run": name, "optimizer": optimizer, "lr": opt.lr, "lr_mult": lr_mult,
           "weight_decay": weight_decay, "selective": selective, "psnr": held.psnr,
           "ssim": held.ssim, "splats": g.count, "state_bytes": result.optimizer_state_bytes,
           "seconds": round(seconds, 2)}
    print(f"  {name:<28} PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  "
          f"{row['splats']:>6} splats  {seconds:5.1f} s", flush=True)
    return row


def markdown(result: dict) -> str:
    lines = ["| scene | run | held-out PSNR (dB) | SSIM | optimizer state (MiB) | s |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for scene in result["scenes"]:
        for r in scene["rows"]:
            lines.append(f"| {scene['scene']} | {r['run']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
                         f"| {r['state_bytes'] / 2**20:.2f} | {r['seconds']:.1f} |")
    lines.append("")
    lines.append("| Lion base lr multiplier | mean held-out PSNR over scenes (dB) |")
    lines.append("| ---: | ---: |")
    for mult, p in result["mean_psnr_by_lr_mult"].items():
        lines.append(f"| {mult} (lr {float(mult) * LION_DEFAULT_LR:.1e}) | {p:.2f} |")
    lines.append(f"| Adam (3DGS rates) | {result['mean_psnr_adam']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scenes", nargs="*", default=None,
                   help="bundled scene names or .ply files (default: all bundled scenes)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--views", type=int, default=10)
    p.add_argument("--init", choices=("perturbed", "points"), default="perturbed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-mults", default="0.3,1,3,10",
                   help="Lion base-lr multipliers of 1e-4 to sweep (comma-separated)")
    p.add_argument("--adam-mults", default="",
                   help="also Adam at these multiples of the 3DGS rates (comma-separated)")
    p.add_argument("--weight-decays", default="0.1,1",
                   help="Lion weight decays tried at the best multiplier")
    p.add_argument("--lion-decay", type=float, default=None, metavar="F",
                   help="Lion rates decay log-linearly to F x their start over the run "
                        "(default: constant rates)")
    p.add_argument("--sweep-only", action="store_true",
                   help="only Adam and the lr sweep (no weight decay, mask or bf16 runs)")
    p.add_argument("--mask-runs", action="store_true",
                   help="with --sweep-only: also every Lion multiplier without the mask")
    p.add_argument("--radius", type=float, default=ORBIT_RADIUS,
                   help="camera distance in scene extents (2.6: every splat in every view; "
                        "about 1.2: each view sees part of the scene)")
    p.add_argument("--quick", action="store_true", help="tiny: 1 scene, 8 steps, 24 px")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.resolution, args.scenes = 8, 24, args.scenes or ["shapes"]
        args.lr_mults, args.weight_decays = "1,3", "0.1"
    scenes = args.scenes or sl.scenes.names()
    mults = [float(m) for m in args.lr_mults.split(",")]
    decays = [float(w) for w in args.weight_decays.split(",") if w]
    be = sl.get_backend()
    load = OtherLoad()
    result = {**result_fields("lion_vs_adam", be.name, be.describe()),
              "command": "python benchmarks/lion_vs_adam.py " + " ".join(argv or sys.argv[1:]),
              "steps": args.steps, "resolution": args.resolution, "views": args.views,
              "init": args.init, "seed": args.seed, "lion_decay": args.lion_decay,
              "radius": args.radius, "scenes": []}
    for source in scenes:
        print(f"{source}: {args.steps} steps at {args.resolution}x{args.resolution}, "
              f"{args.init} start", flush=True)
        setup = load_problem(source, ProblemConfig(
            resolution=args.resolution, views=args.views, init=args.init, seed=args.seed,
            orbit_radius=args.radius), backend=be)
        rows = [run(setup, args, "adam (3DGS rates)", "adam")]
        rows += [run(setup, args, f"adam x{m:g}", "adam", m)
                 for m in (float(m) for m in args.adam_mults.split(",") if m)]
        sweep = [run(setup, args, f"lion x{m:g}", "lion", m) for m in mults]
        rows += sweep
        if args.sweep_only and args.mask_runs:
            rows += [run(setup, args, f"lion x{m:g} no mask", "lion", m, selective=False)
                     for m in mults]
        best = max(sweep, key=lambda r: r["psnr"])["lr_mult"]
        if not args.sweep_only:
            rows += [run(setup, args, f"lion x{best:g} wd {w:g}", "lion", best, w)
                     for w in decays]
            rows.append(run(setup, args, f"lion x{best:g} no mask", "lion", best,
                            selective=False))
            rows.append(run(setup, args, f"lion-bf16 x{best:g}", "lion-bf16", best))
        result["scenes"].append({"scene": source, "splats": setup.start.count, "rows": rows})
    result["mean_psnr_by_lr_mult"] = {
        f"{m:g}": float(np.mean([next(r["psnr"] for r in s["rows"] if r["run"] == f"lion x{m:g}")
                                 for s in result["scenes"]])) for m in mults}
    result["mean_psnr_adam"] = float(np.mean([s["rows"][0]["psnr"] for s in result["scenes"]]))
    result["best_lr_mult"] = float(max(result["mean_psnr_by_lr_mult"].items(),
                                       key=lambda kv: kv[1])[0])
    result["other_load"] = load.share()
    table = markdown(result)
    print("\n" + table)
    print(f"\nbest Lion base lr: {result['best_lr_mult'] * LION_DEFAULT_LR:.1e} "
          f"(x{result['best_lr_mult']:g} of the current {LION_DEFAULT_LR:.0e})")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    name = f"lion-vs-adam-{args.init}" + (f"-decay{args.lion_decay:g}" if args.lion_decay else "")
    write_result(result, name, be.name, be.describe()["device"],
                 args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
