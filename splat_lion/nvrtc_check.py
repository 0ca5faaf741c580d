"""Compile every CUDA kernel with NVRTC, the compiler CuPy uses, on a machine without a GPU.

    python -m splat_lion.nvrtc_check            # kernels/, tests/kernels/, benchmarks/kernels/
    python -m splat_lion.nvrtc_check kernels/lion.cu --arch sm_80
    python -m splat_lion.nvrtc_check --resources --json nvrtc.json

Each file is compiled exactly as the GPU path compiles it (`kernels.source(path)` with
`kernels.options()`, plus what CuPy adds to them: `cupy_options`), down to a CUBIN for each
architecture (sm_75, sm_80, sm_90 by default), so code generation for that GPU really runs.
A result fails on a non-zero NVRTC status or on ANY text in the program log: NVRTC prints
warnings only there, so warnings fail too (DESIGN §3).

What CuPy 14 adds to a RawModule's options before NVRTC sees them (cupy/_core/core.pyx
`assemble_cupy_compiler_options`, cupy/cuda/compiler.py `_compile_with_cache_cuda` and
`_compile_using_nvrtc_no_warning`, as of v14.2.0): `--std=c++17` when the options name no
standard, `-ftz=true` (subnormals flush to zero), `-arch=sm_XX` (a CUBIN; `-arch=compute_XX`,
PTX, past NVRTC's newest GPU or with CUPY_COMPILE_WITH_PTX=1) and
`--device-as-default-execution-space`. NVRTC's own defaults stay, among them `--fmad=true`
(a*b+c contracts to an FMA). CuPy also adds include folders (its bundled CCCL, its own
headers, the CUDA headers); they are left out here because a kernel source includes nothing
once common.cuh is pasted in, and leaving them out needs neither CuPy nor the CUDA headers
installed. Environment switches (CUPY_CUDA_COMPILE_WITH_DEBUG, CUPY_NVRTC_USE_PCH) are off
by default and not modelled.

`--resources` also reads what each kernel costs on sm_90: NVRTC -> PTX (compute_90), then
`ptxas -v -arch=sm_90` (registers, spill stores/loads, shared memory, stack per kernel). With
no `ptxas` (looked for on PATH, in $CUDA_HOME/bin, /usr/local/cuda/bin), or when it rejects
NVRTC's PTX (a toolkit older than NVRTC), the ptxas built into NVRTC reports instead
(`--ptxas-options=-v`). Any spilled byte and any byte of local memory (a stack frame: an
array indexed at run time, a large local) fails: keep both at 0 (DESIGN §3). It also counts
each kernel's SASS instructions in that sm_90 CUBIN with `nvdisasm` (on PATH, in the CUDA
toolkit, or from pip's `nvidia-cuda-nvdisasm`): the measure of a kernel's overhead when no GPU
is at hand. Without a disassembler the counts are left out, with a note.

NVRTC comes from the pip package `nvidia-cuda-nvrtc-cu12` and is loaded with ctypes;
SPLAT_LION_NVRTC=/path/to/libnvrtc.so.12 points at another copy. Exit status: 0 all OK,
1 any failure, 2 NVRTC not found.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import kernels

DEFAULT_ARCHS: tuple[str, ...] = ("sm_75", "sm_80", "sm_90")
# Architecture the resource report is made for (ptxas -v -arch=...).
RESOURCE_ARCH = "sm_90"
ENV_VAR = "SPLAT_LION_NVRTC"
INSTALL_HINT = "pip install nvidia-cuda-nvrtc-cu12"

_ARCH = re.compile(r"^sm_\d+[af]?$")
_VIRTUAL_ARCH = re.compile(r"^compute_\d+[af]?$")

# What CuPy 14 appends to a RawModule's options after ours (see the module docstring), around
# the architecture option: before it, then after it.
CUPY_OPTIONS_BEFORE_ARCH: tuple[str, ...] = ("-ftz=true",)
CUPY_OPTIONS_AFTER_ARCH: tuple[str, ...] = ("--device-as-default-execution-space",)
CUPY_DEFAULT_STD = "--std=c++17"


def cupy_options(options: Sequence[str], arch: str) -> tuple[str, ...]:
    """The options NVRTC receives when CuPy 14 compiles a RawModule built with `options` for
    `arch` ("sm_90": a CUBIN; "compute_90": PTX), include folders left out."""
    if not (_ARCH.match(arch) or _VIRTUAL_ARCH.match(arch)):
        raise ValueError(f"arch {arch!r}: expected 'sm_XX' (CUBIN) or 'compute_XX' (PTX)")
    std = () if any("-std=" in o for o in options) else (CUPY_DEFAULT_STD,)
    return (*options, *std, *CUPY_OPTIONS_BEFORE_ARCH, f"-arch={arch}", *CUPY_OPTIONS_AFTER_ARCH)


# -- finding and loading NVRTC --------------------------------------------------------------

def find_nvrtc() -> Path | None:
    """Path of libnvrtc from the pip package `nvidia-cuda-nvrtc-cu12` (or $SPLAT_LION_NVRTC)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit)
        return path if path.is_file() else None
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except (ImportError, ValueError):  # no `nvidia` namespace package at all
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    # A namespace package: several folders may contribute; take the first that holds the lib.
    patterns = ("lib/libnvrtc.so.12", "lib/libnvrtc.so.*", "bin/nvrtc64_*.dll")
    for folder in spec.submodule_search_locations:
        for pattern in patterns:
            for path in sorted(Path(folder).glob(pattern)):
                if "builtins" not in path.name and path.is_file():
                    return path
    return None


class _Nvrtc:
    """The few NVRTC C functions used here, with their ctypes signatures."""

    def __init__(self, path: Path):
        self.path = path
        lib = ctypes.CDLL(str(path))
        P = ctypes.c_void_p  # nvrtcProgram
        size_p = ctypes.POINTER(ctypes.c_size_t)
        strings = ctypes.POINTER(ctypes.c_char_p)
        sigs = {
            "nvrtcVersion": [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
            "nvrtcCreateProgram": [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_int, strings, strings],
            "nvrtcCompileProgram": [P, ctypes.c_int, strings],
            "nvrtcDestroyProgram": [ctypes.POINTER(P)],
            "nvrtcGetProgramLogSize": [P, size_p],
            "nvrtcGetProgramLog": [P, ctypes.c_char_p],
            "nvrtcGetCUBINSize": [P, size_p],
            "nvrtcGetCUBIN": [P, ctypes.c_char_p],
            "nvrtcGetPTXSize": [P, size_p],
            "nvrtcGetPTX": [P, ctypes.c_char_p],
        }
        for name, argtypes in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = ctypes.c_int  # nvrtcResult
        lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        self.lib = lib

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.call("nvrtcVersion", ctypes.byref(major), ctypes.byref(minor))
        return major.value, minor.value

    def error_string(self, status: int) -> str:
        text = self.lib.nvrtcGetErrorString(status)
        return text.decode() if text else f"nvrtcResult {status}"

    def call(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise RuntimeError(f"{name} failed: {self.error_string(status)}")


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> _Nvrtc:
    return _Nvrtc(path)


def load_nvrtc() -> _Nvrtc:
    """The loaded NVRTC library, or a RuntimeError that says how to install it."""
    path = find_nvrtc()
    if path is None:
        where = (f"${ENV_VAR}={os.environ[ENV_VAR]} is not a file" if os.environ.get(ENV_VAR)
                 else "the Python package nvidia.cuda_nvrtc is not installed")
        raise RuntimeError(f"NVRTC not found ({where}): {INSTALL_HINT}, "
                           f"or set {ENV_VAR} to the path of libnvrtc.so.12")
    try:
        return _load(path)
    except OSError as e:
        raise RuntimeError(f"cannot load NVRTC from {path}: {e}; reinstall it: "
                           f"{INSTALL_HINT} --force-reinstall") from e


def nvrtc_version() -> str:
    major, minor = load_nvrtc().version()
    return f"{major}.{minor}"


# -- compiling one source -------------------------------------------------------------------

@dataclass(frozen=True)
class CompileResult:
    # Display name of the source (`kernels/lion.cu`), as NVRTC saw it.
    name: str
    # Target, e.g. "sm_90".
    arch: str
    # True when NVRTC returned success AND printed nothing (no error, no warning).
    ok: bool
    # NVRTC's status, e.g. "NVRTC_SUCCESS" or "NVRTC_ERROR_COMPILATION".
    status: str
    # The program log, verbatim ("" when clean).
    log: str
    # Size of the CUBIN in bytes; 0 when compilation failed.
    cubin_bytes: int
    # The file compiled, when it came from a file (absolute path).
    path: str | None = None


def _compile(code: str, name: str, options: Sequence[str], want: str) -> tuple[int, str, bytes]:
    """One NVRTC compilation: (status, log, output), output the CUBIN or PTX (`want`)."""
    nv = load_nvrtc()
    prog = ctypes.c_void_p()
    nv.call("nvrtcCreateProgram", ctypes.byref(prog), code.encode(), name.encode(), 0, None, None)
    try:
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        status = nv.lib.nvrtcCompileProgram(prog, len(options), opts)

        size = ctypes.c_size_t()
        nv.call("nvrtcGetProgramLogSize", prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        nv.call("nvrtcGetProgramLog", prog, buf)
        log = buf.value.decode(errors="replace")

        out = b""
        if status == 0:
            get_size, get = ("nvrtcGetCUBINSize", "nvrtcGetCUBIN") if want == "cubin" else \
                            ("nvrtcGetPTXSize", "nvrtcGetPTX")
            nv.call(get_size, prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            nv.call(get, prog, buf)
            out = buf.raw
        return status, log, out
    finally:
        nv.call("nvrtcDestroyProgram", ctypes.byref(prog))


def compile_ptx(code: str, name: str, options: tuple[str, ...],
                virtual_arch: str = "compute_" + RESOURCE_ARCH.removeprefix("sm_")) -> str:
    """The PTX CuPy's NVRTC makes of `code` for `virtual_arch` ("compute_90"); a RuntimeError
    with NVRTC's log when it does not compile."""
    status, log, ptx = _compile(code, name, cupy_options(options, virtual_arch), "ptx")
    if status != 0:
        raise RuntimeError(f"{name}: NVRTC {load_nvrtc().error_string(status)}:\n{log}")
    return ptx.rstrip(b"\0").decode()


def _check_arch(arch: str) -> None:
    if not _ARCH.match(arch):
        raise ValueError(f"arch {arch!r}: expected a real GPU architecture like 'sm_80'")


def compile_source(code: str, name: str, options: tuple[str, ...], arch: str) -> CompileResult:
    """Compile `code` to a CUBIN for `arch` ("sm_90") as CuPy does (`cupy_options`); fail on
    any error or any log text."""
    _check_arch(arch)
    status, log, cubin = _compile(code, name, cupy_options(options, arch), "cubin")
    return CompileResult(
        name=name, arch=arch, ok=status == 0 and not log.strip(),
        status=load_nvrtc().error_string(status), log=log, cubin_bytes=len(cubin))


# -- which files ----------------------------------------------------------------------------

def checkout_root() -> Path | None:
    """The checkout holding `kernels/`, or None for an installed package."""
    kdir = kernels.kernel_dir()
    return kdir.parent if kdir.name == "kernels" else None


# Folders of the checkout whose kernels are compiled too (tests and benchmarks launch them).
CHECKOUT_KERNEL_DIRS = ("tests/kernels", "benchmarks/kernels")


def default_paths() -> list[Path]:
    """Every `kernels/*.cu`, then those in CHECKOUT_KERNEL_DIRS of the checkout (if any)."""
    paths = sorted(kernels.kernel_dir().glob("*.cu"))
    root = checkout_root()
    for sub in CHECKOUT_KERNEL_DIRS if root is not None else ():
        paths += sorted((root / sub).glob("*.cu"))
    return [p.resolve() for p in paths]


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.cu"))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such .cu file or folder")
    return [p.resolve() for p in out]


def display_name(path: Path) -> str:
    """`kernels/lion.cu`, `tests/kernels/warp.cu`: relative to the checkout where possible."""
    path = path.resolve()
    if path.parent == kernels.kernel_dir().resolve():
        return f"kernels/{path.name}"
    root = checkout_root()
    if root is not None and path.is_relative_to(root.resolve()):
        return str(path.relative_to(root.resolve()))
    return str(path)


def _jobs(jobs: int | None, n: int) -> int:
    return max(1, min(n, jobs or min(8, os.cpu_count() or 1)))


def check(paths: Iterable[Path | str] | None = None, archs: Sequence[str] = DEFAULT_ARCHS,
          jobs: int | None = None) -> list[CompileResult]:
    """Compile each file for each arch, as the GPU path does; one CompileResult per pair.

    paths: .cu files or folders of them; default `default_paths()`. NVRTC is thread safe and
    ctypes releases the GIL, so compilations run on `jobs` threads (default: up to 8).
    """
    files = default_paths() if paths is None else _expand(paths)
    for arch in archs:
        _check_arch(arch)
    load_nvrtc()  # fail once, clearly, before any thread starts
    opts = kernels.options()

    def one(item: tuple[Path, str]) -> CompileResult:
        path, arch = item
        result = compile_source(kernels.source(path), display_name(path), opts, arch)
        return dataclasses.replace(result, path=str(path))

    work = [(p, a) for p in files for a in archs]
    with ThreadPoolExecutor(_jobs(jobs, len(work))) as pool:
        return list(pool.map(one, work))


# -- resources: registers, spills, shared memory --------------------------------------------

@dataclass(frozen=True)
class KernelResources:
    # Mangled function name as ptxas prints it (extern "C" kernels keep their plain name).
    function: str
    # True for a __global__ entry point, False for a non-inlined device function.
    entry: bool
    registers: int | None
    spill_store_bytes: int
    spill_load_bytes: int
    stack_bytes: int
    # Static shared memory of the kernel in bytes (dynamic shared memory is not counted).
    shared_bytes: int
    # SASS instructions of the kernel in the CUBIN (the device functions it calls included:
    # each kernel holds its own copy; the padding after its end not); None without a
    # disassembler, and for device functions (counted in their callers).
    sass_instructions: int | None = None


@dataclass(frozen=True)
class ResourceReport:
    name: str
    arch: str
    # What produced the numbers, e.g. "ptxas 13.0.88 (/usr/local/bin/ptxas)".
    tool: str
    # False on a compile/ptxas failure, any spilled byte or any byte of stack (local memory).
    ok: bool
    functions: list[KernelResources] = field(default_factory=list)
    # ptxas's verbose output, or the error log on failure.
    log: str = ""
    # Why that tool was used, or what failed (e.g. "no ptxas found ...").
    note: str = ""
    path: str | None = None
    # What counted the SASS instructions ("nvdisasm 13.5.37 (/path)"), or "" when nothing did.
    sass_tool: str = ""


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(text: str) -> list[KernelResources]:
    """Per-function resources from `ptxas -v` output.

    ptxas prints, per entry function:
        Compiling entry function 'k' for 'sm_90'
        Function properties for k
            0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        Used 10 registers, used 1 barriers, 128 bytes smem, 380 bytes cmem[0]
    and a "Function properties" block (no "Used" line) per non-inlined device function.
    """
    found: dict[str, dict] = {}
    entries: set[str] = set()
    current = props = None  # entry being compiled; function whose properties come next
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            current = props = m.group(1)
            entries.add(current)
            found.setdefault(current, {})
        elif m := _PROPS.search(line):
            props = m.group(1)
            found.setdefault(props, {})
        elif (m := _FRAME.search(line)) and props is not None:
            found[props].update(stack=int(m.group(1)), st=int(m.group(2)), ld=int(m.group(3)))
        elif (m := _USED.search(line)) and current is not None:
            smem = _SMEM.search(line)
            found[current].update(regs=int(m.group(1)), smem=int(smem.group(1)) if smem else 0)
    return [KernelResources(function=name, entry=name in entries, registers=v.get("regs"),
                            spill_store_bytes=v.get("st", 0), spill_load_bytes=v.get("ld", 0),
                            stack_bytes=v.get("stack", 0), shared_bytes=v.get("smem", 0))
            for name, v in found.items()]


def find_ptxas() -> Path | None:
    """The CUDA toolkit's ptxas: on PATH, else under $CUDA_HOME or /usr/local/cuda."""
    found = shutil.which("ptxas")
    if found:
        return Path(found)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "ptxas").is_file():
            return Path(home) / "bin" / "ptxas"
    return None


def _ptxas_version(ptxas: Path) -> str:
    try:
        out = subprocess.run([str(ptxas), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    m = re.search(r"V(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else "?"


def _report(name: str, arch: str, tool: str, text: str, note: str,
            cubin: bytes = b"") -> ResourceReport:
    funcs = parse_ptxas(text)
    spilling = [f.function for f in funcs if f.spill_store_bytes or f.spill_load_bytes]
    stacked = [f.function for f in funcs if f.stack_bytes]
    problems = [note] if note else []
    if spilling:
        problems.append(f"spills in {', '.join(spilling)}: keep them at 0 (DESIGN §3)")
    if stacked:
        problems.append(f"local memory (stack frame) in {', '.join(stacked)}: keep it at 0 "
                        "(DESIGN §3; an array indexed at run time, e.g. by a loop that does "
                        "not unroll)")
    sass_tool = ""
    if cubin:
        counts, sass_tool, sass_note = count_sass(cubin)
        if sass_note:
            problems.append(sass_note)
        funcs = [dataclasses.replace(f, sass_instructions=counts.get(f.function)) for f in funcs]
    return ResourceReport(name=name, arch=arch, tool=tool, ok=not spilling and not stacked,
                          functions=funcs, log=text, note="; ".join(problems),
                          sass_tool=sass_tool)


# -- SASS instruction counts ----------------------------------------------------------------

NVDISASM_HINT = "pip install nvidia-cuda-nvdisasm"
_SECTION = re.compile(r"^\s*\.section\s+\.text\.([^,\s]+)")
_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+([^;]*?)\s*;")
_LABEL = re.compile(r"^\s*(\.L\w+):")


def find_nvdisasm() -> Path | None:
    """nvdisasm: on PATH, else in the CUDA toolkit ($CUDA_HOME, /usr/local/cuda), else from
    pip's nvidia-cuda-nvdisasm (nvidia/<cuXX or cuda_nvdisasm>/bin/nvdisasm)."""
    found = shutil.which("nvdisasm")
    if found:
        return Path(found)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvdisasm").is_file():
            return Path(home) / "bin" / "nvdisasm"
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(Path(folder).glob("*/bin/nvdisasm")):
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def parse_sass(text: str) -> dict[str, int]:
    """Instructions per kernel in `nvdisasm -c` output: the lines `/*0a40*/ FADD R1, R2, R3 ;`
    of each `.text.<kernel>` section (its subroutines included), less the padding after the
    kernel's end: trailing NOPs and the branch-to-itself that closes the code."""
    sections: dict[str, list[tuple[str | None, str]]] = {}
    current, label = None, None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            current, label = m.group(1), None
            sections[current] = []
        elif current is None:
            continue
        elif m := _LABEL.match(line):
            label = m.group(1)
        elif m := _INSTRUCTION.match(line):
            sections[current].append((label, m.group(1)))
            label = None
    counts = {}
    for kernel, instructions in sections.items():
        while instructions and instructions[-1][1] == "NOP":
            instructions.pop()
        if instructions:  # `.L_x_9: BRA `(.L_x_9)`: the end marker, never executed
            label, text_ = instructions[-1]
            if label and re.fullmatch(rf"BRA\s+`\({re.escape(label)}\)", text_):
                instructions.pop()
        counts[kernel] = len(instructions)
    return counts


def _tool_version(path: Path) -> str:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    m = re.search(r"V(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else "?"


def count_sass(cubin: bytes) -> tuple[dict[str, int], str, str]:
    """(SASS instructions per kernel of `cubin`, the tool, a note when there are none)."""
    nvdisasm = find_nvdisasm()
    if nvdisasm is None:
        return {}, "", f"no nvdisasm found (PATH, the CUDA toolkit, {NVDISASM_HINT}): SASS " \
                        "instructions not counted"
    tool = f"nvdisasm {_tool_version(nvdisasm)} ({nvdisasm})"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        try:
            run = subprocess.run([str(nvdisasm), "-c", str(path)], capture_output=True,
                                 text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            return {}, "", f"{tool} failed: {e}: SASS instructions not counted"
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "no output"
        return {}, "", f"{tool} failed (exit {run.returncode}): {last}: SASS instructions " \
                       "not counted"
    return parse_sass(run.stdout), tool, ""


def resources_source(code: str, name: str, options: tuple[str, ...],
                     arch: str = RESOURCE_ARCH) -> ResourceReport:
    """Registers, spills, shared memory, stack and SASS instructions per kernel of `code` on
    `arch`; not ok on any spill or stack."""
    _check_arch(arch)
    nv_tool = f"ptxas built into NVRTC {nvrtc_version()} (--ptxas-options=-v)"
    ptxas = find_ptxas()
    note = "no ptxas found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)"
    if ptxas is not None:
        # NVRTC -> PTX for the virtual arch, then the toolkit's ptxas for the real one.
        virtual = "compute_" + arch.removeprefix("sm_")
        status, log, ptx = _compile(code, name, cupy_options(options, virtual), "ptx")
        if status != 0:
            return ResourceReport(name=name, arch=arch, tool=f"NVRTC {nvrtc_version()}",
                                  ok=False, log=log, note="PTX compilation failed")
        with tempfile.TemporaryDirectory() as tmp:
            ptx_path, cubin_path = Path(tmp) / "kernel.ptx", Path(tmp) / "kernel.cubin"
            ptx_path.write_bytes(ptx.rstrip(b"\0"))
            cmd = [str(ptxas), "-v", f"-arch={arch}", str(ptx_path), "-o", str(cubin_path)]
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                text, rc = run.stdout + run.stderr, run.returncode
            except (OSError, subprocess.SubprocessError) as e:
                text, rc = str(e), -1
            cubin = cubin_path.read_bytes() if rc == 0 and cubin_path.is_file() else b""
        tool = f"ptxas {_ptxas_version(ptxas)} ({ptxas})"
        if rc == 0:
            return _report(name, arch, tool, text, "", cubin)
        # E.g. a toolkit older than NVRTC rejects its PTX version: fall back, say why.
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        note = f"{tool} failed (exit {rc}): {last}"
    status, log, cubin = _compile(code, name,
                                  (*cupy_options(options, arch), "--ptxas-options=-v"), "cubin")
    if status != 0:
        return ResourceReport(name=name, arch=arch, tool=nv_tool, ok=False, log=log,
                              note="compilation failed")
    return _report(name, arch, nv_tool, log, note, cubin)


def resources(paths: Iterable[Path | str] | None = None,
              arch: str = RESOURCE_ARCH) -> list[ResourceReport]:
    """One ResourceReport per file (default `default_paths()`), compiled as the GPU path does."""
    files = default_paths() if paths is None else _expand(paths)
    load_nvrtc()
    opts = kernels.options()
    return [dataclasses.replace(resources_source(kernels.source(p), display_name(p), opts, arch),
                                path=str(p))
            for p in files]


# -- command line ---------------------------------------------------------------------------

def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.rstrip().splitlines())


def _print_compile(results: list[CompileResult]) -> None:
    width = max([len(r.name) for r in results] + [4])
    print(f"{'file':<{width}}  {'arch':<6} {'result':<6} {'cubin bytes':>11}")
    for r in results:
        print(f"{r.name:<{width}}  {r.arch:<6} {'OK' if r.ok else 'FAIL':<6} {r.cubin_bytes:>11,}")
    for r in results:
        if not r.ok:
            print(f"\n--- {r.name} [{r.arch}] FAIL: {r.status}, "
                  f"{'log not empty' if r.status == 'NVRTC_SUCCESS' else 'compile error'}")
            print(_indent(r.log or "(empty log)"))


def _print_resources(reports: list[ResourceReport]) -> None:
    tools = sorted({r.tool for r in reports} | {r.sass_tool for r in reports if r.sass_tool})
    print(f"\nResources on {reports[0].arch} via {', '.join(tools)}:")
    rows = [(r.name, f.function + ("" if f.entry else " (device fn)"), f)
            for r in reports for f in r.functions]
    wf = max([len(n) for n, _, _ in rows] + [4])
    wk = max([len(k) for _, k, _ in rows] + [6])
    print(f"{'file':<{wf}}  {'kernel':<{wk}} {'regs':>5} {'spill st':>9} {'spill ld':>9} "
          f"{'smem B':>7} {'stack B':>8} {'SASS':>6}")
    for name, kernel, f in rows:
        regs = "-" if f.registers is None else str(f.registers)
        sass = "-" if f.sass_instructions is None else str(f.sass_instructions)
        print(f"{name:<{wf}}  {kernel:<{wk}} {regs:>5} {f.spill_store_bytes:>9} "
              f"{f.spill_load_bytes:>9} {f.shared_bytes:>7} {f.stack_bytes:>8} {sass:>6}")
    for note in sorted({r.note for r in reports if r.note and r.ok}):
        print(f"note: {note}")
    for r in reports:
        if not r.ok:
            print(f"\n--- {r.name} [{r.arch}] resources FAIL: {r.note}")
            print(_indent(r.log or "(empty log)"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m splat_lion.nvrtc_check",
        description="Compile CUDA kernels with NVRTC (as CuPy does); fail on any error or warning.")
    parser.add_argument("paths", nargs="*",
                        help=".cu files or folders (default: kernels/, tests/kernels/, benchmarks/kernels/)")
    parser.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), metavar="SM",
                        help="real architectures to build CUBINs for "
                             f"(default: {' '.join(DEFAULT_ARCHS)})")
    parser.add_argument("--resources", action="store_true",
                        help="also report registers/spills/shared memory/stack and SASS "
                             f"instructions per kernel on {RESOURCE_ARCH}; fail on any spill "
                             "or stack (local memory)")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    parser.add_argument("--jobs", type=int, default=None,
                        help="parallel compilations (default: up to 8)")
    args = parser.parse_args(argv)

    try:
        nv = load_nvrtc()
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # `--arch sm_80 kernels/lion.cu`: nargs="+" swallowed the path; give it back.
    while args.arch and not _ARCH.match(args.arch[-1]) and (
            args.arch[-1].endswith(".cu") or Path(args.arch[-1]).exists()):
        args.paths.insert(0, args.arch.pop())
    if not args.arch:
        parser.error("--arch: give at least one architecture, e.g. --arch sm_80")
    for arch in args.arch:
        if not _ARCH.match(arch):
            parser.error(f"--arch {arch}: expected a real GPU architecture like sm_80")
    try:
        paths = _expand(args.paths) if args.paths else default_paths()
    except FileNotFoundError as e:
        parser.error(str(e))
    if not paths:
        print("error: no .cu files to compile", file=sys.stderr)
        return 1

    print(f"NVRTC {nvrtc_version()} ({nv.path}); options as CuPy 14 passes them, for "
          f"{args.arch[0]}: {' '.join(cupy_options(kernels.options(), args.arch[0]))}")
    results = check(paths, args.arch, jobs=args.jobs)
    _print_compile(results)
    reports = resources(paths) if args.resources else []
    if reports:
        _print_resources(reports)

    failed = [r for r in results if not r.ok] + [r for r in reports if not r.ok]
    print(f"\n{len(results)} compilations, {sum(not r.ok for r in results)} failed"
          + (f"; resources of {len(reports)} files, {sum(not r.ok for r in reports)} failed"
             if args.resources else ""))
    if args.json:
        payload = {"nvrtc_version": nvrtc_version(), "nvrtc_path": str(nv.path),
                   "options": list(kernels.options()), "archs": list(args.arch),
                   "nvrtc_options": {a: list(cupy_options(kernels.options(), a))
                                     for a in args.arch},
                   "ok": not failed,
                   "compile": [dataclasses.asdict(r) for r in results],
                   "resources": [dataclasses.asdict(r) for r in reports]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
