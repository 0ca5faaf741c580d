"""The `splat-lion` command.

    splat-lion info [--json]     backend, device, compilers, and a self-test kernel run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np

from . import __version__


def _cupy_version() -> str:
    try:
        import cupy
    except ImportError:
        return "not installed (GPU: pip install 'splat-lion[cuda12]' or 'splat-lion[cuda13]')"
    return cupy.__version__


def cmd_info(args: argparse.Namespace) -> int:
    from . import kernels, selftest
    from .backend import BackendUnavailable, get_backend, why_chosen

    try:
        be = get_backend()
    except BackendUnavailable as e:
        print(f"splat-lion: {e}", file=sys.stderr)
        return 2
    info = {
        "splat_lion": __version__,
        "backend": be.name,
        "backend_reason": why_chosen(be),
        **be.describe(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupy": _cupy_version(),
        "kernels": f"{kernels.kernel_dir()} ({', '.join(kernels.families())})",
    }
    checks = selftest.run(be)
    ok = all(c.ok for c in checks)
    if args.json:
        info["selftest"] = [c.__dict__ for c in checks]
        info["ok"] = ok
        print(json.dumps(info, indent=2))
        return 0 if ok else 1
    width = max(map(len, info))
    for key, value in info.items():
        if key == "backend_reason":
            continue
        if key == "backend":
            value = f"{value}  ({info['backend_reason']})"
        print(f"{key:<{width}}  {value}")
    print(f"{'self-test':<{width}}  on the {be.name} backend:")
    for c in checks:
        print(f"  {'OK  ' if c.ok else 'FAIL'} {c.name:<20} {c.detail}, {c.ms:.1f} ms")
    print("all kernels OK" if ok else "SELF-TEST FAILED: the backend computes wrong results")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splat-lion",
        description="Fit 3D Gaussian splats with a fused Lion optimizer (CuPy, or CPU fallback).",
    )
    parser.add_argument("--version", action="version", version=f"splat-lion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show the backend and device, and self-test the kernels")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
