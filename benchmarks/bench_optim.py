"""Time the optimizer step: fused Lion (fp32, bf16), per-attribute launches, plain array
expressions and fused Adam, against a device-to-device copy of the same bytes.

    python benchmarks/bench_optim.py                  # N = 10k, 100k, 1M, 3M splats, SH degree 3
    python benchmarks/bench_optim.py --quick          # N = 10k, 100k, 1M
    python benchmarks/bench_optim.py --sizes 50000 --backend cpu

Variants (every one updates all 59 floats of every splat, each attribute at its own lr):
  lion_fused       Lion.step_all: ONE launch (kernels/lion.cu)            20 B/float
  lion_bf16        the same with bfloat16 momentum                         16 B/float
  lion_per_attr    lion_step once per attribute (6 launches)               20 B/float
  lion_plain       Lion as plain xp array expressions, attribute by attribute (counted at
                   the ideal 20 B/float: it moves more, which is the point)
  adam_fused       Adam.step_all: ONE launch (kernels/adam.cu)             28 B/float
  copy             xp.copyto of 10 B/float: reads + writes the bytes fused Lion moves
B/float counts reads and writes: Lion reads p, g, m and writes p, m. GB/s = bytes / time;
"of copy" = GB/s / the copy's GB/s in the same run. GPU targets: fused Lion >= 90% of copy
at >= 1M splats, bf16 <= 0.85x the fp32 time, fused >= 4x faster than plain expressions.
Before timing, one fused Lion step at the smallest N is checked against the NumPy reference.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

from bench_runtime import (busy_cpu_s, device_slug, git_state, make_timer,  # noqa: E402
                           own_cpu_s)

from splat_lion import Adam, Flat, Layout, Lion, LrTable, get_backend  # noqa: E402
from splat_lion.optim import lion_step  # noqa: E402
from splat_lion.reference.lion import lion_step as lion_reference  # noqa: E402

RESULTS_DIR = HERE / "results"
SIZES = (10_000, 100_000, 1_000_000, 3_000_000)
QUICK_SIZES = (10_000, 100_000, 1_000_000)
BYTES_PER_FLOAT = {"lion_fused": 20, "lion_bf16": 16, "lion_per_attr": 20, "lion_plain": 20,
                   "adam_fused": 28, "copy": 20}
# GPU targets (issue 3)
FUSED_MIN_COPY_FRACTION = 0.90
BF16_MAX_TIME_RATIO = 0.85
FUSED_MIN_SPEEDUP_OVER_PLAIN = 4.0


def random_flat(be, rng, layout, tag):
    return Flat(layout, be.asarray(rng.standard_normal(layout.total).astype(np.float32), tag=tag))


def check_fused_lion(be, rng) -> None:
    """One fused step against the reference, so a broken kernel is never timed."""
    lay = Layout.gaussians(1000, 3)
    p, g = random_flat(be, rng, lay, "params"), random_flat(be, rng, lay, "grads")
    p0 = be.to_numpy(p.data).copy()
    opt = Lion(1e-3, lr_table=LrTable.lion_default(), backend=be)
    opt.step_all(p, g)
    hyper = np.array([[opt.effective_lr(n), 0.0] for n in lay.names], np.float32)
    want, _ = lion_reference(p0, be.to_numpy(g.data), np.zeros(lay.total, np.float32),
                             lay.segment_table(), hyper, opt.beta1, opt.beta2)
    if not np.allclose(be.to_numpy(p.data), want, rtol=1e-5, atol=1e-6):
        raise SystemExit("WRONG RESULT: fused Lion differs from the reference; not timing it")


def plain_lion(xp, opt, params, grads, momentum) -> None:
    """Lion written as array expressions, one attribute at a time (no fused kernel)."""
    b1, b2 = np.float32(opt.beta1), np.float32(opt.beta2)
    for name in params.layout.names:
        p, g, m = params[name], grads[name], momentum[name]
        lr = np.float32(opt.effective_lr(name))
        c = b1 * m + (1 - b1) * g
        p -= lr * (xp.sign(c) + np.float32(opt.weight_decay) * p)
        m *= b2
        m += (1 - b2) * g


def bench_size(be, timed, rng, n: int, repeats: int) -> list[dict]:
    xp = be.xp
    lay = Layout.gaussians(n, 3)
    params, grads = random_flat(be, rng, lay, "params"), random_flat(be, rng, lay, "grads")
    table = LrTable.lion_default()
    lion = Lion(1e-4, lr_table=table, backend=be)
    lion16 = Lion(1e-4, lr_table=table, momentum_dtype="bfloat16", backend=be)
    adam = Adam(1e-3, lr_table=LrTable.adam_3dgs(), backend=be)
    per_attr_state = {s.name: be.zeros((s.end - s.begin,), np.float32, tag="optimizer")
                      for s in lay.segments}
    plain_state = Flat.zeros(lay, tag="optimizer", backend=be)
    # 10 B/float of real data (untouched zeros would all read one shared zero page)
    copy_src = be.asarray(rng.standard_normal(lay.total * 10 // 4).astype(np.float32),
                          tag="scratch")
    copy_dst = be.zeros(copy_src.shape, np.float32, tag="scratch")

    def per_attr():
        for s in lay.segments:
            lion_step(params.data[s.begin:s.end], grads.data[s.begin:s.end],
                      per_attr_state[s.name], np.array([[0, s.end - s.begin, s.width]], np.int64),
                      np.array([[lion.effective_lr(s.name), 0.0]], np.float32),
                      lion.beta1, lion.beta2, backend=be)

    variants = {
        "lion_fused": lambda: lion.step_all(params, grads),
        "lion_bf16": lambda: lion16.step_all(params, grads),
        "lion_per_attr": per_attr,
        "lion_plain": lambda: plain_lion(xp, lion, params, grads, plain_state),
        "adam_fused": lambda: adam.step_all(params, grads),
        "copy": lambda: xp.copyto(copy_dst, copy_src),
    }
    for fn in variants.values():  # warm-up: compile, allocate state
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved, so drifts hit every variant alike
        for k, fn in variants.items():
            times[k].append(timed(fn))
    rows = []
    copy_gbps = BYTES_PER_FLOAT["copy"] * lay.total / statistics.median(times["copy"]) / 1e6
    for k, ts in times.items():
        ms = statistics.median(ts)
        gbps = BYTES_PER_FLOAT[k] * lay.total / ms / 1e6
        rows.append({"splats": n, "floats": lay.total, "variant": k, "ms": round(ms, 4),
                     "ms_all": [round(t, 4) for t in ts], "bytes_per_float": BYTES_PER_FLOAT[k],
                     "gb_per_s": round(gbps, 2), "of_copy": round(gbps / copy_gbps, 3),
                     "spread": round(max(ts) / min(ts), 3)})
    return rows


def targets(rows: list[dict]) -> list[dict]:
    out = []
    by = {(r["splats"], r["variant"]): r for r in rows}
    for n in sorted({r["splats"] for r in rows}):
        fused, bf16, plain = by[n, "lion_fused"], by[n, "lion_bf16"], by[n, "lion_plain"]
        checks = [("bf16 <= 0.85x fp32 time", bf16["ms"] / fused["ms"], BF16_MAX_TIME_RATIO, "<="),
                  ("fused >= 4x plain expressions", plain["ms"] / fused["ms"],
                   FUSED_MIN_SPEEDUP_OVER_PLAIN, ">=")]
        if n >= 1_000_000:
            checks.insert(0, ("fused >= 90% of copy", fused["of_copy"], FUSED_MIN_COPY_FRACTION,
                              ">="))
        for what, value, bound, op in checks:
            met = value <= bound if op == "<=" else value >= bound
            out.append({"splats": n, "target": what, "value": round(value, 3), "met": met})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("cpu", "cuda"), default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="splat counts")
    p.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per variant (median kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = p.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)

    be = get_backend(args.backend)
    info = be.describe()
    print(f"backend {be.name}: {info['device']}\ncompiler: {info['compiler']}")
    rng = np.random.default_rng(args.seed)
    check_fused_lion(be, rng)
    timed = make_timer(be)
    busy0, own0, wall0 = busy_cpu_s(), own_cpu_s(), _dt.datetime.now().timestamp()
    rows = []
    for n in sizes:
        rows += bench_size(be, timed, rng, n, args.repeats)
        be.xp.get_default_memory_pool().free_all_blocks() if be.name == "cuda" else None
    other = None
    busy1 = busy_cpu_s()
    if busy0 is not None and busy1 is not None:
        wall = _dt.datetime.now().timestamp() - wall0
        other = max(0.0, ((busy1 - busy0) - (own_cpu_s() - own0)) / (wall * (os.cpu_count() or 1)))

    print(f"\nmedian of {args.repeats} interleaved runs after a warm-up\n")
    print(f"{'splats':>9}  {'variant':<14} {'ms':>10} {'GB/s':>8} {'of copy':>8} {'spread':>7}")
    for r in rows:
        print(f"{r['splats']:>9,}  {r['variant']:<14} {r['ms']:>10.3f} {r['gb_per_s']:>8.1f} "
              f"{r['of_copy']:>8.2f} {r['spread']:>7.2f}")
    checks = targets(rows)
    print()
    for c in checks:
        verdict = ("MET" if c["met"] else "MISSED") if be.name == "cuda" else "n/a (GPU target)"
        print(f"{c['splats']:>9,}  {c['target']:<32} {c['value']:>7.3f}  {verdict}")
    noisy = (other is not None and other > 0.05) or any(r["spread"] > 1.25 for r in rows)
    if noisy:
        print("NOISY: other processes were busy or repeats spread out; rerun on a quiet machine")

    today = _dt.date.today().isoformat()
    result = {"benchmark": "optim", "date": today, "backend": be.name, **info, **git_state(),
              "python": platform.python_version(), "numpy": np.__version__,
              "xp": f"{be.xp.__name__} {be.xp.__version__}", "repeats": args.repeats,
              "sh_degree": 3, "floats_per_splat": 59,
              "other_processes_cpu_share": None if other is None else round(other, 4),
              "noisy": noisy, "rows": rows, "targets": checks,
              "targets_apply": be.name == "cuda"}
    out = args.out or RESULTS_DIR / f"{today}-{be.name}-{device_slug(info['device'])}-optim.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
