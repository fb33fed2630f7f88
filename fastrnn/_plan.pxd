# A stack's one-step call set up once: see fastrnn/_plan.pyx.

from fastrnn._threads cimport fr_task_fn


cdef class StepPlan:
    cdef int n_layers
    cdef size_t size              # bytes of one layer's kernel arguments
    cdef size_t barrier_offset    # where in them the job's barrier lives
    cdef char* args               # n_layers argument structs, size bytes apart
    cdef int* nthreads
    cdef fr_task_fn* tasks
    cdef void* x                  # layer 0's input (1, B, D)
    cdef void* y                  # the last layer's output (1, B, H)
    cdef size_t x_bytes, y_bytes
    cdef public list keep         # the arrays the arguments point into

    cdef void set_layer(self, int layer, const void* args, size_t size, size_t barrier_offset,
                        fr_task_fn task, int nthreads) except *
