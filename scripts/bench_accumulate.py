"""Time each accumulation order on one matmul, side by side in one run.

Prints, for a (M x K) @ (K x N) product (default 128x784 @ 784x256, inputs in float16),
the time of each order as a ratio to NumPy's float32 ``matmul`` (BLAS) measured in the
same run, plus the exact/sequential ratio.  Timings are medians of --repeat runs.

    python scripts/bench_accumulate.py [--m 128 --k 784 --n 256] [--repeat 5] [--json F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from minifp.accumulate import Accumulation, matmul
from minifp.formats import get_format

CASES = [
    ("float16 sequential", "float16", Accumulation("float16", "sequential")),
    ("float16 pairwise", "float16", Accumulation("float16", "pairwise")),
    ("float16 blocked:32", "float16", Accumulation("float16", "blocked:32")),
    ("float16 exact", "float16", Accumulation("float16", "exact")),
    ("bfloat16 in, float32 sequential", "bfloat16", Accumulation("float32", "sequential")),
    ("float16 in, float32 sequential", "float16", Accumulation("float32", "sequential")),
    ("float16 native (float32 BLAS)", "float16", Accumulation("float16", "native")),
]


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--k", type=int, default=784)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((args.m, args.k))
    b = rng.standard_normal((args.k, args.n)) / np.sqrt(args.k)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    blas = median_time(lambda: a32 @ b32, max(args.repeat, 50))
    print(f"{args.m}x{args.k} @ {args.k}x{args.n}; numpy float32 matmul (BLAS): "
          f"{blas * 1e3:.3f} ms")
    print(f"{'order':40s} {'ms':>9s} {'x BLAS':>8s}")
    rows = {}
    for label, infmt, acc in CASES:
        fmt = get_format(infmt)
        x, y = fmt.round(a), fmt.round(b)
        t = median_time(lambda: matmul(x, y, acc), args.repeat)
        rows[label] = t
        print(f"{label:40s} {t * 1e3:9.2f} {t / blas:8.1f}")
    ratio = rows["float16 exact"] / rows["float16 sequential"]
    print(f"exact / sequential (float16): {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": [args.m, args.k, args.n], "blas_float32_s": blas,
                       "seconds": rows, "ratio_to_blas": {k: v / blas for k, v in rows.items()},
                       "exact_over_sequential": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
