"""NVRTC compile times and register use of the CUDA kernels, for every installed NVRTC
(12 and 13 wheels), no GPU needed.

    python scripts/nvrtc_report.py [--archs sm_80,sm_90]

For each NVRTC major version and architecture: seconds to compile device.cu to PTX and
to CUBIN, and, from ptxas's verbose log of the CUBIN, each kernel's registers, stack
frame and spill stores.
"""
from __future__ import annotations

import argparse
import re
import time

from minifp.kernels import nvrtc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(nvrtc.ARCHS))
    args = ap.parse_args()
    libs = nvrtc.installed_libraries()
    if not libs:
        print("no NVRTC installed (pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvrtc)")
        return 1
    for major, path in libs.items():
        with nvrtc.use_library(path):
            print(f"NVRTC {'.'.join(map(str, nvrtc.version()))} ({path})")
            for arch in args.archs.split(","):
                t0 = time.perf_counter()
                nvrtc.compile_ptx(arch)
                t_ptx = time.perf_counter() - t0
                t0 = time.perf_counter()
                _, log = nvrtc.compile_with_log(nvrtc.device_source(), arch, "cubin",
                                                nvrtc.OPTIONS + ("--ptxas-options=-v",),
                                                include=nvrtc.headers())
                t_cubin = time.perf_counter() - t0
                print(f"  {arch}: PTX {t_ptx:.1f} s, CUBIN {t_cubin:.1f} s")
                for kernel, regs, stack, spills in _usage(log):
                    print(f"    {kernel:28s} {regs:4d} registers, stack {stack:5d} bytes, "
                          f"spill stores {spills} bytes")
    return 0


def _usage(log):
    """(kernel, registers, stack bytes, spill-store bytes) from ptxas -v output."""
    out, kernel, stack, spills = [], None, 0, 0
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line) or \
            re.search(r"Function properties for (\w+)", line)
        if m:
            kernel = m.group(1)
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", line)
        if m:
            stack, spills = int(m.group(1)), int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and kernel:
            out.append((kernel, int(m.group(1)), stack, spills))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
