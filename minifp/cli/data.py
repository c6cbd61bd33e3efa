"""``minifp data``: list the datasets, show one's provenance, import the original files.

::

    minifp data list [--json]                     table of the datasets load_dataset knows
    minifp data show NAME|PATH [--json]           provenance, licence, split, statistics
    minifp data import KIND --from DIR [--out PATH] [--force]

Names and kinds are read in any spelling: case, ``-`` and ``_`` do not matter, and
``fashion_mnist``, ``cifar-10``, ``cifar`` are aliases (:func:`minifp.data.normalize_name`).
User errors (:class:`minifp.errors.UserError`, any ``ValueError``) print
``minifp: error: <message>`` on stderr and exit with status 2, also when this group is
invoked on its own.  JSON output is strict (:func:`minifp.jsonio.dumps`).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import OneLineGroup, UserError
from ..data.datasets import (H5_SUFFIXES, SHIPPED, dataset_dir, dataset_dirs, list_datasets,
                             load_dataset, shipped_dir)
from ..data.importers import IMPORTERS, importer_kind, import_dataset
from ..jsonio import dumps
from .checks import check_out_file


def _size(n: int) -> str:
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _shape(s) -> str:
    return "?" if s is None else "x".join(str(v) for v in s)


def _shown_path(path) -> str:
    """A path relative to the current directory when it lies below it, else absolute."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _folders_line() -> str:
    folders = dataset_dirs()
    parts = [f"{_shown_path(f)} (shipped with minifp)" if f == shipped_dir() else
             f"{_shown_path(f)} ($MINIFP_DATASET_DIR"
             + ("" if f.is_dir() else ", not a folder: ignored") + ")" for f in folders]
    return ("dataset folder: " if len(parts) == 1 else "dataset folders, in order: ") + \
        ", then ".join(parts)


@click.group("data", cls=OneLineGroup, epilog="""\b
Examples:
  minifp data list
  minifp data show mnist-5k
  minifp data import fashion_mnist --from ~/Downloads/fashion --out fashion.h5
""")
def data():
    """Datasets: list them, show their provenance, import MNIST/Fashion-MNIST/CIFAR-10/SVHN.

    The shipped datasets (mnist-5k, digits) are installed with minifp, in the package
    folder minifp/data/shipped; the environment variable MINIFP_DATASET_DIR names a
    folder searched for names before it (put imported .h5 files there to load them by
    name).
    """


@data.command("list", epilog="""\b
Examples:
  minifp data list
  minifp data list --json
  MINIFP_DATASET_DIR=~/datasets minifp data list
""")
@click.option("--json", "as_json", is_flag=True,
              help="Print the rows as JSON (name, path, size in bytes, train_shape, "
                   "test_shape, classes, description, shipped).")
def list_cmd(as_json):
    """Table of the datasets: name, file, size, train/test shapes, classes.

    Lists the .h5 files of $MINIFP_DATASET_DIR (when set) and of the shipped folder,
    and the generated `synthetic` dataset.
    """
    rows = list_datasets()
    if as_json:
        click.echo(dumps(rows, indent=2))
        return
    table = [("name", "path", "size", "train", "test", "classes")]
    for r in rows:
        path = "(generated)" if r["path"] is None else _shown_path(r["path"])
        table.append((r["name"], path, _size(r["size"]), _shape(r["train_shape"]),
                      _shape(r["test_shape"]), "?" if r["classes"] is None
                      else str(r["classes"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(_folders_line())


SHOW_KEYS = ("path", "source", "licence", "preprocessing", "split", "split_seed", "scale",
             "mean", "std", "class_names")


@data.command("show", short_help="Provenance, licence, split and statistics of a dataset.",
              epilog="""\b
Examples:
  minifp data show mnist-5k
  minifp data show Fashion_MNIST        (any spelling of a name)
  minifp data show ./mine.h5 --json
""")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary, the attributes and the per-class counts as JSON.")
def show_cmd(dataset, as_json):
    """Provenance, licence, preprocessing, split and training-set statistics of DATASET
    (a name from `minifp data list`, in any spelling, or a path to an .h5 file)."""
    d = load_dataset(dataset)
    counts = {split: np.bincount(y, minlength=d.classes).tolist()
              for split, y in (("train", d.y_train), ("test", d.y_test))}
    if as_json:
        click.echo(dumps({"name": d.name, "n_train": d.n_train, "n_test": d.n_test,
                          "input_shape": d.input_shape, "classes": d.classes,
                          "attrs": d.attrs, "train_per_class": counts["train"],
                          "test_per_class": counts["test"]}, indent=2))
        return
    click.echo(d.summary())
    for key in SHOW_KEYS:
        if key in d.attrs:
            value = d.attrs[key]
            if key in ("mean", "std"):
                value = ", ".join(f"{v:.6g}" for v in value) + " (per channel, on [0,1])"
            elif isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            click.echo(f"  {key}: {value}")
    for label, split in (("train per class", "train"), ("test per class ", "test")):
        click.echo(f"  {label}: {' '.join(str(c) for c in counts[split])}")


@data.command("import", short_help="Convert MNIST/Fashion-MNIST/CIFAR-10/SVHN files to .h5.",
              epilog="""\b
Examples:
  minifp data import mnist --from ~/Downloads/mnist
  minifp data import fashion_mnist --from fashion/ --out fashion.h5
  minifp data import cifar-10 --from cifar-10-batches-py --out $MINIFP_DATASET_DIR/cifar10.h5
  minifp data import svhn --from svhn/ --force
""")
@click.argument("kind", metavar="KIND")
@click.option("--from", "src", required=True, type=click.Path(path_type=Path),
              metavar="DIR", help="Folder holding the original distribution files.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Output .h5 file (default: KIND.h5 in the current directory; write it "
                   "into $MINIFP_DATASET_DIR to load it by name).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def import_cmd(kind, src, out, force):
    """Convert KIND (mnist, fashion-mnist, cifar10, svhn) from its original files into a
    minifp .h5 dataset (uint8 pixels, original train/test split, provenance attributes).
    KIND may be spelled in any case, with - or _, and as fashion_mnist, cifar-10 or
    cifar. Nothing is downloaded.

    \b
    mnist, fashion-mnist: train-images-idx3-ubyte, train-labels-idx1-ubyte,
                          t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or not)
    cifar10:              data_batch_1..5, test_batch (python version)
    svhn:                 train_32x32.mat, test_32x32.mat (format 2)
    """
    key = importer_kind(kind)
    out = Path(out) if out is not None else Path.cwd() / f"{key}.h5"
    if out.suffix.lower() not in H5_SUFFIXES:
        raise UserError(f"--out must name an .h5 file, got {out}")
    if out.exists() and not force:
        raise UserError(f"{out} exists (use --force to overwrite)")
    check_out_file(out, "--out")
    src = Path(src).expanduser()
    if src.exists() and not src.is_dir():
        raise UserError(f"--from {src} is a file, not a folder")
    path = import_dataset(key, src, out)
    d = load_dataset(path, normalize=False)
    click.echo(f"wrote {path} ({_size(path.stat().st_size)}): train {_shape(d.x_train.shape)}, "
               f"test {_shape(d.x_test.shape)}, {d.classes} classes")


__all__ = ["data", "IMPORTERS", "SHIPPED", "dataset_dir"]
