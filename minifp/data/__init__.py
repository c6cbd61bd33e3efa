"""minifp.data: HDF5 datasets, importers of the original distribution files, batching.

* :func:`load_dataset` (``"mnist-5k"`` — :data:`DEFAULT_DATASET` —, ``"digits"``,
  ``"synthetic"`` or a path to an .h5 file) -> :class:`Dataset` (float32 x, int64 y,
  normalised per channel with training-set statistics);
* :func:`list_datasets`, :func:`dataset_dir`, :func:`dataset_dirs`, :func:`shipped_dir`
  (the shipped .h5 files live inside the package, in ``minifp/data/shipped/``; the
  environment variable ``MINIFP_DATASET_DIR`` names a folder searched before it),
  :func:`normalize_name` (``Fashion_MNIST`` -> ``fashion-mnist``, ``cifar`` -> ``cifar10``),
  :func:`synthetic`;
* :func:`batches` (seeded shuffle, one epoch per call, last partial batch kept);
* :func:`import_dataset` (``mnist``, ``fashion-mnist``, ``cifar10``, ``svhn``).

The ``minifp data`` commands live in :mod:`minifp.cli.data`.
"""
from .batching import batches, num_batches
from .datasets import (DEFAULT_DATASET, SHIPPED, Dataset, dataset_dir, dataset_dirs,
                       known_names, list_datasets, load_dataset, normalize_name, shipped_dir,
                       synthetic)
from .importers import IMPORTERS, import_dataset

__all__ = ["Dataset", "DEFAULT_DATASET", "SHIPPED", "load_dataset", "list_datasets",
           "dataset_dir", "dataset_dirs", "shipped_dir", "normalize_name", "known_names",
           "synthetic", "batches", "num_batches",
           "import_dataset", "IMPORTERS"]
