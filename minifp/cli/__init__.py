"""The ``minifp`` command line (click): one module per command group.

``main`` (:mod:`minifp.cli.main`) is the console entry point; :mod:`~minifp.cli.formats`,
:mod:`~minifp.cli.data`, :mod:`~minifp.cli.train` (train, eval, compare),
:mod:`~minifp.cli.inspect` and :mod:`~minifp.cli.bounds` hold the commands, and
:mod:`~minifp.cli.checks` the checks of paths and numbers they share.
"""
from .main import main

__all__ = ["main"]
