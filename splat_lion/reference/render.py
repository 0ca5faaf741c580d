"""Reference of a whole render (splat_lion/render.py's render()): the references of
project_fwd, binning and rasterize_fwd, chained as render() chains the kernels; float64.

render(means, scales, quats, opacities, sh0, shN, camera, background, sh_degree) takes the
Gaussians' fields in place of the Gaussians object (float64 arrays, so that finite
differences can perturb them); camera is a splat_lion.cameras.Camera. With depth=True both
also composite project_fwd's depths (view-space z): the expected depth normalised by alpha
and the median depth (reference/rasterize.py's rasterize_fwd says how).
"""

from __future__ import annotations

from .binning import bin_intersections
from .project import project_fwd
from .rasterize import rasterize_fwd


def bin_and_rasterize(projected, opacities, background, width, height, depth=False):
    """(image [H, W, 3], alpha [H, W], last [H, W] int32), with depth also (depth [H, W],
    median_depth [H, W]), of project_fwd's outputs `projected` (the kernel's or the
    reference's): reference binning, then rasterize_fwd."""
    bins = bin_intersections(projected, width, height)
    return rasterize_fwd(bins["ranges"], bins["ids"], projected["means2d"], projected["conics"],
                         projected["colors"], opacities, background, width, height,
                         projected["depths"] if depth else None)


def render(means, scales, quats, opacities, sh0, shN, camera, background, sh_degree=None,
           depth=False):
    """(image [H, W, 3], alpha [H, W]) in float64, with depth also (depth [H, W],
    median_depth [H, W]); sh_degree None: the scene's."""
    p = project_fwd(means, scales, quats, sh0, shN, camera, sh_degree)
    image, alpha, _, *depths = bin_and_rasterize(p, opacities, background, camera.width,
                                                 camera.height, depth)
    return (image, alpha, *depths)
