# Fused-type front end to the C element-wise passes in csrc/fastrnn_cells.h:
# kernels call one name; the float or double instance is chosen at compile
# time.  See the C header for the maths of each pass.

from cython cimport floating

cdef extern from "fastrnn_cells.h" nogil:
    void fr_set_lstm_newton(int mode)
    int fr_lstm_newton()
    void fr_fill_rows_f32(int rows, int cols, const float* v, float* a, int lda)
    void fr_fill_rows_f64(int rows, int cols, const double* v, double* a, int lda)
    void fr_colsum_add_f32(int rows, int cols, const float* a, int lda, float* out,
                           float* out2)
    void fr_colsum_add_f64(int rows, int cols, const double* a, int lda, double* out,
                           double* out2)
    void fr_rnn_step_fwd_f32(int B, int H, const float* pre, float* h, int ldh, int relu)
    void fr_rnn_step_fwd_f64(int B, int H, const double* pre, double* h, int ldh, int relu)
    void fr_rnn_step_bwd_f32(int B, int H, const float* h, int ldh, const float* dy, int ldy,
                             const float* dh, float* dpre, int relu)
    void fr_rnn_step_bwd_f64(int B, int H, const double* h, int ldh, const double* dy, int ldy,
                             const double* dh, double* dpre, int relu)
    void fr_lstm_step_fwd_f32(int B, int H, int j0, int j1, float* gates, const float* c_prev,
                              float* c, float* h, int ldh, const float* peep)
    void fr_lstm_step_fwd_f64(int B, int H, int j0, int j1, double* gates,
                              const double* c_prev, double* c, double* h, int ldh,
                              const double* peep)
    void fr_lstm_step_bwd_f32(int B, int H, int j0, int j1, const float* act, const float* c,
                              const float* c_prev, const float* dy, int ldy,
                              const float* dh_rec, float* dc, float* dgates, const float* peep)
    void fr_lstm_step_bwd_f64(int B, int H, int j0, int j1, const double* act, const double* c,
                              const double* c_prev, const double* dy, int ldy,
                              const double* dh_rec, double* dc, double* dgates,
                              const double* peep)
    void fr_lstm_peep_grads_f32(int B, int H, int j0, int j1, const float* dgates,
                                const float* c_prev, const float* c, float* dp)
    void fr_lstm_peep_grads_f64(int B, int H, int j0, int j1, const double* dgates,
                                const double* c_prev, const double* c, double* dp)
    void fr_gru_step_fwd_f32(int B, int H, int j0, int j1, float* gates, const float* gh,
                             const float* b_hn, const float* h_prev, int ldhp, float* h, int ldh)
    void fr_gru_step_fwd_f64(int B, int H, int j0, int j1, double* gates, const double* gh,
                             const double* b_hn, const double* h_prev, int ldhp, double* h,
                             int ldh)
    void fr_gru_step_bwd_f32(int B, int H, const float* act, const float* h_prev, int ldhp,
                             const float* dy, int ldy, float* dh, float* dgi, float* dgh)
    void fr_gru_step_bwd_f64(int B, int H, const double* act, const double* h_prev, int ldhp,
                             const double* dy, int ldy, double* dh, double* dgi, double* dgh)
    void fr_gru_rb_step_reset_f32(int B, int H, int j0, int j1, float* gates, const float* gh,
                                  const float* h_prev, int ldhp)
    void fr_gru_rb_step_reset_f64(int B, int H, int j0, int j1, double* gates,
                                  const double* gh, const double* h_prev, int ldhp)
    void fr_gru_rb_step_fwd_f32(int B, int H, int j0, int j1, float* gates, const float* gh,
                                const float* h_prev, int ldhp, float* h, int ldh)
    void fr_gru_rb_step_fwd_f64(int B, int H, int j0, int j1, double* gates, const double* gh,
                                const double* h_prev, int ldhp, double* h, int ldh)
    void fr_gru_rb_step_bwd_zn_f32(int B, int H, const float* act, const float* h_prev,
                                   int ldhp, const float* dy, int ldy, float* dh, float* dg)
    void fr_gru_rb_step_bwd_zn_f64(int B, int H, const double* act, const double* h_prev,
                                   int ldhp, const double* dy, int ldy, double* dh, double* dg)
    void fr_gru_rb_step_bwd_r_f32(int B, int H, const float* act, const float* h_prev,
                                  int ldhp, float* dh, float* dg)
    void fr_gru_rb_step_bwd_r_f64(int B, int H, const double* act, const double* h_prev,
                                  int ldhp, double* dh, double* dg)


cdef inline void fill_rows(int rows, int cols, const floating* v, floating* a,
                           int lda) noexcept nogil:
    if floating is float:
        fr_fill_rows_f32(rows, cols, v, a, lda)
    else:
        fr_fill_rows_f64(rows, cols, v, a, lda)


cdef inline void colsum_add(int rows, int cols, const floating* a, int lda,
                            floating* out, floating* out2=NULL) noexcept nogil:
    """out += the column sums of a (rows x cols, row stride lda), added row by row;
    out2 += the same unless NULL."""
    if floating is float:
        fr_colsum_add_f32(rows, cols, a, lda, out, out2)
    else:
        fr_colsum_add_f64(rows, cols, a, lda, out, out2)


cdef inline void rnn_step_fwd(int B, int H, const floating* pre, floating* h, int ldh,
                              bint relu) noexcept nogil:
    if floating is float:
        fr_rnn_step_fwd_f32(B, H, pre, h, ldh, relu)
    else:
        fr_rnn_step_fwd_f64(B, H, pre, h, ldh, relu)


cdef inline void rnn_step_bwd(int B, int H, const floating* h, int ldh, const floating* dy,
                              int ldy, const floating* dh, floating* dpre,
                              bint relu) noexcept nogil:
    if floating is float:
        fr_rnn_step_bwd_f32(B, H, h, ldh, dy, ldy, dh, dpre, relu)
    else:
        fr_rnn_step_bwd_f64(B, H, h, ldh, dy, ldy, dh, dpre, relu)


cdef inline void lstm_step_fwd(int B, int H, int j0, int j1, floating* gates,
                               const floating* c_prev, floating* c, floating* h,
                               int ldh, const floating* peep) noexcept nogil:
    if floating is float:
        fr_lstm_step_fwd_f32(B, H, j0, j1, gates, c_prev, c, h, ldh, peep)
    else:
        fr_lstm_step_fwd_f64(B, H, j0, j1, gates, c_prev, c, h, ldh, peep)


cdef inline void lstm_step_bwd(int B, int H, int j0, int j1, const floating* act,
                               const floating* c, const floating* c_prev, const floating* dy,
                               int ldy, const floating* dh_rec, floating* dc,
                               floating* dgates, const floating* peep) noexcept nogil:
    if floating is float:
        fr_lstm_step_bwd_f32(B, H, j0, j1, act, c, c_prev, dy, ldy, dh_rec, dc, dgates, peep)
    else:
        fr_lstm_step_bwd_f64(B, H, j0, j1, act, c, c_prev, dy, ldy, dh_rec, dc, dgates, peep)


cdef inline void lstm_peep_grads(int B, int H, int j0, int j1, const floating* dgates,
                                 const floating* c_prev, const floating* c,
                                 floating* dp) noexcept nogil:
    if floating is float:
        fr_lstm_peep_grads_f32(B, H, j0, j1, dgates, c_prev, c, dp)
    else:
        fr_lstm_peep_grads_f64(B, H, j0, j1, dgates, c_prev, c, dp)


cdef inline void gru_step_fwd(int B, int H, int j0, int j1, floating* gates,
                              const floating* gh, const floating* b_hn, const floating* h_prev,
                              int ldhp, floating* h, int ldh) noexcept nogil:
    if floating is float:
        fr_gru_step_fwd_f32(B, H, j0, j1, gates, gh, b_hn, h_prev, ldhp, h, ldh)
    else:
        fr_gru_step_fwd_f64(B, H, j0, j1, gates, gh, b_hn, h_prev, ldhp, h, ldh)


cdef inline void gru_step_bwd(int B, int H, const floating* act, const floating* h_prev,
                              int ldhp, const floating* dy, int ldy, floating* dh,
                              floating* dgi, floating* dgh) noexcept nogil:
    if floating is float:
        fr_gru_step_bwd_f32(B, H, act, h_prev, ldhp, dy, ldy, dh, dgi, dgh)
    else:
        fr_gru_step_bwd_f64(B, H, act, h_prev, ldhp, dy, ldy, dh, dgi, dgh)


cdef inline void gru_rb_step_reset(int B, int H, int j0, int j1, floating* gates,
                                   const floating* gh, const floating* h_prev,
                                   int ldhp) noexcept nogil:
    if floating is float:
        fr_gru_rb_step_reset_f32(B, H, j0, j1, gates, gh, h_prev, ldhp)
    else:
        fr_gru_rb_step_reset_f64(B, H, j0, j1, gates, gh, h_prev, ldhp)


cdef inline void gru_rb_step_fwd(int B, int H, int j0, int j1, floating* gates,
                                 const floating* gh, const floating* h_prev, int ldhp,
                                 floating* h, int ldh) noexcept nogil:
    if floating is float:
        fr_gru_rb_step_fwd_f32(B, H, j0, j1, gates, gh, h_prev, ldhp, h, ldh)
    else:
        fr_gru_rb_step_fwd_f64(B, H, j0, j1, gates, gh, h_prev, ldhp, h, ldh)


cdef inline void gru_rb_step_bwd_zn(int B, int H, const floating* act, const floating* h_prev,
                                    int ldhp, const floating* dy, int ldy, floating* dh,
                                    floating* dg) noexcept nogil:
    if floating is float:
        fr_gru_rb_step_bwd_zn_f32(B, H, act, h_prev, ldhp, dy, ldy, dh, dg)
    else:
        fr_gru_rb_step_bwd_zn_f64(B, H, act, h_prev, ldhp, dy, ldy, dh, dg)


cdef inline void gru_rb_step_bwd_r(int B, int H, const floating* act, const floating* h_prev,
                                   int ldhp, floating* dh, floating* dg) noexcept nogil:
    if floating is float:
        fr_gru_rb_step_bwd_r_f32(B, H, act, h_prev, ldhp, dh, dg)
    else:
        fr_gru_rb_step_bwd_r_f64(B, H, act, h_prev, ldhp, dh, dg)
