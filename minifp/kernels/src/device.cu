/* CUDA entry points: the same work as host.c, compiled by NVRTC with
 *   --fmad=false --ftz=false --prec-div=true --prec-sqrt=true -default-device -std=c++11
 * (minifp/kernels/nvrtc.py OPTIONS).  The arithmetic is that of the shared headers, so a
 * kernel's results are bit for bit those of the host library.  No libc header: under
 * __CUDACC_RTC__, mf_port.h defines the integer types and the float64 operations itself.
 *
 * Argument tables: minifp/kernels/device_signatures.py (the host tables of signatures.py;
 * the matmul kernel takes one more, trailing argument, `scratch`).  Every size, count and
 * index is an int64 scalar, `key` a uint64 scalar; launch with one thread per element
 * (rounding) or per output row (matmul); threads past the end return at once. */
#include "mf_orders.h"

#define MF_ORDER_SEQUENTIAL 0
#define MF_ORDER_PAIRWISE 1
#define MF_ORDER_BLOCKED 2
#define MF_ORDER_EXACT 3

/* Device scratch of the matmul kernel, in doubles, for each row r0 <= r < r1 (thread
 * t = r - r0 uses scratch + t * per_row):
 *     per_row = 2 * MF_DEV_KUL_DOUBLES + cols * max(n, 1)
 * with MF_DEV_KUL_DOUBLES = 140 (sizeof(mf_kul) / 8: two Kulisch accumulators first) and
 * cols = MF_LEVELS = 66 for the pairwise order (its stack), 1 for the blocked order (its
 * block sums), 0 for the sequential and exact orders.  So the whole buffer holds
 * (r1 - r0) * per_row doubles, and its contents on entry do not matter (the kernel
 * initialises the accumulators).  device_signatures.py mirrors these numbers. */
#define MF_DEV_KUL_DOUBLES 140
static_assert(sizeof(mf_kul) == MF_DEV_KUL_DOUBLES * sizeof(double),
              "mf_kul changed size: update MF_DEV_KUL_DOUBLES here and KUL_DOUBLES in "
              "minifp/kernels/device_signatures.py");

MF_FN mf_i64 mf_dev_scratch_per_row(mf_i64 order, mf_i64 n) {
    mf_i64 cols = order == MF_ORDER_PAIRWISE ? MF_LEVELS : order == MF_ORDER_BLOCKED ? 1 : 0;
    return 2 * MF_DEV_KUL_DOUBLES + cols * (n ? n : 1);
}

MF_FN mf_i64 mf_dev_thread(void) {
    return (mf_i64)blockIdx.x * (mf_i64)blockDim.x + (mf_i64)threadIdx.x;
}

/* out[i] = x[i] rounded to the format F with mode, 0 <= i < count; stochastic words
 * mf_word(key, event, index0 + i) (host.c mf_round_array). */
extern "C" __global__ void mf_round_array_kernel(const double *x, double *out, mf_i64 count,
                                                 const mf_i64 *F, mf_i64 mode, mf_u64 key,
                                                 mf_i64 event, mf_i64 index0) {
    mf_i64 i = mf_dev_thread();
    if (i >= count) return;
    {
        mf_u64 word = 0;
        if (mode == MF_SR) word = mf_word(key, (mf_u64)event, (mf_u64)(index0 + i));
        out[i] = mf_round(F, x[i], (int)mode, word);
    }
}

/* Row r = r0 + thread of the (B*m, n) result of x (B, m, K) @ y (B, K, n), C-contiguous
 * float64 (host.c mf_matmul_rows): out holds the accumulator values; out2 (exact order
 * only) the exact sums rounded to nearest-even, out then holding them rounded to odd. */
extern "C" __global__ void mf_matmul_rows_kernel(const double *x, const double *y, double *out,
                                                 double *out2, mf_i64 B, mf_i64 m, mf_i64 K,
                                                 mf_i64 n, const mf_i64 *F, mf_i64 order,
                                                 mf_i64 block, mf_i64 fma, mf_i64 mode,
                                                 mf_i64 wide, mf_i64 direct, mf_u64 key,
                                                 mf_i64 r0, mf_i64 r1, mf_i64 orow,
                                                 mf_i64 ocol, mf_i64 ytrans,
                                                 double *scratch) {
    mf_i64 t = mf_dev_thread();
    mf_i64 r = r0 + t;
    (void)B;
    if (t < 0 || r >= r1) return;
    if (ytrans) {      /* (B, n, K) is a host layout; a launch with it gives NaN, not bits */
        mf_i64 j;
        for (j = 0; j < n; j++) out[r * n + j] = mf_double(MF_NAN_BITS);
        return;
    }
    {
        double *mine = scratch + t * mf_dev_scratch_per_row(order, n);
        mf_kul *kul = (mf_kul *)mine;
        double *rest = mine + 2 * MF_DEV_KUL_DOUBLES;
        mf_i64 b = r / m;
        const double *xr = x + r * K;
        const double *yb = y + b * K * n;
        double *o = out + r * n;
        mf_u64 o0 = (mf_u64)(b * m * n + (r % m) * orow);
        mf_acc A;
        mf_kul_init(&kul[0]);
        mf_kul_init(&kul[1]);
        A.F = F; A.mode = (int)mode; A.fma = (int)fma; A.wide = (int)wide;
        A.direct = (int)direct; A.key = key; A.ocol = (mf_u64)ocol; A.orow = (mf_u64)orow;
        switch (order) {
        case MF_ORDER_SEQUENTIAL:
            if (mode == MF_RNE && fma && !wide && F[F_MAGIC]) {
                if (!mf_sequential_rne_row(&A, xr, yb, o, K, n)) break;
            }
            mf_sequential_row(&A, xr, yb, o, K, n, o0, kul);
            break;
        case MF_ORDER_PAIRWISE:
            mf_pairwise_row(&A, xr, yb, o, K, n, o0, rest, kul);
            break;
        case MF_ORDER_BLOCKED:
            mf_blocked_row(&A, xr, yb, o, K, n, block, o0, rest, kul);
            break;
        default:
            mf_exact_row(xr, yb, o, out2 + r * n, K, n, kul);
        }
    }
}
