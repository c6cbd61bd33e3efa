#!/usr/bin/env python
"""Rounding speed of this checkout against another minifp tree, side by side in one process.

The other tree's ``minifp`` package (``--before DIR``, e.g. a ``git worktree`` of an older
commit) is copied to a temporary folder as ``minifp_before`` (its imports are relative),
so both load in this process.  For every registered format, ``fmt.round(x)`` (output in the
carrier) and ``fmt.round(x, dtype=np.float32)`` on the same ``--n`` float32 standard-normal
inputs are timed alternately (before, after, after, before, ...), ``--repeat`` times each;
the table shows the best times, the speed ratio after / before (above 1: faster) and checks
that both give the same bits.  A ratio below ``1 - --tolerance`` is marked SLOWER.

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


def load_before(tree: Path, tmp: Path):
    shutil.copytree(tree / "minifp", tmp / "minifp_before",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("minifp_before.formats")


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
    with tempfile.TemporaryDirectory() as tmp:
        before = load_before(Path(args.before).resolve(), Path(tmp))
        print(f"{'format':12s} {'output':14s} {'before ms':>9s} {'after ms':>9s} "
              f"{'speed ratio':>11s}")
        worst = None
        for name in FORMATS:
            fb, fa = before.get_format(name), after.get_format(name)
            for label, kw in (("carrier", {}), ("dtype=float32", {"dtype": np.float32})):
                if label != "carrier" and not fa.fits_in(np.float32):
                    continue
                fb.round(x[:1000], **kw)
                fa.round(x[:1000], **kw)
                tb, ta = [], []
                for i in range(args.repeat):
                    pair = [(tb, fb), (ta, fa)] if i % 2 == 0 else [(ta, fa), (tb, fb)]
                    outs = {}
                    for times, fmt in pair:
                        t, outs[id(times)] = timed(lambda f=fmt: f.round(x, **kw))
                        times.append(t)
                    rb, ra = outs[id(tb)], outs[id(ta)]
                    if not np.array_equal(rb.view(np.uint8), ra.view(np.uint8)):
                        raise SystemExit(f"{name} {label}: the two trees differ")
                ratio = min(tb) / min(ta)
                worst = ratio if worst is None else min(worst, ratio)
                flag = "  SLOWER" if ratio < 1 - args.tolerance else ""
                print(f"{name:12s} {label:14s} {1e3 * min(tb):9.1f} {1e3 * min(ta):9.1f} "
                      f"{ratio:11.3f}{flag}")
    print(f"\nbest of {args.repeat} alternating timings per side on {args.n} float32 "
          f"normals; same bits in every row; worst speed ratio {worst:.3f}")


if __name__ == "__main__":
    main()
