/* Kernels of the KAN layer's spline term, for one element type.
 *
 * Included twice by spline_kernel.c, with REAL = float / double, FN(name) = name_f32 /
 * name_f64, VEC a SIMD vector of VL REALs. Shapes (all arrays contiguous, row-major):
 *
 *   x      (B, I)            layer input
 *   lo     (I)               first inner knot          } uniform grids: the interval is
 *   scale  (I)               G / inner span            } floor((x - lo) * scale)
 *   knots  (I, G - 1)        interior knots, or NULL for a uniform grid (then a binary search)
 *   sih    (I * G, 2)        per interval: start and 2 / width
 *   T      (I * G, K, O)     per-interval monomial tables: on interval j of input i the edge
 *                            spline (times its scale) is sum_p sigma^p T[i * G + j, p, :]
 *
 * with K = k + 1 and sigma = (x - start) * 2 / width - 1 in [-1, 1] inside the interval.
 * Outside the grid the monomials continue along their tangents at sigma = +-1, so the spline
 * continues linearly (exactly what kanplatform.nn.functional._powers does).
 *
 * Every batch kernel works on one input column i of a block of samples at a time: it sorts the
 * block's samples by interval (a counting sort), then for each interval loads the K table rows
 * once, a chunk of NV vectors at a time, into registers and streams that interval's samples
 * past them. The tables are then read about once per block instead of once per point, and the
 * per-sample rows (y, grad y) of a block stay in the L2 cache.
 */

/* j[ii] = the number of knots kn[0 .. nk) (sorted) at or below xc[ii], i.e.
 * searchsorted(kn, x, right=True), for n points at once: a binary search run level by
 * level over all the points, so that each level is one vectorised loop (gathers, no
 * branches: a per-point search's branches mispredict half the time). NaN counts no knot. */
static void FN(search_column)(i64 n, const REAL *restrict xc, const REAL *restrict kn,
                              i64 nk, i64 *restrict j)
{
    for (i64 ii = 0; ii < n; ii++) j[ii] = 0;
    if (nk < 1) return;
    for (i64 m = nk; m > 1; m -= m >> 1) {
        const i64 h = m >> 1;
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) j[ii] += kn[j[ii] + h] <= xc[ii] ? h : 0;
    }
#pragma omp simd
    for (i64 ii = 0; ii < n; ii++) j[ii] += kn[j[ii]] <= xc[ii];
}

/* Per-thread scratch of one column of up to n samples. */
typedef struct {
    i64 *order;  /* n: sample positions sorted by interval */
    i64 *start;  /* G + 1: bucket starts in order */
    i64 *jj;     /* n: interval of each sample */
    REAL *w;     /* K * n: row weights, p-major */
    REAL *tmp;   /* 5 * n */
    REAL *acc;   /* n: per-sample sums (backward_x) */
} FN(column_t);

static void FN(column_free)(FN(column_t) *c)
{
    free(c->order);
    free(c->start);
    free(c->jj);
    free(c->w);
    free(c->tmp);
    free(c->acc);
}

static int FN(column_alloc)(FN(column_t) *c, i64 n, i64 K, i64 G)
{
    c->order = (i64 *)malloc((size_t)n * sizeof(i64));
    c->start = (i64 *)malloc((size_t)(G + 1) * sizeof(i64));
    c->jj = (i64 *)malloc((size_t)n * sizeof(i64));
    c->w = (REAL *)malloc((size_t)(n * K) * sizeof(REAL));
    c->tmp = (REAL *)malloc((size_t)(5 * n) * sizeof(REAL));
    c->acc = (REAL *)malloc((size_t)n * sizeof(REAL));
    if (!c->order || !c->start || !c->jj || !c->w || !c->tmp || !c->acc) {
        FN(column_free)(c);
        return -1;
    }
    return 0;
}

/* Column i of samples b0 .. b0 + n - 1: the interval jj of each point, the weights of the K
 * table rows, w[p * n + ii] = the monomial pw_p(sigma) (deriv = 0) or d pw_p / d x =
 * d pw_p / d sigma * 2 / width (deriv = 1), and the samples sorted by interval (order, with
 * bucket j at order[start[j] : start[j + 1]]). */
static void FN(column)(FN(column_t) *c, i64 n, i64 b0, i64 i, i64 I, i64 K, i64 G,
                       const REAL *restrict x, const REAL *restrict lo,
                       const REAL *restrict scale, const REAL *restrict knots,
                       const REAL *restrict sih, int deriv)
{
    REAL *restrict xc = c->tmp, *restrict sig = c->tmp + n, *restrict ih = c->tmp + 2 * n,
         *restrict s = c->tmp + 3 * n, *restrict sp = c->tmp + 4 * n, *restrict w = c->w;
    i64 *restrict jj = c->jj, *restrict start = c->start, *restrict order = c->order;
    const REAL *restrict xs = x + b0 * I + i;
    for (i64 ii = 0; ii < n; ii++) xc[ii] = xs[ii * I];
    if (knots == NULL) {
        const REAL l = lo[i], sc = scale[i], gmax = (REAL)(G - 1);
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) {
            REAL f = FLOOR((xc[ii] - l) * sc);
            f = f > 0 ? f : 0; /* NaN -> 0 */
            f = f < gmax ? f : gmax;
            jj[ii] = (i64)f;
        }
    } else {
        const REAL *kn = knots + i * (G - 1);
        FN(search_column)(n, xc, kn, G - 1, jj);
    }
    const REAL *restrict si = sih + 2 * i * G;
    for (i64 ii = 0; ii < n; ii++) {
        const REAL h = si[2 * jj[ii] + 1];
        sig[ii] = (xc[ii] - si[2 * jj[ii]]) * h - 1;
        ih[ii] = h;
    }
#pragma omp simd
    for (i64 ii = 0; ii < n; ii++) {
        const REAL g = sig[ii];
        s[ii] = g < -1 ? -1 : (g > 1 ? 1 : g);
        sp[ii] = s[ii];
        w[ii] = deriv ? 0 : 1;
    }
    if (K > 1) {
#pragma omp simd
        for (i64 ii = 0; ii < n; ii++) w[n + ii] = deriv ? ih[ii] : sig[ii];
    }
    for (i64 p = 2; p < K; p++) {
        REAL *restrict wp = w + p * n;
        const REAL pr = (REAL)p;
        if (deriv) {
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                wp[ii] = pr * sp[ii] * ih[ii];
                sp[ii] *= s[ii];
            }
        } else {
#pragma omp simd
            for (i64 ii = 0; ii < n; ii++) {
                wp[ii] = sp[ii] * s[ii] + pr * sp[ii] * (sig[ii] - s[ii]);
                sp[ii] *= s[ii];
            }
        }
    }
    /* counting sort by interval */
    for (i64 j = 0; j <= G; j++) start[j] = 0;
    for (i64 ii = 0; ii < n; ii++) start[jj[ii] + 1]++;
    for (i64 j = 0; j < G; j++) start[j + 1] += start[j];
    for (i64 ii = 0; ii < n; ii++) order[start[jj[ii]]++] = ii;
    for (i64 j = G; j > 0; j--) start[j] = start[j - 1];
    start[0] = 0;
}

#define LOCATE_ARGS i64 B, i64 I, i64 O, i64 K, i64 G, const REAL *restrict x, \
    const REAL *restrict lo, const REAL *restrict scale, const REAL *restrict knots, \
    const REAL *restrict sih
#define LOCATE_PASS I, K, G, x, lo, scale, knots, sih
#define LOCATE_ALL B, I, O, K, G, x, lo, scale, knots, sih
#define CHUNK (NV * VL)

/* The work of one interval j of input i: its samples are c->order[q0 : q1], its K table
 * rows start at t. Each loads the rows a chunk of NV vectors at a time into registers (for
 * cubic splines) and streams the samples past them. */

/* r[p][v] = the v-th vector of the chunk at o0 of row p of the 4 rows at t (stride O), and
 * back. */
static inline void FN(load_chunk)(VEC r[4][NV], const REAL *t, i64 O, i64 o0)
{
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < NV; v++) r[p][v] = *(const VEC *)(t + p * O + o0 + v * VL);
}

static inline void FN(store_chunk)(VEC r[4][NV], REAL *t, i64 O, i64 o0)
{
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < NV; v++) *(VEC *)(t + p * O + o0 + v * VL) = r[p][v];
}

/* y rows of the samples += sum_p pw_p T[p]. */
static inline void FN(interval_forward)(const FN(column_t) *c, i64 n, i64 q0, i64 q1, i64 K,
                                        i64 O, const REAL *restrict t, REAL *restrict yb0)
{
    const REAL *restrict w = c->w;
    i64 o0 = 0;
    if (K == 4) {
        for (; o0 + CHUNK <= O; o0 += CHUNK) {
            VEC r[4][NV];
            FN(load_chunk)(r, t, O, o0);
            for (i64 q = q0; q < q1; q++) {
                const i64 ii = c->order[q];
                const REAL w1 = w[n + ii], w2 = w[2 * n + ii], w3 = w[3 * n + ii];
                REAL *yr = yb0 + ii * O + o0;
                for (int v = 0; v < NV; v++)
                    *(VEC *)(yr + v * VL) +=
                        r[0][v] + w1 * r[1][v] + w2 * r[2][v] + w3 * r[3][v];
            }
        }
    }
    if (o0 == O) return;
    for (i64 q = q0; q < q1; q++) { /* other orders, and the outputs past the last chunk */
        const i64 ii = c->order[q];
        REAL *restrict yr = yb0 + ii * O;
        for (i64 p = 0; p < K; p++) {
            const REAL wp = w[p * n + ii];
            const REAL *restrict tp = t + p * O;
#pragma omp simd
            for (i64 o = o0; o < O; o++) yr[o] += wp * tp[o];
        }
    }
}

/* acc[sample] += <grad y row, sum_p dpw_p T[p]> (the column's weights are derivatives). */
static inline void FN(interval_grad_x)(const FN(column_t) *c, i64 n, i64 q0, i64 q1, i64 K,
                                       i64 O, const REAL *restrict t, const REAL *restrict gb0)
{
    const REAL *restrict w = c->w;
    REAL *restrict acc = c->acc;
    i64 o0 = 0;
    if (K == 4) {
        for (; o0 + CHUNK <= O; o0 += CHUNK) {
            VEC r[4][NV];
            FN(load_chunk)(r, t, O, o0);
            for (i64 q = q0; q < q1; q++) {
                const i64 ii = c->order[q];
                const REAL d1 = w[n + ii], d2 = w[2 * n + ii], d3 = w[3 * n + ii];
                const REAL *gr = gb0 + ii * O + o0;
                VEC a = *(const VEC *)gr * (d1 * r[1][0] + d2 * r[2][0] + d3 * r[3][0]);
                for (int v = 1; v < NV; v++)
                    a += *(const VEC *)(gr + v * VL) *
                         (d1 * r[1][v] + d2 * r[2][v] + d3 * r[3][v]);
                acc[ii] += FN(hsum)(a);
            }
        }
    }
    if (o0 == O) return;
    for (i64 q = q0; q < q1; q++) {
        const i64 ii = c->order[q];
        const REAL *restrict gr = gb0 + ii * O;
        REAL sum = 0;
        for (i64 p = 1; p < K; p++) {
            const REAL *restrict tp = t + p * O;
            REAL part = 0;
#pragma omp simd reduction(+ : part)
            for (i64 o = o0; o < O; o++) part += gr[o] * tp[o];
            sum += w[p * n + ii] * part;
        }
        acc[ii] += sum;
    }
}

/* T[p] += sum over the samples of pw_p * grad y row. */
static inline void FN(interval_grad_tables)(const FN(column_t) *c, i64 n, i64 q0, i64 q1, i64 K,
                                            i64 O, REAL *restrict t, const REAL *restrict gb0)
{
    const REAL *restrict w = c->w;
    i64 o0 = 0;
    if (K == 4) {
        for (; o0 + CHUNK <= O; o0 += CHUNK) {
            VEC a[4][NV];
            FN(load_chunk)(a, t, O, o0);
            for (i64 q = q0; q < q1; q++) {
                const i64 ii = c->order[q];
                const REAL w1 = w[n + ii], w2 = w[2 * n + ii], w3 = w[3 * n + ii];
                const REAL *gr = gb0 + ii * O + o0;
                for (int v = 0; v < NV; v++) {
                    const VEC g = *(const VEC *)(gr + v * VL);
                    a[0][v] += g;
                    a[1][v] += w1 * g;
                    a[2][v] += w2 * g;
                    a[3][v] += w3 * g;
                }
            }
            FN(store_chunk)(a, t, O, o0);
        }
    }
    if (o0 == O) return;
    for (i64 q = q0; q < q1; q++) {
        const i64 ii = c->order[q];
        const REAL *restrict gr = gb0 + ii * O;
        for (i64 p = 0; p < K; p++) {
            const REAL wp = w[p * n + ii];
            REAL *restrict tp = t + p * O;
#pragma omp simd
            for (i64 o = o0; o < O; o++) tp[o] += wp * gr[o];
        }
    }
}

/* The kernels that own rows of samples: threads take blocks of bblock samples and walk all
 * inputs of a block, one column at a time. grad_x = 0: rows += spline term (rows = y, which
 * holds the base term already); grad_x = 1: out[b, i] = the spline term's input gradient
 * from grad y (rows). Returns 0, or -1 when scratch memory ran out. */
static int FN(by_sample_blocks)(int grad_x, LOCATE_ARGS, const REAL *restrict T,
                                REAL *restrict rows, REAL *restrict out, i64 bblock,
                                int nthreads)
{
    const i64 nbb = (B + bblock - 1) / bblock;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : failed)
    {
        FN(column_t) c;
        if (FN(column_alloc)(&c, bblock, K, G)) failed = 1;
        else {
#pragma omp for schedule(dynamic, 1)
            for (i64 bb = 0; bb < nbb; bb++) {
                const i64 b0 = bb * bblock, n = b0 + bblock < B ? bblock : B - b0;
                REAL *restrict rb0 = rows + b0 * O;
                for (i64 i = 0; i < I; i++) {
                    FN(column)(&c, n, b0, i, LOCATE_PASS, grad_x);
                    if (grad_x)
                        for (i64 ii = 0; ii < n; ii++) c.acc[ii] = 0;
                    for (i64 j = 0; j < G; j++) {
                        const i64 q0 = c.start[j], q1 = c.start[j + 1];
                        const REAL *t = T + (i * G + j) * K * O;
                        if (q0 == q1) continue;
                        if (grad_x) FN(interval_grad_x)(&c, n, q0, q1, K, O, t, rb0);
                        else FN(interval_forward)(&c, n, q0, q1, K, O, t, rb0);
                    }
                    if (grad_x)
                        for (i64 ii = 0; ii < n; ii++) out[(b0 + ii) * I + i] = c.acc[ii];
                }
            }
            FN(column_free)(&c);
        }
    }
    return failed ? -1 : 0;
}

/* y[b, :] += sum_i sum_p pw_p(x[b, i]) T[row(b, i), p, :]; y holds the base term already.
 * Returns 0, or -1 when scratch memory ran out. */
int FN(kan_forward)(LOCATE_ARGS, const REAL *restrict T, REAL *restrict y, i64 bblock,
                    int nthreads)
{
    return FN(by_sample_blocks)(0, LOCATE_ALL, T, y, NULL, bblock, nthreads);
}

/* gx[b, i] = <gy[b, :], sum_p dpw_p(x[b, i]) T[row, p, :]> * d sigma / d x: the spline term's
 * input gradient (overwrites gx). Returns 0, or -1 when scratch memory ran out. */
int FN(kan_backward_x)(LOCATE_ARGS, const REAL *restrict T, const REAL *restrict gy,
                       REAL *restrict gx, i64 bblock, int nthreads)
{
    return FN(by_sample_blocks)(1, LOCATE_ALL, T, (REAL *)gy, gx, bblock, nthreads);
}

/* gT[row(b, i), p, :] = sum over b of pw_p(x[b, i]) gy[b, :] (overwrites gT). Threads own
 * disjoint inputs, so no two threads touch the same rows; each walks the samples in blocks of
 * bblock. Returns 0, or -1 when scratch memory ran out. */
int FN(kan_backward_tables)(LOCATE_ARGS, const REAL *restrict gy, REAL *restrict gT,
                            i64 bblock, int nthreads)
{
    int failed = 0;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : failed)
    {
        FN(column_t) c;
        if (FN(column_alloc)(&c, bblock, K, G)) failed = 1;
        else {
#pragma omp for schedule(dynamic, 1)
            for (i64 i = 0; i < I; i++) {
                REAL *restrict gi = gT + i * G * K * O;
                for (i64 m = 0; m < G * K * O; m++) gi[m] = 0;
                for (i64 b0 = 0; b0 < B; b0 += bblock) {
                    const i64 n = b0 + bblock < B ? bblock : B - b0;
                    FN(column)(&c, n, b0, i, LOCATE_PASS, 0);
                    for (i64 j = 0; j < G; j++) {
                        const i64 q0 = c.start[j], q1 = c.start[j + 1];
                        if (q0 == q1) continue;
                        FN(interval_grad_tables)(&c, n, q0, q1, K, O, gi + j * K * O,
                                                 gy + b0 * O);
                    }
                }
            }
            FN(column_free)(&c);
        }
    }
    return failed ? -1 : 0;
}

#undef LOCATE_ARGS
#undef LOCATE_PASS
#undef LOCATE_ALL
#undef CHUNK

/* T[i * G + j, p, :] = sc[i, :] * sum_r P[i, j, r, p] coef[i, j + r, :]: the tables from the
 * B-spline coefficients coef (I, G + K - 1, O), the spline scales sc (I, O) and the
 * interval polynomials P (I, G, K[r], K[p]). */
void FN(kan_tables)(i64 I, i64 O, i64 K, i64 G, const REAL *restrict coef,
                    const REAL *restrict sc, const REAL *restrict P, REAL *restrict T,
                    int nthreads)
{
    i64 nb = G + K - 1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (i64 i = 0; i < I; i++) {
        const REAL *restrict s = sc + i * O;
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
#pragma omp simd
                for (i64 o = 0; o < O; o++) t[o] *= s[o];
            }
        }
    }
}

/* The transpose of kan_tables: from gT (I * G, K, O) the gradients w.r.t. coef
 * (gcoef, I x (G + K - 1) x O) and sc (gsc, I x O). Overwrites both. */
void FN(kan_tables_backward)(i64 I, i64 O, i64 K, i64 G, const REAL *restrict coef,
                             const REAL *restrict sc, const REAL *restrict P,
                             const REAL *restrict gT, REAL *restrict gcoef,
                             REAL *restrict gsc, int nthreads)
{
    i64 nb = G + K - 1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (i64 i = 0; i < I; i++) {
        REAL *restrict gw = gcoef + i * nb * O;
        for (i64 m = 0; m < nb * O; m++) gw[m] = 0;
        for (i64 j = 0; j < G; j++) {
            const REAL *restrict pj = P + (i * G + j) * K * K;
            for (i64 r = 0; r < K; r++) {
                REAL *restrict dst = gw + (j + r) * O;
                for (i64 p = 0; p < K; p++) {
                    const REAL c = pj[r * K + p];
                    const REAL *restrict src = gT + ((i * G + j) * K + p) * O;
#pragma omp simd
                    for (i64 o = 0; o < O; o++) dst[o] += c * src[o];
                }
            }
        }
        const REAL *restrict s = sc + i * O;
        const REAL *restrict cf = coef + i * nb * O;
        REAL *restrict gs = gsc + i * O;
        for (i64 o = 0; o < O; o++) gs[o] = 0;
        for (i64 m = 0; m < nb; m++) {
#pragma omp simd
            for (i64 o = 0; o < O; o++) {
                gs[o] += gw[m * O + o] * cf[m * O + o];
                gw[m * O + o] *= s[o];
            }
        }
    }
}
