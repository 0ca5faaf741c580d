"""Wrappers of kernels/project.cu: per-splat projection and SH colour (reference/project.py:
project_fwd takes g's fields means, scales, quats, sh0, shN in place of g; project_bwd is
checked against finite differences of it).

    out = project_fwd(gaussians, camera)           # dict of [N, ...] arrays on the backend
    grads = project_bwd(gaussians, camera, out["radii"], v_means2d, v_conics, v_colors)
    grads = project_bwd(..., v_depths=v_depths)    # and a gradient of out["depths"] (z)
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .backend import Backend
from .cameras import Camera
from .checks import check_array
from .gaussians import Gaussians
from .kernels import BLOCK
from .sh import empty_shN, sh_rest


def _common_args(g: Gaussians, camera: Camera, sh_degree: int | None,
                 be: Backend) -> tuple[int, tuple]:
    """(the SH degree evaluated, the arguments both kernels begin with)."""
    degree = g.sh_degree if sh_degree is None else sh_degree
    if not 0 <= degree <= g.sh_degree:
        raise ValueError(f"sh_degree must lie in 0..{g.sh_degree} (the scene's), got {degree}")
    num_rest = sh_rest(g.sh_degree)
    shN = g.shN if num_rest else be.table(np.zeros(1, np.float32))  # noqa: N806  (a dummy)
    viewmat = be.table(camera.viewmat.astype(np.float32))
    return degree, (g.means, g.scales, g.quats, g.sh0, shN, np.int32(num_rest), viewmat,
                    np.float32(camera.fx), np.float32(camera.fy), np.float32(camera.cx),
                    np.float32(camera.cy), np.int32(camera.width), np.int32(camera.height),
                    np.float32(camera.near), np.float32(camera.far), np.int64(g.count))


def _kernel(name: str, degree: int, be: Backend):
    """project.cu's kernel `name` for SH degree `degree`: one of the variants compiled
    together (project_fwd_sh0 .. _sh3), so a degree ramping up during a fit compiles nothing."""
    return kernels.function("project", f"{name}_sh{degree}", backend=be)


def project_fwd(g: Gaussians, camera: Camera, sh_degree: int | None = None) -> dict:
    """radii [N] int32 (0: culled), means2d [N,2], depths [N], conics [N,3], colors [N,3],
    tiles_touched [N] int32, all on the Gaussians' backend (tag "projection")."""
    be = g.backend
    n = g.count
    shapes = {"radii": ((n,), np.int32), "means2d": ((n, 2), np.float32),
              "depths": ((n,), np.float32), "conics": ((n, 3), np.float32),
              "colors": ((n, 3), np.float32), "tiles_touched": ((n,), np.int32)}
    # reused between renders (no allocation per step), never while a result still holds one
    out = {k: be.workspace(f"project.{k}", shape, dtype, tag="projection")
           for k, (shape, dtype) in shapes.items()}
    if n:
        degree, args = _common_args(g, camera, sh_degree, be)
        be.launch(_kernel("project_fwd", degree, be), ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                  (*args, *out.values()))
    return out


def project_bwd(g: Gaussians, camera: Camera, radii, v_means2d, v_conics, v_colors,
                sh_degree: int | None = None, out: dict | None = None, *,
                accumulate: bool = False, v_depths=None) -> dict:
    """Gradients of a loss with respect to means [N,3], scales [N,3], quats [N,4], sh0
    [N,1,3] and shN [N,K-1,3], given its gradients with respect to project_fwd's means2d,
    conics and colors (radii from that forward pass). `out`: arrays of those shapes to write
    into (every element is written; e.g. views of a flat gradient buffer), shN only when
    K > 1, instead of new ones; then the arrays given are returned. accumulate=True (with
    `out`): add the gradients to what `out` holds instead (a batch of views). v_depths [N]:
    a gradient with respect to depths too (a depth render's), added to means by a second
    kernel (project_bwd_depths), so the colour-only backward launches what it did."""
    be = g.backend
    n, xp = g.count, be.xp
    check_array("radii", radii, np.int32, (n,), xp)
    check_array("v_means2d", v_means2d, np.float32, (n, 2), xp)
    check_array("v_conics", v_conics, np.float32, (n, 3), xp)
    check_array("v_colors", v_colors, np.float32, (n, 3), xp)
    if v_depths is not None:
        check_array("v_depths", v_depths, np.float32, (n,), xp)
    rest = sh_rest(g.sh_degree)
    shapes = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "sh0": (n, 1, 3),
              "shN": (n, rest, 3) if rest else (1,)}
    given = out is not None
    if accumulate and not given:
        raise ValueError("project_bwd: accumulate=True adds into `out`: give out")
    if not given:
        out = {k: be.empty(shape, np.float32, tag="grads") for k, shape in shapes.items()}
    else:
        out = {k: check_array(f"out[{k!r}]", out[k], np.float32, shapes[k], xp)
               for k in shapes if k != "shN" or rest}
        if not rest:  # the kernel's shN argument: never written at degree 0
            out["shN"] = be.table(np.zeros(1, np.float32))
    if n:
        degree, args = _common_args(g, camera, sh_degree, be)
        be.launch(_kernel("project_bwd", degree, be), ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                  (*args, radii, v_means2d, v_conics, v_colors, *out.values(),
                   np.int32(accumulate)))
        if v_depths is not None:
            viewmat = args[6]  # _common_args's table of camera.viewmat
            be.launch(kernels.function("project", "project_bwd_depths", backend=be),
                      ((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                      (viewmat, radii, v_depths, out["means"], np.int64(n)))
    if not rest:
        if given:
            del out["shN"]  # the dummy; the caller gave none
        else:
            out["shN"] = empty_shN(out["shN"], n)
    return out
