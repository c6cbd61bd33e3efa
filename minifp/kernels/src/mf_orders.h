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

typedef struct {
    const mf_i64 *F;     /* accumulator format */
    int mode, fma, wide, direct;
    mf_u64 key;
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
            mf_u64 wp = sr ? mf_word_at(ek_p, o0 + j) : 0, ws = sr ? mf_word_at(ek_s, o0 + j) : 0;
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

/* to_odd(two_sum(s, p)) without branches, for the fast loops (finite s, p) */
MF_FN double mf_add_to_odd_fast(double s, double p) {
    double e, t = mf_two_sum(s, p, &e);
    mf_u64 b = mf_bits(t);
    mf_u64 fix = (mf_u64)0 - (mf_u64)(((e > 0) | (e < 0)) & ((b & 1ULL) == 0));
    mf_u64 away = (mf_u64)((e > 0) == (t > 0));
    b += fix & (away ? 1ULL : ~0ULL);
    return mf_double(b);
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
    mf_i64 k, j;
    int bad = 0;
    for (j = 0; j < n; j++) out[j] = 0.0;
    for (k = 0; k < K; k++) {
        const double xv = xr[k];
        const double *yr = y + k * n;
        int badk = 0;
        if (A->direct) {
            for (j = 0; j < n; j++) {
                double t = MF_DADD(out[j], MF_DMUL(xv, yr[j]));
                double c = mf_double(mf_bits(t) & MF_EXP);
                c = c < minnorm ? minnorm : c;
                c = mf_double(mf_bits(c) + add);
                t = MF_DSUB(MF_DADD(t, c), c);
                badk |= !(mf_fabs(t) <= maxv);
                out[j] = t;
            }
        } else {
            for (j = 0; j < n; j++) {
                double t = mf_add_to_odd_fast(out[j], MF_DMUL(xv, yr[j]));
                double c = mf_double(mf_bits(t) & MF_EXP);
                c = c < minnorm ? minnorm : c;
                c = mf_double(mf_bits(c) + add);
                t = MF_DSUB(MF_DADD(t, c), c);
                badk |= !(mf_fabs(t) <= maxv);
                out[j] = t;
            }
        }
        bad |= badk;
    }
    return bad;
}

/* ---- pairwise -------------------------------------------------------------------- */
#define MF_LEVELS 66
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
        mf_u64 w = sr ? mf_word_at(ek, o0 + j) : 0;
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
                                                 sr ? mf_word_at(ek, o0 + j) : 0);
                else p = 0.0;                  /* the product stays (x_k, y_k) */
            } else {
                p = MF_DMUL(xv, yr[j]);
                if (rounded_leaves) p = mf_round(A->F, p, A->mode, sr ? mf_word_at(ek, o0 + j) : 0);
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
                                 sr ? mf_word(A->key, 4 * (mf_u64)k, o0 + j) : 0);
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
                                       : mf_round(F, v, A->mode, sr ? mf_word_at(ek1, o0 + j) : 0);
            bs[j] = v;
        }
        for (j = 0; j < n; j++)
            out[j] = (k0 == 0) ? bs[j]
                               : mf_add_round(A, out[j], bs[j], sr ? mf_word_at(ek2, o0 + j) : 0);
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
