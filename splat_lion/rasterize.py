"""Wrappers of kernels/rasterize.cu: tile compositing, forward and backward
(reference/rasterize.py: the same functions and arguments, less `be` and `defines`).

    image, alpha, last = rasterize_fwd(bins["ranges"], bins["ids"], p["means2d"], p["conics"],
                                       p["colors"], g.opacities, background, W, H, be)
    grads = rasterize_bwd(bins["ranges"], ..., background, W, H, alpha, last, v_image, v_alpha,
                          be)   # rasterize_fwd's arguments, its alpha and last, dL/dimage, dL/dalpha

With depths=p["depths"] (project_fwd's view-space z) the same walk also gives the expected and
the median depth (the kernels' depth variants; without, the plain kernels every fit step runs):

    image, alpha, last, depth, median = rasterize_fwd(..., W, H, be, depths=p["depths"])
    grads = rasterize_bwd(..., v_alpha, be, depths=p["depths"], depth=depth, v_depth=v_depth)
    grads["depths"]   # [N] dL/dz per splat, beside means2d, conics, colors, opacities
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .backend import Backend
from .checks import check_array
from .kernels import TILE, num_tiles


def _check_inputs(ranges, ids, means2d, conics, colors, opacities, background, width, height,
                  be: Backend) -> tuple[int, int]:
    """Check the arguments both kernels share; return the tile grid (tiles_x, tiles_y)."""
    xp = be.xp
    n = means2d.shape[0]
    tx, ty = num_tiles(width, height)
    check_array("ranges", ranges, np.int32, (tx * ty, 2), xp)
    check_array("ids", ids, np.int32, (None,), xp)
    check_array("means2d", means2d, np.float32, (n, 2), xp)
    check_array("conics", conics, np.float32, (n, 3), xp)
    check_array("colors", colors, np.float32, (n, 3), xp)
    check_array("opacities", opacities, np.float32, (n,), xp)
    check_array("background", background, np.float32, (3,), xp)
    return tx, ty


def rasterize_fwd(ranges, ids, means2d, conics, colors, opacities, background, width: int,
                  height: int, be: Backend, *, depths=None):
    """(image [H, W, 3], alpha [H, W], last [H, W] int32) from the binned splats.

    depths [N] (project_fwd's view-space z): also (depth [H, W], median_depth [H, W]) from
    the same walk (rasterize_fwd_depth): depth = Σ w_i z_i / alpha, w_i = alpha_i T_i the
    compositing weights, where alpha > 0, else 0 (the expected depth normalised by the
    accumulated alpha: gsplat's "ED"; depth * alpha is its "D"); median_depth = z of the
    first splat after which the transmittance is below 0.5, 0 where it never is."""
    tx, ty = _check_inputs(ranges, ids, means2d, conics, colors, opacities, background, width,
                           height, be)
    # reused between renders (no allocation per step), never while a result still holds one
    image = be.workspace("rasterize.image", (height, width, 3), np.float32, tag="image")
    alpha = be.workspace("rasterize.alpha", (height, width), np.float32, tag="image")
    last = be.workspace("rasterize.last", (height, width), np.int32, tag="image")
    args = (ranges, ids, means2d, conics, colors, opacities, background, np.int32(width),
            np.int32(height))
    if depths is None:
        be.launch(kernels.function("rasterize", "rasterize_fwd", backend=be), (tx, ty),
                  (TILE, TILE), (*args, image, alpha, last))
        return image, alpha, last
    check_array("depths", depths, np.float32, (means2d.shape[0],), be.xp)
    depth = be.workspace("rasterize.depth", (height, width), np.float32, tag="image")
    median = be.workspace("rasterize.median_depth", (height, width), np.float32, tag="image")
    be.launch(kernels.function("rasterize", "rasterize_fwd_depth", backend=be), (tx, ty),
              (TILE, TILE), (*args, depths, image, alpha, last, depth, median))
    return image, alpha, last, depth, median


def rasterize_bwd(ranges, ids, means2d, conics, colors, opacities, background, width: int,
                  height: int, alpha, last, v_image, v_alpha, be: Backend,
                  defines: dict | None = None, out: dict | None = None, *, depths=None,
                  depth=None, v_depth=None) -> dict:
    """Gradients with respect to means2d [N,2], conics [N,3], colors [N,3] and opacities [N]
    (logits), given those with respect to the image [H,W,3] and alpha [H,W]. `defines`
    (tests): compile-time options, e.g. the warp-sum variant on the CPU
    ({"SPLAT_LION_WARP_SUM_ON_CPU": 1}), or the walk over every splat without the skips
    ({"BWD_SKIPS": 0}). `out`: those four arrays to add into (zeroed by the caller: views of
    render_backward's buffers), instead of new zeroed ones.

    depths [N], depth [H,W] (rasterize_fwd's, of those depths) and v_depth [H,W] (dL/ddepth,
    of the normalised expected depth), all three or none: also "depths" [N], dL/dz per
    splat (in `out` too when given), and the depth's share of the other four
    (rasterize_bwd_depth)."""
    xp = be.xp
    n = means2d.shape[0]
    tx, ty = _check_inputs(ranges, ids, means2d, conics, colors, opacities, background, width,
                           height, be)
    check_array("alpha", alpha, np.float32, (height, width), xp)
    check_array("last", last, np.int32, (height, width), xp)
    check_array("v_image", v_image, np.float32, (height, width, 3), xp)
    check_array("v_alpha", v_alpha, np.float32, (height, width), xp)
    shapes = {"means2d": (n, 2), "conics": (n, 3), "colors": (n, 3), "opacities": (n,)}
    given = {"depths": depths, "depth": depth, "v_depth": v_depth}
    missing = [k for k, a in given.items() if a is None]
    if 0 < len(missing) < 3:
        raise ValueError(f"rasterize_bwd: depths, depth and v_depth go together; "
                         f"{', '.join(missing)} missing")
    if depths is not None:
        check_array("depths", depths, np.float32, (n,), xp)
        check_array("depth", depth, np.float32, (height, width), xp)
        check_array("v_depth", v_depth, np.float32, (height, width), xp)
        shapes["depths"] = (n,)
    if out is None:
        out = {k: be.zeros(shape, np.float32, tag="grads") for k, shape in shapes.items()}
    else:
        out = {k: check_array(f"out[{k!r}]", out.get(k), np.float32, shape, xp)
               for k, shape in shapes.items()}
    args = (ranges, ids, means2d, conics, colors, opacities, background, np.int32(width),
            np.int32(height), alpha, last, v_image, v_alpha)
    if depths is None:
        name = "rasterize_bwd"
    else:
        name, args = "rasterize_bwd_depth", (*args, depths, depth, v_depth)
    # atomics across tiles: a fixed order keeps CPU runs reproducible
    be.launch(kernels.function("rasterize", name, defines, backend=be), (tx, ty), (TILE, TILE),
              (*args, *out.values()), ordered=True)
    return out
