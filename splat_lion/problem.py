"""A fitting problem: training and held-out views, the splats to start from, and the score.

    problem = load_problem("planet")                          # orbit views of a bundled scene
    problem = load_problem("garden/", ProblemConfig(downscale=4))   # a COLMAP capture
    g = problem.fresh_start()                                 # a copy: fit() changes it
    fit(g, problem.train_cameras, problem.train_images, FitConfig.from_points(300))
    problem.evaluate(g).psnr                                  # held-out PSNR, SSIM, renders

Built from a 3DGS PLY or bundled scene (orbit views around it, every fifth held out; the
targets are renders of the scene) or from a capture (transforms.json or COLMAP, datasets.py).
The CLI, the benchmarks and the tests all build their problems here.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import scenes
from .backend import Backend, get_backend
from .cameras import Camera, orbit_cameras
from .config import check_ranges, ranged
from .datasets import detect, load_dataset
from .errors import ConfigError, DatasetError, PlyError
from .frame import SceneFrame, frame_of_cameras, frame_of_splats
from .gaussians import Gaussians
from .loss import photometric_loss, psnr, ssim
from .memory import require_memory
from .ply import load_ply
from .render import render, render_backward
from .sh import check_degree

INITS = ("perturbed", "points", "random", "scene")
SCENE_TEST_EVERY = 5  # a scene's orbit views: every fifth is held out (the first too)
MAX_SIDE = 16_384  # the largest image side a render may have (CUDA's grid of 16x16 tiles fits)
# host bytes per splat of a start from points while it is made (float64 points and colours,
# the k-d tree and its queries, the float32 layout and its temporaries): about 800, measured
HOST_BYTES_PER_START_SPLAT = 1024
GPU_CAPTURE_STEPS = 30_000  # a capture's default fit on a GPU: 3DGS's
CPU_CAPTURE_SECONDS = 600.0  # ... on the CPU: as many steps as fit in about ten minutes
FITTED_PLY = "fitted.ply"  # the splats a fit's output folder holds (splat-lion fit --out)
ORBIT_RADIUS = 2.6  # orbit views of a scene circle it at this many times its extent
ORBIT_ELEVATION_DEG = 25.0  # ... this many degrees above its horizon


@dataclass(frozen=True)
class ProblemConfig:
    # square size in pixels of a scene's orbit views; None: 64 on a CPU, 256 on a GPU
    resolution: int | None = ranged(None, 1, MAX_SIDE, optional=True)
    # divide image sizes by this (captures: their images_N/ folders when present)
    downscale: int = ranged(1, 1, 64)
    # orbit views around a scene (one or more held out, one or more to train on)
    views: int = ranged(10, 2, 100_000)
    # distance of a scene's orbit views from its centre, in scene extents (2.6: every splat
    # in every view; about 1.2: each view sees part of the scene)
    orbit_radius: float = ranged(ORBIT_RADIUS, 0, 1e6, kind=float, open_lo=True)
    # hold out every this-many-th view (from the first); 0: none (the fit is then scored on
    # its training views); None: SCENE_TEST_EVERY for a scene, load_dataset's for a capture
    test_every: int | None = ranged(None, 0, 100_000, optional=True)
    # the start: "perturbed" (the scene, noised), "points" (the scene's centres or the
    # capture's points, grey), "random", "scene" (the scene as it is); None: "perturbed" for
    # a scene, "points" for a capture with points, else "random"
    init: str | None = None
    # splats of a random start
    init_points: int = ranged(10_000, 1, 50_000_000)
    # SH degree of the splats started from a capture's points or at random in a capture
    sh_degree: int = 3
    # seed of the start
    seed: int = ranged(0, 0, 2**63 - 1)
    # RGB in [0, 1] behind the splats (and behind RGBA capture images)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # captures: use at most this many training and this many held-out images; None: all
    max_images: int | None = ranged(None, 1, 1_000_000, optional=True)
    # the scene's centre (world units), instead of the frame found from its splats or cameras
    center: tuple[float, float, float] | None = None
    # the up axis, instead of the frame's (a PLY's default: +z)
    up: tuple[float, float, float] | None = None
    # the orbit views' distance from the centre (world units); None: orbit_radius x the
    # frame's radius
    distance: float | None = ranged(None, 0, 1e12, kind=float, optional=True, open_lo=True)
    # captures: undistort into the whole field of view (masks keep the border out of the
    # loss) instead of the largest view without a border
    keep_all: bool = False
    # captures: refuse frames whose image is missing instead of skipping them
    strict: bool = False

    def __post_init__(self):
        check_ranges(self)
        if self.test_every == 1:
            raise ConfigError("test_every must be None, 0 (no held-out views) or an int >= 2 "
                              "(1 would hold out every view), got 1")
        for name in ("center", "up"):
            v = getattr(self, name)
            if v is not None and (np.shape(v) != (3,) or not np.isfinite(v).all()):
                raise ConfigError(f"{name} must be None or 3 finite numbers, got {v!r}")
        if self.up is not None and not np.any(self.up):
            raise ConfigError("up must not be 0,0,0: give the direction that is up, e.g. 0,0,1")
        if self.init is not None and self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)} (or None), got "
                              f"{self.init!r}")
        check_degree(self.sh_degree)


@dataclass(frozen=True)
class Evaluation:
    # mean PSNR (dB) and SSIM of the renders against the targets
    psnr: float
    # mean SSIM
    ssim: float
    # the renders [H, W, 3], on the backend, in the order of the cameras
    images: list
    # "held-out views", or "training views" for a problem without held-out views
    on: str


@dataclass(eq=False)
class Problem:
    # training cameras and their [H, W, 3] float32 target images (on the backend)
    train_cameras: list[Camera]
    train_images: list
    # held-out cameras and images (may be empty: then evaluate() scores the training views)
    test_cameras: list[Camera]
    test_images: list
    # the splats to start from (fresh_start() gives a copy to fit)
    start: Gaussians
    # whether the start is a point cloud or random (densify and Lion's from_points rates)
    from_points: bool
    # one line for a log: what the views and the start are
    description: str
    # the settings that made the views and the start (JSON values): a resumed fit must match
    context: dict = field(default_factory=dict)
    # RGB in [0, 1] behind the splats
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # where the scene is: its centre, size and up (orbits and random starts use it)
    frame: SceneFrame | None = None
    # None, or per training / held-out view an [H, W] bool mask of the pixels to count
    train_masks: list | None = None
    test_masks: list | None = None
    # "scene" (orbit views of splats), or the capture's format: "transforms" or "colmap"
    kind: str = "scene"

    @property
    def backend(self) -> Backend:
        return self.start.backend

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the training views."""
        return self.train_cameras[0].width, self.train_cameras[0].height

    @property
    def image_bytes(self) -> int:
        """Bytes of every training and held-out image the problem holds."""
        return sum(int(t.nbytes) for t in [*self.train_images, *self.test_images])

    @property
    def evaluated_on(self) -> str:
        """What evaluate() scores: "held-out views", or "training views" when there are none."""
        return "held-out views" if self.test_cameras else "training views"

    def eval_views(self) -> tuple[list[Camera], list, list]:
        """(cameras, targets, masks) evaluate() scores: the held-out views, else the training
        ones; masks: None per view where every pixel counts."""
        if self.test_cameras:
            return self.test_cameras, self.test_images, self.test_masks or [None] * len(
                self.test_cameras)
        return self.train_cameras, self.train_images, self.train_masks or [None] * len(
            self.train_cameras)

    def empty_views(self, g: Gaussians) -> list[int]:
        """Indices of the eval_views() in which not one splat of `g` is in view; ValueError
        when that is every one of them (a score of nothing: the scene lies outside them)."""
        cameras = self.eval_views()[0]
        empty = [i for i, c in enumerate(cameras)
                 if not bool(render(g, c, self.background).visible.any())]
        if len(empty) == len(cameras):
            raise DatasetError(
                f"not one splat is in any of the {len(empty)} {self.evaluated_on}: the scene "
                f"lies outside them (its frame: centre {self.frame.center.round(3).tolist()}, "
                f"radius {self.frame.radius:.3g}); give --center, --radius or --up")
        return empty

    def default_steps(self, scene_steps: int, batch_size: int = 1) -> int:
        """Steps of a fit of `batch_size` views a step when none are asked for, as many
        views in all whatever the batch: `scene_steps` views for a scene; for a capture
        3DGS's 30 000 on a GPU, and on the CPU as many as take about CPU_CAPTURE_SECONDS (the
        start's measured time a view, doubled for the splats densification adds; 300 to
        30 000, a multiple of 100); divided by batch_size (at least 1)."""
        if self.kind == "scene":
            views = scene_steps
        elif self.backend.name != "cpu":
            views = GPU_CAPTURE_STEPS
        else:
            step = 2 * self.step_seconds()
            views = int(min(max(round(CPU_CAPTURE_SECONDS / step, -2), 300), GPU_CAPTURE_STEPS))
        return max(1, views // batch_size)

    def step_seconds(self, repeats: int = 3) -> float:
        """Seconds of one render + loss + backward of the start from the first training view
        (the best of `repeats`, after one warm-up that compiles the kernels)."""
        cam, target, mask = self.train_cameras[0], self.train_images[0], (
            self.train_masks or [None])[0]
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            out = render(self.start, cam, self.background)
            render_backward(out, photometric_loss(out.image, target, mask)[1])
            self.backend.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    def fresh_start(self) -> Gaussians:
        """A copy of the start, to fit (fit() changes its splats in place)."""
        return self.start.to(self.backend)

    def evaluate(self, g: Gaussians) -> Evaluation:
        """Mean PSNR and SSIM of `g` rendered from eval_views() against their targets."""
        cameras, targets, masks = self.eval_views()
        images = [render(g, c, self.background).image for c in cameras]
        views = list(zip(images, targets, masks))
        return Evaluation(float(np.mean([psnr(i, t, m) for i, t, m in views])),
                          float(np.mean([ssim(i, t, m)[0] for i, t, m in views])), images,
                          self.evaluated_on)


# -- building problems ---------------------------------------------------------------------------

def scene_path(source: str | Path) -> Path:
    """A .ply path (which must exist), or the path of the bundled scene named `source`."""
    source = str(source)
    path = Path(source)
    if source.endswith(".ply") or path.exists() or len(path.parts) > 1:
        if not path.exists():
            raise ConfigError(f"{source}: no such file or folder")
        return path
    return scenes.path(source)


def splats_path(source: str | Path) -> Path:
    """The PLY of `source`: a .ply file, a bundled scene's, or a fit's output folder's
    FITTED_PLY (PlyError for a folder without one)."""
    folder = Path(source)
    if folder.is_dir():
        if not (folder / FITTED_PLY).is_file():
            raise PlyError(f"{source}: a folder without {FITTED_PLY}: give a .ply file or the "
                           "--out folder of a finished `splat-lion fit`")
        return folder / FITTED_PLY
    return scene_path(source)


def scene_frame(found: SceneFrame, config: ProblemConfig) -> SceneFrame:
    """`found` with the centre and up the config gives instead (the CLI's --center, --up)."""
    if config.center is None and config.up is None:
        return found
    return SceneFrame(found.center if config.center is None else config.center, found.radius,
                      found.up if config.up is None else config.up, "given")


def orbit_around(frame: SceneFrame, n: int, width: int, height: int | None = None, *,
                 distance: float | None = None, orbit_radius: float = ORBIT_RADIUS,
                 elevation_deg: float = ORBIT_ELEVATION_DEG) -> list[Camera]:
    """`n` cameras evenly around the frame's centre and up axis, looking at the centre, at
    `distance` (default: orbit_radius x the frame's radius)."""
    return orbit_cameras(center=frame.center, radius=distance or orbit_radius * frame.radius,
                         n=n, width=width, height=width if height is None else height,
                         elevation_deg=elevation_deg, up=frame.up)


def load_problem(source: str | Path, config: ProblemConfig = ProblemConfig(), *,
                 backend: Backend | None = None) -> Problem:
    """The problem of a capture folder (transforms.json or COLMAP), else of a .ply file or
    bundled scene name. Errors: ValueError (PlyError, DatasetError) naming what is wrong."""
    be = backend or get_backend()
    path = Path(source)
    if path.is_dir():
        if not detect(path):
            raise DatasetError(f"{source}: a folder, but neither a transforms.json capture nor a "
                             "COLMAP model (sparse/0/cameras.bin or .txt) is in it")
        return problem_from_capture(path, config, backend=be)
    return problem_from_scene(source, config, backend=be)


def problem_from_scene(source: str | Path, config: ProblemConfig = ProblemConfig(), *,
                       backend: Backend | None = None) -> Problem:
    """Orbit views of a PLY or bundled scene (config.test_every), the targets rendered from
    the scene; the start: the scene perturbed, its centres as points, random splats in its
    bounding box, or the scene itself (config.init)."""
    be = backend or get_backend()
    path = scene_path(source)
    ref = load_ply(path, backend=be)
    res = max(1, (config.resolution or (64 if be.name == "cpu" else 256)) // config.downscale)
    frame = scene_frame(frame_of_splats(ref), config)
    cams = orbit_around(frame, config.views, res, distance=config.distance,
                        orbit_radius=config.orbit_radius)
    every = SCENE_TEST_EVERY if config.test_every is None else config.test_every
    held = [c for i, c in enumerate(cams) if every and i % every == 0]
    train = [c for i, c in enumerate(cams) if not (every and i % every == 0)]
    init = config.init or "perturbed"
    if init == "points":
        g = scenes.centres_only(ref)
    elif init == "random":
        means = be.to_numpy(ref.means)
        g = random_start(means.min(0), means.max(0), config.init_points, ref.sh_degree,
                         np.random.default_rng(config.seed), be)
    elif init == "scene":
        g = ref
    else:
        g = scenes.perturbed(ref, config.seed)
    bg = config.background
    return Problem(
        train, [render(ref, c, bg).image.copy() for c in train], held,
        [render(ref, c, bg).image.copy() for c in held], g, init in ("points", "random"),
        f"{len(train)} orbit views of {path.name} at {res}x{res}, from a {init} start",
        {"source": str(path), "source_digest": source_digest(path), "resolution": res,
         "views": config.views, "init": init,
         "orbit_radius": config.orbit_radius, **_frame_context(config)}, bg, frame)


def problem_from_capture(source: str | Path, config: ProblemConfig = ProblemConfig(), *,
                         backend: Backend | None = None) -> Problem:
    """A transforms.json or COLMAP capture; the start: its points (COLMAP), or random splats
    in the region its cameras look at (frame_of_cameras: a cube of the frame's radius around
    its centre)."""
    be = backend or get_backend()
    split = {} if config.test_every is None else {"test_every": config.test_every}
    ds = load_dataset(source, downscale=config.downscale, background=config.background,
                      max_images=config.max_images, keep_all=config.keep_all,
                      strict=config.strict, **split)
    init = config.init or ("points" if ds.points is not None else "random")
    if init in ("perturbed", "scene"):
        raise ConfigError(f"--init {init} needs a PLY scene; a capture starts from 'points' "
                         "(COLMAP) or 'random'")
    frame = scene_frame(frame_of_cameras(ds.train_cameras + ds.test_cameras), config)
    if init == "points":
        if ds.points is None or not len(ds.points):
            raise DatasetError(f"{ds.root}: the capture has no points; use --init random")
        g = Gaussians.from_points(ds.points, ds.point_colors, config.sh_degree, backend=be)
    else:
        g = random_start(frame.center - frame.radius, frame.center + frame.radius,
                         config.init_points, config.sh_degree, np.random.default_rng(config.seed),
                         be)
    w, h = ds.train_cameras[0].width, ds.train_cameras[0].height
    undistorted = f" ({ds.distortion})" if ds.distortion else ""
    return Problem(
        ds.train_cameras, [be.asarray(t, tag="loss") for t in ds.train_images],
        ds.test_cameras, [be.asarray(t, tag="loss") for t in ds.test_images], g, True,
        f"{len(ds.train_cameras)} {ds.kind} views of {ds.root} at {w}x{h}{undistorted}, "
        f"{len(ds.test_cameras)} held out, from a {init} start",
        {"source": str(ds.root.resolve()), "source_digest": source_digest(ds.root),
         "downscale": config.downscale, "init": init,
         "max_images": config.max_images, **_frame_context(config),
         **({"keep_all": True} if config.keep_all else {})}, config.background, frame,
        ds.train_masks, ds.test_masks, ds.kind)


def source_digest(path: str | Path) -> str:
    """A short hash of what a problem is built from, so that a resumed fit can tell that its
    source changed: a file's bytes; for a capture folder, its model files' bytes (.json,
    .txt, .bin) and the name and size of every other file (the images) below it."""
    digest = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path.parent if path.is_file() else path)).encode())
        if f.suffix.lower() in (".json", ".txt", ".bin", ".ply"):
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            digest.update(str(f.stat().st_size).encode())
    return digest.hexdigest()[:16]


def _frame_context(config: ProblemConfig) -> dict:
    """The frame overrides a resumed fit must share (only those given: older checkpoints
    have none)."""
    out = {}
    for name in ("center", "up"):
        if getattr(config, name) is not None:
            out[name] = [float(v) for v in getattr(config, name)]
    if config.distance is not None:
        out["distance"] = float(config.distance)
    return out


def random_start(lo, hi, count: int, sh_degree: int, rng: np.random.Generator,
                 backend=None) -> Gaussians:
    """`count` splats of random colour uniform in the box [lo, hi] ([3] each), initialised as
    from points (3DGS's NeRF-synthetic start: 100k points in [-1.3, 1.3]³ for cameras at
    radius 4)."""
    require_memory(count * HOST_BYTES_PER_START_SPLAT, f"a random start of {count:,} splats",
                   "give fewer (--init-points)", get_backend("cpu"))
    xyz = rng.uniform(np.asarray(lo, np.float64), np.asarray(hi, np.float64), (count, 3))
    return Gaussians.from_points(xyz, rng.uniform(0, 1, (count, 3)), sh_degree, backend=backend)
