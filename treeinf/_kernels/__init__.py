"""numba kernels: plain arrays in, arrays out. Nothing here sees an estimator."""
