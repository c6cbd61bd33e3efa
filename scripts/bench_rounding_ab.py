#!/usr/bin/env python
"""Rounding speed of this checkout against another minifp tree, side by side in one process.

The other tree's ``minifp`` package (``--before DIR``, e.g. a ``git worktree`` of an older
commit) is copied to a temporary folder as ``minifp_before`` (its imports are relative),
so both load in this process.  For every registered format, ``fmt.round(x)`` (output in the
carrier) and ``fmt.round(x, dtype=np.float32)`` on the same ``--n`` float32 standard-normal
inputs are timed alternately (before, after, after, before, ...), ``--repeat`` times each;
the table shows the best times, the speed ratio after / before (above 1: faster) and checks
that both give the same bits.  A ratio below ``1 - --tolerance`` is marked SLOWER.  The
``A/A`` column times this checkout against a copy of itself loaded the same way: what two
identical trees differ by on this machine (allocation, cache placement), so a ratio inside
its spread is no measured difference.

    git worktree add /tmp/minifp-before <commit>
    python scripts/bench_rounding_ab.py --before /tmp/minifp-before [--n 10000000]
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMATS = ["float16", "bfloat16", "tf32", "e5m2", "e4m3", "e4m3fnuz", "e5m2fnuz",
           "e4m3b11fnuz", "e3m2", "e2m3", "e2m1", "posit8", "posit16", "posit32",
           "posit8_0", "posit16_1"]


def load_copy(tree: Path, tmp: Path, name: str):
    shutil.copytree(tree / "minifp", tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    if str(tmp) not in sys.path:
        sys.path.insert(0, str(tmp))
    return importlib.import_module(f"{name}.formats")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="a tree holding the older minifp/")
    ap.add_argument("--n", type=int, default=10_000_000, help="inputs (10^7)")
    ap.add_argument("--repeat", type=int, default=10, help="timings of each side (10)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    args = ap.parse_args()
    import minifp.formats as after
    x = np.random.default_rng(0).standard_normal(args.n).astype(np.float32)
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        before = load_copy(Path(args.before).resolve(), Path(tmp), "minifp_before")
        control = load_copy(here, Path(tmp), "minifp_control")
        print(f"{'format':12s} {'output':14s} {'before ms':>9s} {'after ms':>9s} "
              f"{'speed ratio':>11s} {'A/A':>6s}")
        worst, spread = None, 0.0
        for name in FORMATS:
            sides = {"before": before.get_format(name), "after": after.get_format(name),
                     "control": control.get_format(name)}
            for label, kw in (("carrier", {}), ("dtype=float32", {"dtype": np.float32})):
                if label != "carrier" and not sides["after"].fits_in(np.float32):
                    continue
                times = {k: [] for k in sides}
                for f in sides.values():
                    f.round(x[:1000], **kw)
                keys = list(sides)
                for i in range(args.repeat):
                    outs = {}
                    for k in (keys if i % 2 == 0 else keys[::-1]):
                        t, outs[k] = timed(lambda f=sides[k]: f.round(x, **kw))
                        times[k].append(t)
                    if not np.array_equal(outs["before"].view(np.uint8),
                                          outs["after"].view(np.uint8)):
                        raise SystemExit(f"{name} {label}: the two trees differ")
                best = {k: min(v) for k, v in times.items()}
                ratio = best["before"] / best["after"]
                aa = best["control"] / best["after"]
                worst = ratio if worst is None else min(worst, ratio)
                spread = max(spread, abs(aa - 1))
                flag = "  SLOWER" if ratio < 1 - max(args.tolerance, abs(aa - 1)) else ""
                print(f"{name:12s} {label:14s} {1e3 * best['before']:9.1f} "
                      f"{1e3 * best['after']:9.1f} {ratio:11.3f} {aa:6.3f}{flag}")
    print(f"\nbest of {args.repeat} alternating timings per side on {args.n} float32 "
          f"normals; same bits in every row; worst speed ratio {worst:.3f}; identical trees "
          f"differ by up to {100 * spread:.0f}% (A/A)")


if __name__ == "__main__":
    main()
