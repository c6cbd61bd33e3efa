"""The argument tables of the CUDA entry points (``src/device.cu``): the host tables of
``signatures.py``, the matmul kernel taking one more, trailing argument ``scratch``.

Device threads cannot allocate their own scratch, so the launcher passes one float64
buffer of ``(r1 - r0) * scratch_doubles_per_row(order, n)`` doubles (any contents): row
``r0 + t`` uses the ``t``-th slice, two Kulisch accumulators first, then the order's own
scratch (the pairwise stack or the blocked block sums).  ``device.cu`` holds the same
numbers (``MF_DEV_KUL_DOUBLES``, ``mf_dev_scratch_per_row``) and refuses to compile if the
accumulator's size changes."""
from __future__ import annotations

from .signatures import MATMUL_ROWS, ORDERS, ROUND_ARRAY

DEVICE_ROUND_ARRAY = ROUND_ARRAY
DEVICE_MATMUL_ROWS = MATMUL_ROWS + (("scratch", "f64*"),)

DEVICE_ENTRY_POINTS = {"mf_round_array_kernel": DEVICE_ROUND_ARRAY,
                       "mf_matmul_rows_kernel": DEVICE_MATMUL_ROWS}

#: kernels whose results must be exact (bit for bit the host's): no FMA contraction, no
#: flush to zero, no approximate division or square root in their PTX
EXACT_KERNELS = frozenset(DEVICE_ENTRY_POINTS)

#: doubles of one Kulisch accumulator (sizeof(mf_kul) / 8; device.cu MF_DEV_KUL_DOUBLES)
KUL_DOUBLES = 140
#: doubles of every row's slice that do not depend on n: the two accumulators
SCRATCH_FIXED_DOUBLES = 2 * KUL_DOUBLES
#: doubles per output column (times max(n, 1)) that each order adds to a row's slice
SCRATCH_COLUMN_DOUBLES = {ORDERS["sequential"]: 0, ORDERS["pairwise"]: 66,   # MF_LEVELS
                          ORDERS["blocked"]: 1, ORDERS["exact"]: 0}


def scratch_doubles_per_row(order: int, n: int) -> int:
    """Doubles of the matmul kernel's scratch that one output row of `n` columns uses."""
    return SCRATCH_FIXED_DOUBLES + SCRATCH_COLUMN_DOUBLES.get(order, 0) * max(int(n), 1)


def scratch_doubles(order: int, n: int, r0: int, r1: int) -> int:
    """Doubles of the whole scratch buffer for rows r0 <= r < r1."""
    return max(int(r1) - int(r0), 0) * scratch_doubles_per_row(order, n)
