"""+ - * / sqrt correctly rounded to the wide formats (26 to 51 significant bits: posit32,
posit(32,3), eXmY layouts) and to float64 in the directed modes (issue 12, defect 2).

Every expected value is the exact result (a Fraction; for sqrt a Fraction bracket far
narrower than any rounding boundary gap) rounded by the independent reference
``tests/exact_reference.py``, in every deterministic mode.  Inputs: operands built so the
exact result sits next to a midpoint of the format (where a first rounding to float64
lands on the midpoint), random codes of the format (zeros, subnormals, extremes, Inf,
NaN), float64 constants, and extreme magnitudes (the exact Fraction fallback).  The
registered formats of at most 25 bits must stay bit-identical to the plain float64 path.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minifp.functional as F
from minifp import accumulate
from minifp.autograd import Parameter, Tensor
from minifp.formats import get_format
from minifp.functional.exactops import exact_how, fraction_to_float64, prepare
from minifp.precision import Precision, use

from exact_reference import MODES, reference_round

# 26..51 significant bits: the formats where float64 arithmetic rounds twice
WIDE = ["posit32", "posit(32,3)", "posit(32,0)", "posit(32,4)", "e8m25", "e8m30", "e5m30",
        "e11m40", "e11m50", "e8m30:ftz", "e11m40:sat"]
# float64 itself: correct in nearest-even by float64 arithmetic, the other modes exact
F64 = ["float64", "float64:sat", "float64:nan", "float64:ftz"]
ALL = WIDE + F64
NARROW = ["float16", "bfloat16", "posit16", "float32", "e4m3", "e5m2", "posit8", "e3m2"]
OPS = ("add", "sub", "mul", "div", "sqrt")

STATS: dict = {"inputs": 0, "plain_wrong": 0}


def policy(fmt, mode):
    """Every role in ``fmt`` with ``mode``; float64 accumulations."""
    return Precision(name="wide-test", weights=fmt, activations=fmt, loss=fmt, backward=fmt,
                     gradients=fmt, optimizer=fmt, rounding=mode,
                     forward="float64:sequential", backward_acc="float64:sequential")


# ---------------------------------------------------------------- exact expectations
def _sqrt_fraction(a: Fraction) -> Fraction:
    """sqrt(a) exactly when a is a square, else a point strictly inside an interval of
    relative width 2**-200 around it (rounding boundaries of a format of <= 53 bits are
    at least 2**-110 away, relatively, from the root of a float64)."""
    num, den = a.numerator, a.denominator
    k = 400 + max(0, den.bit_length() - num.bit_length())
    scaled = (num << (2 * k)) // den          # floor(a * 4**k)
    r = math.isqrt(scaled)
    if r * r == scaled and (num << (2 * k)) % den == 0:
        return Fraction(r, 1 << k)
    return Fraction(2 * r + 1, 1 << (k + 1))


def _plain(op, x, y):
    with np.errstate(all="ignore"):
        x = np.float64(x)
        if op == "sqrt":
            return float(np.sqrt(x))
        y = np.float64(y)
        return float({"add": x + y, "sub": x - y, "mul": x * y, "div": x / y}[op])


def expected(fmt, op, x, y, mode):
    """The correct rounding of ``op(x, y)`` to ``fmt`` in ``mode`` (a Python float)."""
    plain = _plain(op, x, y)
    finite = math.isfinite(x) and (op == "sqrt" or math.isfinite(y))
    special = (not finite or (op == "div" and y == 0) or (op == "sqrt" and x <= 0)
               or (op in ("mul", "div") and x == 0) or (op == "mul" and y == 0))
    if special:        # exact IEEE results (Inf, NaN, signed zeros): one rounding of them
        return float(np.asarray(fmt.round(np.float64(plain), mode)))
    fx = Fraction(x)
    if op == "sqrt":
        exact = _sqrt_fraction(fx)
    else:
        fy = Fraction(y)
        exact = (fx + fy if op == "add" else fx - fy if op == "sub" else
                 fx * fy if op == "mul" else fx / fy)
    if exact == 0:     # x + (-x): the sign of the float64 zero, +0
        return float(np.asarray(fmt.round(np.float64(plain), mode)))
    return reference_round(fmt, exact, mode)


def _same(a, b):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def run_op(fmt_name, mode, op, xs, ys=None):
    """The op through minifp.functional under the policy (F = the format)."""
    with use(policy(fmt_name, mode)), np.errstate(all="ignore"):
        x = Tensor(np.asarray(xs, dtype=np.float64))
        if op == "sqrt":
            return np.asarray(F.sqrt(x).data, dtype=np.float64)
        y = Tensor(np.asarray(ys, dtype=np.float64))
        fn = {"add": F.add, "sub": F.sub, "mul": F.mul, "div": F.div}[op]
        return np.asarray(fn(x, y).data, dtype=np.float64)


def check(fmt_name, op, xs, ys=None, modes=MODES):
    """Assert the op equals the reference for every element and mode; returns the number
    of (element, mode) pairs where the plain float64 path would have been wrong."""
    fmt = get_format(fmt_name)
    xs = [float(v) for v in xs]
    ys = [0.0] * len(xs) if ys is None else [float(v) for v in ys]
    STATS["inputs"] += len(xs)
    plain_wrong = 0
    for mode in modes:
        got = run_op(fmt_name, mode, op, xs, None if op == "sqrt" else ys)
        plain = np.asarray(fmt.round(np.array([_plain(op, x, y) for x, y in zip(xs, ys)]),
                                     mode), dtype=np.float64)
        bad = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            want = expected(fmt, op, x, y, mode)
            if not _same(got[i], want):
                bad.append((x.hex(), y.hex(), got[i], want))
            plain_wrong += not _same(plain[i], want)
        assert not bad, f"{fmt_name} {op} {mode}: {len(bad)} wrong, e.g. {bad[:4]}"
    STATS["plain_wrong"] += plain_wrong
    return plain_wrong


# ---------------------------------------------------------------- operands next to midpoints
def _in_fmt(fmt, v):
    return float(np.asarray(fmt.round(np.float64(v), "nearest_even")))


def _mul_case(p, rnd):
    """(X, Y) p-bit integers whose product lies next to a midpoint of the p-bit grid."""
    while True:
        x = rnd.randrange(1 << (p - 1), 1 << p) | 1
        d = rnd.choice([-3, -2, -1, 1, 2, 3])
        for k, need_top in ((p - 1, False), (p, True)):
            r = ((1 << (k - 1)) + d) * pow(x, -1, 1 << k) % (1 << k)
            y = r + (1 << (p - 1)) if k == p - 1 else r
            if not (1 << (p - 1)) <= y < (1 << p):
                continue
            if (x * y >= 1 << (2 * p - 1)) == need_top:
                return x, y


def _div_case(p, rnd):
    """(A, B) with A/B = M/2**p - t/(2**p B): M odd of p+1 bits (a midpoint), t small."""
    while True:
        m = rnd.randrange(1 << p, 1 << (p + 1)) | 1
        t = rnd.choice([-3, -2, -1, 1, 2, 3])
        b = t * pow(m, -1, 1 << p) % (1 << p)
        if not (1 << (p - 1)) <= b < (1 << p):
            continue
        a, rem = divmod(m * b - t, 1 << p)
        if rem == 0 and 0 < a < (1 << p):
            return a, b


def _sqrt_case(p, rnd):
    """A with sqrt(A * 2**(p+2)) = sqrt(M**2 - t), M odd of p+1 bits, t = 1 mod 8."""
    t = rnd.choice([1, 9, 17, 25, -7, -15, -23])
    r = 1
    for k in range(3, p + 2):                 # Hensel: r**2 = t mod 2**(k+1)
        if (r * r - t) % (1 << (k + 1)):
            r += 1 << (k - 1)
    r %= 1 << (p + 1)
    m = r if r >= (1 << p) else (1 << (p + 1)) - r
    assert (m * m - t) % (1 << (p + 2)) == 0
    return (m * m - t) >> (p + 2)


def midpoint_cases(fmt_name, op, n, seed):
    """n operand pairs for ``op`` whose exact result lies next to a midpoint of the format
    (or, for + and -, also next to a value of it, with a far-away second operand)."""
    fmt = get_format(fmt_name)
    p = fmt.precision
    rnd = random.Random(seed)
    ieee = hasattr(fmt, "ebits")
    xs, ys = [], []
    for i in range(n):
        s1 = rnd.choice([1, -1])
        s2 = rnd.choice([1, -1])
        # binade scaling: IEEE formats anywhere in a safe middle range; posits near 1
        span = min(20, (fmt._max_exponent - 2) // 2) if ieee else 0
        e1 = rnd.randint(-span, span) if ieee else 0
        e2 = rnd.randint(-span, span) if ieee else 0
        if op == "mul":
            x, y = _mul_case(p, rnd)
            x, y = s1 * math.ldexp(x, 1 - p + e1), s2 * math.ldexp(y, 1 - p + e2)
        elif op == "div":
            a, b = _div_case(p, rnd)
            x, y = s1 * math.ldexp(a, 1 - p + e1), s2 * math.ldexp(b, 1 - p + e1)
        elif op == "sqrt":
            a = _sqrt_case(p, rnd)
            x, y = math.ldexp(a, 2 - p + 2 * (e1 // 2)), 0.0
        else:
            big = rnd.randrange(1 << (p - 1), 1 << p)
            if ieee and i % 4 < 2:            # at the top of the range: far from the bottom
                e1 = fmt._max_exponent - rnd.randint(0, 2)
            x = s1 * math.ldexp(big, 1 - p + e1)
            qmin = fmt.emin - fmt.mbits if ieee else 0
            if i % 2 == 0:                    # next to the midpoint above/below x
                k = rnd.choice([-2, -1, 1, 2])
                y = math.ldexp(1, e1 - p) + k * math.ldexp(1, max(1 - 2 * p + e1, qmin))
            elif ieee:                        # far away: the directed modes see it
                y = math.ldexp(rnd.randrange(1 << (p - 1), 1 << p),
                               max(1 - p + e1 - p - rnd.randint(28, 60), qmin))
            else:       # posits: small values are short, go to maxpos and minpos instead
                x = s1 * math.ldexp(fmt.max, -rnd.randint(0, 6))
                y = math.ldexp(fmt.smallest_subnormal, rnd.randint(0, 6))
            y *= s2
        xs.append(_in_fmt(fmt, x))
        ys.append(_in_fmt(fmt, y))
    return xs, ys


def test_posit32_product_next_to_a_midpoint():
    """The issue's example: x*y lies just above a posit32 midpoint; float64 rounds it onto
    the midpoint and nearest-even then goes down."""
    x, y = 1 + 5 * 2.0 ** -27, 1 + 13421773 * 2.0 ** -27
    fmt = get_format("posit32")
    exact = Fraction(x) * Fraction(y)
    want = reference_round(fmt, exact, "nearest_even")
    double = float(np.asarray(fmt.round(np.float64(x * y))))
    assert double != want                     # the old path: rounded twice, wrong
    got = run_op("posit32", "nearest_even", "mul", [x], [y])[0]
    assert got == want == 1.1000000461935997
    check("posit32", "mul", [x, -x, x], [y, y, -y])


@pytest.mark.parametrize("fmt_name", ALL)
@pytest.mark.parametrize("op", OPS)
def test_next_to_midpoints(fmt_name, op):
    """Operands built so the exact result is a few 2**(1-2p) (relative) from a midpoint of
    the format, closer than float64 resolves once p >= 28 (+ and -: also far-apart
    operands, which the directed modes see); all deterministic modes."""
    fmt = get_format(fmt_name)
    seed = sum(map(ord, fmt_name + op))
    xs, ys = midpoint_cases(fmt_name, op, 40, seed)
    wrong = check(fmt_name, op, xs, ys)
    p = fmt.precision
    if p >= 28 and fmt_name not in F64:
        assert wrong > 0, "the cases must be ones where rounding twice goes wrong"
    if fmt_name in F64 and op in ("add", "sub"):
        assert wrong > 0                      # directed modes of float64 were wrong


# ---------------------------------------------------------------- random codes, constants
def _values_of(fmt):
    bits = fmt.bits
    codes = st.integers(0, (1 << bits) - 1)
    return codes.map(lambda c: float(np.asarray(fmt.decode(np.array([c],
                                                                  dtype=fmt.code_dtype)))[0]))


def _operand(fmt):
    return st.one_of(
        _values_of(fmt),                                           # any value of F
        st.floats(-4.0, 4.0).map(lambda v: _in_fmt(fmt, v)),       # everyday values of F
        st.floats(allow_nan=False, allow_infinity=False),          # float64 constants
        st.sampled_from([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 2.0 ** -1074,
                         2.0 ** 1000, 2.0 ** -1000, float(np.finfo(np.float64).max)]),
    )


@pytest.mark.parametrize("fmt_name", ALL)
@pytest.mark.parametrize("op", OPS)
def test_random_operands(fmt_name, op):
    fmt = get_format(fmt_name)
    operand = _operand(fmt)

    @settings(max_examples=20, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(operand, operand), min_size=1, max_size=12))
    def prop(pairs):
        xs = [a for a, _ in pairs]
        ys = [b for _, b in pairs]
        check(fmt_name, op, xs, ys)

    prop()


@pytest.mark.parametrize("fmt_name", ["e11m40", "e11m50", "e8m30", "posit(32,3)",
                                      "e11m40:sat", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_extreme_magnitudes(fmt_name, op):
    """Operands and results near float64's overflow and underflow: TwoSum/TwoProduct are
    not exact there, the exact Fraction fallback (sqrt: scaling) must be used."""
    rnd = random.Random(sum(map(ord, fmt_name + op)) + 7)
    fmt = get_format(fmt_name)
    xs, ys = [], []
    for _ in range(24):
        m1 = rnd.randrange(1 << 52, 1 << 53)
        m2 = rnd.randrange(1 << 52, 1 << 53)
        e1, e2 = (rnd.choice([rnd.randint(-1074, -900), rnd.randint(900, 1023),
                              rnd.randint(-60, 60)]) for _ in range(2))
        x = math.ldexp(m1, e1 - 52) if e1 > -1074 + 52 else math.ldexp(m1 >> 40, e1)
        y = math.ldexp(m2, e2 - 52) if e2 > -1074 + 52 else math.ldexp(m2 >> 40, e2)
        x, y = x * rnd.choice([1, -1]), y * rnd.choice([1, -1])
        if rnd.random() < 0.5:
            x = _in_fmt(fmt, x)
        if op == "sqrt":
            x = abs(x)
        xs.append(x)
        ys.append(y)
    check(fmt_name, op, xs, ys)


@pytest.mark.parametrize("fmt_name", ["float64", "float64:sat", "float64:nan", "e11m50",
                                      "e11m40:sat", "posit(32,4)"])
def test_overflow_follows_the_format(fmt_name):
    """A finite exact result beyond the largest float64 is a finite overflow of the
    format (saturate, NaN or Inf by its rule and the mode), never an Inf input."""
    big = float(np.finfo(np.float64).max)
    for op, x, y in (("add", big, big), ("add", big, 2.0 ** 970), ("sub", -big, big),
                     ("mul", 2.0 ** 600, -2.0 ** 600), ("div", big, 0.5),
                     ("add", big, 2.0 ** -1074), ("mul", big, 1.0 + 2.0 ** -52)):
        check(fmt_name, op, [x, -x], [y, -y])


@pytest.mark.parametrize("fmt_name", ALL)
def test_sqrt_at_the_ends_of_float64(fmt_name):
    """sqrt where s*s would overflow or underflow in TwoProduct (scaled by 2**+-600)."""
    big = float(np.finfo(np.float64).max)
    xs = [big, np.nextafter(big, 0), 2.0 ** 1000, 2.0 ** 1000 * (1 + 2.0 ** -52),
          3 * 2.0 ** 999, np.nextafter(2.0 ** 1000, 0), 2.0 ** -1074, 3 * 2.0 ** -1074,
          2.0 ** -960, np.nextafter(2.0 ** -960, 0), 2.0 ** -1022, 5 * 2.0 ** -1030]
    check(fmt_name, "sqrt", xs + [_in_fmt(get_format(fmt_name), v) for v in xs])


def test_fraction_to_float64_against_the_reference():
    """The fallback's rounding of a rational to float64, in every mode, against the
    reference's float64 rounding (and to_odd: the neighbour with an odd last bit)."""
    f64 = get_format("float64")
    rnd = random.Random(5)
    for _ in range(300):
        num = rnd.randrange(1, 1 << rnd.randint(1, 120)) * rnd.choice([1, -1])
        den = rnd.randrange(1, 1 << rnd.randint(1, 120))
        x = Fraction(num, den) * Fraction(2) ** rnd.randint(-1150, 1100)
        for mode in MODES:
            assert _same(fraction_to_float64(x, mode), reference_round(f64, x, mode)), (x, mode)


# ---------------------------------------------------------------- other ops that use it
def test_pow_special_exponents_wide():
    fmt = get_format("posit32")
    xs, ys = midpoint_cases("posit32", "sqrt", 10, 3)
    mx, my = midpoint_cases("posit32", "mul", 10, 4)
    for mode in MODES:
        with use(policy("posit32", mode)):
            half = F.pow(Tensor(np.array(xs)), 0.5).data
            sq = F.pow(Tensor(np.array(mx)), 2).data
            inv = F.pow(Tensor(np.array(my)), -1).data
        for i, x in enumerate(xs):
            assert _same(half[i], expected(fmt, "sqrt", x, 0.0, mode))
        for i, x in enumerate(mx):
            assert _same(sq[i], expected(fmt, "mul", x, x, mode))
        for i, y in enumerate(my):
            assert _same(inv[i], expected(fmt, "div", 1.0, y, mode))


def test_backward_single_products_and_quotients_wide():
    """mul's g*b and g*a, div's g/b, exp's g*y, log's g/x, sqrt's g/(2y), mean's g/n and
    avg_pool's g/k: correctly rounded to B/G when those are wide."""
    fmt_name = "posit32"
    fmt = get_format(fmt_name)
    xs, ys = midpoint_cases(fmt_name, "mul", 12, 11)
    gs, bs = midpoint_cases(fmt_name, "div", 12, 12)
    for mode in MODES:
        with use(policy(fmt_name, mode)):
            a = Parameter(np.array(xs))
            b = Tensor(np.array(ys), requires_grad=True)
            F.mul(a, b).backward(grad=np.array(ys))        # grad of a: g * b = y * y
            ga, gb = a.grad.data, b.grad.data
            c = Tensor(np.array(gs), requires_grad=True)
            d = Tensor(np.array(bs))
            F.div(c, d).backward(grad=np.array(gs))          # g / b
            gc = c.grad.data
            z = Tensor(np.array([1.0, 3.0, 5.0, 7.0, 1.0, 1.0]), requires_grad=True)
            F.mean(z).backward(grad=np.array(1.0))           # 1/6
            gz = z.grad.data
        for i in range(len(xs)):
            assert _same(ga[i], expected(fmt, "mul", ys[i], ys[i], mode))
            assert _same(gb[i], expected(fmt, "mul", ys[i], xs[i], mode))
        for i in range(len(gs)):
            assert _same(gc[i], expected(fmt, "div", gs[i], bs[i], mode))
        assert all(_same(v, expected(fmt, "div", 1.0, 6.0, mode)) for v in gz)


@pytest.mark.parametrize("fmt_name", ["e8m30", "posit32", "float16", "bfloat16", "posit16"])
def test_softmax_dropout_and_pooling_quotients(fmt_name):
    """softmax's e / s, dropout's x * (1/(1-p)) and avg_pool's g / k are one correctly
    rounded op each for the wide formats, and bit-identical to the plain float64 formula
    for the registered narrow ones."""
    fmt = get_format(fmt_name)
    wide = exact_how(fmt, "nearest_even") is not None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    scale = 1.0 / (1.0 - 0.3)
    mask = np.random.default_rng(1).random(x.shape) >= 0.3

    def want_of(op, u, v, mode):
        if wide or mode not in ("nearest_even", "stochastic"):
            return expected(fmt, op, float(u), float(v), mode)
        plain = _plain(op, float(u), float(v))
        return float(np.asarray(fmt.round(np.float64(plain), mode)))

    for mode in MODES:
        pol = policy(fmt_name, mode)
        with use(pol):
            xt = Tensor(fmt.round(x, mode))
            y = F.softmax(xt).data
            x64 = np.asarray(xt.data, dtype=np.float64)
            e = fmt.round(np.exp(x64 - x64.max(axis=1, keepdims=True)), mode)
            s = accumulate.sum(e, axis=1, acc=pol.forward, keepdims=True)
            drop = F.dropout(xt, p=0.3, rng=np.random.default_rng(1)).data
            img = Tensor(fmt.round(rng.standard_normal((1, 1, 6, 6)), mode),
                         requires_grad=True)
            g = fmt.round(rng.standard_normal((1, 1, 2, 2)), mode)
            F.avg_pool2d(img, 3).backward(grad=g)
            gimg = img.grad.data
        for i in range(6):
            for j in range(5):
                assert _same(y[i, j], want_of("div", e[i, j], s[i, 0], mode))
        for v, xv, keep in zip(drop.ravel(), xt.data.ravel(), mask.ravel()):
            assert float(v) == (want_of("mul", xv, scale, mode) if keep else 0.0)
        for r in range(6):
            for c in range(6):          # one window per input: the share is the gradient
                assert _same(gimg[0, 0, r, c], want_of("div", g[0, 0, r // 3, c // 3], 9.0,
                                                       mode))


# ---------------------------------------------------------------- registered formats unchanged
@pytest.mark.parametrize("fmt_name", NARROW)
def test_registered_formats_bit_identical_to_plain_float64(fmt_name):
    """Formats of at most 25 bits keep the plain float64 path, bit for bit, in nearest-even
    and stochastic rounding (the same draws), forward and the single-op gradients; in the
    directed modes, nearest-away and to-odd (where a float64 rounding first can be wrong)
    they equal the exact reference."""
    fmt = get_format(fmt_name)
    assert exact_how(fmt, "nearest_even") is None and exact_how(fmt, "stochastic") is None
    assert exact_how(fmt, "toward_zero") == "to_odd"
    rng = np.random.default_rng(3)
    a = fmt.round(rng.standard_normal(64) * 4)
    b = fmt.round(rng.standard_normal(64) * 4)
    c = 0.1                                   # a float64 constant
    modes = MODES + ("stochastic",)
    for mode in modes:
        pol = policy(fmt_name, mode)
        for op in OPS:
            for x, y in ((a, b), (a, c)):
                x64 = np.asarray(x, dtype=np.float64)
                y64 = np.asarray(y, dtype=np.float64)
                with use(pol, rng=np.random.default_rng(9)), np.errstate(all="ignore"):
                    if op == "sqrt":
                        got = F.sqrt(Tensor(np.abs(x))).data
                    else:
                        fn = {"add": F.add, "sub": F.sub, "mul": F.mul, "div": F.div}[op]
                        got = fn(Tensor(x), Tensor(np.asarray(y))).data
                with np.errstate(all="ignore"):
                    plain = (np.sqrt(np.abs(x64)) if op == "sqrt" else
                             {"add": x64 + y64, "sub": x64 - y64, "mul": x64 * y64,
                              "div": x64 / y64}[op])
                want = fmt.round(plain, mode, np.random.default_rng(9)
                                 if mode == "stochastic" else None)
                assert got.dtype == want.dtype
                if mode not in ("nearest_even", "stochastic"):
                    yb = np.broadcast_to(y64, x64.shape)
                    exact = [expected(fmt, op, abs(u) if op == "sqrt" else u, v, mode)
                             for u, v in zip(x64.tolist(), yb.tolist())]
                    assert all(_same(g, e) for g, e in zip(got.tolist(), exact)), (op, mode)
                    continue
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (op, mode)
                args = (np.abs(x64),) if op == "sqrt" else (x64, y64)
                with np.errstate(all="ignore"):
                    prepared = prepare(fmt, mode, op, *args)
                assert np.array_equal(prepared.view(np.uint8), plain.view(np.uint8))
        # single-op gradients: g * b of mul
        with use(pol, rng=np.random.default_rng(9)):
            w = Parameter(a)
            F.mul(w, Tensor(b)).backward(grad=np.ones(64, dtype=a.dtype))
            grad = w.grad.data
        want = fmt.round(np.asarray(b, dtype=np.float64), mode,
                         np.random.default_rng(9) if mode == "stochastic" else None)
        assert grad.dtype == want.dtype
        if mode != "stochastic":              # the forward draws first under one rng
            assert np.array_equal(grad.view(np.uint8), want.view(np.uint8)), mode


def test_coverage_summary():
    """Runs last in this file: how many formats and inputs the checks above covered."""
    print(f"\nwide-precision ops: {len(ALL)} formats ({len(WIDE)} wide + float64 variants), "
          f"{len(NARROW)} registered narrow formats; {STATS['inputs']} operand tuples "
          f"checked, each in {len(MODES)} modes; the plain float64 path would have been "
          f"wrong in {STATS['plain_wrong']} (input, mode) pairs")


def test_directed_modes_of_narrow_formats_round_from_the_exact_result():
    """bfloat16 toward_zero of 1 - 2**-100 is 0.99609375 (a float64 rounding first gave
    1.0); likewise up and to_odd of sums whose exact value float64 cannot hold."""
    for fmt_name, mode, op, x, y, want in (
            ("bfloat16", "toward_zero", F.sub, 1.0, 2.0 ** -100, 0.99609375),
            ("bfloat16", "up", F.add, 1.0, 2.0 ** -100, 1.0 + 2.0 ** -7),
            ("bfloat16", "down", F.add, -1.0, -(2.0 ** -100), -(1.0 + 2.0 ** -7)),
            ("bfloat16", "to_odd", F.add, 2.0, 2.0 ** -100, 2.0 + 2.0 ** -6)):
        fmt = get_format(fmt_name)
        with use(policy(fmt_name, mode)):
            got = op(Tensor(fmt.round(np.array([x]))), Tensor(fmt.round(np.array([y])))).data
        assert float(got[0]) == want, (fmt_name, mode, float(got[0]))
