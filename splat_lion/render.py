"""render(): project -> bin -> rasterise, the forward pass of a splat render (DESIGN §1).

    out = render(gaussians, camera, background=(0, 0, 0))
    out.image   # [H, W, 3] float32 in the Gaussians' backend
    out.alpha   # [H, W] accumulated opacity
    out.visible # [N] bool: splats that touched at least one tile

`render` reads the current parameter values on every call (no caches). The backward pass
(`render_backward`) follows with the rasterizer's backward kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .binning import bin_intersections
from .cameras import Camera
from .gaussians import Gaussians
from .project import project_fwd
from .rasterize import rasterize_fwd


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
           sh_degree: int | None = None) -> RenderOutput:
    g = gaussians
    be = g.backend
    degree = g.sh_degree if sh_degree is None else sh_degree
    bg = be.asarray(np.asarray(background, np.float32).reshape(3), tag="image")
    projected = project_fwd(g, camera, degree)
    bins = bin_intersections(projected, camera.width, camera.height, be)
    image, alpha, last = rasterize_fwd(bins["ranges"], bins["ids"], projected["means2d"],
                                       projected["conics"], projected["colors"], g.opacities,
                                       bg, camera.width, camera.height, be)
    return RenderOutput(image=image, alpha=alpha, visible=projected["radii"] > 0,
                        projected=projected, bins=bins, last=last, gaussians=g, camera=camera,
                        background=bg, sh_degree=degree)
