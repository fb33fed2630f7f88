/*
 * fastrnn optimizer steps and gradient clipping, element-wise passes: plain C,
 * no Python API.  The body is optim_impl.h, instantiated for float (_f32)
 * and double (_f64); fastrnn/kernels/optim_step.pyx runs them over every
 * parameter of a model in one threaded job.
 */
#ifndef FASTRNN_OPTIM_H
#define FASTRNN_OPTIM_H

#include <math.h>
#include "fastrnn_cells.h"   /* FR_KERNEL */

#define REAL float
#define FR_FN(name) fr_##name##_f32
#define SQRT sqrtf
#include "optim_impl.h"
#undef REAL
#undef FR_FN
#undef SQRT

#define REAL double
#define FR_FN(name) fr_##name##_f64
#define SQRT sqrt
#include "optim_impl.h"
#undef REAL
#undef FR_FN
#undef SQRT

#endif /* FASTRNN_OPTIM_H */
