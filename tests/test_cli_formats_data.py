"""`minifp formats`, `minifp data` and `minifp bounds`: `formats list`, the group-level
`--json`, strict JSON everywhere, name aliases at the command line, help text and examples
for every command and option, and bad input (one line, exit 2, never a traceback)."""
from __future__ import annotations

import gzip
import pickle
import struct

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from minifp.cli import main
from minifp.cli.bounds import bounds_command
from minifp.cli.data import data as data_group
from minifp.cli.formats import formats as formats_group
from minifp.data import load_dataset
from minifp.formats import named_formats
from minifp.jsonio import loads_strict
from test_cli_bad_input import assert_user_error as _assert_user_error


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def ok(*args, env=None) -> str:
    res = run(*args, env=env)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def assert_user_error(result, *needles):
    """test_cli_bad_input's check (exit 2, one line `minifp: error: ...`, no traceback),
    and no traceback in stdout either."""
    _assert_user_error(result, *needles)
    assert "Traceback" not in result.output


# ---- formats list and the group-level --json ------------------------------------------
def test_formats_list_is_the_bare_table():
    table = ok("formats")
    assert ok("formats", "list") == table
    assert table.splitlines()[0].split()[:3] == ["name", "bits", "p"]


@pytest.mark.parametrize("args", [["formats", "--json"], ["formats", "list", "--json"],
                                  ["formats", "--json", "list"]])
def test_formats_list_json(args):
    rows = loads_strict(ok(*args))
    assert [r["name"] for r in rows] == [n for n, _, _ in named_formats()]
    assert rows == loads_strict(ok("formats", "--json"))


@pytest.mark.parametrize("name", ["e4m3", "e2m1", "posit8", "bfloat16", "float32"])
def test_group_json_applies_to_show(name):
    before = ok("formats", "--json", "show", name)
    after = ok("formats", "show", name, "--json")
    both = ok("formats", "--json", "show", name, "--json")
    assert before == after == both
    data = loads_strict(before)
    assert data["name"] == name or name in data["name"]
    assert ("codes" in data) == (data["bits"] <= 8)
    assert not ok("formats", "show", name).lstrip().startswith("{")   # text without --json


def test_round_json_group_or_command_and_strict():
    args = ["round", "e4m3", "1/3", "nan", "1e9", "-0.0"]
    text = ok("formats", "--json", *args)
    assert ok("formats", *args, "--json") == text
    out = loads_strict(text)                   # no NaN / Infinity in the text
    assert out["format"] == "e4m3" and out["rounding"] == "nearest_even"
    third, nan, big, negz = out["values"]
    assert third == {"input": "1/3", "rounded": 0.34375, "rounded_repr": "0.34375",
                     "code": 0x2B, "binary": "0.0101.011", "hex": "0x2b",
                     "relative_error": 0.03125, "relative_error_text": "3.125e-02"}
    assert nan["rounded"] is None and nan["rounded_repr"] == "nan" and nan["code"] == 0x7F
    assert big["rounded_repr"] == "nan"                 # e4m3 overflows to NaN (no Inf)
    assert negz["rounded_repr"] == "-0.0" and negz["code"] == 0x80
    # the text table is unchanged
    assert ok("formats", *args).splitlines()[0] == "e4m3, rounding nearest_even"
    sr = loads_strict(ok("formats", "round", "e5m2", "0.3", "--mode", "sr", "--seed", "3",
                         "--json"))
    assert sr["seed"] == 3 and sr["rounding"] == "stochastic"


def test_bounds_json_is_strict():
    """A huge n makes the Higham-Mary bound infinite: null, not `Infinity`."""
    res = run("bounds", "--format", "float16", "--n", 10 ** 12, "--json")
    assert res.exit_code == 0, res.output
    out = loads_strict(res.stdout)
    assert out["probabilistic"]["gamma_tilde"] is None
    assert out["gamma_n"] is None and out["gamma_n_vacuous"] is True


def test_bounds_tiny_failure_probability_has_a_finite_lambda():
    """lambda = sqrt(2 ln(2n/P))/(1-u) computed as log(2n) - log(P): 2n/P overflows."""
    import math

    out = loads_strict(ok("bounds", "--format", "float16", "--n", 1,
                          "--failure-probability", 1e-320, "--json"))
    lam = out["probabilistic"]["lambda"]
    u = 2.0 ** -11
    assert lam == pytest.approx(math.sqrt(2 * (math.log(2) - math.log(1e-320))) / (1 - u))


def test_data_json_is_strict(tmp_path):
    p = tmp_path / "nanattr.h5"
    with h5py.File(p, "w") as f:
        f["x_train"] = np.zeros((4, 2, 2), np.uint8)
        f["y_train"] = np.arange(4) % 2
        f["x_test"] = np.zeros((2, 2, 2), np.uint8)
        f["y_test"] = np.arange(2)
        f.attrs["split_seed"] = np.nan
        f.attrs["note"] = np.inf
    out = loads_strict(ok("data", "show", p, "--json"))
    assert out["attrs"]["split_seed"] is None and out["attrs"]["note"] is None
    assert out["train_per_class"] == [2, 2] and out["input_shape"] == [1, 2, 2]
    rows = loads_strict(ok("data", "list", "--json",
                           env={"MINIFP_DATASET_DIR": str(tmp_path)}))
    names = [r["name"] for r in rows]
    assert names[:2] == ["mnist-5k", "digits"] and "nanattr" in names and names[-1] == "synthetic"
    mnist = rows[0]
    assert mnist["shipped"] is True and mnist["train_shape"] == [4000, 1, 28, 28]


def test_data_list_text_names_the_folders(tmp_path):
    text = ok("data", "list")
    assert text.splitlines()[-1].startswith("dataset folder: ")
    assert "(shipped with minifp)" in text.splitlines()[-1]
    text = ok("data", "list", env={"MINIFP_DATASET_DIR": str(tmp_path)})
    assert text.splitlines()[-1].startswith(f"dataset folders, in order: {tmp_path} "
                                            f"($MINIFP_DATASET_DIR), then ")


# ---- aliases at the command line -----------------------------------------------------
def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + \
        struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_mnist(folder, n=10):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(x)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))


def _write_cifar(folder, n=2):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)


@pytest.mark.parametrize("typed, canonical", [("fashion_mnist", "fashion-mnist"),
                                              ("Fashion-MNIST", "fashion-mnist"),
                                              ("FASHIONMNIST", "fashion-mnist"),
                                              ("MNIST", "mnist")])
def test_cli_import_idx_aliases(tmp_path, monkeypatch, typed, canonical):
    src = tmp_path / "src"
    src.mkdir()
    _write_mnist(src)
    monkeypatch.chdir(tmp_path)
    out = ok("data", "import", typed, "--from", src)
    assert out.startswith(f"wrote {tmp_path / (canonical + '.h5')}")     # canonical name
    d = load_dataset(tmp_path / f"{canonical}.h5")
    assert d.attrs["kind"] == canonical and d.n_train == 10


@pytest.mark.parametrize("typed", ["cifar", "cifar-10", "CIFAR_10", "Cifar10"])
def test_cli_import_cifar_aliases(tmp_path, monkeypatch, typed):
    _write_cifar(tmp_path)
    monkeypatch.chdir(tmp_path)
    ok("data", "import", typed, "--from", tmp_path)
    d = load_dataset(tmp_path / "cifar10.h5")
    assert d.attrs["kind"] == "cifar10" and d.input_shape == (3, 32, 32)


def test_cli_show_and_train_names_in_any_spelling(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write_mnist(src)
    ok("data", "import", "fashion_mnist", "--from", src, "--out", tmp_path / "fashion-mnist.h5")
    env = {"MINIFP_DATASET_DIR": str(tmp_path)}
    for typed in ("fashion_mnist", "Fashion-MNIST", "fashionmnist"):
        assert ok("data", "show", typed, env=env).startswith("fashion-mnist: 10 train")
    assert ok("data", "show", "MNIST_5K").startswith("mnist-5k: 4000 train / 1000 test")
    assert ok("data", "show", "Digits").startswith("digits: 1438 train")


def test_cli_unknown_names_list_the_aliases(tmp_path):
    aliases = "aliases: fashion_mnist, fashionmnist = fashion-mnist; cifar-10, cifar = cifar10"
    assert_user_error(run("data", "import", "imagenet", "--from", tmp_path),
                      "unknown dataset kind 'imagenet'; known: mnist, fashion-mnist, "
                      "cifar10, svhn", aliases)
    assert_user_error(run("data", "show", "imagenet"), "unknown dataset 'imagenet'", aliases)
    assert_user_error(run("data", "show", "cifar"),
                      "'cifar' (cifar10) is not in", "minifp data import cifar10 --from DIR")


# ---- help and examples ------------------------------------------------------------------
def _commands():
    """(path, command) for every command and group of formats, data and bounds."""
    out = []
    for group, name in ((formats_group, "formats"), (data_group, "data")):
        out.append(([name], group))
        for sub, cmd in group.commands.items():
            out.append(([name, sub], cmd))
    out.append((["bounds"], bounds_command))
    return out


COMMANDS = _commands()
IDS = [" ".join(p) for p, _ in COMMANDS]


def test_every_command_is_covered():
    assert set(IDS) >= {"formats", "formats list", "formats show", "formats round", "data",
                        "data list", "data show", "data import", "bounds"}


@pytest.mark.parametrize("path, command", COMMANDS, ids=IDS)
def test_help_shows_examples_with_line_breaks(path, command):
    out = ok(*path, "--help")
    assert "Examples:" in out
    assert command.epilog and command.epilog.startswith("\b\nExamples:")
    examples = [line.strip() for line in command.epilog.splitlines()[2:] if line.strip()]
    assert examples and all(e.startswith("minifp ") or "minifp " in e for e in examples)
    for example in examples:                   # kept on its own line, not re-wrapped
        assert any(line.strip() == example for line in out.splitlines()), example


@pytest.mark.parametrize("path, command", COMMANDS, ids=IDS)
def test_every_option_has_help(path, command):
    options = [p for p in command.params if isinstance(p, click.Option)]
    missing = [p.opts[0] for p in options if not (p.help or "").strip()]
    assert not missing, f"minifp {' '.join(path)}: options without help: {missing}"
    out = ok(*path, "--help")
    for p in options:
        assert p.opts[0] in out


# ---- bad input: one line, exit 2 --------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    (tmp_path / "d.h5").mkdir()
    (tmp_path / "text.h5").write_text("not hdf5")
    huge = tmp_path / "huge_labels.h5"
    with h5py.File(huge, "w") as h:
        h["x_train"] = np.zeros((4, 2, 2), np.uint8)
        h["y_train"] = np.arange(4) + 2 ** 40
        h["x_test"] = np.zeros((2, 2, 2), np.uint8)
        h["y_test"] = np.arange(2)
    idx = tmp_path / "idx"
    idx.mkdir()
    dims = (2 ** 32 - 1,) * 3
    (idx / "train-images-idx3-ubyte").write_bytes(
        struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", *dims) + b"\0" * 8)
    (idx / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(3, np.uint8)))
    return tmp_path


BAD = [
    (["formats", "show", "float17"], "unknown format"),
    (["formats", "--json", "show", "nope"], "unknown format"),
    (["formats", "list", "extra"], "unexpected extra argument"),
    (["formats", "list", "--jsn"], "No such option"),
    (["formats", "round", "e4m3", ""], "not a number"),
    (["formats", "round", "e4m3", "1", "--mode", ""], "rounding mode"),
    (["formats", "round", "e4m3", "1", "--seed", "-1"], "--seed"),
    (["formats", "--json", "round", "e4m3", "abc"], "not a number"),
    (["formats", "round", "posit(64,3)", "1"], "posit width"),
    (["data", "show", ""], "unknown dataset ''"),
    (["data", "show", "{t}/d.h5"], "directory"),
    (["data", "show", "{t}/text.h5"], "not an HDF5 file"),
    (["data", "show", "{t}/gone.h5"], "not found"),
    (["data", "show", "{t}/huge_labels.h5"], "at most 100000 classes"),
    (["data", "show", "{t}/huge_labels.h5", "--json"], "at most 100000 classes"),
    (["data", "import", "", "--from", "{t}"], "unknown dataset kind ''"),
    (["data", "import", "mnist"], "Missing option '--from'"),
    (["data", "import", "mnist", "--from", "{t}/afile"], "is a file, not a folder"),
    (["data", "import", "mnist", "--from", "{t}/nowhere"], "source folder not found"),
    (["data", "import", "mnist", "--from", "{t}", "--out", "{t}/x.txt"], ".h5 file"),
    (["data", "import", "mnist", "--from", "{t}", "--out", "{t}/no/x.h5"], "does not exist"),
    (["data", "import", "mnist", "--from", "{t}", "--out", "{t}/d.h5", "--force"],
     "is a directory"),
    (["data", "import", "mnist", "--from", "{t}/idx", "--out", "{t}/o.h5"],
     f"declares shape {'x'.join(['4294967295'] * 3)} of uint8 ({(2 ** 32 - 1) ** 3} data "
     f"bytes) but holds 8 data bytes"),
    (["data", "frob"], "No such command"),
    (["bounds"], "Missing option '--n'"),
    (["bounds", "--n", "784", "--rounding", ""], "rounding mode"),
    (["bounds", "--n", "784", "--order", "blocked:"], "block size"),
    (["bounds", "--n", "784", "--format", "posit8", "--magnitude", "0"], "--magnitude"),
    (["bounds", "--n", "784", "--failure-probability", "nan"], "failure-probability"),
    (["bounds", "--n", "1.5"], "1.5"),
]


@pytest.mark.parametrize("args, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(files, args, needle):
    assert_user_error(run(*[a.replace("{t}", str(files)) for a in args]), needle)


@pytest.mark.parametrize("command, args, needle", [
    (formats_group, ["show", "float17"], "unknown format"),
    (formats_group, ["round", "e4m3", "1", "--mode", "bogus"], "rounding mode"),
    (data_group, ["show", "nosuch"], "unknown dataset"),
    (bounds_command, ["--n", "10", "--format", "nosuch"], "unknown format"),
    (bounds_command, ["--n", "10", "--order", "zigzag"], "accumulation order"),
])
def test_commands_on_their_own_give_one_line(command, args, needle):
    """Invoked without the top-level group (as a library user might), the commands still
    turn a ValueError into one line and exit 2."""
    res = CliRunner().invoke(command, args)
    assert_user_error(res, needle)
