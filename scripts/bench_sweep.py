"""The sweep engine's own cost, measured side by side in one run.

1. Scheduling overhead per run: ``minifp sweep``'s engine (a LocalCluster, one task per
   run submitted with key=<run id>, results consumed with as_completed and appended to
   sweep.jsonl) running N empty runs (a task that returns its row at once), against the
   same N calls made in this process.  The cluster's start-up is timed apart.
2. One real small run (digits, mlp, 1 epoch) through the engine against ``train()``
   called directly in this process.

    python scripts/bench_sweep.py [--runs 200] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def empty_run(run_dir, run_id, options, device="cpu", on_epoch=None):
    """An empty run: the result row, nothing trained."""
    return {"id": run_id, "status": "complete", "options": options, "test_accuracy": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import cloudpickle
    import distributed

    from minifp.sweep import engine, expand
    from minifp.sweep.spec import parse_spec
    from minifp.train import TrainConfig, train
    import sys
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    spec = parse_spec({"name": "empty", "grid": {"seed": list(range(args.runs))},
                       "fixed": {"net": "mlp", "dataset": "digits", "epochs": 1}})
    runs = expand(spec)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           host="127.0.0.1", silence_logs=50)
        cluster.close()
        startup = time.perf_counter() - t0

        t0 = time.perf_counter()
        engine.run_sweep(spec, runs, Path(tmp) / "engine", workers=args.workers,
                         echo=lambda line: None, execute=empty_run)
        through_engine = time.perf_counter() - t0

        t0 = time.perf_counter()
        for r in runs:
            empty_run(None, r.id, r.options)
        direct = time.perf_counter() - t0

        one = parse_spec({"name": "one", "grid": {"seed": [0]},
                          "fixed": {"net": "mlp", "dataset": "digits", "epochs": 1}})
        one_runs = expand(one)
        t0 = time.perf_counter()
        engine.run_sweep(one, one_runs, Path(tmp) / "one", workers=1, echo=lambda line: None)
        real_engine = time.perf_counter() - t0
        t0 = time.perf_counter()
        train(TrainConfig(**one_runs[0].options, out=str(Path(tmp) / "direct"),
                          progress=False, quiet=True), echo=lambda line: None)
        real_direct = time.perf_counter() - t0

    n = len(runs)
    print(f"LocalCluster start and stop, {args.workers} workers: {startup:.2f} s")
    print(f"{n} empty runs through the engine: {through_engine:.2f} s "
          f"(cluster start included); per run {1e3 * (through_engine - startup) / n:.2f} ms "
          f"beyond the start, against {1e6 * direct / n:.1f} us called in-process")
    print(f"one real run (digits, mlp, 1 epoch): engine {real_engine:.2f} s, train() in "
          f"this process {real_direct:.2f} s, ratio {real_engine / real_direct:.2f}x "
          f"(the engine's figure includes starting a 1-worker cluster and the worker's "
          f"imports)")


if __name__ == "__main__":
    main()
