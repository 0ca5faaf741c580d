"""render(): project -> bin -> rasterise, the forward pass of a splat render (DESIGN §1).

    out = render(gaussians, camera, background=(0, 0, 0))
    out.image   # [H, W, 3] float32 in the Gaussians' backend
    out.alpha   # [H, W] accumulated opacity
    out.visible # [N] bool: splats that touched at least one tile

    grads = render_backward(out, v_image)   # grads.means, grads.scales, ... (flat layout)
    grads.means2d                           # [N, 2] dL/d mean2d in pixels, what densify reads
    grads.means2d_norm                      # [N] its norm

`render` reads the current parameter values on every call (no caches).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from .binning import bin_intersections
from .cameras import Camera
from .checks import check_array
from .gaussians import Gaussians
from .layout import Flat
from .project import project_bwd, project_fwd
from .rasterize import rasterize_bwd, rasterize_fwd
from .sh import empty_shN


@dataclass
class RenderOutput:
    # [H, W, 3] rendered colour (background composited)
    image: Any
    # [H, W] accumulated opacity, 1 - final transmittance
    alpha: Any
    # [N] bool: splats inside the view that touched at least one tile
    visible: Any
    # project_fwd's outputs (radii, means2d, depths, conics, colors, tiles_touched)
    projected: dict
    # binning's outputs (keys, ids, ranges, num_intersections)
    bins: dict
    # [H, W] int32: tile splats walked per pixel up to its last contributor
    last: Any
    # what was rendered, for the backward pass
    gaussians: Gaussians
    camera: Camera
    background: Any
    sh_degree: int


def render(gaussians: Gaussians, camera: Camera, background=(0.0, 0.0, 0.0),
           sh_degree: int | None = None, *, phase=None) -> RenderOutput:
    """phase(name): a context manager entered around each stage ("project", "binning",
    "rasterize"); memory.profile_step passes its tracker's phase to measure each."""
    g = gaussians
    be = g.backend
    phase = phase or _no_phase
    degree = g.sh_degree if sh_degree is None else sh_degree
    with phase("project"):
        bg = be.table(np.asarray(background, np.float32).reshape(3))  # cached per colour
        projected = project_fwd(g, camera, degree)
    with phase("binning"):
        bins = bin_intersections(projected, camera.width, camera.height, be)
    with phase("rasterize"):
        image, alpha, last = rasterize_fwd(bins["ranges"], bins["ids"], projected["means2d"],
                                           projected["conics"], projected["colors"],
                                           g.opacities, bg, camera.width, camera.height, be)
        visible = bins["visible"]  # radii > 0, written by binning
    return RenderOutput(image=image, alpha=alpha, visible=visible, projected=projected,
                        bins=bins, last=last, gaussians=g, camera=camera, background=bg,
                        sh_degree=degree)


def _no_phase(name: str):
    return nullcontext()


class Gradients(Flat):
    """Gradients on the Gaussians' flat layout (grads.means, ...), plus the screen-space
    gradient means2d [N, 2] (per pixel of offset) and its norm means2d_norm [N]."""

    __slots__ = ("means2d", "means2d_norm")

    def __getattr__(self, name: str):
        if name == "shN" and name not in self.layout:  # SH degree 0: empty, as Gaussians.shN
            return empty_shN(self.data, self.layout.count)
        return super().__getattr__(name)


def render_backward(out: RenderOutput, v_image, v_alpha=None, *, phase=None) -> Gradients:
    """Gradients of a loss with respect to every parameter, given its gradient with respect
    to out.image [H, W, 3] (and optionally out.alpha [H, W]). phase(name): a context manager
    entered around each stage ("rasterize_bwd", "project_bwd"), as render's."""
    g, cam = out.gaussians, out.camera
    be = g.backend
    phase = phase or _no_phase
    check_array("v_image", v_image, np.float32, (cam.height, cam.width, 3), be.xp)
    p = out.projected
    with phase("rasterize_bwd"):
        if v_alpha is None:
            v_alpha = be.zeros((cam.height, cam.width), np.float32, tag="loss")
        v2d = rasterize_bwd(out.bins["ranges"], out.bins["ids"], p["means2d"], p["conics"],
                            p["colors"], g.opacities, out.background, cam.width, cam.height,
                            out.alpha, out.last, v_image, v_alpha, be)
    with phase("project_bwd"):
        v3d = project_bwd(g, cam, p["radii"], v2d["means2d"], v2d["conics"], v2d["colors"],
                          out.sh_degree)
    grads = Gradients(g.layout, g.layout.zeros(tag="grads", backend=be))
    for name in ("means", "scales", "quats", "sh0"):
        grads[name][...] = v3d[name]
    if g.sh_degree > 0:
        grads["shN"][...] = v3d["shN"]
    grads["opacities"][...] = v2d["opacities"]
    grads.means2d = v2d["means2d"]
    grads.means2d_norm = be.track(be.xp.linalg.norm(v2d["means2d"], axis=1), tag="grads")
    return grads
