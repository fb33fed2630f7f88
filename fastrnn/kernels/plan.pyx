"""A stack's one-step call, set up once and run many times (fastrnn.Stepper).

A call of a layer on one time step spends most of its time before the kernel
runs: validation, allocation, and the unpacking of a dozen array arguments.
A StepPlan keeps each layer's kernel arguments as the cell's forward function
set them up (pointers into buffers that the plan keeps alive, weights packed
once), so that a step is: copy the input in, run each layer's task, copy the
output out.  Only the cell modules fill a plan (their forward functions take
plan=, plan_layer=); this module runs it.  A plan is not thread-safe: its
buffers hold one stream's state.
"""

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from cython cimport floating
from fastrnn.kernels.threads cimport fr_barrier, fr_part_fn, fr_task_fn, run_parallel, run_staged


cdef class StepPlan:

    def __cinit__(self, int n_layers):
        self.n_layers = n_layers
        self.keep = []
        self.nthreads = <int*>calloc(n_layers, sizeof(int))
        self.tasks = <fr_task_fn*>calloc(n_layers, sizeof(fr_task_fn))
        self.parts = <fr_part_fn*>calloc(n_layers, sizeof(fr_part_fn))
        self.nstages = <long*>calloc(n_layers, sizeof(long))
        if (self.nthreads == NULL or self.tasks == NULL or self.parts == NULL
                or self.nstages == NULL):
            raise MemoryError()

    def __dealloc__(self):
        free(self.args)
        free(self.nthreads)
        free(self.tasks)
        free(self.parts)
        free(self.nstages)

    cdef void set_layer(self, int layer, const void* args, size_t size, size_t barrier_offset,
                        fr_task_fn task, int nthreads, fr_part_fn part, long nstages) except *:
        """Keep a copy of one layer's kernel arguments (every layer's are alike)."""
        if self.args == NULL:
            self.args = <char*>calloc(self.n_layers, size)
            if self.args == NULL:
                raise MemoryError()
            self.size, self.barrier_offset = size, barrier_offset
        memcpy(self.args + layer * self.size, args, size)
        self.tasks[layer] = task
        self.nthreads[layer] = nthreads
        self.parts[layer] = part
        self.nstages[layer] = nstages


def bind_io(StepPlan plan, floating[:, :, ::1] x, floating[:, :, ::1] y):
    """Name the plan's input buffer x (1, B, D) and output y (1, B, H) (the layers'
    arguments already point at them)."""
    plan.x, plan.x_bytes = &x[0, 0, 0], x.size * sizeof(floating)
    plan.y, plan.y_bytes = &y[0, 0, 0], y.size * sizeof(floating)
    plan.keep += [x, y]


def run_step(StepPlan plan, const floating[:, ::1] x, floating[:, ::1] out):
    """One step: x (B, D) in, each layer in turn, the last layer's h (B, H) into out.
    The caller checks the shapes (x and out have the plan's sizes)."""
    cdef int layer
    cdef char* args
    with nogil:
        memcpy(plan.x, &x[0, 0], plan.x_bytes)
        for layer in range(plan.n_layers):
            args = plan.args + layer * plan.size
            if plan.parts[layer] != NULL:
                run_staged(plan.nthreads[layer], plan.parts[layer], args, plan.nstages[layer],
                           plan.nthreads[layer])
            else:
                run_parallel(plan.nthreads[layer], plan.tasks[layer], args,
                             <fr_barrier*>(args + plan.barrier_offset))
        memcpy(&out[0, 0], plan.y, plan.y_bytes)
