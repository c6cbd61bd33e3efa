"""minifp installed from a wheel (not the editable source tree): the shipped datasets are
package data, `minifp data list` finds them and one epoch trains, from a folder outside the
repository.

The wheel is built from a copy of the sources (``pip wheel --no-deps --no-build-isolation``:
offline, no ``build/`` left in the checkout) and installed with ``--no-deps`` into a
temporary venv that sees the system site-packages (numpy, h5py, ...): the venv's own
site-packages come first on its ``sys.path``, and the test checks that ``minifp`` is
imported from there.
"""
from __future__ import annotations

import importlib.util
from importlib import metadata
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from minifp.jsonio import loads_strict

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("mnist-5k", "digits")


def _can_build_wheels() -> str | None:
    """None when ``pip wheel --no-build-isolation`` can work here, else the reason."""
    try:
        found = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return "setuptools is not installed"
    version = tuple(int(p) for p in found.split(".")[:2] if p.isdigit())
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        return (f"setuptools {found} needs the 'wheel' package to build wheels "
                f"(pip install -e '.[test]' installs it)")
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed"
    return None


def _run(cmd, cwd, env, timeout=240):
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, (f"{cmd} exited {res.returncode}\nstdout:\n{res.stdout}\n"
                                 f"stderr:\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv minifp script, a clean environment, a cwd outside the repo)."""
    reason = _can_build_wheels()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "MINIFP_DATASET_DIR",
                        "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1",
               MPLBACKEND="Agg")
    src = tmp / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)              # the metadata's long description
    shutil.copytree(ROOT / "minifp", src / "minifp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", wheels, "."], cwd=src, env=env)
    built = sorted(wheels.glob("minifp-*.whl"))
    assert len(built) == 1, built
    try:
        venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp / "venv")
    except Exception as err:  # noqa: BLE001 - no venv module support here
        pytest.skip(f"cannot create a venv: {err}")
    bindir = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    # pip itself comes from the system site-packages; it installs into the venv
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", built[0]],
         cwd=tmp, env=env)
    work = tmp / "work"                                 # cwd outside the repository
    work.mkdir()
    return {"py": py, "minifp": bindir / "minifp", "env": env, "cwd": work,
            "venv": tmp / "venv", "wheel": built[0]}


def test_wheel_holds_the_shipped_datasets_and_sweep_specs(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for name in SHIPPED:
        assert f"minifp/data/shipped/{name}.h5" in names
    assert "minifp/data/shipped/README.md" in names
    for spec in ("yun16", "positnn", "fp8"):            # minifp sweep NAME
        assert f"minifp/sweep/specs/{spec}.toml" in names


def test_installed_minifp_is_the_wheel_and_loads_shipped_data(installed):
    code = ("import json, minifp, minifp.data as d\n"
            "ds = d.load_dataset('mnist-5k')\n"
            "print(json.dumps({'file': minifp.__file__, 'shipped': str(d.shipped_dir()),\n"
            "  'repr': repr(ds), 'digits': d.load_dataset('digits').n_train}))\n")
    res = _run([installed["py"], "-c", code], cwd=installed["cwd"], env=installed["env"])
    out = loads_strict(res.stdout)
    venv_dir = installed["venv"].resolve()
    assert Path(out["file"]).resolve().is_relative_to(venv_dir), out   # not the source tree
    assert not Path(out["file"]).resolve().is_relative_to(ROOT)
    assert Path(out["shipped"]).resolve().is_relative_to(venv_dir)
    assert out["repr"] == ("Dataset(name='mnist-5k', train=(4000, 1, 28, 28), "
                           "test=(1000, 1, 28, 28), classes=10)")
    assert out["digits"] == 1438


def test_installed_cli_lists_datasets_and_trains_one_epoch(installed):
    run = installed["minifp"]
    cwd, env = installed["cwd"], installed["env"]
    listed = _run([run, "data", "list"], cwd=cwd, env=env).stdout
    for name in SHIPPED:
        assert any(line.split()[:1] == [name] for line in listed.splitlines()), listed
    rows = loads_strict(_run([run, "data", "list", "--json"], cwd=cwd, env=env).stdout)
    by_name = {r["name"]: r for r in rows}
    for name in SHIPPED:
        assert by_name[name]["shipped"] is True
        assert Path(by_name[name]["path"]).resolve().is_relative_to(installed["venv"].resolve())
    assert by_name["mnist-5k"]["train_shape"] == [4000, 1, 28, 28]
    res = _run([run, "train", "--dataset", "digits", "--epochs", "1", "--batch-size", "256",
                "--no-progress", "--out", "RUN"], cwd=cwd, env=env)
    assert (cwd / "RUN" / "summary.json").is_file(), res.stdout
    summary = loads_strict((cwd / "RUN" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["config"]["dataset"] == "digits"
    assert 0 <= summary["final"]["test_accuracy"] <= 1, summary["final"]
