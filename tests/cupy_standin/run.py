"""Run splat-lion's CLI, or any script, on the cuda backend of the CuPy stand-in:

    python tests/cupy_standin/run.py splat-lion info planet      # CI's CLI smoke
    python tests/cupy_standin/run.py splat-lion fit planet --out /tmp/fit --steps 20
    python tests/cupy_standin/run.py benchmarks/gpu_check.py --quick

The stand-in is installed as `cupy` first, so with SPLAT_LION_BACKEND unset the automatic
choice is `cuda`, as on a machine with a GPU. Subprocesses (a script's own pytest runs) get
the stand-in through SPLAT_LION_TEST_STANDIN=1 in the environment, which this sets.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

USAGE = "usage: run.py splat-lion ARGS... | run.py SCRIPT.py ARGS..."


def run(argv: list[str]) -> int:
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    import cupy_standin

    os.environ[cupy_standin.ENV_VAR] = "1"  # for subprocesses that run the tests
    cupy_standin.install()  # before splat_lion's backend first imports cupy
    if argv[0] == "splat-lion":
        from splat_lion.cli import main

        return main(argv[1:])
    script = Path(argv[0]).resolve()
    sys.argv = [str(script), *argv[1:]]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    # run as a script, this folder is sys.path[0]: put tests/ there instead (the package
    # cupy_standin is in it)
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    sys.exit(run(sys.argv[1:]))
