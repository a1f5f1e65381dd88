"""Numba kernels of the event-driven engine (:mod:`eventsnn.engine.numba_engine`).

Kernels take raw contiguous arrays and validate nothing; the engine prepares the arrays.
They are compiled with :func:`.caching.kernel_jit`: numba's on-disk cache, invalidated by an
edit of any kernel source (the batch driver contains the kernels of the other modules).

Structure: the per-image kernels in :mod:`.neurons`, :mod:`.synapses` and :mod:`.pooling`
update one population or deliver one connection's events for ONE image and ONE step, on 1-D
arrays. :func:`.simulate.simulate_batch` runs the whole simulation of a batch: one parallel
loop over worker threads (``numba.prange``), each with the private state of one image; a
worker claims images one at a time from an atomic counter and runs their time steps and
populations in order (:func:`.simulate.simulate_image`), calling the per-image kernels.
Results go to each image's own rows, so writes never collide. One parallel launch per batch
keeps thread hand-offs (expensive on a busy machine) out of the inner loops, and a worker's
state stays in its core's cache across layers and images.

Layouts: a population of shape ``(C, H, W)`` is stored channel-last, neuron
``(y * W + x) * C + c``; other shapes in their C order. The spike events of one population
in one step are a compact list: ``ev_idx[:n]`` (neuron, internal layout) and ``ev_cnt[:n]``
(multiplicity: spikes of the burst, Eq. 4; ±1 for Poisson-coded input).
"""
