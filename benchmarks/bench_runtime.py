"""Time the kernel runtime itself: a sync-free kernel, a barrier-heavy one, a shuffle-heavy one.

    python benchmarks/bench_runtime.py                  # backend chosen as usual (cuda, else cpu)
    python benchmarks/bench_runtime.py --backend cpu    # force one
    python benchmarks/bench_runtime.py --quick          # smaller sizes, a quick check

Cases (kernels in benchmarks/kernels/bench_runtime.cu, one CUDA thread per element, 256
threads per block):

1. axpy       out = a * x + y over 1e7 floats, against the same expression in the backend's
              xp (NumPy or CuPy). Target on the CPU: the kernel within 3x of NumPy.
2. tree_sum   per-block sums over 1e6 floats through a shared-memory tree with a
              __syncthreads per level: what barriers cost (DESIGN §3: ~200 ns per thread).
3. warp_sum   per-warp sums over 1e6 floats through five __shfl_xor_sync: what warp
              collectives cost.

The module is compiled (or found in the cache) first; each kernel is run once to warm up, its
output (poisoned with NaN before) is checked against NumPy in float64, then it is timed
`--repeats` times and the median is reported; a wrong result exits with status 1. A run is
flagged NOISY when other processes kept the CPUs busy or a case's repeats spread out. The
reference column times `xp.sum(x)` for the reductions (a full sum, while the kernels stop at
per-block / per-warp totals). On a GPU, times come from CUDA events around each call; on the
CPU, from the wall clock. A missed target is reported, not an error. The table is printed and
written, with the machine's description, as JSON to benchmarks/results/ (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench_common import (HERE, NOISY_SPREAD, OtherLoad, WrongResult, check_close, make_timer,
                          print_noise, repeat, result_fields, write_result)

from splat_lion import get_backend, kernels
from splat_lion.backend import Backend
from splat_lion.kernels import BLOCK  # threads per block of every case (a power of two)

KERNEL_FILE = HERE / "kernels" / "bench_runtime.cu"

# Largest kernel / reference time ratio the axpy case may have on the CPU backend.
AXPY_CPU_MAX_RATIO = 3.0


@dataclass(frozen=True)
class Sizes:
    # elements of the axpy case
    axpy: int
    # elements of the two reduction cases
    reduce: int

    def __post_init__(self):
        for name in ("axpy", "reduce"):
            if getattr(self, name) < 1:
                raise ValueError(f"Sizes.{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def default(cls) -> "Sizes":
        return cls(axpy=10_000_000, reduce=1_000_000)

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(axpy=1_000_000, reduce=100_000)


@dataclass
class Row:
    # case name: axpy, tree_sum, warp_sum
    case: str
    # kernel timed (in benchmarks/kernels/bench_runtime.cu)
    kernel: str
    # elements processed
    n: int
    # launch shape: blocks of `block` threads
    blocks: int
    block: int
    # CUDA threads launched (blocks * block)
    threads: int
    # median kernel time over the repeats, milliseconds
    kernel_ms: float
    # every repeat's kernel time, milliseconds
    kernel_ms_all: list[float]
    # the reference expression timed, in the backend's xp
    reference: str
    # median reference time, milliseconds
    reference_ms: float
    reference_ms_all: list[float]
    # kernel_ms / reference_ms
    ratio: float
    # kernel time per CUDA thread launched, nanoseconds
    ns_per_thread: float
    # slowest / fastest kernel repeat (above NOISY_SPREAD the run is flagged as noisy)
    kernel_spread: float
    # the target this case has on this backend, in words, or None
    target: str | None
    # whether it was met (None when there is no target)
    target_met: bool | None
    # largest |kernel - NumPy float64| over the outputs, and the tolerance it was held to
    max_error: float
    tolerance: float


def group_sums(x: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 sums of x and of |x| over consecutive groups of `group` elements (last padded)."""
    pad = (-x.size) % group
    x64 = np.concatenate([x.astype(np.float64), np.zeros(pad)]).reshape(-1, group)
    return x64.sum(axis=1), np.abs(x64).sum(axis=1)


# -- cases -------------------------------------------------------------------------------

def bench_axpy(be: Backend, mod, timed, n: int, repeats: int, rng) -> Row:
    k = mod.get_function("bench_axpy")
    a = 2.5
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    xd, yd = be.asarray(x, tag="scratch"), be.asarray(y, tag="scratch")
    out = be.empty((n,), np.float32, tag="scratch")
    out.fill(np.nan)  # poison: unwritten elements fail the check
    blocks = (n + BLOCK - 1) // BLOCK
    args = (xd, yd, out, np.float32(a), np.int64(n))

    def run_kernel():
        be.launch(k, (blocks,), (BLOCK,), args)

    def run_reference():
        return a * xd + yd  # a Python float: float32 result in NumPy and CuPy

    # warm up (the first launch compiled nothing: get_function did), then check
    run_kernel()
    want = np.float64(a) * x.astype(np.float64) + y.astype(np.float64)
    # one rounding of the product and one of the sum (or a single one with FMA on the GPU)
    tol = 2 * float(np.finfo(np.float32).eps) * (np.abs(np.float64(a) * x) + np.abs(y)) + 1e-30
    max_err, max_tol = check_close("axpy", be.to_numpy(out), want, tol)
    ref = be.to_numpy(run_reference())
    check_close("axpy reference", ref, want, tol)

    kernel_all = repeat(timed, run_kernel, repeats)
    check_close("axpy (after timing)", be.to_numpy(out), want, tol)
    run_reference()
    ref_all = repeat(timed, run_reference, repeats)
    target = f"kernel <= {AXPY_CPU_MAX_RATIO:g}x NumPy" if be.name == "cpu" else None
    return make_row("axpy", "bench_axpy", n, blocks, kernel_all,
                    "a * x + y", ref_all, target,
                    (lambda r: r <= AXPY_CPU_MAX_RATIO) if target else None, max_err, max_tol)


def bench_reduction(be: Backend, mod, timed, case: str, n: int, repeats: int, rng) -> Row:
    xp = be.xp
    kernel_name = f"bench_{case}"
    group = BLOCK if case == "tree_sum" else 32
    k = mod.get_function(kernel_name)
    x = rng.standard_normal(n, dtype=np.float32)
    xd = be.asarray(x, tag="scratch")
    blocks = (n + BLOCK - 1) // BLOCK
    out = be.empty(((n + group - 1) // group,), np.float32, tag="scratch")
    out.fill(np.nan)
    args = (xd, out, np.int64(n))

    def run_kernel():
        be.launch(k, (blocks,), (BLOCK,), args)

    def run_reference():
        return xp.sum(xd)

    run_kernel()
    want, abs_sums = group_sums(x, group)
    # a pairwise tree of depth log2(group): each level adds at most one rounding per element
    depth = int(np.log2(group))
    tol = (depth + 1) * float(np.finfo(np.float32).eps) * abs_sums + 1e-30
    max_err, max_tol = check_close(case, be.to_numpy(out), want, tol)
    total = float(be.to_numpy(out).astype(np.float64).sum())
    total_tol = (depth + 2) * float(np.finfo(np.float32).eps) * float(abs_sums.sum())
    if not abs(total - float(want.sum())) <= total_tol:
        raise WrongResult(f"{case}: total of the partial sums {total!r} differs from NumPy's "
                          f"{float(want.sum())!r} by more than {total_tol:.3e}")

    kernel_all = repeat(timed, run_kernel, repeats)
    check_close(f"{case} (after timing)", be.to_numpy(out), want, tol)
    run_reference()
    ref_all = repeat(timed, run_reference, repeats)
    return make_row(case, kernel_name, n, blocks, kernel_all, "xp.sum(x)", ref_all,
                    None, None, max_err, max_tol)


def make_row(case, kernel, n, blocks, kernel_all, reference, ref_all, target, meets,
             max_err, max_tol) -> Row:
    kernel_ms = statistics.median(kernel_all)
    reference_ms = statistics.median(ref_all)
    ratio = kernel_ms / reference_ms if reference_ms > 0 else float("inf")
    threads = blocks * BLOCK
    spread = max(kernel_all) / min(kernel_all) if min(kernel_all) > 0 else float("inf")
    return Row(case=case, kernel=kernel, n=n, blocks=blocks, block=BLOCK, threads=threads,
               kernel_ms=kernel_ms, kernel_ms_all=kernel_all, reference=reference,
               reference_ms=reference_ms, reference_ms_all=ref_all, ratio=ratio,
               ns_per_thread=kernel_ms * 1e6 / threads,
               kernel_spread=spread, target=target,
               target_met=meets(ratio) if meets else None, max_error=max_err, tolerance=max_tol)


# -- report ------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    head = ("case", "size", "kernel ms", "reference", "ref ms", "ratio", "ns/thread", "target met?")
    body = []
    for r in rows:
        met = "-" if r.target is None else f"{'YES' if r.target_met else 'NO'} ({r.target})"
        body.append((r.case, f"{r.n:.0e}".replace("e+0", "e"), f"{r.kernel_ms:.3f}", r.reference,
                     f"{r.reference_ms:.3f}", f"{r.ratio:.2f}", f"{r.ns_per_thread:.2f}", met))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
             for line in [head, tuple("-" * w for w in widths), *body]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("cpu", "cuda"), default=None,
                   help="force a backend (default: as splat_lion.get_backend chooses)")
    p.add_argument("--quick", action="store_true",
                   help=f"smaller sizes ({Sizes.quick().axpy:.0e} / {Sizes.quick().reduce:.0e})")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per case; the median is kept")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file to write (default: benchmarks/results/"
                        "<date>-<backend>-<device>-runtime[-quick].json)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")

    be = get_backend(args.backend)
    sizes = Sizes.quick() if args.quick else Sizes.default()
    info = be.describe()
    print(f"backend {be.name}: {info['device']}")
    print(f"compiler: {info['compiler']}")

    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    load = OtherLoad()
    t0 = time.perf_counter()
    mod = kernels.module_from_file(KERNEL_FILE, backend=be)
    mod.get_function("bench_axpy")  # compiles the module (or finds it in the cache)
    compile_s = time.perf_counter() - t0
    timed = make_timer(be)

    try:
        rows = [bench_axpy(be, mod, timed, sizes.axpy, args.repeats, rng),
                bench_reduction(be, mod, timed, "tree_sum", sizes.reduce, args.repeats, rng),
                bench_reduction(be, mod, timed, "warp_sum", sizes.reduce, args.repeats, rng)]
    except WrongResult as e:
        print(f"\nWRONG RESULT: {e}", file=sys.stderr)
        return 1

    other_share = load.share()  # of all CPUs, by other processes during the run

    print(f"\nmedian of {args.repeats} runs after one warm-up; "
          "every result checked against NumPy\n")
    print(table(rows))
    print()
    for r in rows:
        if r.target is not None:
            verdict = "MET" if r.target_met else "MISSED"
            print(f"target {verdict}: {r.case}: {r.target}; measured {r.ratio:.2f}x "
                  f"({r.kernel_ms:.3f} ms vs {r.reference_ms:.3f} ms)")
    noisy = [r for r in rows if r.kernel_spread > NOISY_SPREAD]
    busy = print_noise(other_share, [(f"{r.case} kernel", r.kernel_ms_all) for r in noisy], 3)
    if all(r.target is None for r in rows):
        print(f"no targets on the {be.name} backend (the axpy target is for the CPU runtime)")

    result = {
        **result_fields("runtime", be.name, info),
        "quick": args.quick,
        "repeats": args.repeats,
        "seed": args.seed,
        "block": BLOCK,
        "timer": "CUDA events" if be.name == "cuda" else "time.perf_counter around synchronize",
        "compile_or_cache_s": round(compile_s, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xp": f"{be.xp.__name__} {be.xp.__version__}",
        "cpu_threads_env": os.environ.get("SPLAT_LION_CPU_THREADS"),
        # 1/5/15-minute load averages before and after: other work on the machine skews times
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        # share of all CPUs other processes kept busy during the run (Linux only)
        "other_processes_cpu_share": None if other_share is None else round(other_share, 4),
        "all_targets_met": all(r.target_met for r in rows if r.target is not None),
        # whether the times are suspect: other processes busy, or a case's repeats spread out
        "noisy": busy or bool(noisy),
        "noisy_cases": [r.case for r in noisy],
        "rows": [asdict(r) for r in rows],
    }
    write_result(result, "runtime", be.name, info["device"], args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
