"""The `splat-lion` command: argument parsing, printing, and calls into the library.

    splat-lion info [SCENE] [--json]   backend, device, compilers, a self-test kernel run,
                                       and a description of SCENE (a .ply or a bundled name)
    splat-lion fit SOURCE --out DIR    fit splats to orbit views of a scene (.ply or bundled
                                       name) or to a capture (transforms.json / COLMAP folder);
                                       writes fitted.ply, metrics.json, images, checkpoints
    splat-lion render SCENE --out DIR  PNG views and (--orbit N) a turntable GIF
    splat-lion profile SOURCE          memory of a fit step by tag and phase, per optimizer
    splat-lion export SPLATS --format F  the splats as .splat, compressed PLY, .spz or .sog
    splat-lion view SPLATS             a web viewer (viser) of a .ply or a fit's output
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__, kernels, memory, report, selftest
from .backend import BackendUnavailable, cuda_probe, get_backend, why_chosen
from .checkpoint import load_checkpoint
from .config import Range, option_type
from .datasets import load_dataset
from .densify import DensifyConfig
from .errors import ConfigError, SplatLionError
from .export import FORMATS, OPTIONS, export
from .fit import CHECKPOINT_NAME, FitConfig, fit, make_optimizer
from .frame import frame_of_splats
from .optim.registry import OPTIMIZER_NAMES, OPTIMIZER_SPECS, optimizer_spec
from .outputs import output_lock, save_or_keep
from .ply import load_ply, save_ply
from .problem import (FITTED_PLY, INITS, ProblemConfig, load_problem, orbit_around,
                      scene_frame, scene_path, splats_path)
from .render import render
from .viewer import DEFAULT_EVERY, serve

MIB = 2**20


def fail(message) -> int:
    """Print `splat-lion: message` on stderr; the exit status of a refused command."""
    print(f"splat-lion: {message}", file=sys.stderr)
    return 2


def _cupy_version() -> str:
    try:
        import cupy  # only here: importing CuPy takes seconds
    except ImportError:
        return "not installed (GPU: pip install 'splat-lion[cuda12]' or 'splat-lion[cuda13]')"
    return cupy.__version__


# -- info ---------------------------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    try:
        be = get_backend()
    except BackendUnavailable as e:
        return fail(e)
    info = {
        "splat_lion": __version__,
        "backend": be.name,
        "backend_reason": why_chosen(be),
        "cuda_probe": cuda_probe().summary(),  # run once per process, even when cpu is forced
        **be.describe(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupy": _cupy_version(),
        "kernels": f"{kernels.kernel_dir()} ({', '.join(kernels.families())})",
    }
    scene = None
    if args.scene:  # first, so a bad argument fails fast
        path = scene_path(args.scene)
        scene = report.describe_scene(load_ply(path, backend=get_backend("cpu")), path)
    checks = selftest.run(be)
    ok = all(c.ok for c in checks)
    if args.json:
        info.update(selftest=[c.__dict__ for c in checks], ok=ok, scene=scene)
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
        print("\n" + report.format_scene(scene))
    return 0 if ok else 1


# -- fit ----------------------------------------------------------------------------------------

def problem_config(args: argparse.Namespace, **overrides) -> ProblemConfig:
    """The ProblemConfig of the command line's options (--radius is its `distance`)."""
    options = {name: getattr(args, name) for name in ProblemConfig.__dataclass_fields__
               if hasattr(args, name)}
    if getattr(args, "white", False):
        options["background"] = (1.0, 1.0, 1.0)
    if getattr(args, "radius", None) is not None:
        options["distance"] = args.radius
    return ProblemConfig(**{**options, **overrides})


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit splats to a scene's orbit views or to a capture; progress on stderr, results in
    --out (fitted.ply, metrics.json, heldout_<i>.png, loss.png, checkpoint.npz)."""
    be = get_backend()
    out_dir = Path(args.out)
    problem = load_problem(args.source, problem_config(args), backend=be)
    viewer = None
    if args.viewer:  # the start at once, then the splats as they train
        viewer = serve(problem.start, cameras=problem.train_cameras + problem.test_cameras,
                       port=args.viewer_port)
        print(f"splat-lion: the viewer is at {viewer.url}", file=sys.stderr)
    try:
        with output_lock(out_dir):  # one fit per output folder at a time
            status = _fit(args, be, problem, out_dir, viewer)
    except BaseException:
        if viewer:
            viewer.close()
        raise
    if viewer and status == 0:  # as gsplat's trainer: the result stays on show
        viewer.update(problem.start)
        print(f"splat-lion: the viewer shows the fitted splats at {viewer.url}; Ctrl-C to stop",
              file=sys.stderr)
        viewer.wait()
    elif viewer:
        viewer.close()
    return status


def _fit(args: argparse.Namespace, be, problem, out_dir: Path, viewer) -> int:
    resume = load_checkpoint(out_dir / CHECKPOINT_NAME) if args.resume else None
    rates = "from_points" if problem.from_points else "refine"
    # the optimizer's preset for this start (registry: Lion 4 views a step from points)
    batch = args.batch_size or (int(resume["config"].get("batch_size", 1)) if resume else
                                optimizer_spec(args.optimizer).batch_size(rates))
    steps = args.steps or (resume["config"]["steps"] if resume else
                           problem.default_steps(FitConfig.steps, batch))
    densify = args.densify == "on" or (args.densify == "auto" and problem.from_points)
    densify = DensifyConfig.for_steps(steps, batch) if densify else None
    if args.max_memory:
        densify = _within_max_memory(args.max_memory, problem, args.optimizer, densify, batch)
    config = FitConfig(optimizer=args.optimizer, steps=steps, batch_size=batch, seed=args.seed,
                       lr=args.lr, background=problem.background, densify=densify, rates=rates,
                       checkpoint_every=args.checkpoint_every, eval_every=args.eval_every)
    empty = problem.empty_views(problem.start)
    g, (w, h) = problem.start, problem.size
    memory.require_memory(
        memory.predict_fit_peak(g.count, w, h, g.sh_degree, args.optimizer,
                                image_bytes=problem.image_bytes,
                                train_views=len(problem.train_cameras), batch_size=batch),
        f"a fit of {g.count:,} splats at {w}x{h} with {args.optimizer}",
        "try --downscale 2, --max-images, fewer --init-points or --optimizer lion-bf16", be)
    if not problem.test_cameras:  # e.g. a transforms_train.json without a transforms_test.json
        print("splat-lion: no held-out views: PSNR and SSIM are on the training views",
              file=sys.stderr)
    if empty:
        print(f"splat-lion: warning: {len(empty)} of the {problem.evaluated_on} see no splat of "
              f"the start (views {empty[:5]})", file=sys.stderr)
    if not args.steps and not resume and problem.kind != "scene":
        print(f"splat-lion: {steps:,} steps of {batch} views, the default for a capture on "
              f"{be.name} (" + ("3DGS's 30,000 views" if be.name != "cpu" else
                                "about ten minutes at this size")
              + "); --steps N to change", file=sys.stderr)
    psnr_before = resume["meta"]["psnr_before"] if resume else problem.evaluate(g).psnr
    first_step = int(resume["step"]) if resume else 0
    on = "held-out" if problem.test_cameras else "training"
    cautious = optimizer_spec(args.optimizer).preset(config.rates).get("cautious", False)
    print(f"fitting {g.count:,} splats (SH degree {g.sh_degree}) to {problem.description}, "
          f"with {args.optimizer}{' (cautious)' if cautious else ''} on {be.name}"
          f"{f', {config.batch_size} views a step' if config.batch_size > 1 else ''}"
          f"{', densifying' if config.densify else ''}"
          f"{f', resuming at step {first_step}' if resume else ''}; {on} PSNR "
          f"{report.format_psnr(psnr_before)}", file=sys.stderr)
    bar = tqdm(total=config.steps, unit="step", file=sys.stderr, disable=args.quiet,
               initial=first_step)
    shown = {}  # the progress bar's fields

    def progress(step, loss, p):
        bar.update(step + 1 - bar.n)
        shown.update(loss=f"{loss:.4f}", psnr=f"{p:.1f}", splats=f"{g.count:,}",
                     mem=f"{be.memory.current_bytes() / MIB:.1f}MiB")
        bar.set_postfix(shown)

    if viewer:  # updates on logging steps, at most viewer.UPDATE_SHARE of the fit's time
        progress = viewer.progress_hook(g, every=args.viewer_every, then=progress)

    def evaluate(g):  # every --eval-every steps: PSNR and SSIM of the held-out views
        e = problem.evaluate(g)
        shown[on] = f"{e.psnr:.2f}"
        return e.psnr, e.ssim

    t0 = time.perf_counter()
    try:
        result = fit(g, problem.train_cameras, problem.train_images, config, progress=progress,
                     masks=problem.train_masks, evaluate=evaluate if args.eval_every else None,
                     checkpoint_dir=out_dir, resume=resume, context=problem.context,
                     meta={"psnr_before": psnr_before})
        bar.update(config.steps - bar.n)
    except KeyboardInterrupt:
        saved = out_dir / CHECKPOINT_NAME
        hint = (f"the checkpoint of step {load_checkpoint(saved)['step']} continues with --resume"
                if saved.exists() else "no checkpoint was written yet" if config.checkpoint_every
                else "no checkpoint: --checkpoint-every N makes resumable runs")
        print(f"splat-lion: interrupted; {hint}", file=sys.stderr)
        return 130
    finally:
        bar.close()
    final = problem.evaluate(g)
    save_or_keep(lambda path: save_ply(g, path), out_dir / FITTED_PLY)  # the work first
    metrics = {"psnr": round(final.psnr, 4), "ssim": round(final.ssim, 5),
               "psnr_before": round(psnr_before, 4), "steps": config.steps,
               "batch_size": config.batch_size,
               "views_rendered": config.steps * config.batch_size, "lr": config.lr,
               "num_splats": g.count, "optimizer": args.optimizer, "cautious": cautious,
               "backend": be.name,
               "views_train": len(problem.train_cameras),
               "views_held_out": len(problem.test_cameras), "evaluated_on": final.on,
               **problem.context, **result.to_json(),
               "seconds": round(time.perf_counter() - t0, 2)}
    if final.psnr == math.inf:  # strict JSON writes it as null
        metrics["psnr_note"] = "the renders equal the targets: PSNR is infinite"
    (out_dir / "metrics.json").write_text(report.strict_json(metrics))
    targets = problem.eval_views()[1]
    report.save_side_by_side(out_dir, [be.to_numpy(t) for t in targets[:4]],
                             [be.to_numpy(i) for i in final.images[:4]])
    curve = report.save_loss_curve(out_dir, result.loss_history)
    note = ", loss.png" if curve else " (no loss curve: pip install matplotlib for loss.png)"
    print(f"{on} PSNR {report.format_psnr(psnr_before)} -> {report.format_psnr(final.psnr)}, "
          f"SSIM {final.ssim:.4f}, "
          f"{g.count:,} splats, {metrics['seconds']:.1f} s; wrote {out_dir}/{FITTED_PLY}, "
          f"metrics.json, heldout_*.png{note}")
    return 0


def _within_max_memory(budget: int, problem, optimizer: str, densify, batch_size: int):
    """The densify config capped where --max-memory is reached (memory.max_splats_within);
    MemoryBudgetError when even the start does not fit."""
    g, (w, h) = problem.start, problem.size
    try:
        cap = memory.max_splats_within(budget, g.count, w, h, g.sh_degree, optimizer,
                                       image_bytes=problem.image_bytes,
                                       train_views=len(problem.train_cameras),
                                       batch_size=batch_size, what="--max-memory")
    except memory.MemoryBudgetError as e:
        raise memory.MemoryBudgetError(f"{e}: try --optimizer lion-bf16, --downscale 2, or fewer "
                                       "images (--max-images)") from None
    peak = memory.predict_fit_peak(g.count, w, h, g.sh_degree, optimizer,
                                   image_bytes=problem.image_bytes,
                                   train_views=len(problem.train_cameras), batch_size=batch_size)
    if densify is not None:
        densify = replace(densify, max_splats=max(1, min(cap, densify.max_splats or cap)))
    print(f"predicted peak {peak / MIB:,.0f} MiB of --max-memory {budget / MIB:,.0f} MiB"
          + (f"; densification stops at {densify.max_splats:,} splats" if densify else ""),
          file=sys.stderr)
    return densify


# -- render -------------------------------------------------------------------------------------

def cmd_render(args: argparse.Namespace) -> int:
    """PNG views of a scene from orbit cameras around its centre, or from a capture's own
    cameras (--cameras); with --orbit N a turntable of N frames (or, with --cameras, the
    cameras' path) as MP4 or GIF. Prints what it wrote."""
    be = get_backend()
    g = load_ply(splats_path(args.source), backend=be)
    res = args.resolution or (128 if be.name == "cpu" else 512)
    path = None
    if args.cameras:  # every view of the capture, in its own order
        ds = load_dataset(args.cameras, downscale=args.downscale, test_every=0)
        path = ds.train_cameras + ds.test_cameras
    frame = scene_frame(frame_of_splats(g), problem_config(args))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    background = (1.0, 1.0, 1.0) if args.white else (0.0, 0.0, 0.0)
    empty = []

    mode = args.mode
    depth = mode in ("depth", "median-depth")

    def views(cameras):  # what each view shows for --mode, copied (render reuses its buffers)
        for cam in cameras:
            out = render(g, cam, background, depth=depth)
            if not bool(out.visible.any()):
                empty.append(cam)
            alpha = be.to_numpy(out.alpha).copy()
            yield (be.to_numpy(out.image).copy() if mode == "rgb" else alpha if mode == "alpha"
                   else (be.to_numpy(out.depth if mode == "depth" else out.median_depth).copy(),
                         alpha))

    def pictures(shown: list) -> list:  # RGB frames; depth colour-mapped on one shared range
        if mode == "rgb":
            return shown
        if mode == "alpha":
            return [report.alpha_to_rgb(a) for a in shown]
        near, far = report.depth_range(np.stack([d for d, _ in shown]),
                                       np.stack([a for _, a in shown]))
        return [report.depth_to_rgb(d, a, near=near, far=far) for d, a in shown]

    def orbit(n: int):
        return orbit_around(frame, n, res, distance=args.radius, elevation_deg=args.elevation)

    written = []
    suffix = "" if mode == "rgb" else f"_{mode.replace('-', '_')}"
    for i, image in enumerate(pictures(list(views((path or orbit(args.views))[:args.views])))):
        written.append(report.save_image(image, out_dir / f"view_{i:03d}{suffix}.png").name)
    if args.orbit or path:
        cams = path or orbit(args.orbit)
        frames = pictures(list(tqdm(views(cams), total=len(cams), unit="frame",
                                    desc="path" if path else "turntable", file=sys.stderr,
                                    disable=args.quiet)))
        stem = out_dir / (("path" if path else "turntable") + suffix)
        written.append(report.save_video(frames, stem, args.video).name)
    if empty:
        print(f"splat-lion: warning: {len(empty)} views show no splat: the scene lies outside "
              f"them; give --center, --radius or --up (the frame: centre "
              f"{frame.center.round(3).tolist()}, radius {frame.radius:.3g})", file=sys.stderr)
    size = f"{path[0].width}x{path[0].height}" if path else f"{res}x{res}"
    print(f"rendered {g.count:,} splats at {size} on {be.name}: wrote "
          f"{', '.join(written)} in {out_dir}")
    return 0


# -- export -------------------------------------------------------------------------------------

def export_options(fmt: str, pairs: list[str]) -> dict:
    """--option NAME=VALUE pairs as the format's OPTIONS (each typed as its default)."""
    options = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in OPTIONS[fmt] or not text:
            takes = ", ".join(f"{k}={v}" for k, v in OPTIONS[fmt].items()) or "none"
            raise ConfigError(f"--option {pair}: format {fmt} takes NAME=VALUE among: {takes}")
        default = OPTIONS[fmt][name]
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"--option {pair}: {name} is true or false")
            options[name] = text.lower() in ("true", "1", "yes")
        else:
            try:
                options[name] = type(default)(text)
            except ValueError:
                kind = "an integer" if isinstance(default, int) else "a number"
                raise ConfigError(f"--option {pair}: {name} must be {kind}, like "
                                  f"{name}={default}") from None
    return options


def cmd_export(args: argparse.Namespace) -> int:
    """The splats of SOURCE in another format (export.py), written atomically."""
    source = splats_path(args.source)
    fmt = args.format
    out = Path(args.out) if args.out else Path(source.name.removesuffix(".ply") +
                                                FORMATS[fmt].suffix)
    options = export_options(fmt, args.option)
    g = load_ply(source)
    written = export(g, out, fmt, **options)
    size = written.stat().st_size
    print(f"exported {g.count:,} splats of {source} as {fmt}: {written} ({size / MIB:,.2f} MiB, "
          f"{size / max(g.count, 1):.1f} bytes a splat)")
    return 0


# -- view ---------------------------------------------------------------------------------------

def cmd_view(args: argparse.Namespace) -> int:
    """Serve the splats in a browser (viewer.py, on viser) until Ctrl-C."""
    viewer = serve(splats_path(args.source), cameras=args.cameras, port=args.port,
                   host=args.host)
    print(f"splat-lion: viewing {args.source} at {viewer.url}; Ctrl-C to stop", file=sys.stderr)
    viewer.wait()
    return 0


# -- profile ------------------------------------------------------------------------------------

def cmd_profile(args: argparse.Namespace) -> int:
    """One fit step per optimizer under the memory tracker: a table by tag and phase, the
    predicted peak beside the measured one, a stacked-bar PNG and the JSON (memory.py)."""
    be = get_backend()
    names = OPTIMIZER_NAMES if args.optimizer == "all" else (args.optimizer,)
    init = args.init or ("points" if Path(args.source).is_dir() else "scene")
    # one training view: a scene's second orbit view, or a capture's first image
    problem = load_problem(args.source, problem_config(args, views=4, max_images=1, init=init),
                           backend=be)
    ref, cam, target = problem.start, problem.train_cameras[0], problem.train_images[0]
    runs = {}
    for name in names:
        g = ref.to(be)
        opt = make_optimizer(FitConfig(optimizer=name), g.extent(), be)
        memory.profile_step(g, cam, target, opt)  # makes the optimizer state: a steady step
        prof = memory.profile_step(g, cam, target, opt)
        pred = memory.predict_memory(g.count, cam.width, cam.height, g.sh_degree, name)
        runs[name] = {**prof, "predicted_peak_bytes": pred["peak"]}
    print(f"memory of one fit step: {ref.count:,} splats, SH degree {ref.sh_degree}, "
          f"{cam.width}x{cam.height}, {be.name} backend ({runs[names[0]]['num_intersections']:,}"
          " tile intersections)\n")
    print(report.format_table(runs))
    if runs[names[0]]["num_intersections"] == 0:
        print("splat-lion: warning: the view profiled shows no splat, so this is the memory of "
              "an empty step; give --center, --radius or --up", file=sys.stderr)
    result = {"num_splats": ref.count, "width": cam.width, "height": cam.height,
              "sh_degree": ref.sh_degree, "backend": be.name, "runs": runs}
    if args.json:
        Path(args.json).write_text(report.strict_json(result))
        print(f"\nwrote {args.json}")
    try:
        report.plot_profile(runs, args.plot)
        print(f"wrote {args.plot}")
    except ImportError:
        print(f"(no {args.plot}: pip install matplotlib for the stacked-bar chart)")
    return 0


# -- the parser ---------------------------------------------------------------------------------

def parse_bytes(text: str) -> int:
    """'8GB', '8GiB', '512MB', '1.5G', '2000000' -> bytes (K/M/G/T are powers of 1024, as
    GPU memory is counted)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m or (m.group(3) and not m.group(2) and m.group(3).lower() != "b"):
        raise ValueError(f"memory size {text!r}: write it like 8GB, 512MB or 1.5GiB")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024 ** power)


def memory_size(text: str) -> int:
    """parse_bytes for an option: a size > 0."""
    try:
        value = parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes, got {text!r}")
    return value


# The ranges of options no config holds (the others come from FitConfig and ProblemConfig).
ELEVATION = Range(-90.0, 90.0, float, open_lo=True, open_hi=True)  # degrees; +-90: no up
COUNT = Range(1, 100_000)  # render's --views and --orbit
PORT = Range(1, 65_535)  # view's --port, fit's --viewer-port


def typed(cls, name: str):
    """The option type of config field `name` (its declared range)."""
    return option_type(cls, name)


def vec3(text: str) -> tuple[float, float, float]:
    """'1,2,3' -> (1.0, 2.0, 3.0)."""
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three numbers, like 0,0,1") from None
    return x, y, z


def add_frame_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--center, --up and --radius: where orbit views of a scene go (frame.py)."""
    parser.add_argument("--center", type=vec3, default=None, metavar="X,Y,Z",
                        help=f"centre of the {what} (default: the splats' opacity-weighted "
                             "median, or where a capture's cameras look)")
    parser.add_argument("--up", type=vec3, default=None, metavar="X,Y,Z",
                        help="the up axis of the orbit (default: +z for a PLY, the cameras' up "
                             "for a capture)")
    parser.add_argument("--radius", type=typed(ProblemConfig, "distance"), default=None,
                        help="the orbit's distance from the centre (default: 2.6 x the scene's "
                             "radius)")


def build_parser() -> argparse.ArgumentParser:
    p = ProblemConfig  # the problem options' defaults
    parser = argparse.ArgumentParser(
        prog="splat-lion",
        description="Fit 3D Gaussian splats with a fused Lion optimizer (CuPy, or CPU fallback).",
    )
    parser.add_argument("--version", action="version", version=f"splat-lion {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show the backend and device, self-test the kernels, "
                          "and describe a scene")
    info.add_argument("scene", nargs="?", default=None,
                      help="a 3DGS .ply file, or a bundled scene name (shapes, planet, knot)")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    fit_ = sub.add_parser("fit", help="fit splats to a scene's views or to a capture, and save "
                          "them", description="SOURCE: a 3DGS .ply or bundled scene name (fit to "
                          "orbit views of it), or a folder with a transforms.json (NeRF / "
                          "instant-ngp) or a COLMAP model (sparse/0/cameras.bin|txt, images/).")
    fit_.add_argument("source", help="a .ply file, a bundled scene name, or a capture folder")
    fit_.add_argument("--out", required=True, help="output folder")
    fit_.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default=FitConfig.optimizer,
                      help="; ".join(f"{s.name}: {s.description}" for s in OPTIMIZER_SPECS.values())
                      + f" (default {FitConfig.optimizer})")
    fit_.add_argument("--steps", type=typed(FitConfig, "steps"), default=None,
                      help=f"optimisation steps, --batch-size views each (default: "
                           f"{FitConfig.steps} views' worth for a scene; for a capture 30000 "
                           "views' worth on a GPU, about ten minutes' worth on the CPU)")
    fit_.add_argument("--batch-size", type=typed(FitConfig, "batch_size"), default=None,
                      metavar="B",
                      help="views rendered per optimizer step, their gradients summed; "
                           "schedules count steps (default: the optimizer's preset: from points "
                           + ", ".join(f"{s.name} {s.batch_from_points}"
                                       for s in OPTIMIZER_SPECS.values())
                           + "; refining a scene 1)")
    fit_.add_argument("--lr", type=typed(FitConfig, "lr"), default=None,
                      help="base learning rate (default: the optimizer's preset; the lr table "
                           "scales it per attribute)")
    fit_.add_argument("--seed", type=typed(FitConfig, "seed"), default=FitConfig.seed,
                      help="seed of the start, the view order and the splits (default 0)")
    fit_.add_argument("--downscale", type=typed(p, "downscale"), default=p.downscale,
                      help="divide image sizes by this (captures: images_N/ when present)")
    fit_.add_argument("--resume", action="store_true",
                      help="continue from OUT/checkpoint.npz, exactly where it stopped")
    fit_.add_argument("--checkpoint-every", type=typed(FitConfig, "checkpoint_every"),
                      default=None, metavar="N",
                      help="write OUT/checkpoint.npz every N steps (default: none)")
    fit_.add_argument("--densify", choices=("auto", "on", "off"), default="auto",
                      help="clone / split / prune on 3DGS's schedule compressed into --steps "
                           "(auto: on when starting from points)")
    fit_.add_argument("--init", choices=INITS, default=p.init,
                      help="start: a scene perturbed (default for scenes), its points (default "
                           "for COLMAP), random points (default for transforms.json), or the "
                           "scene as it is")
    fit_.add_argument("--init-points", type=typed(p, "init_points"), default=p.init_points,
                      metavar="N",
                      help=f"splats of a random start (default {p.init_points})")
    fit_.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=p.sh_degree,
                      help=f"SH degree of a capture's splats (default {p.sh_degree})")
    fit_.add_argument("--white", action="store_true",
                      help="white background (NeRF-synthetic); default black")
    fit_.add_argument("--resolution", type=typed(p, "resolution"), default=p.resolution,
                      help="scenes: square view size (default: 64 on a CPU, 256 on a GPU)")
    fit_.add_argument("--views", type=typed(p, "views"), default=p.views,
                      help="scenes: orbit views (every fifth held out)")
    fit_.add_argument("--max-images", type=typed(p, "max_images"), default=p.max_images,
                      metavar="N",
                      help="captures: use at most N training and N held-out images")
    fit_.add_argument("--test-every", type=typed(p, "test_every"), default=p.test_every,
                      metavar="N",
                      help="hold out every N-th view (0: none; default: 5 for a scene, 8 or the "
                           "capture's own split)")
    fit_.add_argument("--eval-every", type=typed(FitConfig, "eval_every"), default=None,
                      metavar="N",
                      help="every N steps, PSNR and SSIM of the held-out views (metrics.json "
                           "eval_history, the progress bar)")
    fit_.add_argument("--strict", action="store_true",
                      help="captures: refuse frames whose image is missing (default: skip them)")
    fit_.add_argument("--keep-all", action="store_true",
                      help="captures: undistort into the whole field of view, the border left "
                           "out of the loss (default: the largest view without a border)")
    add_frame_options(fit_, "orbit views of a scene")
    fit_.add_argument("--viewer", action="store_true",
                      help="watch the splats train in the browser (needs splat-lion[viewer]); "
                           "after the fit it keeps showing them until Ctrl-C")
    fit_.add_argument("--viewer-every", type=option_type(None, "viewer-every", rng=COUNT),
                      default=DEFAULT_EVERY, metavar="N",
                      help=f"with --viewer: update the splats every N steps at most (default "
                           f"{DEFAULT_EVERY}; updates take at most 2%% of the fit's time)")
    fit_.add_argument("--viewer-port", type=option_type(None, "viewer-port", rng=PORT),
                      default=8080, help="with --viewer: the port (default 8080)")
    fit_.add_argument("--quiet", action="store_true", help="no progress bar")
    fit_.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                      help="refuse to start when the predicted peak exceeds SIZE (e.g. 8GB); "
                           "with densification, stop adding splats where SIZE is reached")
    fit_.set_defaults(func=cmd_fit)
    prof = sub.add_parser("profile", help="where the memory of a fit step goes, by tag and "
                          "phase, per optimizer (and the predicted peak)")
    prof.add_argument("source", help="a .ply file, a bundled scene name, or a COLMAP capture")
    prof.add_argument("--optimizer", choices=(*OPTIMIZER_NAMES, "all"), default="all",
                      help="one optimizer, or all of them side by side (default)")
    prof.add_argument("--resolution", type=typed(p, "resolution"), default=256,
                      help="square view size for a scene (default 256)")
    prof.add_argument("--downscale", type=typed(p, "downscale"), default=1)
    prof.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=p.sh_degree,
                      help="SH degree of a capture's splats")
    add_frame_options(prof, "view profiled")
    prof.add_argument("--init", choices=INITS, default=None,
                      help="the splats to profile: the scene as it is (default for scenes), a "
                           "capture's points (default for captures), random, ...")
    prof.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    prof.add_argument("--plot", default="memory-profile.png", metavar="FILE",
                      help="stacked-bar PNG (needs matplotlib; default memory-profile.png)")
    prof.set_defaults(func=cmd_profile)
    rend = sub.add_parser("render", help="render PNG views of a scene, and a turntable GIF")
    rend.add_argument("source", help="a 3DGS .ply file, a bundled scene name, or a fit's --out "
                                     "folder (its fitted.ply)")
    rend.add_argument("--out", required=True, help="output folder")
    rend.add_argument("--views", type=option_type(None, "views", rng=COUNT), default=4,
                      help="orbit views saved as PNG (default 4)")
    rend.add_argument("--orbit", type=option_type(None, "orbit", rng=COUNT), default=None,
                      metavar="N", help="also write turntable.gif: N frames once around the scene")
    rend.add_argument("--resolution", type=typed(p, "resolution"), default=None,
                      help="square image size in pixels (default: 128 on a CPU, 512 on a GPU)")
    add_frame_options(rend, "orbit")
    rend.add_argument("--cameras", default=None, metavar="CAPTURE",
                      help="render from a capture's cameras (transforms.json or COLMAP folder) "
                           "instead of an orbit, and write their path as a video")
    rend.add_argument("--downscale", type=typed(p, "downscale"), default=1,
                      help="with --cameras: divide the capture's image sizes by this")
    rend.add_argument("--video", choices=("auto", "mp4", "gif"), default="auto",
                      help="turntable / path format (auto: MP4 with imageio-ffmpeg, else GIF)")
    rend.add_argument("--elevation", type=option_type(None, "elevation", rng=ELEVATION),
                      default=25.0, help="degrees above the horizon, between -90 and 90")
    rend.add_argument("--mode", choices=("rgb", "depth", "median-depth", "alpha"), default="rgb",
                      help="what to show: colour (default); expected depth or median depth, "
                           "colour-mapped (turbo: near blue, far red; no splat grey) on one "
                           "range for every view; or accumulated opacity in grey")
    rend.add_argument("--white", action="store_true", help="white background (default black)")
    rend.add_argument("--quiet", action="store_true", help="no progress bar")
    rend.set_defaults(func=cmd_render)
    exp = sub.add_parser("export", help="write splats in a format other viewers open (.splat, "
                         "compressed PLY, .spz, .sog)")
    exp.add_argument("source", help="a 3DGS .ply file, a bundled scene name, or a fit's --out "
                                    "folder (its fitted.ply)")
    exp.add_argument("--format", required=True, choices=tuple(FORMATS),
                     help="; ".join(f"{k}: {f.help}" for k, f in FORMATS.items()))
    exp.add_argument("--out", default=None, metavar="FILE",
                     help="the file to write (default: the source's name with the format's "
                          "suffix, in this folder)")
    exp.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="a format option, e.g. version=2 for spz (repeatable): "
                          + "; ".join(f"{k}: {', '.join(f'{n}={v}' for n, v in o.items())}"
                                      for k, o in OPTIONS.items() if o))
    exp.set_defaults(func=cmd_export)
    view = sub.add_parser("view", help="look at splats in the browser (needs splat-lion[viewer])")
    view.add_argument("source", help="a 3DGS .ply file, a bundled scene name, or a fit's --out "
                                     "folder (its fitted.ply)")
    view.add_argument("--cameras", default=None, metavar="CAPTURE",
                      help="also show a capture's cameras (transforms.json or COLMAP folder)")
    view.add_argument("--port", type=option_type(None, "port", rng=PORT), default=8080,
                      help="port to serve on (default 8080; the next free one if taken)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to serve on (default 127.0.0.1; 0.0.0.0 for other machines)")
    view.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status: 0, 1 (a failed self-test), 2 (refused: the message
    says why and how to fix it), 130 (interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (argparse printed why)
        return int(e.code or 0)
    try:
        return args.func(args)
    except (SplatLionError, OSError) as e:  # bad input or settings, a file or disk problem
        if args.debug:
            raise
        return fail(e)
    except KeyboardInterrupt:
        print("splat-lion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
