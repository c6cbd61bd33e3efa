"""Sweeps: the papers' tables as grids of training runs (``minifp sweep``).

* :mod:`minifp.sweep.spec`: TOML specs expanded into runs with stable ids;
* :mod:`minifp.sweep.task`: one run as a worker executes it (idempotent, resumable);
* :mod:`minifp.sweep.engine`: the runs on Dask ``distributed`` (a local cluster by
  default, ``--scheduler`` for any other), results appended to ``DIR/sweep.jsonl``;
* :mod:`minifp.sweep.report`: the table (mean ± std over seeds, agreement, the lemma,
  published values), as text, Markdown, JSON or a plot.
"""
from .spec import Run, SweepSpec, expand, load_spec, run_id

__all__ = ["Run", "SweepSpec", "expand", "load_spec", "run_id"]
