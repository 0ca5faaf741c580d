"""Reports people read: tables and plots of memory profiles, images and curves of a fit.
Above memory.py and fit.py; the CLI and the benchmarks write their pictures through here.

    print(format_table({"lion": profile, "adam": ...}))    # memory.profile_step results
    plot_profile(runs, "memory.png")                        # stacked bars (matplotlib)
    save_side_by_side(folder, targets, renders)             # heldout_<i>.png
    save_loss_curve(folder, result.loss_history)            # loss.png (matplotlib)
    save_animation(frames, "turntable.gif")
    print(format_scene(describe_scene(g)))                  # `splat-lion info SCENE`
    save_image(depth_to_rgb(depth, alpha), "depth.png")     # render(..., depth=True)'s, host
    save_image(alpha_to_rgb(alpha), "alpha.png")
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .ledger import TAGS
from .memory import PHASES, predict_memory
from .optim.registry import OPTIMIZER_SPECS

MIB = 2**20


def format_table(runs: dict[str, dict]) -> str:
    """A text table of profile_step results (name -> profile), side by side, in MiB: the peak
    (and "predicted_peak_bytes" where a run has it), each tag's own peak, each phase's peak."""
    if not runs:
        raise ValueError("format_table: no runs to show")
    names = list(runs)
    biggest = max(r["peak_bytes"] for r in runs.values())
    digits = 3 if biggest < 10 * MIB else 2 if biggest < 1024 * MIB else 1
    width = max(10, *(len(n) for n in names))

    def row(label: str, values) -> str:
        cells = ("" if v is None else f"{v / MIB:.{digits}f}" for v in values)
        return f"{label:<24}" + "".join(f"{c:>{width + 2}}" for c in cells)

    lines = [f"{'MiB':<24}" + "".join(f"{n:>{width + 2}}" for n in names),
             row("peak", (r["peak_bytes"] for r in runs.values()))]
    if any("predicted_peak_bytes" in r for r in runs.values()):
        lines.append(row("predicted peak", (r.get("predicted_peak_bytes") for r in runs.values())))
    lines.append("by tag (each tag's peak)")
    for tag in TAGS:
        lines.append(row(f"  {tag}", (r["by_tag"].get(tag, 0) for r in runs.values())))
    lines.append("by phase (peak of the total)")
    phases = [p for p in PHASES if any(p in r["by_phase"] for r in runs.values())]
    phases += [p for r in runs.values() for p in r["by_phase"] if p not in phases]
    for p in dict.fromkeys(phases):
        lines.append(row(f"  {p}", (r["by_phase"].get(p) for r in runs.values())))
    return "\n".join(lines)


def plot_profile(runs: dict[str, dict], path, title: str | None = None):
    """A PNG at `path`: one bar per run (optimizer), the tags stacked as they stood when the
    total peaked ("at_peak"; each tag's own peak for a run without it), in MiB; a predicted
    peak, where given, as a black tick. Needs matplotlib (pip install 'splat-lion[plot]')."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"plot_profile needs matplotlib ({e}): pip install 'splat-lion[plot]' "
                          "or pip install matplotlib") from None
    if not runs:
        raise ValueError("plot_profile: no runs to plot")
    names = list(runs)
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bottom = np.zeros(len(names))
    for tag in TAGS:
        values = np.array([r.get("at_peak", r["by_tag"]).get(tag, 0) / MIB for r in runs.values()])
        if values.any():
            ax.bar(names, values, bottom=bottom, label=tag)
            bottom += values
    predicted = [(i, r["predicted_peak_bytes"] / MIB) for i, r in enumerate(runs.values())
                 if "predicted_peak_bytes" in r]
    if predicted:
        ax.scatter(*zip(*predicted), marker="_", s=900, color="black", label="predicted peak")
    ax.set_ylabel("MiB at the step's peak")
    ax.set_title(title or "memory per fit step, by tag")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


# -- scenes -------------------------------------------------------------------------------------

def describe_scene(g, path=None) -> dict:
    """Splat count, SH degree, bounds, opacity and scale statistics of the splats `g`, the
    bytes of their parameters and of each optimizer's state, and the predicted peak of one
    fit step at 1920x1080 (`splat-lion info SCENE`)."""
    g = g.to("cpu")
    params = g.layout.nbytes()
    sigma = g.scale_values()
    some = g.count > 0
    return {
        "file": None if path is None else str(path),
        "splats": g.count,
        "sh_degree": g.sh_degree,
        "bounds_min": [round(float(v), 4) for v in g.means.min(0)] if some else None,
        "bounds_max": [round(float(v), 4) for v in g.means.max(0)] if some else None,
        "extent": round(g.extent(), 4),
        "opacity_median": round(float(np.median(g.opacity_values())), 4) if some else None,
        "sigma_median": round(float(np.median(sigma)), 5) if some else None,
        "sigma_p99": round(float(np.percentile(sigma, 99)), 5) if some else None,
        "extra_properties": sorted(g.extra),
        # exact: one float32 buffer, and each optimizer's state in the same layout
        "bytes_params": params,
        **{state_key(name): spec.state_bytes(g.layout.total)
           for name, spec in OPTIMIZER_SPECS.items()},
        # predicted peak of one fit step at 1920x1080 (memory.predict_memory; a fit also
        # keeps its training images: 24 MiB each at that size)
        "bytes_fit_step_1080p": {name: predict_memory(g.count, 1920, 1080, g.sh_degree,
                                                      name)["peak"]
                                 for name in OPTIMIZER_SPECS},
    }


def format_scene(scene: dict) -> str:
    """describe_scene's result as a few lines of text."""
    mib = 1 / MIB
    step = scene["bytes_fit_step_1080p"]
    extra = scene["extra_properties"]
    return "\n".join([
        f"scene {scene['file']}",
        f"  {scene['splats']:,} splats, SH degree {scene['sh_degree']}, bounds "
        f"{scene['bounds_min']} .. {scene['bounds_max']}, extent {scene['extent']}",
        f"  opacity median {scene['opacity_median']}, sigma median {scene['sigma_median']}"
        f" (99th percentile {scene['sigma_p99']})"
        + (f", extra properties: {', '.join(extra)}" if extra else ""),
        f"  parameters {scene['bytes_params'] * mib:.2f} MiB; optimizer state: "
        + ", ".join(f"{s.label} {scene[state_key(s.name)] * mib:.2f} MiB"
                    for s in OPTIMIZER_SPECS.values()),
        "  to fit at 1920x1080 (one step at its peak, predicted): "
        + ", ".join(f"{s.label} {step[s.name] * mib:.0f} MiB" for s in OPTIMIZER_SPECS.values())
        + ", plus 24 MiB per training image"])


def state_key(name: str) -> str:
    """describe_scene's key of an optimizer's state bytes: "bytes_state_lion_bf16"."""
    return f"bytes_state_{name.replace('-', '_')}"


# -- numbers --------------------------------------------------------------------------------------

def format_psnr(p: float) -> str:
    """"31.42 dB", or "identical (PSNR infinite)" for images that are the same."""
    return "identical (PSNR infinite)" if p == math.inf else f"{p:.2f} dB"


def strict_json(value) -> str:
    """JSON text of `value` with every infinite or NaN float written as null (JSON has
    neither; a PSNR of identical images is infinite), indented, ending in a newline."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


# -- images of a fit ------------------------------------------------------------------------------

def to_uint8(image) -> np.ndarray:
    """[H, W, 3] float in [0, 1] (host or device) -> uint8, rounded."""
    return (np.clip(np.asarray(image), 0, 1) * 255 + 0.5).astype(np.uint8)


def save_image(image, path) -> Path:
    """A PNG of an [H, W, 3] host image in [0, 1]."""
    Image.fromarray(to_uint8(image)).save(path)
    return Path(path)


def save_side_by_side(folder, targets, renders, prefix: str = "heldout") -> list[Path]:
    """<prefix>_<i>.png in `folder`: target (left) and render (right), host arrays."""
    return [save_image(np.concatenate([t, r], axis=1), Path(folder) / f"{prefix}_{i}.png")
            for i, (t, r) in enumerate(zip(targets, renders))]


def save_loss_curve(folder, history) -> Path | None:
    """loss.png in `folder` from (step, loss) pairs; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    steps, losses = zip(*history)
    fig = Figure(figsize=(5, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("0.8 L1 + 0.2 (1 - SSIM)")
    fig.tight_layout()
    path = Path(folder) / "loss.png"
    fig.savefig(path, dpi=100)
    return path


def save_animation(frames, path, seconds: float = 4.0) -> Path:
    """An endlessly looping GIF of [H, W, 3] host frames, `seconds` long (20 ms a frame at
    least)."""
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 * seconds / len(images))), loop=0)
    return Path(path)


def save_video(frames, stem, video: str = "auto", seconds: float = 4.0) -> Path:
    """`stem`.mp4 (H.264 through imageio-ffmpeg) or `stem`.gif of [H, W, 3] host frames.
    video: "mp4", "gif", or "auto" (MP4 when imageio-ffmpeg is installed, else GIF)."""
    try:
        import imageio_ffmpeg  # optional: pip install imageio-ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if video == "mp4" and imageio_ffmpeg is None:
        raise ImportError("MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or use GIF)")
    if video == "gif" or imageio_ffmpeg is None:
        return save_animation(frames, Path(f"{stem}.gif"), seconds)
    path = Path(f"{stem}.mp4")
    h, w = np.asarray(frames[0]).shape[:2]
    fps = max(1, round(len(frames) / seconds))
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps,
                                         macro_block_size=1)
    writer.send(None)  # start the encoder
    for f in frames:  # H.264 wants even sizes: pad by a pixel where needed
        writer.send(np.ascontiguousarray(np.pad(to_uint8(f), ((0, h % 2), (0, w % 2), (0, 0)))))
    writer.close()
    return path


# -- depth and alpha as pictures ------------------------------------------------------------------

# Turbo (Google's colour map for depth and disparity; matplotlib's "turbo") at 17 evenly spaced
# points, read from matplotlib 3.11 to 3 decimals: the map without matplotlib, interpolated
# linearly, within 0.031 of matplotlib's everywhere (tests/test_report.py).
TURBO_17 = np.array([
    (0.190, 0.072, 0.232), (0.251, 0.252, 0.634), (0.276, 0.421, 0.891), (0.259, 0.580, 0.999),
    (0.158, 0.736, 0.923), (0.093, 0.866, 0.762), (0.197, 0.949, 0.595), (0.428, 0.994, 0.386),
    (0.644, 0.990, 0.234), (0.805, 0.925, 0.205), (0.933, 0.812, 0.227), (0.993, 0.674, 0.203),
    (0.984, 0.493, 0.128), (0.921, 0.315, 0.055), (0.816, 0.185, 0.018), (0.664, 0.084, 0.004),
    (0.480, 0.016, 0.011)])
# What pixels without a depth are painted: mid grey, a colour turbo never takes
NO_DEPTH = (0.5, 0.5, 0.5)


def colormap(values, cmap: str = "turbo") -> np.ndarray:
    """[..., 3] float32 RGB in [0, 1] of `values` in [0, 1] (clipped; NaN as 0) through
    matplotlib's colour map `cmap` (any of its names) when matplotlib is installed, else,
    for "turbo" only, through TURBO_17."""
    t = np.nan_to_num(np.clip(np.asarray(values, np.float64), 0.0, 1.0))
    try:
        import matplotlib  # optional: pip install 'splat-lion[plot]'
    except ImportError:
        if cmap != "turbo":
            raise ImportError(f"colour map {cmap!r} needs matplotlib: pip install "
                              "'splat-lion[plot]' (without it: 'turbo')") from None
        anchors = np.linspace(0.0, 1.0, len(TURBO_17))
        rgb = np.stack([np.interp(t, anchors, TURBO_17[:, c]) for c in range(3)], -1)
        return rgb.astype(np.float32)
    return np.asarray(matplotlib.colormaps[cmap](t)[..., :3], np.float32)


def _has_depth(depth, alpha, min_alpha: float):
    """Pixels with a depth: positive and finite (render writes 0 where it has none: no splat,
    or for the median, T never below 0.5) where alpha > min_alpha (not too faint)."""
    return (alpha > min_alpha) & np.isfinite(depth) & (depth > 0)


def depth_range(depth, alpha, *, min_alpha: float = 0.01,
                percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """(near, far): the given percentiles of the depths of the pixels with one (_has_depth),
    a few floaters ignored; (0, 1) where there are none. depth, alpha: host arrays of one
    shape, an image [H, W] or frames [F, H, W] (one range for a whole orbit: no flicker)."""
    depth, alpha = np.asarray(depth), np.asarray(alpha)
    valid = _has_depth(depth, alpha, min_alpha)
    if not valid.any():
        return 0.0, 1.0
    near, far = np.percentile(depth[valid], percentiles)
    return float(near), float(far)


def depth_to_rgb(depth, alpha, *, near: float | None = None, far: float | None = None,
                 min_alpha: float = 0.01, cmap: str = "turbo",
                 no_depth: tuple[float, float, float] = NO_DEPTH) -> np.ndarray:
    """[H, W, 3] float32 RGB in [0, 1] (for save_image, save_video) of a depth image [H, W]
    (render(..., depth=True)'s out.depth or out.median_depth, on the host) with its alpha
    [H, W]: depth mapped linearly from near (0, turbo's dark blue) to far (1, its dark red),
    clipped, through `colormap`; pixels without a depth (0: no splat, or a median never
    reached) or with alpha <= min_alpha (too faint for one) get `no_depth`. near, far:
    default depth_range(depth, alpha); pass one range to every frame of a video."""
    depth, alpha = np.asarray(depth, np.float64), np.asarray(alpha)
    if depth.ndim != 2 or alpha.shape != depth.shape:
        raise ValueError(f"depth_to_rgb: depth and alpha must be [H, W] images of one shape, "
                         f"got {list(depth.shape)} and {list(alpha.shape)}")
    if near is None or far is None:
        auto = depth_range(depth, alpha, min_alpha=min_alpha)
        near, far = (auto[0] if near is None else near), (auto[1] if far is None else far)
    t = (depth - near) / (far - near) if far > near else np.full_like(depth, 0.5)
    rgb = colormap(t, cmap)
    rgb[~_has_depth(depth, alpha, min_alpha)] = no_depth
    return rgb


def alpha_to_rgb(alpha, cmap: str | None = None) -> np.ndarray:
    """[H, W, 3] float32 RGB in [0, 1] of an alpha image [H, W] (render's out.alpha, on the
    host): grey levels, black where empty and white where opaque, or through `colormap`."""
    alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    if alpha.ndim != 2:
        raise ValueError(f"alpha_to_rgb: alpha must be an [H, W] image, got {list(alpha.shape)}")
    if cmap is not None:
        return colormap(alpha, cmap)
    return np.repeat(alpha[..., None], 3, axis=-1)
