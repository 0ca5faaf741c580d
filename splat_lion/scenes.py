"""The small bundled scenes (scenes/README.md lists them; scenes/make_scenes.py makes them).

    splat_lion.scenes.names()           # ["..."]
    g = splat_lion.load_ply(splat_lion.scenes.path("<name>"))
    start = splat_lion.scenes.perturbed(g, seed=0)     # starts to fit a scene back from
    start = splat_lion.scenes.centres_only(g)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError
from .gaussians import Gaussians


def scene_dir() -> Path:
    """Folder of the bundled .ply files: inside the installed package, or `scenes/` in a
    checkout."""
    here = Path(__file__).resolve().parent
    for d in (here / "_scenes", here.parent / "scenes"):
        if d.is_dir() and any(d.glob("*.ply")):
            return d
    raise FileNotFoundError(f"bundled scenes not found in {here / '_scenes'} or "
                            f"{here.parent / 'scenes'}; reinstall splat-lion")


def names() -> list[str]:
    return sorted(p.stem for p in scene_dir().glob("*.ply"))


def path(name: str) -> Path:
    """Path of bundled scene `name` (without .ply)."""
    p = scene_dir() / f"{name}.ply"
    if not p.is_file():
        raise ConfigError(f"no bundled scene {name!r}: there are {', '.join(names())}")
    return p


def perturbed(ref, seed: int = 0):
    """A copy of `ref` (Gaussians) with colours (sh0 ± 0.3), positions (± 1% of the extent)
    and opacity logits (± 1) perturbed by Gaussian noise: the `--init perturbed` start."""
    be = ref.backend
    rng = np.random.default_rng(seed)
    g = ref.to(be)
    for name, sigma in (("sh0", 0.3), ("means", 0.01 * ref.extent()), ("opacities", 1.0)):
        view = getattr(g, name)
        view[...] += be.asarray(rng.normal(0, sigma, view.shape).astype(np.float32),
                                tag="params")
    return g


def centres_only(ref, every: int = 1):
    """Grey, isotropic splats at `ref`'s centres (every `every`-th), as from a point cloud
    (Gaussians.from_points): the `--init points` start."""
    host = ref.backend.to_numpy(ref.means)[::every]
    return Gaussians.from_points(host, np.full(host.shape, 0.5), ref.sh_degree,
                                 backend=ref.backend)
