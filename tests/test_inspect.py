"""minifp.inspect.step: per-layer records against a float64 reference and the a-priori
bounds of the local error."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from minifp import precision
from minifp.theory import accumulation as bounds
from minifp import functional as F
from minifp.autograd import Tensor, no_grad
from minifp.data import load_dataset
from minifp.formats import get_format
from minifp.inspect import abs_error, first_overflow, format_table, inspect, step
from minifp.nn.zoo import build_model

MLP_PATHS = ["body.0", "body.1", "body.2", "body.3", "body.4", "body.5", "body", ""]
MLP_KINDS = ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear", "Sequential",
             "ZooModel"]


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return np.asarray(d.x_train[:8]), np.asarray(d.y_train[:8])


@pytest.fixture(scope="module")
def mlp(digits):
    x, _ = digits
    return build_model("mlp", x.shape[1:], 10, seed=0)


def _pol(base, forward=None):
    if forward is None:
        return precision.get_precision(base)
    return precision.get_precision({"base": base, "forward": forward})


# ---------------------------------------------------------------- structure
def test_paths_kinds_and_labels(mlp, digits):
    x, _ = digits
    recs = inspect(mlp, x, "float16")
    assert [r.path for r in recs] == MLP_PATHS
    assert [r.kind for r in recs] == MLP_KINDS
    assert [r.index for r in recs] == list(range(8))
    assert [r.leaf for r in recs] == [True] * 6 + [False, False]
    assert [r.depth for r in recs] == [2] * 6 + [1, 0]
    assert recs[0].output_shape == (8, 64)
    assert recs[1].output_shape == (8, 256)
    assert recs[5].output_shape == recs[-1].output_shape == (8, 10)
    lin = recs[1]
    assert lin.formats["activations"] == "float16" and lin.formats["weights"] == "float16"
    assert lin.accumulations == ("float16 sequential fma",)
    assert lin.ops == ("linear",)
    assert recs[2].ops == ("relu",) and recs[2].accumulations == ()
    assert recs[-1].ops == ("reshape", "linear", "relu", "linear", "relu", "linear")
    assert all(r.policy == "float16" for r in recs)
    for r in recs:
        assert r.reference.shape == r.output.shape == r.local.shape == r.output_shape
    json.dumps([r.to_dict() for r in recs])          # JSON-able summaries
    table = format_table(recs)
    assert "body.1" in table and "Linear" in table and len(table.splitlines()) == 9


def test_model_untouched_and_lazy(mlp, digits):
    x, _ = digits
    masters = {k: v.copy() for k, v in mlp.master_state_dict().items()}
    params = {k: v.copy() for k, v in mlp.state_dict().items()}
    gen = step(mlp, x, "bfloat16")
    first = next(gen)
    assert first.path == "body.0"
    rest = list(gen)
    assert len(rest) == 7
    assert mlp.policy is None
    for k, v in mlp.master_state_dict().items():
        np.testing.assert_array_equal(v, masters[k])
    for k, v in mlp.state_dict().items():
        np.testing.assert_array_equal(v, params[k])


def test_bad_arguments(mlp, digits):
    x, _ = digits
    with pytest.raises(ValueError, match="narrower"):
        step(mlp, x, "float32", reference="float16")
    with pytest.raises(ValueError, match="unknown precision"):
        step(mlp, x, "float17")


# ---------------------------------------------------------------- errors
def test_float64_policy_has_zero_error(mlp, digits):
    x, _ = digits
    for r in inspect(mlp, x, "float64"):
        e = r.propagated_error
        assert (e.max_abs, e.mean_abs, e.max_rel, e.mean_rel) == (0.0, 0.0, 0.0, 0.0), r.path
        np.testing.assert_array_equal(r.output, r.reference)
        assert r.overflows == r.underflows == r.nonfinite == r.saturated == 0
        if r.kind in ("Flatten", "ReLU"):
            assert r.local_error.max_abs == 0.0
        if r.ratio is not None:  # float64 sequential vs exact: tiny, within its bound
            assert r.ratio <= 1.0


def test_errors_equal_independent_recomputation(mlp, digits):
    x, _ = digits
    recs = {r.path: r for r in inspect(mlp, x, "float16")}
    rec = recs["body.3"]
    p16 = precision.get_precision("float16")
    m16 = copy.deepcopy(mlp).to(p16)
    m64 = copy.deepcopy(mlp).to("float64")
    mods16, mods64 = dict(m16.named_modules()), dict(m64.named_modules())
    h16, h64 = x, x
    for i in range(4):
        h16 = mods16[f"body.{i}"](h16)
        h64 = mods64[f"body.{i}"](h64)
        if i == 2:
            in64 = h64.data.copy()
    a = h16.data.astype(np.float64)
    r = h64.data
    np.testing.assert_array_equal(rec.output, a)
    np.testing.assert_array_equal(rec.reference, r)
    d = np.abs(a - r)
    nz = r != 0
    e = rec.propagated_error
    assert e.max_abs == d.max()
    assert e.mean_abs == pytest.approx(d.mean(), rel=1e-12)
    assert e.max_rel == pytest.approx((d[nz] / np.abs(r[nz])).max(), rel=1e-12)
    assert e.mean_rel == pytest.approx((d[nz] / np.abs(r[nz])).mean(), rel=1e-12)
    assert rec.zeroed == int(np.count_nonzero((a == 0) & (r != 0)))

    # local: the reference input rounded to float16, the float16-rounded layer
    xr = get_format("float16").round(in64)
    np.testing.assert_array_equal(rec.local_input[0], xr.astype(np.float64))
    lin = mods16["body.3"]
    with precision.use(p16), no_grad():
        loc = F.linear(Tensor(xr), lin.weight, lin.bias).data.astype(np.float64)
    np.testing.assert_array_equal(rec.local, loc)
    w = lin.weight.data.astype(np.float64)
    b = lin.bias.data.astype(np.float64)
    exact = xr.astype(np.float64) @ w.T + b
    np.testing.assert_allclose(rec.local_exact, exact, rtol=1e-13, atol=1e-15)
    assert rec.local_error.max_abs == pytest.approx(np.abs(loc - exact).max(), rel=1e-9)

    # bound: gamma_257(2^-11) * (|W||x| + |b|) (+ the float64 reference's own rounding)
    s = np.abs(xr.astype(np.float64)) @ np.abs(w).T + np.abs(b)
    bd = bounds.accumulation_bound(p16.forward, 257, out="float16", magnitude=s.max() * 1.001)
    np.testing.assert_allclose(rec.bound, bd.relative * s + bd.absolute, rtol=1e-9)
    assert np.all(np.abs(loc - exact) <= rec.bound)
    assert 0 < rec.ratio <= 1


POLICIES = [
    ("float16", None), ("float16", "float16:exact"), ("float16", "float16:pairwise"),
    ("bfloat16", None), ("bfloat16", "bfloat16:sequential"), ("bfloat16", "bfloat16:exact"),
    ("fp8", None), ("e4m3", None), ("e4m3", "e4m3:exact"), ("posit8", None),
]


@pytest.mark.parametrize("base,forward", POLICIES)
def test_local_error_within_bound(mlp, digits, base, forward):
    x, _ = digits
    pol = _pol(base, forward)
    recs = inspect(mlp, x, pol)
    for r in recs:
        # every record has a bound, containers included (their ops, bound one by one)
        assert r.bound is not None and r.bound.shape == r.local.shape
        assert 0 <= r.ratio <= 1, (r.path, r.ratio)
        err = abs_error(r.local, r.local_exact)
        assert np.all(err <= r.bound), r.path
        if np.all(np.isinf(r.bound)):
            assert r.ratio == 0 and "vacuous" in r.bound_note
        elif np.any(np.isinf(r.bound)):
            assert "partly vacuous" in r.bound_note
        else:
            assert r.bound_note == ""
        # the propagated error (weights and input rounded too) within its bound
        assert r.propagated_bound.shape == r.output.shape
        assert np.all(abs_error(r.output, r.reference) <= r.propagated_bound), r.path
        assert 0 <= r.propagated_ratio <= 1
        if r.kind == "Linear":
            acc = pol.forward
            assert r.accumulations == (str(acc),)
            n = r.local_input[0].shape[-1] + 1
            vac = bounds.accumulation_bound(acc, n, out=pol.activations,
                                            magnitude=1.0).vacuous
            if vac:  # n u >= 1 for the accumulator: said, not a number
                assert "vacuous" in r.bound_note
        if r.kind in ("Flatten", "ReLU"):
            assert r.local_error.max_abs == 0.0


def test_conv_and_pool_bounds_and_unbounded_kinds(digits):
    x, _ = digits
    x = x[:4]
    lenet = build_model("lenet5", x.shape[1:], 10, seed=1)
    recs = inspect(lenet, x, "float16")
    kinds = {r.kind for r in recs}
    assert {"Conv2d", "MaxPool2d", "Linear", "ReLU"} <= kinds
    for r in recs:
        if r.leaf:
            assert r.ratio is not None and 0 <= r.ratio <= 1, r.path
            assert np.all(abs_error(r.local, r.local_exact) <= r.bound)
        if r.kind == "MaxPool2d":
            assert np.all(r.bound == 0) and r.local_error.max_abs == 0
    cnn = build_model("cnn", x.shape[1:], 10, seed=1)
    for train in (False, True):
        cnn.train(train)
        bn = [r for r in inspect(cnn, x, "float16") if r.kind == "BatchNorm2d"]
        assert bn and all(r.bound is not None and 0 < r.ratio <= 1 for r in bn), train
        assert all(np.all(abs_error(r.local, r.local_exact) <= r.bound) for r in bn)


# ---------------------------------------------------------------- overflow
def test_overflow_reported_at_first_linear(mlp, digits):
    x, _ = digits
    # the input fits float16 (max |x| * 2e4 < 65504), the first Linear's sums do not
    scale = 2e4
    assert np.abs(x).max() * scale < 65504
    recs = {r.path: r for r in inspect(mlp, x * scale, "float16")}
    assert recs["body.0"].overflows == 0 and recs["body.0"].nonfinite == 0
    assert recs["body.1"].overflows > 0
    assert np.isinf(recs["body.1"].propagated_error.max_abs)
    assert np.all(np.isfinite(recs["body.1"].reference))
    assert first_overflow(list(recs.values())).path == "body.1"
    # its local bound is vacuous (the sums may exceed 65504): said, not a number
    assert "vacuous" in recs["body.1"].bound_note and recs["body.1"].ratio == 0


def test_huge_input_scale_overflows_float16(mlp, digits):
    x, _ = digits
    recs = {r.path: r for r in inspect(mlp, x * 1e6, "float16")}
    # x * 1e6 does not fit float16 itself: the rounded input (Flatten's output) overflows,
    # and the first Linear reports overflows in every output
    assert recs["body.0"].overflows > 0
    assert recs["body.1"].overflows == recs["body.1"].output.size
    assert first_overflow(list(recs.values())).path == "body.0"
    ref = inspect(mlp, x * 1e6, "float32")
    assert first_overflow(ref) is None


def test_underflow_and_subnormal_counts(mlp, digits):
    x, _ = digits
    recs = {r.path: r for r in inspect(mlp, x * 1e-6, "float16")}
    r = recs["body.0"]  # the rounded input: tiny values become subnormal or 0 in float16
    assert r.subnormals > 0
    assert r.zeroed == int(np.count_nonzero((r.output == 0) & (r.reference != 0)))
    assert r.underflows == int(np.count_nonzero((r.local == 0) & (r.local_exact != 0)))
    assert recs["body.0"].subnormals == int(np.count_nonzero(
        (np.abs(r.output) > 0) & (np.abs(r.output) < 2.0 ** -14)))
    assert {r.subnormals for r in inspect(mlp, x, "posit8")} == {None}


# ---------------------------------------------------------------- backward
def test_backward_gradients(mlp, digits):
    x, y = digits
    recs64 = inspect(mlp, x, "float64", backward=True, targets=y)
    recs16 = inspect(mlp, x, "float16", backward=True, targets=y)
    for r in recs64:
        if r.grad_error is not None:
            assert r.grad_error.max_abs == 0
        for e in r.param_grad_errors.values():
            assert e.max_abs == 0
    by = {r.path: r for r in recs16}
    assert by["body.0"].grad_error is None          # the input needs no gradient
    for p in ("body.1", "body.3", "body.5"):
        r = by[p]
        assert r.grad_output.shape == r.output_shape
        assert set(r.param_grad_errors) == {"weight", "bias"}
        assert 0 < r.grad_error.max_abs < 1 and np.isfinite(r.grad_error.mean_abs)
        g, gref = r.param_grads["weight"]
        assert g.shape == gref.shape == (r.output_shape[1], r.local_input[0].shape[1])
    # seed 1 on every output when no targets: the root's gradient is all ones
    root = inspect(mlp, x, "float16", backward=True)[-1]
    np.testing.assert_array_equal(root.grad_output, np.ones((8, 10)))
    # forward records are the same with and without backward
    fwd = inspect(mlp, x, "float16")
    for a, b in zip(fwd, recs16):
        np.testing.assert_array_equal(a.output, b.output)


def test_backward_run_keeps_each_layers_ops():
    """The gradient taps are dropped from the op list without shifting the layers' ranges."""
    from minifp.data import load_dataset
    from minifp.inspect import inspect as run_inspect
    from minifp.nn.zoo import build_model
    d = load_dataset("digits")
    m = build_model("mlp", d.input_shape, d.classes, seed=0)
    fwd = run_inspect(m, d.x_test[:4], "float16")
    bwd = run_inspect(m, d.x_test[:4], "float16", backward=True, targets=d.y_test[:4])
    assert [r.ops for r in fwd] == [r.ops for r in bwd]
    for rf, rb in zip(fwd, bwd):
        assert set(rf.formats.items()) <= set(rb.formats.items())


# ---------------------------------------------------------------- local backward
def _check_grad_bounds(recs):
    seen = 0
    for r in recs:
        if r.grad_local_error is not None and r.grad_bound is not None:
            err = abs_error(r.grad_local, r.grad_local_exact)
            assert np.all(err <= r.grad_bound), r.path
            seen += 1
        for name, b in r.param_grad_bounds.items():
            if b is None:
                continue
            assert 0 <= r.param_grad_ratios[name] <= 1, (r.path, name)
        if r.grad_ratio is not None:
            assert 0 <= r.grad_ratio <= 1, r.path
    return seen


@pytest.mark.parametrize("policy", ["float16", "bfloat16", "e4m3", "posit8",
                                    {"base": "float16", "backward_acc": "float16:pairwise"}])
def test_local_backward_within_bound_mlp_lenet(digits, policy):
    x, y = digits
    x, y = x[:4], y[:4]
    pol = precision.get_precision(policy)
    for name in ("mlp", "lenet5"):
        net = build_model(name, x.shape[1:], 10, seed=2)
        recs = inspect(net, x, pol, backward=True, targets=y)
        assert _check_grad_bounds(recs) > 0
        for r in recs:
            if r.kind in ("Linear", "Conv2d"):        # every gradient of theirs has a rule
                assert set(r.param_grad_bounds) == {"weight", "bias"}
                bs = [r.grad_bound, *r.param_grad_bounds.values()]
                if r.grad_bound_note == "":
                    assert all(np.all(np.isfinite(b)) for b in bs)
                    assert 0 < r.grad_ratio <= 1
                else:                 # e4m3 accumulators: n u >= 1 for the long sums
                    assert r.grad_bound_note.startswith("vacuous in part")
                    assert any(np.any(np.isinf(b)) for b in bs)


@pytest.mark.parametrize("name,train", [("resnet", False), ("cnn", True), ("vit", False)])
def test_local_backward_resnet_cnn_vit(name, train):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 8, 8))
    net = build_model(name, (1, 8, 8), 10, seed=3)
    net.train(train)
    recs = inspect(net, x, "float16", backward=True, targets=np.array([1, 7]))
    assert _check_grad_bounds(recs) > 0
    kinds = {r.kind for r in recs if r.grad_ratio is not None and r.grad_ratio > 0}
    want = {"vit": {"Linear", "LayerNorm", "GELU"}}.get(name, {"Conv2d", "BatchNorm2d"})
    assert want <= kinds, kinds
    for r in recs:                      # every leaf layer of these nets has its rules
        if r.leaf and r.grad_bound is not None:
            assert "no gradient rule" not in r.grad_bound_note, r.path
