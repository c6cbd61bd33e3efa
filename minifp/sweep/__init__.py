"""Sweeps: the papers' tables as grids of training runs (``minifp sweep``).

:mod:`minifp.sweep.spec` reads a TOML spec and expands it into runs with stable ids; the
Dask engine that runs them, and the reports, come next (issue 16).
"""
from .spec import Run, SweepSpec, expand, load_spec, run_id

__all__ = ["Run", "SweepSpec", "expand", "load_spec", "run_id"]
