/* Rounding a float64 value to a format described by an int64 parameter block, in every
 * mode, bit for bit as the NumPy reference (minifp/formats/ieee.py, posit.py) rounds
 * float64 data: the work type is binary64 and the rounding acts on its bit pattern.
 *
 * Stochastic rounding consumes one 64-bit word per rounded value, mf_word(key, event,
 * index): a SplitMix64 finaliser of the event key and the element index (the stream of
 * minifp/formats/stream.py). */
#ifndef MF_ROUND_H
#define MF_ROUND_H
#include "mf_port.h"

/* modes (minifp.formats.Rounding, in declaration order) */
#define MF_RNE 0
#define MF_RNA 1
#define MF_RTZ 2
#define MF_UP 3
#define MF_DOWN 4
#define MF_ODD 5
#define MF_SR 6

/* the format parameter block (minifp/kernels/params.py writes it) */
#define F_KIND 0          /* 0: IEEE-like eXmY, 1: posit */
#define F_MBITS 1
#define F_S0 2            /* 52 - mbits */
#define F_EMIN_W 3        /* emin + 1023 */
#define F_MAX_BITS 4      /* float64 pattern of max */
#define F_MINNORM_BITS 5  /* float64 pattern of the smallest normal */
#define F_Q_BITS 6        /* float64 pattern of the subnormal quantum q */
#define F_HALF_Q_BITS 7
#define F_QEXP 8          /* q = 2**qexp */
#define F_PARITY 9        /* p = 1 formats: parity of the exponent-field offset */
#define F_SUBNORMALS 10
#define F_HAS_INF 11
#define F_NEGZERO 12      /* has a negative zero */
#define F_OVERFLOW 13     /* 0: Inf, 1: NaN, 2: saturate */
#define F_MAGIC 14        /* 1: round_rne by addition is valid (subnormals, c finite) */
#define F_MAGIC_ADD 15
#define F_N 16            /* posit n */
#define F_ES 17
#define F_MAX_SCALE 18
#define F_FRAC_KEEP 19
#define F_PRECISION 20
#define F_PLAIN64 21      /* float64 with subnormals and Inf overflow */
#define F_F32 22          /* IEEE binary32 itself: RN to it is the hardware conversion */
#define F_UNDERFLOW 23    /* posit(n,es):underflow, PositNN's variant (posit.py) */
#define F_LEN 24

#define MF_OVER_INF 0
#define MF_OVER_NAN 1
#define MF_OVER_SAT 2

/* ---- the random stream ---------------------------------------------------------- */
MF_FN mf_u64 mf_mix(mf_u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
MF_FN mf_u64 mf_event_key(mf_u64 key, mf_u64 event) {
    return mf_mix(key + (event + 1ULL) * 0xD1B54A32D192ED03ULL);
}
MF_FN mf_u64 mf_word_at(mf_u64 event_key, mf_u64 index) {
    return mf_mix(event_key + (index + 1ULL) * 0x9E3779B97F4A7C15ULL);
}
MF_FN mf_u64 mf_word(mf_u64 key, mf_u64 event, mf_u64 index) {
    return mf_word_at(mf_event_key(key, event), index);
}
/* the word's top 53 bits as a double in [0, 1) */
MF_FN double mf_unit(mf_u64 word) {
    return MF_DMUL((double)(mf_i64)(word >> 11), 1.1102230246251565e-16);
}

/* ---- rounding a pattern by clearing its low s bits (bitround.round_pattern) ------- */
MF_FN mf_u64 mf_round_pattern(mf_u64 pat, int s, int mode, int negative, mf_u64 word,
                              mf_u64 parity) {
    mf_u64 mask = (s >= 64) ? ~0ULL : ((1ULL << s) - 1ULL);
    mf_u64 keep = ~mask, out;
    switch (mode) {
    case MF_RNE: {
        mf_u64 inc = (s >= 64) ? 0ULL : ((pat >> s) & 1ULL);
        inc ^= parity;
        inc += mask >> 1;
        out = pat + inc;
        break;
    }
    case MF_RNA: out = pat + ((mask >> 1) + (mask & 1ULL)); break;
    case MF_RTZ: return pat & keep;
    case MF_UP: out = pat + (negative ? 0ULL : mask); break;
    case MF_DOWN: out = pat + (negative ? mask : 0ULL); break;
    case MF_ODD: {
        int inexact = (pat & mask) != 0;
        out = pat & keep;
        if (inexact && s < 64 && ((out >> s) & 1ULL) == parity) out += 1ULL << s;
        return out;
    }
    default: out = (word & mask) + pat; break;
    }
    return out & keep;
}

/* ---- IEEE-like formats (ieee.py FloatFormat._round_bits, float64 work type) -------- */
MF_FN double mf_overflow_value(const mf_i64 *F, double x, int mode) {
    int neg = (mf_bits(x) >> 63) != 0, to_max;
    double mag;
    if (F[F_OVERFLOW] == MF_OVER_SAT || mode == MF_RTZ || mode == MF_ODD) to_max = 1;
    else if (mode == MF_UP) to_max = neg;
    else if (mode == MF_DOWN) to_max = !neg;
    else to_max = 0;
    mag = to_max ? mf_double((mf_u64)F[F_MAX_BITS])
                 : mf_double(F[F_OVERFLOW] == MF_OVER_INF ? MF_INF_BITS : MF_NAN_BITS);
    if (mf_isinf(x)) {
        if (F[F_HAS_INF]) mag = mf_double(MF_INF_BITS);
        else if (F[F_OVERFLOW] != MF_OVER_SAT) mag = mf_double(MF_NAN_BITS);
    }
    if (mf_isnan(x)) mag = mf_double(MF_NAN_BITS);
    return neg ? mf_double(mf_bits(mag) | MF_SIGN) : mag;
}

MF_FN mf_u64 mf_round_subnormal(const mf_i64 *F, mf_u64 mag, int negative, int mode,
                                mf_u64 word) {
    mf_i64 ef = (mf_i64)(mag >> 52);
    mf_i64 shift = (F[F_S0] + F[F_EMIN_W]) - (ef > 1 ? ef : 1);
    if (shift <= 52) {
        mf_u64 parity = 0;
        if (shift == 52 && F[F_MBITS])
            parity = (mf_u64)(((F[F_EMIN_W] - F[F_MBITS]) & 1) ^ 1);
        return mf_round_pattern(mag, (int)shift, mode, negative, word, parity);
    } else {           /* |x| < q: 0 or q */
        int up;
        switch (mode) {
        case MF_RNE: up = mag > (mf_u64)F[F_HALF_Q_BITS]; break;
        case MF_RNA: up = mag >= (mf_u64)F[F_HALF_Q_BITS]; break;
        case MF_RTZ: up = 0; break;
        case MF_UP: up = !negative; break;
        case MF_DOWN: up = negative; break;
        case MF_ODD: up = 1; break;
        default: up = mf_unit(word) < mf_scale(mf_double(mag), (int)-F[F_QEXP]); break;
        }
        return up ? (mf_u64)F[F_Q_BITS] : 0ULL;
    }
}

MF_FN double mf_round_ieee(const mf_i64 *F, double x, int mode, mf_u64 word) {
    mf_u64 bits = mf_bits(x), mag = bits & MF_ABS, out;
    int negative = (bits >> 63) != 0;
    if (F[F_S0] > 0) out = mf_round_pattern(bits, (int)F[F_S0], mode, negative, word, (mf_u64)F[F_PARITY]);
    else out = bits;
    if (F[F_EMIN_W] > 1 && mag != 0 && mag < (mf_u64)F[F_MINNORM_BITS]) {
        mf_u64 r = mf_round_subnormal(F, mag, negative, mode, word);
        mf_u64 sign = bits & MF_SIGN;
        if (!F[F_NEGZERO] && r == 0) sign = 0;
        out = r | sign;
    }
    if (!(mag <= (mf_u64)F[F_MAX_BITS])) {      /* beyond max, Inf or NaN */
        if ((out & MF_ABS) > (mf_u64)F[F_MAX_BITS] || !mf_isfinite(x))
            out = mf_bits(mf_overflow_value(F, x, mode));
    }
    if (!F[F_SUBNORMALS] && (out & MF_ABS) < (mf_u64)F[F_MINNORM_BITS]) out &= MF_SIGN;
    if (!F[F_NEGZERO] && out == MF_SIGN) out = 0;
    return mf_double(out);
}

/* ---- posits (posit.py PositFormat, float64 work type) ------------------------------ */
MF_FN double mf_posit_decode_positive(const mf_i64 *F, mf_u64 c) {
    int n = (int)F[F_N], es = (int)F[F_ES], run, k, ex = 0;
    mf_u64 body = c << (64 - (n - 1)), lead, rest;
    int first = (int)(body >> 63);
    lead = first ? ~body : body;
    run = mf_clz64(lead >> 32 << 32);
    if (run > 32) run = 32;
    k = first ? run - 1 : -run;
    rest = (run + 1 >= 64) ? 0ULL : body << (run + 1);
    if (es) { ex = (int)(rest >> (64 - es)); rest <<= es; }
    {
        double frac = MF_DMUL((double)(mf_i64)(rest >> 11), 1.1102230246251565e-16);
        return mf_scale(MF_DADD(1.0, frac), k * (1 << es) + ex);
    }
}

/* The bit-string rounding of posit._codes for one nonzero finite value: the signed
 * rounded value. */
MF_FN double mf_posit_string_round(const mf_i64 *F, double x, int mode, mf_u64 word) {
    int n = (int)F[F_N], es = (int)F[F_ES], max_scale = (int)F[F_MAX_SCALE];
    int frac_keep = (int)F[F_FRAC_KEEP];
    int neg = (mf_bits(x) >> 63) != 0;
    double lo_lim = mf_pow2(-max_scale), hi_lim = mf_pow2(max_scale);
    double mag = mf_fabs(x);
    mf_u64 b, prefix, regime, frac, s, c, rem, half, one = 1ULL;
    mf_u64 maxcode = (one << (n - 1)) - one;
    int scale, k, ex, rlen, length, shift, drop, sticky, up = 0;
    if (mag < lo_lim) mag = lo_lim;
    if (mag > hi_lim) mag = hi_lim;
    b = mf_bits(mag);
    scale = (int)(b >> 52) - 1023;
    k = scale >= 0 ? (scale >> es) : -((-scale + (1 << es) - 1) >> es);   /* floor */
    ex = scale - k * (1 << es);
    if (k >= 0) { regime = ((one << (k + 1)) - one) << 1; rlen = k + 2; }
    else { regime = one; rlen = -k + 1; }
    prefix = (regime << es) | (mf_u64)ex;
    length = rlen + es + frac_keep + 1;
    shift = length - (n - 1);
    frac = b & MF_FRAC;
    drop = 52 - frac_keep;
    sticky = (frac & ((one << drop) - one)) != 0;
    s = prefix << (frac_keep + 1);
    s |= (frac >> drop) << 1;
    s |= (mf_u64)sticky;
    c = s >> shift;
    rem = s & ((one << shift) - one);
    half = one << (shift - 1);
    switch (mode) {
    case MF_RNE: up = (rem > half) || (rem == half && (c & one)); break;
    case MF_RNA: up = rem >= half; break;
    case MF_RTZ: up = 0; break;
    case MF_UP: up = !neg && rem != 0; break;
    case MF_DOWN: up = neg && rem != 0; break;
    case MF_ODD: up = rem != 0 && (c & one) == 0; break;
    default: {
        double lo = mf_posit_decode_positive(F, c);
        double hi = mf_posit_decode_positive(F, c + one < maxcode ? c + one : maxcode);
        double width = hi > lo ? MF_DSUB(hi, lo) : 1.0;
        up = rem != 0 && MF_DMUL(mf_unit(word), width) < MF_DSUB(mag, lo);
    }
    }
    c += (mf_u64)up;
    if (c < one) c = one;
    if (c > maxcode) c = maxcode;
    {
        double v = mf_posit_decode_positive(F, c);
        return neg ? -v : v;
    }
}

/* mantissa bits the posit drops in the float64 binade with exponent field ef, or 0 where
 * the binade is irregular (posit._binade_shifts) */
MF_FN int mf_posit_shift(const mf_i64 *F, int ef) {
    int n = (int)F[F_N], es = (int)F[F_ES], e, k, rlen, fb;
    if (ef < 1 || ef > 2046) return 0;
    e = ef - 1023;
    if ((e < 0 ? -e : e) >= F[F_MAX_SCALE]) return 0;
    k = e >= 0 ? (e >> es) : -((-e + (1 << es) - 1) >> es);
    rlen = k >= 0 ? k + 2 : -k + 1;
    fb = n - 1 - rlen - es;
    return fb >= 1 ? 52 - fb : 0;
}

MF_FN double mf_round_posit(const mf_i64 *F, double x, int mode, mf_u64 word) {
    mf_u64 bits = mf_bits(x), out;
    int shift;
    if (!mf_isfinite(x)) return mf_double(MF_NAN_BITS);
    shift = mf_posit_shift(F, (int)((bits >> 52) & 0x7FF));
    if (shift) out = mf_round_pattern(bits, shift, mode, (int)(bits >> 63), word, 0);
    else if ((bits << 1) == 0) out = bits;
    else out = mf_bits(mf_posit_string_round(F, x, mode, word));
    if (out == MF_SIGN) out = 0;
    if (F[F_UNDERFLOW] && (bits << 1) != 0) {
        /* below minpos, 0 is the lower neighbour; t = minpos / useed rounds to 0 */
        int max_scale = (int)F[F_MAX_SCALE];
        double mag = mf_fabs(x), minpos = mf_pow2(-max_scale);
        double t = mf_pow2(-(max_scale + (1 << (int)F[F_ES])));
        if (mag < minpos) {
            int zero;
            switch (mode) {
            case MF_RNE: zero = mag <= t; break;
            case MF_RNA: zero = mag < t; break;
            case MF_RTZ: zero = 1; break;
            case MF_UP: zero = (bits >> 63) != 0; break;
            case MF_DOWN: zero = (bits >> 63) == 0; break;
            case MF_ODD: zero = 0; break;
            default: zero = MF_DMUL(mf_unit(word), minpos) >= mag; break;
            }
            if (zero) out = 0;
        }
    }
    return mf_double(out);
}

MF_FN double mf_round(const mf_i64 *F, double x, int mode, mf_u64 word) {
    if (F[F_PLAIN64]) return x;
    return F[F_KIND] ? mf_round_posit(F, x, mode, word) : mf_round_ieee(F, x, mode, word);
}

#endif
