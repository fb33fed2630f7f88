"""What serves a layer's calls, apart from the layer: its Runtime (work-buffer pool, reused
inference arrays, split timings, packed weights, a step plan), cache-line aligned buffers,
the sorting of variable-length batches for the kernels, and NumPy's BLAS threads.

Internal: nothing here is public API.
"""
