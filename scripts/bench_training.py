"""Training-epoch times side by side in one run: minifp (C kernels, and optionally the
NumPy engine) against PyTorch on the CPU where it is installed, same nets, same data
(mnist-5k, 4000 training images), same batch size and optimizer, equal thread counts.

Prints seconds per training epoch (the steps only: no evaluation, no checkpoint) and the
ratio to PyTorch float32; then, with --main-job, the wall time of the README's main job
`minifp train --dtype float16 --net mlp` (10 epochs with evaluation and checkpoints).

    python scripts/bench_training.py [--threads 1] [--cases mlp:float16,lenet5:float32]
                                     [--numpy] [--main-job] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

DEFAULT_CASES = "mlp:float32,mlp:float16,mlp:bfloat16,lenet5:float32,lenet5:float16"


def minifp_epoch(net, dtype, batch_size, backend):
    """Seconds of one training epoch of minifp, as `minifp train` runs it (the loop of
    minifp.train.loop without its evaluation), after one warm-up step."""
    os.environ["MINIFP_KERNELS"] = backend
    import minifp.functional as F
    from minifp import kernels
    from minifp.data import batches
    from minifp.precision import use
    from minifp.train import TrainConfig
    from minifp.train.loop import _policy_stream, build
    kernels.reset()
    cfg = TrainConfig(net=net, dtype=dtype, batch_size=batch_size, out=None, quiet=True,
                      progress=False)
    data, model, policy, optimizer, scaler = build(cfg)
    model.train()

    def step(xb, yb):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        scaler.scale_loss(loss).backward()
        scaler.step(optimizer)

    with use(policy, rng=_policy_stream(model, policy)):
        step(data.x_train[:batch_size], data.y_train[:batch_size])
        t0 = time.perf_counter()
        for xb, yb in batches(data.x_train, data.y_train, batch_size,
                              rng=np.random.default_rng(0)):
            step(xb, yb)
        return time.perf_counter() - t0


def torch_epoch(net, batch_size, threads):
    try:
        import torch
    except Exception:
        return None
    torch.set_num_threads(threads)
    from minifp.data import load_dataset
    data = load_dataset("mnist-5k")
    x = torch.tensor(np.asarray(data.x_train, dtype=np.float32))
    y = torch.tensor(np.asarray(data.y_train, dtype=np.int64))
    nn = torch.nn
    if net == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                              nn.ReLU(), nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                              nn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))

    def step(idx):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()

    step(order[:batch_size])
    t0 = time.perf_counter()
    for i in range(0, len(y) - batch_size + 1, batch_size):
        step(order[i:i + batch_size])
    return time.perf_counter() - t0


def main_job(threads):
    env = dict(os.environ, MINIFP_THREADS=str(threads), MINIFP_KERNELS="auto")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = subprocess.run(["minifp", "train", "--dtype", "float16",
                            "--net", "mlp", "--no-progress", "--out", os.path.join(d, "run")],
                           capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    last = (r.stdout.strip().splitlines() or [""])[-1]
    return wall, r.returncode, last


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="NET:DTYPE,...")
    ap.add_argument("--numpy", action="store_true",
                    help="also time the NumPy engine (slow: minutes per LeNet-5 epoch)")
    ap.add_argument("--main-job", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ["MINIFP_THREADS"] = str(args.threads)
    from minifp import kernels
    print(f"threads: {args.threads} (BLAS, kernels, PyTorch); {kernels.describe()}")
    rows = []
    torch_times = {}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for case in args.cases.split(","):
            net, dtype = case.split(":")
            if net not in torch_times:
                torch_times[net] = torch_epoch(net, args.batch_size, args.threads)
            tt = torch_times[net]
            tk = minifp_epoch(net, dtype, args.batch_size, "c")
            tn = minifp_epoch(net, dtype, args.batch_size, "numpy") if args.numpy else None
            row = {"net": net, "dtype": dtype, "kernels_s": tk, "numpy_s": tn, "torch_s": tt}
            rows.append(row)
            ratio = f"{tk / tt:6.1f}x PyTorch" if tt else "(PyTorch not installed)"
            extra = f", NumPy engine {tn:.1f} s ({tn / tk:.1f}x the kernels)" if tn else ""
            print(f"{net:7s} {dtype:9s} minifp {tk:7.2f} s/epoch  {ratio}"
                  + (f" (PyTorch float32 {tt:.2f} s)" if tt else "") + extra, flush=True)
    if args.main_job:
        wall, rc, last = main_job(args.threads)
        print(f"main job `minifp train --dtype float16 --net mlp`: {wall:.1f} s (exit {rc}); "
              f"{last}")
        rows.append({"main_job_s": wall, "exit": rc, "last_line": last})
    os.environ["MINIFP_KERNELS"] = "auto"
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
