"""Time every explicit order side by side in one run: the C kernels, the NumPy engine and
float32 BLAS, at equal thread counts.

Sections (each prints times and ratios to NumPy's float32 ``matmul`` measured in the same
run; medians of --repeat runs):

  matmul   a (M x K) @ (K x N) product (default 128x784 @ 784x256, float16 inputs), every
           order with float16 and float32 accumulators, kernels vs the NumPy engine;
  conv1    the LeNet-5 conv1 weight-gradient shape: 6 x 25 outputs of 73,728 terms each;
  growth   how the kernels' cost grows with K (64 .. 4096) and with the number of outputs.

    python scripts/bench_accumulate.py [--threads 1] [--repeat 5] [--skip-numpy]
                                       [--sections matmul,conv1,growth] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minifp import kernels
from minifp.accumulate import Accumulation, matmul

ORDERS = ["sequential", "pairwise", "blocked:32", "exact"]


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def with_backend(backend, fn):
    os.environ["MINIFP_KERNELS"] = backend
    try:
        return fn()
    finally:
        os.environ["MINIFP_KERNELS"] = "auto"


def blas_time(a, b, repeat):
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    return median_time(lambda: a32 @ b32, max(repeat, 30))


def section_matmul(args, rows):
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((args.m, args.k)).astype(np.float16)
    b = (rng.standard_normal((args.k, args.n)) / np.sqrt(args.k)).astype(np.float16)
    blas = blas_time(a, b, args.repeat)
    print(f"\n[matmul] {args.m}x{args.k} @ {args.k}x{args.n}, float16 inputs; float32 BLAS "
          f"{blas * 1e3:.2f} ms")
    print(f"{'accumulation':34s} {'kernels ms':>11s} {'x BLAS':>7s} {'numpy ms':>10s} "
          f"{'x BLAS':>7s} {'speed-up':>9s}")
    for acc_name in ("float16", "float32"):
        for order in ORDERS:
            acc = Accumulation(acc_name, order)
            tk = with_backend("c", lambda: median_time(lambda: matmul(a, b, acc), args.repeat))
            tn = None
            if not args.skip_numpy:
                tn = with_backend("numpy", lambda: median_time(lambda: matmul(a, b, acc),
                                                               max(1, args.repeat // 2)))
            _row(rows, "matmul", str(acc), tk, tn, blas)


def section_conv1(args, rows):
    """conv1 of LeNet-5 on a batch of 128 28x28 images: dW (6, 25) = sum over 128 x 24 x 24
    positions of dY (6, 73728) @ patches (73728, 25)."""
    rng = np.random.default_rng(args.seed + 1)
    K = 128 * 24 * 24
    g = (rng.standard_normal((6, K)) * 1e-2).astype(np.float16)
    p = rng.random((K, 25)).astype(np.float16)
    blas = blas_time(g, p, args.repeat)
    print(f"\n[conv1] LeNet-5 conv1 weight gradient, 6x{K} @ {K}x25 (150 outputs); float32 "
          f"BLAS {blas * 1e3:.2f} ms")
    for acc_name in ("float16", "float32"):
        for order in ("sequential", "pairwise", "exact"):
            acc = Accumulation(acc_name, order)
            tk = with_backend("c", lambda: median_time(lambda: matmul(g, p, acc), args.repeat))
            tn = None
            if not args.skip_numpy and order == "sequential":
                tn = with_backend("numpy", lambda: median_time(lambda: matmul(g, p, acc), 1))
            _row(rows, "conv1", str(acc), tk, tn, blas)


def section_growth(args, rows):
    rng = np.random.default_rng(args.seed + 2)
    acc = Accumulation("float16", "sequential")
    print("\n[growth] float16 sequential kernels: ns per term (one product-add) as K grows "
          "(128 x K @ K x 256), and as the outputs grow (K = 784)")
    print(f"{'K':>6s} {'ms':>9s} {'ns/term':>8s} {'x BLAS':>7s}")
    for K in (64, 128, 256, 512, 1024, 2048, 4096):
        a = rng.standard_normal((128, K)).astype(np.float16)
        b = rng.standard_normal((K, 256)).astype(np.float16)
        blas = blas_time(a, b, args.repeat)
        t = with_backend("c", lambda: median_time(lambda: matmul(a, b, acc), args.repeat))
        print(f"{K:6d} {t * 1e3:9.2f} {t / (128 * K * 256) * 1e9:8.2f} {t / blas:7.1f}")
        rows.append({"section": "growth-K", "K": K, "ms": t * 1e3, "x_blas": t / blas})
    print(f"{'outputs':>8s} {'ms':>9s} {'ns/term':>8s} {'x BLAS':>7s}")
    for m, n in ((1, 1), (1, 16), (4, 64), (16, 256), (128, 256), (512, 512)):
        a = rng.standard_normal((m, 784)).astype(np.float16)
        b = rng.standard_normal((784, n)).astype(np.float16)
        blas = blas_time(a, b, args.repeat)
        t = with_backend("c", lambda: median_time(lambda: matmul(a, b, acc), args.repeat))
        print(f"{m * n:8d} {t * 1e3:9.3f} {t / (m * 784 * n) * 1e9:8.2f} {t / blas:7.1f}")
        rows.append({"section": "growth-outputs", "outputs": m * n, "ms": t * 1e3,
                     "x_blas": t / blas})


def _row(rows, section, label, tk, tn, blas):
    numpy_part = (f"{tn * 1e3:10.1f} {tn / blas:7.0f} {tn / tk:8.1f}x" if tn is not None
                  else f"{'-':>10s} {'-':>7s} {'-':>9s}")
    print(f"{label:34s} {tk * 1e3:11.2f} {tk / blas:7.1f} {numpy_part}")
    rows.append({"section": section, "accumulation": label, "kernels_ms": tk * 1e3,
                 "numpy_ms": None if tn is None else tn * 1e3, "blas_ms": blas * 1e3,
                 "kernels_x_blas": tk / blas})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--k", type=int, default=784)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads and kernel threads alike (default 1)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-numpy", action="store_true", help="time only kernels and BLAS")
    ap.add_argument("--sections", default="matmul,conv1,growth")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    os.environ["MINIFP_THREADS"] = str(args.threads)
    if kernels.library() is None:
        raise SystemExit("the C kernels are unavailable here: nothing to compare")
    print(f"threads: {args.threads} (BLAS and kernels); {kernels.describe()}")
    rows = []
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for name in args.sections.split(","):
            {"matmul": section_matmul, "conv1": section_conv1,
             "growth": section_growth}[name.strip()](args, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
