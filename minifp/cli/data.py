"""``minifp data``: list the datasets, import the original distribution files.

::

    minifp data list                              table of the datasets load_dataset knows
    minifp data show NAME|PATH                    provenance, licence, split, statistics
    minifp data import KIND --from DIR [--out PATH] [--force]

User errors (:class:`minifp.errors.UserError`) print ``minifp: error: <message>`` on
stderr and exit with status 2, also when this group is invoked on its own.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import CLIError, UserError
from ..data.datasets import dataset_dir, list_datasets, load_dataset
from ..data.importers import IMPORTERS, import_dataset


class _DataGroup(click.Group):
    """Turns UserError into a one-line click error (exit status 2)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise CLIError(str(err)) from None


def _size(n: int) -> str:
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _shape(s) -> str:
    return "?" if s is None else "x".join(str(v) for v in s)


@click.group("data", cls=_DataGroup)
def data():
    """Datasets: list them, show their provenance, import MNIST/Fashion-MNIST/CIFAR-10/SVHN."""


@data.command("list")
def list_cmd():
    """Table of the datasets: name, file, size, train/test shapes, classes."""
    rows = list_datasets()
    folder = dataset_dir()
    table = [("name", "path", "size", "train", "test", "classes")]
    for r in rows:
        path = "(generated)" if r["path"] is None else str(r["path"])
        try:
            path = str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            pass
        table.append((r["name"], path, _size(r["size"]), _shape(r["train_shape"]),
                      _shape(r["test_shape"]), "?" if r["classes"] is None
                      else str(r["classes"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(f"dataset folder: {folder}")


@data.command("show", short_help="Provenance, licence, split and statistics of a dataset.")
@click.argument("dataset")
def show_cmd(dataset):
    """Provenance, licence, preprocessing, split and training-set statistics of DATASET
    (a name or a path to an .h5 file)."""
    d = load_dataset(dataset)
    click.echo(d.summary())
    for key in ("path", "source", "licence", "preprocessing", "split", "split_seed", "scale",
                "mean", "std", "class_names"):
        if key in d.attrs:
            value = d.attrs[key]
            if key in ("mean", "std"):
                value = ", ".join(f"{v:.6g}" for v in value) + " (per channel, on [0,1])"
            elif isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            click.echo(f"  {key}: {value}")
    for label, y in (("train per class", d.y_train), ("test per class ", d.y_test)):
        counts = np.bincount(y, minlength=d.classes)
        click.echo(f"  {label}: {' '.join(str(int(c)) for c in counts)}")


@data.command("import", short_help="Convert MNIST/Fashion-MNIST/CIFAR-10/SVHN files to .h5.")
@click.argument("kind", type=click.Choice(list(IMPORTERS), case_sensitive=False))
@click.option("--from", "src", required=True, type=click.Path(path_type=Path),
              help="Folder holding the original distribution files.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Output .h5 file (default: KIND.h5 in the current directory; write it "
                   "into the dataset folder to load it by name).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def import_cmd(kind, src, out, force):
    """Convert KIND (mnist, fashion-mnist, cifar10, svhn) from its original files into a
    minifp .h5 dataset (uint8 pixels, original train/test split, provenance attributes).

    \b
    mnist, fashion-mnist: train-images-idx3-ubyte, train-labels-idx1-ubyte,
                          t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or not)
    cifar10:              data_batch_1..5, test_batch (python version)
    svhn:                 train_32x32.mat, test_32x32.mat (format 2)
    """
    kind = kind.lower()
    out = Path(out) if out is not None else Path.cwd() / f"{kind}.h5"
    if out.suffix.lower() not in (".h5", ".hdf5", ".hdf"):
        raise UserError(f"--out must name an .h5 file, got {out}")
    if out.exists() and not force:
        raise UserError(f"{out} exists (use --force to overwrite)")
    path = import_dataset(kind, src, out)
    d = load_dataset(path, normalize=False)
    click.echo(f"wrote {path} ({_size(path.stat().st_size)}): train {_shape(d.x_train.shape)}, "
               f"test {_shape(d.x_test.shape)}, {d.classes} classes")
