"""The CTC loss's forward-backward recursion (Graves et al. 2006), in log space.

One call runs every sequence of a batch: its forward variables alpha, its
negative log-likelihood, then its backward variables beta two rows at a time,
turning each (t, s) into its share of the gradient on the way.  Each row is one
pass of csrc/fastrnn_ctc.h over the whole extended target (unreachable states
stay -inf by the recursion itself), branch-free so that it vectorises.  Sequences are
shared out over fastrnn's threads, each writing only its own rows of the
gradient.  fastrnn/training/ctc.py validates and allocates; this trusts it.

For a target l of length S the extended target l' has 2S + 1 labels (blanks
around and between the labels, l'_s = blank for even s, l_{(s-1)/2} for odd s),
and with y_t = log_probs[t, n, :] and input length L:

    alpha_0(0) = y_0[blank],  alpha_0(1) = y_0[l_0]
    alpha_t(s) = y_t[l'_s] + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1),
                                       alpha_{t-1}(s-2) if l'_s != blank and l'_s != l'_{s-2})
    log p(l | y) = logsumexp(alpha_{L-1}(2S), alpha_{L-1}(2S-1))

beta_t(s) is the same recursion from the end, and the gradient of -log p with
respect to y_t[c] is -sum_{s: l'_s = c} exp(alpha_t(s) + beta_t(s) - y_t[c] - log p).
"""

from cython cimport floating
from libc.math cimport INFINITY, exp, expf, log1p, log1pf
from libc.stdint cimport int64_t
from libc.string cimport memset

from fastrnn.kernels.threads cimport fr_barrier, fr_task_fn, run_parallel


cdef struct Job:
    const void* log_probs    # (T, N, C)
    void* grad               # (T, N, C), written
    void* nll                # (N,), written
    void* work               # per sequence: alpha, beta's two rows, four vectors (below)
    const void* scale        # (N,): the gradient's factor per sequence
    const int64_t* targets   # concatenated
    const int64_t* target_start
    const int64_t* input_lengths
    const int64_t* target_lengths
    const int64_t* work_start
    int T, N, C, blank
    fr_barrier barrier


cdef extern from "fastrnn_ctc.h" nogil:
    # one row of alpha, and one of beta with its states' posteriors (csrc/fastrnn_ctc.h)
    void fr_ctc_alpha_row_f32(int P, const float* prev, const float* skip, const float* ye,
                              float* cur)
    void fr_ctc_alpha_row_f64(int P, const double* prev, const double* skip,
                              const double* ye, double* cur)
    void fr_ctc_beta_row_f32(int P, const float* nxt, const float* skip2, const float* ye,
                             const float* alpha, float ll, float* cur, float* gamma)
    void fr_ctc_beta_row_f64(int P, const double* nxt, const double* skip2,
                             const double* ye, const double* alpha, double ll, double* cur,
                             double* gamma)


cdef inline floating fexp(floating x) noexcept nogil:
    """exp(x) for x <= 0, exactly 0 below where it is under the dtype's rounding next to 1."""
    if floating is float:
        return expf(x) if x > -32 else 0
    else:
        return exp(x) if x > -64 else 0


cdef inline floating lse2(floating a, floating b) noexcept nogil:
    """log(exp(a) + exp(b)); -inf when both are."""
    if a < b:
        a, b = b, a
    if a == -INFINITY:
        return a
    if floating is float:
        return a + log1pf(fexp(b - a))
    else:
        return a + log1p(fexp(b - a))


cdef inline int64_t label(const int64_t* tg, int blank, int s) noexcept nogil:
    """l'_s: the blank at even s, the target's label (s - 1) / 2 at odd s."""
    return blank if (s & 1) == 0 else tg[s >> 1]


cdef inline bint skips(const int64_t* tg, int s) noexcept nogil:
    """Whether alpha may come to s from s - 2: s is a label unlike the one before it."""
    return (s & 1) == 1 and s >= 2 and tg[s >> 1] != tg[(s >> 1) - 1]


cdef void one_sequence(Job* j, floating* tag, int n) noexcept nogil:
    """Loss and gradient rows of sequence n (tag only selects the dtype)."""
    cdef int T = j.T, N = j.N, C = j.C, blank = j.blank
    cdef int L = <int>j.input_lengths[n], S = <int>j.target_lengths[n]
    cdef int P = 2 * S + 1, W = P + 2                # a row of alpha or beta, padded
    cdef long row = <long>N * C                       # stride of t in log_probs and grad
    cdef const floating* lp = <const floating*>j.log_probs + <long>n * C
    cdef floating* grad = <floating*>j.grad + <long>n * C
    cdef const int64_t* tg = j.targets + j.target_start[n]
    # work: alpha (L rows, data from column 2), beta (2 rows, data from column 0),
    # then ye (y_t at each l'_s), gamma, skip and skip2 (P each)
    cdef floating* alpha = <floating*>j.work + j.work_start[n]
    cdef floating* beta = alpha + <long>L * W
    cdef floating* ye = beta + 2 * W
    cdef floating* gamma = ye + P
    cdef floating* skip = gamma + P
    cdef floating* skip2 = skip + P
    cdef floating scale = (<const floating*>j.scale)[n]
    cdef floating ll
    cdef floating* cur
    cdef const floating* y
    cdef int t, s
    for t in range(T):
        memset(grad + t * row, 0, C * sizeof(floating))
    if L == 0:
        (<floating*>j.nll)[n] = 0 if S == 0 else INFINITY
        return
    for s in range(P):
        skip[s] = 0 if skips(tg, s) else -INFINITY
    for s in range(P):
        skip2[s] = skip[s + 2] if s + 2 < P else -INFINITY
    # alpha: the first row by hand, then row after row from the one before
    for s in range(W):
        alpha[s] = -INFINITY
    cur = alpha + 2
    cur[0] = lp[blank]
    if S > 0:
        cur[1] = lp[tg[0]]
    for t in range(1, L):
        cur = alpha + <long>t * W + 2
        alpha[<long>t * W] = alpha[<long>t * W + 1] = -INFINITY     # the padding
        y = lp + t * row
        for s in range(P):
            ye[s] = y[label(tg, blank, s)]
        if floating is float:
            fr_ctc_alpha_row_f32(P, cur - W, skip, ye, cur)
        else:
            fr_ctc_alpha_row_f64(P, cur - W, skip, ye, cur)
    ll = lse2(cur[P - 1], cur[P - 2] if S > 0 else -INFINITY)
    (<floating*>j.nll)[n] = -ll
    if ll == -INFINITY:
        return       # no alignment: the gradient rows stay zero
    # beta from the end, two rows (t % 2), each state's posterior
    # gamma_t(s) = exp(alpha_t(s) + beta_t(s) - y_t[l'_s] - log p) added to the gradient
    t = L - 1
    cur = beta + (t & 1) * W
    y = lp + t * row
    for s in range(W):
        cur[s] = -INFINITY
    cur[P - 1] = y[blank]
    grad[t * row + blank] -= scale * fexp(alpha[<long>t * W + 2 + P - 1] - ll)
    if S > 0:
        cur[P - 2] = y[tg[S - 1]]
        grad[t * row + tg[S - 1]] -= scale * fexp(alpha[<long>t * W + 2 + P - 2] - ll)
    while t > 0:
        t -= 1
        cur = beta + (t & 1) * W
        cur[P] = cur[P + 1] = -INFINITY
        y = lp + t * row
        for s in range(P):
            ye[s] = y[label(tg, blank, s)]
        if floating is float:
            fr_ctc_beta_row_f32(P, beta + ((t + 1) & 1) * W, skip2, ye,
                                alpha + <long>t * W + 2, ll, cur, gamma)
        else:
            fr_ctc_beta_row_f64(P, beta + ((t + 1) & 1) * W, skip2, ye,
                                alpha + <long>t * W + 2, ll, cur, gamma)
        for s in range(P):
            grad[t * row + label(tg, blank, s)] -= scale * gamma[s]


cdef void task_f32(void* job, int tid, int nt) noexcept nogil:
    cdef Job* j = <Job*>job
    cdef int n = tid
    while n < j.N:      # interleaved: lengths often vary along the batch
        one_sequence(j, <float*>NULL, n)
        n += nt


cdef void task_f64(void* job, int tid, int nt) noexcept nogil:
    cdef Job* j = <Job*>job
    cdef int n = tid
    while n < j.N:
        one_sequence(j, <double*>NULL, n)
        n += nt


def ctc_forward_backward(const floating[:, :, ::1] log_probs, const int64_t[::1] targets,
                         const int64_t[::1] target_start, const int64_t[::1] input_lengths,
                         const int64_t[::1] target_lengths, int blank,
                         const floating[::1] scale, const int64_t[::1] work_start,
                         floating[::1] work, floating[::1] nll,
                         floating[:, :, ::1] grad, int nthreads):
    """Write each sequence's negative log-likelihood into nll (N,) and
    grad[t, n, c] = scale[n] * d nll[n] / d log_probs[t, n, c] (zero past its input
    length, and for a sequence with no alignment, whose nll is inf).

    Sequence n's targets are targets[target_start[n]:][:target_lengths[n]]; its
    work is work[work_start[n]:], (L + 2) * (P + 2) + 4 P numbers with
    L = input_lengths[n], P = 2 * target_lengths[n] + 1.  Trusts its caller (fastrnn/training/ctc.py): lengths within T and the
    targets' size, labels in [0, C) and not blank, work large enough.
    """
    cdef Job j
    j.T, j.N, j.C = <int>log_probs.shape[0], <int>log_probs.shape[1], <int>log_probs.shape[2]
    if j.T == 0 or j.N == 0 or j.C == 0:
        return
    j.blank = blank
    j.log_probs = &log_probs[0, 0, 0]
    j.grad = &grad[0, 0, 0]
    j.nll = &nll[0]
    j.work = &work[0]
    j.scale = &scale[0]
    j.targets = &targets[0] if targets.shape[0] > 0 else NULL
    j.target_start = &target_start[0]
    j.input_lengths = &input_lengths[0]
    j.target_lengths = &target_lengths[0]
    j.work_start = &work_start[0]
    cdef fr_task_fn task = task_f32 if floating is float else task_f64
    with nogil:
        run_parallel(max(1, min(nthreads, j.N)), task, &j, &j.barrier)
