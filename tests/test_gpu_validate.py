"""scripts/gpu_validate.py --dry-run on the CuPy stand-in: its Python is proven in CI
before any GPU second is spent."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("kernels_built")]


def test_dry_run_passes_every_check(tmp_path):
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_validate.py"),
                        "--dry-run", "--report", str(report)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert lines[-1] == "8 passed, 0 failed"
    data = json.loads(report.read_text())
    assert [c["name"] for c in data["checks"]] == ["versions", "compile", "rounding",
                                                   "matmul", "tests", "training", "sweep",
                                                   "timing"]
    assert all(c["ok"] for c in data["checks"]) and data["dry_run"] is True
