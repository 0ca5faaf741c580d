"""splat-lion's CLI on the cuda backend of the CuPy stand-in (CI's CLI smoke):

    python tests/cupy_standin/cli.py info planet
    python tests/cupy_standin/cli.py fit planet --out /tmp/fit --steps 20 --resolution 32 --quiet

The same arguments as `splat-lion`; the stand-in is installed as `cupy` first, so with
SPLAT_LION_BACKEND unset the automatic choice is `cuda`, as on a machine with a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path


def run(argv: list[str] | None = None) -> int:
    import cupy_standin

    cupy_standin.install()  # before splat_lion's backend first imports cupy
    from splat_lion.cli import main

    return main(argv)


if __name__ == "__main__":
    # run as a script, this folder is sys.path[0]: put tests/ there instead (the package
    # cupy_standin is in it)
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    sys.exit(run())
