"""render(): project -> bin -> rasterise, the forward pass of a splat render (DESIGN §1).

    out = render(gaussians, camera, background=(0, 0, 0))
    out.image   # [H, W, 3] float32 in the Gaussians' backend
    out.alpha   # [H, W] accumulated opacity
    out.visible # [N] bool: splats that touched at least one tile

    grads = render_backward(out, v_image)   # grads.means, grads.scales, ... (flat layout)
    grads.means2d                           # [N, 2] dL/d mean2d in pixels, what densify reads
    grads.means2d_norm                      # [N] its norm (computed when first read)

    out = render(gaussians, camera, depth=True)   # the same walk also composites depth:
    out.depth          # [H, W] expected view-space depth Σ w_i z_i / alpha (0 where alpha = 0)
    out.median_depth   # [H, W] z of the splat where T falls below 0.5 (0 where it never does)
    grads = render_backward(out, v_image, v_depth=v_depth)   # a depth loss too: dL/d out.depth

Depth is gsplat's "ED" (expected depth normalised by the accumulated alpha); its "D", the
unnormalised Σ w_i z_i, is out.depth * out.alpha; a loss on it differentiates through
v_depth = v_D * alpha and v_alpha += v_D * depth. The median depth has no gradient. Without
depth=True the kernels are those of a fit step (depth is a separate kernel variant), and
out.depth and out.median_depth are None.

`render` reads the current parameter values on every call (no caches). Binning's buffers and
the backward pass's (the flat gradients, the screen-space gradients) are workspaces of the
backend (backend.py): a fit step, which drops its RenderOutput and Gradients before the
next, allocates none of them after warm-up; while one is held, the next call gets other
buffers, so a held result is never overwritten.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import backend_of
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
    # [H, W] expected view-space depth, normalised by alpha (0 where alpha is 0); None
    # unless render(..., depth=True)
    depth: Any = None
    # [H, W] depth of the splat where the transmittance falls below 0.5 (0 where it never
    # does); None unless render(..., depth=True)
    median_depth: Any = None


def render(gaussians: Gaussians, camera: Camera, background=(0.0, 0.0, 0.0),
           sh_degree: int | None = None, *, depth: bool = False, phase=None) -> RenderOutput:
    """depth: also out.depth and out.median_depth, from the same compositing pass (its depth
    variant; see the module's docstring). phase(name): a context manager entered around each
    stage ("project", "binning", "rasterize"); memory.profile_step passes its tracker's phase
    to measure each."""
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
        image, alpha, last, *depths = rasterize_fwd(
            bins["ranges"], bins["ids"], projected["means2d"], projected["conics"],
            projected["colors"], g.opacities, bg, camera.width, camera.height, be,
            depths=projected["depths"] if depth else None)
        depth_image, median = depths if depth else (None, None)
        visible = bins["visible"]  # radii > 0, written by binning
    return RenderOutput(image=image, alpha=alpha, visible=visible, projected=projected,
                        bins=bins, last=last, gaussians=g, camera=camera, background=bg,
                        sh_degree=degree, depth=depth_image, median_depth=median)


def _no_phase(name: str):
    return nullcontext()


def _flat_gradients(layout, be):
    """[layout.total] float32, padding zero: a workspace made zeroed for this layout's size
    (render.grads.<total>; a densify step changes the size and drops the old one), whose
    padding nothing writes."""
    key = f"render.grads.{layout.total}"
    be.workspaces.drop("render.grads.", keep=key)
    return be.workspace(key, layout.total, np.float32, tag="grads", zeros=True)


class Gradients(Flat):
    """Gradients on the Gaussians' flat layout (grads.means, ...), plus the screen-space
    gradient means2d [N, 2] (per pixel of offset) and its norm means2d_norm [N]."""

    __slots__ = ("means2d", "_means2d_norm")

    def __getattr__(self, name: str):
        if name == "shN" and name not in self.layout:  # SH degree 0: empty, as Gaussians.shN
            return empty_shN(self.data, self.layout.count)
        return super().__getattr__(name)

    def forget_norm(self) -> None:
        """Drop the cached means2d_norm (means2d was replaced)."""
        try:
            del self._means2d_norm
        except AttributeError:
            pass

    @property
    def means2d_norm(self):
        """[N] |means2d| per splat, computed on first read (tag "grads")."""
        try:
            return self._means2d_norm
        except AttributeError:
            be = backend_of(self.means2d)
            self._means2d_norm = be.track(be.xp.linalg.norm(self.means2d, axis=1), tag="grads")
            return self._means2d_norm


def render_backward(out: RenderOutput, v_image, v_alpha=None, *, v_depth=None,
                    into: Gradients | None = None, phase=None) -> Gradients:
    """Gradients of a loss with respect to every parameter, given its gradient with respect
    to out.image [H, W, 3] (and optionally out.alpha [H, W], and out.depth [H, W]: v_depth,
    for a render made with depth=True; it reaches the means through each splat's depth and
    every parameter of the compositing weights). phase(name): a context manager entered
    around each stage ("rasterize_bwd", "project_bwd"), as render's.

    into: the Gradients of an earlier render_backward of the same splats (a batch of views):
    this view's gradients are added to them, and `into` is returned, its means2d now this
    view's (what densification observes per view). A batch's gradient is the sum of its
    views' (tests/test_render.py).

    The kernels write straight into the flat gradient buffer: rasterize_bwd adds the opacity
    gradients into its opacities segment (zeroed first) and project_bwd writes every other
    attribute's segment; the screen-space gradients (means2d, conics, colors) go to one
    buffer beside it, zeroed in one fill. Both buffers are workspaces (render.grads,
    render.v2d): two fills and no allocation per step after warm-up."""
    g, cam = out.gaussians, out.camera
    be = g.backend
    n = g.count
    phase = phase or _no_phase
    check_array("v_image", v_image, np.float32, (cam.height, cam.width, 3), be.xp)
    if v_depth is not None and out.depth is None:
        raise ValueError("render_backward: v_depth needs a render with depth: "
                         "render(..., depth=True)")
    p = out.projected
    if into is not None and into.layout != g.layout:
        raise ValueError("render_backward: `into` holds gradients of other splats (layout "
                         f"{into.layout.count} splats); a batch's views render the same splats")
    grads = into if into is not None else Gradients(g.layout, _flat_gradients(g.layout, be))
    with phase("rasterize_bwd"):
        if v_alpha is None:  # made zeroed, never written
            v_alpha = be.workspace("render.v_alpha_zero", (cam.height, cam.width), np.float32,
                                   tag="loss", zeros=True)
        v2d = be.workspace("render.v2d", 8 * n, np.float32, tag="grads")  # [N, 2 + 3 + 3]
        v2d.fill(0)
        if into is None:
            grads.opacities.fill(0)
        v_rasterized = {"means2d": v2d[:2 * n].reshape(n, 2),
                        "conics": v2d[2 * n:5 * n].reshape(n, 3),
                        "colors": v2d[5 * n:].reshape(n, 3), "opacities": grads.opacities}
        with_depth = {}
        if v_depth is not None:  # rasterize_bwd's depth variant, and dL/dz per splat
            v_rasterized["depths"] = be.workspace("render.v_depths", n, np.float32,
                                                  tag="grads")
            v_rasterized["depths"].fill(0)
            with_depth = {"depths": p["depths"], "depth": out.depth, "v_depth": v_depth}
        rasterize_bwd(out.bins["ranges"], out.bins["ids"], p["means2d"], p["conics"],
                      p["colors"], g.opacities, out.background, cam.width, cam.height,
                      out.alpha, out.last, v_image, v_alpha, be, out=v_rasterized, **with_depth)
    with phase("project_bwd"):
        parts = {name: grads[name] for name in ("means", "scales", "quats", "sh0")}
        if "shN" in g.layout:
            parts["shN"] = grads["shN"]
        project_bwd(g, cam, p["radii"], v_rasterized["means2d"], v_rasterized["conics"],
                    v_rasterized["colors"], out.sh_degree, out=parts,
                    accumulate=into is not None, v_depths=v_rasterized.get("depths"))
    grads.means2d = v_rasterized["means2d"]
    grads.forget_norm()  # a batch's earlier view's means2d_norm is stale
    return grads
