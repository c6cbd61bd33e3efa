"""Building and choosing the kernels: the cache, the FMA check, the fallback without a
compiler, MINIFP_KERNELS, and the engine label that runs record."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minifp import kernels
from minifp.kernels import build

HAVE_CC = shutil.which("cc") is not None


def _run(code, env_extra, tmp_path):
    import os
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)


PROBE = """
import numpy as np, warnings
warnings.simplefilter("default")
from minifp.accumulate import engine
from minifp import kernels
r = engine.matmul(np.ones((2, 3)), np.ones((3, 2)), "float16:sequential")
print(kernels.backend_name(), float(r.sum()))
"""


def test_no_compiler_falls_back_with_one_warning(tmp_path):
    out = _run(PROBE + "\nengine.sum(np.ones(4), acc='float16:pairwise')\n",
               {"CC": "/nonexistent/cc", "MINIFP_CACHE_DIR": str(tmp_path / "cache"),
                "MINIFP_KERNELS": "auto"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numpy", "12.0"]
    lines = [line for line in out.stderr.splitlines() if "KernelWarning" in line]
    assert len(lines) == 1 and "no C compiler" in lines[0] and "NumPy engine" in lines[0]


def test_insisting_on_the_kernels_without_a_compiler_is_an_error(tmp_path):
    out = _run(PROBE, {"CC": "/nonexistent/cc", "MINIFP_CACHE_DIR": str(tmp_path / "c"),
                       "MINIFP_KERNELS": "c"}, tmp_path)
    assert out.returncode != 0
    assert "MINIFP_KERNELS=c but the kernels are unavailable" in out.stderr


def test_numpy_choice_never_builds(tmp_path):
    out = _run(PROBE, {"CC": "/nonexistent/cc", "MINIFP_CACHE_DIR": str(tmp_path / "c"),
                       "MINIFP_KERNELS": "numpy"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "numpy" and "KernelWarning" not in out.stderr
    assert not (tmp_path / "c").exists()


def test_bad_choice_is_one_line(monkeypatch):
    monkeypatch.setenv("MINIFP_KERNELS", "fortran")
    with pytest.raises(ValueError, match="MINIFP_KERNELS='fortran' is not one of"):
        kernels.library()


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_bad_thread_count_is_one_line(monkeypatch, value):
    monkeypatch.setenv("MINIFP_THREADS", value)
    with pytest.raises(ValueError, match=r"MINIFP_THREADS=.* is not a positive integer"):
        kernels.threads()


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_cache_is_keyed_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFP_CACHE_DIR", str(tmp_path))
    path = build.library_path()
    assert path.parent.parent == tmp_path and not path.exists()
    build.load()
    assert path.exists()
    mtime = path.stat().st_mtime_ns
    build.load()                                   # found in the cache, not rebuilt
    assert path.stat().st_mtime_ns == mtime
    monkeypatch.setenv("CC", "gcc")                # another compiler: another key
    if shutil.which("gcc"):
        assert build.library_path() != path


@pytest.mark.skipif(not (HAVE_CC and shutil.which("objdump")), reason="needs cc and objdump")
def test_fma_check_finds_contracted_code(tmp_path):
    """The check must be able to fail: a library compiled to contract a*b+c is refused."""
    src = tmp_path / "f.c"
    src.write_text("double f(double a, double b, double c) { return a * b + c; }\n")
    lib = tmp_path / "f.so"
    r = subprocess.run(["cc", "-O2", "-mfma", "-ffp-contract=fast", "-fPIC", "-shared",
                        str(src), "-o", str(lib)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("this compiler cannot target FMA")
    assert build.fma_instructions(lib)
    built = build.library_path()
    if built.exists():
        assert build.fma_instructions(built) == []


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_engine_label_is_recorded(tmp_path, monkeypatch):
    from minifp.train import TrainConfig, train
    monkeypatch.setenv("MINIFP_KERNELS", "auto")
    kernels.reset()
    summary = train(TrainConfig(net="mlp", dataset="digits", dtype="float16", epochs=1,
                                out=str(tmp_path / "run"), quiet=True, progress=False))
    assert summary["engine"]["explicit_orders"] == kernels.backend_name() == "c"
    import h5py
    with h5py.File(tmp_path / "run" / "checkpoint.h5", "r") as f:
        assert "C kernels" in f.attrs["engine"]
    assert np.isfinite(summary["final"]["test_loss"])
