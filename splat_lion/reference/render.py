"""Reference of a whole render: reference.project then the brute-force rasterizer."""

from __future__ import annotations

from .project import project_fwd
from .rasterize import rasterize_fwd


def render(means, scales, quats, opacities, sh0, shN, camera, background, sh_degree):  # noqa: N803
    """(image [H, W, 3], alpha [H, W]) in float64 for a splats.cameras.Camera."""
    p = project_fwd(means, scales, quats, sh0, shN, camera.viewmat, camera.fx, camera.fy,
                    camera.cx, camera.cy, camera.width, camera.height, camera.near, camera.far,
                    sh_degree)
    image, alpha, _ = rasterize_fwd(p["means2d"], p["conics"], p["colors"], opacities, p["radii"],
                                    p["depths"], background, camera.width, camera.height)
    return image, alpha
