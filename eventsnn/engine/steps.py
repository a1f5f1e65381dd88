"""One time step of every population kind, in plain numpy: the semantics the engines implement.

The reference engine (:mod:`eventsnn.engine.reference`) updates its populations with these
functions, and the tests compare every Numba kernel of :mod:`eventsnn.kernels` against them.
They work in place on the state arrays they are given, in the dtype of those arrays (the
reference engine uses float64 for burst IF neurons and the output integrator, exact on dyadic
networks, and float32 for the NIR neurons, as the Numba engine, so that the float32 rounding
of ``dt/tau`` products is the same in both).

Population kinds (see :class:`eventsnn.network.Population`):

* burst IF, soft reset (Eq. 2-4, Algorithm 1): :func:`burst_if_step`;
* the output integrator ``U += I + b``: :func:`integrator_step`;
* LIPool (Eq. 12) and max-gated pooling (Eq. 11): :func:`lipool_step`, :func:`maxgate_step`;
* the NIR neurons IF / LIF (hard reset, strict threshold) and I / LI (non-spiking):
  :func:`nir_step`.
"""

from __future__ import annotations

import numpy as np


def burst_if_step(v, x, theta, gamma, v_max=None):
    """Burst IF neurons (Eq. 2-4, Algorithm 1): ``V += x; s = clip(floor(V/θ), 0, Γ); V -= s·θ``.

    With ``v_max`` (a bounded ReLU population) the potential is then clamped,
    ``V = min(V, v_max)``: charge above the clip is dropped.

    Parameters
    ----------
    v : ndarray (N,)
        Membrane potentials, updated in place.
    x : ndarray (N,)
        Input of this step: synaptic current plus bias (and direct-coded input).
    theta : float
        Threshold θ.
    gamma : int
        Largest burst Γ.
    v_max : float or None
        Upper clamp of V after the reset (None: unbounded).

    Returns
    -------
    ndarray of int64 (N,)
        Spike counts ``s``.
    """
    theta = v.dtype.type(theta)
    v += x
    s = np.clip(np.floor(v / theta), 0, gamma).astype(v.dtype)  # in V's dtype, as the kernel
    v -= s * theta
    if v_max is not None:
        np.minimum(v, v.dtype.type(v_max), out=v)
    return s.astype(np.int64)


def integrator_step(u, x):
    """The non-spiking output integrator: ``U += x`` (in place)."""
    u += x


def nir_step(v, x, params, leak, spiking):
    """One step of the NIR neurons IF, LIF (``spiking``) or I, LI, discretised with step dt.

    ``alpha, r, v_leak, v_threshold, v_reset = params`` (per neuron, from
    :meth:`eventsnn.network.Population.step_parameters`, ``alpha = dt/tau`` or ``dt``):

    * leak (LIF, LI): ``V += alpha·((v_leak − V) + r·x)``, i.e. ``V += (dt/tau)·(v_leak − V + r·I)``;
    * no leak (IF, I): ``V += alpha·(r·x)``, i.e. ``V += dt·r·I``;
    * spiking (IF, LIF): ``z = V > v_threshold`` (strictly); ``V = v_reset`` where ``z``.

    Parameters
    ----------
    v : ndarray (N,)
        Potentials, updated in place (float32 in both engines).
    x : ndarray (N,)
        Input of this step (synaptic current plus bias), same dtype as ``v``.
    params : ndarray (5, N)
        Coefficients, same dtype as ``v``.
    leak, spiking : bool

    Returns
    -------
    ndarray of int64 (N,)
        Spikes ``z`` (0 or 1; all 0 when not ``spiking``).
    """
    alpha, r, v_leak, v_th, v_reset = params
    if leak:
        v += alpha * ((v_leak - v) + r * x)
    else:
        v += alpha * (r * x)
    if not spiking:
        return np.zeros(v.shape, np.int64)
    z = v > v_th
    v[z] = v_reset[z]
    return z.astype(np.int64)


def lipool_step(hidden, windows):
    """Lateral Inhibition Pooling (Eq. 12) after this step's counts were added to ``hidden``.

    Per window ``w`` with hidden units ``h_{w,i}`` (``hidden[windows[w]]``):
    ``o_w = max(0, max_i h_{w,i})``; every ``h_{w,i} -= o_w``. A window with no hidden unit
    (entirely in the padding) never fires.

    Parameters
    ----------
    hidden : ndarray of int (S,)
        Hidden units, updated in place.
    windows : list of int arrays
        Indices into ``hidden`` of each window's units.

    Returns
    -------
    ndarray of int64 (len(windows),)
        Output counts.
    """
    out = np.zeros(len(windows), np.int64)
    for w, units in enumerate(windows):
        if len(units):
            out[w] = max(0, int(hidden[units].max()))
            hidden[units] -= out[w]
    return out


def maxgate_step(cumulative, current, windows):
    """Max-gated pooling (Eq. 11): each window passes this step's count of its gate unit.

    The gate of window ``w`` is the unit with the largest cumulative count
    (``cumulative[windows[w]]``, this step included), the first in ``windows[w]`` order on ties;
    its count of this step is ``current[gate]``.

    Returns
    -------
    ndarray of int64 (len(windows),)
        Output counts (0 for a window with no unit).
    """
    out = np.zeros(len(windows), np.int64)
    for w, units in enumerate(windows):
        if len(units):
            out[w] = current[units[int(np.argmax(cumulative[units]))]]
    return out
