"""Numba kernels of the event-driven engine (:mod:`eventsnn.engine.numba_engine`).

Kernels take raw contiguous arrays and validate nothing; the engine prepares the arrays.

Structure: the per-image kernels in :mod:`.neurons`, :mod:`.synapses` and :mod:`.pooling`
update one population or deliver one connection's events for ONE image and ONE step, on 1-D
arrays. :func:`.simulate.simulate_batch` runs the whole simulation of a batch: one parallel
loop over images (``numba.prange``; every image's state is a disjoint row, so writes never
collide), and inside it the time steps and the populations in order, calling the per-image
kernels. One parallel launch per batch keeps thread hand-offs (expensive on a busy machine)
out of the inner loops, and an image's state stays in the core's cache across layers.

Layouts: a population of shape ``(C, H, W)`` is stored channel-last, neuron
``(y * W + x) * C + c``; other shapes in their C order. The spike events of one population
in one step are a compact list: ``ev_idx[:n]`` (neuron, internal layout) and ``ev_cnt[:n]``
(multiplicity: spikes of the burst, Eq. 4; ±1 for Poisson-coded input).
"""
