/*
 * fastrnn's own worker threads: plain C over pthreads, no Python API, no
 * OpenMP (the build must work without it).
 *
 * fastrnn splits its kernels across cores itself and never asks BLAS for
 * threads: OpenBLAS workers busy-wait for about 100 ms after each threaded
 * call, and two thread pools competing for two cores halve each other.
 * These workers spin only briefly (FR_SPIN_NS) after a job, then sleep.
 *
 * fr_pool_run(n, fn, ctx, barrier) runs fn(ctx, tid, m) for tid = 0..m-1,
 * the caller being tid 0, and returns m when all are done.  m <= n: it is 1
 * when the pool is busy with another caller's job (fastrnn may be called
 * from several Python threads at once) or threads are unavailable.  Tasks
 * synchronise with fr_barrier_wait on the job's barrier, which fr_pool_run
 * initialises for m tasks before any starts.
 *
 * Included by exactly one extension module (fastrnn/_threads.pyx); others
 * reach it through that module's cimportable functions, so the process has
 * one pool.
 */
#ifndef FASTRNN_POOL_H
#define FASTRNN_POOL_H

#include <stddef.h>

#define FR_MAX_THREADS 64    /* caller included */
#ifndef FR_SPIN_NS
#define FR_SPIN_NS 1000000L  /* how long an idle worker polls before sleeping: waking a
                                sleeping thread costs tens to hundreds of us in a VM */
#endif

typedef void (*fr_task_fn)(void *ctx, int tid, int nthreads);

/* Sense-reversing barrier for the m tasks of one job. */
typedef struct {
    int count;
    int sense;
    int n;
} fr_barrier;

#if defined(__GNUC__) && !defined(_WIN32)
#define FR_HAVE_THREADS 1
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

static inline void fr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long fr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void fr_barrier_init(fr_barrier *b, int n)
{
    b->count = n;
    b->sense = 0;
    b->n = n;
}

static void fr_barrier_wait(fr_barrier *b)
{
    if (b->n <= 1)
        return;
    int s = __atomic_load_n(&b->sense, __ATOMIC_ACQUIRE);
    if (__atomic_sub_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == 0) {
        __atomic_store_n(&b->count, b->n, __ATOMIC_RELAXED);
        __atomic_store_n(&b->sense, !s, __ATOMIC_RELEASE);
        return;
    }
    /* Spin: the other tasks are on other cores and arrive within a step
     * (microseconds).  Past a few thousand polls one of them was probably
     * descheduled (more runnable threads than cores), so give the CPU away
     * between polls rather than burn the time slice it may need. */
    for (unsigned i = 1; __atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) == s; ++i) {
        fr_cpu_relax();
        if (i >= 2048)
            sched_yield();
    }
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* workers sleep here between jobs */
    pthread_cond_t done;       /* the caller sleeps here until workers finish */
    int started;               /* worker threads running */
    int busy;                  /* a job is in progress */
    long generation;           /* incremented per job; workers watch it */
    int remaining;             /* workers yet to finish the current job */
    fr_task_fn fn;
    void *ctx;
    int njob;                  /* tasks in the current job, caller included */
    pthread_t threads[FR_MAX_THREADS];
    long start_generation[FR_MAX_THREADS];   /* the generation a new worker has seen */
} fr_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void *fr_worker_main(void *arg)
{
    int id = (int)(size_t)arg;   /* 1 .. started */
    /* Not the current generation: the job that made this worker may already
     * have been published by the time the thread runs, and it must see it. */
    long seen = fr_pool.start_generation[id];
    for (;;) {
        long deadline = fr_now_ns() + FR_SPIN_NS;
        unsigned i = 0;
        while (__atomic_load_n(&fr_pool.generation, __ATOMIC_ACQUIRE) == seen) {
            fr_cpu_relax();
            if ((++i & 0xff) == 0 && fr_now_ns() > deadline)
                break;
        }
        if (__atomic_load_n(&fr_pool.generation, __ATOMIC_ACQUIRE) == seen) {
            pthread_mutex_lock(&fr_pool.lock);
            while (__atomic_load_n(&fr_pool.generation, __ATOMIC_ACQUIRE) == seen)
                pthread_cond_wait(&fr_pool.wake, &fr_pool.lock);
            pthread_mutex_unlock(&fr_pool.lock);
        }
        seen = __atomic_load_n(&fr_pool.generation, __ATOMIC_ACQUIRE);
        if (id < fr_pool.njob)
            fr_pool.fn(fr_pool.ctx, id, fr_pool.njob);
        if (__atomic_sub_fetch(&fr_pool.remaining, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&fr_pool.lock);
            pthread_cond_signal(&fr_pool.done);
            pthread_mutex_unlock(&fr_pool.lock);
        }
    }
    return NULL;
}

/* In a forked child the workers do not exist: forget them (and any job the
 * parent was running) so the child starts its own pool when it needs one. */
static void fr_pool_after_fork_child(void)
{
    pthread_mutex_init(&fr_pool.lock, NULL);
    pthread_cond_init(&fr_pool.wake, NULL);
    pthread_cond_init(&fr_pool.done, NULL);
    fr_pool.started = 0;
    fr_pool.busy = 0;
}

static pthread_once_t fr_atfork_once = PTHREAD_ONCE_INIT;

static void fr_register_atfork(void)
{
    pthread_atfork(NULL, NULL, fr_pool_after_fork_child);
}

/* Start workers up to want - 1 (caller is the other one); returns how many run. */
static int fr_pool_grow(int want)
{
    if (want > FR_MAX_THREADS)
        want = FR_MAX_THREADS;
    while (fr_pool.started < want - 1) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        fr_pool.start_generation[fr_pool.started + 1] = fr_pool.generation;
        int ok = pthread_create(&fr_pool.threads[fr_pool.started], &attr, fr_worker_main,
                                (void *)(size_t)(fr_pool.started + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok)
            break;
        fr_pool.started++;
    }
    return fr_pool.started + 1;
}

static int fr_pool_run(int n, fr_task_fn fn, void *ctx, fr_barrier *barrier)
{
    if (n > 1) {
        /* Before the lock: a fork between taking the lock and registering
         * would leave the child a locked pool it could never use. */
        pthread_once(&fr_atfork_once, fr_register_atfork);
        pthread_mutex_lock(&fr_pool.lock);
        if (fr_pool.busy) {
            n = 1;             /* another caller owns the workers: run alone */
        } else {
            int avail = fr_pool_grow(n);
            n = n < avail ? n : avail;
            if (n > 1) {
                if (barrier)
                    fr_barrier_init(barrier, n);
                fr_pool.busy = 1;
                fr_pool.fn = fn;
                fr_pool.ctx = ctx;
                fr_pool.njob = n;
                fr_pool.remaining = fr_pool.started;   /* every worker checks in */
                __atomic_add_fetch(&fr_pool.generation, 1, __ATOMIC_ACQ_REL);
                pthread_cond_broadcast(&fr_pool.wake);
            }
        }
        pthread_mutex_unlock(&fr_pool.lock);
    }
    if (n <= 1) {
        if (barrier)
            fr_barrier_init(barrier, 1);
        fn(ctx, 0, 1);
        return 1;
    }
    fn(ctx, 0, n);
    long deadline = fr_now_ns() + FR_SPIN_NS;
    unsigned i = 0;
    while (__atomic_load_n(&fr_pool.remaining, __ATOMIC_ACQUIRE) > 0) {
        fr_cpu_relax();
        if ((++i & 0xff) == 0 && fr_now_ns() > deadline)
            break;
    }
    pthread_mutex_lock(&fr_pool.lock);
    while (__atomic_load_n(&fr_pool.remaining, __ATOMIC_ACQUIRE) > 0)
        pthread_cond_wait(&fr_pool.done, &fr_pool.lock);
    fr_pool.busy = 0;
    pthread_mutex_unlock(&fr_pool.lock);
    return n;
}

#else  /* no pthreads: everything runs on the caller */
#define FR_HAVE_THREADS 0
static void fr_barrier_init(fr_barrier *b, int n) { b->count = b->n = 1; b->sense = 0; (void)n; }
static void fr_barrier_wait(fr_barrier *b) { (void)b; }
static int fr_pool_run(int n, fr_task_fn fn, void *ctx, fr_barrier *barrier)
{
    (void)n;
    if (barrier)
        fr_barrier_init(barrier, 1);
    fn(ctx, 0, 1);
    return 1;
}
#endif

#endif /* FASTRNN_POOL_H */
