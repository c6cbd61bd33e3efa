"""Checkpoints: bit-exact round trips, bit-identical resumes, atomic writes, corruption."""
import copy
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import minifp.checkpoint as ckpt_mod
import minifp.functional as F
from minifp.checkpoint import load_checkpoint, restore, save_checkpoint
from minifp.errors import UserError
from minifp.nn.zoo import build_model
from minifp.precision import get_precision

SHAPE = (1, 8, 8)


class FakeState:
    """Anything with state_dict()/load_state_dict() (optimizer or scaler stand-in)."""

    def __init__(self, state):
        self.state = state
        self.loaded = None

    def state_dict(self):
        return copy.deepcopy(self.state)

    def load_state_dict(self, sd):
        self.loaded = sd


def fake_optimizer_state(policy):
    o = get_precision(policy).optimizer
    rng = np.random.default_rng(5)
    m = o.round(rng.normal(size=(3, 4)))
    return {
        "optimizer": "fake",
        "step": 7,
        "hyperparameters": {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "nesterov": False},
        "state": {"body.0.weight": {"m": m, "v": np.abs(m), "step": np.int64(7)},
                  "fc.bias": {"m": np.array([np.nan, -0.0, np.inf], dtype=np.float32)}},
        "by_index": {0: np.arange(3, dtype=np.uint8), 1: "text", "kind": None},
        "history": [np.float16(1.5), np.ones(2), [1, 2.5, "x"]],
        "plain": [1.0, float("inf"), -0.0, None, True],
        "scalars": {"f32": np.float32(0.1), "i8": np.int8(-3)},
        "empty": {},
        "rng_state": json.dumps(np.random.default_rng(3).bit_generator.state),
    }


def assert_same(a, b, where="state"):
    """Deep equality: same types, keys, order, dtypes and bits."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert a == b or (a != a and b != b), where
        assert np.signbit(a) == np.signbit(b), where
    else:
        assert a == b, where


def trained_model(policy, name="cnn", steps=1, seed=0):
    """A zoo model under ``policy`` after a few plain SGD-like updates (weights and the
    BatchNorm running statistics move away from their initial values)."""
    model = build_model(name, SHAPE, 10, seed=seed).to(policy)
    p = get_precision(policy)
    rng = np.random.default_rng(seed + 1)
    for _ in range(steps):
        x, y = rng.random((4,) + SHAPE), rng.integers(0, 10, 4)
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for _, prm in model.named_parameters():
            prm.data = p.round("weights", prm.data.astype(np.float64)
                               - 0.05 * prm.grad.data.astype(np.float64))
    return model


def bits(sd):
    return {k: (v.dtype, v.shape, np.asarray(v).tobytes()) for k, v in sd.items()}


# ---- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["float16", "posit8"])
def test_round_trip_bit_exact(tmp_path, policy):
    model = trained_model(policy)
    model.commit_master()
    opt = FakeState(fake_optimizer_state(policy))
    scaler = FakeState({"mode": "dynamic", "scale": 32768.0, "skipped": 2,
                        "rng_state": "{}"})
    rng_state = np.random.default_rng(9).bit_generator.state
    path = tmp_path / "run.h5"
    out = save_checkpoint(path, model, opt, scaler, rng_state, 3, policy,
                          {"acc": 0.25, "dataset": "digits", "hist": [0.1, 0.2]})
    assert out == str(path)
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]           # no temporary left
    ck = load_checkpoint(path)
    fmt = get_precision(policy).weights
    sd = model.state_dict()
    params = dict(model.named_parameters())
    assert list(ck["params"]) == list(params)
    for k, prm in params.items():
        assert ck["formats"][k] == fmt.name
        assert np.array_equal(ck["codes"][k], fmt.encode(prm.data))
        assert ck["codes"][k].dtype == fmt.code_dtype
    assert bits(ck["params"]) == bits({k: sd[k] for k in params})
    assert bits(ck["masters"]) == bits(model.master_state_dict())
    bufs = dict(model.named_buffers())
    assert bufs and bits(ck["buffers"]) == bits(bufs)
    assert_same(ck["optimizer"], opt.state_dict(), "optimizer")
    assert_same(ck["scaler"], scaler.state_dict(), "scaler")
    assert ck["rng_state"] == rng_state
    assert ck["epoch"] == 3
    assert ck["policy"] == get_precision(policy).to_json(indent=None)
    assert ck["extra"] == {"acc": 0.25, "dataset": "digits", "hist": [0.1, 0.2]}
    assert ck["model"] == {"arch": "cnn", "input_shape": [1, 8, 8], "num_classes": 10}

    # restore into a fresh model built from another seed: everything comes back
    fresh = build_model("cnn", SHAPE, 10, seed=99).to(policy)
    opt2, sc2 = FakeState({}), FakeState({})
    assert restore(fresh, opt2, sc2, ck) is ck
    assert bits(fresh.state_dict()) == bits(sd)
    assert bits(fresh.master_state_dict()) == bits(model.master_state_dict())
    assert_same(opt2.loaded, opt.state_dict(), "optimizer")
    assert_same(sc2.loaded, scaler.state_dict(), "scaler")
    # parameters are not re-rounded from the masters at the next call
    x = np.random.default_rng(0).random((2,) + SHAPE)
    model.eval(), fresh.eval()
    assert model(x).data.tobytes() == fresh(x).data.tobytes()
    assert bits(fresh.state_dict()) == bits(sd)


def test_params_differ_from_masters(tmp_path):
    """Without commit_master the masters lag the parameters; both are kept exactly."""
    model = trained_model("float16", steps=2)
    masters = model.master_state_dict()
    w = dict(model.named_parameters())["body.0.weight"]
    assert not np.array_equal(w.data.astype(np.float64), masters["body.0.weight"])
    save_checkpoint(tmp_path / "c.h5", model, None, None, {}, 1, "float16", {})
    fresh = build_model("cnn", SHAPE, 10).to("float16")
    restore(fresh, None, None, load_checkpoint(tmp_path / "c.h5"))
    assert bits(fresh.state_dict()) == bits(model.state_dict())
    assert bits(fresh.master_state_dict()) == bits(masters)
    ck = load_checkpoint(tmp_path / "c.h5")
    assert ck["optimizer"] is None and ck["scaler"] is None


def test_restore_path_and_unpinned_model(tmp_path):
    model = trained_model("posit8", name="mlp")
    save_checkpoint(tmp_path / "c.h5", model, None, None, None, 0, None, None)
    fresh = build_model("mlp", SHAPE, 10, seed=4)          # no policy yet
    ck = restore(fresh, None, None, tmp_path / "c.h5")
    assert fresh.policy == get_precision("posit8")
    assert ck["rng_state"] is None and ck["extra"] == {}
    assert bits(fresh.state_dict()) == bits(model.state_dict())


def test_not_representable_values_fall_back_to_carrier(tmp_path):
    """Parameters that are not values of W (e.g. set by hand) still round-trip."""
    model = build_model("mlp", SHAPE, 10).to("float16")
    prm = dict(model.named_parameters())["body.1.weight"]
    prm.data = np.full(prm.shape, 0.1, dtype=np.float32)
    save_checkpoint(tmp_path / "c.h5", model, None, None, {}, 0, "float16", {})
    ck = load_checkpoint(tmp_path / "c.h5")
    assert ck["formats"]["body.1.weight"] == "float32"
    assert ck["formats"]["body.3.weight"] == "float16"
    assert bits(ck["params"]) == bits({k: p.data for k, p in model.named_parameters()})


def test_file_layout(tmp_path):
    model = trained_model("float16")
    save_checkpoint(tmp_path / "c.h5", model, FakeState(fake_optimizer_state("float16")),
                    None, {"seed": 1}, 2, "float16", {"note": "x"})
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert {"params", "masters", "buffers", "optimizer", "scaler"} <= set(f)
        ds = f["params/body.0.weight"]
        assert ds.dtype == np.uint16 and ds.attrs["format"] == "float16"
        assert f["masters/body.0.weight"].dtype == np.float64
        assert f["buffers/body.1.running_mean"].dtype == np.float64
        assert f["buffers/body.1.running_mean"].attrs["dtype"] == "float16"
        assert f["optimizer/state/body.0.weight/m"].dtype == np.float16
        assert f["scaler"].attrs["__kind__"] == "none"
        assert len(f.attrs["sha256"]) == 64
        assert json.loads(f.attrs["rng_state"]) == {"seed": 1}
        assert int(f.attrs["epoch"]) == 2


# ---- bit-identical resume with the real optimizer ----------------------------------------

def _policy_sr():
    return get_precision("float16").replace(name="float16-sr", rounding="stochastic", seed=3)


@pytest.mark.parametrize("policy", ["float16", "posit8", "mixed", "sr"])
def test_resume_is_bit_identical(tmp_path, policy):
    optim = pytest.importorskip("minifp.optim")
    policy = _policy_sr() if policy == "sr" else get_precision(policy)

    def setup():
        m = build_model("cnn", SHAPE, 10, seed=0).to(policy)
        opt = optim.build_optimizer("sgd", m, 0.05, policy, momentum=0.9)
        return m, opt, optim.LossScaler.from_policy(policy)

    def run(m, opt, sc, rng, steps):
        for _ in range(steps):
            x, y = rng.random((3,) + SHAPE), rng.integers(0, 10, 3)
            opt.zero_grad()
            sc.scale_loss(F.cross_entropy(m(x), y)).backward()
            sc.step(opt)

    m, opt, sc = setup()
    rng = np.random.default_rng(11)
    run(m, opt, sc, rng, 2)
    save_checkpoint(tmp_path / "c.h5", m, opt, sc, rng.bit_generator.state, 2, policy, {})
    run(m, opt, sc, rng, 2)                                   # the uninterrupted run
    m2, opt2, sc2 = setup()
    ck = restore(m2, opt2, sc2, load_checkpoint(tmp_path / "c.h5"))
    assert bits(m2.master_state_dict()) == bits(ck["masters"])
    assert bits(m2.state_dict()) == bits({**ck["params"], **ck["buffers"]})
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = ck["rng_state"]
    run(m2, opt2, sc2, rng2, 2)                               # the resumed run
    assert bits(m2.state_dict()) == bits(m.state_dict())
    assert_same(opt2.state_dict(), opt.state_dict(), "optimizer")
    assert_same(sc2.state_dict(), sc.state_dict(), "scaler")


# ---- atomic writes -----------------------------------------------------------------------

def _save(path, model, epoch):
    return save_checkpoint(path, model, FakeState(fake_optimizer_state("float16")), None,
                           {}, epoch, "float16", {})


def test_failure_midway_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    model = trained_model("float16")
    _save(path, model, 1)
    before = path.read_bytes()

    real = ckpt_mod._write_tree

    def boom(group, value, what):
        real(group, value, what)
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(ckpt_mod, "_write_tree", boom)
    with pytest.raises(RuntimeError, match="killed"):
        _save(path, model, 2)
    with pytest.raises(RuntimeError, match="killed"):
        _save(tmp_path / "new.h5", model, 2)
    assert sorted(os.listdir(tmp_path)) == ["c.h5"]            # no stray or final file
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1


def test_failing_replace_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    model = trained_model("float16")
    _save(path, model, 1)

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(UserError, match="cannot write checkpoint .*No space left") as e:
        _save(path, model, 2)
    assert "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["c.h5"]
    assert load_checkpoint(path)["epoch"] == 1


def test_hard_kill_during_write(tmp_path):
    """A process killed (os._exit, no cleanup) before the rename leaves the previous
    checkpoint complete at the final path."""
    path = tmp_path / "c.h5"
    model = trained_model("float16")
    _save(path, model, 1)
    script = textwrap.dedent(f"""
        import os, numpy as np
        import minifp.checkpoint as c
        from minifp.nn.zoo import build_model
        m = build_model("mlp", (1, 8, 8), 10).to("float16")
        def die(*a, **k):
            os._exit(9)
        c._fsync_path = die
        c.save_checkpoint({str(path)!r}, m, None, None, {{}}, 5, "float16", {{}})
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    assert load_checkpoint(path)["epoch"] == 1
    leftovers = [n for n in os.listdir(tmp_path) if n != "c.h5"]
    assert all(n.startswith("c.h5.tmp-") for n in leftovers)
    # the next save from this process replaces the file cleanly
    _save(path, model, 3)
    assert load_checkpoint(path)["epoch"] == 3


# ---- corruption --------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "c.h5"
    _save(path, trained_model("float16"), 1)
    return path


def _one_line_error(path, match):
    with pytest.raises(UserError, match=match) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.h5", "does not exist")


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello, not an HDF5 file\n" * 20)
    _one_line_error(p, "not an HDF5 file")
    e = tmp_path / "empty.h5"
    e.write_bytes(b"")
    _one_line_error(e, "not an HDF5 file")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f["x_train"] = np.zeros(3)
    _one_line_error(p, "not a minifp checkpoint")


@pytest.mark.parametrize("keep", [0.5, 0.9, -16])
def test_truncated(saved, keep):
    data = saved.read_bytes()
    n = int(len(data) * keep) if keep > 0 else len(data) + keep
    saved.write_bytes(data[:n])
    _one_line_error(saved, "truncated or corrupt|not an HDF5")


@pytest.mark.parametrize("where", ["params/body.0.weight", "masters/body.4.weight",
                                   "buffers/body.1.running_var",
                                   "optimizer/state/body.0.weight/m"])
def test_flipped_byte_in_dataset(saved, where):
    with h5py.File(saved, "r+") as f:
        ds = f[where]
        a = ds[()]
        raw = a.reshape(-1).view(np.uint8).copy()
        raw[1] ^= 0x10
        ds[...] = raw.view(a.dtype).reshape(a.shape)
    _one_line_error(saved, "checksum mismatch")


def test_changed_attr(saved):
    with h5py.File(saved, "r+") as f:
        f.attrs["epoch"] = 2
    _one_line_error(saved, "checksum mismatch")
    with h5py.File(saved, "r+") as f:
        f.attrs["epoch"] = 1
        f["params/body.0.weight"].attrs["format"] = "bfloat16"
    _one_line_error(saved, "checksum mismatch")


def test_flipped_byte_in_raw_file(saved):
    """Flip bytes of the file itself in the middle of the first parameter's data."""
    with h5py.File(saved, "r") as f:
        off = f["masters/body.0.weight"].id.get_offset()
    assert off is not None
    data = bytearray(saved.read_bytes())
    data[off + 3] ^= 0xFF
    saved.write_bytes(bytes(data))
    _one_line_error(saved, "checksum mismatch")


@pytest.mark.parametrize("group", ["params", "buffers", "optimizer"])
def test_missing_group(saved, group):
    with h5py.File(saved, "r+") as f:
        del f[group]
    _one_line_error(saved, f"group '{group}' is missing")


def test_missing_attr(saved):
    with h5py.File(saved, "r+") as f:
        del f.attrs["sha256"]
    _one_line_error(saved, "attribute 'sha256' is missing")


# ---- restore / save errors -----------------------------------------------------------------

def test_restore_mismatches(saved):
    ck = load_checkpoint(saved)
    with pytest.raises(UserError, match="does not match the model"):
        restore(build_model("mlp", SHAPE, 10).to("float16"), None, None, ck)
    with pytest.raises(UserError, match="shape"):
        restore(build_model("cnn", SHAPE, 3).to("float16"), None, None, ck)
    with pytest.raises(UserError, match="policy 'float16'.*'float32'"):
        restore(build_model("cnn", SHAPE, 10).to("float32"), None, None, ck)
    with pytest.raises(UserError, match="no loss-scaler state"):
        restore(build_model("cnn", SHAPE, 10).to("float16"), None, FakeState({}), ck)


def test_save_errors(tmp_path):
    model = build_model("mlp", SHAPE, 10).to("float32")
    with pytest.raises(UserError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "c.h5", model, None, None, {}, 0, None, {})
    with pytest.raises(UserError, match="extra must be a dict"):
        save_checkpoint(tmp_path / "c.h5", model, None, None, {}, 0, None, [1])
    with pytest.raises(UserError, match="not JSON serialisable"):
        save_checkpoint(tmp_path / "c.h5", model, None, None, {}, 0, None, {"f": object()})
    with pytest.raises(UserError, match="epoch"):
        save_checkpoint(tmp_path / "c.h5", model, None, None, {}, -1, None, {})
    with pytest.raises(UserError, match="is a directory"):
        save_checkpoint(tmp_path, model, None, None, {}, 0, None, {})
    assert os.listdir(tmp_path) == []
