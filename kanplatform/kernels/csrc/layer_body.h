#define LOCATE_ARGS_L i64 B, i64 I, i64 O, i64 K, i64 G, const REAL *restrict x, \
    const REAL *restrict lo, const REAL *restrict scale, const REAL *restrict knots, \
    const REAL *restrict sih

/* Whole-layer kernels of the KAN layer, for one element type: one call per direction, the
 * base term silu(x) @ sb^T and the bias included, and a whole small network's loss gradient
 * in one call.
 *
 * Included twice by spline_kernel.c after spline_body.h (same macros). Shapes as there, plus
 *
 *   coef   (I, G + K - 1, O)  B-spline coefficients
 *   sp     (O, I)             spline scales (masked)       } PyTorch's layouts: no transposes
 *   sb     (O, I)             base scales (masked) or NULL } on the Python side
 *   bias   (O) or NULL
 *   SBt    (I, O)             sb transposed: the base term's "table row" of input i
 *
 * The base term rides along as one more table row per input, weighted by silu(x). Samples are
 * walked in their natural order (no sort): these kernels are for layers whose tables stay in
 * the cache, where the per-call fixed costs (building tables twice, a GEMM and a handful of
 * tensor ops for the base term, the Python around each) outweighed the arithmetic. The row
 * sums follow one fixed order whatever the blocking and the thread count: forward splits the
 * samples over threads, backward the inputs (each owns its table rows).
 */

/* exp(v) that vectorises: 2^n e^r with n = round(v / ln 2) and |r| <= ln(2) / 2, e^r from
 * its Taylor polynomial (degree 13 in double, 7 in float: truncation below half an ulp), 2^n
 * written into the exponent bits (adding 1.5 * 2^52 puts n in the low bits: no float-to-int
 * conversion, which AVX2 lacks for doubles). v is clamped to where 2^n is a normal number;
 * NaN stays NaN. */
static inline REAL FN(expv)(REAL v)
{
#if REAL_IS_DOUBLE
    const REAL hi = 709.0, lo = -708.0, l2e = 1.4426950408889634, c1 = 0.693145751953125,
               c2 = 1.42860682030941723212e-6, magic = 6755399441055744.0;
#else
    const REAL hi = 88.0f, lo = -87.0f, l2e = 1.44269504f, c1 = 0.693359375f,
               c2 = -2.12194440e-4f, magic = 12582912.0f;
#endif
    v = v > hi ? hi : v;
    v = v < lo ? lo : v;
    const REAL t = v * l2e + magic; /* n in the low bits of t */
    const REAL n = t - magic;
    const REAL r = (v - n * c1) - n * c2;
#if REAL_IS_DOUBLE
    REAL q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r + 1.0;
    q = q * r + 1.0;
    int64_t tb, mb;
    const REAL m = magic;
    memcpy(&tb, &t, 8);
    memcpy(&mb, &m, 8);
    const int64_t eb = (tb - mb + 1023) << 52;
    REAL scale2;
    memcpy(&scale2, &eb, 8);
#else
    REAL q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r + 1.0f;
    int32_t tb, mb;
    const REAL m = magic;
    memcpy(&tb, &t, 4);
    memcpy(&mb, &m, 4);
    const int32_t eb = (tb - mb + 127) << 23;
    REAL scale2;
    memcpy(&scale2, &eb, 4);
#endif
    return q * scale2;
}

/* Per-thread scratch of a block of n samples on ni inputs. */
typedef struct {
    i64 *off;  /* ni * n: first element of the point's table rows, (i * G + j) * K * O */
    REAL *w;   /* ni * K * n: pw_p, p-major per input */
    REAL *dw;  /* ni * K * n: d pw_p / d x (backward only) */
    REAL *a;   /* ni * n: silu(x) */
    REAL *ds;  /* ni * n: silu'(x) (backward only) */
    REAL *tmp; /* 4 * n */
} FN(lblock_t);

static void FN(lblock_free)(FN(lblock_t) *c)
{
    free(c->off);
    free(c->w);
    free(c->dw);
    free(c->a);
    free(c->ds);
    free(c->tmp);
}

static int FN(lblock_alloc)(FN(lblock_t) *c, i64 n, i64 ni, i64 K, int back)
{
    c->off = (i64 *)malloc((size_t)(ni * n) * sizeof(i64));
    c->w = (REAL *)malloc((size_t)(ni * K * n) * sizeof(REAL));
    c->dw = back ? (REAL *)malloc((size_t)(ni * K * n) * sizeof(REAL)) : NULL;
    c->a = (REAL *)malloc((size_t)(ni * n) * sizeof(REAL));
    c->ds = back ? (REAL *)malloc((size_t)(ni * n) * sizeof(REAL)) : NULL;
    c->tmp = (REAL *)malloc((size_t)(4 * n) * sizeof(REAL));
    if (!c->off || !c->w || !c->a || !c->tmp || (back && (!c->dw || !c->ds))) {
        FN(lblock_free)(c);
        return -1;
    }
    return 0;
}

/* Input i (slot ci of the block) of samples b0 .. b0 + n - 1: table offsets, monomials (and
 * their x-derivatives when back), silu and (back) its derivative. The same interval and
 * weights as FN(column) computes. */
static void FN(lcolumn)(FN(lblock_t) *c, i64 n, i64 ci, i64 b0, i64 i, i64 I, i64 O, i64 K,
                        i64 G, const REAL *restrict x, const REAL *restrict lo,
                        const REAL *restrict scale, const REAL *restrict knots,
                        const REAL *restrict sih, int base, int back)
{
    REAL *restrict xc = c->tmp, *restrict sig = c->tmp + n, *restrict ih = c->tmp + 2 * n,
         *restrict s = c->tmp + 3 * n;
    i64 *restrict off = c->off + ci * n;
    REAL *restrict w = c->w + ci * K * n;
    const REAL *restrict xs = x + b0 * I + i;
    for (i64 ii = 0; ii < n; ii++) xc[ii] = xs[ii * I];
    if (knots == NULL) {
        const REAL l = lo[i], sc = scale[i], gmax = (REAL)(G - 1);
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) {
            REAL f = FLOOR((xc[ii] - l) * sc);
            f = f > 0 ? f : 0; /* NaN -> 0 */
            f = f < gmax ? f : gmax;
            off[ii] = (i64)f;
        }
    } else {
        const REAL *kn = knots + i * (G - 1);
        FN(search_column)(n, xc, kn, G - 1, off);
    }
    const REAL *restrict si = sih + 2 * i * G;
    for (i64 ii = 0; ii < n; ii++) {
        const i64 j = off[ii];
        const REAL h = si[2 * j + 1];
        sig[ii] = (xc[ii] - si[2 * j]) * h - 1;
        ih[ii] = h;
        off[ii] = (i * G + j) * K * O;
    }
#pragma omp simd
    for (i64 ii = 0; ii < n; ii++) {
        const REAL g = sig[ii];
        s[ii] = g < -1 ? -1 : (g > 1 ? 1 : g);
        w[ii] = 1;
    }
    if (K > 1) {
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) w[n + ii] = sig[ii];
    }
    if (back) {
        REAL *restrict dw = c->dw + ci * K * n;
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) dw[ii] = 0;
        if (K > 1) {
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) dw[n + ii] = ih[ii];
        }
        /* xc is free from here: s^(p-1) */
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) xc[ii] = s[ii];
        for (i64 p = 2; p < K; p++) {
            const REAL pr = (REAL)p;
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                const REAL sp = xc[ii];
                w[p * n + ii] = sp * s[ii] + pr * sp * (sig[ii] - s[ii]);
                dw[p * n + ii] = pr * sp * ih[ii];
                xc[ii] = sp * s[ii];
            }
        }
        for (i64 ii = 0; ii < n; ii++) xc[ii] = xs[ii * I];
    } else {
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) ih[ii] = s[ii];
        for (i64 p = 2; p < K; p++) {
            const REAL pr = (REAL)p;
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                const REAL sp = ih[ii];
                w[p * n + ii] = sp * s[ii] + pr * sp * (sig[ii] - s[ii]);
                ih[ii] = sp * s[ii];
            }
        }
    }
    if (base) {
        REAL *restrict a = c->a + ci * n;
        if (back) {
            REAL *restrict ds = c->ds + ci * n;
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                const REAL v = xc[ii];
                const REAL sg = 1 / (1 + FN(expv)(-v));
                a[ii] = v * sg;
                ds[ii] = sg * (1 + v * (1 - sg));
            }
        } else {
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                const REAL v = xc[ii];
                a[ii] = v * (1 / (1 + FN(expv)(-v)));
            }
        }
    }
}

#define LDV(p) (*(const VEC *)(p))
#define STV(p, v) (*(VEC *)(p) = (v))

/* One chunk of NC vectors of outputs from o0 of sample ii's row: bias + sum over inputs of
 * (sum_p pw_p T[row, p] + silu(x) SBt[i]), in registers across the inputs. */
static inline void FN(forward_chunk)(const FN(lblock_t) *c, i64 m, i64 ii, i64 I, i64 O,
                                     i64 K, const REAL *restrict T,
                                     const REAL *restrict SBt, const REAL *restrict bias,
                                     int base, REAL *restrict yr, i64 o0, const int NC)
{
    VEC acc[4];
    for (int v = 0; v < NC; v++) acc[v] = bias != NULL ? LDV(bias + o0 + v * VL) : (VEC){0};
    for (i64 i = 0; i < I; i++) {
        const REAL *restrict t = T + c->off[i * m + ii] + o0;
        const REAL *restrict wv = c->w + i * K * m + ii;
        for (int v = 0; v < NC; v++) {
            VEC u = LDV(t + v * VL);
            for (i64 p = 1; p < K; p++) u += wv[p * m] * LDV(t + p * O + v * VL);
            if (base) u += c->a[i * m + ii] * LDV(SBt + i * O + o0 + v * VL);
            acc[v] += u;
        }
    }
    for (int v = 0; v < NC; v++) STV(yr + o0 + v * VL, acc[v]);
}

static inline void FN(forward_row_k)(const FN(lblock_t) *c, i64 m, i64 ii, i64 I, i64 O,
                                     const i64 K, const REAL *restrict T,
                                     const REAL *restrict SBt, const REAL *restrict bias,
                                     int base, REAL *restrict yr)
{
    i64 o0 = 0;
    for (; o0 + 4 * VL <= O; o0 += 4 * VL)
        FN(forward_chunk)(c, m, ii, I, O, K, T, SBt, bias, base, yr, o0, 4);
    for (; o0 + VL <= O; o0 += VL)
        FN(forward_chunk)(c, m, ii, I, O, K, T, SBt, bias, base, yr, o0, 1);
    for (i64 o = o0; o < O; o++) { /* the outputs past the last whole vector */
        REAL acc = bias != NULL ? bias[o] : 0;
        for (i64 i = 0; i < I; i++) {
            const REAL *restrict t = T + c->off[i * m + ii] + o;
            const REAL *restrict wv = c->w + i * K * m + ii;
            REAL u = t[0];
            for (i64 p = 1; p < K; p++) u += wv[p * m] * t[p * O];
            if (base) u += c->a[i * m + ii] * SBt[i * O + o];
            acc += u;
        }
        yr[o] = acc;
    }
}

static void FN(forward_row)(const FN(lblock_t) *c, i64 m, i64 ii, i64 I, i64 O, i64 K,
                            const REAL *restrict T, const REAL *restrict SBt,
                            const REAL *restrict bias, int base, REAL *restrict yr)
{
    if (K == 4) FN(forward_row_k)(c, m, ii, I, O, 4, T, SBt, bias, base, yr);
    else FN(forward_row_k)(c, m, ii, I, O, K, T, SBt, bias, base, yr);
}

/* Rows of a layer with fewer outputs than a vector (a network's last layer, O = 1): the same
 * sums as FN(forward_row)'s scalar tail, per output o bias + sum over inputs of (sum_p pw_p
 * T[row, p, o] + silu(x) SBt[i, o]) in that order, but vectorised over the block's m samples
 * (gathers of T) instead of one sample's outputs. */
static inline void FN(forward_cols_k)(const FN(lblock_t) *c, i64 m, i64 I, i64 O, const i64 K,
                                      const REAL *restrict T, const REAL *restrict SBt,
                                      const REAL *restrict bias, int base, REAL *restrict y)
{
    REAL *restrict acc = c->tmp; /* m values: tmp is free once the columns are built */
    for (i64 o = 0; o < O; o++) {
        const REAL b0 = bias != NULL ? bias[o] : 0;
        for (i64 ii = 0; ii < m; ii++) acc[ii] = b0;
        for (i64 i = 0; i < I; i++) {
            const i64 *restrict off = c->off + i * m;
            const REAL *restrict wv = c->w + i * K * m;
            const REAL *restrict av = c->a + i * m;
            const REAL sbo = base ? SBt[i * O + o] : 0;
            const REAL *restrict to = T + o;
            if (base) {
#pragma omp simd
                for (i64 ii = 0; ii < m; ii++) {
                    const REAL *t = to + off[ii];
                    REAL u = t[0];
                    for (i64 p = 1; p < K; p++) u += wv[p * m + ii] * t[p * O];
                    u += av[ii] * sbo;
                    acc[ii] += u;
                }
            } else {
#pragma omp simd
                for (i64 ii = 0; ii < m; ii++) {
                    const REAL *t = to + off[ii];
                    REAL u = t[0];
                    for (i64 p = 1; p < K; p++) u += wv[p * m + ii] * t[p * O];
                    acc[ii] += u;
                }
            }
        }
        for (i64 ii = 0; ii < m; ii++) y[ii * O + o] = acc[ii];
    }
}

static void FN(forward_cols)(const FN(lblock_t) *c, i64 m, i64 I, i64 O, i64 K,
                             const REAL *restrict T, const REAL *restrict SBt,
                             const REAL *restrict bias, int base, REAL *restrict y)
{
    if (K == 4) FN(forward_cols_k)(c, m, I, O, 4, T, SBt, bias, base, y);
    else FN(forward_cols_k)(c, m, I, O, K, T, SBt, bias, base, y);
}

/* Point (sample ii, input slot ci = input i) of the backward: the table rows' and SBt's
 * gradients += its share, and its input gradient returned. */
static inline REAL FN(backward_point_k)(const FN(lblock_t) *c, i64 m, i64 ii, i64 ci, i64 i,
                                        i64 O, const i64 K, const REAL *restrict T,
                                        const REAL *restrict SBt, const REAL *restrict gr,
                                        REAL *restrict gT, REAL *restrict gSBt, int base)
{
    const i64 of = c->off[ci * m + ii];
    const REAL *restrict t = T + of;
    REAL *restrict gt = gT + of;
    const REAL *restrict wv = c->w + ci * K * m + ii;
    const REAL *restrict dv = c->dw + ci * K * m + ii;
    const REAL *restrict sbr = SBt + i * O;
    REAL *restrict gsr = gSBt + i * O;
    const REAL av = base ? c->a[ci * m + ii] : 0;
    VEC acc = {0}, accb = {0};
    i64 o0 = 0;
    for (; o0 + VL <= O; o0 += VL) {
        const VEC g = LDV(gr + o0);
        VEC d = dv[m] * LDV(t + O + o0);
        for (i64 p = 2; p < K; p++) d += dv[p * m] * LDV(t + p * O + o0);
        acc += g * d;
        STV(gt + o0, LDV(gt + o0) + g);
        for (i64 p = 1; p < K; p++) STV(gt + p * O + o0, LDV(gt + p * O + o0) + wv[p * m] * g);
        if (base) {
            accb += g * LDV(sbr + o0);
            STV(gsr + o0, LDV(gsr + o0) + av * g);
        }
    }
    REAL s = o0 > 0 ? FN(hsum)(acc) : 0, sb = (base && o0 > 0) ? FN(hsum)(accb) : 0;
    for (i64 o = o0; o < O; o++) {
        const REAL g = gr[o];
        REAL d = dv[m] * t[O + o];
        for (i64 p = 2; p < K; p++) d += dv[p * m] * t[p * O + o];
        s += g * d;
        gt[o] += g;
        for (i64 p = 1; p < K; p++) gt[p * O + o] += wv[p * m] * g;
        if (base) {
            sb += g * sbr[o];
            gsr[o] += av * g;
        }
    }
    return base ? s + c->ds[ci * m + ii] * sb : s;
}

static REAL FN(backward_point)(const FN(lblock_t) *c, i64 m, i64 ii, i64 ci, i64 i, i64 O,
                               i64 K, const REAL *restrict T, const REAL *restrict SBt,
                               const REAL *restrict gr, REAL *restrict gT,
                               REAL *restrict gSBt, int base)
{
    if (K == 4) return FN(backward_point_k)(c, m, ii, ci, i, O, 4, T, SBt, gr, gT, gSBt, base);
    return FN(backward_point_k)(c, m, ii, ci, i, O, K, T, SBt, gr, gT, gSBt, base);
}

/* Input slot ci (input i) of a block's m samples, for layers with fewer outputs than a vector:
 * per sample FN(backward_point)'s scalar sums in its order (input gradient into gxc[ii * ldx]
 * when gxc != NULL), then its shares of the table rows and SBt added in sample order, as the
 * point-by-point walk adds them (each input owns its rows): the same sums (to the last bit
 * but for where the compiler contracts differently), in tight loops instead of a call per
 * point. */
static inline void FN(backward_col_k)(const FN(lblock_t) *c, i64 m, i64 ci, i64 i, i64 O,
                                      const i64 K, const REAL *restrict T,
                                      const REAL *restrict SBt, const REAL *restrict gy,
                                      REAL *restrict gT, REAL *restrict gSBt, int base,
                                      REAL *restrict gxc, i64 ldx)
{
    const i64 *restrict off = c->off + ci * m;
    const REAL *restrict wv = c->w + ci * K * m;
    const REAL *restrict dv = c->dw + ci * K * m;
    const REAL *restrict av = c->a + ci * m;
    const REAL *restrict dsv = c->ds + ci * m;
    const REAL *restrict sbr = SBt + i * O;
    REAL *restrict gsr = gSBt + i * O;
    if (gxc != NULL) {
#pragma omp simd
        for (i64 ii = 0; ii < m; ii++) {
            const REAL *t = T + off[ii];
            const REAL *gr = gy + ii * O;
            REAL s = 0, sb = 0;
            for (i64 o = 0; o < O; o++) {
                const REAL g = gr[o];
                REAL d = dv[m + ii] * t[O + o];
                for (i64 p = 2; p < K; p++) d += dv[p * m + ii] * t[p * O + o];
                s += g * d;
                if (base) sb += g * sbr[o];
            }
            gxc[ii * ldx] = base ? s + dsv[ii] * sb : s;
        }
    }
    for (i64 ii = 0; ii < m; ii++) {
        REAL *restrict gt = gT + off[ii];
        const REAL *restrict gr = gy + ii * O;
        for (i64 o = 0; o < O; o++) {
            const REAL g = gr[o];
            gt[o] += g;
            for (i64 p = 1; p < K; p++) gt[p * O + o] += wv[p * m + ii] * g;
        }
    }
    if (base)
        for (i64 o = 0; o < O; o++) {
            REAL acc = gsr[o];
            for (i64 ii = 0; ii < m; ii++) acc += av[ii] * gy[ii * O + o];
            gsr[o] = acc;
        }
}

static void FN(backward_col)(const FN(lblock_t) *c, i64 m, i64 ci, i64 i, i64 O, i64 K,
                             const REAL *restrict T, const REAL *restrict SBt,
                             const REAL *restrict gy, REAL *restrict gT, REAL *restrict gSBt,
                             int base, REAL *restrict gxc, i64 ldx)
{
    if (K == 4) FN(backward_col_k)(c, m, ci, i, O, 4, T, SBt, gy, gT, gSBt, base, gxc, ldx);
    else FN(backward_col_k)(c, m, ci, i, O, K, T, SBt, gy, gT, gSBt, base, gxc, ldx);
}

/* Samples per block: the scratch of a block (ni inputs) stays within ~48 KB. */
static i64 FN(lblock_n)(i64 B, i64 ni, i64 K)
{
    i64 n = (48 * 1024) / ((i64)sizeof(REAL) * ni * (2 * K + 4));
    n = n < 16 ? 16 : (n > 512 ? 512 : n);
    return n < B ? n : (B > 0 ? B : 1);
}

/* T[i * G + j, p, :] = sp[:, i] * sum_r P[i, j, r, p] coef[i, j + r, :] and SBt = sb^T. */
static void FN(build_tables)(i64 I, i64 O, i64 K, i64 G, const REAL *restrict coef,
                             const REAL *restrict sp, const REAL *restrict sb,
                             const REAL *restrict P, REAL *restrict T, REAL *restrict SBt,
                             int nthreads)
{
    const i64 nb = G + K - 1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (i64 i = 0; i < I; i++) {
        for (i64 j = 0; j < G; j++) {
            const REAL *restrict pj = P + (i * G + j) * K * K;
            for (i64 p = 0; p < K; p++) {
                REAL *restrict t = T + ((i * G + j) * K + p) * O;
                for (i64 o = 0; o < O; o++) t[o] = 0;
                for (i64 r = 0; r < K; r++) {
                    const REAL c = pj[r * K + p];
                    const REAL *restrict w = coef + (i * nb + j + r) * O;
#pragma omp simd
                    for (i64 o = 0; o < O; o++) t[o] += c * w[o];
                }
                for (i64 o = 0; o < O; o++) t[o] *= sp[o * I + i];
            }
        }
        if (sb != NULL)
            for (i64 o = 0; o < O; o++) SBt[i * O + o] = sb[o * I + i];
    }
}

/* y = bias + silu(x) @ sb^T + spline(x), after building T (I * G, K, O) and SBt (I, O) into
 * the caller's buffers (kept for the backward). Returns 0, or -1 when scratch ran out. */
int FN(kan_layer_forward)(LOCATE_ARGS_L, const REAL *restrict P, const REAL *restrict coef,
                          const REAL *restrict sp, const REAL *restrict sb,
                          const REAL *restrict bias, REAL *restrict T, REAL *restrict SBt,
                          REAL *restrict y, int nthreads)
{
    const int base = sb != NULL;
    FN(build_tables)(I, O, K, G, coef, sp, sb, P, T, SBt, nthreads);
    const i64 n = FN(lblock_n)(B, I, K);
    const i64 nbb = (B + n - 1) / n;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : failed)
    {
        FN(lblock_t) c;
        if (FN(lblock_alloc)(&c, n, I, K, 0)) failed = 1;
        else {
#pragma omp for schedule(static)
            for (i64 bb = 0; bb < nbb; bb++) {
                const i64 b0 = bb * n, m = b0 + n < B ? n : B - b0;
                for (i64 i = 0; i < I; i++)
                    FN(lcolumn)(&c, m, i, b0, i, I, O, K, G, x, lo, scale, knots, sih, base, 0);
                if (O < VL)
                    FN(forward_cols)(&c, m, I, O, K, T, SBt, bias, base, y + b0 * O);
                else
                    for (i64 ii = 0; ii < m; ii++)
                        FN(forward_row)(&c, m, ii, I, O, K, T, SBt, bias, base,
                                        y + (b0 + ii) * O);
            }
            FN(lblock_free)(&c);
        }
    }
    return failed ? -1 : 0;
}

/* From gy (B, O) and the forward's T and SBt: gx (B, I) when gx != NULL; and the parameter
 * gradients gcoef (I, G + K - 1, O) and gsp (O, I), gsb (O, I) when sb and gsb != NULL,
 * gbias (O) when gbias != NULL. gT (I * G, K, O) and gSBt (I, O) are the caller's
 * scratch. Returns 0, or -1 when scratch ran out. */
int FN(kan_layer_backward)(LOCATE_ARGS_L, const REAL *restrict P, const REAL *restrict coef,
                           const REAL *restrict sp, const REAL *restrict sb,
                           const REAL *restrict T, const REAL *restrict SBt,
                           const REAL *restrict gy, REAL *restrict gx, REAL *restrict gT,
                           REAL *restrict gSBt, REAL *restrict gcoef, REAL *restrict gsp,
                           REAL *restrict gsb, REAL *restrict gbias, int nthreads)
{
    const int base = sb != NULL;
    const i64 nb = G + K - 1;
    int failed = 0;
    /* threads own inputs: [i0, i1) each, a whole number of inputs */
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : failed)
    {
        int nt = 1, tid = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        tid = omp_get_thread_num();
#endif
        const i64 i0 = I * tid / nt, i1 = I * (tid + 1) / nt, ni = i1 - i0;
        FN(lblock_t) c;
        if (ni > 0) {
            const i64 n = FN(lblock_n)(B, ni, K);
            if (FN(lblock_alloc)(&c, n, ni, K, 1)) failed = 1;
            else {
                for (i64 m = i0 * G * K * O; m < i1 * G * K * O; m++) gT[m] = 0;
                for (i64 m = i0 * O; m < i1 * O; m++) gSBt[m] = 0;
                for (i64 b0 = 0; b0 < B; b0 += n) {
                    const i64 m = b0 + n < B ? n : B - b0;
                    for (i64 ci = 0; ci < ni; ci++)
                        FN(lcolumn)(&c, m, ci, b0, i0 + ci, I, O, K, G, x, lo, scale, knots,
                                    sih, base, 1);
                    if (O < VL)
                        for (i64 ci = 0; ci < ni; ci++)
                            FN(backward_col)(&c, m, ci, i0 + ci, O, K, T, SBt, gy + b0 * O, gT,
                                             gSBt, base,
                                             gx != NULL ? gx + b0 * I + i0 + ci : NULL, I);
                    else
                        for (i64 ii = 0; ii < m; ii++)
                            for (i64 ci = 0; ci < ni; ci++) {
                                const REAL gxv = FN(backward_point)(&c, m, ii, ci, i0 + ci, O,
                                                                    K, T, SBt,
                                                                    gy + (b0 + ii) * O, gT,
                                                                    gSBt, base);
                                if (gx != NULL) gx[(b0 + ii) * I + i0 + ci] = gxv;
                            }
                }
                FN(lblock_free)(&c);
            }
        }
        /* tables -> coefficients and scales: the same inputs, so no barrier */
        if (!failed) {
            for (i64 i = i0; i < i1; i++) {
                REAL *restrict gw = gcoef + i * nb * O;
                for (i64 m = 0; m < nb * O; m++) gw[m] = 0;
                for (i64 j = 0; j < G; j++) {
                    const REAL *restrict pj = P + (i * G + j) * K * K;
                    for (i64 r = 0; r < K; r++) {
                        REAL *restrict dst = gw + (j + r) * O;
                        for (i64 p = 0; p < K; p++) {
                            const REAL cc = pj[r * K + p];
                            const REAL *restrict src = gT + ((i * G + j) * K + p) * O;
#pragma omp simd
                            for (i64 o = 0; o < O; o++) dst[o] += cc * src[o];
                        }
                    }
                }
                const REAL *restrict cf = coef + i * nb * O;
                for (i64 o = 0; o < O; o++) {
                    REAL gs = 0;
                    for (i64 mm = 0; mm < nb; mm++) gs += gw[mm * O + o] * cf[mm * O + o];
                    gsp[o * I + i] = gs;
                }
                for (i64 mm = 0; mm < nb; mm++) {
                    const REAL *restrict sr = sp;
                    for (i64 o = 0; o < O; o++) gw[mm * O + o] *= sr[o * I + i];
                }
            }
        }
        if (!failed && base && gsb != NULL)
            for (i64 i = i0; i < i1; i++)
                for (i64 o = 0; o < O; o++) gsb[o * I + i] = gSBt[i * O + o];
    }
    if (!failed && gbias != NULL) {
        for (i64 o = 0; o < O; o++) gbias[o] = 0;
        for (i64 b = 0; b < B; b++)
            for (i64 o = 0; o < O; o++) gbias[o] += gy[b * O + o];
    }
    return failed ? -1 : 0;
}

/* A whole KAN's mean-squared-error gradient in one call: L layers of widths dims[0..L], each
 * one of the layers above (every layer has K = k + 1; G[l] intervals). Per layer l, lp[9 * l
 * ..] = lo, scale, knots, sih, P, coef, sp, sb, bias (knots, sb, bias may be NULL) and
 * wp[7 * l ..] = T, SBt (buffers), out (the layer's output, B x dims[l + 1]), gcoef, gsp,
 * gsb, gbias (gradients, overwritten; gsb / gbias NULL where the layer has none). ga / gb
 * hold B x max(dims) each (the gradients flowing between layers), gT / gSBt the largest
 * layer's. diff (B x dims[L]) receives prediction - target; the prediction's gradient is
 * (1 / N) * (2 * diff), N = B * dims[L], as autograd forms it for torch.mean((y - t) ** 2).
 * Every layer runs exactly the per-layer kernels above, so the result is the per-layer
 * path's, bit for bit. Returns 0, or -1 when scratch ran out. */
int FN(kan_network_mse)(i64 L, const i64 *dims, i64 B, i64 K, const i64 *Gs, const REAL *x,
                        const REAL *target, const REAL *const *lp, REAL *const *wp,
                        REAL *restrict diff, REAL *ga, REAL *gb, REAL *gT, REAL *gSBt,
                        int nthreads)
{
    const REAL *in = x;
    for (i64 l = 0; l < L; l++) {
        const REAL *const *q = lp + 9 * l;
        REAL *const *w = wp + 7 * l;
        if (FN(kan_layer_forward)(B, dims[l], dims[l + 1], K, Gs[l], in, q[0], q[1], q[2],
                                  q[3], q[4], q[5], q[6], q[7], q[8], w[0], w[1], w[2],
                                  nthreads))
            return -1;
        in = w[2];
    }
    const i64 O = dims[L], N = B * O;
    const REAL inv = (REAL)1 / (REAL)N;
    for (i64 m = 0; m < N; m++) {
        diff[m] = in[m] - target[m];
        ga[m] = inv * (2 * diff[m]);
    }
    REAL *g = ga, *other = gb;
    for (i64 l = L - 1; l >= 0; l--) {
        const REAL *const *q = lp + 9 * l;
        REAL *const *w = wp + 7 * l;
        const REAL *lin = l > 0 ? wp[7 * (l - 1) + 2] : x;
        if (FN(kan_layer_backward)(B, dims[l], dims[l + 1], K, Gs[l], lin, q[0], q[1], q[2],
                                   q[3], q[4], q[5], q[6], q[7], w[0], w[1], g,
                                   l > 0 ? other : NULL, gT, gSBt, w[3], w[4], w[5], w[6],
                                   nthreads))
            return -1;
        REAL *swap = g;
        g = other;
        other = swap;
    }
    return 0;
}

/* A whole KAN's forward for autograd (kanplatform.kernels.clayer.network_forward): the
 * layers of kan_network_mse (lp as there), keeping what kan_network_backward reads in ws:
 * layer after layer, T (dims[l] * Gs[l] * K * dims[l + 1]), SBt (dims[l] * dims[l + 1]) and,
 * but for the last layer, the layer's output (B * dims[l + 1]); the last layer's output goes
 * to y (B x dims[L]). Returns 0, or -1 when scratch ran out. */
int FN(kan_network_forward)(i64 L, const i64 *dims, i64 B, i64 K, const i64 *Gs,
                            const REAL *x, const REAL *const *lp, REAL *ws, REAL *y,
                            int nthreads)
{
    const REAL *in = x;
    for (i64 l = 0; l < L; l++) {
        const REAL *const *q = lp + 9 * l;
        const i64 I = dims[l], O = dims[l + 1];
        REAL *T = ws, *SBt = T + I * Gs[l] * K * O;
        REAL *out = l + 1 < L ? SBt + I * O : y;
        if (FN(kan_layer_forward)(B, I, O, K, Gs[l], in, q[0], q[1], q[2], q[3], q[4], q[5],
                                  q[6], q[7], q[8], T, SBt, out, nthreads))
            return -1;
        ws = SBt + I * O + (l + 1 < L ? B * O : 0);
        in = out;
    }
    return 0;
}

/* The backward of kan_network_forward from gy (B x dims[L]) and its ws: per layer l,
 * gp[4 * l ..] = gcoef, gsp, gsb, gbias (overwritten; gsb / gbias NULL: not formed), and
 * gx (B x dims[0]) when not NULL. ga / gb hold B x max(dims[1..L-1]) each (the gradients
 * flowing between layers), gT / gSBt the largest layer's scratch. Every layer runs
 * kan_layer_backward on what the per-layer path would give it: the result is that path's,
 * bit for bit. Returns 0, or -1 when scratch ran out. */
int FN(kan_network_backward)(i64 L, const i64 *dims, i64 B, i64 K, const i64 *Gs,
                             const REAL *x, const REAL *const *lp, const REAL *ws,
                             const REAL *gy, REAL *gx, REAL *const *gp, REAL *ga, REAL *gb,
                             REAL *gT, REAL *gSBt, int nthreads)
{
    const REAL *g = gy;
    for (i64 l = L - 1; l >= 0; l--) {
        const REAL *const *q = lp + 9 * l;
        REAL *const *w = gp + 4 * l;
        const REAL *T = ws, *lin = x;
        for (i64 j = 0; j < l; j++) {  /* skip the earlier layers' T, SBt and outputs */
            const i64 Ij = dims[j], Oj = dims[j + 1];
            lin = T + Ij * Gs[j] * K * Oj + Ij * Oj;
            T = lin + B * Oj;
        }
        const i64 I = dims[l], O = dims[l + 1];
        REAL *gout = l > 0 ? ((L - 1 - l) % 2 ? gb : ga) : gx;
        if (FN(kan_layer_backward)(B, I, O, K, Gs[l], lin, q[0], q[1], q[2], q[3], q[4], q[5],
                                   q[6], q[7], T, T + I * Gs[l] * K * O, g, gout, gT, gSBt,
                                   w[0], w[1], w[2], w[3], nthreads))
            return -1;
        g = gout;
    }
    return 0;
}

#undef LOCATE_ARGS_L
#undef LDV
#undef STV
