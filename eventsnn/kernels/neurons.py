"""Neuron-update kernels: burst IF neurons (Eq. 2-4, Algorithm 1) and the output integrator."""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def if_step(V, I, const, theta, gamma, ev_idx, ev_cnt, n_ev, spikes_t, events_t, hist):
    """One step of a population of burst IF neurons for a batch; emits its spike events.

    ``V += I + const``; ``s = clip(floor(V / theta), 0, gamma)``; ``V -= s * theta``
    (Eq. 2-4, soft reset; ``gamma`` = Γ, 1 for the plain IF neuron). ``I`` (synaptic current
    of this step) is cleared for the next step.

    Parameters
    ----------
    V, I : float32 (B, N)
        Membrane potentials and accumulated synaptic input current of this step.
    const : float32 (Bc, N)
        Constant current (bias + direct-coded input); ``Bc`` is 1 (shared) or B.
    theta : float32
        Threshold θ.
    gamma : int
        Largest burst Γ.
    ev_idx, ev_cnt : int32 (B, N)
        Output: neurons and multiplicities of this step's events (first ``n_ev[b]`` valid).
    n_ev : int32 (B,)
        Output: number of events per image.
    spikes_t, events_t : int64 (B,)
        Output: spikes (multiplicity sum) and events per image this step.
    hist : int64 (B, Γ+1)
        Burst-size histogram per image, incremented.
    """
    B, N = V.shape
    cstep = 0 if const.shape[0] == 1 else 1  # row of const for image b: b * cstep
    for b in prange(B):
        cb = b * cstep
        ne = 0
        ns = 0
        for n in range(N):
            v = V[b, n] + (I[b, n] + const[cb, n])
            I[b, n] = 0.0
            q = np.floor(v / theta)
            if q >= 1.0:
                s = gamma if q >= gamma else np.int32(q)
                v -= np.float32(s) * theta
                ev_idx[b, ne] = n
                ev_cnt[b, ne] = s
                ne += 1
                ns += s
                hist[b, s] += 1
            V[b, n] = v
        n_ev[b] = ne
        spikes_t[b] = ns
        events_t[b] = ne


@njit(cache=True, parallel=True)
def output_step(U, I, const):
    """One step of the non-spiking output integrator: ``U += I + const``; ``I`` is cleared."""
    B, N = U.shape
    cstep = 0 if const.shape[0] == 1 else 1  # row of const for image b: b * cstep
    for b in prange(B):
        cb = b * cstep
        for n in range(N):
            U[b, n] += I[b, n] + const[cb, n]
            I[b, n] = 0.0


@njit(cache=True, parallel=True)
def count_events(ev_idx, ev_cnt, n_ev, counts):
    """Add the multiplicity of every event to its neuron: ``counts[b, ev_idx] += ev_cnt``."""
    B = counts.shape[0]
    for b in prange(B):
        for e in range(n_ev[b]):
            counts[b, ev_idx[b, e]] += ev_cnt[b, e]


@njit(cache=True, parallel=True)
def dense_to_events(spk, ev_idx, ev_cnt, n_ev):
    """Event lists of a dense per-neuron spike array ``spk`` (B, N), e.g. Poisson input.

    Every non-zero entry becomes one event with its (signed) value as multiplicity.
    """
    B, N = spk.shape
    for b in prange(B):
        ne = 0
        for n in range(N):
            s = spk[b, n]
            if s != 0:
                ev_idx[b, ne] = n
                ev_cnt[b, ne] = s
                ne += 1
        n_ev[b] = ne
