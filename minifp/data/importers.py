"""Importers: the original distribution files of MNIST, Fashion-MNIST, CIFAR-10 and SVHN
into minifp's HDF5 layout (uint8 (N, C, H, W) pixels, int64 labels, original train/test
split, provenance attributes).  Nothing is downloaded: point them at files you have.

* ``mnist``, ``fashion-mnist``: IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (each optionally ``.gz``; ``-idx3-`` may also be spelled ``.idx3-``);
* ``cifar10``: the "python version" pickles ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` (in DIR or DIR/cifar-10-batches-py).  They are read with a restricted
  unpickler that only rebuilds NumPy arrays, so a tampered file cannot run code;
* ``svhn``: ``train_32x32.mat`` and ``test_32x32.mat`` (format 2, MATLAB v5, read with
  scipy.io; label 10 means the digit 0).
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import UserError
from .datasets import aliases_text, normalize_name, write_h5

__all__ = ["IMPORTERS", "import_dataset", "importer_kind", "read_idx", "read_mnist",
           "read_cifar10", "read_svhn"]

DIGITS = [str(i) for i in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]

INFO = {
    "mnist": {"source": "MNIST, Yann LeCun, Corinna Cortes, Christopher J.C. Burges "
                        "(http://yann.lecun.com/exdb/mnist/)",
              "licence": "CC BY-SA 3.0 (per Yann LeCun and Corinna Cortes)",
              "class_names": DIGITS},
    "fashion-mnist": {"source": "Fashion-MNIST, Zalando Research "
                                "(https://github.com/zalandoresearch/fashion-mnist)",
                      "licence": "MIT", "class_names": FASHION},
    "cifar10": {"source": "CIFAR-10, Alex Krizhevsky, Vinod Nair, Geoffrey Hinton "
                          "(https://www.cs.toronto.edu/~kriz/cifar.html)",
                "licence": "no licence stated by the authors; cite Krizhevsky (2009), "
                           "Learning Multiple Layers of Features from Tiny Images",
                "class_names": CIFAR10},
    "svhn": {"source": "SVHN format 2, Netzer et al. (http://ufldl.stanford.edu/housenumbers/)",
             "licence": "non-commercial use only (per the SVHN website); cite Netzer et al. "
                        "(2011)",
             "class_names": DIGITS},
}


# ------------------------------------------------------------------------------ helpers
def _find(src: Path, stem_variants: list[str], what: str) -> Path:
    for stem in stem_variants:
        for name in (stem, stem + ".gz"):
            p = src / name
            if p.is_file():
                return p
    raise UserError(f"{what}: none of {', '.join(stem_variants)} (or .gz) found in {src}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"cannot read {path}: {' '.join(str(err).split())}") from None


# ------------------------------------------------------------------------------ IDX
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX file (optionally gzipped) as an array: magic 0x0000TTDD (TT type, DD rank),
    then DD big-endian uint32 dimensions, then the data."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES \
            or not 1 <= raw[3] <= 4:
        raise UserError(f"not an IDX file (bad magic number): {path}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"truncated IDX header: {path}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    # Python ints: a product of up to four 32-bit dimensions overflows int64 (a NumPy
    # product wraps around to a negative or too small byte count)
    need = math.prod(int(d) for d in dims) * int(dtype.itemsize)
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        shape = "x".join(str(int(d)) for d in dims)
        raise UserError(f"IDX file {path} declares shape {shape} of {dtype.name} "
                        f"({need} data bytes) but holds {len(body)} data bytes "
                        f"(truncated or corrupt)")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def read_mnist(src) -> dict:
    """MNIST / Fashion-MNIST IDX files in ``src`` -> arrays (uint8 (N,1,28,28), int64)."""
    src = Path(src)
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ip = _find(src, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"],
                   f"{split} images")
        lp = _find(src, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"],
                   f"{split} labels")
        x, y = read_idx(ip), read_idx(lp)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise UserError(f"{ip}: expected uint8 images of shape (N, H, W), got "
                            f"{x.dtype} {x.shape}")
        if y.ndim != 1 or y.dtype != np.uint8:
            raise UserError(f"{lp}: expected uint8 labels of shape (N,), got {y.dtype} "
                            f"{y.shape}")
        if len(x) != len(y):
            raise UserError(f"{ip.name} has {len(x)} images but {lp.name} has {len(y)} "
                            f"labels")
        if len(y) and y.max() > 9:
            raise UserError(f"{lp}: label {int(y.max())} is out of range 0..9")
        out[f"x_{split}"] = x[:, None].copy()
        out[f"y_{split}"] = y.astype(np.int64)
        out[f"files_{split}"] = [ip.name, lp.name]
    return out


# ------------------------------------------------------------------------------ CIFAR-10
class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds only NumPy arrays/dtypes and plain containers; refuses anything else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                            "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
               ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
               ("__builtin__", "object"), ("builtins", "object")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"not a CIFAR-10 python batch: {path} "
                        f"({type(err).__name__}: {' '.join(str(err).split())})") from None
    if not isinstance(obj, dict):
        raise UserError(f"not a CIFAR-10 python batch (no dict inside): {path}")
    return {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _load_pickle(path)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise UserError(f"CIFAR-10 batch {path} lacks key(s) {', '.join(missing)}")
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"])
    if x.ndim != 2 or x.shape[1] != 3072 or x.dtype != np.uint8:
        raise UserError(f"CIFAR-10 batch {path}: data must be uint8 (N, 3072), got "
                        f"{x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "ui":
        raise UserError(f"CIFAR-10 batch {path}: labels must be {len(x)} integers, got "
                        f"{y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise UserError(f"CIFAR-10 batch {path}: label out of range 0..9")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_cifar10(src) -> dict:
    """CIFAR-10 python batches in ``src`` (or ``src/cifar-10-batches-py``)."""
    src = Path(src)
    if not (src / "test_batch").is_file() and (src / "cifar-10-batches-py").is_dir():
        src = src / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in names + ["test_batch"] if not (src / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10: missing {', '.join(missing)} in {src}")
    parts = [_cifar_batch(src / n) for n in names]
    xte, yte = _cifar_batch(src / "test_batch")
    return {"x_train": np.concatenate([p[0] for p in parts]),
            "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": xte, "y_test": yte, "files_train": names, "files_test": ["test_batch"]}


# ------------------------------------------------------------------------------ SVHN
def _svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:
        raise UserError(f"{path} is a MATLAB v7.3 file; SVHN format 2 files are v5 "
                        f"(re-download train_32x32.mat / test_32x32.mat)") from None
    except Exception as err:  # noqa: BLE001 - scipy raises many types for bad files
        raise UserError(f"not a MATLAB .mat file: {path} "
                        f"({type(err).__name__}: {' '.join(str(err).split())})") from None
    if "X" not in mat or "y" not in mat:
        raise UserError(f"SVHN file {path} lacks the variables X and y")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise UserError(f"SVHN file {path}: X must be uint8 (32, 32, 3, N), got {x.dtype} "
                        f"{x.shape}")
    if len(y) != x.shape[3] or y.dtype.kind not in "uif":
        raise UserError(f"SVHN file {path}: y must hold {x.shape[3]} labels, got {y.dtype} "
                        f"{y.shape}")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise UserError(f"SVHN file {path}: label out of range 0..10")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


def read_svhn(src) -> dict:
    """SVHN format-2 ``train_32x32.mat`` and ``test_32x32.mat`` in ``src``."""
    src = Path(src)
    out = {}
    for split in ("train", "test"):
        p = src / f"{split}_32x32.mat"
        if not p.is_file():
            raise UserError(f"SVHN: {p.name} not found in {src}")
        out[f"x_{split}"], out[f"y_{split}"] = _svhn_mat(p)
        out[f"files_{split}"] = [p.name]
    return out


# ------------------------------------------------------------------------------ entry
IMPORTERS = {"mnist": read_mnist, "fashion-mnist": read_mnist, "cifar10": read_cifar10,
             "svhn": read_svhn}


def importer_kind(kind) -> str:
    """The importer name of ``kind`` in any spelling (:func:`~minifp.data.datasets.
    normalize_name`: ``Fashion_MNIST`` -> ``fashion-mnist``, ``CIFAR-10``/``cifar`` ->
    ``cifar10``); UserError naming the kinds and aliases for an unknown one."""
    key = normalize_name(kind)
    if key not in IMPORTERS:
        raise UserError(f"unknown dataset kind {str(kind)!r}; known: {', '.join(IMPORTERS)}"
                        f"{aliases_text()}")
    return key


def import_dataset(kind: str, src_dir, out_path) -> Path:
    """Read ``kind`` (mnist, fashion-mnist, cifar10, svhn, or an alias: see
    :func:`importer_kind`) from ``src_dir`` and write the HDF5 dataset layout to
    ``out_path`` (atomically); returns the path."""
    key = importer_kind(kind)
    src = Path(src_dir).expanduser()
    if not src.is_dir():
        raise UserError(f"source folder not found: {src}")
    arrays = IMPORTERS[key](src)
    info = INFO[key]
    files = ", ".join(arrays["files_train"] + arrays["files_test"])
    attrs = {"name": Path(out_path).stem, "kind": key,
             "source": f"{info['source']}; imported from {files}",
             "licence": info["licence"],
             "preprocessing": "none; uint8 pixels; normalised at load time with training-set "
                              "mean/std",
             "split": f"original train/test split ({len(arrays['y_train'])}/"
                      f"{len(arrays['y_test'])})",
             "scale": 255.0, "classes": 10, "class_names": info["class_names"]}
    return write_h5(out_path, arrays["x_train"], arrays["y_train"], arrays["x_test"],
                    arrays["y_test"], attrs, level=4)
