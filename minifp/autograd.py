"""Reverse-mode automatic differentiation: :class:`Tensor`, :class:`Parameter`,
:class:`Function`, :func:`no_grad`.

A :class:`Tensor` holds a NumPy or CuPy array (``xp = tensor.xp``; one code path for
both).  Every differentiable op is a :class:`Function`: ``forward`` and ``backward``
work on arrays, ``apply`` builds the graph.  At ``apply`` time a Function captures the
precision policy in force (``minifp.precision.current()``, already resolved for the
current layer) and the stochastic-rounding generator; its backward runs under that same
captured policy, whenever and wherever ``backward()`` is called.

Numerics (the contract of DESIGN.md, "Semantics"):

* forward outputs are rounded to the activations format F (loss ops: L);
* gradients w.r.t. ordinary tensors are rounded to B ("backward"), w.r.t.
  :class:`Parameter` s to G ("gradients");
* when a tensor feeds several ops, its gradient contributions are added in float64
  and the sum is rounded once to its gradient format (B, or G for Parameters); a leaf's
  ``.grad`` accumulates across ``backward()`` calls the same way;
* reductions go through :mod:`minifp.accumulate` with the phase's Accumulation
  (``p.accumulation("forward")`` / ``p.accumulation("backward")``).

Every op output carries ``.record`` (:class:`OpRecord`): op name, layer path, the
format used per role, and the forward / backward Accumulation labels.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading

import numpy as np

from . import precision as _precision
from .backend import array_module, asnumpy, cupy_module, is_device_array

__all__ = ["Tensor", "Parameter", "Function", "OpRecord", "no_grad", "enable_grad",
           "is_grad_enabled", "as_tensor", "trace"]

_state = threading.local()


# ---------------------------------------------------------------- grad mode, tracing
def is_grad_enabled() -> bool:
    """False inside :func:`no_grad`."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    prev = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = prev


def no_grad():
    """Context: ops build no graph (outputs have ``requires_grad=False``); records are
    still attached."""
    return _grad_mode(False)


def enable_grad():
    """Context: turn graph building back on inside :func:`no_grad`."""
    return _grad_mode(True)


@contextlib.contextmanager
def trace():
    """Context collecting the :class:`OpRecord` of every op applied inside it::

        with trace() as records:
            loss = model(x)
        for r in records: print(r)
    """
    stack = getattr(_state, "traces", None)
    if stack is None:
        stack = _state.traces = []
    records: list = []
    stack.append(records)
    try:
        yield records
    finally:
        stack.pop()


def _layer_path() -> str:
    """The layer path of the innermost :func:`minifp.precision.layer_scope` ("" outside)."""
    return _precision.current_layer() or ""


def _uses_stochastic(p, accs=None) -> bool:
    """Whether any role or the accumulation of either phase (``accs``: the two
    Accumulations when the caller has them already) rounds stochastically."""
    if accs is None:
        accs = (p.accumulation("forward"), p.accumulation("backward"))
    modes = list(getattr(p, "rounding", {}).values()) + [a.rounding for a in accs]
    return any(getattr(m, "value", m) == "stochastic" for m in modes)


# ---------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class OpRecord:
    """What one op did: ``op`` name, ``layer`` path, ``formats`` (role -> format name
    used: the output role F or L, W when a Parameter is an input, and B / G for the
    gradients of its inputs),
    ``forward`` / ``backward`` (labels of the Accumulations its reductions use; empty
    when the phase has no reduction), ``policy`` (the policy's name)."""

    op: str
    layer: str
    formats: dict
    forward: tuple = ()
    backward: tuple = ()
    policy: str = ""

    def __str__(self) -> str:
        fmts = ", ".join(f"{k}={v}" for k, v in self.formats.items())
        s = f"{self.layer + ': ' if self.layer else ''}{self.op} [{fmts}]"
        if self.forward:
            s += f" fwd acc: {'; '.join(self.forward)}"
        if self.backward:
            s += f" bwd acc: {'; '.join(self.backward)}"
        return s

    def to_dict(self) -> dict:
        return {"op": self.op, "layer": self.layer, "formats": dict(self.formats),
                "forward": list(self.forward), "backward": list(self.backward),
                "policy": self.policy}


# ---------------------------------------------------------------- Tensor
def _count_underflows(role, x, r):
    """Add the elements of ``x`` that are nonzero but round to 0 in ``r`` to the role's
    count (kept as an array on the data's device until read)."""
    xp = array_module(r)
    with np.errstate(invalid="ignore"):
        n = xp.count_nonzero((xp.asarray(x) != 0) & (r == 0))
    counts = getattr(_state, "underflows", None)
    if counts is None:
        counts = _state.underflows = {}
    counts[role] = counts.get(role, 0) + n


def underflow_counts(reset: bool = False) -> dict:
    """{role: number of gradient elements (B: activation gradients, G: weight gradients)
    that were nonzero before their rounding and 0 after it}, since the last reset."""
    counts = getattr(_state, "underflows", None) or {}
    out = {role: int(n) for role, n in counts.items()}
    if reset:
        _state.underflows = {}
    return out


def _on_one_device(tensors):
    """The op's inputs, with constant NumPy inputs (a layer's scale, a mask made on the
    host) copied to the device of the others when any input is a CuPy array; a NumPy
    input that takes a gradient next to CuPy inputs is an error (a module not moved)."""
    if not any(is_device_array(t.data) for t in tensors):
        return tensors
    xp = array_module(*[t.data for t in tensors])
    out = []
    for t in tensors:
        if isinstance(t.data, np.ndarray):
            if t.requires_grad:
                raise ValueError("an op mixes arrays on the CPU and the GPU: move the module "
                                 "and its inputs to one device (Module.to(device=...))")
            t = Tensor(xp.asarray(t.data), name=t.name)
        out.append(t)
    return tuple(out)


def as_tensor(x) -> "Tensor":
    """A Tensor as is; anything else (array, scalar) becomes a constant Tensor."""
    return x if isinstance(x, Tensor) else Tensor(x)


class Tensor:
    """An array (NumPy or CuPy) in a graph.

    ``data``: the array, holding values of its format in that format's carrier dtype.
    Integer and boolean data are kept as given (class labels, masks); other non-float
    input becomes float64.  ``grad``: a Tensor (gradient format: B, or G for
    :class:`Parameter`) or None.  ``creator``: the Function that produced it.
    ``record``: the :class:`OpRecord` of that op (None for leaves).
    """

    __array_priority__ = 1000  # numpy scalars/arrays defer to our operators
    data_role = "activations"
    grad_role = "backward"

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        xp = array_module(data)
        a = xp.asarray(data)
        if a.dtype.kind not in "fiub":
            raise ValueError(f"Tensor data must be real numbers, got dtype {a.dtype}")
        if a.dtype.kind == "f" and a.dtype.itemsize > 8:
            a = a.astype(np.float64)
        self.data = a
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self.record: OpRecord | None = None

    # ---- array-like properties
    @property
    def xp(self):
        return array_module(self.data)

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = repr(asnumpy(self.data)).replace("\n", "\n" + " " * 7)
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.name:
            extra += f", name={self.name!r}"
        return f"{type(self).__name__}({body}{extra})"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU if needed)."""
        return asnumpy(self.data)

    def item(self) -> float:
        return asnumpy(self.data).item()

    def detach(self) -> "Tensor":
        """Same data, no graph, no grad."""
        return Tensor(self.data, name=self.name)

    def zero_grad(self) -> None:
        self.grad = None

    def to_gpu(self) -> "Tensor":
        """Move the data to the GPU in place (CuPy); returns self."""
        cupy = cupy_module()
        self.data = cupy.asarray(self.data)
        if self.grad is not None:
            self.grad.data = cupy.asarray(self.grad.data)
        return self

    def to_cpu(self) -> "Tensor":
        """Move the data to the host in place; returns self."""
        self.data = asnumpy(self.data)
        if self.grad is not None:
            self.grad.data = asnumpy(self.grad.data)
        return self

    # ---- backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf with ``requires_grad``.

        ``grad``: the seed (defaults to 1 for a one-element tensor; a loss-scaling factor
        goes here), rounded to L when ``self`` is a loss output and to B otherwise, under
        the policy of the op that produced ``self``.  The graph is walked iteratively in
        reverse topological order; each op's backward runs under the policy captured at
        its forward.  ``retain_graph=False`` frees saved arrays afterwards.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(was it computed under no_grad, or from constants only?)")
        xp = self.xp
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward() needs an explicit grad for a tensor of shape "
                                 f"{self.shape} (only one-element outputs default to 1)")
            seed = xp.ones(self.shape, dtype=np.float64)
        else:
            seed = xp.asarray(grad.data if isinstance(grad, Tensor) else grad)
            if seed.shape != self.data.shape:
                try:
                    seed = xp.broadcast_to(seed, self.data.shape)
                except ValueError:
                    raise ValueError(f"backward(): grad of shape {tuple(seed.shape)} does not "
                                     f"broadcast to the tensor's shape {self.shape}") from None
        fn0 = self.creator
        if fn0 is None:  # a leaf: its gradient is the seed
            p = _precision.current()
            _accumulate_leaf(self, p.round(self.grad_role, seed, _rng_if(p)), p, None)
            return
        # dL/dL lives with the output: in L for a loss (so a loss-scale seed such as 2^16
        # survives an fp16 B), in B otherwise.
        seed_role = "loss" if fn0.output_role == "loss" else "backward"
        seed = fn0.policy.round(seed_role, seed, fn0.rng)

        order = _toposort(fn0)
        grads = {id(fn0): seed}
        for fn in reversed(order):
            g = grads.pop(id(fn), None)
            if g is None:
                continue
            if fn.released:
                raise RuntimeError(f"backward through {fn.op_name} a second time: its saved "
                                   "arrays were freed; pass retain_graph=True the first time")
            gxs = fn.backward(g)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if len(gxs) != len(fn.inputs):
                raise RuntimeError(f"{fn.op_name}.backward returned {len(gxs)} gradients "
                                   f"for {len(fn.inputs)} inputs")
            for t, gx, need in zip(fn.inputs, gxs, fn.needs_input_grad):
                if not need or gx is None:
                    continue
                if tuple(gx.shape) != t.shape:
                    raise RuntimeError(f"{fn.op_name}.backward: gradient of shape "
                                       f"{tuple(gx.shape)} for an input of shape {t.shape}")
                c = t.creator
                if c is not None:
                    prev = grads.get(id(c))
                    grads[id(c)] = gx if prev is None else _add_round(
                        fn, t.grad_role, prev, gx)
                else:
                    _accumulate_leaf(t, gx, fn.policy, fn.rng)
            if not retain_graph:
                fn.release()

    # ---- operators (defined in minifp.functional)
    def __add__(self, other):
        return _F().add(self, other)

    def __radd__(self, other):
        return _F().add(other, self)

    def __sub__(self, other):
        return _F().sub(self, other)

    def __rsub__(self, other):
        return _F().sub(other, self)

    def __mul__(self, other):
        return _F().mul(self, other)

    def __rmul__(self, other):
        return _F().mul(other, self)

    def __truediv__(self, other):
        return _F().div(self, other)

    def __rtruediv__(self, other):
        return _F().div(other, self)

    def __neg__(self):
        return _F().neg(self)

    def __pow__(self, exponent):
        return _F().pow(self, exponent)

    def __matmul__(self, other):
        return _F().matmul(self, other)

    def __rmatmul__(self, other):
        return _F().matmul(other, self)

    def __getitem__(self, index):
        return _F().getitem(self, index)

    @property
    def T(self):
        return _F().transpose(self)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _F().transpose(self, axes or None)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _F().reshape(self, tuple(shape))

    def flatten(self, start_dim: int = 1):
        return _F().flatten(self, start_dim)

    def sum(self, axis=None, keepdims: bool = False):
        return _F().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _F().mean(self, axis, keepdims)

    def exp(self):
        return _F().exp(self)

    def log(self):
        return _F().log(self)

    def sqrt(self):
        return _F().sqrt(self)

    def tanh(self):
        return _F().tanh(self)

    def sigmoid(self):
        return _F().sigmoid(self)

    def relu(self):
        return _F().relu(self)


class Parameter(Tensor):
    """A trainable tensor (weights, biases): data in the weights format W, gradients
    rounded to the weight-gradient format G.  ``requires_grad`` defaults to True."""

    data_role = "weights"
    grad_role = "gradients"

    def __init__(self, data, requires_grad: bool = True, name: str | None = None):
        super().__init__(data, requires_grad=requires_grad, name=name)


def _F():
    from . import functional  # noqa: PLC0415 - functional imports this module
    return functional


def _rng_if(p):
    return _precision.current_rng() if _uses_stochastic(p) else None


def _sum_round(policy, rng, role, a, b):
    """a + b in float64, rounded once to ``role`` under ``policy``."""
    xp = array_module(a, b)
    return policy.round(role, xp.asarray(a, dtype=np.float64) + xp.asarray(b, dtype=np.float64),
                        rng)


def _add_round(fn, role, a, b):
    """a + b in float64, rounded once to ``role`` under the policy of ``fn``."""
    return _sum_round(fn.policy, fn.rng, role, a, b)


def _accumulate_leaf(t: Tensor, g, policy, rng) -> None:
    """Store or add ``g`` into ``t.grad``: the sum is rounded once to the leaf's
    gradient format (G for Parameters, else B)."""
    if t.grad is None:
        t.grad = Tensor(policy.round(t.grad_role, g, rng))
    else:
        t.grad = Tensor(_sum_round(policy, rng, t.grad_role, t.grad.data, g))


def _toposort(root) -> list:
    """Functions reachable from ``root`` in post-order (producers before consumers),
    by an iterative depth-first search."""
    order: list = []
    visited: set = set()
    stack = [(root, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t, need in zip(fn.inputs, fn.needs_input_grad):
            c = t.creator
            if need and c is not None and id(c) not in visited:
                stack.append((c, False))
    return order


# ---------------------------------------------------------------- Function
class Function:
    """A differentiable op.  Subclasses implement

    ``forward(self, *arrays) -> array``       rounded to the output role (F, or L for losses)
    ``backward(self, g) -> array | tuple``    one gradient per input (None where not needed),
                                              rounded to that input's gradient role

    and may set ``output_role`` ("activations" or "loss"), ``op_name``,
    ``forward_reduces`` / ``backward_reduces`` (whether the phase's Accumulation is used;
    they decide which labels the record carries).  Keyword arguments of ``apply`` become
    attributes.  Inside forward/backward: ``self.policy`` (captured Precision),
    ``self.rng`` (stochastic-rounding generator or None), ``self.fwd_acc`` /
    ``self.bwd_acc``, ``self.inputs``, ``self.needs_input_grad``, and the helpers
    :meth:`round_out`, :meth:`round_grad`, :meth:`grad_role`.  Arrays needed by the
    backward are kept with :meth:`save_for_backward` or in attributes named ``saved_*``;
    both are dropped after the backward pass unless ``retain_graph=True``.
    """

    output_role = "activations"
    op_name: str | None = None
    forward_reduces = False
    backward_reduces = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        if self.op_name is None:
            self.op_name = type(self).__name__.lower()
        self.released = False

    @classmethod
    def apply(cls, *inputs, **kwargs) -> Tensor:
        """Run the op on ``inputs`` (Tensors, arrays or scalars) and return the output
        Tensor, linked into the graph when any input requires grad."""
        return cls(**kwargs)(*inputs)

    def __call__(self, *inputs) -> Tensor:
        p = _precision.current()
        self.policy = p
        self.fwd_acc = p.accumulation("forward")
        self.bwd_acc = p.accumulation("backward")
        self.rng = (_precision.current_rng()
                    if _uses_stochastic(p, (self.fwd_acc, self.bwd_acc)) else None)
        self.layer = _layer_path()
        self.inputs = _on_one_device(tuple(as_tensor(x) for x in inputs))
        grad_on = is_grad_enabled()
        self.needs_input_grad = tuple(grad_on and t.requires_grad for t in self.inputs)
        out = self.forward(*[t.data for t in self.inputs])
        requires = any(self.needs_input_grad)
        y = Tensor(out, requires_grad=requires)
        y.record = self.make_record()
        traces = getattr(_state, "traces", None)
        if traces:
            for records in traces:
                records.append(y.record)
        if requires:
            y.creator = self
        else:
            self.release()
        return y

    # ---- helpers for subclasses
    def grad_role(self, i: int) -> str:
        """"gradients" (G) when input ``i`` is a Parameter, else "backward" (B)."""
        return self.inputs[i].grad_role

    def round_out(self, x):
        """Round a forward result (float64 or any real dtype) once to the output role."""
        return self.policy.round(self.output_role, x, self.rng)

    def round_grad(self, i: int, x):
        """Round a gradient for input ``i`` once to its role (B or G); a nonzero value
        that rounds to 0 counts as an underflow of that role (:func:`underflow_counts`)."""
        role = self.grad_role(i)
        r = self.policy.round(role, x, self.rng)
        _count_underflows(role, x, r)
        return r

    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for the backward as ``self.saved_tensors`` (freed by
        :meth:`release`; any attribute named ``saved_*`` is freed the same way)."""
        self.saved_tensors = arrays

    def make_record(self) -> OpRecord:
        p = self.policy
        fmts = {self.output_role: p.format_of(self.output_role).name}
        if any(isinstance(t, Parameter) for t in self.inputs):
            fmts.setdefault("weights", p.weights.name)
        for i, need in enumerate(self.needs_input_grad):
            if need:
                role = self.grad_role(i)
                fmts.setdefault(role, p.format_of(role).name)
        fwd = (str(self.fwd_acc),) if self.forward_reduces else ()
        bwd = (str(self.bwd_acc),) if self.backward_reduces and any(self.needs_input_grad) else ()
        return OpRecord(self.op_name, self.layer, fmts, fwd, bwd, getattr(p, "name", ""))

    def release(self) -> None:
        """Drop saved arrays (called after backward unless ``retain_graph``)."""
        keep = {"policy", "rng", "fwd_acc", "bwd_acc", "layer", "inputs",
                "needs_input_grad", "op_name", "released"}
        for k in list(vars(self)):
            if k not in keep and k.startswith("saved"):
                delattr(self, k)
        self.released = True

    def forward(self, *arrays):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, g):  # pragma: no cover - abstract
        raise NotImplementedError
