"""Time one optimizer step over N splats against a device-to-device copy of the same bytes, and
count the SASS instructions each optimizer kernel spends per parameter.

    python benchmarks/bench_optim.py                     # N = 10k, 100k, 1M, 3M splats, SH degree 3
    python benchmarks/bench_optim.py --backend cpu       # force one (or --backend cuda)
    python benchmarks/bench_optim.py --quick             # N = 10k, 100k, 1M
    python benchmarks/bench_optim.py --sizes 50000 --repeats 15 --out /tmp/optim.json
    python benchmarks/bench_optim.py --sass-only         # just the instruction counts

Every variant updates all 59 floats of every splat (Layout.gaussians(N, 3): means, scales,
quats, opacities, sh0, shN), each attribute at its own learning rate (LrTable presets):

  variant            what                                                   bytes per float
  lion_fused         Lion.step_all: ONE launch of kernels/lion.cu (lion_step)            20
  lion_masked        the same, half the splats visible (lion_step_masked)      20 of touched
  lion_bf16          the same with bfloat16 momentum (lion_step_bf16)                    16
  lion_bf16_masked   bfloat16, half the splats visible (lion_step_bf16_masked) 16 of touched
  lion_per_attr      lion_step once per attribute (6 launches, one segment each)         20
  lion_plain         Lion as plain xp array expressions (CuPy, or NumPy on the CPU),     20 (ideal)
                     attribute by attribute: c = b1*m + (1-b1)*g;
                     p -= lr*(sign(c) + wd*p); m *= b2; m += (1-b2)*g
  adam_fused         Adam.step_all: ONE launch of kernels/adam.cu (adam_step)            28
  adam_masked        the same, half the splats visible (adam_step_masked)      28 of touched
  copy               xp.copyto of a buffer of 10 bytes per float: reads + writes         20
                     exactly the bytes fused Lion moves

Bytes per float count reads and writes of the flat [total] buffers: Lion fp32 reads p, g, m
and writes p, m (4+4+4 + 4+4 = 20), bf16 momentum is 2 bytes each way (16), Adam reads p, g,
m, v and writes p, m, v (28). A masked variant moves them only for the floats of "touched"
chunks (4 floats holding at least one visible splat's element; the rest is skipped after its
mask byte), plus one mask byte per splat. The plain expressions are counted at Lion's ideal 20
bytes although their temporaries move several times that: that is what they cost. GB/s =
bytes / time; "of copy" = GB/s / the copy's GB/s at the same N in the same run.

SASS per parameter (no GPU needed): each kernel is compiled as CuPy compiles it (NVRTC, a
sm_90 CUBIN, splat_lion.nvrtc_check) and disassembled with nvdisasm (PATH, the CUDA toolkit,
or pip's nvidia-cuda-nvdisasm). A thread's instructions are counted along its path through the
control-flow graph, the cold path (the noinline functions: partial chunks, non-finite values)
left out, and divided by the parameters a thread updates (4 x CHUNKS_PER_THREAD): "visible" is
the path of full chunks of visible splats (the longest), "invisible" the path of chunks of
invisible splats only (no data load). The table lists them with ptxas's registers and spills;
the timing table shows each variant's kernel's "visible" count. Issue 14's target: <= 45 a
parameter masked, bfloat16 within 4 of float32.

GPU targets (evaluated at N >= 1M, where a step is bandwidth-bound; below that it lasts a few
microseconds and launches dominate): fused Lion >= 90% of the copy's GB/s, bf16 <= 0.85x the
fp32 time, fused Lion >= 4x faster than the plain expressions. On the CPU the same numbers
are reported and the targets marked n/a; a missed target is reported, not an error.

Per N: every variant's first call (the warm-up, which also compiles and allocates state)
starts from the same random parameters and zero state and is checked against the NumPy
reference (splat_lion.reference): fused Lion fp32 at every N, all variants at the smallest N,
so a broken kernel is never timed; a wrong result exits with status 1. Then the variants and
the copy are timed interleaved, `--repeats` rounds, and the plain expressions after them
(TIMED_APART), `--repeats` times; the median is kept; calls shorter than MIN_SAMPLE_MS are
repeated within a sample. On a GPU, times come from CUDA events, on the CPU from the wall
clock. A run is flagged NOISY when other processes kept the CPUs busy or a kernel variant's
or the copy's repeats spread out (the plain expressions' spread is reported, not flagged).
The tables are printed and written, with the machine's description, as JSON to
benchmarks/results/ (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench_common import (NOISY_SPREAD, OtherLoad, WrongResult, check_close, make_timer,
                          print_noise, result_fields, write_result)

from splat_lion import Adam, Flat, Layout, Lion, LrTable, get_backend, kernels, nvrtc_check
from splat_lion.backend import Backend
from splat_lion.layout import ALIGN
from splat_lion.optim import lion_step
from splat_lion.optim.base import CHUNKS_PER_THREAD, DEFINES
from splat_lion.reference.adam import adam_step as adam_reference
from splat_lion.reference.common import bf16_to_float
from splat_lion.reference.lion import lion_step as lion_reference

# Splat counts timed by default and with --quick.
SIZES = (10_000, 100_000, 1_000_000, 3_000_000)
QUICK_SIZES = (10_000, 100_000, 1_000_000)
# SH degree of the layout: 59 floats per splat.
SH_DEGREE = 3
# Bytes read + written per float of the flat buffers, per variant (see the docstring); a
# masked variant's count applies to the floats of touched chunks only.
BYTES_PER_FLOAT = {"lion_fused": 20, "lion_masked": 20, "lion_bf16": 16, "lion_bf16_masked": 16,
                   "lion_per_attr": 20, "lion_plain": 20, "adam_fused": 28, "adam_masked": 28,
                   "copy": 20}
# The masked variants: half the splats visible (a random mask, the same for all).
MASKED = ("lion_masked", "lion_bf16_masked", "adam_masked")
VISIBLE_FRACTION = 0.5
# The kernel each variant launches (its SASS count goes in the timing table).
VARIANT_KERNEL = {"lion_fused": "lion_step", "lion_masked": "lion_step_masked",
                  "lion_bf16": "lion_step_bf16", "lion_bf16_masked": "lion_step_bf16_masked",
                  "lion_per_attr": "lion_step", "adam_fused": "adam_step",
                  "adam_masked": "adam_step_masked"}
# The kernels counted in SASS, by family; masked ones also along the path of invisible splats.
SASS_KERNELS = {"lion": ("lion_step", "lion_step_masked", "lion_step_bf16",
                         "lion_step_bf16_masked", "lion_step_cautious",
                         "lion_step_cautious_masked", "lion_step_bf16_cautious",
                         "lion_step_bf16_cautious_masked"),
                "adam": ("adam_step", "adam_step_masked")}
SASS_ARCH = "sm_90"
# Issue 14's targets on them: masked Lion <= 45 instructions a parameter, bfloat16 within 4 of
# float32 (evaluated here whatever the backend: they need no GPU).
SASS_MASKED_MAX = 45.0
SASS_BF16_MAX_EXTRA = 4.0
# GPU targets (the issue): fused Lion's share of the copy's GB/s, bf16 / fp32 time, plain /
# fused time; evaluated from TARGET_MIN_SPLATS splats up.
FUSED_MIN_COPY_FRACTION = 0.90
BF16_MAX_TIME_RATIO = 0.85
FUSED_MIN_SPEEDUP_OVER_PLAIN = 4.0
TARGET_MIN_SPLATS = 1_000_000
# A timed sample repeats a call until it lasts about this long, ms (at most MAX_CALLS times),
# so that microsecond-long steps are not timed at the clock's resolution.
MIN_SAMPLE_MS = 5.0
MAX_CALLS = 1000
# Relative tolerance of the reference checks, in float32 epsilons: from zero state one step is
# exact up to a few roundings (FMA contraction on the GPU).
CHECK_EPS = 8
# Elements compared at a time by the reference checks.
CHECK_CHUNK = 1 << 24
# The plain expressions allocate and free GBs of fresh temporaries per call at 3M splats; on
# the CPU their page faults (on a VM, the host's too) make their own times vary by themselves
# and slowed the variant timed next (the copy at 3M splats: 78 -> 120 ms). So they are timed
# after the interleaved rounds of the others, and their spread does not flag the run as noisy
# (as bench_runtime flags kernels, not references).
TIMED_APART = ("lion_plain",)
SPREAD_NOT_FLAGGED = ("lion_plain",)


@dataclass
class Row:
    # splats N, and floats per flat buffer (59 N plus a few floats of alignment padding)
    splats: int
    floats: int
    # variant name (a key of BYTES_PER_FLOAT)
    variant: str
    # splat_lion kernel launches per call (None: plain xp expressions, the copy)
    launches: int | None
    # bytes counted per float, and per call (bytes_per_float * floats; a masked variant:
    # bytes_per_float * floats of touched chunks + one mask byte per splat)
    bytes_per_float: int
    bytes: int
    # floats the call reads and writes (a masked variant: those of touched chunks)
    floats_moved: int
    # median time of one call over the repeats, ms, and every repeat's
    ms: float
    ms_all: list[float]
    # calls per timed sample (a sample's time / calls is one repeat's ms)
    calls_per_sample: int
    # bytes / time, GB/s (1e9 bytes)
    gb_per_s: float
    # gb_per_s / the copy's gb_per_s at the same N in the same run
    of_copy: float
    # ms / lion_fused's ms at the same N
    vs_fused: float
    # slowest / fastest repeat (above NOISY_SPREAD the run is flagged as noisy)
    spread: float
    # largest |result - NumPy reference| of the first call's outputs, and the largest tolerance
    # it was held to (None: not checked at this N)
    max_error: float | None
    tolerance: float | None
    # SASS instructions per parameter of the variant's kernel, visible path (None: no kernel,
    # or not counted)
    sass_per_param: float | None = None


@dataclass
class Target:
    # splats N the target was evaluated at
    splats: int
    # the target in words
    target: str
    # measured value and the bound it must meet ("value >= bound" or "value <= bound")
    value: float
    bound: float
    op: str
    # whether it was met (measured on any backend; only a GPU run is held to it)
    met: bool


@dataclass
class Variant:
    # one call of the variant (updates params, or copies)
    run: Callable[[], object]
    # (name, device output, float32 reference output) after a first call from the start state
    outputs: Callable[[], list[tuple[str, object, np.ndarray]]]


# -- SASS instructions per parameter --------------------------------------------------------

@dataclass
class SassCount:
    # kernel family and name
    family: str
    kernel: str
    # ptxas (or NVRTC's ptxas) on SASS_ARCH: registers, spilled bytes (stores + loads), stack
    registers: int | None
    spill_bytes: int
    stack_bytes: int
    # instructions in the kernel's code (its cold functions excluded)
    static_instructions: int
    # instructions a thread executes along its path, per parameter it updates: full chunks
    # of visible splats (every kernel), chunks of invisible splats only (masked kernels)
    visible: float
    invisible: float | None


@dataclass
class _Block:
    instrs: list  # (predicate, opcode)
    succ: list
    exits: bool = False
    cold: bool = False  # calls a function: the cold path


_SASS_INSTR = re.compile(r"/\*[0-9a-f]+\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")
_SASS_LABEL = re.compile(r"^\s*(\.L_x_\d+):\s*$")
_SASS_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def sass_blocks(sass: str, kernel: str) -> list[_Block]:
    """The basic blocks of `kernel` in `nvdisasm -c` output, up to its first subroutine."""
    m = re.search(rf"^\.text\.{re.escape(kernel)}:\n(.*?)(?=^\s*\.type|^\s*//-----|\Z)", sass,
                  re.S | re.M)
    if m is None:
        raise ValueError(f"{kernel}: not in the disassembly")
    blocks: list[_Block] = []
    labels: dict[str, int] = {}
    targets: list[str | None] = []
    current = None
    for line in m.group(1).splitlines():
        if label := _SASS_LABEL.match(line):
            if current is None or current.instrs:
                current = _Block([], [])
                blocks.append(current)
                targets.append(None)
            labels[label.group(1)] = len(blocks) - 1
        elif ins := _SASS_INSTR.search(line):
            if current is None:
                current = _Block([], [])
                blocks.append(current)
                targets.append(None)
            pred, op = (ins.group(1) or "").strip(), ins.group(2)
            current.instrs.append((pred, op))
            current.cold |= op.startswith("CALL")
            base = op.split(".")[0]
            if base in ("BRA", "EXIT", "RET", "BRX", "JMX", "JMP"):
                if base in ("BRX", "JMX", "JMP"):
                    raise ValueError(f"{kernel}: indirect branch {op}")
                target = _SASS_TARGET.search(ins.group(3))
                targets[-1] = target.group(1) if base == "BRA" and target else None
                current = None
    for i, b in enumerate(blocks):
        fall = [i + 1] if i + 1 < len(blocks) else []
        pred, op = b.instrs[-1] if b.instrs else ("", "NOP")
        base = op.split(".")[0]
        conditional = pred not in ("", "@PT")
        if base == "BRA":
            jump = [labels[targets[i]]] if pred != "@!PT" else []
            b.succ = jump + fall if conditional else jump
        elif base in ("EXIT", "RET"):
            b.exits = True
            b.succ = fall if conditional else []
        else:
            b.succ = fall
    return blocks


def longest_path(blocks: list[_Block], avoid: Callable[[_Block], bool]) -> int:
    """Instructions on the longest path from the entry to an exit through blocks that are not
    cold and not avoided. The kernels' loops are unrolled: a loop is an error."""
    order, state = [], [0] * len(blocks)  # 0 new, 1 on the stack, 2 done
    stack = [(0, iter(blocks[0].succ))]
    state[0] = 1
    while stack:
        v, it = stack[-1]
        for w in it:
            if state[w] == 1:
                raise ValueError("a loop in the kernel: the count assumes unrolled chunks")
            if state[w] == 0:
                state[w] = 1
                stack.append((w, iter(blocks[w].succ)))
                break
        else:
            state[v] = 2
            order.append(v)
            stack.pop()
    best, out = {0: len(blocks[0].instrs)}, 0
    for v in reversed(order):
        if v not in best or blocks[v].cold or avoid(blocks[v]):
            continue
        if blocks[v].exits:
            out = max(out, best[v])
        for w in blocks[v].succ:
            if not (blocks[w].cold or avoid(blocks[w])):
                best[w] = max(best.get(w, 0), best[v] + len(blocks[w].instrs))
    return out


def _loads_data(block: _Block) -> bool:
    """Loads parameters, gradients or state (16- or 8-byte loads; mask bytes and words are
    narrower)."""
    return any(op.startswith(("LDG.E.128", "LDG.E.64")) for _, op in block.instrs)


def sass_counts() -> tuple[list[SassCount], str]:
    """The SASS counts of SASS_KERNELS, and what made them (or why there are none)."""
    try:
        nvrtc_check.load_nvrtc()
    except RuntimeError as e:
        return [], f"no SASS counts: {e}"
    nvdisasm = nvrtc_check.find_nvdisasm()
    if nvdisasm is None:
        return [], ("no SASS counts: nvdisasm not found (PATH, the CUDA toolkit, "
                    f"{nvrtc_check.NVDISASM_HINT})")
    options = kernels.options(DEFINES)
    params = 4 * CHUNKS_PER_THREAD  # per thread
    out = []
    for family, names in SASS_KERNELS.items():
        path = kernels.family_path(family)
        code, name = kernels.source(path), f"kernels/{path.name}"
        status, log, cubin = nvrtc_check._compile(
            code, name, nvrtc_check.cupy_options(options, SASS_ARCH), "cubin")
        if status != 0:
            raise RuntimeError(f"{name}: NVRTC failed:\n{log}")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "k.cubin").write_bytes(cubin)
            sass = subprocess.run([str(nvdisasm), "-c", str(Path(tmp) / "k.cubin")],
                                  capture_output=True, text=True, check=True).stdout
        resources = {f.function: f for f in
                     nvrtc_check.resources_source(code, name, options, SASS_ARCH).functions}
        for kernel in names:
            blocks = sass_blocks(sass, kernel)
            res = resources.get(kernel)
            out.append(SassCount(
                family=family, kernel=kernel,
                registers=res.registers if res else None,
                spill_bytes=(res.spill_store_bytes + res.spill_load_bytes) if res else 0,
                stack_bytes=res.stack_bytes if res else 0,
                static_instructions=sum(len(b.instrs) for b in blocks),
                visible=longest_path(blocks, lambda b: False) / params,
                invisible=(longest_path(blocks, _loads_data) / params
                           if kernel.endswith("_masked") else None)))
    version = subprocess.run([str(nvdisasm), "--version"], capture_output=True,
                             text=True).stdout
    tool = re.search(r"V(\d+\.\d+\.\d+)", version)
    return out, (f"NVRTC {nvrtc_check.nvrtc_version()} -> {SASS_ARCH} CUBIN, nvdisasm "
                 f"{tool.group(1) if tool else '?'} ({nvdisasm}); options "
                 f"{' '.join(options)}; {params} parameters a thread")


def sass_targets(counts: list[SassCount]) -> list[tuple[str, float, float, bool]]:
    """(target, value, bound, met) of issue 14's SASS targets."""
    by = {c.kernel: c for c in counts}
    out = []
    if "lion_step_masked" in by:
        for kernel in [k for k in SASS_KERNELS["lion"] if k.endswith("_masked") and k in by]:
            v = by[kernel].visible
            out.append((f"{kernel} <= {SASS_MASKED_MAX:g} a parameter", v, SASS_MASKED_MAX,
                        v <= SASS_MASKED_MAX))
        for masked in ("", "_masked", "_cautious", "_cautious_masked"):
            if f"lion_step{masked}" not in by:
                continue
            extra = by[f"lion_step_bf16{masked}"].visible - by[f"lion_step{masked}"].visible
            out.append((f"lion_step_bf16{masked} - lion_step{masked} <= "
                        f"{SASS_BF16_MAX_EXTRA:g}", extra, SASS_BF16_MAX_EXTRA,
                        extra <= SASS_BF16_MAX_EXTRA))
    return out


def sass_table(counts: list[SassCount]) -> str:
    head = ("kernel", "registers", "spilled B", "stack B", "SASS", "visible/param",
            "invisible/param")
    body = [(c.kernel, "-" if c.registers is None else str(c.registers), str(c.spill_bytes),
             str(c.stack_bytes), str(c.static_instructions), f"{c.visible:.2f}",
             "-" if c.invisible is None else f"{c.invisible:.2f}") for c in counts]
    return _format(head, body, right=set(range(1, len(head))))


# -- inputs and references ---------------------------------------------------------------

def random_buffer(rng, lay: Layout) -> np.ndarray:
    """[total] float32 host buffer: standard normal in every attribute, zero padding."""
    out = np.zeros(lay.total, np.float32)
    for s in lay.segments:
        out[s.begin:s.end] = rng.standard_normal(s.end - s.begin, dtype=np.float32)
    return out


def hyper_table(opt, lay: Layout) -> np.ndarray:
    """[S, 2] float32 (lr, weight decay) per attribute, as step_all passes it."""
    return np.array([[opt.effective_lr(n), opt.weight_decay] for n in lay.names], np.float32)


def check_outputs(be: Backend, case: str,
                  outputs: list[tuple[str, object, np.ndarray]]) -> tuple[float, float]:
    """check_close of each (name, device array, float32 reference array), CHECK_CHUNK
    elements at a time (float64 temporaries of 3M splats would take GBs); returns (max error,
    max tolerance)."""
    eps = float(np.finfo(np.float32).eps)
    errs, tols = [0.0], [0.0]
    for name, got, want in outputs:
        got = be.to_numpy(got)
        if got.dtype == np.uint16:  # bfloat16 words
            got = bf16_to_float(got)
        for lo in range(0, got.size, CHECK_CHUNK):
            w = want[lo:lo + CHECK_CHUNK].astype(np.float64)
            tol = CHECK_EPS * eps * np.abs(w) + 1e-30
            err, t = check_close(f"{case}: {name} (elements from {lo})", got[lo:lo + CHECK_CHUNK],
                                 w, tol)
            errs.append(err)
            tols.append(t)
    return max(errs), max(tols)


# -- variants ----------------------------------------------------------------------------

def plain_lion(xp, opt: Lion, params: Flat, grads: Flat, momentum: Flat) -> None:
    """Lion as array expressions, one attribute at a time (no fused kernel), in place."""
    b1, b2 = np.float32(opt.beta1), np.float32(opt.beta2)
    one, wd = np.float32(1), np.float32(opt.weight_decay)
    for name in params.layout.names:
        p, g, m = params[name], grads[name], momentum[name]  # [N, *shape] views
        lr = np.float32(opt.effective_lr(name))
        c = b1 * m + (one - b1) * g
        p -= lr * (xp.sign(c) + wd * p)
        m *= b2
        m += (one - b2) * g


def make_variants(be: Backend, rng, lay: Layout, params: Flat, grads: Flat,
                  p0: np.ndarray, g0: np.ndarray, visible: np.ndarray) -> dict[str, Variant]:
    """The timed variants over shared params/grads; each keeps its own state. `visible`: the
    masked variants' [N] bool mask (host)."""
    xp = be.xp
    table = LrTable.lion_default()
    lion = Lion(1e-4, lr_table=table, backend=be)
    lion16 = Lion(1e-4, lr_table=table, momentum_dtype="bfloat16", backend=be)
    adam = Adam(1e-3, lr_table=LrTable.adam_3dgs(), backend=be)
    lion_m = Lion(1e-4, lr_table=table, backend=be)
    lion16_m = Lion(1e-4, lr_table=table, momentum_dtype="bfloat16", backend=be)
    adam_m = Adam(1e-3, lr_table=LrTable.adam_3dgs(), backend=be)
    mask = be.asarray(visible, tag="scratch")
    per_attr_m = Flat.zeros(lay, tag="optimizer", backend=be)
    plain_m = Flat.zeros(lay, tag="optimizer", backend=be)
    # 10 bytes per float of real data (an untouched zero buffer would read one shared page)
    copy_host = rng.standard_normal(lay.total * 10 // 4, dtype=np.float32)
    copy_src = be.asarray(copy_host, tag="scratch")
    copy_dst = be.zeros(copy_src.shape, np.float32, tag="scratch")
    segments = lay.segment_table()
    zeros32 = np.zeros(lay.total, np.float32)

    def per_attr():
        for s in lay.segments:
            lion_step(params.data[s.begin:s.end], grads.data[s.begin:s.end],
                      per_attr_m.data[s.begin:s.end],
                      np.array([[0, s.end - s.begin, s.width]], np.int64),
                      np.array([[lion.effective_lr(s.name), lion.weight_decay]], np.float32),
                      lion.beta1, lion.beta2, backend=be)

    # references of one step from p0 and zero state (lazily: only the checked ones are built)
    cache: dict[str, tuple] = {}

    def lion_want():
        if "lion" not in cache:
            cache["lion"] = lion_reference(p0, g0, zeros32, segments, hyper_table(lion, lay),
                                           lion.beta1, lion.beta2)
        return cache["lion"]

    def lion_outputs(m_device):
        p, m = lion_want()
        return [("params", params.data, p), ("momentum", m_device, m)]

    def lion_masked_outputs():
        p, m = lion_reference(p0, g0, zeros32, segments, hyper_table(lion_m, lay), lion_m.beta1,
                              lion_m.beta2, visible)
        return [("params", params.data, p), ("momentum", lion_m.flat_state["momentum"].data, m)]

    def bf16_outputs(opt, vis=None):
        p, m = lion_reference(p0, g0, np.zeros(lay.total, np.uint16), segments,
                              hyper_table(opt, lay), opt.beta1, opt.beta2, vis)
        return [("params", params.data, p),
                ("momentum", opt.flat_state["momentum"].data, bf16_to_float(m))]

    def adam_outputs(opt, vis=None):
        p, m, v = adam_reference(p0, g0, zeros32, zeros32, segments, hyper_table(opt, lay),
                                 opt.beta1, opt.beta2, opt.eps, 1, vis)
        state = opt.flat_state
        return [("params", params.data, p), ("exp_avg", state["exp_avg"].data, m),
                ("exp_avg_sq", state["exp_avg_sq"].data, v)]

    return {
        "lion_fused": Variant(lambda: lion.step_all(params, grads),
                              lambda: lion_outputs(lion.flat_state["momentum"].data)),
        "lion_masked": Variant(lambda: lion_m.step_all(params, grads, visible=mask),
                               lion_masked_outputs),
        "lion_bf16": Variant(lambda: lion16.step_all(params, grads),
                             lambda: bf16_outputs(lion16)),
        "lion_bf16_masked": Variant(lambda: lion16_m.step_all(params, grads, visible=mask),
                                    lambda: bf16_outputs(lion16_m, visible)),
        "lion_per_attr": Variant(per_attr, lambda: lion_outputs(per_attr_m.data)),
        "lion_plain": Variant(lambda: plain_lion(xp, lion, params, grads, plain_m),
                              lambda: lion_outputs(plain_m.data)),
        "adam_fused": Variant(lambda: adam.step_all(params, grads), lambda: adam_outputs(adam)),
        "adam_masked": Variant(lambda: adam_m.step_all(params, grads, visible=mask),
                               lambda: adam_outputs(adam_m, visible)),
        "copy": Variant(lambda: xp.copyto(copy_dst, copy_src),
                        lambda: [("dst", copy_dst, copy_host)]),
    }


def touched_floats(lay: Layout, visible: np.ndarray) -> int:
    """Floats of the chunks (4 floats from a segment's start) holding an element of a visible
    splat: what a masked kernel reads and writes; the others cost their mask byte only."""
    out = 0
    for s in lay.segments:
        shown = np.repeat(visible, s.width)  # per element of the segment
        pad = -len(shown) % ALIGN
        chunks = np.concatenate([shown, np.zeros(pad, bool)]).reshape(-1, ALIGN).any(axis=1)
        out += int(chunks.sum()) * ALIGN
    return out


# -- one size ----------------------------------------------------------------------------

def bench_size(be: Backend, timed, rng, n: int, repeats: int, check_all: bool,
               sass: dict[str, float]) -> list[Row]:
    lay = Layout.gaussians(n, SH_DEGREE)
    p0, g0 = random_buffer(rng, lay), random_buffer(rng, lay)
    visible = rng.random(n) < VISIBLE_FRACTION
    params = Flat.zeros(lay, tag="params", backend=be)
    grads = Flat(lay, be.asarray(g0, tag="grads"))  # never written
    start = be.asarray(p0, tag="scratch")  # p0 on the device (on the CPU: p0 itself, read only)
    variants = make_variants(be, rng, lay, params, grads, p0, g0, visible)
    touched = touched_floats(lay, visible)

    # warm-up: each variant's first call starts from p0 and zero state and is checked
    errors: dict[str, tuple[float, float]] = {}
    for name, v in variants.items():
        params.data[...] = start
        v.run()
        be.synchronize()
        if check_all or name == "lion_fused":
            errors[name] = check_outputs(be, f"{name} at N={n:,}", v.outputs())
    del start

    # three more calls: launches per call, and how many calls make a sample of MIN_SAMPLE_MS
    launches, calls = {}, {}
    for name, v in variants.items():
        before = be.launch_count
        ms = min(timed(v.run) for _ in range(3))
        launches[name] = (be.launch_count - before) // 3
        calls[name] = max(1, min(MAX_CALLS, math.ceil(MIN_SAMPLE_MS / max(ms, 1e-6))))

    def sample(name: str) -> float:
        run, k = variants[name].run, calls[name]

        def many():
            for _ in range(k):
                run()
        return timed(many) / k

    # interleaved rounds, so a drift hits every variant and the copy alike; then TIMED_APART
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:
            if name not in TIMED_APART:
                times[name].append(sample(name))
    for name in TIMED_APART:
        times[name] = [sample(name) for _ in range(repeats)]

    copy_ms = statistics.median(times["copy"])
    fused_ms = statistics.median(times["lion_fused"])
    copy_gbps = BYTES_PER_FLOAT["copy"] * lay.total / copy_ms / 1e6
    rows = []
    for name, ts in times.items():
        ms = statistics.median(ts)
        moved = touched if name in MASKED else lay.total
        nbytes = BYTES_PER_FLOAT[name] * moved + (n if name in MASKED else 0)
        gbps = nbytes / ms / 1e6
        err, tol = errors.get(name, (None, None))
        rows.append(Row(
            splats=n, floats=lay.total, variant=name,
            launches=launches[name] if name not in ("lion_plain", "copy") else None,
            bytes_per_float=BYTES_PER_FLOAT[name], bytes=nbytes, floats_moved=moved, ms=ms,
            ms_all=ts, calls_per_sample=calls[name], gb_per_s=gbps, of_copy=gbps / copy_gbps,
            vs_fused=ms / fused_ms, spread=max(ts) / min(ts) if min(ts) > 0 else float("inf"),
            max_error=err, tolerance=tol, sass_per_param=sass.get(VARIANT_KERNEL.get(name))))
    return rows


def free_memory(be: Backend) -> None:
    """Return the last size's buffers before allocating the next (CuPy keeps a pool)."""
    gc.collect()
    if be.name == "cuda":
        be.xp.get_default_memory_pool().free_all_blocks()


# -- targets and report ------------------------------------------------------------------

def evaluate_targets(rows: list[Row]) -> list[Target]:
    by = {(r.splats, r.variant): r for r in rows}
    out = []
    for n in sorted({r.splats for r in rows if r.splats >= TARGET_MIN_SPLATS}):
        fused, bf16, plain = by[n, "lion_fused"], by[n, "lion_bf16"], by[n, "lion_plain"]
        for what, value, bound, op in (
                (f"fused Lion >= {FUSED_MIN_COPY_FRACTION:.0%} of copy GB/s", fused.of_copy,
                 FUSED_MIN_COPY_FRACTION, ">="),
                (f"bf16 <= {BF16_MAX_TIME_RATIO:g}x fp32 time", bf16.vs_fused,
                 BF16_MAX_TIME_RATIO, "<="),
                (f"fused >= {FUSED_MIN_SPEEDUP_OVER_PLAIN:g}x faster than plain",
                 plain.vs_fused, FUSED_MIN_SPEEDUP_OVER_PLAIN, ">=")):
            met = value >= bound if op == ">=" else value <= bound
            out.append(Target(splats=n, target=what, value=value, bound=bound, op=op, met=met))
    return out


def _format(head: tuple[str, ...], body: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(c.rjust(w) if j in right else c.ljust(w)
                       for j, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in [head, tuple("-" * w for w in widths), *body]]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    head = ("splats", "variant", "launches", "ms", "GB/s", "of copy", "x fused", "spread",
            "checked", "SASS/p")
    body = []
    for i, r in enumerate(rows):
        if i and r.splats != rows[i - 1].splats:
            body.append(("",) * len(head))  # a blank line between sizes
        body.append((f"{r.splats:,}", r.variant, "-" if r.launches is None else str(r.launches),
                     f"{r.ms:.4f}", f"{r.gb_per_s:.1f}", f"{r.of_copy:.3f}",
                     f"{r.vs_fused:.2f}", f"{r.spread:.2f}",
                     "-" if r.max_error is None else "yes",
                     "-" if r.sass_per_param is None else f"{r.sass_per_param:.1f}"))
    return _format(head, body, right={0, 2, 3, 4, 5, 6, 7, 9})


def print_sass(counts: list[SassCount], tool: str) -> None:
    if not counts:
        print(tool)
        return
    print(f"SASS instructions per parameter on {SASS_ARCH} ({tool}); visible: the path of full "
          "chunks of visible splats, invisible: of invisible splats only; cold paths left out\n")
    print(sass_table(counts))
    for name, value, bound, met in sass_targets(counts):
        print(f"SASS target {'MET' if met else 'MISSED'}: {name}; counted {value:.2f}")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("cpu", "cuda"), default=None,
                   help="force a backend (default: as splat_lion.get_backend chooses)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                   help=f"splat counts (default: {' '.join(map(str, SIZES))})")
    p.add_argument("--quick", action="store_true",
                   help=f"sizes {' '.join(map(str, QUICK_SIZES))}")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed rounds over the variants; the median is kept")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file to write (default: benchmarks/results/"
                        "<date>-<backend>-<device>-optim[-quick].json)")
    p.add_argument("--sass-only", action="store_true",
                   help="print the SASS instruction counts only (no timing, no JSON)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.sizes and args.quick:
        p.error("--sizes and --quick: give one of them")
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    if any(n < 1 for n in sizes):
        p.error(f"--sizes must be splat counts >= 1, got {' '.join(map(str, sizes))}")

    counts, sass_tool = sass_counts()
    print_sass(counts, sass_tool)
    if args.sass_only:
        return 0 if counts else 2
    sass_per_param = {c.kernel: c.visible for c in counts}

    be = get_backend(args.backend)
    info = be.describe()
    print(f"\nbackend {be.name}: {info['device']}")
    print(f"compiler: {info['compiler']}")
    floats_per_splat = sum(s.width for s in Layout.gaussians(1, SH_DEGREE).segments)

    rng = np.random.default_rng(args.seed)
    timed = make_timer(be)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    load = OtherLoad()
    rows: list[Row] = []
    try:
        for n in sizes:
            print(f"N = {n:,} splats ...", flush=True)
            rows += bench_size(be, timed, rng, n, args.repeats, check_all=n == min(sizes),
                               sass=sass_per_param)
            free_memory(be)
    except WrongResult as e:
        print(f"\nWRONG RESULT: {e}", file=sys.stderr)
        return 1

    other_share = load.share()  # of all CPUs, by other processes during the run

    print(f"\nmedian of {args.repeats} interleaved rounds after a warm-up "
          f"({', '.join(TIMED_APART)} timed after them); first calls checked against the NumPy "
          f"reference (every variant at N={min(sizes):,}, fused Lion at every N)\n")
    print(table(rows))
    print("\nGB/s = bytes per float (" + ", ".join(f"{k} {v}" for k, v in BYTES_PER_FLOAT.items())
          + ") x floats / time (masked: floats of touched chunks, plus a mask byte per splat; "
          f"{VISIBLE_FRACTION:.0%} of the splats visible); of copy = GB/s / the copy's GB/s; "
          "x fused = time / fused Lion's; SASS/p = the kernel's instructions per parameter "
          "(visible path, see above)")

    targets = evaluate_targets(rows)
    gpu = be.name == "cuda"
    print()
    if not targets:
        print(f"no GPU targets evaluated: they apply from N = {TARGET_MIN_SPLATS:,} splats up")
    for t in targets:
        verdict = ("MET" if t.met else "MISSED") if gpu else "n/a (GPU targets)"
        print(f"target {verdict}: N={t.splats:,}: {t.target}; measured {t.value:.3f} "
              f"(needs {t.op} {t.bound:g})")

    noisy = [r for r in rows if r.spread > NOISY_SPREAD and r.variant not in SPREAD_NOT_FLAGGED]
    busy = print_noise(other_share, [(f"N={r.splats:,} {r.variant}", r.ms_all) for r in noisy], 4)
    for r in rows:
        if r.variant in SPREAD_NOT_FLAGGED and r.spread > NOISY_SPREAD:
            print(f"note: N={r.splats:,} {r.variant}: repeats ranged {min(r.ms_all):.4f} to "
                  f"{max(r.ms_all):.4f} ms ({r.spread:.2f}x); not flagged: its temporaries are "
                  "fresh memory each call")

    result = {
        **result_fields("optim", be.name, info),
        "quick": args.quick,
        "sizes": list(sizes),
        "repeats": args.repeats,
        "seed": args.seed,
        "sh_degree": SH_DEGREE,
        "floats_per_splat": floats_per_splat,
        "bytes_per_float": BYTES_PER_FLOAT,
        "timer": "CUDA events" if gpu else "time.perf_counter around synchronize",
        "min_sample_ms": MIN_SAMPLE_MS,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xp": f"{be.xp.__name__} {be.xp.__version__}",
        "cpu_threads_env": os.environ.get("SPLAT_LION_CPU_THREADS"),
        # 1/5/15-minute load averages before and after: other work on the machine skews times
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        # share of all CPUs other processes kept busy during the run (Linux only)
        "other_processes_cpu_share": None if other_share is None else round(other_share, 4),
        # the targets are for the GPU: measured everywhere, held to only on cuda
        "targets_apply": gpu,
        "all_targets_met": all(t.met for t in targets) if gpu and targets else None,
        "targets": [asdict(t) for t in targets],
        # whether the times are suspect: other processes busy, or a kernel variant's or the
        # copy's repeats spread out
        "noisy": busy or bool(noisy),
        "noisy_cases": [f"{r.splats}:{r.variant}" for r in noisy],
        "visible_fraction": VISIBLE_FRACTION,
        "rows": [asdict(r) for r in rows],
        # SASS instructions per parameter of each kernel (no GPU needed), what counted them,
        # and issue 14's targets on them
        "sass_tool": sass_tool,
        "sass": [asdict(c) for c in counts],
        "sass_targets": [{"target": n, "value": v, "bound": b, "met": m}
                         for n, v, b, m in sass_targets(counts)],
    }
    write_result(result, "optim", be.name, info["device"], args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
