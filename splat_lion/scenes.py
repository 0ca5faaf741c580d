"""The small bundled scenes (scenes/README.md lists them; scenes/make_scenes.py makes them).

    splat_lion.scenes.names()           # ["..."]
    g = splat_lion.load_ply(splat_lion.scenes.path("<name>"))
"""

from __future__ import annotations

from pathlib import Path


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
        raise ValueError(f"no bundled scene {name!r}: there are {', '.join(names())}")
    return p
