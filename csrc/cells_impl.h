/*
 * Body of the element-wise passes, instantiated by fastrnn_cells.h with
 *   REAL     float or double
 *   FR_FN(x) the suffixed function name
 *   SIGMOID, TANH  the scalar activations for REAL
 *   SIGMOID_N, TANH_N  the same with Newton steps for 1 / d, used inside
 *            WITH_NEWTON_RECIPROCALS(newton, statements), which compiles the
 *            statements both ways and runs the Newton ones where newton
 *            holds (fastrnn_cells.h)
 * No include guard on purpose: this file is included once per REAL.
 *
 * Each function handles one time step for all B rows.  Pointers marked
 * restrict never alias; those without it may (noted where it matters).
 */

/* rows x cols block of a (row stride lda) = v, broadcast over rows.
 * NumPy: a[:rows, :cols] = v */
FR_KERNEL void FR_FN(fill_rows)(int rows, int cols, const REAL *restrict v,
                                       REAL *restrict a, int lda)
{
    for (int b = 0; b < rows; ++b)
        for (int j = 0; j < cols; ++j)
            a[(size_t)b * lda + j] = v[j];
}

/* out += column sums of a (rows x cols, row stride lda), and out2 += the same
 * sums unless out2 is NULL (an LSTM's two bias gradients).  Columns go in
 * blocks whose sums stay in registers over all rows, each starting from out's
 * value and adding the rows in order: the sums of the row-by-row loop, with one
 * pass over a and none over out per row.
 * NumPy: out += a[:rows, :cols].sum(axis=0) (added row by row); out2 likewise */
#define FR_COLSUM_BLOCK 64
static inline __attribute__((always_inline)) void FR_FN(colsum_block)(
    int rows, const REAL *restrict a, int lda, REAL *restrict out, REAL *restrict out2,
    const int two)
{
    REAL acc[FR_COLSUM_BLOCK], acc2[FR_COLSUM_BLOCK];
    for (int j = 0; j < FR_COLSUM_BLOCK; ++j) {
        acc[j] = out[j];
        acc2[j] = two ? out2[j] : 0;
    }
    for (int b = 0; b < rows; ++b) {
        const REAL *row = a + (size_t)b * lda;
        for (int j = 0; j < FR_COLSUM_BLOCK; ++j) {
            acc[j] += row[j];
            if (two)
                acc2[j] += row[j];
        }
    }
    for (int j = 0; j < FR_COLSUM_BLOCK; ++j) {
        out[j] = acc[j];
        if (two)
            out2[j] = acc2[j];
    }
}

FR_KERNEL void FR_FN(colsum_add)(int rows, int cols, const REAL *restrict a, int lda,
                                 REAL *restrict out, REAL *restrict out2)
{
    int j0 = 0;
    for (; j0 + FR_COLSUM_BLOCK <= cols; j0 += FR_COLSUM_BLOCK) {
        if (out2)
            FR_FN(colsum_block)(rows, a + j0, lda, out + j0, out2 + j0, 1);
        else
            FR_FN(colsum_block)(rows, a + j0, lda, out + j0, NULL, 0);
    }
    for (int b = 0; b < rows; ++b)
        for (int j = j0; j < cols; ++j) {
            out[j] += a[(size_t)b * lda + j];
            if (out2)
                out2[j] += a[(size_t)b * lda + j];
        }
}

/* ---------------------------------------------------------------- RNN --- */

/* h = act(pre), act = tanh or relu.  pre is B x H (projection + recurrent product). */
FR_KERNEL void FR_FN(rnn_step_fwd)(int B, int H, const REAL *restrict pre,
                                          REAL *restrict h, int ldh, int relu)
{
    for (int b = 0; b < B; ++b) {
        const REAL *p = pre + (size_t)b * H;
        REAL *hb = h + (size_t)b * ldh;
        if (relu)
            for (int j = 0; j < H; ++j) hb[j] = p[j] > 0 ? p[j] : 0;
        else
            for (int j = 0; j < H; ++j) hb[j] = TANH(p[j]);
    }
}

/* dpre = (dy + dh) * act'(h), with tanh' = 1 - h^2 and relu' = [h > 0].
 * NumPy: dpre = (dy + dh) * (1 - h**2)   or   (dy + dh) * (h > 0) */
FR_KERNEL void FR_FN(rnn_step_bwd)(int B, int H, const REAL *restrict h, int ldh,
                                          const REAL *restrict dy, int ldy,
                                          const REAL *restrict dh, REAL *restrict dpre, int relu)
{
    for (int b = 0; b < B; ++b) {
        const REAL *hb = h + (size_t)b * ldh, *dyb = dy + (size_t)b * ldy, *dhb = dh + (size_t)b * H;
        REAL *d = dpre + (size_t)b * H;
        if (relu)
            for (int j = 0; j < H; ++j) d[j] = hb[j] > 0 ? dyb[j] + dhb[j] : 0;
        else
            for (int j = 0; j < H; ++j) d[j] = (dyb[j] + dhb[j]) * (1 - hb[j] * hb[j]);
    }
}

/* --------------------------------------------------------------- LSTM --- */

/* gates: B x 4H pre-activations [i f g o], overwritten with activations.
 * c = f * c_prev + i * g;  h = o * tanh(c), for hidden units j0 <= j < j1
 * (all of them, 0..H, unless threads share one sequence's units).
 * With peepholes (peep = [p_i p_f p_o], 3 x H; NULL for none) the gates also
 * see the cell: i, f read p_i * c_prev, p_f * c_prev and o reads p_o * c.
 * c_prev and c may be the same buffer (inference updates the cell in place).
 * One body, inlined with peep and in_place constants (0 or 1) so the plain
 * cell keeps its loop without the peephole terms, and so that in place the
 * cell is read and written through one pointer: with two that might alias,
 * GCC guards its vector loop with an overlap test that an in-place call
 * fails, and the pass runs slower (docs/DECISIONS.md).  Its five divisions a
 * unit are Newton steps where fr_lstm_newton() says so: with divides, the pass
 * took 2.5 times as long on an Intel Xeon (docs/DECISIONS.md).
 * Without peepholes each row goes in two passes: each gate's activation in
 * place, a loop of one function per gate block, then the cell update.  One
 * loop of all five functions kept its constants on the stack and, dividing,
 * ran twice as long on a Zen 3 core (docs/DECISIONS.md).  The arithmetic is
 * the same either way. */
static inline __attribute__((always_inline)) void FR_FN(lstm_fwd_body)(
    const int peep, const int in_place, int B, int H, int j0, int j1, REAL *restrict gates,
    const REAL *c_prev, REAL *c, REAL *restrict h, int ldh, const REAL *restrict pw)
{
    if (!peep) {
        WITH_NEWTON_RECIPROCALS(fr_lstm_newton(),
            for (int b = 0; b < B; ++b) {
                REAL *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
                REAL *cb = c + (size_t)b * H, *hb = h + (size_t)b * ldh;
                const REAL *cp = c_prev + (size_t)b * H;     /* not read in place */
                for (int j = j0; j < j1; ++j)
                    gi[j] = SIGMOID_N(gi[j]);
                for (int j = j0; j < j1; ++j)
                    gf[j] = SIGMOID_N(gf[j]);
                for (int j = j0; j < j1; ++j)
                    gg[j] = TANH_N(gg[j]);
                for (int j = j0; j < j1; ++j)
                    go[j] = SIGMOID_N(go[j]);
                for (int j = j0; j < j1; ++j) {
                    REAL cn = gf[j] * (in_place ? cb[j] : cp[j]) + gi[j] * gg[j];
                    cb[j] = cn;
                    hb[j] = go[j] * TANH_N(cn);
                }
            }
        );
        return;
    }
    WITH_NEWTON_RECIPROCALS(fr_lstm_newton(),
        for (int b = 0; b < B; ++b) {
            REAL *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
            REAL *cb = c + (size_t)b * H, *hb = h + (size_t)b * ldh;
            const REAL *cp = c_prev + (size_t)b * H;     /* not read in place */
            for (int j = j0; j < j1; ++j) {
                REAL ai = gi[j], af = gf[j], ao = go[j], cpj = in_place ? cb[j] : cp[j];
                if (peep) {
                    ai += pw[j] * cpj;
                    af += pw[H + j] * cpj;
                }
                REAL i = SIGMOID_N(ai), f = SIGMOID_N(af), g = TANH_N(gg[j]);
                REAL cn = f * cpj + i * g;
                if (peep)
                    ao += pw[2 * H + j] * cn;
                REAL o = SIGMOID_N(ao);
                gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;
                cb[j] = cn;
                hb[j] = o * TANH_N(cn);
            }
        }
    );
}

FR_KERNEL void FR_FN(lstm_step_fwd)(int B, int H, int j0, int j1, REAL *restrict gates,
                                    const REAL *c_prev, REAL *c, REAL *restrict h, int ldh,
                                    const REAL *restrict peep)
{
    const int in_place = c_prev == c;
    if (peep && in_place)
        FR_FN(lstm_fwd_body)(1, 1, B, H, j0, j1, gates, c, c, h, ldh, peep);
    else if (peep)
        FR_FN(lstm_fwd_body)(1, 0, B, H, j0, j1, gates, c_prev, c, h, ldh, peep);
    else if (in_place)
        FR_FN(lstm_fwd_body)(0, 1, B, H, j0, j1, gates, c, c, h, ldh, peep);
    else
        FR_FN(lstm_fwd_body)(0, 0, B, H, j0, j1, gates, c_prev, c, h, ldh, peep);
}

/* From dh = dy + dh_rec and the carried dc, the gate pre-activation
 * gradients dgates (B x 4H) and the new carry dc <- dc * f.
 *   tc = tanh(c)                       (recomputed, not stored)
 *   d_o = dh*tc*o(1-o)
 *   dc = dc + dh * o * (1 - tc^2) (+ d_o * p_o with peepholes: o reads c)
 *   d_i = dc*g*i(1-i)   d_f = dc*c_prev*f(1-f)   d_g = dc*i*(1-g^2)
 *   carry: dc * f (+ d_i * p_i + d_f * p_f with peepholes)
 * for hidden units j0 <= j < j1 (0..H unless threads share one sequence);
 * peep as in lstm_step_fwd (NULL: none). */
static inline __attribute__((always_inline)) void FR_FN(lstm_bwd_body)(
    const int peep, int B, int H, int j0, int j1, const REAL *restrict act,
    const REAL *restrict c, const REAL *restrict c_prev, const REAL *restrict dy, int ldy,
    const REAL *restrict dh_rec, REAL *restrict dc, REAL *restrict dgates,
    const REAL *restrict pw)
{
    for (int b = 0; b < B; ++b) {
        const REAL *ai = act + (size_t)b * 4 * H, *af = ai + H, *ag = af + H, *ao = ag + H;
        const REAL *cb = c + (size_t)b * H, *cp = c_prev + (size_t)b * H;
        const REAL *dyb = dy + (size_t)b * ldy, *dhb = dh_rec + (size_t)b * H;
        REAL *dcb = dc + (size_t)b * H;
        REAL *di = dgates + (size_t)b * 4 * H, *df = di + H, *dg = df + H, *dout = dg + H;
        for (int j = j0; j < j1; ++j) {
            REAL i = ai[j], f = af[j], g = ag[j], o = ao[j];
            REAL dh = dyb[j] + dhb[j];
            REAL tc = TANH(cb[j]);
            REAL dol = dh * tc * o * (1 - o);
            REAL dcj = dcb[j] + dh * o * (1 - tc * tc);
            if (peep)
                dcj += dol * pw[2 * H + j];
            REAL dil = dcj * g * i * (1 - i), dfl = dcj * cp[j] * f * (1 - f);
            di[j] = dil;
            df[j] = dfl;
            dg[j] = dcj * i * (1 - g * g);
            dout[j] = dol;
            dcb[j] = peep ? dcj * f + dil * pw[j] + dfl * pw[H + j] : dcj * f;
        }
    }
}

FR_KERNEL void FR_FN(lstm_step_bwd)(int B, int H, int j0, int j1, const REAL *restrict act,
                                    const REAL *restrict c, const REAL *restrict c_prev,
                                    const REAL *restrict dy, int ldy,
                                    const REAL *restrict dh_rec, REAL *restrict dc,
                                    REAL *restrict dgates, const REAL *restrict peep)
{
    if (peep)
        FR_FN(lstm_bwd_body)(1, B, H, j0, j1, act, c, c_prev, dy, ldy, dh_rec, dc, dgates,
                             peep);
    else
        FR_FN(lstm_bwd_body)(0, B, H, j0, j1, act, c, c_prev, dy, ldy, dh_rec, dc, dgates,
                             peep);
}

/* Peephole gradients of B rows of one step, for hidden units j0 <= j < j1:
 *   dp_i += d_i * c_prev   dp_f += d_f * c_prev   dp_o += d_o * c
 * summed row by row in order.  dp is [dp_i dp_f dp_o], 3 x H.
 * NumPy: dp += [(dg_i * c_prev).sum(0), (dg_f * c_prev).sum(0), (dg_o * c).sum(0)] */
FR_KERNEL void FR_FN(lstm_peep_grads)(int B, int H, int j0, int j1,
                                      const REAL *restrict dgates,
                                      const REAL *restrict c_prev,
                                      const REAL *restrict c, REAL *restrict dp)
{
    for (int b = 0; b < B; ++b) {
        const REAL *di = dgates + (size_t)b * 4 * H, *df = di + H, *dout = df + 2 * H;
        const REAL *cp = c_prev + (size_t)b * H, *cb = c + (size_t)b * H;
        for (int j = j0; j < j1; ++j) {
            dp[j] += di[j] * cp[j];
            dp[H + j] += df[j] * cp[j];
            dp[2 * H + j] += dout[j] * cb[j];
        }
    }
}

/* ---------------------------------------------------------------- GRU --- */

/* gates: B rows of stride 4H holding the input side [x_r x_z x_n] (biases
 * b_ir+b_hr, b_iz+b_hz, b_in included) and a free 4th block; gh: B x 3H,
 * the recurrent product W_hh h_prev without bias.  Overwrites the row with
 * the activations [r z n hn], hn = W_hn h_prev + b_hn, which backward needs:
 *   r = sigmoid(x_r + gh_r)   z = sigmoid(x_z + gh_z)
 *   n = tanh(x_n + r * hn)     h = (1 - z) * n + z * h_prev
 * for hidden units j0 <= j < j1 (0..H unless threads share one sequence). */
FR_KERNEL void FR_FN(gru_step_fwd)(int B, int H, int j0, int j1, REAL *restrict gates,
                                          const REAL *restrict gh, const REAL *restrict b_hn,
                                          const REAL *restrict h_prev, int ldhp,
                                          REAL *restrict h, int ldh)
{
    for (int b = 0; b < B; ++b) {
        REAL *xr = gates + (size_t)b * 4 * H, *xz = xr + H, *xn = xz + H, *shn = xn + H;
        const REAL *hr = gh + (size_t)b * 3 * H, *hz = hr + H, *hnn = hz + H;
        const REAL *hp = h_prev + (size_t)b * ldhp;
        REAL *hb = h + (size_t)b * ldh;
        /* a loop per function, as in lstm_fwd_body: one loop of all three ran
         * a third longer (docs/DECISIONS.md) */
        for (int j = j0; j < j1; ++j)
            xr[j] = SIGMOID(xr[j] + hr[j]);
        for (int j = j0; j < j1; ++j)
            xz[j] = SIGMOID(xz[j] + hz[j]);
        for (int j = j0; j < j1; ++j) {
            REAL hn = hnn[j] + b_hn[j];
            REAL n = TANH(xn[j] + xr[j] * hn);
            xn[j] = n; shn[j] = hn;
            hb[j] = (1 - xz[j]) * n + xz[j] * hp[j];
        }
    }
}

/* From dh = dy + dh (dh is the carried recurrent gradient, B x H) and the
 * saved [r z n hn], the input-side gate gradients dgi and the hidden-side
 * dgh (B x 3H each), and the direct part of the carry dh <- dh * z (the
 * caller then adds dgh W_hh into dh with one packed product):
 *   d_n = dh (1-z)(1-n^2)   d_z = dh (h_prev - n) z(1-z)   d_r = d_n hn r(1-r)
 *   dgi = [d_r d_z d_n]     dgh = [d_r d_z d_n*r] */
FR_KERNEL void FR_FN(gru_step_bwd)(int B, int H, const REAL *restrict act,
                                          const REAL *restrict h_prev, int ldhp,
                                          const REAL *restrict dy, int ldy, REAL *restrict dh,
                                          REAL *restrict dgi, REAL *restrict dgh)
{
    for (int b = 0; b < B; ++b) {
        const REAL *ar = act + (size_t)b * 4 * H, *az = ar + H, *an = az + H, *ahn = an + H;
        const REAL *hp = h_prev + (size_t)b * ldhp, *dyb = dy + (size_t)b * ldy;
        REAL *dhb = dh + (size_t)b * H;
        REAL *ir = dgi + (size_t)b * 3 * H, *iz = ir + H, *in = iz + H;
        REAL *hr = dgh + (size_t)b * 3 * H, *hz = hr + H, *hn = hz + H;
        for (int j = 0; j < H; ++j) {
            REAL r = ar[j], z = az[j], n = an[j];
            REAL d = dyb[j] + dhb[j];
            REAL dn = d * (1 - z) * (1 - n * n);
            REAL dz = d * (hp[j] - n) * z * (1 - z);
            REAL dr = dn * ahn[j] * r * (1 - r);
            ir[j] = dr; iz[j] = dz; in[j] = dn;
            hr[j] = dr; hz[j] = dz; hn[j] = dn * r;
            dhb[j] = d * z;
        }
    }
}

/* -------------------------------------------- GRU, reset before (ONNX's
 * linear_before_reset = 0, Keras' reset_after = False) --- */

/* First half of a reset-before step.  gates rows (stride 4H) hold the input
 * side [x_r x_z x_n] with every bias folded in (b_hn too: it is outside the
 * reset product here); gh[:, :2H] = W_h{r,z} h_prev.  For units j0 <= j < j1:
 *   r = sigmoid(x_r + gh_r) -> the r block;  r * h_prev -> the 4th block,
 * the operand of the n block's product, which backward also needs. */
FR_KERNEL void FR_FN(gru_rb_step_reset)(int B, int H, int j0, int j1, REAL *restrict gates,
                                        const REAL *restrict gh,
                                        const REAL *restrict h_prev, int ldhp)
{
    for (int b = 0; b < B; ++b) {
        REAL *xr = gates + (size_t)b * 4 * H, *rh = xr + 3 * H;
        const REAL *hr = gh + (size_t)b * 3 * H, *hp = h_prev + (size_t)b * ldhp;
        for (int j = j0; j < j1; ++j) {
            REAL r = SIGMOID(xr[j] + hr[j]);
            xr[j] = r;
            rh[j] = r * hp[j];
        }
    }
}

/* Second half, once gh[:, 2H:] = W_hn (r * h_prev):
 *   z = sigmoid(x_z + gh_z)   n = tanh(x_n + gh_n)   h = (1 - z) * n + z * h_prev
 * leaving the row as [r z n r*h_prev]. */
FR_KERNEL void FR_FN(gru_rb_step_fwd)(int B, int H, int j0, int j1, REAL *restrict gates,
                                      const REAL *restrict gh, const REAL *restrict h_prev,
                                      int ldhp, REAL *restrict h, int ldh)
{
    for (int b = 0; b < B; ++b) {
        REAL *xz = gates + (size_t)b * 4 * H + H, *xn = xz + H;
        const REAL *hz = gh + (size_t)b * 3 * H + H, *hn = hz + H;
        const REAL *hp = h_prev + (size_t)b * ldhp;
        REAL *hb = h + (size_t)b * ldh;
        for (int j = j0; j < j1; ++j) {
            REAL z = SIGMOID(xz[j] + hz[j]);
            REAL n = TANH(xn[j] + hn[j]);
            xz[j] = z; xn[j] = n;
            hb[j] = (1 - z) * n + z * hp[j];
        }
    }
}

/* Backward of a reset-before step, first half.  From d = dy + dh (dh the
 * carried gradient) and the saved [r z n r*h_prev]:
 *   d_n = d (1-z)(1-n^2)   d_z = d (h_prev - n) z(1-z)   dh <- d z
 * into dg[:, H:2H] and dg[:, 2H:] (B x 3H rows).  The caller then writes
 * q = d(r*h_prev) = d_n W_hn into dg[:, :H] for the second half. */
FR_KERNEL void FR_FN(gru_rb_step_bwd_zn)(int B, int H, const REAL *restrict act,
                                         const REAL *restrict h_prev, int ldhp,
                                         const REAL *restrict dy, int ldy, REAL *restrict dh,
                                         REAL *restrict dg)
{
    for (int b = 0; b < B; ++b) {
        const REAL *az = act + (size_t)b * 4 * H + H, *an = az + H;
        const REAL *hp = h_prev + (size_t)b * ldhp, *dyb = dy + (size_t)b * ldy;
        REAL *dhb = dh + (size_t)b * H;
        REAL *dz = dg + (size_t)b * 3 * H + H, *dn = dz + H;
        for (int j = 0; j < H; ++j) {
            REAL z = az[j], n = an[j];
            REAL d = dyb[j] + dhb[j];
            dn[j] = d * (1 - z) * (1 - n * n);
            dz[j] = d * (hp[j] - n) * z * (1 - z);
            dhb[j] = d * z;
        }
    }
}

/* Second half: with q = dg[:, :H] = d(r*h_prev),
 *   d_r = q h_prev r(1-r) -> dg[:, :H]     dh += q r
 * (the caller then adds [d_r d_z] W_h{r,z} into dh). */
FR_KERNEL void FR_FN(gru_rb_step_bwd_r)(int B, int H, const REAL *restrict act,
                                        const REAL *restrict h_prev, int ldhp,
                                        REAL *restrict dh, REAL *restrict dg)
{
    for (int b = 0; b < B; ++b) {
        const REAL *ar = act + (size_t)b * 4 * H;
        const REAL *hp = h_prev + (size_t)b * ldhp;
        REAL *dhb = dh + (size_t)b * H, *dr = dg + (size_t)b * 3 * H;
        for (int j = 0; j < H; ++j) {
            REAL r = ar[j], q = dr[j];
            dr[j] = q * hp[j] * r * (1 - r);
            dhb[j] += q * r;
        }
    }
}

/* ------------------------------------------------- activations on arrays --- */

/* y = sigmoid(x) and y = tanh(x) over n elements: the exact scalar functions
 * the cell passes use (newton: SIGMOID_N and TANH_N), exposed so the tests can
 * measure their error. */
FR_KERNEL void FR_FN(sigmoid_array)(int n, const REAL *restrict x, REAL *restrict y,
                                    int newton)
{
    if (newton)
        WITH_NEWTON_RECIPROCALS(fr_fma_code(), for (int j = 0; j < n; ++j) y[j] = SIGMOID_N(x[j]););
    else
        for (int j = 0; j < n; ++j) y[j] = SIGMOID(x[j]);
}

FR_KERNEL void FR_FN(tanh_array)(int n, const REAL *restrict x, REAL *restrict y, int newton)
{
    if (newton)
        WITH_NEWTON_RECIPROCALS(fr_fma_code(), for (int j = 0; j < n; ++j) y[j] = TANH_N(x[j]););
    else
        for (int j = 0; j < n; ++j) y[j] = TANH(x[j]);
}
