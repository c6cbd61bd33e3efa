/* Error-free transformations and the exact (Kulisch) accumulator, as in
 * minifp/accumulate/exactsum.py: TwoSum, rounding to odd, Dekker's TwoProduct, and an
 * accumulator of 32-bit digits in int64 limbs that holds any sum of products of finite
 * float64 values exactly.  Its value is read out rounded to odd and to nearest-even in
 * float64 (correctly also in the float64 subnormal range). */
#ifndef MF_EXACT_H
#define MF_EXACT_H
#include "mf_port.h"

MF_FN double mf_two_sum(double a, double b, double *err) {
    double s = MF_DADD(a, b);
    double bb = MF_DSUB(s, a);
    *err = MF_DADD(MF_DSUB(a, MF_DSUB(s, bb)), MF_DSUB(b, bb));
    return s;
}

/* s rounded to odd given the exact error e of s = RN(s + e); non-finite s stays */
MF_FN double mf_to_odd(double s, double e) {
    mf_u64 b = mf_bits(s);
    if ((e > 0 || e < 0) && (b & 1ULL) == 0) {
        if ((b & MF_ABS) == 0) return e > 0 ? mf_double(1ULL) : mf_double(MF_SIGN | 1ULL);
        /* one ulp toward e: away from zero when e has s's sign */
        if ((e > 0) == (s > 0)) b += 1ULL; else b -= 1ULL;
        return mf_double(b);
    }
    return s;
}

/* r, or +-DBL_MAX where r is infinite although every operand was finite */
MF_FN double mf_odd_overflow(double r, int finite_operands) {
    if (finite_operands && mf_isinf(r)) return mf_copysign(mf_double(MF_DBL_MAX_BITS), r);
    return r;
}

MF_FN double mf_add_to_odd(double a, double b) {
    double e, s = mf_two_sum(a, b, &e);
    return mf_odd_overflow(mf_to_odd(s, e), mf_isfinite(a) && mf_isfinite(b));
}

#define MF_SPLITTER 134217729.0
MF_FN void mf_split(double a, double *hi, double *lo) {
    double c = MF_DMUL(MF_SPLITTER, a);
    *hi = MF_DSUB(c, MF_DSUB(c, a));
    *lo = MF_DSUB(a, *hi);
}
MF_FN double mf_two_prod(double a, double b, double *err) {
    double p = MF_DMUL(a, b), ah, al, bh, bl;
    mf_split(a, &ah, &al);
    mf_split(b, &bh, &bl);
    *err = MF_DADD(MF_DADD(MF_DADD(MF_DSUB(MF_DMUL(ah, bh), p), MF_DMUL(ah, bl)),
                          MF_DMUL(al, bh)), MF_DMUL(al, bl));
    return p;
}
/* TwoProduct is exact for this pair (exactsum.prod_safe, per pair): finite, |a|,|b| <
 * 2**995, |ab| < 2**1020 and |ab| >= 2**-968 or a zero factor */
MF_FN int mf_prod_safe(double a, double b) {
    double aa = mf_fabs(a), bb = mf_fabs(b);
    if (!mf_isfinite(a) || !mf_isfinite(b)) return 0;
    if (aa == 0 || bb == 0) return 1;
    return aa < mf_pow2(995) && bb < mf_pow2(995) && MF_DMUL(aa, bb) < mf_pow2(1020)
        && MF_DMUL(aa, bb) >= mf_pow2(-968);
}

/* a + b + c rounded to odd, finite, with b = RN(b + c) (exactsum.add3_to_odd) */
MF_FN double mf_add3_to_odd(double a, double b, double c) {
    double e1, e2, e3;
    double u = mf_two_sum(a, b, &e1);
    double v = mf_two_sum(e1, c, &e2);
    double w = mf_two_sum(u, v, &e3);
    return mf_odd_overflow(mf_to_odd(w, MF_DADD(e3, e2)), 1);
}

/* ---- the Kulisch accumulator ------------------------------------------------------
 * value = sum_i limb[i] * 2**(32 i + MF_KBASE); limbs hold signed carries until
 * mf_kul_normalise.  Products of finite float64 values reach 2**-2148; sums stay below
 * 2**(2048 + 64). */
#define MF_KBASE (-2176)
#define MF_KLIMBS 138
typedef struct { mf_i64 limb[MF_KLIMBS]; int lo, hi; mf_i64 adds; } mf_kul;
/* a new accumulator must be zeroed once (mf_kul_init); mf_kul_clear then resets only the
 * limbs that were touched */
MF_FN void mf_kul_init(mf_kul *k) {
    int i;
    for (i = 0; i < MF_KLIMBS; i++) k->limb[i] = 0;
    k->lo = MF_KLIMBS; k->hi = -1; k->adds = 0;
}

MF_FN void mf_kul_clear(mf_kul *k) {
    int i;
    if (k->hi >= 0) for (i = k->lo; i <= k->hi; i++) k->limb[i] = 0;
    k->lo = MF_KLIMBS; k->hi = -1; k->adds = 0;
}

/* carry so that limbs lo .. hi-1 are digits in [0, 2**32) and limb hi holds the rest,
 * signed (its sign is the value's); a borrow never walks past hi */
MF_FN void mf_kul_normalise(mf_kul *k) {
    int i;
    if (k->hi < 0) return;
    for (i = k->lo; i < k->hi; i++) {
        mf_i64 v = k->limb[i];
        mf_i64 carry = (v >= 0) ? (v >> 32) : -((-v + 0xFFFFFFFFLL) >> 32);  /* floor */
        k->limb[i] = v - carry * 4294967296LL;
        k->limb[i + 1] += carry;
    }
    k->adds = 0;
}

/* with a non-negative top limb: carry it into digits upward (hi grows) */
MF_FN void mf_kul_spread_top(mf_kul *k) {
    while (k->hi < MF_KLIMBS - 1 && k->limb[k->hi] >= 4294967296LL) {
        mf_i64 v = k->limb[k->hi];
        k->limb[k->hi] = v & 0xFFFFFFFFLL;
        k->limb[k->hi + 1] += v >> 32;
        k->hi++;
    }
}

/* add (negative: subtract) the unsigned v * 2**pos, pos relative to MF_KBASE */
MF_FN void mf_kul_add_u64(mf_kul *k, mf_u64 v, int pos, int negative) {
    int idx = pos >> 5, sh = pos & 31;
    mf_i64 d0 = (mf_i64)((v << sh) & 0xFFFFFFFFULL);
    mf_i64 d1 = (mf_i64)((sh ? (v >> (32 - sh)) : (v >> 32)) & 0xFFFFFFFFULL);
    mf_i64 d2 = (mf_i64)(sh ? (v >> (64 - sh)) : 0ULL);
    if (v == 0) return;
    if (negative) { d0 = -d0; d1 = -d1; d2 = -d2; }
    k->limb[idx] += d0; k->limb[idx + 1] += d1; k->limb[idx + 2] += d2;
    if (idx < k->lo) k->lo = idx;
    if (idx + 2 > k->hi) k->hi = idx + 2;
    if (++k->adds >= (1LL << 26)) mf_kul_normalise(k);
}

/* integer significand and exponent of its last bit: |a| = m * 2**e (finite a) */
MF_FN mf_u64 mf_decompose(double a, int *e) {
    mf_u64 b = mf_bits(a) & MF_ABS;
    int ef = (int)(b >> 52);
    if (ef == 0) { *e = -1074; return b; }
    *e = ef - 1075;
    return (b & MF_FRAC) | (1ULL << 52);
}

MF_FN void mf_kul_add_double(mf_kul *k, double a) {
    int e;
    mf_u64 m = mf_decompose(a, &e);
    mf_kul_add_u64(k, m, e - MF_KBASE, (mf_bits(a) >> 63) != 0);
}

/* add the exact product a*b of finite doubles */
MF_FN void mf_kul_add_prod(mf_kul *k, double a, double b) {
    int ea, eb, pos, neg = ((mf_bits(a) ^ mf_bits(b)) >> 63) != 0;
    mf_u64 ma = mf_decompose(a, &ea), mb = mf_decompose(b, &eb);
    mf_u64 a0 = ma & 0xFFFFFFFFULL, a1 = ma >> 32, b0 = mb & 0xFFFFFFFFULL, b1 = mb >> 32;
    if (ma == 0 || mb == 0) return;
    pos = ea + eb - MF_KBASE;
    mf_kul_add_u64(k, a0 * b0, pos, neg);
    mf_kul_add_u64(k, a0 * b1, pos + 32, neg);
    mf_kul_add_u64(k, a1 * b0, pos + 32, neg);
    mf_kul_add_u64(k, a1 * b1, pos + 64, neg);
}

/* `count` <= 54 bits of the normalised non-negative value starting at bit `pos` (bits
 * outside the digits are 0): three 32-bit digits cover any such window */
MF_FN mf_u64 mf_kul_bits(const mf_kul *k, int pos, int count) {
    int idx = pos >> 5, sh = pos & 31, i;
    mf_u64 d[3], v;
    for (i = 0; i < 3; i++)
        d[i] = (idx + i >= 0 && idx + i < MF_KLIMBS) ? (mf_u64)k->limb[idx + i] : 0ULL;
    v = (d[0] >> sh) | (d[1] << (32 - sh));
    if (sh) v |= d[2] << (64 - sh);
    return count >= 64 ? v : (v & ((1ULL << count) - 1ULL));
}
/* whether any bit below position `pos` is set */
MF_FN int mf_kul_any_below(const mf_kul *k, int pos) {
    int i, idx;
    if (pos <= 0) return 0;
    idx = pos >> 5;
    for (i = k->lo; i < idx && i < MF_KLIMBS; i++) if (k->limb[i]) return 1;
    if (idx < MF_KLIMBS && (pos & 31))
        return (k->limb[idx] & ((1LL << (pos & 31)) - 1)) != 0;
    return 0;
}

/* the exact value rounded to odd (*odd) and to nearest-even (*near), float64 */
MF_FN void mf_kul_result(mf_kul *k, double *odd, double *near) {
    int i, top, msb, lsb, drop, negative = 0;
    mf_u64 mant, rbit;
    int sticky, inexact;
    mf_kul_normalise(k);
    if (k->hi >= 0 && k->limb[k->hi] < 0) {     /* negative: negate, carry again */
        negative = 1;
        for (i = k->lo; i <= k->hi; i++) k->limb[i] = -k->limb[i];
        mf_kul_normalise(k);
    }
    mf_kul_spread_top(k);
    top = -1;
    for (i = (k->hi < MF_KLIMBS ? k->hi : MF_KLIMBS - 1); i >= 0 && i >= k->lo; i--)
        if (k->limb[i]) { top = i; break; }
    if (top < 0) { *odd = 0.0; *near = 0.0; return; }
    msb = top * 32 + (63 - mf_clz64((mf_u64)k->limb[top]));   /* position of the top bit */
    lsb = msb - 52;
    if (lsb + MF_KBASE < -1074) lsb = -1074 - MF_KBASE;        /* float64 subnormals */
    drop = lsb;                                                /* bits below the result */
    mant = mf_kul_bits(k, lsb, 53);
    rbit = drop >= 1 ? mf_kul_bits(k, lsb - 1, 1) : 0;
    sticky = mf_kul_any_below(k, lsb - 1);
    inexact = rbit || sticky;
    {
        int e = lsb + MF_KBASE;          /* exponent of the result's last bit */
        mf_u64 om = mant | (mf_u64)inexact;
        mf_u64 nm = mant + (mf_u64)(rbit && (sticky || (mant & 1ULL)));
        *odd = mf_double(0);  *near = mf_double(0);
        /* build m * 2**e, m < 2**54 */
        {
            mf_u64 ms[2] = {om, nm};
            double out[2];
            int j;
            for (j = 0; j < 2; j++) {
                mf_u64 m = ms[j];
                int ee = e;
                if (m >> 53) { m >>= 1; ee += 1; }      /* nm carried to 2**53 (even) */
                if (m == 0) out[j] = 0.0;
                else if (m < (1ULL << 52)) out[j] = mf_double(m);   /* subnormal, e=-1074 */
                else if (ee + 52 > 1023) out[j] = mf_double(j == 0 ? MF_DBL_MAX_BITS : MF_INF_BITS);
                else out[j] = mf_double(((mf_u64)(ee + 52 + 1023) << 52) | (m & MF_FRAC));
            }
            *odd = negative ? -out[0] : out[0];
            *near = negative ? -out[1] : out[1];
        }
    }
}
#endif
