"""The stand-in's ``ndarray`` (a NumPy array behind CuPy's rules) and the wrapping of
NumPy functions into ``cupy.<name>`` functions.  See the package docstring."""
from __future__ import annotations

import builtins as _builtins
import sys as _sys

import numpy as _np

from . import _names

_NP = _np.ndarray
_GENERIC = _np.generic
_PYSCALARS = frozenset({int, float, bool, complex})
# argument types handed to NumPy unchanged (fast path of _arg)
_PASS = frozenset({int, float, bool, complex, str, type(None), slice, type(Ellipsis), type,
                   _np.dtype, bytes})
_NI = object()          # "not an operand": the operator returns NotImplemented
_new = object.__new__

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")
_COMPARISONS = frozenset({"greater", "greater_equal", "less", "less_equal", "equal",
                          "not_equal"})
#: NumPy functions that only read shapes and dtypes: real CuPy dispatches them through
#: ``__array_function__`` and no data moves, so the strict mode lets them through
METADATA_FUNCTIONS = frozenset({"shape", "ndim", "size", "result_type", "can_cast",
                                "min_scalar_type", "iscomplexobj", "isrealobj",
                                "may_share_memory", "shares_memory"})

#: False (default): a NumPy function or ufunc called on a stand-in array (``np.sum(a)``,
#: ``np.exp(a)``) raises the implicit-conversion TypeError, so minifp must call
#: ``xp.<name>``.  True: dispatch it as real CuPy does (to ``cupy.<name>`` where CuPy has
#: that name).  Operators with a NumPy scalar on the left (``np.float64(2) * a``) work in
#: both modes, as on CuPy.
dispatch_numpy_functions = False


def unsupported(x) -> TypeError:
    """CuPy's error for a NumPy array (or another foreign object) in a device expression."""
    return TypeError(f"Unsupported type {type(x)}")


class Flags:
    """CuPy's ``ndarray.flags``: c_contiguous, f_contiguous, owndata (read-only)."""
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, c, f, own):
        self.c_contiguous, self.f_contiguous, self.owndata = c, f, own

    def __getitem__(self, name):
        key = {"C_CONTIGUOUS": "c_contiguous", "C": "c_contiguous",
               "F_CONTIGUOUS": "f_contiguous", "F": "f_contiguous",
               "OWNDATA": "owndata"}.get(name)
        if key is None:
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags")
        return getattr(self, key)

    def __repr__(self):
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


class MemoryPointer:
    """``ndarray.data``: the buffer's address (the NumPy buffer's, on the host)."""
    __slots__ = ("ptr", "device_id", "_owner")

    def __init__(self, owner):
        self._owner = owner            # keeps the buffer alive while the pointer is held
        self.ptr = owner._a.ctypes.data
        self.device_id = 0

    @property
    def device(self):
        from . import _cuda
        return _cuda.Device(self.device_id)

    def __int__(self):
        return self.ptr

    def __repr__(self):
        return f"<MemoryPointer 0x{self.ptr:x} device=0>"


# ---- wrapping ---------------------------------------------------------------------------
def wrap(r):
    """A NumPy result as a stand-in: arrays wrapped, NumPy scalars as 0-d arrays (CuPy
    never returns NumPy scalars), tuples and lists element by element."""
    t = type(r)
    if t is _NP:
        o = _new(ndarray)
        o._a = r
        return o
    if isinstance(r, _GENERIC):
        o = _new(ndarray)
        o._a = _np.asarray(r)
        return o
    if t is tuple:
        return tuple([wrap(e) for e in r])
    if t is list:
        return [wrap(e) for e in r]
    if isinstance(r, tuple):          # named tuples (numpy.linalg results) as plain tuples
        return tuple([wrap(e) for e in r])
    return r


def from_host(a: _np.ndarray) -> "ndarray":
    """Wrap a NumPy array (no copy); for the stand-in's own code and for unpickling."""
    o = _new(ndarray)
    o._a = a
    return o


def _arg(x):
    """An argument of a ``cupy.<name>`` call as NumPy sees it: stand-ins unwrapped (also
    inside lists, tuples and dicts), Python and NumPy scalars as they are, NumPy arrays
    (0-d ones too) refused as on CuPy."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t in _PASS:
        return x
    if t is list:
        return [_arg(e) for e in x]
    if t is tuple:
        return tuple([_arg(e) for e in x])
    if t is dict:
        return {k: _arg(v) for k, v in x.items()}
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _NP):
        raise unsupported(x)
    return x


def _operand(x):
    """The other operand of an operator: stand-in, Python or NumPy scalar; a NumPy array
    raises CuPy's TypeError; anything else makes the operator return NotImplemented."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t in _PYSCALARS or isinstance(x, _GENERIC):
        return x
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _NP):
        raise unsupported(x)
    return _NI


def check_float_to_int(src, dtype) -> None:
    """Refuse a float -> integer conversion of NaN, +-Inf or a value whose integral part
    the integer type cannot hold: C leaves it undefined, x86 gives the "integer
    indefinite" (INT_MIN) and CUDA saturates (NaN -> 0), so host and device disagree."""
    dt = _np.dtype(dtype)
    if dt.kind not in "iu":
        return
    a = src if isinstance(src, _NP) else _np.asarray(src)
    if a.dtype.kind != "f" or a.size == 0:
        return
    info = _np.iinfo(dt)
    lo, hi = float(info.min), float(info.max) + 1.0   # exact powers of two (or 0)
    mn, mx = _np.trunc(a.min()), _np.trunc(a.max())    # NaN propagates and fails below
    if not (lo <= mn and mx < hi):
        raise ValueError(
            f"casting {a.dtype} to {dt} would convert NaN, +-Inf or a value outside "
            f"[{info.min}, {info.max}] (min {float(a.min())!r}, max {float(a.max())!r}): "
            "x86 and CUDA convert those differently (the CuPy stand-in refuses; clip and "
            "round first)")


def _out(out):
    if out is None:
        return None
    if isinstance(out, ndarray):
        return out._a
    raise unsupported(out)


def _reduce(method, self, out, *args, **kwargs):
    if out is None:
        return wrap(method(self._a, *args, **kwargs))
    method(self._a, *args, out=_out(out), **kwargs)
    return out


# ---- operators ---------------------------------------------------------------------------
def _binary(ufunc):
    def op(self, other):
        o = _operand(other)
        if o is _NI:
            return NotImplemented
        return wrap(ufunc(self._a, o))

    def rop(self, other):
        o = _operand(other)
        if o is _NI:
            return NotImplemented
        return wrap(ufunc(o, self._a))

    def iop(self, other):
        o = _operand(other)
        if o is _NI:
            return NotImplemented
        ufunc(self._a, o, out=self._a)
        return self
    return op, rop, iop


def _compare(ufunc):
    def op(self, other):
        o = _operand(other)
        if o is _NI:
            return NotImplemented
        return wrap(ufunc(self._a, o))
    return op


class ndarray:
    """A CuPy array stand-in: a NumPy array ``_a`` behind CuPy's rules (no implicit
    conversion to or from NumPy arrays, 0-d results instead of NumPy scalars, no
    ``__index__``, refused float -> int casts of NaN/Inf/out-of-range values)."""
    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not take memptr or strides")
        self._a = _np.empty(shape, dtype=dtype, order=order)

    # ---- NumPy interoperation: refused as on CuPy ----
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__
        if method != "__call__" or name not in _names.TOP:
            return NotImplemented
        out = kwargs.get("out")
        outs = out if isinstance(out, tuple) else (() if out is None else (out,))
        args = []
        for x in inputs + tuple(outs):
            t = type(x)
            if t is ndarray or isinstance(x, ndarray):
                args.append(x._a)
            elif t in _PYSCALARS or isinstance(x, _GENERIC):
                args.append(x)
            elif isinstance(x, _NP):
                if name in _COMPARISONS and x.ndim == 0 and x is not out:
                    args.append(x.item())      # CuPy's workaround for numpy/numpy#12142
                else:
                    raise unsupported(x)
            else:
                return NotImplemented
        if not dispatch_numpy_functions and isinstance(inputs[0], ndarray):
            # `a OP b` never reaches here (ndarray's operators run first): this is an
            # explicit numpy.<ufunc>(device array, ...) call
            raise TypeError(f"{IMPLICIT} (numpy.{name} was called on a cupy array: call "
                            f"xp.{name})")
        n = len(inputs)
        if outs:
            kwargs = dict(kwargs, out=tuple(args[n:]))
        result = ufunc(*args[:n], **kwargs)
        if outs:
            return out
        return wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if not (dispatch_numpy_functions or name in METADATA_FUNCTIONS):
            raise TypeError(f"{IMPLICIT} (numpy.{name} was called on a cupy array: call "
                            f"xp.{name}; CuPy dispatches numpy functions only where it "
                            "has them)")
        module = _sys.modules[__package__]
        try:
            for part in func.__module__.split(".")[1:]:
                if part.startswith("_"):
                    continue
                module = getattr(module, part)
            cupy_func = getattr(module, name)
        except AttributeError:
            return NotImplemented
        for t in types:
            if not (issubclass(t, ndarray) or issubclass(t, _NP)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    # ---- attributes ----
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        v = self._a.view()
        v.shape = value              # no copy, as CuPy
        self._a = v

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def itemsize(self):
        return self._a.itemsize

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def strides(self):
        return self._a.strides

    @property
    def T(self):
        return self if self._a.ndim < 2 else wrap(self._a.T)

    @property
    def mT(self):
        return wrap(self._a.mT)

    @property
    def flags(self):
        f = self._a.flags
        return Flags(f.c_contiguous, f.f_contiguous, self._a.base is None)

    @property
    def base(self):
        """None for an array that owns its memory, else (like CuPy) a view's base array;
        a fresh wrapper each time, not the original object."""
        b = self._a.base
        return from_host(b) if isinstance(b, _NP) else None

    @property
    def data(self):
        return MemoryPointer(self)

    @property
    def device(self):
        from . import _cuda
        return _cuda.Device(0)

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "descr": a.dtype.descr,
                "strides": None if a.flags.c_contiguous else a.strides,
                "data": (a.ctypes.data if a.size else 0, False), "version": 3}

    @property
    def real(self):
        return wrap(self._a.real)

    @real.setter
    def real(self, value):
        self._a.real = _arg(value)

    @property
    def imag(self):
        return wrap(self._a.imag)

    @imag.setter
    def imag(self, value):
        self._a.imag = _arg(value)

    # ---- conversion ----
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A NumPy copy (CuPy's device -> host transfer)."""
        if out is not None:
            if not isinstance(out, _NP):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self._a.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from "
                                f"{self._a.dtype} array")
            if out.shape != self._a.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self._a.shape}, "
                                 f"actual shape: {out.shape}")
            _np.copyto(out, self._a)
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy the NumPy array ``arr`` (same dtype and shape) into this array."""
        if not isinstance(arr, _NP):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self._a.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self._a.dtype} array")
        if self._a.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self._a.shape}, new shape: "
                             f"{arr.shape}")
        _np.copyto(self._a, arr)

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def tobytes(self, order="C"):
        return self._a.tobytes(order)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        a = self._a
        dt = _np.dtype(dtype)
        if a.dtype.kind == "f" and dt.kind in "iu":
            check_float_to_int(a, dt)
        r = a.astype(dt, order=order, copy=copy)
        return self if r is a else wrap(r)

    def view(self, dtype=None, type=None):
        if type is not None and not (isinstance(type, _builtins.type) and
                                     issubclass(type, ndarray)):
            raise TypeError("Type must be a sub-type of ndarray type")
        return wrap(self._a.view() if dtype is None else self._a.view(dtype))

    def copy(self, order="C"):
        return wrap(self._a.copy(order=order))

    def fill(self, value):
        if isinstance(value, _NP):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        elif isinstance(value, ndarray):
            raise unsupported(value)
        if self._a.dtype.kind in "iu":
            check_float_to_int(value, self._a.dtype)
        self._a.fill(value)

    # ---- shape ----
    def reshape(self, *shape, order="C", copy=None):
        return wrap(self._a.reshape(*shape, order=order, copy=copy))

    def ravel(self, order="C"):
        return wrap(self._a.ravel(order))

    def flatten(self, order="C"):
        return wrap(self._a.flatten(order))

    def transpose(self, *axes):
        return wrap(self._a.transpose(*axes))

    def swapaxes(self, axis1, axis2):
        return wrap(self._a.swapaxes(axis1, axis2))

    def squeeze(self, axis=None):
        return wrap(self._a.squeeze(axis))

    def repeat(self, repeats, axis=None):
        return wrap(self._a.repeat(_arg(repeats), axis))

    def take(self, indices, axis=None, out=None):
        return _reduce(_NP.take, self, out, _index1(indices), axis)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return wrap(self._a.diagonal(offset, axis1, axis2))

    def nonzero(self):
        return wrap(self._a.nonzero())

    def dot(self, b, out=None):
        return _reduce(_NP.dot, self, out, _operand_strict(b))

    def clip(self, min=None, max=None, out=None):
        return _reduce(_NP.clip, self, out, _arg(min), _arg(max))

    def round(self, decimals=0, out=None):
        return _reduce(_NP.round, self, out, decimals)

    # ---- reductions (0-d arrays, never NumPy scalars) ----
    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce(_NP.sum, self, out, axis, dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=None):
        return _reduce(_NP.prod, self, out, axis, dtype, keepdims=bool(keepdims))

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce(_NP.mean, self, out, axis, dtype, keepdims=keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _reduce(_NP.var, self, out, axis, dtype, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _reduce(_NP.std, self, out, axis, dtype, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return _reduce(_NP.max, self, out, axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return _reduce(_NP.min, self, out, axis, keepdims=keepdims)

    def ptp(self, axis=None, out=None, keepdims=False):
        r = _np.ptp(self._a, axis=axis, out=_out(out), keepdims=keepdims)
        return out if out is not None else wrap(r)

    def any(self, axis=None, out=None, keepdims=False):
        return _reduce(_NP.any, self, out, axis, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return _reduce(_NP.all, self, out, axis, keepdims=keepdims)

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        r = _reduce(_NP.argmax, self, out, axis, keepdims=keepdims)
        return r if dtype is None else r.astype(dtype, copy=False)

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        r = _reduce(_NP.argmin, self, out, axis, keepdims=keepdims)
        return r if dtype is None else r.astype(dtype, copy=False)

    def cumsum(self, axis=None, dtype=None, out=None):
        return _reduce(_NP.cumsum, self, out, axis, dtype)

    def cumprod(self, axis=None, dtype=None, out=None):
        return _reduce(_NP.cumprod, self, out, axis, dtype)

    def sort(self, axis=-1, kind=None):
        if kind not in (None, "stable"):
            raise ValueError(f"kind={kind!r} is not supported (CuPy sorts stably)")
        self._a.sort(axis, kind="stable")

    def argsort(self, axis=-1, kind=None):
        if kind not in (None, "stable"):
            raise ValueError(f"kind={kind!r} is not supported (CuPy sorts stably)")
        return wrap(self._a.argsort(axis, kind="stable"))

    # ---- cupyx.scatter_* (unbuffered, like CuPy's atomics) ----
    def scatter_add(self, slices, value):
        _np.add.at(self._a, _index(slices), _operand_strict(value))

    def scatter_max(self, slices, value):
        _np.maximum.at(self._a, _index(slices), _operand_strict(value))

    def scatter_min(self, slices, value):
        _np.minimum.at(self._a, _index(slices), _operand_strict(value))

    # ---- the rest of CuPy's ndarray methods, from NumPy ----
    def __getattr__(self, name):
        if name == "_a" or name.startswith("__") or name not in _names.NDARRAY:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        target = None if name in _NOT_EMULATED else getattr(self._a, name, None)
        if target is None:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} (CuPy "
                                 "has it; the stand-in does not emulate it)")
        if not callable(target):
            return wrap(target)

        def method(*args, **kwargs):
            return wrap(target(*_arg(args), **_arg(kwargs)))
        method.__name__ = name
        return method

    # ---- container ----
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (wrap(x) for x in self._a)

    def __getitem__(self, key):
        k = _index(key)
        r = self._a[k]
        if type(r) is _NP:
            o = _new(ndarray)
            o._a = r
            return o
        # a single element: a 0-d view, as CuPy (NumPy would give a scalar)
        o = _new(ndarray)
        o._a = self._a[(k if type(k) is tuple else (k,)) + (Ellipsis,)]
        return o

    def __setitem__(self, key, value):
        k = _index(key)
        t = type(value)
        if t is ndarray or isinstance(value, ndarray):
            v = value._a
        elif t in _PYSCALARS or isinstance(value, _GENERIC):
            v = value
        elif isinstance(value, _NP):
            raise unsupported(value)
        elif t is list or t is tuple:
            v = _arg(value)
        else:
            raise unsupported(value)
        if self._a.dtype.kind in "iu" and t is not int and t is not bool:
            check_float_to_int(v, self._a.dtype)
        self._a[k] = v

    # ---- scalars (each one a device synchronisation on CuPy) ----
    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    # no __index__: CuPy 14's ndarray has none (range(a), seq[a] and slicing by a 0-d
    # device array raise TypeError on a GPU), nor __round__ nor __contains__

    # ---- unary ----
    def __neg__(self):
        return wrap(-self._a)

    def __pos__(self):
        return self

    def __abs__(self):
        return wrap(abs(self._a))

    def __invert__(self):
        return wrap(~self._a)

    # ---- binary ----
    __add__, __radd__, __iadd__ = _binary(_np.add)
    __sub__, __rsub__, __isub__ = _binary(_np.subtract)
    __mul__, __rmul__, __imul__ = _binary(_np.multiply)
    __truediv__, __rtruediv__, __itruediv__ = _binary(_np.true_divide)
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary(_np.floor_divide)
    __mod__, __rmod__, __imod__ = _binary(_np.remainder)
    __pow__, __rpow__, __ipow__ = _binary(_np.power)
    __matmul__, __rmatmul__, _imatmul = _binary(_np.matmul)
    __and__, __rand__, __iand__ = _binary(_np.bitwise_and)
    __or__, __ror__, __ior__ = _binary(_np.bitwise_or)
    __xor__, __rxor__, __ixor__ = _binary(_np.bitwise_xor)
    __lshift__, __rlshift__, __ilshift__ = _binary(_np.left_shift)
    __rshift__, __rrshift__, __irshift__ = _binary(_np.right_shift)
    __divmod__, __rdivmod__, _idivmod = _binary(_np.divmod)

    __eq__ = _compare(_np.equal)
    __ne__ = _compare(_np.not_equal)
    __lt__ = _compare(_np.less)
    __le__ = _compare(_np.less_equal)
    __gt__ = _compare(_np.greater)
    __ge__ = _compare(_np.greater_equal)
    __hash__ = None

    # ---- copying, printing, pickling ----
    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return from_host, (self.get(),)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)


del ndarray._imatmul, ndarray._idivmod


#: CuPy ndarray attributes whose NumPy namesakes would hand out host objects
_NOT_EMULATED = frozenset({"flat", "cstruct", "mdspan", "toDlpack", "reduced_view"})


def _operand_strict(x):
    o = _operand(x)
    if o is _NI:
        raise unsupported(x)
    return o


def _index1(k):
    t = type(k)
    if t is ndarray:
        return k._a
    if t is int or t is slice or k is None or k is Ellipsis or t is bool:
        return k
    if isinstance(k, ndarray):
        return k._a
    if isinstance(k, _NP):
        # real CuPy copies a NumPy index array to the device (a silent, synchronising
        # host -> device transfer on every indexing); the stand-in refuses it like an
        # operand so that device code indexes with device arrays
        raise unsupported(k)
    if t is list:
        return [_index1(e) for e in k]
    return k


def _index(key):
    t = type(key)
    if t is int or t is slice:
        return key
    if t is tuple:
        return tuple([_index1(k) for k in key])
    return _index1(key)


# ---- module functions ---------------------------------------------------------------------
def _function(fn, name, check=True):
    """``cupy.<name>`` from ``numpy.<name>``: the call checked against CuPy's signature
    (once per shape of call), stand-in arguments unwrapped, NumPy arrays refused, array
    results wrapped (an ``out=`` stand-in is returned itself)."""
    sig = _names.signature(name) if check else None
    checked = set()

    def f(*args, **kwargs):
        if sig is not None:
            shape = (len(args), tuple(kwargs))
            if shape not in checked:
                _bind(sig, name, args, kwargs)
                checked.add(shape)
        if kwargs:
            out = kwargs.get("out")
            r = fn(*_arg(args), **_arg(kwargs))
            if isinstance(out, ndarray) and r is out._a:
                return out
            return wrap(r)
        return wrap(fn(*_arg(args)))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"cupy.{name} (stand-in: numpy.{name} on the wrapped arrays)"
    f.__wrapped_numpy__ = fn
    return f


def _bind(sig, name, args, kwargs):
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"cupy.{name}(): {e} (CuPy {_names.VERSION}: "
                        f"{name}({_names.SIGNATURES[name]}))") from None


#: the keyword arguments that CuPy's ufuncs take (NumPy's where=, order=, subok=,
#: signature= are "Wrong arguments" there)
_UFUNC_KWARGS = frozenset({"out", "dtype", "casting"})


class UFunc:
    """``cupy.<ufunc>``: the NumPy ufunc on unwrapped arguments, with its methods."""

    def __init__(self, ufunc, name):
        self._f = ufunc
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        if kwargs:
            if not _UFUNC_KWARGS.issuperset(kwargs):
                raise TypeError(f"Wrong arguments {sorted(set(kwargs) - _UFUNC_KWARGS)} "
                                f"(cupy.{self.__name__} takes out=, dtype=, casting= only)")
            out = kwargs.get("out")
            r = self._f(*_arg(args), **_arg(kwargs))
            if isinstance(out, ndarray) and r is out._a:
                return out
            return wrap(r)
        return wrap(self._f(*_arg(args)))

    def reduce(self, *args, **kwargs):
        return wrap(self._f.reduce(*_arg(args), **_arg(kwargs)))

    def accumulate(self, *args, **kwargs):
        return wrap(self._f.accumulate(*_arg(args), **_arg(kwargs)))

    def reduceat(self, *args, **kwargs):
        return wrap(self._f.reduceat(*_arg(args), **_arg(kwargs)))

    def outer(self, *args, **kwargs):
        return wrap(self._f.outer(*_arg(args), **_arg(kwargs)))

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise unsupported(a)
        args = (_index(indices),) if b is None else (_index(indices), _operand_strict(b))
        self._f.at(a._a, *args)

    def __getattr__(self, name):          # nin, nout, identity, types, ...
        if name == "_f":
            raise AttributeError(name)
        return getattr(self._f, name)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


def wrap_numpy(obj, name, check=True):
    """The stand-in's ``cupy.<name>`` for NumPy's object ``obj`` (``check``: calls are
    checked against CuPy's signature of top-level ``cupy.<name>``)."""
    if isinstance(obj, _np.ufunc):
        return UFunc(obj, name)
    if isinstance(obj, type):        # dtypes (cupy.float64 is numpy.float64), dtype, finfo
        return obj
    if callable(obj):
        return _function(obj, name, check)
    return obj                       # inf, nan, pi, e, newaxis


def _device_check():
    from . import _cuda
    if _cuda.device_count() == 0:
        raise _cuda.CUDARuntimeError(100)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """A stand-in array: itself when it already is one (of ``dtype``, and ``copy`` is not
    True); host data (NumPy arrays, lists, scalars) copied to the "device" -- the explicit
    transfer (so ``copy=False`` is a ValueError for them)."""
    if isinstance(a, ndarray):
        if not copy and (dtype is None or _np.dtype(dtype) == a._a.dtype):
            if order is None or order in "KA" or (order == "C" and a._a.flags.c_contiguous) \
                    or (order == "F" and a._a.flags.f_contiguous):
                return a
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested.")
        return a.astype(a._a.dtype if dtype is None else dtype, order=order or "K")
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array from host data "
                         "(a host -> device transfer is a copy).")
    _device_check()
    host = _arg_host(a)
    if dtype is not None:
        check_float_to_int(host, dtype)
    return from_host(_np.array(host, dtype=dtype, order=order or "K", copy=True))


def asanyarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return asarray(a, dtype, order, copy=copy, blocking=blocking)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """``cupy.array``: a copy (unless ``copy=False`` lets a stand-in pass through)."""
    if isinstance(obj, ndarray):
        a = obj._a
        if dtype is not None and a.dtype.kind == "f":
            check_float_to_int(a, dtype)
        r = _np.array(a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        return obj if r is a else from_host(r)
    _device_check()
    host = _arg_host(obj)
    if dtype is not None:
        check_float_to_int(host, dtype)
    return from_host(_np.array(host, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _arg_host(x):
    """Host data for asarray/array: NumPy arrays allowed here (the explicit transfer)."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t is list or t is tuple:
        return [_arg_host(e) for e in x]
    return x


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got "
                        f"{type(a).__name__})")
    src = a._a
    if dtype is not None and src.dtype.kind == "f":
        check_float_to_int(src, dtype)
    r = _np.ascontiguousarray(src, dtype=dtype)
    return a if r is src else from_host(r)


def asfortranarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got "
                        f"{type(a).__name__})")
    src = a._a
    if dtype is not None and src.dtype.kind == "f":
        check_float_to_int(src, dtype)
    r = _np.asfortranarray(src, dtype=dtype)
    return a if r is src else from_host(r)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A NumPy copy of a stand-in array; anything else through ``numpy.asarray``."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    r = _np.asarray(a, order=order)
    if out is not None:
        _np.copyto(out, r)
        return out
    return r


def copyto(dst, src, casting="same_kind", where=True):
    if not isinstance(dst, ndarray):
        raise unsupported(dst)
    s = _operand_strict(src)
    if dst._a.dtype.kind in "iu":
        check_float_to_int(s, dst._a.dtype)
    _np.copyto(dst._a, s, casting=casting, where=_arg(where))


def full(shape, fill_value, dtype=None, order="C"):
    v = _operand_strict(fill_value)
    if dtype is not None:
        check_float_to_int(v, dtype)
    return from_host(_np.full(shape, v, dtype=dtype, order=order))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    v = _operand_strict(fill_value)
    src = _operand_strict(a)
    dt = dtype if dtype is not None else getattr(src, "dtype", None)
    if dt is not None:
        check_float_to_int(v, dt)
    return from_host(_np.full_like(src, v, dtype=dtype, order=order, shape=shape))


def get_array_module(*args):
    for a in args:
        if isinstance(a, ndarray):
            return _sys.modules[__package__]
    return _np
