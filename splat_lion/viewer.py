"""A web viewer of splats in the browser, on viser (`pip install 'splat-lion[viewer]'`).

    viewer = serve("out/")                         # OUT/fitted.ply, a .ply, or a Gaussians
    viewer = serve(g, cameras=problem.train_cameras, port=8080)
    print(viewer.url)                              # open it in a browser
    viewer.update(g, step=1200)                    # new splats, e.g. while a fit trains
    fit(g, ..., progress=viewer.progress_hook(g, every=10))    # the same, every 10 steps
    viewer.close()

viser draws the splats with its Gaussian splat node from what a 3DGS viewer needs: centres,
covariances R diag(σ²) Rᵀ (σ = exp(scales), R from the unit quaternion), the degree-0 colour
0.5 + SH_C0·sh0 clipped to [0, 1] (higher SH degrees are not drawn) and sigmoid(opacities).
A capture's cameras are drawn as frustums (viser's cameras take OpenCV axes too: the pose is
the camera-to-world inverse of `viewmat`). The panel shows the splat count and the fit's step,
sliders for the splats' size and the lowest opacity drawn, a button that resets the view (to
look at the scene frame's centre) and a checkbox for the cameras.

An update computes the arrays on g's backend, copies them to the host and hands them to
viser, which sends them from its own thread. Measured on the CPU backend (2 cores shared with
other work), 300-step fits of the bundled scene `knot` (6,475 splats, 64x64 views, SH degree
3), with a websocket client in another process taking what viser sends: 44.8 s on average
without the viewer (3 runs, 43.1-45.9 s, ~150 ms a step), 44.0 s with an update every 10
steps and 43.7 s every 100: no slowdown beyond the runs' ±3% noise. In the fit's thread an
update took 5.5-7 ms (2.5 ms on an idle machine; 0.4 s per million splats): 0.4% of the fit
every 10 steps, about 4% if it came every step. Hence DEFAULT_EVERY = 10 (fit's log_every:
every progress call), and UPDATE_SHARE bounds the share of big scenes, whose updates take
longer, at 2%.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from .cameras import Camera
from .datasets import load_dataset
from .errors import SplatLionError
from .frame import SceneFrame, frame_of_cameras, frame_of_splats
from .gaussians import Gaussians
from .ply import load_ply
from .problem import splats_path
from .quaternion import quat_to_rotmat
from .sh import SH_C0

# steps between two updates of the splats during a fit (see the module's docstring)
DEFAULT_EVERY = 10
# the most of a fit's time its updates may take: progress_hook waits longer between two
# updates when one takes longer than this share of the time since the last
UPDATE_SHARE = 0.02
# the first view: this many frame radii from the centre (the frame's sphere fills the
# height of viser's 75° field of view from 1.64), this far above the horizon
VIEW_DISTANCE = 1.8
VIEW_ELEVATION_DEG = 25.0
# with cameras, the first view looks from this many times the first camera's distance
BEHIND_CAMERA = 1.5
# a camera frustum's depth, in frame radii
FRUSTUM_SIZE = 0.1


def _viser():
    try:
        import viser  # here: an optional dependency, and importing it takes 0.5 s
    except ImportError:
        raise SplatLionError("the viewer needs viser: pip install 'splat-lion[viewer]' "
                             "(or pip install viser)") from None
    return viser


def serve(source, *, cameras=None, port: int = 8080, host: str = "127.0.0.1") -> Viewer:
    """Serve `source` (a Gaussians, a .ply path or a fit's output folder holding fitted.ply)
    at http://host:port (viser takes the next free port when that one is taken: read
    Viewer.url). cameras: a list of Camera, or a capture folder (transforms.json or COLMAP,
    read with its images by datasets.load_dataset) whose cameras are drawn as frustums."""
    g = _gaussians(source)
    if isinstance(cameras, (str, Path)):
        ds = load_dataset(cameras)
        cameras = ds.train_cameras + ds.test_cameras
    cameras = list(cameras or [])
    for i, cam in enumerate(cameras):
        if not isinstance(cam, Camera):
            raise TypeError(f"cameras[{i}]: expected a splat_lion Camera, got "
                            f"{type(cam).__name__}")
    frame = frame_of_cameras(cameras) if cameras else frame_of_splats(g)
    return Viewer(g, cameras, frame, port=port, host=host)


def _gaussians(source) -> Gaussians:
    if isinstance(source, Gaussians):
        return source
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source: expected Gaussians, a .ply path or a fit's output folder, got "
                        f"{type(source).__name__}")
    return load_ply(splats_path(source))


def splat_arrays(g: Gaussians) -> dict[str, np.ndarray]:
    """What viser's splat node draws, as float32 host arrays: centers [N, 3], covariances
    [N, 3, 3] (R diag(σ²) Rᵀ), rgbs [N, 3] (degree-0 colour in [0, 1]), opacities [N, 1].
    Computed on g's backend (on a GPU: there), then copied: a fit may change g right after."""
    be, xp = g.backend, g.backend.xp
    sigma = xp.exp(g.scales)  # [N, 3]
    m = quat_to_rotmat(g.quats, xp) * sigma[:, None, :]  # R diag(σ)
    arrays = {"centers": g.means,
              "covariances": m @ m.transpose(0, 2, 1),
              "rgbs": xp.clip(0.5 + np.float32(SH_C0) * g.sh0[:, 0, :], 0.0, 1.0),
              "opacities": 1.0 / (1.0 + xp.exp(-g.opacities[:, None]))}
    return {k: np.array(be.to_numpy(a), np.float32) for k, a in arrays.items()}


class Viewer:
    """A running viser server showing splats; made by `serve`."""

    def __init__(self, g: Gaussians, cameras: list[Camera], frame: SceneFrame, *, port: int,
                 host: str):
        viser = _viser()
        self.frame = frame
        self._lock = threading.Lock()  # updates come from the fit, slider moves from viser
        self._node = None
        self._arrays = splat_arrays(g)
        self._step: int | None = None
        self._psnr: float | None = None
        self.server = viser.ViserServer(host=host, port=port, label="splat-lion", verbose=False)
        try:
            self._build(viser, cameras)
        except BaseException:
            self.close()
            raise

    def _build(self, viser, cameras: list[Camera]) -> None:
        """The scene, the panel and the first splats."""
        scene, gui = self.server.scene, self.server.gui
        gui.configure_theme(show_share_button=False)
        scene.set_up_direction(self.frame.up)
        self._set_initial_camera(cameras)
        self._status = gui.add_markdown("")
        self._size = gui.add_slider("splat size", min=0.1, max=2.0, step=0.05, initial_value=1.0)
        self._min_opacity = gui.add_slider("min opacity", min=0.0, max=1.0, step=0.01,
                                           initial_value=0.0)
        self._size.on_update(lambda _: self._redraw())
        self._min_opacity.on_update(lambda _: self._redraw())
        self._frustums = [self._add_frustum(viser, i, cam) for i, cam in enumerate(cameras)]
        reset = gui.add_button("reset view")
        reset.on_click(lambda event: self._reset_view(event.client))
        if cameras:
            shown = gui.add_checkbox("cameras", initial_value=True)
            shown.on_update(lambda _: self._show_cameras(shown.value))
        self._redraw()

    @property
    def url(self) -> str:
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def update(self, g: Gaussians, step: int | None = None, psnr: float | None = None) -> None:
        """Show splats `g` instead of the ones shown (any count); `step` and `psnr` go to the
        panel. Copies what it needs: `g` may change as soon as this returns."""
        arrays = splat_arrays(g)
        with self._lock:
            self._arrays, self._step, self._psnr = arrays, step, psnr
            self._draw()

    def progress_hook(self, g: Gaussians, every: int = DEFAULT_EVERY, then=None):
        """A `progress(step, loss, psnr)` callback for fit() that shows `g` again once at
        least `every` steps have passed since the last update, and at least the last update's
        time / UPDATE_SHARE (so updates take at most that share of the fit's time, whatever
        the size of the scene); fit calls it every log_every steps, so updates come on
        logging steps. Then it calls `then(step, loss, psnr)` when given (e.g. the CLI's
        progress bar)."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a number of steps >= 1, got {every!r}")
        last = {"step": 0, "end": 0.0, "seconds": 0.0}  # the start was shown by serve()

        def progress(step, loss, psnr):
            start = time.perf_counter()
            if (step - last["step"] >= every
                    and start - last["end"] >= last["seconds"] / UPDATE_SHARE):
                self.update(g, step=step, psnr=psnr)
                last["end"] = time.perf_counter()
                last.update(step=step, seconds=last["end"] - start)
            if then is not None:
                then(step, loss, psnr)

        return progress

    def wait(self) -> None:
        """Serve until the process is interrupted (Ctrl-C), then close."""
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.server.stop()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------
    def _redraw(self) -> None:
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        """Send the last update's splats with the panel's size and opacity floor (holding
        the lock)."""
        a = self._arrays
        total = len(a["centers"])
        keep = slice(None)
        if self._min_opacity.value > 0:
            keep = a["opacities"][:, 0] >= self._min_opacity.value
        centers, cov, rgbs, opacities = (a[k][keep] for k in ("centers", "covariances", "rgbs",
                                                                "opacities"))
        if self._size.value != 1.0:
            cov = cov * np.float32(self._size.value ** 2)
        shown = len(centers)
        if shown == 0 and self._node is not None:
            self._node.visible = False  # viser's node wants at least one splat
        elif shown and self._node is None:
            self._node = self.server.scene.add_gaussian_splats("/splats", centers, cov, rgbs,
                                                               opacities)
        elif shown:
            self._node.set_gaussians(centers, cov, rgbs, opacities)
            self._node.visible = True
        status = f"**{shown:,}** of {total:,} splats" if shown < total else f"**{total:,}** splats"
        if self._step is not None:
            status += f" · step {self._step:,}"
        if self._psnr is not None:
            status += f" · PSNR {self._psnr:.2f} dB"
        self._status.content = status

    def _set_initial_camera(self, cameras: list[Camera]) -> None:
        """Where a new page (and "reset view") looks from: behind the first camera of a
        capture, else above the frame's horizon; always at the frame's centre."""
        f = self.frame
        if cameras:  # from behind the first camera, which shows its frustum
            eye = f.center + BEHIND_CAMERA * (cameras[0].position - f.center)
        else:
            a = np.eye(3)[0] if abs(f.up[0]) < 0.9 else np.eye(3)[1]
            side = a - (a @ f.up) * f.up
            side /= np.linalg.norm(side)
            el = math.radians(VIEW_ELEVATION_DEG)
            eye = f.center + VIEW_DISTANCE * f.radius * (math.cos(el) * side
                                                         + math.sin(el) * f.up)
        cam = self.server.initial_camera
        cam.position = tuple(eye)
        cam.look_at = tuple(f.center)
        cam.up = tuple(f.up)

    def _reset_view(self, client) -> None:
        """Put `client`'s camera back where a new page starts."""
        start = self.server.initial_camera
        with client.atomic():
            client.camera.position = start.position
            client.camera.look_at = start.look_at
            client.camera.up_direction = start.up

    def _add_frustum(self, viser, i: int, cam: Camera):
        """Camera `cam` as a frustum: its vertical field of view, aspect and pose
        (camera-to-world: Rᵀ and the camera's centre; OpenCV axes in viser as here)."""
        rot = cam.viewmat[:3, :3].T
        return self.server.scene.add_camera_frustum(
            f"/cameras/{i}", fov=2 * math.atan(cam.height / (2 * cam.fy)),
            aspect=cam.width / cam.height, scale=FRUSTUM_SIZE * self.frame.radius,
            thickness=1.5, thickness_units="screen",
            wxyz=viser.transforms.SO3.from_matrix(rot).wxyz, position=cam.position)

    def _show_cameras(self, visible: bool) -> None:
        for f in self._frustums:
            f.visible = visible
