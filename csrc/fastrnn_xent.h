/*
 * fastrnn softmax cross-entropy, one row at a time: plain C, no Python API.
 * The body is xent_impl.h, instantiated for float (_f32, fastrnn's
 * vectorisable exp, fr_expf_nonpos) and double (_f64, libm's exp).  Each
 * row's sums run in a fixed order, so a split of the rows between threads
 * never changes a bit.
 */
#ifndef FASTRNN_XENT_H
#define FASTRNN_XENT_H

#include <math.h>
#include "fastrnn_cells.h"   /* FR_KERNEL, fastrnn_math.h's fr_expf_nonpos */

#define REAL float
#define FR_FN(name) fr_##name##_f32
#define EXP_TERM fr_expf_nonpos
#define LANES 16
#include "xent_impl.h"
#undef REAL
#undef FR_FN
#undef EXP_TERM
#undef LANES

static inline double fr_exp_term_f64(double d) { return d == -INFINITY ? 0.0 : exp(d); }

#define REAL double
#define FR_FN(name) fr_##name##_f64
#define EXP_TERM fr_exp_term_f64
#define LANES 8
#include "xent_impl.h"
#undef REAL
#undef FR_FN
#undef EXP_TERM
#undef LANES

#endif /* FASTRNN_XENT_H */
