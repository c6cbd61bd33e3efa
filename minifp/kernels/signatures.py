"""The argument table of every kernel entry point: the one list that the ctypes loader,
the CuPy launcher and the PTX lint check against.

Types: ``f64*`` / ``i64*`` pointers, ``i64`` and ``u64`` scalars.  CUDA entry points take
the same arguments as the host ones (their names end in ``_kernel``)."""
from __future__ import annotations

ROUND_ARRAY = (("x", "f64*"), ("out", "f64*"), ("count", "i64"), ("fmt", "i64*"),
               ("mode", "i64"), ("key", "u64"), ("event", "i64"), ("index0", "i64"))

MATMUL_ROWS = (("x", "f64*"), ("y", "f64*"), ("out", "f64*"), ("out2", "f64*"),
               ("B", "i64"), ("m", "i64"), ("K", "i64"), ("n", "i64"), ("fmt", "i64*"),
               ("order", "i64"), ("block", "i64"), ("fma", "i64"), ("mode", "i64"),
               ("wide", "i64"), ("direct", "i64"), ("key", "u64"), ("r0", "i64"),
               ("r1", "i64"), ("orow", "i64"), ("ocol", "i64"), ("ytrans", "i64"))

FLOAT64_TO_FLOAT16 = (("src", "f64*"), ("dst", "f64*"), ("count", "i64"))

ENTRY_POINTS = {"mf_round_array": ROUND_ARRAY, "mf_matmul_rows": MATMUL_ROWS,
                "mf_float64_to_float16": FLOAT64_TO_FLOAT16}

#: the kernel numbers of the orders
ORDERS = {"sequential": 0, "pairwise": 1, "blocked": 2, "exact": 3}

ABI_VERSION = 4
