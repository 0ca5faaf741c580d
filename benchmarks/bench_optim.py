"""Time one optimizer step over N splats against a device-to-device copy of the same bytes.

    python benchmarks/bench_optim.py                     # N = 10k, 100k, 1M, 3M splats, SH degree 3
    python benchmarks/bench_optim.py --backend cpu       # force one (or --backend cuda)
    python benchmarks/bench_optim.py --quick             # N = 10k, 100k, 1M
    python benchmarks/bench_optim.py --sizes 50000 --repeats 15 --out /tmp/optim.json

Every variant updates all 59 floats of every splat (Layout.gaussians(N, 3): means, scales,
quats, opacities, sh0, shN), each attribute at its own learning rate (LrTable presets):

  variant        what                                                    bytes per float
  lion_fused     Lion.step_all: ONE launch of kernels/lion.cu                        20
  lion_bf16      the same with bfloat16 momentum (lion_step_bf16)                    16
  lion_per_attr  lion_step once per attribute (6 launches, one segment each)         20
  lion_plain     Lion as plain xp array expressions (CuPy, or NumPy on the CPU),     20 (ideal)
                 attribute by attribute: c = b1*m + (1-b1)*g;
                 p -= lr*(sign(c) + wd*p); m *= b2; m += (1-b2)*g
  adam_fused     Adam.step_all: ONE launch of kernels/adam.cu                        28
  copy           xp.copyto of a buffer of 10 bytes per float: reads + writes         20
                 exactly the bytes fused Lion moves

Bytes per float count reads and writes of the flat [total] buffers: Lion fp32 reads p, g, m
and writes p, m (4+4+4 + 4+4 = 20), bf16 momentum is 2 bytes each way (16), Adam reads p, g,
m, v and writes p, m, v (28). The plain expressions are counted at Lion's ideal 20 bytes
although their temporaries move several times that: that is what they cost. GB/s = bytes /
time; "of copy" = GB/s / the copy's GB/s at the same N in the same run.

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
The table is printed and written, with the machine's description, as JSON to
benchmarks/results/ (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench_common import (NOISY_SPREAD, OtherLoad, WrongResult, check_close, make_timer,
                          print_noise, result_fields, write_result)

from splat_lion import Adam, Flat, Layout, Lion, LrTable, get_backend
from splat_lion.backend import Backend
from splat_lion.optim import lion_step
from splat_lion.reference.adam import adam_step as adam_reference
from splat_lion.reference.common import bf16_to_float
from splat_lion.reference.lion import lion_step as lion_reference

# Splat counts timed by default and with --quick.
SIZES = (10_000, 100_000, 1_000_000, 3_000_000)
QUICK_SIZES = (10_000, 100_000, 1_000_000)
# SH degree of the layout: 59 floats per splat.
SH_DEGREE = 3
# Bytes read + written per float of the flat buffers, per variant (see the docstring).
BYTES_PER_FLOAT = {"lion_fused": 20, "lion_bf16": 16, "lion_per_attr": 20, "lion_plain": 20,
                   "adam_fused": 28, "copy": 20}
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
    # bytes counted per float, and per call (bytes_per_float * floats)
    bytes_per_float: int
    bytes: int
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
                  p0: np.ndarray, g0: np.ndarray) -> dict[str, Variant]:
    """The timed variants over shared params/grads; each keeps its own state."""
    xp = be.xp
    table = LrTable.lion_default()
    lion = Lion(1e-4, lr_table=table, backend=be)
    lion16 = Lion(1e-4, lr_table=table, momentum_dtype="bfloat16", backend=be)
    adam = Adam(1e-3, lr_table=LrTable.adam_3dgs(), backend=be)
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

    def bf16_outputs():
        p, m = lion_reference(p0, g0, np.zeros(lay.total, np.uint16), segments,
                              hyper_table(lion16, lay), lion16.beta1, lion16.beta2)
        return [("params", params.data, p),
                ("momentum", lion16.flat_state["momentum"].data, bf16_to_float(m))]

    def adam_outputs():
        p, m, v = adam_reference(p0, g0, zeros32, zeros32, segments, hyper_table(adam, lay),
                                 adam.beta1, adam.beta2, adam.eps, 1)
        state = adam.flat_state
        return [("params", params.data, p), ("exp_avg", state["exp_avg"].data, m),
                ("exp_avg_sq", state["exp_avg_sq"].data, v)]

    return {
        "lion_fused": Variant(lambda: lion.step_all(params, grads),
                              lambda: lion_outputs(lion.flat_state["momentum"].data)),
        "lion_bf16": Variant(lambda: lion16.step_all(params, grads), bf16_outputs),
        "lion_per_attr": Variant(per_attr, lambda: lion_outputs(per_attr_m.data)),
        "lion_plain": Variant(lambda: plain_lion(xp, lion, params, grads, plain_m),
                              lambda: lion_outputs(plain_m.data)),
        "adam_fused": Variant(lambda: adam.step_all(params, grads), adam_outputs),
        "copy": Variant(lambda: xp.copyto(copy_dst, copy_src),
                        lambda: [("dst", copy_dst, copy_host)]),
    }


# -- one size ----------------------------------------------------------------------------

def bench_size(be: Backend, timed, rng, n: int, repeats: int, check_all: bool) -> list[Row]:
    lay = Layout.gaussians(n, SH_DEGREE)
    p0, g0 = random_buffer(rng, lay), random_buffer(rng, lay)
    params = Flat.zeros(lay, tag="params", backend=be)
    grads = Flat(lay, be.asarray(g0, tag="grads"))  # never written
    start = be.asarray(p0, tag="scratch")  # p0 on the device (on the CPU: p0 itself, read only)
    variants = make_variants(be, rng, lay, params, grads, p0, g0)

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
        nbytes = BYTES_PER_FLOAT[name] * lay.total
        gbps = nbytes / ms / 1e6
        err, tol = errors.get(name, (None, None))
        rows.append(Row(
            splats=n, floats=lay.total, variant=name,
            launches=launches[name] if name not in ("lion_plain", "copy") else None,
            bytes_per_float=BYTES_PER_FLOAT[name], bytes=nbytes, ms=ms, ms_all=ts,
            calls_per_sample=calls[name], gb_per_s=gbps, of_copy=gbps / copy_gbps,
            vs_fused=ms / fused_ms, spread=max(ts) / min(ts) if min(ts) > 0 else float("inf"),
            max_error=err, tolerance=tol))
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


def table(rows: list[Row]) -> str:
    head = ("splats", "variant", "launches", "ms", "GB/s", "of copy", "x fused", "spread",
            "checked")
    body = []
    for i, r in enumerate(rows):
        if i and r.splats != rows[i - 1].splats:
            body.append(("",) * len(head))  # a blank line between sizes
        body.append((f"{r.splats:,}", r.variant, "-" if r.launches is None else str(r.launches),
                     f"{r.ms:.4f}", f"{r.gb_per_s:.1f}", f"{r.of_copy:.3f}",
                     f"{r.vs_fused:.2f}", f"{r.spread:.2f}",
                     "-" if r.max_error is None else "yes"))
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    right = {0, 2, 3, 4, 5, 6, 7}
    lines = ["  ".join(c.rjust(w) if j in right else c.ljust(w)
                       for j, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in [head, tuple("-" * w for w in widths), *body]]
    return "\n".join(lines)


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
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.sizes and args.quick:
        p.error("--sizes and --quick: give one of them")
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    if any(n < 1 for n in sizes):
        p.error(f"--sizes must be splat counts >= 1, got {' '.join(map(str, sizes))}")

    be = get_backend(args.backend)
    info = be.describe()
    print(f"backend {be.name}: {info['device']}")
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
            rows += bench_size(be, timed, rng, n, args.repeats, check_all=n == min(sizes))
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
          + ") x floats / time; of copy = GB/s / the copy's GB/s; x fused = time / fused Lion's")

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
        "rows": [asdict(r) for r in rows],
    }
    write_result(result, "optim", be.name, info["device"], args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
