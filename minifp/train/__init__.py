"""Training runs: the loop, its run directories, the check that something is learning, and
the comparison of policies.

* :mod:`~minifp.train.loop`: :class:`TrainConfig`, :func:`train` / :func:`run` (build,
  train, evaluate, save, resume, stop on failure with :class:`RunFailed`), :func:`evaluate`;
* :mod:`~minifp.train.rundir`: the files of a run directory and its states (complete,
  resumable, failed), temporaries, default names;
* :mod:`~minifp.train.frozen`: "no parameter changed in an epoch" and its cause;
* :mod:`~minifp.train.compare`: a checkpoint under another policy
  (:func:`evaluate_checkpoint`) and one network under several policies (:func:`compare`).

>>> from minifp.train import TrainConfig, train
>>> summary = train(TrainConfig(net="mlp", dataset="digits", dtype="float16",
...                             epochs=1, out=None, progress=False))   # doctest: +SKIP
"""
from .compare import compare, evaluate_checkpoint
from .loop import (PRESENTATION, RunFailed, TrainConfig, TrainResult, build, evaluate,
                   init_from_checkpoint, make_policy, run, train, versions)

__all__ = ["TrainConfig", "TrainResult", "RunFailed", "train", "run", "build", "evaluate",
           "make_policy", "init_from_checkpoint", "versions", "compare",
           "evaluate_checkpoint", "PRESENTATION"]
