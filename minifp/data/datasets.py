"""Datasets: the :class:`Dataset` record, HDF5 loading with training-set normalisation,
the shipped datasets and a seeded synthetic generator.

HDF5 layout (shipped files, imported files and any file a user brings)::

    /x_train  (N, C, H, W) uint8 (or any real dtype)   /y_train  (N,) integer labels
    /x_test   (M, C, H, W)                             /y_test   (M,)
    root attrs: name, source, licence, preprocessing, split, split_seed, scale, classes,
                class_names (all optional except the four arrays)

``x`` of rank 3 ``(N, H, W)`` gets a channel axis; rank 2 ``(N, D)`` stays flat.  At load
time the pixels are divided by the ``scale`` attribute (255 when absent and the dtype is
uint8, else 1) and, with ``normalize=True``, standardised per channel with the mean and
standard deviation of the TRAINING set only (the test set never leaks into them).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["Dataset", "DEFAULT_DATASET", "SHIPPED", "load_dataset", "list_datasets",
           "dataset_dir", "dataset_dirs", "shipped_dir", "normalize_name", "synthetic",
           "known_names", "read_h5", "write_h5"]

DEFAULT_DATASET = "mnist-5k"
#: shipped datasets (files in :func:`shipped_dir`, inside the package; built by
#: scripts/build_datasets.py)
SHIPPED = {
    "mnist-5k": "5000 MNIST digits (28x28), 4000/1000 stratified split",
    "digits": "1797 UCI optical digits (8x8, values 0..16), stratified ~80/20 split",
}
SYNTHETIC = "synthetic"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ENV_DIR = "MINIFP_DATASET_DIR"
#: labels lie in 0..MAX_CLASSES-1 (a larger label is a corrupt file, not a dataset)
MAX_CLASSES = 100_000
#: synthetic(): at most this many values per split (1 GiB of float32)
MAX_SYNTHETIC_VALUES = 2 ** 28
#: the shipped .h5 files and their provenance README, installed with the package
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


# ------------------------------------------------------------------------------ record
@dataclass(repr=False)
class Dataset:
    """A train/test split of a classification dataset.

    ``x_*``: float32, shape (N, C, H, W) for images (or (N, D) for flat features);
    ``y_*``: int64 labels in ``range(classes)``.  ``attrs``: source, licence,
    preprocessing, ``scale``, the training-set ``mean``/``std`` (lists, one per channel)
    and ``normalized`` (whether x was standardised with them).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    attrs: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple:
        """Shape of one sample: (C, H, W) for images."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return int(len(self.y_train))

    @property
    def n_test(self) -> int:
        return int(len(self.y_test))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` / ``n_test`` samples (stored splits are in shuffled order,
        so a prefix is close to class-balanced); normalisation statistics are kept."""
        for label, n, total in (("n_train", n_train, self.n_train),
                                ("n_test", n_test, self.n_test)):
            if n is not None and not (isinstance(n, (int, np.integer)) and 0 < n):
                raise UserError(f"{label} must be a positive integer, got {n!r}")
        tr = slice(None) if n_train is None else slice(0, int(n_train))
        te = slice(None) if n_test is None else slice(0, int(n_test))
        return Dataset(self.name, self.x_train[tr], self.y_train[tr], self.x_test[te],
                       self.y_test[te], self.classes, dict(self.attrs))

    def summary(self) -> str:
        """One line: name, sizes, shape, classes, normalisation."""
        norm = "normalised (train mean/std)" if self.attrs.get("normalized") else "in [0,1]"
        shape = "x".join(str(s) for s in self.input_shape)
        return (f"{self.name}: {self.n_train} train / {self.n_test} test, input {shape}, "
                f"{self.classes} classes, {norm}")

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={tuple(self.x_train.shape)}, "
                f"test={tuple(self.x_test.shape)}, classes={self.classes})")


# ------------------------------------------------------------------------------ places
def shipped_dir() -> Path:
    """The folder of the shipped datasets inside the installed package
    (``minifp/data/shipped``: mnist-5k.h5, digits.h5 and their provenance README.md)."""
    return SHIPPED_DIR


def dataset_dir() -> Path:
    """The folder searched first for dataset names: ``$MINIFP_DATASET_DIR`` when that
    environment variable is set, else :func:`shipped_dir`.  Names not found there are
    looked up in :func:`shipped_dir` (see :func:`dataset_dirs`), so the shipped datasets
    stay loadable and a file of the same name in ``$MINIFP_DATASET_DIR`` overrides one."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return shipped_dir()


def dataset_dirs() -> list[Path]:
    """The folders searched for dataset names, in order: :func:`dataset_dir`, then
    :func:`shipped_dir` (once, when they are the same)."""
    first, shipped = dataset_dir(), shipped_dir()
    return [first] if first == shipped else [first, shipped]


def _looks_like_path(name) -> bool:
    if isinstance(name, os.PathLike):
        return True
    return (os.sep in name or "/" in name or name.lower().endswith(H5_SUFFIXES)
            or name.startswith("."))


#: other spellings of dataset names (after :func:`normalize_name`)
NAME_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}


def normalize_name(name) -> str:
    """A dataset (or importer kind) name as minifp spells it: stripped, lower case, ``_``
    and blanks as ``-``, then :data:`NAME_ALIASES` (``Fashion_MNIST`` -> ``fashion-mnist``,
    ``CIFAR-10``, ``cifar_10`` and ``cifar`` -> ``cifar10``, ``MNIST_5K`` -> ``mnist-5k``)."""
    key = "-".join(str(name).strip().lower().replace("_", "-").split())
    return NAME_ALIASES.get(key, key)


def aliases_text() -> str:
    """The accepted other spellings of names, for error messages:
    ``; aliases: fashion_mnist, fashionmnist = fashion-mnist; ...``."""
    groups: dict[str, list[str]] = {}
    for alias, target in NAME_ALIASES.items():
        groups.setdefault(target, [target.replace("-", "_")] if "-" in target else [])
        groups[target].append(alias)
    text = "; ".join(f"{', '.join(a)} = {t}" for t, a in groups.items())
    return f"; aliases: {text} (case, '-' and '_' do not matter)"


def _dataset_files() -> list[Path]:
    """The .h5 files of :func:`dataset_dirs`, one per name (the first folder wins)."""
    seen, files = set(), []
    for folder in dataset_dirs():
        if not folder.is_dir():
            continue
        try:
            entries = sorted(folder.iterdir())
        except OSError as err:
            raise UserError(f"cannot read dataset folder {folder}: "
                            f"{err.strerror or err}") from None
        for p in entries:
            if p.suffix.lower() in H5_SUFFIXES and p.is_file() and p.stem not in seen:
                seen.add(p.stem)
                files.append(p)
    return files


def known_names() -> list[str]:
    """Names :func:`load_dataset` accepts: shipped, synthetic, other .h5 files in
    :func:`dataset_dirs`."""
    names = list(SHIPPED) + [SYNTHETIC]
    for p in _dataset_files():
        if p.stem not in names:
            names.append(p.stem)
    return names


def _resolve(name_or_path) -> tuple[str, Path]:
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        return path.stem, path
    name = str(name_or_path).strip()
    files = _dataset_files()
    for p in files:                       # the name as typed
        if p.stem == name:
            return p.stem, p
    key = normalize_name(name)            # then any spelling of it
    for p in files:
        if normalize_name(p.stem) == key:
            return p.stem, p
    if key in SHIPPED:
        missing = shipped_dir() / f"{key}.h5"
        raise UserError(f"shipped dataset {key!r} is missing: {missing} not found "
                        f"(reinstall minifp, or rebuild it with scripts/build_datasets.py)")
    from .importers import IMPORTERS  # noqa: PLC0415 - importers imports this module
    if key in IMPORTERS:
        where = " or ".join(str(f) for f in dataset_dirs())
        raise UserError(f"dataset {name!r} ({key}) is not in {where}: import it with "
                        f"`minifp data import {key} --from DIR --out "
                        f"$MINIFP_DATASET_DIR/{key}.h5` (or give a path to an .h5 file)")
    known = known_names()
    raise UserError(f"unknown dataset {name!r}; known: {', '.join(known)}"
                    f"{aliases_text()}; or give a path to an .h5 file")


# ------------------------------------------------------------------------------ HDF5 I/O
def dataset_path(name_or_path) -> Path | None:
    """Where the dataset ``name_or_path`` would be loaded from (None for ``synthetic``,
    which is generated), without reading it; a one-line UserError when it is not here."""
    if not _looks_like_path(name_or_path) and normalize_name(name_or_path) == SYNTHETIC:
        return None
    return _resolve(name_or_path)[1]


def _plain(value):
    """HDF5 attribute -> plain Python (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OSU" \
            else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_h5(path) -> tuple[dict, dict]:
    """Raw arrays and attributes of a dataset file, validated (UserError on any problem)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise UserError(f"dataset file not found: {path}")
    if path.is_dir():
        raise UserError(f"dataset path is a directory, not an .h5 file: {path}")
    try:
        if not h5py.is_hdf5(path):
            raise UserError(f"not an HDF5 file: {path}")
        with h5py.File(path, "r") as f:
            missing = [k for k in ARRAYS if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise UserError(f"{path}: missing array(s) {', '.join(missing)} "
                                f"(a dataset file needs {', '.join(ARRAYS)})")
            arrays = {k: f[k][()] for k in ARRAYS}
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise UserError(f"cannot read dataset file {path}: {' '.join(str(err).split())}") \
            from None
    _validate(arrays, str(path))
    return arrays, attrs


def _validate(arrays: dict, where: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if not isinstance(x, np.ndarray) or x.ndim not in (2, 3, 4):
            raise UserError(f"{where}: x_{split} must have 2 to 4 dimensions "
                            f"(N, [C,] [H,] W), got shape {np.shape(x)}")
        if x.dtype.kind not in "uif" or (x.dtype.kind == "f" and not np.isfinite(x).all()):
            raise UserError(f"{where}: x_{split} must hold finite real numbers "
                            f"(dtype {x.dtype})")
        if not isinstance(y, np.ndarray) or y.ndim != 1:
            raise UserError(f"{where}: y_{split} must be a 1-D label array, "
                            f"got shape {np.shape(y)}")
        if y.dtype.kind not in "ui":
            raise UserError(f"{where}: y_{split} must hold integer labels (dtype {y.dtype})")
        if len(x) != len(y):
            raise UserError(f"{where}: x_{split} has {len(x)} samples but y_{split} has "
                            f"{len(y)}")
        if len(y) and y.min() < 0:
            raise UserError(f"{where}: y_{split} has a negative label ({int(y.min())})")
        if len(y) and int(y.max()) >= MAX_CLASSES:
            raise UserError(f"{where}: y_{split} has label {int(y.max())}; labels must lie "
                            f"in 0..{MAX_CLASSES - 1} (at most {MAX_CLASSES} classes)")
    if len(arrays["y_train"]) == 0:
        raise UserError(f"{where}: the training set is empty")
    s_train, s_test = (_as_nchw(arrays[k][:0]).shape[1:] for k in ("x_train", "x_test"))
    if s_train != s_test:
        raise UserError(f"{where}: x_train samples have shape {s_train} but x_test samples "
                        f"{s_test}")


def write_h5(path, x_train, y_train, x_test, y_test, attrs: dict, level: int = 9) -> Path:
    """Write the dataset layout atomically (temporary file in the same folder, then
    ``os.replace``), gzip-compressed; returns the path."""
    import h5py

    path = Path(path)
    arrays = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train),
              "x_test": np.asarray(x_test), "y_test": np.asarray(y_test)}
    _validate(arrays, str(path))
    if not path.parent.exists():
        raise UserError(f"output folder does not exist: {path.parent}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            for key, arr in arrays.items():
                if arr.size:
                    chunks = (min(len(arr), 2048),) + arr.shape[1:]
                    f.create_dataset(key, data=arr, compression="gzip",
                                     compression_opts=level, chunks=chunks,
                                     track_times=False)
                else:
                    f.create_dataset(key, data=arr, track_times=False)
            for key, value in attrs.items():
                f.attrs[key] = value
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ------------------------------------------------------------------------------ loading
def _as_nchw(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 3 else x


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float64) of x in (N, C, ...) — or one value for (N, D)."""
    if x.ndim == 2:
        mean = np.array([x.mean(dtype=np.float64)])
        std = np.array([x.std(dtype=np.float64)])
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(axis=axes, dtype=np.float64)
        std = x.std(axis=axes, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # a constant channel stays centred, not divided by 0
    return mean, std


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim > 2 else (1, 1)
    out = x - mean.astype(np.float32).reshape(shape)
    out /= std.astype(np.float32).reshape(shape)
    return out


def _finish(name, x_train, y_train, x_test, y_test, attrs, scale, classes, normalize):
    """Scale to [0,1] in float32, then (optionally) standardise with training statistics."""
    inv = np.float32(1.0 / scale)
    xtr = _as_nchw(x_train).astype(np.float32)
    xte = _as_nchw(x_test).astype(np.float32)
    if scale != 1:
        xtr *= inv
        xte *= inv
    mean, std = _channel_stats(xtr)
    if normalize:
        xtr = _standardise(xtr, mean, std)
        xte = _standardise(xte, mean, std)
    attrs = dict(attrs)
    attrs.update(scale=float(scale), mean=mean.tolist(), std=std.tolist(),
                 normalized=bool(normalize))
    ytr = y_train.astype(np.int64, copy=False)
    yte = y_test.astype(np.int64, copy=False)
    top = int(max(ytr.max(), yte.max() if len(yte) else 0)) + 1
    if classes is None:
        classes = top
    elif top > classes:
        raise UserError(f"dataset {name!r}: label {top - 1} is out of range for "
                        f"{classes} classes")
    return Dataset(name, xtr, ytr, xte, yte, int(classes), attrs)


def load_dataset(name_or_path=DEFAULT_DATASET, normalize: bool = True) -> Dataset:
    """Load a dataset by name (``mnist-5k`` — the default —, ``digits``, ``synthetic``, or
    any ``NAME.h5`` in :func:`dataset_dirs`) or from a path to an .h5 file.  Names are
    matched as typed, then in any spelling (:func:`normalize_name`: case, ``-``/``_`` and
    aliases such as ``fashion_mnist``, ``cifar-10``, ``cifar``).

    x comes back float32: divided by the file's ``scale`` attribute (so in [0,1]) and, with
    ``normalize``, standardised per channel with the training set's mean/std (stored in
    ``attrs["mean"]`` / ``attrs["std"]``).  Errors: :class:`~minifp.errors.UserError`.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_DATASET
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UserError(f"dataset must be a name or a path, got {name_or_path!r}")
    if not _looks_like_path(name_or_path) and normalize_name(name_or_path) == SYNTHETIC:
        return synthetic(normalize=normalize)
    name, path = _resolve(name_or_path)
    arrays, attrs = read_h5(path)
    attrs.setdefault("name", name)
    attrs["path"] = str(path)
    scale = attrs.get("scale")
    if scale is None:
        scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise UserError(f"{path}: attribute 'scale' must be a positive number, got {scale!r}")
    classes = attrs.get("classes")
    if classes is not None and not (isinstance(classes, int) and 0 < classes <= MAX_CLASSES):
        raise UserError(f"{path}: attribute 'classes' must be an integer from 1 to "
                        f"{MAX_CLASSES}, got {classes!r}")
    return _finish(str(attrs["name"]), arrays["x_train"], arrays["y_train"],
                   arrays["x_test"], arrays["y_test"], attrs, scale, classes, normalize)


# ------------------------------------------------------------------------------ synthetic
def synthetic(n_train: int = 512, n_test: int = 128, shape=(1, 8, 8), classes: int = 4,
              seed: int = 0, noise: float = 0.25, normalize: bool = True) -> Dataset:
    """A small learnable dataset for tests: one random prototype image in [0,1] per class,
    samples = prototype + Gaussian noise (sd ``noise``), clipped to [0,1]; labels balanced
    (``i % classes``, shuffled).  Same arguments, same arrays, bit for bit."""
    for label, v, low in (("n_train", n_train, 1), ("n_test", n_test, 0),
                          ("classes", classes, 2), ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise UserError(f"synthetic: {label} must be an integer >= {low}, got {v!r}")
    shape = tuple(shape) if np.iterable(shape) else (shape,)
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise UserError(f"synthetic: shape must be positive integers, got {shape!r}")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise UserError(f"synthetic: noise must be a number >= 0, got {noise!r}")
    if classes > MAX_CLASSES:
        raise UserError(f"synthetic: classes must be at most {MAX_CLASSES}, got {classes}")
    sample = math.prod(int(s) for s in shape)          # Python ints: no overflow
    for label, n in (("n_train", n_train), ("n_test", n_test), ("classes", classes)):
        if int(n) * sample > MAX_SYNTHETIC_VALUES:
            raise UserError(f"synthetic: {label} x shape = {int(n)} x {sample} = "
                            f"{int(n) * sample} values, more than {MAX_SYNTHETIC_VALUES} "
                            f"(2^28, 1 GiB of float32)")
    rng = np.random.default_rng(seed)
    protos = rng.random((classes,) + shape)

    def draw(n):
        y = rng.permutation(np.arange(n) % classes).astype(np.int64)
        x = protos[y] + noise * rng.standard_normal((n,) + shape)
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    attrs = {"name": SYNTHETIC, "source": f"minifp.data.synthetic(seed={seed})",
             "licence": "generated (no licence needed)",
             "preprocessing": f"class prototypes + N(0, {noise}^2) noise, clipped to [0,1]",
             "split_seed": int(seed)}
    return _finish(SYNTHETIC, xtr, ytr, xte, yte, attrs, 1.0, classes, normalize)


# ------------------------------------------------------------------------------ listing
def list_datasets() -> list[dict]:
    """One dict per dataset in :func:`dataset_dirs` (the first folder wins a name) plus
    ``synthetic``: name, path, size (bytes), train/test shapes, classes, description,
    shipped (whether the file is the one shipped with minifp)."""
    import h5py

    rows = []
    files = _dataset_files()
    order = {n: i for i, n in enumerate(SHIPPED)}
    files.sort(key=lambda p: (order.get(p.stem, len(order)), p.name))
    for p in files:
        shipped = p.parent == shipped_dir() and p.stem in SHIPPED
        row = {"name": p.stem, "path": str(p), "size": p.stat().st_size,
               "train_shape": None, "test_shape": None, "classes": None,
               "description": SHIPPED[p.stem] if shipped else "", "shipped": shipped}
        try:
            with h5py.File(p, "r") as f:
                row["train_shape"] = tuple(f["x_train"].shape)
                row["test_shape"] = tuple(f["x_test"].shape)
                classes = f.attrs.get("classes")
                if classes is None:
                    classes = int(max(f["y_train"][()].max(), f["y_test"][()].max())) + 1
                row["classes"] = int(classes)
                row["description"] = row["description"] or _plain(f.attrs.get("source", ""))
        except (OSError, KeyError, ValueError) as err:
            row["description"] = f"unreadable: {' '.join(str(err).split())}"
        rows.append(row)
    s = synthetic(normalize=False)
    rows.append({"name": SYNTHETIC, "path": None, "size": 0,
                 "train_shape": s.x_train.shape, "test_shape": s.x_test.shape,
                 "classes": s.classes, "description": "generated on demand, seeded",
                 "shipped": False})
    return rows
