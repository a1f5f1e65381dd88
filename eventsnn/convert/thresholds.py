"""Error-minimising normalisation factors λ: the burst-aware MMSE rule (``norm="mmse"``).

A burst IF neuron with threshold 1 (after normalisation, Eq. 6), initial potential ``v0``
(in units of θ) and a constant input ``a = o / λ`` per step fires, below its cap, ``floor(aT + v0)``
spikes in ``T`` steps, and at most ``Γ`` per step. The activation it represents after ``T``
steps is therefore

    q_λ(o) = λ · clip(floor(o T / λ + v0), 0, Γ T) / T                       (M1)

a uniform quantiser with step ``λ / T`` and clipping level ``Γ λ``. The rule picks, per layer
(or per channel), the λ that minimises the calibration-set mean squared error

    λ* = argmin_{λ ∈ Λ} Σ_o (o − q_λ(o))²,   Λ = {k · m / (Γ K) : k = 1..K}    (M2)

with ``m`` the largest activation and ``K = 200`` candidates, so the largest candidate puts
``m`` exactly at the burst cap ``Γ λ`` (no clipping) and smaller ones trade clipping error for
quantisation error. This is the threshold search of SNN Calibration (Li et al., ICML 2021,
Eq. 7-8) and of AdaFire (AAAI 2025), made burst-aware through the cap ``Γ T`` in (M1) and
aware of ``V(0)`` through ``v0`` (``v0 = 1/2`` turns the floor into rounding).

Zero activations have zero error for every λ (``floor(v0) = 0``) and are skipped; of the
positive activations a seeded uniform subsample of at most ``keep`` values per row (layer or
channel) is kept while streaming (one random stream per sample, seeded by the sample's index, so
the result does not depend on the batching), which is what (M2) is evaluated on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MMSEAccumulator", "quantise", "N_CANDIDATES"]

N_CANDIDATES = 200


def quantise(o, lam, T, burst, v0):
    """The activation a burst neuron represents after ``T`` steps, Eq. (M1) above.

    Parameters
    ----------
    o : ndarray
        Non-negative ANN activations.
    lam : float or ndarray
        λ (broadcast against ``o``).
    T, burst : int
        Steps and burst cap Γ.
    v0 : float
        Initial potential in units of θ, in ``[0, 1)``.
    """
    n = np.clip(np.floor(o * (T / lam) + v0), 0, burst * T)
    return lam * n / T


class MMSEAccumulator:
    """Streams one layer's activations and returns its MMSE λ (Eq. M2).

    Same interface as :class:`eventsnn.convert.calibrate.ScaleAccumulator`.

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape of the activation.
    n_samples : int
        Number of samples that will be fed.
    burst : int
        Γ.
    channelwise : bool
        One λ per channel (axis 0) instead of one per layer.
    timesteps : int
        The ``T`` the network will be run for.
    v0 : float
        Initial potential in units of θ (``v_init / θ``), in ``[0, 1)``.
    keep : int or None
        Most positive values kept per row (None: ``2**16`` layer-wise, ``2**13`` per channel).
    seed : int
        Seed of the subsample.
    """

    def __init__(self, shape, n_samples, burst, channelwise, timesteps, v0, keep=None, seed=0):
        self.shape = tuple(shape)
        self.burst, self.channelwise = int(burst), bool(channelwise)
        self.T, self.v0 = int(timesteps), float(v0)
        rows = self.shape[0] if channelwise else 1
        self.n = int(n_samples) * int(np.prod(self.shape)) // rows
        self.keep = int(keep if keep is not None else (2 ** 13 if channelwise else 2 ** 16))
        self.p_keep = min(1.0, self.keep / max(self.n, 1))
        self.seed = int(seed)
        self.samples = 0
        self.max = np.zeros(rows)
        self.kept = [[] for _ in range(rows)]
        self.seen = 0

    def update(self, acts):
        """Add a batch ``(B, *shape)`` of activations."""
        a = np.asarray(acts, dtype=np.float32).reshape((-1,) + self.shape)
        rows = self._rows(a)
        self.seen += rows.shape[1]
        if rows.size == 0:
            return
        self.max = np.maximum(self.max, rows.max(axis=1))
        # one stream per sample, seeded by its index: the subsample does not depend on batching
        u = np.stack([np.random.default_rng((self.seed, self.samples + i)).random(self.shape)
                      for i in range(len(a))]) if self.p_keep < 1 else np.zeros(a.shape)
        self.samples += len(a)
        take = self._rows(u) < self.p_keep
        v = rows
        for r in range(len(v)):
            row = v[r][take[r] & (v[r] > 0)]
            if row.size:
                self.kept[r].append(row)

    def _rows(self, a):
        return np.moveaxis(a, 1, 0).reshape(self.shape[0], -1) if self.channelwise else a.reshape(1, -1)

    def raw(self):
        """λ per row before the zero fallback (float64, shape ``(rows,)``; 0 for an all-zero row)."""
        if self.seen != self.n:
            raise RuntimeError(f"fed {self.seen} values per row, expected {self.n}")
        lam = np.zeros(len(self.kept))
        k = np.arange(1, N_CANDIDATES + 1, dtype=np.float64)
        for r, parts in enumerate(self.kept):
            if not self.max[r] > 0:
                continue
            if not parts:  # positives too rare to be subsampled: no clipping
                lam[r] = self.max[r] / self.burst
                continue
            o = np.concatenate(parts).astype(np.float64)
            cand = k * self.max[r] / (self.burst * N_CANDIDATES)
            err = np.stack([((o - quantise(o, c, self.T, self.burst, self.v0)) ** 2).sum()
                            for c in cand])
            lam[r] = cand[int(np.argmin(err))]  # first (smallest) λ on ties
        return lam

    def result(self):
        """``(λ, n_to_max, n_dead)`` as :meth:`eventsnn.convert.calibrate.ScaleAccumulator.result`:
        an all-zero row (dead layer or channel) gets λ = 1."""
        lam = self.raw()
        dead = ~(self.max > 0)
        lam = np.where(dead, 1.0, lam)
        return (lam if self.channelwise else np.asarray(lam[0])), 0, int(dead.sum())
