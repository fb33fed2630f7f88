/*
 * Body of the softmax cross-entropy row pass, instantiated by fastrnn_xent.h
 * with REAL, FR_FN(x) and EXP_TERM (exp of a logit minus its row's maximum:
 * 0 for -inf, NaN for NaN).  No include guard: included
 * once per REAL.  LANES: elements of REAL per 64-byte vector.
 */

/* One row z[0..V) of logits with target t and weight scale (w_n / sum w):
 *   m = max z,  s = sum_i exp(z_i - m),  nll = log s + m - z_t
 *   g_i = scale * exp(z_i - m) / s - scale * [i == t]
 * g may be z itself (the gradient formed in place of the logits).  Returns
 * nll in double, NaN when the row holds a NaN or +inf or only -inf.  With
 * scale == 0 the row is left out: g = 0, nll = 0 (or NaN for a bad row).
 * Three passes over a row that stays in L1/L2: max, exp and sum (exp kept
 * in g), scale.  -inf logits give exactly 0 probability.
 * NumPy: lp = z - m - log(sum(exp(z - m))); g = scale * (exp(lp) - onehot(t)) */
/* m = max z over the row: one running maximum per lane (the lanes are
 * independent, so the loop vectorises without reassociation). */
static inline __attribute__((always_inline)) REAL FR_FN(row_max)(long V, const REAL *z)
{
    REAL lane[LANES];
    long i = 0;
    for (int l = 0; l < LANES; ++l)
        lane[l] = z[0];
    for (; i + LANES <= V; i += LANES)
        for (int l = 0; l < LANES; ++l)
            lane[l] = z[i + l] > lane[l] ? z[i + l] : lane[l];
    REAL m = lane[0];
    for (int l = 1; l < LANES; ++l)
        m = lane[l] > m ? lane[l] : m;
    for (; i < V; ++i)
        m = z[i] > m ? z[i] : m;
    return m;
}

/* e_i = exp(z_i - m) (0 where z_i = -inf, and in float where z_i - m < -87),
 * written to e (which may be z; NULL: not kept, for the loss alone); returns
 * sum_i e_i, summed in LANES partial sums then in lane order. */
static inline __attribute__((always_inline)) REAL FR_FN(row_expsum)(long V, const REAL *z,
                                                                   REAL m, REAL *e)
{
    REAL lane[LANES];
    long i = 0;
    for (int l = 0; l < LANES; ++l)
        lane[l] = 0;
    for (; i + LANES <= V; i += LANES)
        for (int l = 0; l < LANES; ++l) {
            REAL x = EXP_TERM(z[i + l] - m);
            if (e)
                e[i + l] = x;
            lane[l] += x;
        }
    REAL s = 0;
    for (int l = 0; l < LANES; ++l)
        s += lane[l];
    for (; i < V; ++i) {
        REAL x = EXP_TERM(z[i] - m);
        if (e)
            e[i] = x;
        s += x;
    }
    return s;
}

/* One row z[0..V) of logits with target t and weight scale (w_n / sum w):
 *   m = max z,  s = sum_i exp(z_i - m),  nll = log s + m - z_t
 *   g_i = scale * exp(z_i - m) / s - scale * [i == t]
 * g may be z itself (the gradient formed in place of the logits).  Returns
 * nll in double, NaN when the row holds a NaN or +inf or only -inf.  With
 * scale == 0 the row is left out: g = 0, nll = 0 (or NaN for a bad row).
 * Three passes over a row that stays in L1/L2: max, exp and sum (exp kept
 * in g), scale.  -inf logits get exactly 0 probability.
 * NumPy: lp = z - m - log(sum(exp(z - m))); g = scale * (exp(lp) - onehot(t)) */
FR_KERNEL double FR_FN(xent_row)(int V, const REAL *z, int t, REAL scale, REAL *g)
{
    const REAL m = FR_FN(row_max)(V, z);
    if (scale == 0) {        /* still read, so that a NaN or +inf is reported anywhere */
        const REAL s0 = FR_FN(row_expsum)(V, z, m, g);
        for (long i = 0; i < V; ++i)
            g[i] = 0;
        return s0 == s0 ? 0.0 : (double)NAN;
    }
    const REAL zt = z[t];
    const REAL s = FR_FN(row_expsum)(V, z, m, g);
    const REAL f = scale / s;
    for (long i = 0; i < V; ++i)
        g[i] *= f;
    g[t] -= scale;
    return log((double)s) + (double)m - (double)zt;
}

/* xent_row's nll alone, in two passes that write nothing (scoring, where
 * the gradient is not wanted): the same sums, so the same bits. */
FR_KERNEL double FR_FN(xent_row_loss)(int V, const REAL *z, int t, REAL scale)
{
    const REAL m = FR_FN(row_max)(V, z);
    const REAL s = FR_FN(row_expsum)(V, z, m, NULL);
    if (s != s)
        return (double)NAN;
    return scale == 0 ? 0.0 : log((double)s) + (double)m - (double)z[t];
}

/* Log-probabilities of one row, out = z - m - log sum exp(z - m); out is work
 * space until the last pass and must not be z. */
FR_KERNEL void FR_FN(log_softmax_row)(int V, const REAL *z, REAL *out)
{
    const REAL m = FR_FN(row_max)(V, z);
    const REAL shift = m + (REAL)log((double)FR_FN(row_expsum)(V, z, m, out));
    for (long i = 0; i < V; ++i)
        out[i] = z[i] - shift;
}
