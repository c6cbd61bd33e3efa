"""The autograd core: graph building, traversal, gradient accumulation, no_grad, records."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.autograd import Function, OpRecord, Parameter, Tensor, no_grad, trace
from minifp.precision import get_precision, layer_scope, use

F64 = get_precision("float64")


def test_tensor_basics():
    t = Tensor(np.arange(6.0).reshape(2, 3), name="t")
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.dtype == np.float64
    assert t.xp is np and len(t) == 2 and t.is_leaf and t.record is None
    assert not t.requires_grad and t.grad is None
    assert isinstance(t.numpy(), np.ndarray)
    assert Tensor(3).dtype.kind == "i"          # integer labels are kept
    assert Tensor([1.5, 2.5]).dtype == np.float64
    assert "name='t'" in repr(t)
    with pytest.raises(ValueError):
        Tensor(np.array(["a"]))
    p = Parameter(np.ones(3))
    assert p.requires_grad and p.grad_role == "gradients" and p.data_role == "weights"
    assert t.grad_role == "backward"


def test_shared_input_and_diamond():
    with use(F64):
        x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
        a = x * x            # 2x
        b = F.exp(x)         # e^x
        y = F.sum(a * b + x)   # d/dx = (2x + x^2) e^x + 1
        y.backward()
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), (2 * xv + xv ** 2) * np.exp(xv) + 1, rtol=1e-14)


def test_grad_accumulates_across_backward_calls():
    with use(F64):
        w = Parameter(np.array([1.0, -2.0]))
        for _ in range(3):
            F.sum(w * w).backward()
    np.testing.assert_array_equal(w.grad.numpy(), 3 * 2 * np.array([1.0, -2.0]))
    w.zero_grad()
    assert w.grad is None


def test_leaf_accumulation_rounded_to_gradient_format():
    with use("float16"):
        w = Parameter(np.float16([1.0]))
        F.sum(w * 1.0).backward()
        F.sum(w * 2.0 ** -11).backward()        # 1 + 2^-11: a tie, rounds to 1 in fp16
    assert w.grad.dtype == np.float16 and float(w.grad.data[0]) == 1.0


def test_deep_graph_is_iterative():
    with use(F64):
        x = Tensor(np.array([1.0]), requires_grad=True)
        y = x
        for _ in range(3000):            # deeper than Python's default recursion limit
            y = y + 1.0
        F.sum(y).backward()
    assert float(x.grad.data[0]) == 1.0


def test_no_grad_and_detach():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None
    assert y.record is not None and y.record.op == "mul"      # records still made
    z = (x * 2.0).detach()
    assert not z.requires_grad and z.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward(np.ones(3))


def test_backward_needs_grad_for_non_scalar_and_checks_shape():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    y = x * 3.0
    with pytest.raises(ValueError, match="explicit grad"):
        y.backward()
    y.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 3.0))


def test_retain_graph():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = F.sum(x * x)
    y.backward(retain_graph=True)
    y.backward()
    assert float(x.grad.data[0]) == 8.0
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_only_required_inputs_get_gradients():
    x = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.full(3, 2.0))
    F.sum(x * c).backward()
    assert c.grad is None and x.grad is not None


def test_backward_uses_policy_captured_at_forward():
    with use("float16"):
        w = Parameter(np.float16([0.1, 0.2]))
        x = Tensor(np.float16([3.0, 7.0]), requires_grad=True)
        y = F.sum(w * x)
    y.backward()                 # outside the block: float32 policy in force now
    assert w.grad.dtype == np.float16 and x.grad.dtype == np.float16


def test_custom_function():
    class Cube(Function):
        op_name = "cube"

        def forward(self, x):
            self.save_for_backward(x)
            return self.round_out(x.astype(np.float64) ** 3)

        def backward(self, g):
            (x,) = self.saved_tensors
            return self.round_grad(0, 3 * x.astype(np.float64) ** 2 * g)

    with use(F64):
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        y = Cube.apply(x)
        F.sum(y).backward()
    assert y.record.op == "cube"
    assert y.creator.released and not hasattr(y.creator, "saved_tensors")
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 12.0])


def test_records_and_trace():
    with use(F64), trace() as records:
        with layer_scope("block.0"):
            x = Tensor(np.ones((2, 3)), requires_grad=True)
            w = Parameter(np.ones((4, 3)))
            y = F.linear(x, w)
        z = F.relu(y)
    r = y.record
    assert isinstance(r, OpRecord)
    assert r.op == "linear" and r.layer == "block.0" and r.policy == "float64"
    assert r.formats == {"activations": "float64", "weights": "float64",
                         "backward": "float64", "gradients": "float64"}
    assert r.forward == ("float64 sequential fma",) and r.backward == ("float64 sequential fma",)
    assert z.record.layer == "" and z.record.forward == () and z.record.backward == ()
    assert [rec.op for rec in records] == ["linear", "relu"]
    assert "linear" in str(r) and r.to_dict()["layer"] == "block.0"


def test_operator_methods():
    with use(F64):
        a = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]))
        np.testing.assert_array_equal((a + 1).numpy(), a.numpy() + 1)
        np.testing.assert_array_equal((1 - a).numpy(), 1 - a.numpy())
        np.testing.assert_array_equal((2 / a).numpy(), 2 / a.numpy())
        np.testing.assert_array_equal((a @ a).numpy(), a.numpy() @ a.numpy())
        np.testing.assert_array_equal((-a).numpy(), -a.numpy())
        np.testing.assert_array_equal(a.T.numpy(), a.numpy().T)
        np.testing.assert_array_equal(a.reshape(4).numpy(), a.numpy().reshape(4))
        np.testing.assert_array_equal(a.sum(0).numpy(), a.numpy().sum(0))
        np.testing.assert_array_equal(a.mean().numpy(), a.numpy().mean())
        np.testing.assert_array_equal(a[0].numpy(), a.numpy()[0])
        np.testing.assert_array_equal((np.float64(2.0) * a).numpy(), 2 * a.numpy())
        assert isinstance(np.ones(2) + Tensor(np.ones(2)), Tensor)


def test_shape_mismatch_errors_name_both_shapes():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.matmul(a, b)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.add(a, b)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a * b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(5, 4\)"):
        F.linear(a, Tensor(np.ones((5, 4))))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(1, 2, 3, 3\)"):
        F.conv2d(Tensor(np.ones((2, 3, 4, 4))), Tensor(np.ones((1, 2, 3, 3))))
    with pytest.raises(ValueError, match="reshape"):
        F.reshape(a, (4, 2))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(a, np.array([0, 5]))
