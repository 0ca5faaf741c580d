"""The `splat-lion` command.

    splat-lion info [SCENE] [--json]   backend, device, compilers, a self-test kernel run,
                                       and a description of SCENE (a .ply or a bundled name)
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


def describe_scene(source: str) -> dict:
    """Splat count, SH degree, bounds, opacity and scale statistics, and the bytes of the
    parameters and of each optimizer's state for a scene."""
    from pathlib import Path

    from . import scenes
    from .backend import get_backend
    from .layout import Layout
    from .ply import load_ply

    path = Path(source) if source.endswith(".ply") or Path(source).exists() else scenes.path(source)
    g = load_ply(path, backend=get_backend("cpu"))
    params = Layout.gaussians(g.count, g.sh_degree).nbytes()
    sigma = g.scale_values()
    return {
        "file": str(path),
        "splats": g.count,
        "sh_degree": g.sh_degree,
        "bounds_min": [round(float(v), 4) for v in g.means.min(0)] if g.count else None,
        "bounds_max": [round(float(v), 4) for v in g.means.max(0)] if g.count else None,
        "extent": round(g.extent(), 4),
        "opacity_median": round(float(np.median(g.opacity_values())), 4) if g.count else None,
        "sigma_median": round(float(np.median(sigma)), 5) if g.count else None,
        "sigma_p99": round(float(np.percentile(sigma, 99)), 5) if g.count else None,
        "extra_properties": sorted(g.extra),
        # exact: one float32 buffer; Lion keeps 1 (bf16: half of one), Adam 2
        "bytes_params": params,
        "bytes_state_lion": params,
        "bytes_state_lion_bf16": params // 2,
        "bytes_state_adam": 2 * params,
    }


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
    scene = None
    if args.scene:  # first, so a bad argument fails fast
        from .ply import PlyError

        try:
            scene = describe_scene(args.scene)
        except (PlyError, ValueError) as e:
            print(f"splat-lion: {e}", file=sys.stderr)
            return 2
    checks = selftest.run(be)
    ok = all(c.ok for c in checks)
    if args.json:
        info["selftest"] = [c.__dict__ for c in checks]
        info["ok"] = ok
        info["scene"] = scene
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
    if scene:
        mb = 1 / 2**20
        print(f"\nscene {scene['file']}")
        print(f"  {scene['splats']:,} splats, SH degree {scene['sh_degree']}, bounds "
              f"{scene['bounds_min']} .. {scene['bounds_max']}, extent {scene['extent']}")
        print(f"  opacity median {scene['opacity_median']}, sigma median {scene['sigma_median']}"
              f" (99th percentile {scene['sigma_p99']})"
              + (f", extra properties: {', '.join(scene['extra_properties'])}"
                 if scene["extra_properties"] else ""))
        print(f"  parameters {scene['bytes_params'] * mb:.2f} MiB; optimizer state: Lion "
              f"{scene['bytes_state_lion'] * mb:.2f} MiB, Lion bf16 "
              f"{scene['bytes_state_lion_bf16'] * mb:.2f} MiB, Adam "
              f"{scene['bytes_state_adam'] * mb:.2f} MiB")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splat-lion",
        description="Fit 3D Gaussian splats with a fused Lion optimizer (CuPy, or CPU fallback).",
    )
    parser.add_argument("--version", action="version", version=f"splat-lion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="show the backend and device, self-test the kernels, "
                          "and describe a scene")
    info.add_argument("scene", nargs="?", default=None,
                      help="a 3DGS .ply file, or a bundled scene name (shapes, planet, knot)")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
