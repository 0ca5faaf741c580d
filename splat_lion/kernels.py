"""The one place that loads `kernels/*.cu`, for CuPy on a GPU and for the CPU runtime alike.

    k = kernels.function("selftest", "selftest_saxpy")            # compiled once, cached
    k = kernels.function("rasterize", "rasterize_bwd", {"SPLAT_LION_WARP_SUM_ON_CPU": 1})

Each source is assembled the same way for both backends: `#include "common.cuh"` is replaced
by the header's text (CuPy's disk cache keys on the source string only, not on headers), and
`#line` directives make compiler errors point at the real file and line. Compile-time choices
are `-D` defines; the launch geometry every family shares (TILE, BLOCK) is defined here,
once, and passed to every compilation. Modules are cached per (backend, file, options), and
kernel handles per (backend, file, options, kernel): on CuPy `get_function` builds a new
RawKernel each call (~10-30 us), so a launch must not call it. Importing compiles nothing.
A new `kernels/foo.cu` needs no change here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from . import backend as _backend

# Launch geometry shared by Python and every kernel: defined here only, passed as -D.
TILE = 16  # tile side in pixels (projection's tile rectangles, binning, rasterisation)
BLOCK = 256  # threads per block of the 1-D kernels (optimizers, projection, binning)
GEOMETRY = {"BLOCK": BLOCK, "TILE": TILE}


def num_tiles(width: int, height: int) -> tuple[int, int]:
    """(tiles_x, tiles_y): the grid of TILE x TILE tiles covering a width x height image."""
    return -(-width // TILE), -(-height // TILE)

# Options every kernel is compiled with, on NVRTC and (translated) on the CPU.
FIXED_OPTIONS: tuple[str, ...] = ("--std=c++17", *(f"-D{k}={v}" for k, v in GEOMETRY.items()))

_INCLUDE_COMMON = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"common\.cuh"[ \t]*$', re.MULTILINE)
_DEFINE_NAME = re.compile(r"^[A-Za-z_]\w*$")
_DEFINE_VALUE = re.compile(r"^[\w.+-]+$")

_modules: dict[tuple, object] = {}  # (backend, path, options) -> RawModule
_functions: dict[tuple, object] = {}  # (backend, path, options, kernel) -> RawKernel


def kernel_dir() -> Path:
    """Folder of the .cu sources: inside the installed package, or `kernels/` in a checkout."""
    here = Path(__file__).resolve().parent
    for d in (here / "_kernels", here.parent / "kernels"):
        if (d / "common.cuh").is_file():
            return d
    raise FileNotFoundError(
        f"kernel sources not found: looked in {here / '_kernels'} and {here.parent / 'kernels'}; "
        "reinstall splat-lion (`pip install splat-lion`) or run from a full checkout"
    )


def families() -> list[str]:
    """Every kernel family: the stem of each `kernels/*.cu`."""
    return sorted(p.stem for p in kernel_dir().glob("*.cu"))


def family_path(family: str) -> Path:
    path = kernel_dir() / f"{family}.cu"
    if not path.is_file():
        raise ValueError(f"no kernel family '{family}': known are {', '.join(families())}")
    return path


def _display_name(path: Path) -> str:
    path = path.resolve()
    if path.parent == kernel_dir().resolve():
        return f"kernels/{path.name}"
    return str(path)


def source(path: Path | str) -> str:
    """The text compiled for `path`: common.cuh pasted in, `#line` directives added."""
    path = Path(path)
    name = _display_name(path)
    text = path.read_text()
    common = kernel_dir() / "common.cuh"

    def paste(m: re.Match) -> str:
        line = text.count("\n", 0, m.start()) + 1
        return (f'#line 1 "kernels/common.cuh"\n{common.read_text()}\n'
                f'#line {line + 1} "{name}"')

    return f'#line 1 "{name}"\n' + _INCLUDE_COMMON.sub(paste, text)


def options(defines: Mapping[str, int | str] | None = None) -> tuple[str, ...]:
    """FIXED_OPTIONS plus one `-DNAME=VALUE` per define, in sorted order."""
    out = list(FIXED_OPTIONS)
    for key in sorted(defines or {}):
        if key in GEOMETRY:
            raise ValueError(f"define {key}: the launch geometry is fixed in splat_lion/kernels.py "
                             f"({key} = {GEOMETRY[key]}); change it there")
        value = defines[key]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"define {key}={value!r}: value must be an int or a str")
        if not _DEFINE_NAME.match(key) or not _DEFINE_VALUE.match(str(value)):
            raise ValueError(f"define {key}={value!r} is not a plain NAME=VALUE pair")
        out.append(f"-D{key}={value}")
    return tuple(out)


def module_from_file(path: Path | str, defines: Mapping[str, int | str] | None = None,
                     backend: _backend.Backend | None = None):
    """The compiled module of any .cu file (tests use this for their own kernels)."""
    be = backend or _backend.get_backend()
    path = Path(path).resolve()
    opts = options(defines)
    key = (be.name, str(path), opts)
    if key not in _modules:
        _modules[key] = be.raw_module(source(path), opts)
    return _modules[key]


def module(family: str, defines: Mapping[str, int | str] | None = None,
           backend: _backend.Backend | None = None):
    """The compiled module of `kernels/<family>.cu`."""
    return module_from_file(family_path(family), defines, backend)


def function_from_file(path: Path | str, name: str,
                       defines: Mapping[str, int | str] | None = None,
                       backend: _backend.Backend | None = None):
    """Kernel `name` of any .cu file, its handle made once and then reused."""
    be = backend or _backend.get_backend()
    path = Path(path).resolve()
    key = (be.name, str(path), options(defines), name)
    if key not in _functions:
        _functions[key] = module_from_file(path, defines, be).get_function(name)
    return _functions[key]


def function(family: str, name: str, defines: Mapping[str, int | str] | None = None,
             backend: _backend.Backend | None = None):
    """One kernel of a family, ready for `backend.launch(kernel, grid, block, args)`; the
    same object on every call with the same backend, defines and name. Found again by
    family name without resolving the file's path (tens of microseconds a launch)."""
    be = backend or _backend.get_backend()
    key = ("family", be.name, family, tuple(sorted((defines or {}).items())), name)
    handle = _functions.get(key)
    if handle is None:
        handle = _functions[key] = function_from_file(family_path(family), name, defines, be)
    return handle
