"""Compile CUDA C source text into a host shared library (the CPU side of the runtime).

The source is compiled as C++ with `cuda_cpu.h` force-included, after two textual steps that
only adapt declarations, never logic: comments are blanked (line numbers kept) and each
`extern __shared__ T name[];` becomes a pointer to this launch's dynamic shared memory. For
every `extern "C" __global__` kernel a launch stub is appended:

    int cudacpu_launch_<name>(grid[3], block[3], shared_bytes, void** params, err, errlen)
    const char* cudacpu_signature_<name>()   e.g. "p8,p8,f4,i8"

Libraries are cached by a hash of prelude, source, options and compiler. Each cached library
carries its own checksum: a trailer after the ELF image (TRAILER, ignored by the dynamic
loader) holds the SHA-256 of the bytes before it. A library is loaded only when its trailer is
there and matches; a damaged one (truncated, empty, altered) is rebuilt, with one
KernelCacheWarning. A build writes to a private temporary file, appends the trailer, fsyncs it,
renames it into place and fsyncs the folder, so neither a concurrent process nor a crash
leaves a half-written library under the cached name. When the cache folder cannot be written
(read-only, not a folder) kernels are built in a private temporary cache, deleted at exit, with
one KernelCacheWarning saying how to fix it.

Errors are splat-lion's BackendError (CompileError): a missing or failing compiler is named
with its exit status and the fix.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

from ..errors import BackendError, ConfigError

PRELUDE = Path(__file__).with_name("cuda_cpu.h")

# Bump when the stub, flag or file scheme changes, to invalidate old cached libraries.
_BUILD_SCHEME = "2"  # 2: the checksum trailer

# A cached library ends with MAGIC + the SHA-256 (hex) of every byte before the trailer + "\n".
MAGIC = b"\nsplat-lion cuda_cpu sha256="
TRAILER = len(MAGIC) + 64 + 1

FIX_COMPILER = ("install g++ (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) "
                "or set CXX to a working C++ compiler")

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


class CompileError(BackendError):
    """A kernel does not build on the CPU: the compiler is missing or fails, or rejects the
    source (the message holds its log)."""


class KernelCacheWarning(UserWarning):
    """The kernel cache is not used as configured: a damaged library was rebuilt, or the
    cache folder cannot be written and a private temporary one is used."""


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
        raise ConfigError(f"SPLAT_LION_CPU_SANITIZE={mode!r}: the only sanitizer offered is "
                          "'address' (or unset it)")
    return mode


def _asan_loaded() -> bool:
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def compiler() -> tuple[str, str]:
    """(path, version) of the host C++ compiler: $CXX, else g++. CompileError naming it, its
    exit status and the fix when it is missing or does not run."""
    name = os.environ.get("CXX", "").strip()
    return _compiler(name or "g++", bool(name), os.environ.get("PATH"))


@functools.lru_cache(maxsize=None)
def _compiler(name: str, from_env: bool, search_path: str | None) -> tuple[str, str]:
    what = f"CXX={name}" if from_env else f"the default C++ compiler '{name}' (CXX is unset)"
    path = shutil.which(name, path=search_path)
    if path is None:
        raise CompileError(f"{what}: no such program on PATH; the CPU backend compiles its "
                           f"kernels with it: {FIX_COMPILER}")
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True,
                              errors="replace", timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"{what} ({path}) does not run ({e}): {FIX_COMPILER}") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        said = f" (its first line: {said[0][:200]!r})" if said else " and printed nothing"
        raise CompileError(f"{what} ({path}) fails: `{name} --version` "
                           f"{_status(proc.returncode)}{said}: {FIX_COMPILER}")
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return path, lines[0] if lines else "unknown"


def _status(returncode: int) -> str:
    """How a process ended, in words."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        why = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"was killed by {sig}{why}"
    return f"exited with status {returncode}"


def _log(proc: subprocess.CompletedProcess) -> str:
    """What a process printed, as a message tail; it says so when it printed nothing."""
    text = "\n".join(t.strip() for t in (proc.stderr, proc.stdout) if t and t.strip())
    return f":\n{text}" if text else " and printed nothing"


def cache_dir() -> Path:
    """The folder of cached libraries: $SPLAT_LION_CACHE_DIR/cuda_cpu, else
    $XDG_CACHE_HOME/splat_lion/cuda_cpu (~/.cache when unset). When it cannot be written, a
    private temporary folder (deleted at exit), with one KernelCacheWarning per folder."""
    root = os.environ.get("SPLAT_LION_CACHE_DIR")
    try:
        base = Path(root) if root else \
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "splat_lion"
    except (RuntimeError, KeyError):  # no home directory to put ~/.cache in
        return _usable(None)
    return _usable(str(base / "cuda_cpu"))


@functools.lru_cache(maxsize=None)
def _usable(folder: str | None) -> Path:
    """`folder` if it can be made and written, else the private cache (warning once)."""
    if folder is not None:
        d = Path(folder)
        try:
            d.mkdir(parents=True, exist_ok=True)
            check_writable(d)
            return d
        except OSError as e:
            why = e.strerror or str(e)
    else:
        why = "no home directory for ~/.cache"
    private = _private_cache()
    where = f"the kernel cache {folder}" if folder else "the kernel cache"
    warnings.warn(
        f"{where} cannot be written ({why}): CPU kernels are compiled into a private temporary "
        f"cache ({private}, deleted at exit), so every run compiles them again; make that "
        "folder writable, or set SPLAT_LION_CACHE_DIR to a writable folder",
        KernelCacheWarning, stacklevel=4)
    return private


def check_writable(d: Path) -> None:
    """Raise OSError unless a file can be created in `d` (as a build will): a real file,
    since permission bits do not tell (root, read-only mounts, ACLs)."""
    fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=d)
    os.close(fd)
    os.unlink(probe)


@functools.lru_cache(maxsize=None)
def _private_cache() -> Path:
    d = Path(tempfile.mkdtemp(prefix="splat_lion-cuda_cpu-"))  # mode 0700: this user's only
    atexit.register(shutil.rmtree, d, ignore_errors=True)  # loaded libraries stay mapped
    return d


def checksum_trailer(image: bytes) -> bytes:
    """The trailer that ends a cached library whose ELF image is `image`."""
    return MAGIC + hashlib.sha256(image).hexdigest().encode() + b"\n"


def verify(path: Path) -> str | None:
    """None when the cached library at `path` is whole (its trailer matches the bytes before
    it); else what is wrong with it ("missing" when there is no file)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if not data:
        return "empty (0 bytes)"
    if len(data) <= TRAILER or not data[-TRAILER:].startswith(MAGIC):
        return f"truncated or not written by splat-lion ({len(data)} bytes, no checksum at its end)"
    if checksum_trailer(data[:-TRAILER]) != data[-TRAILER:]:
        return f"corrupt ({len(data)} bytes, checksum mismatch)"
    return None


def _fsync_dir(d: Path) -> None:
    """Make a rename in `d` durable (where the platform can open a folder)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def build(code: str, options: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
    """Compile `code`, or find it in the cache; return the verified library's path and its
    kernel names."""
    names = kernel_names(code)
    flags = host_flags(tuple(options))
    mode = sanitize_mode()
    if mode == "address" and not _asan_loaded():
        lib = subprocess.run([compiler()[0], "-print-file-name=libasan.so"], capture_output=True,
                             text=True, errors="replace").stdout.strip()
        raise BackendError(
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
    damage = verify(lib_path)
    if damage is None:
        return lib_path, names
    if damage != "missing":
        warnings.warn(f"the cached kernel library {lib_path} is {damage}: it is rebuilt",
                      KernelCacheWarning, stacklevel=2)
    what = f"kernels {', '.join(names)}" if names else "a module without kernels"
    try:
        fd, tmp_src = tempfile.mkstemp(suffix=".cu", prefix=f"{key}.", dir=d)
    except OSError as e:
        raise BackendError(f"cannot write to the kernel cache {d} ({e.strerror or e}): make it "
                           "writable or free space there, or set SPLAT_LION_CACHE_DIR to "
                           "another folder") from None
    tmp_lib = tmp_src[: -len(".cu")] + ".so.tmp"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        cmd = [cxx, *_BASE_FLAGS, *opt_flags, "-include", str(PRELUDE), *flags, "-o", tmp_lib,
               tmp_src]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        except OSError as e:
            raise CompileError(f"the C++ compiler {cxx} does not run ({e}): {FIX_COMPILER}") \
                from None
        if proc.returncode != 0:
            quiet = not (proc.stderr.strip() or proc.stdout.strip())
            raise CompileError(
                f"CPU build of {what} failed: {cxx} {_status(proc.returncode)}{_log(proc)}"
                + (f"; is it a working C++ compiler? {FIX_COMPILER}" if quiet else "")
            )
        _seal(Path(tmp_lib), cxx)
        os.replace(tmp_lib, lib_path)
        os.replace(tmp_src, d / f"{key}.cu")  # kept beside the library for debugging
        _fsync_dir(d)
    finally:
        for p in (tmp_src, tmp_lib):
            if os.path.exists(p):
                os.unlink(p)
    return lib_path, names


def _seal(lib: Path, cxx: str) -> None:
    """Append the checksum trailer to a freshly built library and flush it to disk."""
    with open(lib, "r+b") as f:
        image = f.read()
        if not image:
            raise CompileError(f"{cxx} exited with status 0 but wrote an empty library: "
                               f"{FIX_COMPILER}")
        f.write(checksum_trailer(image))
        f.flush()
        os.fsync(f.fileno())


@functools.lru_cache(maxsize=None)
def load_library(path: Path) -> ctypes.CDLL:
    """The library `build` returned, loaded (once per process)."""
    try:
        return ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
    except OSError as e:
        raise CompileError(f"cannot load the CPU kernel library {path}: {e}; delete it to have it "
                           "rebuilt, or report this with the output of `splat-lion info`") from None
