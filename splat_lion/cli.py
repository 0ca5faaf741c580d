"""The `splat-lion` command.

    splat-lion info [SCENE] [--json]   backend, device, compilers, a self-test kernel run,
                                       and a description of SCENE (a .ply or a bundled name)
    splat-lion fit SOURCE --out DIR    fit splats to orbit views of a scene (.ply or bundled
                                       name) or to a capture (transforms.json / COLMAP folder);
                                       writes fitted.ply, metrics.json, images, checkpoints
    splat-lion render SCENE --out DIR  PNG views and (--orbit N) a turntable GIF
    splat-lion profile SOURCE          memory of a fit step by tag and phase, per optimizer
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__


def _cupy_version() -> str:
    try:
        import cupy
    except ImportError:
        return "not installed (GPU: pip install 'splat-lion[cuda12]' or 'splat-lion[cuda13]')"
    return cupy.__version__


def describe_scene(source: str) -> dict:
    """Splat count, SH degree, bounds, opacity and scale statistics, and the bytes of the
    parameters and of each optimizer's state for a scene."""
    from .backend import get_backend
    from .layout import Layout
    from .memory import predict_memory
    from .ply import load_ply

    path = _scene_path(source)
    g = load_ply(path, backend=get_backend("cpu"))
    params = Layout.gaussians(g.count, g.sh_degree).nbytes()
    sigma = g.scale_values()
    return {
        "file": str(path),
        "splats": g.count,
        "sh_degree": g.sh_degree,
        "bounds_min": [round(float(v), 4) for v in g.means.min(0)] if g.count else None,
        "bounds_max": [round(float(v), 4) for v in g.means.max(0)] if g.count else None,
        "extent": round(g.extent(), 4),
        "opacity_median": round(float(np.median(g.opacity_values())), 4) if g.count else None,
        "sigma_median": round(float(np.median(sigma)), 5) if g.count else None,
        "sigma_p99": round(float(np.percentile(sigma, 99)), 5) if g.count else None,
        "extra_properties": sorted(g.extra),
        # exact: one float32 buffer; Lion keeps 1 (bf16: half of one), Adam 2
        "bytes_params": params,
        "bytes_state_lion": params,
        "bytes_state_lion_bf16": params // 2,
        "bytes_state_adam": 2 * params,
        # predicted peak of one fit step at 1920x1080 (memory.predict_memory; a fit also
        # keeps its training images: 24 MiB each at that size)
        "bytes_fit_step_1080p": {name: predict_memory(g.count, 1920, 1080, g.sh_degree,
                                                      name)["peak"]
                                 for name in ("lion", "lion-bf16", "adam")},
    }


def cmd_info(args: argparse.Namespace) -> int:
    from . import kernels, selftest
    from .backend import BackendUnavailable, get_backend, why_chosen

    try:
        be = get_backend()
    except BackendUnavailable as e:
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    info = {
        "splat_lion": __version__,
        "backend": be.name,
        "backend_reason": why_chosen(be),
        **be.describe(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupy": _cupy_version(),
        "kernels": f"{kernels.kernel_dir()} ({', '.join(kernels.families())})",
    }
    scene = None
    if args.scene:  # first, so a bad argument fails fast
        from .ply import PlyError

        try:
            scene = describe_scene(args.scene)
        except (PlyError, ValueError) as e:
            print(f"splat-lion: {e}", file=sys.stderr)
            return 2
    checks = selftest.run(be)
    ok = all(c.ok for c in checks)
    if args.json:
        info["selftest"] = [c.__dict__ for c in checks]
        info["ok"] = ok
        info["scene"] = scene
        print(json.dumps(info, indent=2))
        return 0 if ok else 1
    width = max(map(len, info))
    for key, value in info.items():
        if key == "backend_reason":
            continue
        if key == "backend":
            value = f"{value}  ({info['backend_reason']})"
        print(f"{key:<{width}}  {value}")
    print(f"{'self-test':<{width}}  on the {be.name} backend:")
    for c in checks:
        print(f"  {'OK  ' if c.ok else 'FAIL'} {c.name:<20} {c.detail}, {c.ms:.1f} ms")
    print("all kernels OK" if ok else "SELF-TEST FAILED: the backend computes wrong results")
    if scene:
        mb = 1 / 2**20
        print(f"\nscene {scene['file']}")
        print(f"  {scene['splats']:,} splats, SH degree {scene['sh_degree']}, bounds "
              f"{scene['bounds_min']} .. {scene['bounds_max']}, extent {scene['extent']}")
        print(f"  opacity median {scene['opacity_median']}, sigma median {scene['sigma_median']}"
              f" (99th percentile {scene['sigma_p99']})"
              + (f", extra properties: {', '.join(scene['extra_properties'])}"
                 if scene["extra_properties"] else ""))
        print(f"  parameters {scene['bytes_params'] * mb:.2f} MiB; optimizer state: Lion "
              f"{scene['bytes_state_lion'] * mb:.2f} MiB, Lion bf16 "
              f"{scene['bytes_state_lion_bf16'] * mb:.2f} MiB, Adam "
              f"{scene['bytes_state_adam'] * mb:.2f} MiB")
        step = scene["bytes_fit_step_1080p"]
        print(f"  to fit at 1920x1080 (one step at its peak, predicted): Lion "
              f"{step['lion'] * mb:.0f} MiB, Lion bf16 {step['lion-bf16'] * mb:.0f} MiB, Adam "
              f"{step['adam'] * mb:.0f} MiB, plus 24 MiB per training image")
    return 0 if ok else 1


def _scene_path(source: str):
    from pathlib import Path

    from . import scenes

    path = Path(source)
    if source.endswith(".ply") or path.exists() or len(path.parts) > 1:
        if not path.exists():
            raise ValueError(f"{source}: no such file or folder")
        return path
    return scenes.path(source)


@dataclass
class _Problem:
    """What `splat-lion fit` fits: training and held-out views, and a start."""
    # training cameras and [H, W, 3] target images (on the backend)
    train_cameras: list
    train_images: list
    # held-out cameras and images, for the PSNR / SSIM report and the side-by-side PNGs
    test_cameras: list
    test_images: list
    # the splats to start from
    start: Any
    # whether the start is a point cloud (then densification is on by default)
    from_points: bool
    # one line for the log: what the views and the start are
    description: str
    # the settings that made the views: a resumed run must use the same
    context: dict


def _problem_from_scene(args, be, background) -> _Problem:
    """Orbit views of a PLY or bundled scene (every fifth held out); start: the scene
    perturbed (colours, positions, opacities), its centres as a point cloud, or random."""
    from . import scenes
    from .cameras import orbit_cameras
    from .ply import load_ply
    from .render import render

    path = _scene_path(args.source)
    ref = load_ply(path, backend=be)
    res = max(1, (args.resolution or (64 if be.name == "cpu" else 256)) // args.downscale)
    cams = orbit_cameras(radius=2.6 * ref.extent(), n=args.views, width=res, height=res,
                         elevation_deg=25)
    held = cams[::5]
    train = [c for i, c in enumerate(cams) if i % 5]
    init = args.init or "perturbed"
    if init == "points":
        g = scenes.centres_only(ref)
    elif init == "random":
        g = _random_start(be.to_numpy(ref.means), args.init_points, ref.sh_degree,
                          np.random.default_rng(args.seed), be)
    else:
        g = scenes.perturbed(ref, args.seed)
    return _Problem(
        train, [render(ref, c, background).image.copy() for c in train], held,
        [render(ref, c, background).image.copy() for c in held], g, init != "perturbed",
        f"{len(train)} orbit views of {path.name} at {res}x{res}, from a {init} start",
        {"source": str(path), "resolution": res, "views": args.views, "init": init})


def _problem_from_dataset(args, be, background) -> _Problem:
    """A transforms.json or COLMAP capture; start: its points (COLMAP), or random points
    in the region the cameras look at (transforms.json without points)."""
    from .datasets import load_dataset

    ds = load_dataset(args.source, downscale=args.downscale, background=background,
                      max_images=args.max_images)
    rng = np.random.default_rng(args.seed)
    init = args.init or ("points" if ds.points is not None else "random")
    if init == "perturbed":
        raise ValueError("--init perturbed needs a PLY scene; a capture starts from 'points' "
                         "(COLMAP) or 'random'")
    if init == "points":
        if ds.points is None or not len(ds.points):
            raise ValueError(f"{ds.root}: the capture has no points; use --init random")
        from .gaussians import Gaussians

        g = Gaussians.from_points(ds.points, ds.point_colors, args.sh_degree, backend=be)
    else:
        centres = np.stack([c.position for c in ds.train_cameras])
        g = _random_start(centres, args.init_points, args.sh_degree, rng, be, inner=True)
    size = f"{ds.train_cameras[0].width}x{ds.train_cameras[0].height}"
    return _Problem(
        ds.train_cameras, [be.asarray(t, tag="loss") for t in ds.train_images],
        ds.test_cameras, [be.asarray(t, tag="loss") for t in ds.test_images], g, True,
        f"{len(ds.train_cameras)} {ds.kind} views of {ds.root} at {size}, "
        f"{len(ds.test_cameras)} held out, from a {init} start",
        {"source": str(ds.root.resolve()), "downscale": args.downscale, "init": init,
         "max_images": args.max_images})


def _random_start(points, count, sh_degree, rng, be, inner=False):
    """`count` grey splats uniform in the box around `points` ([P, 3]); inner=True: in a cube
    a third of the points' spread around their mean (cameras around an object, as 3DGS's
    NeRF-synthetic start: 100k points in [-1.3, 1.3]³ for cameras at radius 4)."""
    from .gaussians import Gaussians

    points = np.asarray(points, np.float64)
    if inner:
        centre = points.mean(0)
        half = np.median(np.linalg.norm(points - centre, axis=1)) / 3 or 1.0
        lo, hi = centre - half, centre + half
    else:
        lo, hi = points.min(0), points.max(0)
    xyz = rng.uniform(lo, hi, (count, 3))
    return Gaussians.from_points(xyz, rng.uniform(0, 1, (count, 3)), sh_degree, backend=be)


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit splats to a scene's orbit views or to a capture; progress on stderr, results in
    --out (fitted.ply, metrics.json, heldout_<i>.png, loss.png, checkpoint.npz)."""
    import time
    from pathlib import Path

    from tqdm import tqdm

    from .backend import get_backend
    from .checkpoint import CheckpointError, load_checkpoint
    from .datasets import DatasetError, detect
    from .densify import DensifyConfig
    from .fit import CHECKPOINT_NAME, FitConfig, fit
    from .loss import psnr, ssim
    from .ply import PlyError, save_ply
    from .render import render

    be = get_backend()
    out_dir = Path(args.out)
    background = (1.0, 1.0, 1.0) if args.white else (0.0, 0.0, 0.0)
    try:
        for name in ("steps", "downscale", "views", "init_points"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        kind = detect(args.source) if Path(args.source).is_dir() else None
        if kind:
            problem = _problem_from_dataset(args, be, background)
        elif Path(args.source).is_dir():
            raise ValueError(f"{args.source}: a folder, but neither a transforms.json capture "
                             "nor a COLMAP model (sparse/0/cameras.bin or .txt) is in it")
        else:
            problem = _problem_from_scene(args, be, background)
        densify = args.densify == "on" or (args.densify == "auto" and problem.from_points)
        densify = DensifyConfig.for_steps(args.steps) if densify else None
        if args.max_memory:
            predicted, densify = _fit_within(problem, problem.start, args.optimizer,
                                             args.max_memory, densify)
            print(f"predicted peak {predicted / 2**20:,.0f} MiB of --max-memory "
                  f"{args.max_memory / 2**20:,.0f} MiB"
                  + (f"; densification stops at {densify.max_splats:,} splats" if densify
                     else ""), file=sys.stderr)
        config = FitConfig(optimizer=args.optimizer, steps=args.steps, seed=args.seed,
                           background=background, densify=densify,
                           lion_rates="from_points" if problem.from_points else "refine",
                           checkpoint_every=args.checkpoint_every)
        resume = None
        if args.resume:
            resume = load_checkpoint(out_dir / CHECKPOINT_NAME)
            was = {k: v for k, v in (resume.get("meta") or {}).items() if k != "psnr_before"}
            if was != problem.context:
                changed = [f"{k} {was.get(k)!r} -> {problem.context.get(k)!r}"
                           for k in sorted(set(was) | set(problem.context))
                           if was.get(k) != problem.context.get(k)]
                raise CheckpointError(f"{out_dir / CHECKPOINT_NAME} was made for other views: "
                                      f"{', '.join(changed)}")
    except (PlyError, DatasetError, CheckpointError, ValueError) as e:
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    g = problem.start
    eval_cameras, eval_images = problem.test_cameras, problem.test_images
    if not eval_cameras:  # e.g. a transforms_train.json without a transforms_test.json
        print("splat-lion: no held-out views: PSNR and SSIM are on the training views",
              file=sys.stderr)
        eval_cameras, eval_images = problem.train_cameras, problem.train_images

    def held_out():
        images = [render(g, c, background).image for c in eval_cameras]
        pairs = list(zip(images, eval_images))
        return (float(np.mean([psnr(i, t) for i, t in pairs])),
                float(np.mean([ssim(i, t)[0] for i, t in pairs])), images)

    psnr_before = resume["meta"]["psnr_before"] if resume else held_out()[0]
    first_step = int(resume["step"]) if resume else 0
    print(f"fitting {g.count:,} splats (SH degree {g.sh_degree}) to {problem.description}, "
          f"with {args.optimizer} on {be.name}{', densifying' if config.densify else ''}"
          f"{f', resuming at step {first_step}' if resume else ''}; held-out PSNR "
          f"{psnr_before:.2f} dB", file=sys.stderr)
    bar = tqdm(total=config.steps, unit="step", file=sys.stderr, disable=args.quiet,
               initial=first_step)

    def progress(step, loss, p):
        bar.update(step + 1 - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{p:.1f}", splats=f"{g.count:,}",
                        mem=_memory_in_use(be))

    t0 = time.perf_counter()
    try:
        result = fit(g, problem.train_cameras, problem.train_images, config, progress=progress,
                     checkpoint_dir=out_dir, resume=resume,
                     meta={**problem.context, "psnr_before": psnr_before})
    except CheckpointError as e:
        bar.close()
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        saved = out_dir / CHECKPOINT_NAME
        hint = (f"the checkpoint of step {load_checkpoint(saved)['step']} continues with --resume"
                if config.checkpoint_every and saved.exists() else
                "no checkpoint: --checkpoint-every N makes resumable runs")
        print(f"splat-lion: interrupted; {hint}", file=sys.stderr)
        return 130
    bar.update(config.steps - bar.n)
    bar.close()
    final_psnr, final_ssim, images = held_out()
    save_ply(g, out_dir / "fitted.ply")
    metrics = {"psnr": round(final_psnr, 4), "ssim": round(final_ssim, 5),
               "psnr_before": round(psnr_before, 4), "steps": config.steps,
               "num_splats": g.count, "seconds": round(time.perf_counter() - t0, 2),
               "optimizer": args.optimizer, "optimizer_state_bytes": result.optimizer_state_bytes,
               "peak_bytes": result.peak_bytes, "peak_bytes_by_tag": result.peak_bytes_by_tag,
               "views_train": len(problem.train_cameras),
               "views_held_out": len(problem.test_cameras), "backend": be.name,
               "evaluated_on": "held-out views" if problem.test_cameras else "training views",
               **problem.context, "resumed_from_step": result.start_step,
               "densify_events": len(result.densify_events),
               "loss_history": result.loss_history, "psnr_history": result.psnr_history,
               "splat_history": result.splat_history}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _save_side_by_side(out_dir, [be.to_numpy(t) for t in eval_images[:4]],
                       [be.to_numpy(i) for i in images[:4]])
    note = _save_loss_curve(out_dir, result.loss_history)
    print(f"held-out PSNR {psnr_before:.2f} -> {final_psnr:.2f} dB, SSIM {final_ssim:.4f}, "
          f"{g.count:,} splats, {metrics['seconds']:.1f} s; wrote {out_dir}/fitted.ply, "
          f"metrics.json, heldout_*.png{note}")
    return 0


def _memory_in_use(be) -> str:
    """Bytes of the arrays splat-lion holds now (every tagged allocation, memory.py)."""
    return f"{be.memory.current_bytes() / 2**20:.1f}MiB"


def _save_side_by_side(out_dir, targets, renders) -> None:
    """heldout_<i>.png: target (left) and render (right)."""
    from PIL import Image

    for i, (t, r) in enumerate(zip(targets, renders)):
        pair = np.concatenate([t, r], axis=1)
        Image.fromarray(_to_uint8(pair)).save(
            out_dir / f"heldout_{i}.png")


def _save_loss_curve(out_dir, history) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return " (no loss curve: pip install matplotlib for loss.png)"
    steps, losses = zip(*history)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("0.8 L1 + 0.2 (1 - SSIM)")
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=100)
    plt.close(fig)
    return ", loss.png"


def _to_uint8(image) -> np.ndarray:
    return (np.clip(np.asarray(image), 0, 1) * 255 + 0.5).astype(np.uint8)


def cmd_render(args: argparse.Namespace) -> int:
    """PNG views of a scene from orbit cameras around it; with --orbit N also turntable.gif,
    N frames once around. Prints what it wrote."""
    from pathlib import Path

    from PIL import Image
    from tqdm import tqdm

    from .backend import get_backend
    from .cameras import orbit_cameras
    from .ply import PlyError, load_ply
    from .render import render

    be = get_backend()
    try:
        g = load_ply(_scene_path(args.source), backend=be)
    except (PlyError, ValueError) as e:
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    for name in ("views", "resolution", "orbit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"splat-lion: --{name} must be >= 1", file=sys.stderr)
            return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = args.resolution or (128 if be.name == "cpu" else 512)
    radius = args.radius or 2.6 * g.extent()
    background = (1.0, 1.0, 1.0) if args.white else (0.0, 0.0, 0.0)
    written = []
    cams = orbit_cameras(radius=radius, n=args.views, width=res, height=res,
                         elevation_deg=args.elevation)
    for i, cam in enumerate(cams):
        path = out_dir / f"view_{i:03d}.png"
        Image.fromarray(_to_uint8(be.to_numpy(render(g, cam, background).image))).save(path)
        written.append(path.name)
    if args.orbit:
        frames = []
        for cam in tqdm(orbit_cameras(radius=radius, n=args.orbit, width=res, height=res,
                                      elevation_deg=args.elevation),
                        desc="turntable", unit="frame", file=sys.stderr, disable=args.quiet):
            frames.append(Image.fromarray(_to_uint8(be.to_numpy(render(g, cam, background).image))))
        frames[0].save(out_dir / "turntable.gif", save_all=True, append_images=frames[1:],
                       duration=max(20, round(4000 / len(frames))), loop=0)
        written.append("turntable.gif")
    print(f"rendered {g.count:,} splats at {res}x{res} on {be.name}: wrote "
          f"{', '.join(written)} in {out_dir}")
    return 0


def parse_bytes(text: str) -> int:
    """'8GB', '8GiB', '512MB', '1.5G', '2000000' -> bytes (K/M/G/T are powers of 1024, as
    GPU memory is counted)."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m or (m.group(3) and not m.group(2) and m.group(3).lower() != "b"):
        raise ValueError(f"memory size {text!r}: write it like 8GB, 512MB or 1.5GiB")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024 ** power)


def _predicted_fit_peak(problem, num_splats: int, sh_degree: int, optimizer: str) -> int:
    """Bytes a fit step at its peak needs (memory.predict_memory) plus every training and
    held-out image a fit keeps (predict_memory counts one target)."""
    from .memory import predict_memory

    cam = problem.train_cameras[0]
    step = predict_memory(num_splats, cam.width, cam.height, sh_degree, optimizer)["peak"]
    images = sum(int(np.prod(t.shape)) * 4 for t in problem.train_images + problem.test_images)
    return step + images - cam.width * cam.height * 12


def _fit_within(problem, g, optimizer: str, limit: int, densify) -> tuple[int, object]:
    """(predicted peak, densify config): refuses (ValueError) when even the start does not
    fit in `limit` bytes; with densification, caps the splat count where the limit is."""
    from dataclasses import replace

    peak = _predicted_fit_peak(problem, g.count, g.sh_degree, optimizer)
    mib = 2**20
    if peak > limit:
        raise ValueError(f"a fit of {g.count:,} splats at {problem.train_cameras[0].width}x"
                         f"{problem.train_cameras[0].height} with {optimizer} needs about "
                         f"{peak / mib:,.0f} MiB (predicted), more than --max-memory "
                         f"{limit / mib:,.0f} MiB: try --optimizer lion-bf16, --downscale 2, "
                         "or fewer images (--max-images)")
    if densify is None:
        return peak, None
    lo, hi = g.count, max(g.count, 1) * 64  # the most splats that fit: binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _predicted_fit_peak(problem, mid, g.sh_degree, optimizer) <= limit:
            lo = mid
        else:
            hi = mid - 1
    cap = lo if densify.max_splats is None else min(lo, densify.max_splats)
    return peak, replace(densify, max_splats=max(cap, 1))


def cmd_profile(args: argparse.Namespace) -> int:
    """One fit step per optimizer under the memory tracker: a table by tag and phase, the
    predicted peak beside the measured one, a stacked-bar PNG and the JSON (memory.py)."""
    from pathlib import Path

    from .backend import get_backend
    from .cameras import orbit_cameras
    from .datasets import DatasetError, detect, load_dataset
    from .fit import FitConfig, make_optimizer
    from .memory import predict_memory, profile_step
    from .report import format_table, plot_profile
    from .ply import PlyError, load_ply
    from .render import render

    be = get_backend()
    names = ("lion", "lion-bf16", "adam") if args.optimizer == "all" else (args.optimizer,)
    try:
        if Path(args.source).is_dir() and detect(args.source):
            ds = load_dataset(args.source, downscale=args.downscale, max_images=1)
            if ds.points is None:
                raise ValueError(f"{args.source}: profile needs a COLMAP capture with points "
                                 "(or a PLY)")
            from .gaussians import Gaussians

            ref = Gaussians.from_points(ds.points, ds.point_colors, args.sh_degree, backend=be)
            cam, target = ds.train_cameras[0], ds.train_images[0]
        else:
            ref = load_ply(_scene_path(args.source), backend=be)
            res = max(1, args.resolution // args.downscale)
            cam = orbit_cameras(radius=2.6 * ref.extent(), n=4, width=res, height=res,
                                elevation_deg=25)[1]
            target = be.to_numpy(render(ref, cam).image).copy()
    except (PlyError, DatasetError, ValueError) as e:
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    runs = {}
    for name in names:
        g = ref.to(be)
        opt = make_optimizer(FitConfig(optimizer=name), g.extent(), be)
        profile_step(g, cam, target, opt)  # makes the optimizer state: a steady step follows
        prof = profile_step(g, cam, target, opt)
        pred = predict_memory(g.count, cam.width, cam.height, g.sh_degree, name)
        runs[name] = {**prof, "predicted_peak_bytes": pred["peak"]}
    print(f"memory of one fit step: {ref.count:,} splats, SH degree {ref.sh_degree}, "
          f"{cam.width}x{cam.height}, {be.name} backend ({runs[names[0]]['num_intersections']:,}"
          " tile intersections)\n")
    print(format_table(runs))
    report = {"num_splats": ref.count, "width": cam.width, "height": cam.height,
              "sh_degree": ref.sh_degree, "backend": be.name, "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    try:
        plot_profile(runs, args.plot)
        print(f"wrote {args.plot}")
    except ImportError:
        print(f"(no {args.plot}: pip install matplotlib for the stacked-bar chart)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .fit import OPTIMIZERS, FitConfig  # the fit options' choices and defaults

    parser = argparse.ArgumentParser(
        prog="splat-lion",
        description="Fit 3D Gaussian splats with a fused Lion optimizer (CuPy, or CPU fallback).",
    )
    parser.add_argument("--version", action="version", version=f"splat-lion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show the backend and device, self-test the kernels, "
                          "and describe a scene")
    info.add_argument("scene", nargs="?", default=None,
                      help="a 3DGS .ply file, or a bundled scene name (shapes, planet, knot)")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    fit = sub.add_parser("fit", help="fit splats to a scene's views or to a capture, and save "
                         "them", description="SOURCE: a 3DGS .ply or bundled scene name (fit to "
                         "orbit views of it), or a folder with a transforms.json (NeRF / "
                         "instant-ngp) or a COLMAP model (sparse/0/cameras.bin|txt, images/).")
    fit.add_argument("source", help="a .ply file, a bundled scene name, or a capture folder")
    fit.add_argument("--out", required=True, help="output folder")
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default=FitConfig.optimizer,
                     help="fused Lion (default), Lion with bfloat16 momentum, or Adam at the "
                          "3DGS rates")
    fit.add_argument("--steps", type=int, default=FitConfig.steps,
                     help=f"optimisation steps, one view each (default {FitConfig.steps})")
    fit.add_argument("--seed", type=int, default=FitConfig.seed,
                     help="seed of the start, the view order and the splits (default 0)")
    fit.add_argument("--downscale", type=int, default=1,
                     help="divide image sizes by this (captures: images_N/ when present)")
    fit.add_argument("--resume", action="store_true",
                     help="continue from OUT/checkpoint.npz, exactly where it stopped")
    fit.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                     help="write OUT/checkpoint.npz every N steps (default: none)")
    fit.add_argument("--densify", choices=("auto", "on", "off"), default="auto",
                     help="clone / split / prune on 3DGS's schedule compressed into --steps "
                          "(auto: on when starting from points)")
    fit.add_argument("--init", choices=("perturbed", "points", "random"), default=None,
                     help="start: a scene perturbed (default for scenes), its points (default "
                          "for COLMAP), or random points (default for transforms.json)")
    fit.add_argument("--init-points", type=int, default=10_000, metavar="N",
                     help="splats of a random start (default 10000)")
    fit.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=3,
                     help="SH degree of a capture's splats (default 3)")
    fit.add_argument("--white", action="store_true",
                     help="white background (NeRF-synthetic); default black")
    fit.add_argument("--resolution", type=int, default=None,
                     help="scenes: square view size (default: 64 on a CPU, 256 on a GPU)")
    fit.add_argument("--views", type=int, default=10,
                     help="scenes: orbit views (every fifth held out)")
    fit.add_argument("--max-images", type=int, default=None, metavar="N",
                     help="captures: use at most N training and N held-out images")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.add_argument("--max-memory", type=parse_bytes, default=None, metavar="SIZE",
                     help="refuse to start when the predicted peak exceeds SIZE (e.g. 8GB); "
                          "with densification, stop adding splats where SIZE is reached")
    fit.set_defaults(func=cmd_fit)
    prof = sub.add_parser("profile", help="where the memory of a fit step goes, by tag and "
                          "phase, per optimizer (and the predicted peak)")
    prof.add_argument("source", help="a .ply file, a bundled scene name, or a COLMAP capture")
    prof.add_argument("--optimizer", choices=(*OPTIMIZERS, "all"),
                      default="all")
    prof.add_argument("--resolution", type=int, default=256,
                      help="square view size for a scene (default 256)")
    prof.add_argument("--downscale", type=int, default=1)
    prof.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=3,
                      help="SH degree of a capture's splats")
    prof.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    prof.add_argument("--plot", default="memory-profile.png", metavar="FILE",
                      help="stacked-bar PNG (needs matplotlib; default memory-profile.png)")
    prof.set_defaults(func=cmd_profile)
    rend = sub.add_parser("render", help="render PNG views of a scene, and a turntable GIF")
    rend.add_argument("source", help="a 3DGS .ply file, or a bundled scene name")
    rend.add_argument("--out", required=True, help="output folder")
    rend.add_argument("--views", type=int, default=4, help="orbit views saved as PNG (default 4)")
    rend.add_argument("--orbit", type=int, default=None, metavar="N",
                      help="also write turntable.gif: N frames once around the scene")
    rend.add_argument("--resolution", type=int, default=None,
                      help="square image size in pixels (default: 128 on a CPU, 512 on a GPU)")
    rend.add_argument("--radius", type=float, default=None,
                      help="camera distance from the centre (default: 2.6 x the scene extent)")
    rend.add_argument("--elevation", type=float, default=25.0, help="degrees above the horizon")
    rend.add_argument("--white", action="store_true", help="white background (default black)")
    rend.add_argument("--quiet", action="store_true", help="no progress bar")
    rend.set_defaults(func=cmd_render)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
