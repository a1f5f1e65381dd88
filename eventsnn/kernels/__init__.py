"""Numba kernels of the event-driven engine (:mod:`eventsnn.engine.numba_engine`).

Kernels take raw contiguous arrays and validate nothing; the engine prepares the arrays.
Every kernel processes a whole batch and runs its images in parallel (``numba.prange``):
the state of each image is a disjoint row, so writes never collide.

Layouts: a population of shape ``(C, H, W)`` is stored channel-last, neuron
``(y * W + x) * C + c``; other shapes in their C order. Spike events of one step are compact
per-image lists: ``ev_idx[b, :n_ev[b]]`` (neuron, internal layout) and ``ev_cnt[b, :n_ev[b]]``
(multiplicity: spikes of the burst, Eq. 4; ±1 for Poisson-coded input).
"""
