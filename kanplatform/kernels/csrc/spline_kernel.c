/* Compiled kernels of kanplatform.nn's KAN layer (CPU), loaded with ctypes by
 * kanplatform/kernels/ckernel.py. Plain C99 + optional OpenMP: no Python or torch headers, so it
 * builds in about a second with any C compiler. kanplatform.nn.functional has a pure-PyTorch
 * path computing the same numbers; it is used wherever this library cannot be built.
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef int64_t i64;

/* SIMD vectors (GCC/Clang vector extensions, unaligned): VBYTES per vector, and NV vectors in
 * a chunk of outputs the forward kernel keeps in registers, 4 accumulators of it: 16 of
 * AVX-512's 32 registers, 8 of AVX's 16. */
#if defined(__AVX512F__)
#define VBYTES 64
#define NV 4
#elif defined(__AVX__)
#define VBYTES 32
#define NV 2
#else
#define VBYTES 16
#define NV 2
#endif
typedef float vec_f32 __attribute__((vector_size(VBYTES), aligned(4), may_alias));
typedef double vec_f64 __attribute__((vector_size(VBYTES), aligned(8), may_alias));

/* Horizontal sums of one vector. */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline float hsum_f32(vec_f32 v) { return _mm512_reduce_add_ps((__m512)v); }
static inline double hsum_f64(vec_f64 v) { return _mm512_reduce_add_pd((__m512d)v); }
#elif defined(__AVX__)
#include <immintrin.h>
static inline float hsum_f32(vec_f32 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline double hsum_f64(vec_f64 v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128((__m256d)v),
                           _mm256_extractf128_pd((__m256d)v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#else
static inline float hsum_f32(vec_f32 v)
{
    float s = 0;
    for (int l = 0; l < VBYTES / 4; l++) s += v[l];
    return s;
}
static inline double hsum_f64(vec_f64 v)
{
    double s = 0;
    for (int l = 0; l < VBYTES / 8; l++) s += v[l];
    return s;
}
#endif

int kan_kernel_abi(void) { return 2; }

int kan_kernel_vector_bytes(void) { return VBYTES; }

int kan_kernel_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#define REAL float
#define FLOOR floorf
#define FN(name) name##_f32
#define VEC vec_f32
#define VL (VBYTES / 4)
#define REAL_IS_DOUBLE 0
#include "spline_body.h"
#include "layer_body.h"
#undef REAL_IS_DOUBLE
#undef REAL
#undef FLOOR
#undef FN
#undef VEC
#undef VL

#define REAL double
#define FLOOR floor
#define FN(name) name##_f64
#define VEC vec_f64
#define VL (VBYTES / 8)
#define REAL_IS_DOUBLE 1
#include "spline_body.h"
#include "layer_body.h"
#undef REAL_IS_DOUBLE
#undef REAL
#undef FLOOR
#undef FN
#undef VEC
#undef VL
