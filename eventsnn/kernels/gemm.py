"""A float32 matrix product whose rounding does not depend on shapes, threads or the CPU.

BLAS products (``numpy.matmul``) sum each output over ``k`` in an order chosen by the
library's blocking, which depends on the matrix sizes, the number of threads and the CPU's
kernels (for instance ``OPENBLAS_CORETYPE``): the same image gives results that differ in the
last bits when it is evaluated in another batch, on a single-threaded Dask worker or on another
machine. :func:`matmul` sums every output element in increasing ``k`` with float32
accumulation and no reassociation (numba without ``fastmath``), vectorising across output
columns only, so each element is the same sequence of IEEE operations wherever it is computed.
The ANN forward pass (:func:`eventsnn.graph.conv2d`, :func:`linear`), the converter's linear maps
and the direct-coded input currents use it; a measured 1.3–4× slower than single-threaded
OpenBLAS, which those passes can afford.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .caching import kernel_jit

__all__ = ["matmul", "linear"]

_COLS = 256            # output columns per task: one row segment of the tile stays in L1
_ROWS = 4              # output rows per task


def matmul(a, b):
    """``a @ b`` in float32, each element summed in increasing ``k`` (reproducible anywhere).

    Parameters
    ----------
    a : array_like, shape (M, K)
    b : array_like, shape (K, N)

    Returns
    -------
    ndarray, float32, shape (M, N)
        ``out[i, j] = (((a[i,0]*b[0,j]) + a[i,1]*b[1,j]) + ...) + a[i,K-1]*b[K-1,j]``, every
        operation rounded to float32 (starting from ``0 + a[i,0]*b[0,j]``).
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not (M, K) and (K, N)")
    return _matmul_kernel(a, b)


def linear(x, weight):
    """``x @ weight.T`` for a batch ``x`` (B, I) and a weight (O, I), rounded as :func:`matmul`.

    Computed as ``matmul(weight, x.T).T``: the same products summed in the same order (equal
    bits), without copying the transposed weight on every call, only the small batch.
    """
    return np.ascontiguousarray(matmul(weight, np.asarray(x).T).T)


@kernel_jit(parallel=True)
def _matmul_kernel(a, b):
    m, k_len = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), np.float32)
    col_blocks = (n + _COLS - 1) // _COLS
    row_blocks = (m + _ROWS - 1) // _ROWS
    for task in prange(col_blocks * row_blocks):
        j0 = (task % col_blocks) * _COLS
        j1 = min(n, j0 + _COLS)
        i0 = (task // col_blocks) * _ROWS
        for i in range(i0, min(m, i0 + _ROWS)):
            acc = out[i, j0:j1]
            for k in range(k_len):
                aik = a[i, k]
                bk = b[k, j0:j1]
                for j in range(j1 - j0):
                    acc[j] += aik * bk[j]
    return out
