"""Elementwise ops with NumPy broadcasting.

Forward: the result is computed from the operands' values and rounded once to the
activations format F.  For + - * / and sqrt that is the correct rounding of the exact
result (in every deterministic rounding mode), through
:func:`minifp.functional.exactops.prepare`, as follows:

* formats of at most 25 significant bits (every registered format but float64 and the
  32-bit posits): the float64 result, rounded once to F.  This is the correct rounding
  in round-to-nearest when the operands are values of formats of at most p bits
  (53 >= 2p + 2; products of such values are exact), and in every mode where the
  float64 result is exact.  Not covered (the plain result is kept, see
  :mod:`~minifp.functional.exactops`): operands wider than F, such as float64 constants
  or float32 values under a bfloat16 F, and + - in the directed modes and ``to_odd``
  when the operands' exponents differ by more than about 28;
* formats of 26 to 51 bits (posit32 = posit(32,2) with up to 28 bits, posit(32,3),
  ``eXmY`` layouts such as e8m30 or e11m40): the exact result rounded to odd in float64
  (TwoSum, TwoProduct, the sign of the remainder; Fractions for the rare operands where
  those are not exact), then rounded once to F: the float64 result would be a first
  rounding and rounding it again can be wrong next to F's midpoints;
* float64 (and float64:sat / :ftz): float64 arithmetic in nearest-even; in the other
  deterministic modes the exact result rounded to float64 in that mode.

``pow`` with the exponents 2, 0.5 and -1 is x*x, sqrt(x) and 1/x, correctly rounded in
the same way.  exp, log, tanh, sigmoid, erf (gelu) and other powers are computed in
float64 and rounded once: faithful to about 1 float64 ulp before the final rounding, not
guaranteed correctly rounded.

Backward: each local gradient is computed in float64 and rounded once to the input's
gradient format (B, or G for Parameters) at the broadcast shape.  Where it is a single
product or quotient of float64 values (``g * b`` and ``g * a`` of mul, ``g / b`` of div,
``g * y`` of exp, ``g / x`` of log, ``g / (2 y)`` of sqrt) it is correctly rounded as in
the forward pass; the other local gradients are float64 expressions, rounded once.
Where an operand was broadcast, the gradient is then summed over the broadcast axes by
the engine under the backward Accumulation and rounded once more to that format.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import array_module, special_functions
from .core import broadcast_shape, f64, unbroadcast
from .exactops import exact_how, prepare, prepare_for
from .portable import portable_for

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh",
           "sigmoid", "relu", "gelu", "quantize"]


def _erf(xp, x):
    return special_functions(xp).erf(x)


class _Binary(Function):
    """Broadcasting binary op ``op_name`` (add, sub, mul, div: the forward is
    :func:`~minifp.functional.exactops.prepare` of that op, rounded once to F);
    subclasses define ``_grads`` on float64."""

    def forward(self, a, b):
        self.out_shape = broadcast_shape(self.op_name, a.shape, b.shape)
        self.backward_reduces = (tuple(a.shape) != self.out_shape
                                 or tuple(b.shape) != self.out_shape)
        self.saved_a, self.saved_b = a, b
        return self.round_out(prepare_for(self, self.output_role, self.op_name,
                                          f64(a), f64(b)))

    def backward(self, g):
        a, b = self.saved_a, self.saved_b
        ga_full, gb_full = self._grads(f64(g), a, b)
        out = []
        for i, (gi, x) in enumerate(((ga_full, a), (gb_full, b))):
            if not self.needs_input_grad[i]:
                out.append(None)
                continue
            role = self.grad_role(i)
            xp = array_module(gi)
            gi = xp.broadcast_to(gi, self.out_shape)
            terms = self.policy.round(role, gi, self.rng)
            out.append(unbroadcast(self, terms, x.shape, role))
        return tuple(out)


class Add(_Binary):
    op_name = "add"

    def _grads(self, g, a, b):
        return g, g


class Sub(_Binary):
    op_name = "sub"

    def _grads(self, g, a, b):
        return g, -g


class Mul(_Binary):
    op_name = "mul"

    def _grads(self, g, a, b):
        need = self.needs_input_grad
        ga = prepare_for(self, self.grad_role(0), "mul", g, f64(b)) if need[0] else None
        gb = prepare_for(self, self.grad_role(1), "mul", g, f64(a)) if need[1] else None
        return ga, gb


class Div(_Binary):
    op_name = "div"

    def _grads(self, g, a, b):
        b64 = f64(b)
        ga = prepare_for(self, self.grad_role(0), "div", g, b64) if self.needs_input_grad[0] \
            else None
        gb = -g * f64(a) / (b64 * b64) if self.needs_input_grad[1] else None
        return ga, gb


def add(a, b):
    """a + b (broadcasting), rounded once to F: float64 for formats of at most 25 bits,
    the exact sum rounded to odd in float64 for wider ones (see the module docstring)."""
    return Add.apply(a, b)


def sub(a, b):
    """a - b (broadcasting), rounded once to F: float64 for formats of at most 25 bits,
    the exact difference rounded to odd in float64 for wider ones."""
    return Sub.apply(a, b)


def mul(a, b):
    """a * b (broadcasting), rounded once to F: float64 (exact for operands of at most 26
    bits) for formats of at most 25 bits, the exact product (TwoProduct) rounded to odd in
    float64 for wider ones."""
    return Mul.apply(a, b)


def div(a, b):
    """a / b (broadcasting), rounded once to F: float64 for formats of at most 25 bits
    (correctly rounded for operands of at most 25 bits), the exact quotient rounded to odd
    in float64 (the sign of the remainder) for wider ones."""
    return Div.apply(a, b)


# ---------------------------------------------------------------- unary
class _Unary(Function):
    """y = f(x) elementwise; ``_f(x64)`` and ``_df(g64, x, y)`` work in float64."""

    save_input = False
    save_output = False
    #: float64 library functions (exp, log, tanh, erf, pow) whose last bits differ
    #: between NumPy and CUDA: computed through functional.portable
    transcendental = False

    def _scale(self, x):
        """Magnitudes whose relative errors reach the result absolutely (portable)."""
        return None

    def forward(self, x):
        x64 = f64(x)
        if self.transcendental:
            r = portable_for(self, self.output_role, lambda xp, a: self._f(a), (x64,),
                             lambda xp, a: self._scale(a))
        else:
            r = self._f(x64)
        y = self.round_out(r)
        if self.save_input:
            self.saved_x = x
        if self.save_output:
            self.saved_y = y
        return y

    def backward(self, g):
        gx = self._df(f64(g), getattr(self, "saved_x", None), getattr(self, "saved_y", None))
        return self.round_grad(0, gx)


class Neg(_Unary):
    op_name = "neg"

    def _f(self, x):
        return -x

    def _df(self, g, x, y):
        return -g


class Exp(_Unary):
    op_name = "exp"
    transcendental = True
    save_output = True

    def _f(self, x):
        return array_module(x).exp(x)

    def _df(self, g, x, y):
        return prepare_for(self, self.grad_role(0), "mul", g, f64(y))


class Log(_Unary):
    op_name = "log"
    transcendental = True
    save_input = True

    def _f(self, x):
        return array_module(x).log(x)

    def _df(self, g, x, y):
        return prepare_for(self, self.grad_role(0), "div", g, f64(x))


class Sqrt(_Unary):
    op_name = "sqrt"
    save_output = True

    def _f(self, x):
        return prepare_for(self, self.output_role, "sqrt", x)

    def _df(self, g, x, y):
        return prepare_for(self, self.grad_role(0), "div", g, 2.0 * f64(y))


class Tanh(_Unary):
    op_name = "tanh"
    transcendental = True
    save_output = True

    def _f(self, x):
        return array_module(x).tanh(x)

    def _df(self, g, x, y):
        y = f64(y)
        return g * (1.0 - y * y)


class Sigmoid(_Unary):
    op_name = "sigmoid"
    save_output = True
    transcendental = True

    def _scale(self, x):
        return 1.0          # 0.5 + 0.5 tanh: tanh's error is absolute in the result

    def _f(self, x):
        xp = array_module(x)
        # 0.5 * (1 + tanh(x/2)): no overflow for large |x|
        return 0.5 + 0.5 * xp.tanh(0.5 * x)

    def _df(self, g, x, y):
        y = f64(y)
        return g * y * (1.0 - y)


class Relu(_Unary):
    op_name = "relu"
    save_input = True

    def _f(self, x):
        return array_module(x).maximum(x, 0.0)

    def _df(self, g, x, y):
        return g * (f64(x) > 0)


class Gelu(_Unary):
    """Exact GELU x * Phi(x) = x/2 * (1 + erf(x/sqrt(2))), or the tanh approximation."""

    op_name = "gelu"
    save_input = True
    approximate = "none"
    transcendental = True

    def _scale(self, x):
        return array_module(x).abs(x)      # x/2 (1 + erf): erf's error times |x|/2

    def _f(self, x):
        xp = array_module(x)
        if self.approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            return 0.5 * x * (1.0 + xp.tanh(c * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1.0 + _erf(xp, x / math.sqrt(2.0)))

    def _df(self, g, x, y):
        x = f64(x)
        xp = array_module(x)
        if self.approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            t = xp.tanh(c * (x + 0.044715 * x ** 3))
            dt = (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1.0 + t) + 0.5 * x * dt)
        def dgelu(xp, g, x):
            cdf = 0.5 * (1.0 + _erf(xp, x / math.sqrt(2.0)))
            pdf = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            return g * (cdf + x * pdf)
        return portable_for(self, self.grad_role(0), dgelu, (g, x),
                            lambda xp, g, x: xp.abs(g) * (1.0 + xp.abs(x)))


_POW_OPS = {2.0: "mul", 0.5: "sqrt", -1.0: "div"}


class Pow(_Unary):
    op_name = "pow"
    save_input = True
    exponent = 2.0

    @property
    def transcendental(self):
        return self.exponent not in _POW_OPS and self.exponent != 1.0

    def _f(self, x):
        c = self.exponent
        plain = x ** c                  # NumPy: x*x, sqrt(x), 1/x for c = 2, 0.5, -1
        op = _POW_OPS.get(c)
        p = self.policy
        fmt, mode = p.format_of(self.output_role), p.rounding_of(self.output_role)
        if op is None or exact_how(fmt, mode) is None:
            return plain
        xp = array_module(x)
        if op == "sqrt":
            v, ok = prepare(fmt, mode, "sqrt", x), x > 0
        elif op == "mul":
            v, ok = prepare(fmt, mode, "mul", x, x), x != 0
        else:
            v, ok = prepare(fmt, mode, "div", 1.0, x), x != 0
        return xp.where(ok & xp.isfinite(x), v, plain)

    def _df(self, g, x, y):
        c = self.exponent
        return g * c * f64(x) ** (c - 1)


class Quantize(_Unary):
    """Round to a role's format; the gradient passes straight through (rounded to B/G)."""

    op_name = "quantize"

    def _f(self, x):
        return x

    def _df(self, g, x, y):
        return g


def neg(x):
    """-x (exact), in F."""
    return Neg.apply(x)


def pow(x, exponent):  # noqa: A001 - mirrors the operator
    """x ** exponent for a scalar exponent, rounded once to F.  Exponents 2, 0.5 and -1
    are x*x, sqrt(x) and 1/x, correctly rounded as :func:`mul`, :func:`sqrt` and
    :func:`div`; other exponents: float64 ``pow`` (faithful to about 1 ulp), rounded
    once."""
    if not np.isscalar(exponent):
        raise ValueError("pow: the exponent must be a Python or NumPy scalar")
    return Pow.apply(x, exponent=float(exponent))


def exp(x):
    """e**x, computed in float64 and rounded once to F."""
    return Exp.apply(x)


def log(x):
    """Natural logarithm, computed in float64 and rounded once to F."""
    return Log.apply(x)


def sqrt(x):
    """Square root, correctly rounded to F: float64 sqrt for formats of at most 25 bits,
    the exact root rounded to odd in float64 (sign of the residual) for wider ones."""
    return Sqrt.apply(x)


def tanh(x):
    """tanh, computed in float64 and rounded once to F."""
    return Tanh.apply(x)


def sigmoid(x):
    """1 / (1 + e**-x), computed in float64 (as (1 + tanh(x/2)) / 2) and rounded once to F."""
    return Sigmoid.apply(x)


def relu(x):
    """max(x, 0): exact; in F.  Gradient at 0 is 0."""
    return Relu.apply(x)


def gelu(x, approximate: str = "none"):
    """GELU x*Phi(x) with erf (``approximate="none"``) or the tanh formula
    (``"tanh"``), computed in float64 (scipy's erf) and rounded once to F."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")
    return Gelu.apply(x, approximate=approximate)


def quantize(x, role: str = "activations"):
    """Round ``x`` to the format of ``role`` of the policy in force (e.g. input data to F,
    or a loss to L).  The gradient is passed through and rounded to B (G for Parameters)."""
    if role not in ("activations", "loss", "weights", "backward", "gradients", "optimizer"):
        raise ValueError(f"quantize: unknown role {role!r}")
    return Quantize.apply(x, output_role=role)
