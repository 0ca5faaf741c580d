"""Compile CUDA C source text into a host shared library (the CPU side of the runtime).

The source is compiled as C++ with `cuda_cpu.h` force-included, after two textual steps that
only adapt declarations, never logic: comments are blanked (line numbers kept) and each
`extern __shared__ T name[];` becomes a pointer to this launch's dynamic shared memory. For
every `extern "C" __global__` kernel a launch stub is appended:

    int cudacpu_launch_<name>(grid[3], block[3], shared_bytes, void** params, err, errlen)
    const char* cudacpu_signature_<name>()   e.g. "p8,p8,f4,i8"

Libraries are cached by a hash of prelude, source, options and compiler; a build writes to a
private temporary file and renames it into place, so concurrent processes never see a
half-written library.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

PRELUDE = Path(__file__).with_name("cuda_cpu.h")

# Bump when the stub or flag scheme changes, to invalidate old cached libraries.
_BUILD_SCHEME = "1"

_BASE_FLAGS = ("-x", "c++", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-fvisibility=hidden")
if platform.machine() in ("x86_64", "AMD64"):
    _BASE_FLAGS += ("-mtls-dialect=gnu2",)  # TLS descriptors: threadIdx & co. without a libc call
_SANITIZE_FLAGS = ("-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer")

# NVRTC options with no meaning on the CPU; accepted and ignored so one options tuple serves both.
_IGNORED_OPTIONS = (
    "--std=", "-std=", "--gpu-architecture", "-arch", "--use_fast_math", "-use_fast_math",
    "-lineinfo", "--generate-line-info", "--fmad", "-fmad", "--device-debug", "-G",
    "--extra-device-vectorization", "-default-device", "--dopt", "-dopt", "--restrict",
    "-restrict", "-w", "--disable-warnings", "-Werror", "--Werror", "-maxrregcount",
    "--maxrregcount", "-ftz", "--ftz", "-prec-div", "--prec-div", "-prec-sqrt", "--prec-sqrt",
    "-Xptxas", "--ptxas-options", "--device-int128",
)

_TOKENS = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL
)
_KERNEL = re.compile(
    r'(extern\s+"C"\s+)?__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
    r"(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\("
)
_EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)"
    r"([A-Za-z_][\w:<>, ]*?)\s*((?:__align__\s*\(\s*\d+\s*\)\s*)?)"
    r"\b([A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


class CompileError(RuntimeError):
    """The host compiler rejected a kernel source; the message holds its log."""


def strip_comments(code: str) -> str:
    """Blank out comments, keeping string literals and every newline (so lines still match)."""

    def blank(m: re.Match) -> str:
        text = m.group(0)
        if text.startswith(("//", "/*")):
            return re.sub(r"[^\n]", " ", text)
        return text

    return _TOKENS.sub(blank, code)


def kernel_names(code: str) -> list[str]:
    """Names of the `extern "C" __global__` kernels in `code`, in order of appearance."""
    names = []
    for m in _KERNEL.finditer(strip_comments(code)):
        if not m.group(1):
            raise CompileError(
                f"kernel '{m.group(2)}' is not declared extern \"C\": write "
                f"`extern \"C\" __global__ void {m.group(2)}(...)` so both CuPy and the CPU "
                "runtime find it by name"
            )
        names.append(m.group(2))
    return names


def _line_of(code: str, pos: int) -> int:
    return code.count("\n", 0, pos) + 1


def rewrite_extern_shared(code: str) -> str:
    """`extern __shared__ T x[];` -> `T* const x = (T*)<this block's dynamic shared memory>;`."""

    def sub(m: re.Match) -> str:
        depth = code.count("{", 0, m.start()) - code.count("}", 0, m.start())
        if depth <= 0:
            raise CompileError(
                f"line {_line_of(code, m.start())}: declare `extern __shared__ ... "
                f"{m.group(4)}[];` inside the kernel body (the CPU runtime binds it per block)"
            )
        type_ = m.group(2).strip()
        return f"{type_}* const {m.group(4)} = reinterpret_cast<{type_}*>(cudacpu_dynamic_shared());"

    return _EXTERN_SHARED.sub(sub, code)


def launch_stubs(names: list[str]) -> str:
    out = ['\n#line 1 "<cuda_cpu launch stubs>"']
    for n in names:
        out.append(
            f'extern "C" __attribute__((visibility("default"))) const char* '
            f"cudacpu_signature_{n}(void) {{ static const std::string s = "
            f"cudacpu::KernelTraits<decltype(&{n})>::signature(); return s.c_str(); }}\n"
            f'extern "C" __attribute__((visibility("default"))) int cudacpu_launch_{n}('
            "const unsigned* grid, const unsigned* block, unsigned long long shared_bytes, "
            "void** params, char* err, size_t errlen) { "
            f'return cudacpu::launch<&{n}>("{n}", grid, block, shared_bytes, params, err, errlen); }}'
        )
    return "\n".join(out) + "\n"


def host_flags(options: tuple[str, ...]) -> list[str]:
    """Translate CuPy/NVRTC-style options into host compiler flags."""
    flags = []
    for opt in options:
        if not isinstance(opt, str):
            raise TypeError(f"compile option {opt!r} is a {type(opt).__name__}, expected str")
        if opt.startswith(("-D", "-U", "-I")) and len(opt) > 2:
            flags.append(opt)
        elif opt.startswith("--define-macro="):
            flags.append("-D" + opt.split("=", 1)[1])
        elif opt.startswith("--include-path="):
            flags.append("-I" + opt.split("=", 1)[1])
        elif opt.startswith(_IGNORED_OPTIONS):
            continue
        else:
            raise ValueError(
                f"compile option {opt!r} is not understood by the CPU runtime: use -DNAME=VALUE, "
                "-UNAME, -IDIR or an NVRTC option it ignores (e.g. --std=c++17)"
            )
    return flags


def sanitize_mode() -> str | None:
    mode = os.environ.get("SPLAT_LION_CPU_SANITIZE", "").strip().lower()
    if mode in ("", "0", "none", "off"):
        return None
    if mode != "address":
        raise ValueError(f"SPLAT_LION_CPU_SANITIZE={mode!r}: the only sanitizer offered is 'address'")
    return mode


def _asan_loaded() -> bool:
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def compiler() -> tuple[str, str]:
    """(path, version) of the host C++ compiler: $CXX or g++."""
    name = os.environ.get("CXX", "g++")
    path = shutil.which(name)
    if path is None:
        raise CompileError(
            f"no C++ compiler '{name}' on PATH: the CPU backend compiles kernels with it. "
            "Install g++ (Debian/Ubuntu: apt-get install g++) or set CXX."
        )
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return path, version.splitlines()[0] if version else "unknown"


def cache_dir() -> Path:
    root = os.environ.get("SPLAT_LION_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "splat_lion"
    d = base / "cuda_cpu"
    d.mkdir(parents=True, exist_ok=True)
    return d


def build(code: str, options: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
    """Compile `code`; return the cached library's path and its kernel names."""
    names = kernel_names(code)
    flags = host_flags(tuple(options))
    mode = sanitize_mode()
    if mode == "address" and not _asan_loaded():
        lib = subprocess.run([compiler()[0], "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        raise RuntimeError(
            "SPLAT_LION_CPU_SANITIZE=address needs AddressSanitizer's runtime loaded first: run "
            f"python as `LD_PRELOAD={lib} ASAN_OPTIONS=detect_leaks=0 python ...`"
        )
    cxx, version = compiler()
    opt_flags = list(_SANITIZE_FLAGS if mode else ("-O2",))
    source = rewrite_extern_shared(strip_comments(code)) + launch_stubs(names)
    key = hashlib.sha256(
        "\0".join([_BUILD_SCHEME, PRELUDE.read_text(), source, version, *flags, *opt_flags]).encode()
    ).hexdigest()[:32]
    d = cache_dir()
    lib_path = d / f"{key}.so"
    if lib_path.exists():
        return lib_path, names
    fd, tmp_src = tempfile.mkstemp(suffix=".cu", prefix=f"{key}.", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write(source)
    tmp_lib = tmp_src[: -len(".cu")] + ".so.tmp"
    cmd = [cxx, *_BASE_FLAGS, *opt_flags, "-include", str(PRELUDE), *flags, "-o", tmp_lib, tmp_src]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        if proc.returncode != 0:
            raise CompileError(
                f"CPU build of kernels {', '.join(names) or '(none)'} failed:\n{proc.stderr.strip()}"
            )
        os.replace(tmp_lib, lib_path)
        os.replace(tmp_src, d / f"{key}.cu")  # kept beside the library for debugging
    finally:
        for p in (tmp_src, tmp_lib):
            if os.path.exists(p):
                os.unlink(p)
    return lib_path, names


@functools.lru_cache(maxsize=None)
def load_library(path: Path) -> ctypes.CDLL:
    return ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
