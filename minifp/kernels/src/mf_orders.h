/* The explicit accumulation orders for one row of outputs of a batched matmul, as the
 * NumPy reference (minifp/accumulate/orders.py) defines them: x_row holds the K terms'
 * left factors, y the (K, n) right factors (row k contiguous), out the n results.
 *
 * Every rounding of order `t` of output `o` that is stochastic consumes
 * mf_word(key, t, o); the events are  4k: the product of term k (fma off),
 * 4k+2: the sum after term k (sequential),  4j+1 / 4j+2: block j's sum and the running
 * sum after it (blocked),  ((L << 32) | index) * 4 + 3: a pairwise node of level L. */
#ifndef MF_ORDERS_H
#define MF_ORDERS_H
#include "mf_round.h"
#include "mf_exact.h"

#ifndef MF_RESTRICT
#ifdef __CUDACC_RTC__
#define MF_RESTRICT __restrict__
#else
#define MF_RESTRICT restrict
#endif
#endif

/* the vector loops: host.c compiles them in AVX-512 / AVX2 / baseline variants */
#ifndef MF_VEC
#define MF_VEC MF_FN
#endif
/* |x| in the vectorised loops (the compiler's builtin vectorises, a union does not) */
#if defined(__GNUC__) && !defined(__CUDACC_RTC__)
#define MF_VFABS(x) __builtin_fabs(x)
#else
#define MF_VFABS(x) mf_fabs(x)
#endif   /* stack depth of the pairwise trees (K < 2**64) */

#define MF_LEVELS 66   /* stack depth of the pairwise trees (K < 2**64) */

typedef struct {
    const mf_i64 *F;     /* accumulator format */
    int mode, fma, wide, direct;
    mf_u64 key;
    mf_u64 ocol;         /* output (r, j) has the stochastic index o0(r) + j * ocol */
    mf_u64 orow;         /* o0(r) = batch offset + (r mod m) * orow */
} mf_acc;

/* a finite overflow of a float64 accumulator with :sat / :nan (orders._finite_overflow) */
MF_FN double mf_finite_overflow(const mf_i64 *F, double r, int finite_operands) {
    if (F[F_OVERFLOW] == MF_OVER_INF || !finite_operands || !mf_isinf(r)) return r;
    if (F[F_OVERFLOW] == MF_OVER_SAT) return mf_copysign(mf_double((mf_u64)F[F_MAX_BITS]), r);
    return mf_double(MF_NAN_BITS);
}
MF_FN int mf_flagged64(const mf_i64 *F) { return F[F_PRECISION] >= 53 && !F[F_PLAIN64]; }

/* R(a + b) (orders.add_round) */
MF_FN double mf_add_round(const mf_acc *A, double a, double b, mf_u64 word) {
    const mf_i64 *F = A->F;
    if (F[F_PRECISION] >= 53) {
        double s = MF_DADD(a, b);
        if (F[F_PLAIN64]) return s;
        return mf_round(F, mf_finite_overflow(F, s, mf_isfinite(a) && mf_isfinite(b)),
                        MF_RNE, 0);
    }
    return mf_round(F, mf_add_to_odd(a, b), A->mode, word);
}

/* The value of a sum of products whose operands are not all finite: NaN if a product is
 * NaN or the products hold both +Inf and -Inf, else the Inf (orders.exact's rule). */
typedef struct { int nan, pos, neg; } mf_special;
MF_FN void mf_special_add(mf_special *sp, double p) {
    if (mf_isnan(p)) sp->nan = 1;
    else if (mf_isinf(p)) { if (p > 0) sp->pos = 1; else sp->neg = 1; }
}
MF_FN double mf_special_value(const mf_special *sp) {
    if (sp->nan || (sp->pos && sp->neg)) return mf_double(MF_NAN_BITS);
    if (sp->pos) return mf_double(MF_INF_BITS);
    if (sp->neg) return -mf_double(MF_INF_BITS);
    return 0.0;   /* not reached for a non-finite operand */
}

/* a1*b1 + a2*b2 exactly, rounded to odd (orders.pair_sums_to_odd), any operands */
MF_FN double mf_pair_to_odd(mf_kul *kul, double a1, double b1, double a2, double b2) {
    double odd, near;
    if (!(mf_isfinite(a1) && mf_isfinite(b1) && mf_isfinite(a2) && mf_isfinite(b2))) {
        mf_special sp = {0, 0, 0};
        mf_special_add(&sp, MF_DMUL(a1, b1));
        mf_special_add(&sp, MF_DMUL(a2, b2));
        return mf_special_value(&sp);
    }
    if (b1 == 1.0 && mf_prod_safe(a2, b2)) {           /* s + x*y: TwoProduct */
        double lo, hi = mf_two_prod(a2, b2, &lo);
        return mf_add3_to_odd(a1, hi, lo);
    }
    mf_kul_clear(kul);
    mf_kul_add_prod(kul, a1, b1);
    mf_kul_add_prod(kul, a2, b2);
    mf_kul_result(kul, &odd, &near);
    return odd;
}

/* x*y exactly, rounded to odd (orders.products_to_odd) */
MF_FN double mf_prod_to_odd(mf_kul *kul, double x, double y) {
    if (mf_prod_safe(x, y)) {
        double lo, hi = mf_two_prod(x, y, &lo);
        return mf_odd_overflow(mf_to_odd(hi, lo), 1);
    }
    return mf_pair_to_odd(kul, x, y, 0.0, 0.0);
}

/* ---- sequential ------------------------------------------------------------------ */
MF_FN void mf_sequential_row(const mf_acc *A, const double *xr, const double *y,
                             double *out, mf_i64 K, mf_i64 n, mf_u64 o0, mf_kul *kul) {
    const mf_i64 *F = A->F;
    mf_i64 k, j;
    int flagged = mf_flagged64(F), sr = A->mode == MF_SR;
    for (j = 0; j < n; j++) out[j] = 0.0;
    for (k = 0; k < K; k++) {
        double xv = xr[k];
        const double *yr = y + k * n;
        mf_u64 ek_p = sr ? mf_event_key(A->key, 4 * (mf_u64)k) : 0;
        mf_u64 ek_s = sr ? mf_event_key(A->key, 4 * (mf_u64)k + 2) : 0;
        for (j = 0; j < n; j++) {
            double s = out[j], yv = yr[j], p;
            mf_u64 wp = sr ? mf_word_at(ek_p, o0 + (mf_u64)j * A->ocol) : 0, ws = sr ? mf_word_at(ek_s, o0 + (mf_u64)j * A->ocol) : 0;
            if (A->wide) {
                if (!A->fma) {
                    p = mf_round(F, mf_prod_to_odd(kul, xv, yv), A->mode, wp);
                    s = mf_add_round(A, s, p, ws);
                } else {
                    s = mf_round(F, mf_pair_to_odd(kul, s, 1.0, xv, yv), A->mode, ws);
                }
            } else {
                p = MF_DMUL(xv, yv);
                if (flagged) p = mf_finite_overflow(F, p, mf_isfinite(xv) && mf_isfinite(yv));
                if (!A->fma) p = mf_round(F, p, A->mode, wp);
                s = mf_add_round(A, s, p, ws);
            }
            out[j] = s;
        }
    }
}

/* ---- the vectorisable fast paths ---------------------------------------------------
 * Written with a union for the bit casts and restrict pointers so that the compiler
 * vectorises across outputs (k outermost, outputs innermost and contiguous). */
typedef union { double d; mf_u64 u; } mf_du;

/* to_odd(two_sum(s, p)) without branches (finite s, p; a NaN shows as NaN) */
MF_FN double mf_add_to_odd_fast(double s, double p) {
    mf_du t, e;
    double bb;
    mf_u64 fix, toward_zero;
    t.d = MF_DADD(s, p);
    bb = MF_DSUB(t.d, s);
    e.d = MF_DADD(MF_DSUB(s, MF_DSUB(t.d, bb)), MF_DSUB(p, bb));
    /* fix: all ones where e != 0 and t's last bit is 0; the step is +1 (away from zero,
     * e with t's sign) or -1 (toward zero) */
    fix = (mf_u64)0 - (((e.u & MF_ABS) != 0) ? ((~t.u) & 1ULL) : 0ULL);
    toward_zero = (mf_u64)0 - ((t.u ^ e.u) >> 63);
    t.u += fix & (toward_zero | 1ULL);
    return t.d;
}

/* RN_A(t) by two additions, t + c - c (orders.round_rne_inplace): valid for finite
 * |t| <= max in a format with F[F_MAGIC]; written with a union so that it vectorises */
MF_FN double mf_rne_fast(double t, double minnorm, mf_u64 add) {
    mf_du v, c;
    v.d = t;
    c.u = v.u & MF_EXP;
    c.d = c.d < minnorm ? minnorm : c.d;
    c.u += add;
    return MF_DSUB(MF_DADD(t, c.d), c.d);
}

/* The fast sequential loops, outputs zeroed by the caller: out[j] = NEXT(out[j],
 * x_k*y[k][j]) for k = 0..K-1, NEXT one of
 *   MF_NEXT_DIRECT  RN_A(RN_64(s + p)) by two additions (`direct`: exact enough,
 *                   _float64_add_is_correct),
 *   MF_NEXT_ODD     RN_A of s + p rounded to odd, by two additions,
 *   MF_NEXT_F32     float32 accumulators: the hardware conversion to float32 of s + p
 *                   rounded to odd (one correct rounding: 24 <= 51 bits);
 * one row, or four rows at once (register blocking: each y_k is read once for the four;
 * rows o0..o3 with factors xr + q*K).  CHECK 1: they return nonzero if a partial sum
 * left [-max, max] or was not finite (the caller then redoes the row with
 * mf_sequential_row); `bad` is 64-bit, like the lanes, so that its reduction vectorises.
 * CHECK 0: no test in the loop, for rows whose partial sums provably stay below max
 * (mf_rows_bounded) and for float32 accumulators, whose overflow is an Inf or NaN that
 * stays one to the end; the results are tested instead (MF_RESULTS_BAD). */
#define MF_NEXT_DIRECT(s, p) mf_rne_fast(MF_DADD((s), (p)), minnorm, add)
#define MF_NEXT_ODD(s, p) mf_rne_fast(mf_add_to_odd_fast((s), (p)), minnorm, add)
#define MF_NEXT_F32(s, p) ((double)(float)mf_add_to_odd_fast((s), (p)))
#define MF_OUT_OF_RANGE(v) ((mf_i64)!(MF_VFABS(v) <= maxv))
#define MF_RESULTS_BAD(o)                                                                  \
    for (j = 0; j < n; j++) bad |= MF_OUT_OF_RANGE((o)[j]);

#define MF_SEQ1(NAME, NEXT, CHECK)                                                        \
MF_VEC int NAME(double *MF_RESTRICT out, const double *MF_RESTRICT y,                     \
                const double *MF_RESTRICT xr, mf_i64 K, mf_i64 n, mf_i64 ys,              \
                double minnorm, mf_u64 add, double maxv) {                                \
    mf_i64 j, k, bad = 0;                                                                 \
    (void)minnorm; (void)add;                                                             \
    for (k = 0; k < K; k++) {                                                             \
        const double xv = xr[k];                                                          \
        const double *MF_RESTRICT yr = y + k * ys;                                        \
        for (j = 0; j < n; j++) {                                                         \
            const double r = NEXT(out[j], MF_DMUL(xv, yr[j]));                            \
            if (CHECK) bad |= MF_OUT_OF_RANGE(r);                                         \
            out[j] = r;                                                                   \
        }                                                                                 \
    }                                                                                     \
    if (!CHECK) { MF_RESULTS_BAD(out) }                                                   \
    return bad != 0;                                                                      \
}

#define MF_SEQ4(NAME, NEXT, CHECK)                                                        \
MF_VEC int NAME(double *MF_RESTRICT o0, double *MF_RESTRICT o1, double *MF_RESTRICT o2,   \
                double *MF_RESTRICT o3, const double *MF_RESTRICT y,                      \
                const double *MF_RESTRICT xr, mf_i64 K, mf_i64 n, mf_i64 ys,              \
                double minnorm, mf_u64 add, double maxv) {                                \
    mf_i64 j, k, bad = 0;                                                                 \
    (void)minnorm; (void)add;                                                             \
    for (k = 0; k < K; k++) {                                                             \
        const double x0 = xr[k], x1 = xr[K + k], x2 = xr[2 * K + k], x3 = xr[3 * K + k];   \
        const double *MF_RESTRICT yr = y + k * ys;                                        \
        for (j = 0; j < n; j++) {                                                         \
            const double yv = yr[j];                                                      \
            const double r0 = NEXT(o0[j], MF_DMUL(x0, yv));                               \
            const double r1 = NEXT(o1[j], MF_DMUL(x1, yv));                               \
            const double r2 = NEXT(o2[j], MF_DMUL(x2, yv));                               \
            const double r3 = NEXT(o3[j], MF_DMUL(x3, yv));                               \
            if (CHECK) bad |= MF_OUT_OF_RANGE(r0) | MF_OUT_OF_RANGE(r1)                   \
                            | MF_OUT_OF_RANGE(r2) | MF_OUT_OF_RANGE(r3);                  \
            o0[j] = r0; o1[j] = r1; o2[j] = r2; o3[j] = r3;                               \
        }                                                                                 \
    }                                                                                     \
    if (!CHECK) { MF_RESULTS_BAD(o0) MF_RESULTS_BAD(o1) MF_RESULTS_BAD(o2)                \
                  MF_RESULTS_BAD(o3) }                                                    \
    return bad != 0;                                                                      \
}

MF_SEQ1(mf_seq_loop_direct, MF_NEXT_DIRECT, 1)
MF_SEQ1(mf_seq_loop_odd, MF_NEXT_ODD, 1)
MF_SEQ1(mf_seq_loop_direct_bounded, MF_NEXT_DIRECT, 0)
MF_SEQ1(mf_seq_loop_odd_bounded, MF_NEXT_ODD, 0)
MF_SEQ1(mf_seq_loop_f32, MF_NEXT_F32, 0)
MF_SEQ4(mf_seq4_direct, MF_NEXT_DIRECT, 1)
MF_SEQ4(mf_seq4_odd, MF_NEXT_ODD, 1)
MF_SEQ4(mf_seq4_direct_bounded, MF_NEXT_DIRECT, 0)
MF_SEQ4(mf_seq4_odd_bounded, MF_NEXT_ODD, 0)
MF_SEQ4(mf_seq4_f32, MF_NEXT_F32, 0)

MF_FN int mf_ceil_log2(mf_i64 v) { int r = 0; while (((mf_i64)1 << r) < v) r++; return r; }

/* ymax[k] = max_j |y[k*ys + j]| over len columns (a NaN stays NaN) */
MF_FN void mf_column_max(const double *y, mf_i64 ys, mf_i64 K, mf_i64 len, double *ymax) {
    mf_i64 k, j;
    for (k = 0; k < K; k++) {
        double m = 0.0;
        for (j = 0; j < len; j++) {
            double a = mf_fabs(y[k * ys + j]);
            m = (a > m || a != a) ? a : m;
        }
        ymax[k] = m;
    }
}

/* 1 if every partial sum of the fast sequential loop (or node of the fast pairwise
 * tree) for rows xr + q*K (q < rows), against columns whose maxima are
 * ymax[k] = max_j |y_kj|, provably stays in [-max, max].  Each rounded addition is
 * monotone in |a| + |b| and at most (1 + u')(|a| + |b|) plus the quantum below the
 * smallest normal (u' = 2**-precision for RN_A, and 2**-52 for the float64 add, or its
 * rounding to odd, before it); a value is at most `steps` additions above its products
 * (K for sequential, ceil(log2 K) + 1 for pairwise), so with T = sum_k |x_k| ymax_k,
 * |s| <= (1 + u')^steps T + K minnorm, and (1 + u')^S <= 1 + Su' + (Su')^2 for
 * Su' <= 1/2; a last margin covers the float64 sums here.  Non-finite data fail (NaN compares false,
 * and 0 * Inf is NaN). */
MF_FN int mf_rows_bounded(const double *xr, mf_i64 K, mf_i64 rows, const double *ymax,
                          mf_i64 steps, mf_i64 precision, double minnorm, double maxv) {
    double ku, growth, worst = 0.0;
    mf_i64 k, q;
    if (precision < 1 || precision > 50) return 0;
    ku = MF_DMUL((double)steps, MF_DADD(mf_pow2(-(int)precision), mf_pow2(-52)));
    if (!(ku <= 0.5)) return 0;
    growth = 1.0 + ku + ku * ku;
    for (q = 0; q < rows; q++) {
        double t = 0.0;
        for (k = 0; k < K; k++) t += mf_fabs(xr[q * K + k]) * ymax[k];
        if (!(t == t)) return 0;
        if (t > worst) worst = t;
    }
    /* the float64 sum of K non-negative terms: relative error below (K + 1) 2**-52 */
    return (worst * growth * (1.0 + (double)(K + 2) * mf_pow2(-52)) + (double)K * minnorm)
           * (1.0 + mf_pow2(-40)) < maxv;
}

/* Columns [j0, j0 + len) of `rows` (1 or 4) consecutive rows of the fast sequential
 * loop (see mf_sequential_rne_row), rows of length n; `bounded`: mf_rows_bounded holds
 * for these rows and columns; 1 if a value left [-max, max]. */
MF_FN int mf_sequential_rne_tile(const mf_acc *A, const double *xr, const double *yt,
                                 mf_i64 ys, double *out, mf_i64 K, mf_i64 n, mf_i64 j0,
                                 mf_i64 len, int rows, int bounded) {
    /* yt: column j0 of row 0 of y, rows ys apart */
    const mf_i64 *F = A->F;
    const double maxv = mf_double((mf_u64)F[F_MAX_BITS]);
    const double minnorm = mf_double((mf_u64)F[F_MINNORM_BITS]);
    const mf_u64 add = (mf_u64)F[F_MAGIC_ADD];
    mf_i64 j, q;
    double *o = out + j0;
    for (q = 0; q < rows; q++) for (j = 0; j < len; j++) o[q * n + j] = 0.0;
#define MF_TILE_CALL(LOOP1, LOOP4)                                                         \
    return rows == 4 ? LOOP4(o, o + n, o + 2 * n, o + 3 * n, yt, xr, K, len, ys, minnorm,  \
                             add, maxv)                                                    \
                     : LOOP1(o, yt, xr, K, len, ys, minnorm, add, maxv)
    if (F[F_F32]) MF_TILE_CALL(mf_seq_loop_f32, mf_seq4_f32);
    if (A->direct) {
        if (bounded) MF_TILE_CALL(mf_seq_loop_direct_bounded, mf_seq4_direct_bounded);
        MF_TILE_CALL(mf_seq_loop_direct, mf_seq4_direct);
    }
    if (bounded) MF_TILE_CALL(mf_seq_loop_odd_bounded, mf_seq4_odd_bounded);
    MF_TILE_CALL(mf_seq_loop_odd, mf_seq4_odd);
#undef MF_TILE_CALL
}

/* Sequential round-to-nearest-even by two additions (orders._sequential_fast): exact for
 * finite data while no partial sum leaves [-max, max]; returns 1 if one did (or a value
 * was not finite): the caller then redoes the row with mf_sequential_row. */
MF_FN int mf_sequential_rne_row(const mf_acc *A, const double *xr, const double *y,
                                double *out, mf_i64 K, mf_i64 n) {
    const mf_i64 *F = A->F;
    const double maxv = mf_double((mf_u64)F[F_MAX_BITS]);
    const double minnorm = mf_double((mf_u64)F[F_MINNORM_BITS]);
    const mf_u64 add = (mf_u64)F[F_MAGIC_ADD];
    mf_i64 j;
    for (j = 0; j < n; j++) out[j] = 0.0;
    if (F[F_F32]) return mf_seq_loop_f32(out, y, xr, K, n, n, minnorm, add, maxv);
    return A->direct ? mf_seq_loop_direct(out, y, xr, K, n, n, minnorm, add, maxv)
                     : mf_seq_loop_odd(out, y, xr, K, n, n, minnorm, add, maxv);
}

/* The fast pairwise tree (nearest-even by two additions).  A merge of two values of A
 * is RN_A(RN_64(a + b)), one correct rounding (Figueroa: 53 >= 2p + 1, and the float64
 * sum of two values of A neither underflows inexactly nor overflows below A's range);
 * a merge with an unrounded product (fma leaves) goes through to_odd. */
#define MF_MERGE_A(a, b) mf_rne_fast(MF_DADD((a), (b)), minnorm, add)
#define MF_MERGE_ODD(a, b) mf_rne_fast(mf_add_to_odd_fast((a), (b)), minnorm, add)

/* vb[j] = merge(vb[j], vt[j]); `raw`: one of them is an unrounded product */
MF_VEC int mf_merge_fast(double *MF_RESTRICT vb, const double *MF_RESTRICT vt, mf_i64 n,
                        int raw, double minnorm, mf_u64 add, double maxv) {
    mf_i64 j;
    mf_i64 bad = 0;   /* 64-bit, like the lanes: the reduction vectorises */
    if (raw) {
        for (j = 0; j < n; j++) {
            const double t = MF_MERGE_ODD(vb[j], vt[j]);
            bad |= MF_OUT_OF_RANGE(t);
            vb[j] = t;
        }
    } else {
        for (j = 0; j < n; j++) {
            const double t = MF_MERGE_A(vb[j], vt[j]);
            bad |= MF_OUT_OF_RANGE(t);
            vb[j] = t;
        }
    }
    return bad != 0;
}

/* leaves of the fast pairwise tree: v[j] = xv*y[j], rounded (RN_A) when `rounded` */
MF_VEC int mf_leaf_fast(double *MF_RESTRICT v, const double *MF_RESTRICT yr, double xv,
                       mf_i64 n, int rounded, double minnorm, mf_u64 add, double maxv) {
    mf_i64 j;
    mf_i64 bad = 0;   /* 64-bit, like the lanes: the reduction vectorises */
    if (!rounded) {
        for (j = 0; j < n; j++) {
            double p = MF_DMUL(xv, yr[j]);
            bad |= MF_OUT_OF_RANGE(p);            /* also catches Inf/NaN data */
            v[j] = p;
        }
        return bad != 0;
    }
    for (j = 0; j < n; j++) {
        mf_du t;
        t.d = mf_rne_fast(MF_DMUL(xv, yr[j]), minnorm, add);
        bad |= MF_OUT_OF_RANGE(t.d);
        v[j] = t.d;
    }
    return bad != 0;
}

/* Eight leaves k..k+7 merged in registers into their level-3 node: v[j] = the node of
 * x8[i] * y[i*ys + j], i < 8 (LEAF: the product, rounded or not; M0: the level-0
 * merge).  CHECK 0: for rows whose nodes provably stay below max (mf_rows_bounded). */
#define MF_PW8(NAME, LEAF, M0, CHECK)                                                      \
MF_VEC int NAME(double *MF_RESTRICT v, const double *MF_RESTRICT y, mf_i64 ys,            \
                const double *MF_RESTRICT x8, mf_i64 n, double minnorm, mf_u64 add,       \
                double maxv) {                                                            \
    const double x0 = x8[0], x1 = x8[1], x2 = x8[2], x3 = x8[3];                          \
    const double x4 = x8[4], x5 = x8[5], x6 = x8[6], x7 = x8[7];                          \
    mf_i64 j, bad = 0;                                                                    \
    (void)minnorm; (void)add;                                                             \
    for (j = 0; j < n; j++) {                                                             \
        const double p0 = LEAF(x0, y[j]), p1 = LEAF(x1, y[ys + j]);                        \
        const double p2 = LEAF(x2, y[2 * ys + j]), p3 = LEAF(x3, y[3 * ys + j]);           \
        const double p4 = LEAF(x4, y[4 * ys + j]), p5 = LEAF(x5, y[5 * ys + j]);           \
        const double p6 = LEAF(x6, y[6 * ys + j]), p7 = LEAF(x7, y[7 * ys + j]);           \
        const double a = M0(p0, p1), b = M0(p2, p3), c = M0(p4, p5), d = M0(p6, p7);       \
        const double e = MF_MERGE_A(a, b), f = MF_MERGE_A(c, d);                           \
        const double g = MF_MERGE_A(e, f);                                                \
        if (CHECK)                                                                        \
            bad |= MF_OUT_OF_RANGE(p0) | MF_OUT_OF_RANGE(p1) | MF_OUT_OF_RANGE(p2)        \
                 | MF_OUT_OF_RANGE(p3) | MF_OUT_OF_RANGE(p4) | MF_OUT_OF_RANGE(p5)        \
                 | MF_OUT_OF_RANGE(p6) | MF_OUT_OF_RANGE(p7) | MF_OUT_OF_RANGE(a)         \
                 | MF_OUT_OF_RANGE(b) | MF_OUT_OF_RANGE(c) | MF_OUT_OF_RANGE(d)           \
                 | MF_OUT_OF_RANGE(e) | MF_OUT_OF_RANGE(f) | MF_OUT_OF_RANGE(g);          \
        v[j] = g;                                                                         \
    }                                                                                     \
    return bad != 0;                                                                      \
}
#define MF_LEAF_RAW(x, y) MF_DMUL((x), (y))
#define MF_LEAF_ROUNDED(x, y) mf_rne_fast(MF_DMUL((x), (y)), minnorm, add)
MF_PW8(mf_pw8_fma, MF_LEAF_RAW, MF_MERGE_ODD, 1)
MF_PW8(mf_pw8_fma_bounded, MF_LEAF_RAW, MF_MERGE_ODD, 0)
MF_PW8(mf_pw8_rounded, MF_LEAF_ROUNDED, MF_MERGE_A, 1)
MF_PW8(mf_pw8_rounded_bounded, MF_LEAF_ROUNDED, MF_MERGE_A, 0)

/* The pairwise tree with nearest-even rounding by two additions (operands not wide, a
 * format with F[F_MAGIC]): groups of eight leaves through MF_PW8, the rest leaf by leaf;
 * returns 1 where a value left [-max, max] or was not finite (the caller redoes the row
 * with mf_pairwise_row).  ymax: the column maxima of y (mf_column_max), or NULL. */
MF_FN int mf_pairwise_rne_row(const mf_acc *A, const double *xr, const double *y,
                              double *out, mf_i64 K, mf_i64 n, double *stack,
                              const double *ymax) {
    const mf_i64 *F = A->F;
    const double maxv = mf_double((mf_u64)F[F_MAX_BITS]);
    const double minnorm = mf_double((mf_u64)F[F_MINNORM_BITS]);
    const mf_u64 add = (mf_u64)F[F_MAGIC_ADD];
    int level[MF_LEVELS], raw[MF_LEVELS];
    int depth = 0, bad = 0, rounded = !A->fma || K == 1, bounded = 0;
    mf_i64 k, j;
    if (ymax)
        bounded = mf_rows_bounded(xr, K, 1, ymax, mf_ceil_log2(K) + 1, F[F_PRECISION],
                                  minnorm, maxv);
    for (k = 0; k < K; k++) {
        double *v = stack + (mf_i64)depth * n;
        if (k + 8 <= K && (k & 7) == 0) {
            const double *yk = y + k * n;
            if (rounded)
                bad |= bounded ? mf_pw8_rounded_bounded(v, yk, n, xr + k, n, minnorm, add, maxv)
                               : mf_pw8_rounded(v, yk, n, xr + k, n, minnorm, add, maxv);
            else
                bad |= bounded ? mf_pw8_fma_bounded(v, yk, n, xr + k, n, minnorm, add, maxv)
                               : mf_pw8_fma(v, yk, n, xr + k, n, minnorm, add, maxv);
            level[depth] = 3;
            raw[depth++] = 0;
            k += 7;
        } else {
            bad |= mf_leaf_fast(v, y + k * n, xr[k], n, rounded, minnorm, add, maxv);
            level[depth] = 0;
            raw[depth++] = !rounded;
        }
        while (depth >= 2 && level[depth - 1] == level[depth - 2]) {
            bad |= mf_merge_fast(stack + (mf_i64)(depth - 2) * n,
                                 stack + (mf_i64)(depth - 1) * n, n,
                                 raw[depth - 1] || raw[depth - 2], minnorm, add, maxv);
            level[depth - 2]++;
            raw[depth - 2] = 0;
            depth--;
        }
    }
    while (depth >= 2) {
        bad |= mf_merge_fast(stack + (mf_i64)(depth - 2) * n, stack + (mf_i64)(depth - 1) * n,
                             n, raw[depth - 1] || raw[depth - 2], minnorm, add, maxv);
        level[depth - 2]++;
        raw[depth - 2] = 0;
        depth--;
    }
    for (j = 0; j < n; j++) out[j] = stack[j];
    return bad;
}

/* ---- certified float64 block sums (blocked, exact) ---------------------------------
 * Over a block of terms, x_k (one row) and y_kj (one column) have magnitudes below
 * 2**ex, 2**ey and lowest set bits at or above 2**lx, 2**ly.  Every product is then a
 * multiple of 2**(lx+ly) below 2**(ex+ey), and their sum in any order stays a multiple of
 * 2**(lx+ly) below b * 2**(ex+ey): when that is at most 2**(lx+ly+53), lx + ly >= -1074
 * and ex + ey + log2(b) <= 1023, plain float64 addition computes the block sum exactly. */
typedef struct { int ex, lx, zero, bad; } mf_span;   /* bad: Inf or NaN met */

MF_FN void mf_span_clear(mf_span *s) { s->ex = -4000; s->lx = 4000; s->zero = 1; s->bad = 0; }
MF_FN void mf_span_add(mf_span *s, double v) {
    mf_u64 b = mf_bits(v) & MF_ABS;
    int ef = (int)(b >> 52), e, low;
    mf_u64 m;
    if (b == 0) return;
    if (ef == 0x7FF) { s->bad = 1; return; }
    s->zero = 0;
    if (ef == 0) { m = b; e = -1074; } else { m = (b & MF_FRAC) | (1ULL << 52); e = ef - 1075; }
    low = e + (63 - mf_clz64(m & (~m + 1ULL)));          /* the lowest set bit */
    e = e + 64 - mf_clz64((b & MF_FRAC) | (ef ? (1ULL << 52) : 0ULL));   /* |v| < 2**e */
    if (e > s->ex) s->ex = e;
    if (low < s->lx) s->lx = low;
}
/* the certificate for a block of `count` terms */
MF_FN int mf_span_exact(const mf_span *a, const mf_span *b, int log2count) {
    if (a->bad || b->bad) return 0;
    if (a->zero || b->zero) return 1;
    return a->ex + b->ex + log2count <= a->lx + b->lx + 53 && a->lx + b->lx >= -1074
        && a->ex + b->ex + log2count <= 1023;
}

/* the block sums of one row: bs[j] = sum over k0 <= k < k1 of xr[k] * y[k][j] in plain
 * float64 (exact where the caller's certificate holds) */
MF_VEC void mf_block_sums_fast(double *MF_RESTRICT bs, const double *MF_RESTRICT xr,
                              const double *MF_RESTRICT y, mf_i64 k0, mf_i64 k1, mf_i64 n) {
    mf_i64 k, j;
    for (j = 0; j < n; j++) bs[j] = 0.0;
    for (k = k0; k < k1; k++) {
        const double xv = xr[k];
        const double *MF_RESTRICT yr = y + k * n;
        for (j = 0; j < n; j++) bs[j] = MF_DADD(bs[j], MF_DMUL(xv, yr[j]));
    }
}

/* the spans of y's columns over every block: spans[jb * n + j] */
MF_FN void mf_column_spans(mf_span *spans, const double *y, mf_i64 K, mf_i64 n, mf_i64 b) {
    mf_i64 k, j, jb = 0, k0;
    for (k0 = 0; k0 < K; k0 += b, jb++) {
        mf_i64 k1 = k0 + b < K ? k0 + b : K;
        for (j = 0; j < n; j++) mf_span_clear(&spans[jb * n + j]);
        for (k = k0; k < k1; k++)
            for (j = 0; j < n; j++) mf_span_add(&spans[jb * n + j], y[k * n + j]);
    }
}

/* the exact block sum of output j over [k0, k1), RN_64 (its non-finite rule as above);
 * ops_finite: whether every operand was finite */
MF_FN double mf_block_sum_exact(const double *xr, const double *y, mf_i64 k0, mf_i64 k1,
                                mf_i64 n, mf_i64 j, mf_kul *kul, int *ops_finite) {
    mf_special sp = {0, 0, 0};
    int finite = 1;
    mf_i64 k;
    double odd, near;
    mf_kul_clear(kul);
    for (k = k0; k < k1; k++) {
        double xv = xr[k], yv = y[k * n + j];
        if (!(mf_isfinite(xv) && mf_isfinite(yv))) finite = 0;
        else mf_kul_add_prod(kul, xv, yv);
    }
    *ops_finite = finite;
    if (finite) { mf_kul_result(kul, &odd, &near); return near; }
    for (k = k0; k < k1; k++) mf_special_add(&sp, MF_DMUL(xr[k], y[k * n + j]));
    return mf_special_value(&sp);
}

/* dst[j] = RN_A(bs[j]) (first block) or RN_A(s[j] + RN_A(bs[j])): the roundings of
 * blocked in nearest-even by two additions; nonzero if a value left [-max, max] */
MF_VEC int mf_block_round_fast(double *MF_RESTRICT dst, const double *MF_RESTRICT s,
                               const double *MF_RESTRICT bs, mf_i64 n, int first,
                               double minnorm, mf_u64 add, double maxv) {
    mf_i64 j;
    mf_i64 bad = 0;
    for (j = 0; j < n; j++) {
        mf_du t;
        t.d = mf_rne_fast(bs[j], minnorm, add);
        bad |= (mf_i64)!(MF_VFABS(t.d) <= maxv);
        if (!first) {
            t.d = mf_rne_fast(mf_add_to_odd_fast(s[j], t.d), minnorm, add);
            bad |= (mf_i64)!(MF_VFABS(t.d) <= maxv);
        }
        dst[j] = t.d;
    }
    return bad != 0;
}

/* blocked with fma: certified block sums, any accumulator and rounding mode; bs: 2n
 * doubles of scratch */
MF_FN void mf_blocked_fma_row(const mf_acc *A, const double *xr, const double *y, double *out,
                              mf_i64 K, mf_i64 n, mf_i64 b, mf_u64 o0, double *bs,
                              const mf_span *cspans, mf_kul *kul) {
    const mf_i64 *F = A->F;
    int sr = A->mode == MF_SR, flagged = mf_flagged64(F);
    int fast = A->mode == MF_RNE && F[F_MAGIC] != 0;
    const double maxv = mf_double((mf_u64)F[F_MAX_BITS]);
    const double minnorm = mf_double((mf_u64)F[F_MINNORM_BITS]);
    const mf_u64 add = (mf_u64)F[F_MAGIC_ADD];
    mf_i64 k0, k, j, jb = 0;
    for (k0 = 0; k0 < K; k0 += b, jb++) {
        mf_i64 k1 = k0 + b < K ? k0 + b : K;
        int lg = mf_ceil_log2(k1 - k0);
        mf_span xs;
        mf_u64 ek1 = sr ? mf_event_key(A->key, 4 * (mf_u64)jb + 1) : 0;
        mf_u64 ek2 = sr ? mf_event_key(A->key, 4 * (mf_u64)jb + 2) : 0;
        mf_span_clear(&xs);
        for (k = k0; k < k1; k++) mf_span_add(&xs, xr[k]);
        mf_block_sums_fast(bs, xr, y, k0, k1, n);
        if (fast) {                  /* nearest-even: fix the uncertified sums, round fast */
            int ops_finite;
            for (j = 0; j < n; j++)
                if (!mf_span_exact(&xs, &cspans[jb * n + j], lg))
                    bs[j] = mf_block_sum_exact(xr, y, k0, k1, n, j, kul, &ops_finite);
            if (!mf_block_round_fast(bs + n, out, bs, n, k0 == 0, minnorm, add, maxv)) {
                for (j = 0; j < n; j++) out[j] = bs[n + j];
                continue;
            }
        }
        for (j = 0; j < n; j++) {
            double v = bs[j];
            int ops_finite = 1;
            if (!fast && !mf_span_exact(&xs, &cspans[jb * n + j], lg))
                v = mf_block_sum_exact(xr, y, k0, k1, n, j, kul, &ops_finite);
            else if (fast && !mf_isfinite(v))
                ops_finite = 0;        /* (not used: nearest-even formats here are narrow) */
            if (flagged) v = mf_finite_overflow(F, v, ops_finite);
            v = (F[F_PRECISION] >= 53) ? mf_round(F, v, MF_RNE, 0)
                                       : mf_round(F, v, A->mode, sr ? mf_word_at(ek1, o0 + (mf_u64)j * A->ocol) : 0);
            out[j] = (k0 == 0) ? v
                               : mf_add_round(A, out[j], v, sr ? mf_word_at(ek2, o0 + (mf_u64)j * A->ocol) : 0);
        }
    }
}

/* exact: certified float64 chunk sums carried into one Kulisch accumulator per output
 * (kuls: n of them, initialised) */
MF_FN void mf_exact_fast_row(const double *xr, const double *y, double *odd, double *near,
                             mf_i64 K, mf_i64 n, mf_i64 b, double *bs, const mf_span *cspans,
                             mf_kul *kuls, unsigned char *special) {
    mf_i64 k0, k, j, jb = 0;
    for (j = 0; j < n; j++) { mf_kul_clear(&kuls[j]); special[j] = 0; }
    for (k0 = 0; k0 < K; k0 += b, jb++) {
        mf_i64 k1 = k0 + b < K ? k0 + b : K;
        int lg = mf_ceil_log2(k1 - k0);
        mf_span xs;
        mf_span_clear(&xs);
        for (k = k0; k < k1; k++) mf_span_add(&xs, xr[k]);
        mf_block_sums_fast(bs, xr, y, k0, k1, n);
        for (j = 0; j < n; j++) {
            if (special[j]) continue;
            if (mf_span_exact(&xs, &cspans[jb * n + j], lg)) {
                if (bs[j] != 0.0) mf_kul_add_double(&kuls[j], bs[j]);
                continue;
            }
            for (k = k0; k < k1; k++) {
                double xv = xr[k], yv = y[k * n + j];
                if (!(mf_isfinite(xv) && mf_isfinite(yv))) { special[j] = 1; break; }
                mf_kul_add_prod(&kuls[j], xv, yv);
            }
        }
    }
    for (j = 0; j < n; j++) {
        if (!special[j]) { mf_kul_result(&kuls[j], &odd[j], &near[j]); continue; }
        {
            mf_special sp = {0, 0, 0};
            for (k = 0; k < K; k++) mf_special_add(&sp, MF_DMUL(xr[k], y[k * n + j]));
            odd[j] = near[j] = mf_special_value(&sp);
        }
    }
}

/* ---- pairwise -------------------------------------------------------------------- */
typedef struct { int level; mf_i64 start; int leaf; } mf_node;

/* merge entry `top` into `below` (values at vb, vt); result in vb */
MF_FN void mf_pairwise_merge(const mf_acc *A, mf_node *below, const mf_node *top,
                             double *vb, const double *vt, const double *xr,
                             const double *y, mf_i64 n, mf_u64 o0, mf_kul *kul) {
    int L = below->level + 1;
    mf_u64 ev = ((((mf_u64)L) << 32) | ((mf_u64)below->start >> L)) * 4ULL + 3ULL;
    int sr = A->mode == MF_SR;
    mf_u64 ek = sr ? mf_event_key(A->key, ev) : 0;
    mf_i64 j;
    for (j = 0; j < n; j++) {
        mf_u64 w = sr ? mf_word_at(ek, o0 + (mf_u64)j * A->ocol) : 0;
        if (A->wide && top->leaf) {          /* exact products still pending */
            double odd;
            if (below->leaf)
                odd = mf_pair_to_odd(kul, xr[below->start], y[below->start * n + j],
                                     xr[top->start], y[top->start * n + j]);
            else
                odd = mf_pair_to_odd(kul, vb[j], 1.0, xr[top->start], y[top->start * n + j]);
            vb[j] = mf_round(A->F, odd, A->mode, w);
        } else {
            vb[j] = mf_add_round(A, vb[j], vt[j], w);
        }
    }
    below->level = L;
    below->leaf = 0;
}

/* stack: MF_LEVELS * n doubles of scratch */
MF_FN void mf_pairwise_row(const mf_acc *A, const double *xr, const double *y,
                           double *out, mf_i64 K, mf_i64 n, mf_u64 o0, double *stack,
                           mf_kul *kul) {
    mf_node nodes[MF_LEVELS];
    int depth = 0, sr = A->mode == MF_SR;
    int rounded_leaves = !A->fma || K == 1;
    mf_i64 k, j;
    for (k = 0; k < K; k++) {
        double *v = stack + (mf_i64)depth * n;
        const double *yr = y + k * n;
        double xv = xr[k];
        mf_u64 ek = sr ? mf_event_key(A->key, 4 * (mf_u64)k) : 0;
        for (j = 0; j < n; j++) {
            double p;
            if (A->wide) {
                if (rounded_leaves) p = mf_round(A->F, mf_prod_to_odd(kul, xv, yr[j]), A->mode,
                                                 sr ? mf_word_at(ek, o0 + (mf_u64)j * A->ocol) : 0);
                else p = 0.0;                  /* the product stays (x_k, y_k) */
            } else {
                p = MF_DMUL(xv, yr[j]);
                if (rounded_leaves) p = mf_round(A->F, p, A->mode, sr ? mf_word_at(ek, o0 + (mf_u64)j * A->ocol) : 0);
            }
            v[j] = p;
        }
        nodes[depth].level = 0;
        nodes[depth].start = k;
        nodes[depth].leaf = A->wide && !rounded_leaves;
        depth++;
        while (depth >= 2 && nodes[depth - 1].level == nodes[depth - 2].level) {
            mf_pairwise_merge(A, &nodes[depth - 2], &nodes[depth - 1],
                              stack + (mf_i64)(depth - 2) * n, stack + (mf_i64)(depth - 1) * n,
                              xr, y, n, o0, kul);
            depth--;
        }
    }
    while (depth >= 2) {                     /* the odd ends meet, right to left */
        mf_pairwise_merge(A, &nodes[depth - 2], &nodes[depth - 1],
                          stack + (mf_i64)(depth - 2) * n, stack + (mf_i64)(depth - 1) * n,
                          xr, y, n, o0, kul);
        depth--;
    }
    for (j = 0; j < n; j++) out[j] = stack[j];
}

/* ---- blocked --------------------------------------------------------------------- */
/* bs: n doubles of scratch.  Block sums are RN_64 of the exact sum of the block's exact
 * products (fma) or of its products rounded to A (no fma). */
MF_FN void mf_blocked_row(const mf_acc *A, const double *xr, const double *y, double *out,
                          mf_i64 K, mf_i64 n, mf_i64 b, mf_u64 o0, double *bs, mf_kul *kul) {
    const mf_i64 *F = A->F;
    int sr = A->mode == MF_SR, flagged = mf_flagged64(F);
    mf_i64 k0, k, j, jb = 0;
    for (k0 = 0; k0 < K; k0 += b, jb++) {
        mf_i64 k1 = k0 + b < K ? k0 + b : K;
        mf_u64 ek1 = sr ? mf_event_key(A->key, 4 * (mf_u64)jb + 1) : 0;
        mf_u64 ek2 = sr ? mf_event_key(A->key, 4 * (mf_u64)jb + 2) : 0;
        for (j = 0; j < n; j++) {
            mf_special sp = {0, 0, 0};
            int finite = 1, operands_finite = 1;
            double odd, near, v;
            mf_kul_clear(kul);
            for (k = k0; k < k1; k++) {
                double xv = xr[k], yv = y[k * n + j];
                operands_finite &= mf_isfinite(xv) && mf_isfinite(yv);
                if (!A->fma) {
                    double p = A->wide ? mf_prod_to_odd(kul + 1, xv, yv)
                                                                : MF_DMUL(xv, yv);
                    p = mf_round(F, p, A->mode,
                                 sr ? mf_word(A->key, 4 * (mf_u64)k, o0 + (mf_u64)j * A->ocol) : 0);
                    if (!mf_isfinite(p)) { finite = 0; mf_special_add(&sp, p); }
                    else mf_kul_add_double(kul, p);
                } else if (!(mf_isfinite(xv) && mf_isfinite(yv))) {
                    finite = 0;
                    mf_special_add(&sp, MF_DMUL(xv, yv));
                } else {
                    mf_kul_add_prod(kul, xv, yv);
                }
            }
            if (!finite) {
                /* the other products still count: a finite one that overflows is Inf */
                if (A->fma)
                    for (k = k0; k < k1; k++) mf_special_add(&sp, MF_DMUL(xr[k], y[k * n + j]));
                v = mf_special_value(&sp);
            } else {
                mf_kul_result(kul, &odd, &near);
                v = near;
            }
            if (flagged) v = mf_finite_overflow(F, v, operands_finite);
            v = (F[F_PRECISION] >= 53) ? mf_round(F, v, MF_RNE, 0)
                                       : mf_round(F, v, A->mode, sr ? mf_word_at(ek1, o0 + (mf_u64)j * A->ocol) : 0);
            bs[j] = v;
        }
        for (j = 0; j < n; j++)
            out[j] = (k0 == 0) ? bs[j]
                               : mf_add_round(A, out[j], bs[j], sr ? mf_word_at(ek2, o0 + (mf_u64)j * A->ocol) : 0);
    }
}

/* ---- exact ----------------------------------------------------------------------- */
MF_FN void mf_exact_row(const double *xr, const double *y, double *odd, double *near,
                        mf_i64 K, mf_i64 n, mf_kul *kul) {
    mf_i64 k, j;
    for (j = 0; j < n; j++) {
        int finite = 1;
        mf_kul_clear(kul);
        for (k = 0; k < K; k++) {
            double xv = xr[k], yv = y[k * n + j];
            if (!(mf_isfinite(xv) && mf_isfinite(yv))) { finite = 0; break; }
            mf_kul_add_prod(kul, xv, yv);
        }
        if (finite) {
            mf_kul_result(kul, &odd[j], &near[j]);
        } else {
            mf_special sp = {0, 0, 0};
            for (k = 0; k < K; k++) mf_special_add(&sp, MF_DMUL(xr[k], y[k * n + j]));
            odd[j] = near[j] = mf_special_value(&sp);
        }
    }
}
#endif
