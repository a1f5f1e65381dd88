"""Per-image neuron kernels: burst IF neurons (Eq. 2-4, Algorithm 1), output integrator, events."""

import numpy as np

from .caching import kernel_jit


@kernel_jit()
def if_image(V, I, const, theta, gamma, v_max, ev_idx, ev_cnt):
    """One step of a population of burst IF neurons of one image; returns the event count.

    ``V += I + const``; ``s = clip(floor(V / theta), 0, gamma)``; ``V = min(V - s * theta, v_max)``
    (Eq. 2-4, soft reset; ``gamma`` = Γ, 1 for the plain IF neuron; ``v_max`` = inf except for
    bounded ReLUs, whose charge above the clamp is dropped). ``I`` (synaptic current
    of this step) is cleared for the next step. Two passes: a vectorised update that writes
    every neuron's count, then a branch-free compaction into the event list.

    Parameters
    ----------
    V, I, const : float32 (N,)
        Membrane potentials, this step's synaptic current, constant current (bias +
        direct-coded input).
    theta : float32
        Threshold θ.
    gamma : int
        Largest burst Γ.
    v_max : float32
        Upper clamp of V after the reset (``inf``: unbounded).
    ev_idx, ev_cnt : int32 (N,)
        Output: neurons (ascending) and multiplicities of the events, first ``n`` valid.

    Returns
    -------
    int
        Number of events ``n``.
    """
    g = np.float32(gamma)
    zero = np.float32(0.0)
    # pass 1 (vectorised): integrate, fire, soft reset; spike counts into ev_cnt (dense)
    for n in range(V.shape[0]):
        v = V[n] + (I[n] + const[n])
        I[n] = zero
        s = min(max(np.floor(v / theta), zero), g)
        V[n] = min(v - s * theta, v_max)
        ev_cnt[n] = np.int32(s)
    # pass 2 (branch-free compaction, in place: slot ne <= n is written after n is read)
    ne = 0
    for n in range(V.shape[0]):
        c = ev_cnt[n]
        ev_idx[ne] = n
        ev_cnt[ne] = c
        ne += c > 0
    return ne


@kernel_jit()
def burst_stats(ev_cnt, n, hist):
    """Add the ``n`` events to the burst-size histogram ``hist``; return their spike total.

    One vectorised counting pass per burst size ``k = 1..Γ`` (``Γ = len(hist) - 1``): about
    3x faster than incrementing ``hist[ev_cnt[e]]`` event by event, whose read-modify-writes
    of the same few bins form a dependency chain through memory.
    """
    total = 0
    for e in range(n):
        total += ev_cnt[e]
    for k in range(1, hist.shape[0]):
        c = 0
        for e in range(n):
            c += ev_cnt[e] == k
        hist[k] += c
    return total


@kernel_jit()
def output_image(U, I, const):
    """One step of the non-spiking output integrator of one image: ``U += I + const``; clear I."""
    for n in range(U.shape[0]):
        U[n] += I[n] + const[n]
        I[n] = 0.0


@kernel_jit()
def count_events(ev_idx, ev_cnt, n, counts):
    """Add the multiplicity of each of the ``n`` events to its neuron: ``counts[idx] += cnt``."""
    for e in range(n):
        counts[ev_idx[e]] += ev_cnt[e]


@kernel_jit()
def spikes_to_events(spk, ev_idx, ev_cnt):
    """Event list of a dense spike vector (e.g. Poisson input); returns the event count.

    Every non-zero entry becomes one event with its (signed) value as multiplicity.
    """
    ne = 0
    for n in range(spk.shape[0]):
        s = spk[n]
        if s != 0:
            ev_idx[ne] = n
            ev_cnt[ne] = s
            ne += 1
    return ne
