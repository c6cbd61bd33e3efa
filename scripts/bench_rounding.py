#!/usr/bin/env python
"""Benchmark minifp's rounding against ml_dtypes, NumPy, gfloat and SoftPosit.

Input: ``--n`` (default 10^7) float32 standard-normal values, seed 0. Each
timing is the best of ``--repeat`` runs after one warm-up run
(time.perf_counter). All peers run in the same process on the same data.

* ml_dtypes / NumPy: ``x.astype(T).astype(np.float32)`` (a round trip, so the
  output is float32 like minifp's ``dtype=np.float32`` variant). minifp is
  timed twice: ``fmt.round(x)`` (output in the format's carrier dtype, e.g.
  float16 for FP8) and ``fmt.round(x, dtype=np.float32)``.
* gfloat: ``gfloat.round_ndarray`` on the first ``--n-gfloat`` (default: all
  10^7) elements, best of ``--repeat-gfloat`` (1) runs after a warm-up, next to
  minifp on the same slice. Its rate depends on the size (it makes dozens of
  float64/int64 passes: in-cache slices run several times faster per element
  than 10^7). Formats gfloat has: float16, bfloat16, OCP E4M3/E5M2,
  MX E2M1/E2M3/E3M2 (the MX ones with sat=True, like minifp's defaults).
  For scale, one informational row (gfloat*) times gfloat's scalar
  ``round_float`` in a Python loop on the SoftPosit slice, for E4M3.
* SoftPosit: a Python loop ``softposit.positN(float(v))`` over the first
  ``--n-softposit`` (2*10^4) elements, per element. SoftPosit's posit8 is
  posit(8,0), posit16 is posit(16,1), posit32 is posit(32,2), so minifp is timed
  on the same formats (posit8_0, posit16_1, posit32_2), on all n elements.

"agree" is the fraction of outputs equal to the peer's (NaN == NaN), on the
data the peer saw. Targets: minifp >= 1.0x ml_dtypes for every FP8 format,
>= 0.5x ml_dtypes / NumPy for bfloat16 and float16, >= 100x gfloat, posit16
>= 100x SoftPosit.

    python scripts/bench_rounding.py [--n 10000000] [--repeat 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from minifp.formats import MODE_NAMES, get_format


def best_time(fn, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def agree(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.mean((a == b) | (np.isnan(a) & np.isnan(b))))


def nsp_slice(args, n: int) -> int:
    return min(args.n_softposit, n)


def melem(n: int, seconds: float) -> float:
    return n / seconds / 1e6


def run(args) -> dict:
    import gfloat
    import gfloat.formats as gff
    import ml_dtypes
    import softposit

    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.n).astype(np.float32)
    n = x.size
    rows = []

    def add(fmt_label, variant, peer, m_rate, p_rate, agree_frac, target, note=""):
        ratio = m_rate / p_rate
        verdict = "-" if target is None else ("PASS" if ratio >= target else "FAIL")
        rows.append(dict(format=fmt_label, variant=variant, peer=peer,
                         minifp_melem_s=m_rate, peer_melem_s=p_rate, ratio=ratio,
                         target=target, verdict=verdict, agree=agree_frac, note=note))

    # ---- ml_dtypes and NumPy: full n ----------------------------------------------
    native = [("bfloat16", ml_dtypes.bfloat16, "ml_dtypes", 0.5),
              ("float16", np.float16, "NumPy", 0.5),
              ("e4m3", ml_dtypes.float8_e4m3fn, "ml_dtypes", 1.0),
              ("e5m2", ml_dtypes.float8_e5m2, "ml_dtypes", 1.0),
              ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz, "ml_dtypes", 1.0),
              ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz, "ml_dtypes", 1.0),
              ("e4m3b11fnuz", ml_dtypes.float8_e4m3b11fnuz, "ml_dtypes", 1.0)]
    minifp_rate = {}
    for name, T, peer, target in native:
        fmt = get_format(name)
        with np.errstate(over="ignore", invalid="ignore"):
            t_peer = best_time(lambda: x.astype(T).astype(np.float32), args.repeat)
            ref = x.astype(T).astype(np.float32)
        t_carrier = best_time(lambda: fmt.round(x), args.repeat)
        t_f32 = best_time(lambda: fmt.round(x, dtype=np.float32), args.repeat)
        a = agree(fmt.round(x, dtype=np.float32), ref)
        p_rate = melem(n, t_peer)
        minifp_rate[name] = melem(n, t_carrier)
        add(name, f"carrier {fmt.carrier}", peer, melem(n, t_carrier), p_rate, a, target)
        add(name, "dtype=float32", peer, melem(n, t_f32), p_rate, a, target)

    # ---- gfloat: a slice, extrapolated per element -------------------------------
    ng = min(args.n_gfloat, n)
    xs = x[:ng]
    gfl = [("float16", gff.format_info_binary16, False),
           ("bfloat16", gff.format_info_bfloat16, False),
           ("e4m3", gff.format_info_ocp_e4m3, False),
           ("e5m2", gff.format_info_ocp_e5m2, False),
           ("e3m2", gff.format_info_ocp_e3m2, True),
           ("e2m3", gff.format_info_ocp_e2m3, True),
           ("e2m1", gff.format_info_ocp_e2m1, True)]
    for name, fi, sat in gfl:
        fmt = get_format(name)
        t_peer = best_time(lambda: gfloat.round_ndarray(fi, xs, sat=sat), args.repeat_gfloat)
        ref = gfloat.round_ndarray(fi, xs, sat=sat)
        a = agree(fmt.round(xs), ref)
        t_carrier = best_time(lambda: fmt.round(xs), args.repeat)
        t_f32 = best_time(lambda: fmt.round(xs, dtype=np.float32), args.repeat)
        note = f"gfloat on {ng} elements"
        add(name, f"carrier {fmt.carrier}", "gfloat", melem(ng, t_carrier), melem(ng, t_peer),
            a, 100.0, note=note)
        add(name, "dtype=float32", "gfloat", melem(ng, t_f32), melem(ng, t_peer), a, 100.0,
            note=note)

    # gfloat's scalar API, for scale (informational: no target)
    fmt = get_format("e4m3")
    sl = [float(v) for v in x[:nsp_slice(args, n)]]
    fi = gff.format_info_ocp_e4m3
    t_peer = best_time(lambda: [gfloat.round_float(fi, v) for v in sl], 1)
    a = agree(fmt.round(x[:len(sl)]), [gfloat.round_float(fi, v) for v in sl])
    add("e4m3", f"carrier {fmt.carrier}", "gfloat*", minifp_rate["e4m3"],
        melem(len(sl), t_peer), a, None, note="gfloat.round_float Python loop")

    # ---- SoftPosit: Python loop on a slice, per element ---------------------------
    nsp = min(args.n_softposit, n)
    vals = [float(v) for v in x[:nsp]]
    for name, ctor, target in [("posit8_0", softposit.posit8, None),
                               ("posit16_1", softposit.posit16, 100.0),
                               ("posit32_2", softposit.posit32, None)]:
        fmt = get_format(name)

        def loop(ctor=ctor):
            return [ctor(v) for v in vals]

        t_peer = best_time(loop, max(1, min(args.repeat, 3)))
        ref = [float(p) for p in loop()]
        a = agree(fmt.round(x[:nsp]), ref)
        t_m = best_time(lambda: fmt.round(x), args.repeat)
        label = {"posit8_0": "posit8 (es 0)", "posit16_1": "posit16 (es 1)",
                 "posit32_2": "posit32 (es 2)"}[name]
        add(label, f"carrier {fmt.carrier}", "softposit", melem(n, t_m), melem(nsp, t_peer),
            a, target, note=f"SoftPosit loop on {nsp} elements, per element")

    # ---- all modes, minifp only ---------------------------------------------------
    modes = []
    for name in ("e4m3", "posit16"):
        fmt = get_format(name)
        for mode in MODE_NAMES:
            def go(mode=mode):
                return fmt.round(x, mode, np.random.default_rng(0))
            modes.append(dict(format=name, mode=mode,
                              melem_s=melem(n, best_time(go, args.repeat))))

    return dict(n=n, repeat=args.repeat, n_gfloat=ng, n_softposit=nsp, rows=rows, modes=modes,
                machine=dict(python=sys.version.split()[0], numpy=np.__version__,
                             ml_dtypes=ml_dtypes.__version__, platform=platform.platform(),
                             cpus=os.cpu_count(), processor=platform.processor()))


def print_report(res: dict):
    print(f"minifp rounding benchmark: n = {res['n']:,} float32 standard-normal inputs, "
          f"best of {res['repeat']} after a warm-up; "
          f"NumPy {res['machine']['numpy']}, ml_dtypes {res['machine']['ml_dtypes']}, "
          f"{res['machine']['cpus']} CPUs")
    head = (f"{'format':<16}{'minifp variant':<18}{'peer':<11}{'minifp Melem/s':>15}"
            f"{'peer Melem/s':>14}{'ratio':>10}{'target':>8}{'':>2}{'result':<7}{'agree':>8}")
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        target = "-" if r["target"] is None else f">={r['target']:g}x"
        print(f"{r['format']:<16}{r['variant']:<18}{r['peer']:<11}{r['minifp_melem_s']:>15.1f}"
              f"{r['peer_melem_s']:>14.3f}{r['ratio']:>9.2f}x{target:>8}{'':>2}"
              f"{r['verdict']:<7}{r['agree']:>8.4f}")
    print(f"gfloat rates: round_ndarray on the first {res['n_gfloat']:,} elements, minifp "
          f"timed on the same slice (gfloat*: its scalar round_float in a Python loop on the "
          f"first {res['n_softposit']:,}); SoftPosit rates: Python loop over softposit.positN(float(v)) "
          f"on the first {res['n_softposit']:,} elements, per element. Other minifp rates: all "
          f"{res['n']:,} elements.")
    print()
    print("minifp, every rounding mode (output in the carrier; stochastic includes drawing "
          "its random numbers):")
    modes = [m["mode"] for m in res["modes"] if m["format"] == "e4m3"]
    print(f"{'format':<10}" + "".join(f"{m:>14}" for m in modes) + "   (Melem/s)")
    for fmt in ("e4m3", "posit16"):
        rates = {m["mode"]: m["melem_s"] for m in res["modes"] if m["format"] == fmt}
        print(f"{fmt:<10}" + "".join(f"{rates[m]:>14.1f}" for m in modes))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="number of inputs (10^7)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs (5)")
    ap.add_argument("--repeat-gfloat", type=int, default=1,
                    help="best of this many gfloat runs (1: it takes seconds at 10^7)")
    ap.add_argument("--n-gfloat", type=int, default=10_000_000,
                    help="elements given to gfloat (10^5)")
    ap.add_argument("--n-softposit", type=int, default=20_000,
                    help="elements given to SoftPosit's Python loop (2*10^4)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args(argv)
    res = run(args)
    print_report(res)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
