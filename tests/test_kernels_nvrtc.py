"""The CUDA kernels compile with NVRTC for sm_80 and sm_90 without a GPU, and their PTX
passes the lint of DESIGN.md "Kernels": the parameter lists are the Python-side argument
tables, and the exact kernels hold no FMA, flush-to-zero or approximate instruction.
Skipped where libnvrtc (pip nvidia-cuda-nvrtc-cu12, the test extra) is missing."""
from __future__ import annotations

import re

import pytest

from minifp.kernels import device_signatures as dsig
from minifp.kernels import nvrtc
from minifp.kernels.signatures import MATMUL_ROWS, ORDERS, ROUND_ARRAY

if not nvrtc.available():
    pytest.skip("NVRTC (libnvrtc.so.12, pip nvidia-cuda-nvrtc-cu12) is not available",
                allow_module_level=True)

_cache: dict = {}


def build(arch: str, target: str) -> bytes:
    """Each (arch, target) compiles once per session (the compiles dominate the time)."""
    if (arch, target) not in _cache:
        fn = nvrtc.compile_ptx if target == "ptx" else nvrtc.compile_cubin
        _cache[arch, target] = fn(arch)
    return _cache[arch, target]


TINY = r"""
extern "C" __global__ void axpy(const double *a, const double *b, const double *c, double *o,
                                long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) o[i] = a[i] * b[i] + c[i];
}
extern "C" __global__ void quot(const float *a, const float *b, float *o) {
    o[threadIdx.x] = a[threadIdx.x] / b[threadIdx.x];
}
"""


def with_option(old: str, new: str) -> tuple[str, ...]:
    assert old in nvrtc.OPTIONS
    return tuple(new if o == old else o for o in nvrtc.OPTIONS)


def test_version_and_options():
    assert nvrtc.version()[0] >= 12
    for flag in ("--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true"):
        assert flag in nvrtc.OPTIONS
    assert not any("fast_math" in o or "arch" in o for o in nvrtc.OPTIONS)
    assert nvrtc.arch_option("sm_80", "ptx") == "--gpu-architecture=compute_80"
    assert nvrtc.arch_option("sm_90", "cubin") == "--gpu-architecture=sm_90"


def test_device_tables_extend_the_host_tables():
    assert dsig.DEVICE_ENTRY_POINTS["mf_round_array_kernel"] == ROUND_ARRAY
    assert dsig.DEVICE_ENTRY_POINTS["mf_matmul_rows_kernel"] == MATMUL_ROWS + (("scratch", "f64*"),)
    assert dsig.EXACT_KERNELS == set(dsig.DEVICE_ENTRY_POINTS)


def test_scratch_size_matches_the_device_source():
    src = nvrtc.device_source()
    assert re.search(rf"#define MF_DEV_KUL_DOUBLES {dsig.KUL_DOUBLES}\b", src)
    levels = re.search(r"#define MF_LEVELS (\d+)", nvrtc.headers()["mf_orders.h"])
    assert levels and dsig.SCRATCH_COLUMN_DOUBLES[ORDERS["pairwise"]] == int(levels.group(1))
    per = dsig.scratch_doubles_per_row
    assert per(ORDERS["sequential"], 7) == per(ORDERS["exact"], 7) == 2 * dsig.KUL_DOUBLES
    assert per(ORDERS["pairwise"], 0) == 2 * dsig.KUL_DOUBLES + int(levels.group(1))
    assert per(ORDERS["blocked"], 5) == 2 * dsig.KUL_DOUBLES + 5
    assert dsig.scratch_doubles(ORDERS["blocked"], 5, 3, 7) == 4 * per(ORDERS["blocked"], 5)


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
def test_cubin_is_a_full_elf_image(arch):
    cubin = build(arch, "cubin")
    assert len(cubin) > 1000 and cubin[:4] == b"\x7fELF"
    assert elf_extent(cubin) == len(cubin)      # not a byte short (CuPy's getCUBIN trap)


def elf_extent(image: bytes) -> int:
    """The bytes an ELF64 image spans: the end of its header tables and of its sections."""
    u = lambda off, size: int.from_bytes(image[off:off + size], "little")
    assert image[4] == 2 and image[5] == 1                     # ELF64, little endian
    phoff, shoff = u(0x20, 8), u(0x28, 8)
    phentsize, phnum, shentsize, shnum = u(0x36, 2), u(0x38, 2), u(0x3A, 2), u(0x3C, 2)
    end = max(0x40, phoff + phnum * phentsize, shoff + shnum * shentsize)
    for i in range(shnum):
        sh = shoff + i * shentsize
        if u(sh + 4, 4) != 8:                                  # SHT_NOBITS takes no bytes
            end = max(end, u(sh + 0x18, 8) + u(sh + 0x20, 8))
    return end


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
def test_ptx_parameter_lists_match_the_tables(arch):
    ptx = build(arch, "ptx").decode()
    assert f".target {arch}" in ptx
    assert set(nvrtc.ptx_entries(ptx)) == set(dsig.DEVICE_ENTRY_POINTS)
    assert nvrtc.parameter_mismatches(ptx, dsig.DEVICE_ENTRY_POINTS) == []


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
def test_exact_kernels_have_no_fma_ftz_or_approx(arch):
    ptx = build(arch, "ptx").decode()
    for name in dsig.EXACT_KERNELS:
        body = nvrtc.reachable_text(ptx, name)
        assert "add.rn.f64" in body or "mul.rn.f64" in body   # the body was read
        assert nvrtc.forbidden_instructions(body) == [], name
    assert nvrtc.forbidden_instructions(ptx) == []


def test_parameter_lint_can_fail():
    ptx = build("sm_80", "ptx").decode()
    table = dict(dsig.DEVICE_ENTRY_POINTS)
    table["mf_matmul_rows_kernel"] = MATMUL_ROWS            # the host table: no scratch
    want = f"{len(MATMUL_ROWS) + 1} PTX parameters, {len(MATMUL_ROWS)} arguments"
    assert any(want in p for p in nvrtc.parameter_mismatches(ptx, table))
    fake = (".visible .entry k(\n\t.param .u32 k_param_0,\n\t.param .u64 k_param_1\n)\n{\n"
            "\tret;\n}\n")
    problems = nvrtc.parameter_mismatches(fake, {"k": (("n", "i64"), ("x", "f64*")),
                                                 "gone": ()})
    assert any("argument n (i64) is .u32" in p for p in problems)
    assert any("gone is not in the PTX" in p for p in problems)


def test_fma_lint_can_fail():
    ptx = nvrtc.compile_source(TINY, "sm_80", "ptx", name="tiny.cu",
                               options=with_option("--fmad=false", "--fmad=true")).decode()
    found = nvrtc.forbidden_instructions(nvrtc.reachable_text(ptx, "axpy"))
    assert any(what == "fma" and "fma.rn.f64" in line for what, _, line in found)
    clean = nvrtc.compile_source(TINY, "sm_80", "ptx", name="tiny.cu").decode()
    assert nvrtc.forbidden_instructions(clean) == []
    assert "mul.rn.f64" in clean and "add.rn.f64" in clean


def test_ftz_and_approx_lint_can_fail():
    fast = nvrtc.compile_source(TINY, "sm_80", "ptx", name="tiny.cu",
                                options=("--use_fast_math", "-std=c++11")).decode()
    kinds = {what for what, _, _ in nvrtc.forbidden_instructions(nvrtc.reachable_text(fast, "quot"))}
    assert {"ftz", "approx"} <= kinds


def test_compile_error_carries_the_log():
    with pytest.raises(nvrtc.NVRTCError) as info:
        nvrtc.compile_source("extern \"C\" __global__ void k() { undefined_name = 1; }",
                             "sm_80", name="broken.cu")
    assert "undefined_name" in info.value.log and "broken.cu" in str(info.value)


def test_missing_library_is_reported_cleanly(monkeypatch):
    monkeypatch.setattr(nvrtc, "_state", {})
    monkeypatch.setattr(nvrtc, "candidates", lambda: ["/nonexistent/libnvrtc.so.12"])
    assert nvrtc.available() is False
    with pytest.raises(nvrtc.NVRTCUnavailable, match="nvidia-cuda-nvrtc-cu12"):
        nvrtc.compile_ptx("sm_80")


def test_nvrtc_13_compiles_and_lints_too():
    """The kernels compile with NVRTC 13 as well (the GPU machine's CuPy is
    cupy-cuda13x; the tests above use the default library, NVRTC 12), with the argument
    tables and no fused, flushed or approximate instruction.  PTX for one architecture
    (sm_90), to keep the suite short (scripts/nvrtc_report.py builds the CUBINs too).
    Skips where the CUDA 13 wheel is not installed."""
    libs = nvrtc.installed_libraries()
    if 13 not in libs:
        pytest.skip("NVRTC 13 is not installed")
    with nvrtc.use_library(libs[13]):
        assert nvrtc.version()[0] == 13
        ptx = nvrtc.compile_ptx("sm_90")
        assert nvrtc.parameter_mismatches(ptx, dsig.DEVICE_ENTRY_POINTS) == []
        assert nvrtc.forbidden_instructions(ptx) == []
    assert nvrtc.version()[0] == 12 or 12 not in libs      # the default is back
