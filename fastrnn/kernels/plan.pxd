# A stack's one-step call set up once: see fastrnn/kernels/plan.pyx.

from cython cimport floating
from fastrnn.kernels.sequence cimport Packs, packs_task
from fastrnn.kernels.threads cimport fr_barrier, fr_part_fn, fr_task_fn, run_parallel, run_staged


cdef class StepPlan:
    cdef int n_layers
    cdef size_t size              # bytes of one layer's kernel arguments
    cdef size_t barrier_offset    # where in them the job's barrier lives
    cdef char* args               # n_layers argument structs, size bytes apart
    cdef int* nthreads
    cdef fr_task_fn* tasks
    cdef fr_part_fn* parts        # a layer's staged job (see run_or_plan), or NULL
    cdef long* nstages
    cdef void* x                  # layer 0's input (1, B, D)
    cdef void* y                  # the last layer's output (1, B, H)
    cdef size_t x_bytes, y_bytes
    cdef public list keep         # the arrays the arguments point into

    cdef void set_layer(self, int layer, const void* args, size_t size, size_t barrier_offset,
                        fr_task_fn task, int nthreads, fr_part_fn part, long nstages) except *


cdef inline void run_or_plan(StepPlan plan, int layer, void* args, size_t size,
                             fr_barrier* barrier, Packs* packs, floating* _, fr_task_fn task,
                             int nthreads, fr_part_fn part=NULL, long nstages=0) except *:
    """The end of a cell's forward function: run its job (args, size bytes, with its
    barrier and weight packs inside) on nthreads threads; or, with a plan, pack the
    weights once, here, and keep the arguments as the plan's layer `layer` (the
    caller adds the arrays they point into to plan.keep).

    With part, the job is staged instead (fastrnn.kernels.threads.run_staged: nstages
    stages of nthreads parts), and its stage 0 packs the weights when there
    are packs: a plan, which packs here, drops that stage."""
    if plan is None:
        with nogil:
            if part != NULL:
                run_staged(nthreads, part, args, nstages, nthreads)
            else:
                run_parallel(nthreads, task, args, barrier)
        return
    with nogil:
        packs_task(packs, _, 0, 1)
    if part != NULL and packs.count > 0:
        nstages -= 1
    packs.count = 0     # packed for all the plan's steps
    plan.set_layer(layer, args, size, <size_t>(<char*>barrier - <char*>args), task, nthreads,
                   part, nstages)
