/* Portability layer: the same headers compile as C11 (host, system compiler) and as CUDA
 * (NVRTC).  Exact kernels use only integer operations on bit patterns and float64 adds,
 * subtracts and multiplies written through MF_DADD/MF_DSUB/MF_DMUL, which are the
 * correctly rounded __dadd_rn/__dsub_rn/__dmul_rn on the device (never contracted into an
 * FMA) and plain operators on the host, compiled with -ffp-contract=off.  No libm, no
 * __half/__nv_bfloat16 intrinsics.  Every shift count is kept below the type's width. */
#ifndef MF_PORT_H
#define MF_PORT_H

#ifdef __CUDACC_RTC__
typedef unsigned long long mf_u64;
typedef long long mf_i64;
typedef unsigned int mf_u32;
#define MF_FN static __device__ __forceinline__
#define MF_DADD(a, b) __dadd_rn((a), (b))
#define MF_DSUB(a, b) __dsub_rn((a), (b))
#define MF_DMUL(a, b) __dmul_rn((a), (b))
MF_FN mf_u64 mf_bits(double d) { return (mf_u64)__double_as_longlong(d); }
MF_FN double mf_double(mf_u64 u) { return __longlong_as_double((long long)u); }
MF_FN int mf_clz64(mf_u64 v) { return v ? __clzll((long long)v) : 64; }
#else
#include <stdint.h>
#include <string.h>
typedef uint64_t mf_u64;
typedef int64_t mf_i64;
typedef uint32_t mf_u32;
#define MF_FN static inline
#define MF_DADD(a, b) ((a) + (b))
#define MF_DSUB(a, b) ((a) - (b))
#define MF_DMUL(a, b) ((a) * (b))
MF_FN mf_u64 mf_bits(double d) { mf_u64 u; memcpy(&u, &d, 8); return u; }
MF_FN double mf_double(mf_u64 u) { double d; memcpy(&d, &u, 8); return d; }
MF_FN int mf_clz64(mf_u64 v) {
#if defined(__GNUC__) || defined(__clang__)
    return v ? __builtin_clzll(v) : 64;
#else
    int n = 0;
    if (!v) return 64;
    while (!(v >> 63)) { v <<= 1; n++; }
    return n;
#endif
}
#endif

#define MF_SIGN 0x8000000000000000ULL
#define MF_ABS 0x7FFFFFFFFFFFFFFFULL
#define MF_EXP 0x7FF0000000000000ULL
#define MF_FRAC 0x000FFFFFFFFFFFFFULL
#define MF_DBL_MAX_BITS 0x7FEFFFFFFFFFFFFFULL
#define MF_INF_BITS 0x7FF0000000000000ULL
#define MF_NAN_BITS 0x7FF8000000000000ULL

MF_FN int mf_isnan(double x) { return (mf_bits(x) & MF_ABS) > MF_INF_BITS; }
MF_FN int mf_isfinite(double x) { return (mf_bits(x) & MF_EXP) != MF_EXP; }
MF_FN int mf_isinf(double x) { return (mf_bits(x) & MF_ABS) == MF_INF_BITS; }
MF_FN double mf_fabs(double x) { return mf_double(mf_bits(x) & MF_ABS); }
MF_FN double mf_copysign(double m, double s) {
    return mf_double((mf_bits(m) & MF_ABS) | (mf_bits(s) & MF_SIGN));
}
/* 2**e for -1022 <= e <= 1023 (exact). */
MF_FN double mf_pow2(int e) { return mf_double((mf_u64)(e + 1023) << 52); }
/* a * 2**e exactly, for a result in the normal range (e may be large: two steps). */
MF_FN double mf_scale(double a, int e) {
    while (e > 1000) { a = MF_DMUL(a, mf_pow2(1000)); e -= 1000; }
    while (e < -1000) { a = MF_DMUL(a, mf_pow2(-1000)); e += 1000; }
    return MF_DMUL(a, mf_pow2(e));
}

#endif
