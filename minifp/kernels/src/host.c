/* Host entry points: the orders of mf_orders.h over a range of output rows, and
 * elementwise rounding.  Compiled with -O2 -std=c11 -ffp-contract=off -fno-fast-math;
 * ctypes releases the GIL while they run, so Python threads split the rows. */
#include <stdlib.h>

/* AVX-512 / AVX2 / baseline variants of the vector loops (mf_orders.h's MF_VEC), chosen
 * at load time; none of them has FMA (the objdump check of build.py verifies it).  Each
 * loop is its own function: inlined into a large one it is not vectorised. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define MF_VEC MF_CLONES __attribute__((noinline)) static
#else
#define MF_CLONES
#endif
#include "mf_orders.h"

#define MF_ORDER_SEQUENTIAL 0
#define MF_ORDER_PAIRWISE 1
#define MF_ORDER_BLOCKED 2
#define MF_ORDER_EXACT 3
#define MF_EXACT_CHUNK 128   /* terms per certified float64 chunk of the exact order */
#define MF_TILE_DOUBLES 32768   /* K x tile doubles of y per column tile (256 KiB) */


/* y of batch b as (K, n) rows: y itself, or (ytrans: y holds (n, K)) a transposed copy in
 * *buf (allocated once; returns NULL when memory runs out) */
static const double *rows_of_y(const double *y, mf_i64 b, mf_i64 K, mf_i64 n, int ytrans,
                               double **buf) {
    mf_i64 k, j;
    const double *src = y + b * K * n;
    if (!ytrans) return src;
    if (!*buf) *buf = (double *)malloc(sizeof(double) * (size_t)(K * n > 0 ? K * n : 1));
    if (!*buf) return NULL;
    for (j = 0; j < n; j++)
        for (k = 0; k < K; k++) (*buf)[k * n + j] = src[j * K + k];
    return *buf;
}

/* The fast sequential path over rows [r0, r1): column tiles small enough that a tile of
 * y stays in cache for every row, four rows at once where they share a batch (ytrans: y
 * holds (B, n, K) and each tile is packed from it), without the range test in the loop
 * where the tile's column maxima bound the partial sums (mf_rows_bounded); a row where
 * a value left [-max, max] is then redone by the general row. */
static int sequential_fast_rows(const mf_acc *A, const double *x, const double *y,
                                double *out, mf_i64 m, mf_i64 K, mf_i64 n, mf_i64 r0,
                                mf_i64 r1, mf_kul *kul, int ytrans) {
    mf_i64 tile = (MF_TILE_DOUBLES / (K ? K : 1)) & ~(mf_i64)7, j0, r, packed_b = -1;
    unsigned char *bad = (unsigned char *)calloc((size_t)(r1 - r0 + 1), 1);
    double *pack = NULL, *full = NULL;
    double *ymax = (double *)malloc(sizeof(double) * (size_t)(K > 0 ? K : 1));
    const mf_i64 *F = A->F;
    const double maxv = mf_double((mf_u64)F[F_MAX_BITS]);
    const double minnorm = mf_double((mf_u64)F[F_MINNORM_BITS]);
    mf_i64 ymax_b;
    int failed = 0;
    if (!bad || !ymax) {
        free(bad);
        free(ymax);
        return 1;
    }
    if (tile < 64) tile = 64;
    if (tile > n) tile = n;
    if (ytrans && !(pack = (double *)malloc(sizeof(double) * (size_t)(K * tile > 0 ? K * tile : 1)))) {
        free(ymax);
        free(bad);
        return 1;
    }
    for (j0 = 0; j0 < n; j0 += tile) {
        mf_i64 len = j0 + tile < n ? tile : n - j0;
        packed_b = ymax_b = -1;
        for (r = r0; r < r1;) {
            mf_i64 b = r / m;
            int rows = (r + 4 <= r1 && (r + 3) / m == b) ? 4 : 1;
            const double *yt = y + b * K * n + j0;
            mf_i64 ys = n;
            if (ytrans) {
                if (b != packed_b) {               /* pack columns j0 .. j0+len of y[b] */
                    const double *src = y + b * n * K + j0 * K;
                    mf_i64 k, jj;
                    for (jj = 0; jj < len; jj++)
                        for (k = 0; k < K; k++) pack[k * len + jj] = src[jj * K + k];
                    packed_b = b;
                }
                yt = pack;
                ys = len;
            }
            int bounded = 0;
            /* float32: no test in the loop; others: only where the growth factor of
             * mf_rows_bounded can pass (K (2**-p + 2**-52) <= 1/2) */
            if (!F[F_F32] && F[F_PRECISION] >= 1 && F[F_PRECISION] <= 50
                && (double)K * (mf_pow2(-(int)F[F_PRECISION]) + mf_pow2(-52)) <= 0.5) {
                if (b != ymax_b) {
                    mf_column_max(yt, ys, K, len, ymax);
                    ymax_b = b;
                }
                bounded = mf_rows_bounded(x + r * K, K, rows, ymax, K, F[F_PRECISION],
                                          minnorm, maxv);
            }
            if (mf_sequential_rne_tile(A, x + r * K, yt, ys, out + r * n, K, n, j0, len, rows,
                                       bounded)) {
                mf_i64 q;
                for (q = 0; q < rows; q++) bad[r - r0 + q] = 1;
            }
            r += rows;
        }
    }
    for (r = r0; r < r1 && !failed; r++) {
        mf_i64 b = r / m;
        const double *yb;
        if (!bad[r - r0]) continue;
        yb = rows_of_y(y, b, K, n, ytrans, &full);
        if (!yb) { failed = 1; break; }
        mf_sequential_row(A, x + r * K, yb, out + r * n, K, n,
                          (mf_u64)(b * m * n + (r % m) * A->orow), kul);
    }
    free(ymax);
    free(full);
    free(pack);
    free(bad);
    return failed;
}

/* The version of the argument tables (minifp/kernels/signatures.py must agree). */
int mf_abi_version(void) { return 4; }

/* float64 -> float16 (as uint16 bit patterns), exact for values that are float16 values
 * (the engine's results in a float16 carrier, NaN and Inf included), which is the only
 * use: 2-3x faster than NumPy's general conversion. */
MF_VEC void mf_f64_to_f16_loop(const double *MF_RESTRICT src,
                               unsigned short *MF_RESTRICT dst, mf_i64 count) {
    mf_i64 i;
    for (i = 0; i < count; i++) {
        mf_du v;
        mf_u64 sign, ef, h, sub;
        v.d = src[i];
        sign = (v.u >> 48) & 0x8000ULL;
        ef = (v.u >> 52) & 0x7FFULL;
        h = sign | (((ef - 1008) & 31) << 10) | ((v.u >> 42) & 1023);      /* normal */
        sub = sign | (mf_u64)(mf_i64)(MF_VFABS(v.d) * 16777216.0);         /* |v| * 2^24 */
        h = (ef < 1009) ? sub : h;
        h = (ef == 0x7FF) ? (sign | 0x7C00ULL | (((v.u & MF_FRAC) != 0) ? 0x200ULL : 0ULL)) : h;
        dst[i] = (unsigned short)h;
    }
}
int mf_float64_to_float16(const double *src, void *dst, mf_i64 count) {
    mf_f64_to_f16_loop(src, (unsigned short *)dst, count);
    return 0;
}

/* Round count float64 values to the format F with mode; stochastic words
 * mf_word(key, event, index0 + i). */
MF_CLONES
int mf_round_array(const double *x, double *out, mf_i64 count, const mf_i64 *F,
                   mf_i64 mode, mf_u64 key, mf_i64 event, mf_i64 index0) {
    mf_i64 i;
    mf_u64 ek = mf_event_key(key, (mf_u64)event);
    for (i = 0; i < count; i++)
        out[i] = mf_round(F, x[i], (int)mode, mode == MF_SR ? mf_word_at(ek, (mf_u64)(index0 + i)) : 0);
    return 0;
}

/* Rows r0 <= r < r1 of the (B*m, n) result of x (B, m, K) @ y (B, K, n), C-contiguous
 * float64.  The stochastic index of output (r, j) is (r / m) m n + (r % m) orow + j ocol
 * (orow = n, ocol = 1, or swapped for a transposed problem); ytrans: y is given as
 * (B, n, K) instead of (B, K, n).  out: accumulator values; out2 (exact order only): the exact sums rounded to
 * nearest-even, out then holding them rounded to odd.  Returns 0, or 1 when scratch
 * memory could not be allocated. */
int mf_matmul_rows(const double *x, const double *y, double *out, double *out2,
                   mf_i64 B, mf_i64 m, mf_i64 K, mf_i64 n, const mf_i64 *F,
                   mf_i64 order, mf_i64 block, mf_i64 fma, mf_i64 mode, mf_i64 wide,
                   mf_i64 direct, mf_u64 key, mf_i64 r0, mf_i64 r1, mf_i64 orow,
                   mf_i64 ocol, mf_i64 ytrans) {
    mf_acc A;
    mf_kul *kul = (mf_kul *)malloc(2 * sizeof(mf_kul)), *kuls = NULL;
    double *scratch = NULL;
    mf_span *spans = NULL;
    unsigned char *special = NULL;
    double *ymax = NULL;
    mf_i64 r, nn = n ? n : 1, span_batch = -1;
    mf_i64 b_spans = order == MF_ORDER_EXACT ? MF_EXACT_CHUNK : block;
    int fast_rne = mode == MF_RNE && !wide && F[F_MAGIC];
    int certified = (order == MF_ORDER_BLOCKED && fma) || order == MF_ORDER_EXACT;
    int failed = 0;
    if (!kul) return 1;
    mf_kul_init(&kul[0]);
    mf_kul_init(&kul[1]);
    if (order == MF_ORDER_PAIRWISE) {
        scratch = (double *)malloc(sizeof(double) * MF_LEVELS * (size_t)nn);
        ymax = (double *)malloc(sizeof(double) * (size_t)(K > 0 ? K : 1));
    }
    if (order == MF_ORDER_BLOCKED || order == MF_ORDER_EXACT)
        scratch = (double *)malloc(sizeof(double) * 2 * (size_t)nn);
    if (certified)
        spans = (mf_span *)malloc(sizeof(mf_span) * (size_t)nn * (size_t)((K + b_spans - 1) / b_spans + 1));
    if (order == MF_ORDER_EXACT) {
        kuls = (mf_kul *)malloc(sizeof(mf_kul) * (size_t)nn);
        special = (unsigned char *)malloc((size_t)nn);
        if (kuls) for (r = 0; r < nn; r++) mf_kul_init(&kuls[r]);
    }
    if ((order != MF_ORDER_SEQUENTIAL && !scratch) || (certified && !spans)
        || (order == MF_ORDER_PAIRWISE && !ymax)
        || (order == MF_ORDER_EXACT && (!kuls || !special))) failed = 1;
    A.F = F; A.mode = (int)mode; A.fma = (int)fma; A.wide = (int)wide; A.direct = (int)direct;
    A.key = key;
    A.ocol = (mf_u64)ocol;
    A.orow = (mf_u64)orow;
    if (order == MF_ORDER_SEQUENTIAL && fast_rne && fma && !failed) {
        failed = sequential_fast_rows(&A, x, y, out, m, K, n, r0, r1, kul, (int)ytrans);
        r1 = r0;                                    /* done */
    } else if (ytrans && !failed) {                 /* the other paths read (K, n) rows */
        mf_i64 b, b0 = r0 / m, b1 = (r1 - 1) / m;
        double *ty = (double *)malloc(sizeof(double) * (size_t)(B * K * n + 1));
        if (!ty) failed = 1;
        for (b = b0; b <= b1 && !failed; b++) {     /* only the batches of these rows */
            mf_i64 k, j;
            const double *src = y + b * n * K;
            for (j = 0; j < n; j++)
                for (k = 0; k < K; k++) ty[b * K * n + k * n + j] = src[j * K + k];
        }
        if (!failed)
            failed = mf_matmul_rows(x, ty, out, out2, B, m, K, n, F, order, block, fma, mode,
                                    wide, direct, key, r0, r1, orow, ocol, 0);
        free(ty);
        r1 = r0;
    }
    for (r = r0; r < r1 && !failed; r++) {
        mf_i64 b = r / m;
        const double *xr = x + r * K;
        const double *yb = y + b * K * n;
        double *o = out + r * n;
        mf_u64 o0 = (mf_u64)(b * m * n + (r % m) * orow);
        if (certified && b != span_batch) {
            mf_column_spans(spans, yb, K, n, b_spans);
            span_batch = b;
        }
        if (order == MF_ORDER_PAIRWISE && fast_rne && b != span_batch) {
            mf_column_max(yb, n, K, n, ymax);
            span_batch = b;
        }
        switch (order) {
        case MF_ORDER_SEQUENTIAL:
            if (fast_rne && fma && !mf_sequential_rne_row(&A, xr, yb, o, K, n)) break;
            mf_sequential_row(&A, xr, yb, o, K, n, o0, kul);
            break;
        case MF_ORDER_PAIRWISE:
            if (fast_rne && !mf_pairwise_rne_row(&A, xr, yb, o, K, n, scratch, ymax)) break;
            mf_pairwise_row(&A, xr, yb, o, K, n, o0, scratch, kul);
            break;
        case MF_ORDER_BLOCKED:
            if (fma) mf_blocked_fma_row(&A, xr, yb, o, K, n, block, o0, scratch, spans, kul);
            else mf_blocked_row(&A, xr, yb, o, K, n, block, o0, scratch, kul);
            break;
        default:
            mf_exact_fast_row(xr, yb, o, out2 + r * n, K, n, MF_EXACT_CHUNK, scratch, spans,
                              kuls, special);
        }
    }
    free(ymax);
    free(special);
    free(kuls);
    free(spans);
    free(scratch);
    free(kul);
    return failed;
}
