"""The web viewer (splat_lion/viewer.py): what it hands viser, and, end to end, that a real
headless Chromium draws the splats on the page.

The browser tests drive Debian's `chromium` over the DevTools protocol (websockets, which
viser installs) with software WebGL (SwiftShader). Without Chromium they are skipped, saying
how to install it; SPLAT_LION_REQUIRE_BROWSER=1 (CI) makes that a failure instead.
SPLAT_LION_SAVE_SCREENSHOT=1 writes the page with the splats to docs/viewer.png.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import splat_lion.scenes as scenes
from splat_lion.backend import get_backend
from splat_lion.cameras import orbit_cameras
from splat_lion.datasets import write_transforms
from splat_lion.errors import PlyError, SplatLionError
from splat_lion.gaussians import Gaussians
from splat_lion.ply import load_ply, save_ply

pytest.importorskip("viser", reason="the viewer needs viser: pip install 'splat-lion[viewer]'")

from splat_lion.viewer import serve, splat_arrays  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "viewer.png"
# the page's size, and where the splats are looked for in it: the middle of the page,
# below the panel (top right) and the software-WebGL notice (top left), above the axes
WINDOW = (960, 640)
REGION = (slice(260, 600), slice(80, 880))  # rows, columns
# a pixel counts as drawn when its R+G+B differ from the background's by more than this
DRAWN = 30
# viser's background (its light theme): the empty page must be all this in REGION
BACKGROUND = (255, 255, 255)
# how long the page may take to show what the server sent, seconds
PATIENCE = 40.0


@pytest.fixture(autouse=True)
def cpu_backend(monkeypatch):
    """The viewer's arrays are checked as NumPy on the CPU backend (the cuda case has its own
    test)."""
    monkeypatch.setenv("SPLAT_LION_BACKEND", "cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty_gaussians() -> Gaussians:
    return Gaussians.from_arrays(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)),
                                 np.zeros(0), np.zeros((0, 3)))


@pytest.fixture(scope="module")
def knot() -> Gaussians:
    return load_ply(scenes.path("knot"), backend=get_backend("cpu"))


# -- what viser gets -------------------------------------------------------------------------

def test_covariances_are_rotated_squared_scales(be, rng):
    quats = rng.normal(size=(5, 4))
    scales = rng.normal(size=(5, 3))
    g = Gaussians.from_arrays(rng.normal(size=(5, 3)), scales, quats, rng.normal(size=5),
                              rng.normal(size=(5, 3)), backend=be)
    a = splat_arrays(g)
    for i in range(5):  # Σ = R diag(σ²) Rᵀ: eigenvalues σ², eigenvectors R's columns
        w, x, y, z = quats[i] / np.linalg.norm(quats[i])
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        expected = rot @ np.diag(np.exp(2 * scales[i])) @ rot.T
        np.testing.assert_allclose(a["covariances"][i], expected, rtol=1e-4, atol=1e-6)


def test_colours_and_opacities_are_activated(knot):
    a = splat_arrays(knot)
    sh0 = knot.sh0[:, 0, :].astype(np.float64)
    np.testing.assert_allclose(a["rgbs"], np.clip(0.5 + 0.28209479177387814 * sh0, 0, 1),
                               atol=1e-6)
    np.testing.assert_allclose(a["opacities"][:, 0], 1 / (1 + np.exp(-knot.opacities)),
                               atol=1e-6)
    assert a["centers"].shape == (knot.count, 3) and a["opacities"].shape == (knot.count, 1)


def test_arrays_are_a_snapshot(knot):
    g = knot.to("cpu")
    a = splat_arrays(g)
    g.means[...] += 1.0  # a fit moves the splats in place after an update
    np.testing.assert_array_equal(a["centers"], knot.means)


# -- the server ------------------------------------------------------------------------------

def test_serves_a_fit_output_folder(tmp_path, knot):
    save_ply(knot, tmp_path / "fitted.ply")
    with serve(tmp_path, port=free_port()) as viewer:
        assert viewer.url.startswith("http://127.0.0.1:")
        assert len(viewer._node.centers) == knot.count


def test_folder_without_fitted_ply_says_what_to_give(tmp_path):
    with pytest.raises(PlyError, match="without fitted.ply: give a .ply file or the --out"):
        serve(tmp_path, port=free_port())


def test_without_viser_the_error_says_how_to_install(knot, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser fails
    with pytest.raises(SplatLionError, match=r"pip install 'splat-lion\[viewer\]'"):
        serve(knot, port=free_port())


def test_min_opacity_hides_faint_splats(knot):
    with serve(knot, port=free_port()) as viewer:
        viewer._min_opacity.value = 0.91  # about the median of knot's opacities
        opaque = int((knot.opacity_values() >= 0.91).sum())
        assert 0 < opaque < knot.count
        assert len(viewer._node.centers) == opaque
        assert f"{opaque:,}** of {knot.count:,} splats" in viewer._status.content


def test_frustums_have_the_cameras_pose_and_field_of_view(knot):
    cams = orbit_cameras(radius=4.0, n=3, width=160, height=120, fov_x_deg=50.0)
    with serve(knot, cameras=cams, port=free_port()) as viewer:
        for cam, frustum in zip(cams, viewer._frustums):
            w, x, y, z = frustum.wxyz
            rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
            np.testing.assert_allclose(rot, cam.viewmat[:3, :3].T, atol=1e-6)  # camera->world
            np.testing.assert_allclose(frustum.position, cam.position, atol=1e-6)
            assert frustum.fov == pytest.approx(2 * np.arctan(60 / cam.fy))  # vertical
            assert frustum.aspect == pytest.approx(160 / 120)


def test_a_capture_folder_gives_its_cameras(tmp_path, knot):
    cams = orbit_cameras(radius=4.0, n=3, width=16, height=12)
    write_transforms(tmp_path, cams, [np.full((12, 16, 3), 0.5)] * 3)
    with serve(knot, cameras=tmp_path, port=free_port()) as viewer:
        shown = sorted(tuple(f.position.round(4)) for f in viewer._frustums)  # train, held out
        assert shown == sorted(tuple(c.position.round(4)) for c in cams)


def test_progress_hook_updates_once_every_n_steps(knot, monkeypatch):
    with serve(knot, port=free_port()) as viewer:
        steps = []
        monkeypatch.setattr(viewer, "update", lambda g, step=None, psnr=None: steps.append(step))
        seen = []
        hook = viewer.progress_hook(knot, every=25, then=lambda *a: seen.append(a))
        for step in range(0, 120, 10):  # fit calls it every log_every = 10 steps
            time.sleep(0.002)  # the steps between: far longer than an update here
            hook(step, 0.1, 20.0)
        assert steps == [30, 60, 90]
        assert len(seen) == 12  # the chained callback sees every call


def test_progress_hook_keeps_slow_updates_to_their_share_of_the_fit(knot, monkeypatch):
    with serve(knot, port=free_port()) as viewer:
        steps = []

        def slow_update(g, step=None, psnr=None):
            time.sleep(0.02)
            steps.append(step)

        monkeypatch.setattr(viewer, "update", slow_update)
        hook = viewer.progress_hook(knot, every=10)
        for step in range(10, 210, 10):  # steps far faster than 0.02 s / UPDATE_SHARE
            hook(step, 0.1, 20.0)
        assert steps == [10]


def test_progress_hook_refuses_a_bad_interval(knot):
    with serve(knot, port=free_port()) as viewer:
        with pytest.raises(ValueError, match="every: expected a number of steps >= 1"):
            viewer.progress_hook(knot, every=0)


# -- in a real browser -------------------------------------------------------------------

def chromium_or_skip() -> str:
    exe = os.environ.get("SPLAT_LION_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if exe is None:
        msg = ("no Chromium to load the viewer in: sudo apt-get install chromium (Debian; "
               "Ubuntu: the chromium snap or Google Chrome), or set SPLAT_LION_CHROMIUM to "
               "the browser")
        if os.environ.get("SPLAT_LION_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (SPLAT_LION_REQUIRE_BROWSER=1: a browser is required)")
        pytest.skip(msg)
    return exe


class Chromium:
    """Headless Chromium, one page, driven over the DevTools protocol."""

    def __init__(self, exe: str, profile: Path):
        self.process = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--no-first-run", "--use-gl=angle",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             f"--window-size={WINDOW[0]},{WINDOW[1]}", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port there
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise RuntimeError(f"{exe} exited ({self.process.returncode}): "
                                   f"{self.process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{exe} did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [p for p in json.load(r) if p["type"] == "page"]
        from websockets.sync.client import connect  # viser's dependency

        self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        self.calls = 0

    def call(self, method: str, **params) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:  # events come in between: skip them
            reply = json.loads(self.socket.recv(timeout=30))
            if reply.get("id") == self.calls:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        width, height = WINDOW  # the page's size exactly (a headless window's is less)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)

    def screenshot(self) -> np.ndarray:
        """[H, W, 3] uint8 of the page as drawn now; closes viser's software-WebGL notice."""
        self.call("Runtime.evaluate", expression="document.querySelectorAll("
                  "'.mantine-Notification-closeButton').forEach(b => b.click())")
        from PIL import Image

        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def wait_for(self, done, what: str) -> np.ndarray:
        """The first screenshot for which done(image) holds, polled for PATIENCE s."""
        deadline = time.monotonic() + PATIENCE
        while True:
            image = self.screenshot()
            if done(image):
                return image
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not show {what} within {PATIENCE:.0f} s; "
                                     f"{drawn(image):.2%} of the region differs from the "
                                     "background")
            time.sleep(0.5)

    def settled(self, image: np.ndarray) -> np.ndarray:
        """The page once two screenshots in a row agree (viser fades new splats in)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            time.sleep(0.5)
            image, before = self.screenshot(), image
            if np.abs(image.astype(int) - before).max() <= 2:
                break
        return image

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def drawn(image: np.ndarray) -> float:
    """The fraction of REGION's pixels that are not the background."""
    diff = np.abs(image[REGION].astype(int) - np.array(BACKGROUND)).sum(-1)
    return float((diff > DRAWN).mean())


@pytest.fixture
def browser(tmp_path):
    b = Chromium(chromium_or_skip(), tmp_path / "profile")
    yield b
    b.close()


@pytest.mark.slow
def test_browser_draws_the_splats(browser, knot):
    with serve(knot, port=free_port()) as viewer:
        browser.open(viewer.url)
        image = browser.settled(browser.wait_for(lambda im: drawn(im) > 0.02, "the splats"))
        if os.environ.get("SPLAT_LION_SAVE_SCREENSHOT") == "1":
            from PIL import Image

            Image.fromarray(image).save(SCREENSHOT, optimize=True)
    assert drawn(image) > 0.02


@pytest.mark.slow
def test_browser_shows_splats_sent_after_it_loaded(browser, knot):
    with serve(empty_gaussians(), port=free_port()) as viewer:
        browser.open(viewer.url)
        deadline = time.monotonic() + PATIENCE
        while not viewer.server.get_clients():  # the page connected
            assert time.monotonic() < deadline, "the page did not connect to the viewer"
            time.sleep(0.2)
        time.sleep(2.0)  # its first frames
        blank = browser.screenshot()
        assert drawn(blank) == 0.0, "the page with no splats is not all background"
        viewer.update(knot, step=100)  # live, as during a fit
        image = browser.wait_for(lambda im: drawn(im) > 0.02, "the splats sent later")
    assert np.abs(image[REGION].astype(int) - blank[REGION]).sum(-1).max() > DRAWN
