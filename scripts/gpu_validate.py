"""The one script to run when a GPU is lent: checks the CuPy path of minifp on the real
device, in order, and writes a JSON report.  Its last line is ``N passed, N failed``.

    python scripts/gpu_validate.py [--report gpu_report.json] [--artifacts DIR]
                                   [--reference DIR] [--budget 420] [--dry-run]

Checks, in order (each one's time is in the report; the whole run is sized for at most
8 minutes on an H100/H200):

  1. versions    Python, NumPy, CuPy, the CUDA runtime and driver, the device, CUPY_TF32
                 (must be unset or 0);
  2. compile     RawModule of device.cu with minifp's NVRTC options, and (--artifacts)
                 the PTX and CUBIN that CI built (`python scripts/gpu_validate.py
                 --build-artifacts DIR` on any machine with the NVRTC wheel) loaded and
                 run on a rounding test;
  3. rounding    all 2**32 float32 inputs (in chunks) rounded to float16 and bfloat16 by
                 the kernels, against the hardware conversions and the CPU kernels;
  4. matmul      fresh random matmuls in every order and mode, against the NumPy engine;
  5. tests       the GPU test files, named explicitly (gfloat and softposit are not
                 installed there);
  6. training    a short run on digits on the GPU, compared bit for bit with the CPU
                 reference checkpoints carried in (--reference; made with
                 --build-reference DIR on the CPU);
  7. sweep       minifp sweep --device cuda (one worker per GPU, GPU resources): a run's
                 checkpoint against the same run on the CPU, bit for bit;
  8. timing      images per second, minifp and PyTorch on the same GPU.

``--dry-run`` runs every check at toy sizes on the NumPy-backed CuPy stand-in of
tests/cupy_standin (CI does this, so the script's Python is proven before any GPU second
is spent).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GPU_TEST_FILES = ["tests/test_gpu_parity.py", "tests/test_formats_gpu.py",
                  "tests/test_gpu_networks.py"]
REFERENCE_RUN = dict(net="mlp", dataset="digits", dtype="float16", epochs=2, batch_size=64,
                     seed=0)


class Check:
    def __init__(self, name):
        self.name, self.ok, self.details, self.seconds = name, None, {}, 0.0


def _install_standin():
    sys.path.insert(0, str(ROOT / "tests"))
    import cupy_standin  # noqa: PLC0415
    cupy_standin.install()
    return cupy_standin


def check_versions(cp, args, c):
    c.details.update(python=platform.python_version(), numpy=np.__version__,
                     cupy=getattr(cp, "__version__", "?"),
                     CUPY_TF32=os.environ.get("CUPY_TF32"))
    try:
        c.details["runtime"] = int(cp.cuda.runtime.runtimeGetVersion())
        c.details["driver"] = int(cp.cuda.runtime.driverGetVersion())
        props = cp.cuda.runtime.getDeviceProperties(0)
        c.details["device"] = props["name"].decode() if isinstance(props["name"], bytes) \
            else str(props["name"])
    except Exception as e:       # the stand-in has no runtime versions
        c.details["device_info"] = f"unavailable: {e}"
    c.ok = os.environ.get("CUPY_TF32", "0") in ("", "0")


def check_compile(cp, args, c):
    from minifp.formats import Rounding, get_format
    from minifp.kernels import cuda
    from minifp.kernels.host import round_array
    t0 = time.perf_counter()
    cuda.reset()
    cuda.module()
    c.details["rawmodule_seconds"] = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal(10_000) * 100
    fmt = get_format("e4m3")
    want = round_array(fmt, x, Rounding.NEAREST_EVEN)
    got = cp.asnumpy(cuda.round_array(fmt, cp.asarray(x), Rounding.NEAREST_EVEN))
    ok = _same(want, got)
    if args.artifacts and not args.dry_run:
        for path in sorted(Path(args.artifacts).glob("device_*.*")):
            mod = cp.RawModule(path=str(path))
            out = cp.empty(x.size, dtype=np.float64)
            F = cp.asarray(__import__("minifp.kernels.params", fromlist=["x"]).format_block(fmt))
            args_ = cuda.pack("mf_round_array_kernel", dict(
                x=cp.asarray(x), out=out, count=x.size, fmt=F, mode=0, key=0, event=0,
                index0=0))
            mod.get_function("mf_round_array_kernel")((-(-x.size // 128),), (128,), args_)
            same = _same(want, cp.asnumpy(out))
            c.details[path.name] = same
            ok &= same
    c.ok = ok


def _bfloat16_hardware(cp, x32):
    """float32 -> bfloat16 as the hardware converts (cvt.rn.bf16.f32: nearest-even on the
    bit pattern, NaN kept quiet), as float64."""
    u = x32.view(cp.uint32).astype(cp.uint64)
    rounded = (u + cp.uint64(0x7FFF) + ((u >> cp.uint64(16)) & cp.uint64(1))) >> cp.uint64(16)
    nan = cp.isnan(x32)
    bits = cp.where(nan, (u >> cp.uint64(16)) | cp.uint64(0x40), rounded)
    return (bits.astype(cp.uint32) << cp.uint32(16)).view(cp.float32).astype(cp.float64)


def check_rounding(cp, args, c):
    """All 2**32 float32 codes (chunks of 2**28) rounded to float16 and bfloat16 by the
    CUDA kernel, against the hardware conversions and against the CPU kernels."""
    from minifp.formats import Rounding, get_format
    from minifp.kernels import cuda
    from minifp.kernels.host import round_array
    f16, bf16 = get_format("float16"), get_format("bfloat16")
    chunk = 1 << (12 if args.dry_run else 28)
    total = chunk * (4 if args.dry_run else 16)          # 2**32 on the GPU
    bad = {"float16 hardware": 0, "bfloat16 hardware": 0, "float16 cpu": 0,
           "bfloat16 cpu": 0}
    for start in range(0, total, chunk):
        codes = cp.arange(start, start + chunk, dtype=cp.uint64).astype(cp.uint32)
        x32 = codes.view(cp.float32)
        x64 = x32.astype(cp.float64)
        for fmt, hardware in ((f16, x32.astype(cp.float16).astype(cp.float64)),
                              (bf16, _bfloat16_hardware(cp, x32))):
            got = cuda.round_array(fmt, x64, Rounding.NEAREST_EVEN)
            same = (got == hardware) | (cp.isnan(got) & cp.isnan(hardware))
            bad[f"{fmt.name} hardware"] += int((~same).sum())
            want = round_array(fmt, cp.asnumpy(x64), Rounding.NEAREST_EVEN)
            bad[f"{fmt.name} cpu"] += 0 if _same(want, cp.asnumpy(got)) else 1
    c.details.update(inputs=total, mismatches=bad)
    c.ok = not any(bad.values())


def check_matmul(cp, args, c):
    from minifp.accumulate import Accumulation, engine
    from minifp.formats import Rounding
    rng = np.random.default_rng(int(time.time()))
    seed = int(rng.integers(1 << 30))
    c.details["seed"] = seed
    rng = np.random.default_rng(seed)
    failures = []
    shapes = [(3, 37, 5), (16, 300, 40)] if args.dry_run else \
        [(3, 37, 5), (64, 784, 256), (128, 2500, 10)]
    for order in ("sequential", "pairwise", "blocked:32", "exact"):
        for acc_name in ("float16", "bfloat16", "float32", "e4m3", "posit16"):
            for mode in (m.value for m in Rounding):
                acc = Accumulation(acc_name, order, True, mode)
                for m, K, n in shapes:
                    x = rng.standard_normal((m, K)).astype(np.float16)
                    y = rng.standard_normal((K, n)).astype(np.float16)
                    os.environ["MINIFP_KERNELS"] = "numpy" if not args.dry_run else "auto"
                    want = engine.matmul(x, y, acc, rng=np.random.default_rng(1))
                    os.environ["MINIFP_KERNELS"] = "auto"
                    got = engine.matmul(cp.asarray(x), cp.asarray(y), acc,
                                        rng=np.random.default_rng(1))
                    if not _same(want, cp.asnumpy(got)):
                        failures.append(f"{acc} {(m, K, n)}")
            if args.dry_run:
                break
    c.details["failures"] = failures[:20]
    c.ok = not failures


def check_tests(cp, args, c):
    files = [f for f in GPU_TEST_FILES if (ROOT / f).exists()]
    if args.dry_run:
        c.details.update(files=files, skipped="dry run: CI runs these files itself")
        c.ok = True
        return
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                       cwd=ROOT, capture_output=True, text=True, timeout=args.budget / 2)
    c.details.update(files=files, tail=r.stdout[-2000:])
    c.ok = r.returncode == 0


def _train(device, out, config=REFERENCE_RUN, epochs=None):
    from minifp.train import TrainConfig, train
    cfg = TrainConfig(**dict(config, epochs=epochs or config["epochs"]), device=device,
                      out=str(out), quiet=True, progress=False)
    return train(cfg, overwrite=True)


def _params(path):
    from minifp.checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    return {k: np.asarray(v) for k, v in ck["params"].items()}


def check_training(cp, args, c):
    ref_dir = Path(args.reference) if args.reference else None
    with tempfile.TemporaryDirectory() as tmp:
        if ref_dir is None or not (ref_dir / "checkpoint.h5").exists():
            ref_dir = Path(tmp) / "cpu"
            _train("cpu", ref_dir, epochs=1 if args.dry_run else None)
            c.details["reference"] = "made here on the CPU"
        gpu_dir = Path(tmp) / "gpu"
        t0 = time.perf_counter()
        _train("gpu", gpu_dir, epochs=1 if args.dry_run else None)
        c.details["gpu_seconds"] = time.perf_counter() - t0
        a, b = _params(ref_dir / "checkpoint.h5"), _params(gpu_dir / "checkpoint.h5")
        differ = [k for k in a if not _same(a[k], b.get(k, np.array([])))]
    c.details["differing_parameters"] = differ
    c.ok = not differ


def check_sweep(cp, args, c):
    """minifp sweep --device cuda: one worker per GPU (CUDA_VISIBLE_DEVICES), a run asking
    for the GPU resource, its checkpoint bit-identical to the same run on the CPU."""
    from minifp.sweep import engine, expand
    from minifp.sweep.spec import parse_spec
    specs = engine.gpu_worker_specs(int(cp.cuda.runtime.getDeviceCount()))
    c.details["workers"] = {k: v["options"]["env"] for k, v in specs.items()}
    if args.dry_run:
        c.details["skipped"] = "dry run: the worker processes need a real GPU"
        c.ok = True
        return
    spec = parse_spec({"name": "gpu", "grid": {"seed": [0]},
                       "fixed": {k: v for k, v in dict(REFERENCE_RUN, epochs=1).items()
                                 if k != "seed"}})
    runs = expand(spec)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        outcome = engine.run_sweep(spec, runs, Path(tmp) / "sweep", device="cuda", workers=1,
                                   echo=lambda line: None)
        c.details["seconds"] = time.perf_counter() - t0
        row = outcome.rows[0]
        c.details["status"] = row.get("status")
        if row.get("status") != "complete":
            c.details["reason"] = row.get("reason")
            c.ok = False
            return
        _train("cpu", Path(tmp) / "cpu", config=runs[0].options, epochs=1)
        a = _params(Path(tmp) / "cpu" / "checkpoint.h5")
        b = _params(Path(tmp) / "sweep" / runs[0].id / "checkpoint.h5")
        differ = [k for k in a if not _same(a[k], b.get(k, np.array([])))]
    c.details["differing_parameters"] = differ
    c.ok = not differ


def check_timing(cp, args, c):
    import minifp.functional as F
    from minifp.data import load_dataset
    from minifp.nn.zoo import build_model
    from minifp.precision import get_precision, use
    data = load_dataset("digits")
    batch = 16 if args.dry_run else 256
    x = np.resize(np.asarray(data.x_train, np.float32), (batch,) + tuple(data.input_shape))
    y = np.resize(np.asarray(data.y_train), batch)
    rows = []
    nets = ["mlp"] if args.dry_run else ["mlp", "cnn", "resnet8"]
    policies = ["float32"] if args.dry_run else ["float32", "float16-acc32", "float16",
                                                 "mixed"]
    for net in nets:
        for name in policies:
            pol = get_precision(name)
            model = build_model(net, data.input_shape, data.classes, seed=0)
            model.to(pol, device="gpu")
            xb, yb = cp.asarray(x), cp.asarray(y)
            with use(pol):
                steps = 1 if args.dry_run else 5
                for i in range(steps + 1):
                    if i == 1:
                        cp.cuda.Device().synchronize()
                        t0 = time.perf_counter()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward()
                cp.cuda.Device().synchronize()
            dt = (time.perf_counter() - t0) / steps
            rows.append({"net": net, "policy": name, "images_per_s": batch / dt})
    c.details["minifp"] = rows
    c.details["pytorch"] = None if args.dry_run else _torch_timing(batch)
    c.ok = True


def _torch_timing(batch):
    try:
        import torch
    except Exception:
        return "PyTorch not installed"
    out = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10)).cuda()
    x = torch.randn(batch, 1, 8, 8, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")
    for label, dtype, autocast in (("float32", torch.float32, False),
                                   ("float16", torch.float16, False),
                                   ("autocast", torch.float32, True)):
        m = model.to(dtype)
        xx = x.to(dtype)
        for i in range(21):
            if i == 1:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            with torch.autocast("cuda", enabled=autocast):
                loss = torch.nn.functional.cross_entropy(m(xx), y)
            loss.backward()
        torch.cuda.synchronize()
        out.append({"net": "mlp", "policy": label,
                    "images_per_s": batch * 20 / (time.perf_counter() - t0)})
    return out


def _same(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(
        ((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))).all())


CHECKS = [("versions", check_versions), ("compile", check_compile),
          ("rounding", check_rounding), ("matmul", check_matmul), ("tests", check_tests),
          ("training", check_training), ("sweep", check_sweep), ("timing", check_timing)]


def build_artifacts(out):
    """PTX and CUBIN of device.cu for sm_80 and sm_90, with the NVRTC wheel (no GPU)."""
    from minifp.kernels import nvrtc
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for arch in nvrtc.ARCHS:
        (out / f"device_{arch}.ptx").write_bytes(nvrtc.compile_ptx(arch))
        (out / f"device_{arch}.cubin").write_bytes(nvrtc.compile_cubin(arch))
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default="gpu_report.json")
    ap.add_argument("--artifacts", default=None, help="PTX/CUBIN built in CI to load")
    ap.add_argument("--reference", default=None, help="CPU reference run directory")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all checks")
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on the CuPy stand-in")
    ap.add_argument("--build-artifacts", metavar="DIR", help="only write PTX/CUBIN to DIR")
    ap.add_argument("--build-reference", metavar="DIR", help="only train the CPU reference")
    args = ap.parse_args(argv)
    if args.build_artifacts:
        return build_artifacts(args.build_artifacts)
    if args.build_reference:
        _train("cpu", Path(args.build_reference))
        print(f"CPU reference run in {args.build_reference}")
        return 0
    os.environ.setdefault("CUPY_TF32", "0")
    if args.dry_run:
        _install_standin()
    from minifp.backend import cupy_module, gpu_available
    if not gpu_available():
        print("gpu_validate: no GPU (CuPy is not installed or sees no device); use --dry-run")
        print("0 passed, 1 failed")
        return 1
    cp = cupy_module()
    t_start = time.perf_counter()
    results = []
    for name, fn in CHECKS:
        c = Check(name)
        if time.perf_counter() - t_start > args.budget:
            c.ok, c.details["skipped"] = False, "out of time"
        else:
            t0 = time.perf_counter()
            try:
                fn(cp, args, c)
            except Exception as e:       # a failed check is reported, the others still run
                c.ok = False
                c.details["error"] = f"{type(e).__name__}: {e}"
                c.details["traceback"] = traceback.format_exc()[-3000:]
            c.seconds = time.perf_counter() - t0
        results.append(c)
        print(f"{name:10s} {'ok' if c.ok else 'FAILED'} ({c.seconds:.1f} s)", flush=True)
    report = {"dry_run": args.dry_run, "seconds": time.perf_counter() - t_start,
              "checks": [{"name": c.name, "ok": bool(c.ok), "seconds": c.seconds,
                          "details": c.details} for c in results]}
    Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
    passed = sum(1 for c in results if c.ok)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
