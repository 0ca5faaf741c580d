"""Time 3DGS PLY load and save: target, loading 1M splats (SH degree 3) in under 2 s on the CPU.

    python benchmarks/bench_ply.py                 # 1M splats, SH degree 3
    python benchmarks/bench_ply.py --splats 100000 --repeats 5

Writes a scene of random splats to a temporary folder, then times save_ply and load_ply
(median of --repeats, after one warm-up that also checks the round trip is bit-exact), prints
a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_common import result_fields, write_result

from splat_lion import Gaussians, get_backend, load_ply, save_ply
from splat_lion.sh import sh_coeffs

LOAD_TARGET_S = 2.0  # for 1M splats at SH degree 3, on the CPU
TARGET_SPLATS = 1_000_000


def random_scene(n: int, degree: int, seed: int) -> Gaussians:
    rng = np.random.default_rng(seed)
    k = sh_coeffs(degree)
    return Gaussians.from_arrays(
        rng.standard_normal((n, 3)), rng.standard_normal((n, 3)) - 4, rng.standard_normal((n, 4)),
        rng.standard_normal(n), rng.standard_normal((n, 1, 3)),
        rng.standard_normal((n, k - 1, 3)) if k > 1 else None, backend=get_backend("cpu"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splats", type=int, default=TARGET_SPLATS)
    p.add_argument("--sh-degree", type=int, default=3, choices=(0, 1, 2, 3))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    info = get_backend("cpu").describe()
    g = random_scene(args.splats, args.sh_degree, seed=0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "scene.ply"
        save_ply(g, path)
        if load_ply(path).params.data.tobytes() != g.params.data.tobytes():
            print("WRONG RESULT: the round trip is not bit-exact", file=sys.stderr)
            return 1
        size = path.stat().st_size
        times = {"save": [], "load": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            save_ply(g, path)
            times["save"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_ply(path)
            times["load"].append(time.perf_counter() - t0)
    rows = [{"op": op, "splats": args.splats, "sh_degree": args.sh_degree, "bytes": size,
             "s": round(statistics.median(ts), 4), "s_all": [round(t, 4) for t in ts],
             "mb_per_s": round(size / statistics.median(ts) / 1e6, 1)} for op, ts in times.items()]
    print(f"{info['device']}\n{args.splats:,} splats, SH degree {args.sh_degree}, "
          f"{size / 1e6:.1f} MB; median of {args.repeats}\n")
    print(f"{'op':<6} {'s':>8} {'MB/s':>8}")
    for r in rows:
        print(f"{r['op']:<6} {r['s']:>8.3f} {r['mb_per_s']:>8.1f}")
    load_s = rows[1]["s"]
    target = None
    if args.splats == TARGET_SPLATS and args.sh_degree == 3:
        target = load_s < LOAD_TARGET_S
        print(f"\ntarget {'MET' if target else 'MISSED'}: load 1M splats in under "
              f"{LOAD_TARGET_S} s: {load_s:.3f} s")
    result = {**result_fields("ply", "cpu", info),
              "python": platform.python_version(), "numpy": np.__version__, "rows": rows,
              "load_target_s": LOAD_TARGET_S, "target_met": target}
    write_result(result, "ply", "cpu", info["device"], out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
