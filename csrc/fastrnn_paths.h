/*
 * The instruction-set paths of a reduced-precision product (fastrnn_q8.h,
 * fastrnn_bf16.h): paths are numbered from the portable one (0) up to the widest,
 * each product says which this CPU supports, and the best of them is chosen on first
 * use and kept for the process: the widest one supported, passing over those the
 * product's `preferred` test turns down (NULL: none; a path the CPU runs slowly).
 * Tests set another to compare them.  Plain C.
 */
#ifndef FASTRNN_PATHS_H
#define FASTRNN_PATHS_H

typedef int (*fr_path_supported)(int path);

static inline int fr_best_path(int npaths, fr_path_supported supported,
                               fr_path_supported preferred)
{
    for (int p = npaths - 1; p > 0; --p)
        if (supported(p) && (!preferred || preferred(p)))
            return p;
    return 0;
}

/* The path in *now, chosen on first use (threads racing store the same value). */
static inline int fr_path_now(int *now, int npaths, fr_path_supported supported,
                              fr_path_supported preferred)
{
    int p = __atomic_load_n(now, __ATOMIC_RELAXED);
    if (p < 0) {
        p = fr_best_path(npaths, supported, preferred);
        __atomic_store_n(now, p, __ATOMIC_RELAXED);
    }
    return p;
}

/* Run path, or the best with -1; unchanged when this CPU lacks it. Returns the path
 * now in force. */
static inline int fr_path_set(int *now, int path, int npaths, fr_path_supported supported,
                              fr_path_supported preferred)
{
    if (path < 0)
        path = fr_best_path(npaths, supported, preferred);
    if (path < npaths && supported(path))
        __atomic_store_n(now, path, __ATOMIC_RELAXED);
    return fr_path_now(now, npaths, supported, preferred);
}

#endif /* FASTRNN_PATHS_H */
