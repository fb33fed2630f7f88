/*
 * Body of the optimizer and clipping passes, instantiated by fastrnn_optim.h
 * with REAL, FR_FN(x) and SQRT (the square root of REAL).  No include guard: included once per REAL.  Every
 * pass is element-wise over [0, n) (or a sum over it in double, summed in a
 * fixed order), so the threads' split of a parameter never changes a bit.
 */

/* SGD, torch.optim.SGD's rule, on n elements:
 *   d = g + wd * p;   b = d (first) or momentum * b + (1 - dampening) * d
 *   d = d + momentum * b (nesterov) or b;   p -= lr * d
 * With momentum == 0, b is not touched (may be NULL) and d is used as is. */
FR_KERNEL void FR_FN(sgd)(long n, REAL *restrict p, const REAL *restrict g, REAL *restrict b,
                          REAL lr, REAL momentum, REAL dampening, REAL wd, int nesterov,
                          int first)
{
    const REAL keep = 1 - dampening;
    for (long i = 0; i < n; ++i) {
        REAL d = g[i] + wd * p[i];
        if (momentum != 0) {
            REAL bi = first ? d : momentum * b[i] + keep * d;
            b[i] = bi;
            d = nesterov ? d + momentum * bi : bi;
        }
        p[i] -= lr * d;
    }
}

/* Adam (torch.optim.Adam's rule; decoupled: AdamW's), on n elements, at step t:
 *   p *= 1 - decay                                  (decay = lr * wd for AdamW, else 0)
 *   g' = g + l2 * p                                 (l2 = wd for Adam, else 0)
 *   m = b1 * m + (1 - b1) * g';   v = b2 * v + (1 - b2) * g'^2
 *   p -= step * m / (sqrt(v) / sqrt_bc2 + eps)
 * with step = lr / (1 - b1^t), sqrt_bc2 = sqrt(1 - b2^t), as torch divides. */
FR_KERNEL void FR_FN(adam)(long n, REAL *restrict p, const REAL *restrict g,
                           REAL *restrict m, REAL *restrict v, REAL b1, REAL b2, REAL eps,
                           REAL step, REAL sqrt_bc2, REAL l2, REAL decay)
{
    const REAL c1 = 1 - b1, c2 = 1 - b2, shrink = 1 - decay;
    for (long i = 0; i < n; ++i) {
        REAL pi = decay != 0 ? p[i] * shrink : p[i];
        REAL gi = g[i] + l2 * pi;
        REAL mi = b1 * m[i] + c1 * gi;
        REAL vi = b2 * v[i] + c2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * (mi / (SQRT(vi) / sqrt_bc2 + eps));
    }
}

/* sum of g_i^2 over n elements, in double, in 8 partial sums added in order. */
FR_KERNEL double FR_FN(sumsq)(long n, const REAL *restrict g)
{
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; ++l) {
            double x = (double)g[i + l];
            lane[l] += x * x;
        }
    double s = 0;
    for (int l = 0; l < 8; ++l)
        s += lane[l];
    for (; i < n; ++i)
        s += (double)g[i] * (double)g[i];
    return s;
}

/* g *= coef on n elements. */
FR_KERNEL void FR_FN(scale)(long n, REAL *restrict g, REAL coef)
{
    for (long i = 0; i < n; ++i)
        g[i] *= coef;
}
