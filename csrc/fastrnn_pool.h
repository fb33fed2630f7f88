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
 * fr_pool_run_staged(n, fn, ctx, nstages, nparts) runs a job of stages in
 * order, each of nparts parts: fn(ctx, stage, part, nparts) for every pair,
 * the parts of a stage after every part of the stages before it.  Parts are
 * claimed, not assigned: each thread claims its own part (part == tid, so
 * it keeps its data in its own cache), and takes another's when that one's
 * owner is late (see fr_wait_stage).  So a thread the OS has descheduled
 * holds up nobody unless it is inside a part, and the caller does all the
 * parts itself when the workers are asleep or their cores are taken.  The
 * caller does not wait for workers that hold no part, either: it returns
 * when every part is done, and a worker that comes late finds the job gone.  For a single sequence split
 * over threads, whose steps are microseconds, that is the difference
 * between running at one thread's speed and stalling at every step.
 *
 * Included by exactly one extension module (fastrnn/kernels/threads.pyx); others
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
typedef void (*fr_part_fn)(void *ctx, long stage, int part, int nparts);

#define FR_MAX_PARTS 8       /* parts per stage of a staged job */
#ifndef FR_STEAL_POLLS
#define FR_STEAL_POLLS 256   /* polls a thread waits for a part's owner (see fr_wait_stage) */
#endif

/* Every stage's parts in order, on the calling thread alone. */
static void fr_staged_alone(fr_part_fn fn, void *ctx, long nstages, int nparts)
{
    for (long stage = 0; stage < nstages; ++stage)
        for (int part = 0; part < nparts; ++part)
            fn(ctx, stage, part, nparts);
}

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

/* The state of a staged job: for each part, how many of its stages have
 * been claimed and how many are done, each in a word that also names the
 * job (its generation, in the top FR_GEN_BITS bits), so that a late
 * worker's claim fails on a job that is gone.  Each part's words sit in a
 * cache line of their own: its owner writes them, the others only read
 * them, save when they take a part its owner has not claimed. */
#define FR_GEN_BITS 20
#define FR_COUNT_MASK ((1UL << (64 - FR_GEN_BITS)) - 1)

static inline unsigned long fr_part_word(long gen, long count)
{
    return ((unsigned long)gen << (64 - FR_GEN_BITS)) | ((unsigned long)count & FR_COUNT_MASK);
}

static inline long fr_word_gen(unsigned long w) { return (long)(w >> (64 - FR_GEN_BITS)); }
static inline long fr_word_count(unsigned long w) { return (long)(w & FR_COUNT_MASK); }

typedef struct {
    unsigned long claimed __attribute__((aligned(64)));   /* stages of this part claimed */
    unsigned long done __attribute__((aligned(64)));      /* stages of this part done */
} fr_part_state;

/* A staged job's threads work stage by stage: wait until every part of the
 * stage before is done, claim their own part (part tid) and run it.  While
 * it waits, a thread takes a part of the stage before that is still
 * unclaimed after FR_STEAL_POLLS polls: owners claim theirs within a cache
 * transfer of the stage opening, and reading an owner's claim word at every
 * step would make the owner's next claim wait for the line to come back.
 * Once an owner has not come in time, its parts are taken without waiting,
 * until it is seen claiming them again.  Parts without an owner (the pool
 * gave fewer threads than parts) are taken at once.  fn and ctx are used
 * only under a claim, that is while the job's caller still waits for the
 * claimed part. */
static inline int fr_claim_part(fr_part_state *p, long gen, long stage)
{
    unsigned long w = fr_part_word(gen, stage);
    return __atomic_compare_exchange_n(&p->claimed, &w, fr_part_word(gen, stage + 1), 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static inline void fr_run_part(fr_part_state *p, long gen, long stage, int part, int nparts,
                               fr_part_fn fn, void *ctx)
{
    fn(ctx, stage, part, nparts);
    __atomic_store_n(&p->done, fr_part_word(gen, stage + 1), __ATOMIC_RELEASE);
}

/* Wait until every part of the stages before `stage` is done, taking parts
 * whose owners are away (see above).  Returns 0 if the job is gone. */
static int fr_wait_stage(fr_part_state *parts, long gen, long stage, int nthreads,
                         fr_part_fn fn, void *ctx, int nparts, unsigned *patience)
{
    for (int q = 0; q < nparts; ++q) {
        unsigned polls = 0;
        int owner_seen = 0;
        for (;;) {
            unsigned long w = __atomic_load_n(&parts[q].done, __ATOMIC_ACQUIRE);
            if (fr_word_gen(w) != gen)
                return 0;
            if (fr_word_count(w) >= stage)
                break;
            if (!owner_seen && (q >= nthreads || polls >= *patience)) {
                w = __atomic_load_n(&parts[q].claimed, __ATOMIC_ACQUIRE);
                if (fr_word_count(w) < stage && fr_claim_part(&parts[q], gen, stage - 1)) {
                    if (q < nthreads)
                        *patience = 0;            /* its owner did not come in time */
                    fr_run_part(&parts[q], gen, stage - 1, q, nparts, fn, ctx);
                    break;
                }
                owner_seen = 1;                   /* someone runs it: wait for it */
                if (q < nthreads && *patience == 0)
                    *patience = FR_STEAL_POLLS;   /* perhaps its owner, back */
            }
            fr_cpu_relax();
            if (++polls >= 2048)
                sched_yield();   /* as in fr_barrier_wait */
        }
    }
    return 1;
}

/* Run the staged job `gen` as thread tid of nthreads until every part is
 * done or the job is no longer the current one. */
static void fr_staged_loop(fr_part_state *parts, long gen, int tid, int nthreads,
                           fr_part_fn fn, void *ctx, long nstages, int nparts)
{
    unsigned patience = FR_STEAL_POLLS;
    long stage = nstages;
    gen &= (1L << FR_GEN_BITS) - 1;
    for (int q = 0; q < nparts; ++q) {     /* a late worker starts where the job is */
        unsigned long w = __atomic_load_n(&parts[q].claimed, __ATOMIC_ACQUIRE);
        if (fr_word_gen(w) != gen)
            return;
        if (fr_word_count(w) < stage)
            stage = fr_word_count(w);
    }
    for (; stage <= nstages; ++stage) {
        if (!fr_wait_stage(parts, gen, stage, nthreads, fn, ctx, nparts, &patience))
            return;
        if (stage < nstages && tid < nparts && fr_claim_part(&parts[tid], gen, stage))
            fr_run_part(&parts[tid], gen, stage, tid, nparts, fn, ctx);
    }
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* workers sleep here between jobs */
    pthread_cond_t done;       /* the caller sleeps here until workers finish */
    int started;               /* worker threads running */
    int busy;                  /* a job is in progress */
    long generation;           /* +2 per job, odd while one is published; workers watch it */
    int remaining;             /* workers yet to finish the current job */
    fr_task_fn fn;
    void *ctx;
    int njob;                  /* tasks in the current job, caller included */
    fr_part_fn part_fn;        /* a staged job (fn is NULL then) */
    long nstages;
    int nparts;
    fr_part_state parts[FR_MAX_PARTS];
    pthread_t threads[FR_MAX_THREADS];
    long start_generation[FR_MAX_THREADS];   /* the generation a new worker has seen */
} fr_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

/* Publish a job to the workers, under the pool's lock.  The generation is
 * odd while the fields are written (a sequence lock): a worker reads them
 * between two equal, even loads of it. */
static void fr_pool_publish(fr_task_fn fn, fr_part_fn part_fn, void *ctx, int njob,
                            long nstages, int nparts)
{
    long g = fr_pool.generation;
    __atomic_store_n(&fr_pool.generation, g + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    fr_pool.fn = fn;
    fr_pool.part_fn = part_fn;
    fr_pool.ctx = ctx;
    fr_pool.njob = njob;
    fr_pool.nstages = nstages;
    fr_pool.nparts = nparts;
    if (fn == NULL) {
        for (int q = 0; q < nparts; ++q) {
            __atomic_store_n(&fr_pool.parts[q].claimed, fr_part_word(g + 2, 0), __ATOMIC_RELAXED);
            __atomic_store_n(&fr_pool.parts[q].done, fr_part_word(g + 2, 0), __ATOMIC_RELAXED);
        }
    } else {
        fr_pool.remaining = fr_pool.started;   /* every worker checks in */
    }
    __atomic_store_n(&fr_pool.generation, g + 2, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&fr_pool.wake);
}

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
        /* The job's description, read consistently (see fr_pool_publish):
         * the caller of a staged job does not wait for workers, so it may
         * be publishing the next job while a late worker reads this one. */
        fr_task_fn fn;
        fr_part_fn part_fn;
        void *ctx;
        long nstages;
        int njob, nparts;
        do {
            seen = __atomic_load_n(&fr_pool.generation, __ATOMIC_ACQUIRE);
            if (seen & 1) {            /* being written */
                fr_cpu_relax();
                continue;
            }
            fn = fr_pool.fn;
            part_fn = fr_pool.part_fn;
            ctx = fr_pool.ctx;
            njob = fr_pool.njob;
            nstages = fr_pool.nstages;
            nparts = fr_pool.nparts;
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
        } while ((seen & 1) || __atomic_load_n(&fr_pool.generation, __ATOMIC_RELAXED) != seen);
        if (fn == NULL) {      /* staged: nobody waits for this worker */
            if (id < njob)
                fr_staged_loop(fr_pool.parts, seen, id, njob, part_fn, ctx, nstages, nparts);
            continue;
        }
        if (id < njob)
            fn(ctx, id, njob);
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

/* Take the workers for a job of up to n tasks and publish it (fn, or a
 * staged job's part_fn); returns the tasks it gets, 1 when the pool is busy
 * with another caller's job (fastrnn may be called from several Python
 * threads at once) or no worker can start.  With 1 nothing is published and
 * the caller runs the job alone; else it clears fr_pool.busy when done. */
static int fr_pool_start(int n, fr_task_fn fn, fr_part_fn part_fn, void *ctx, long nstages,
                         int nparts, fr_barrier *barrier)
{
    if (n <= 1)
        return 1;
    /* Before the lock: a fork between taking the lock and registering
     * would leave the child a locked pool it could never use. */
    pthread_once(&fr_atfork_once, fr_register_atfork);
    pthread_mutex_lock(&fr_pool.lock);
    if (fr_pool.busy) {
        n = 1;
    } else {
        int avail = fr_pool_grow(n);
        n = n < avail ? n : avail;
        if (n > 1) {
            if (barrier)
                fr_barrier_init(barrier, n);
            fr_pool.busy = 1;
            fr_pool_publish(fn, part_fn, ctx, n, nstages, nparts);
        }
    }
    pthread_mutex_unlock(&fr_pool.lock);
    return n;
}

static int fr_pool_run(int n, fr_task_fn fn, void *ctx, fr_barrier *barrier)
{
    n = fr_pool_start(n, fn, NULL, ctx, 0, 0, barrier);
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

static int fr_pool_run_staged(int n, fr_part_fn fn, void *ctx, long nstages, int nparts)
{
    if (n > nparts)
        n = nparts;
    if (nparts > FR_MAX_PARTS || nstages <= 0)
        n = 1;
    n = fr_pool_start(n, NULL, fn, ctx, nstages, nparts, NULL);
    if (n <= 1) {
        fr_staged_alone(fn, ctx, nstages, nparts);
        return 1;
    }
    /* Returns when every part is done: it ends by waiting for the last stage. */
    fr_staged_loop(fr_pool.parts, fr_pool.generation, 0, n, fn, ctx, nstages, nparts);
    pthread_mutex_lock(&fr_pool.lock);
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
static int fr_pool_run_staged(int n, fr_part_fn fn, void *ctx, long nstages, int nparts)
{
    (void)n;
    fr_staged_alone(fn, ctx, nstages, nparts);
    return 1;
}
#endif

#endif /* FASTRNN_POOL_H */
