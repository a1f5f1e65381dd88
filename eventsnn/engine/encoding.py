"""Input encoders shared by both engines, so that they see exactly the same input.

- ``"direct"`` (default): the analog image is a constant input current. For every connection
  from ``"input"`` the current ``apply(x)`` is computed once per image and added at every
  step; its cost is counted as multiply-accumulates (MACs), once per image, equal to the
  structural MACs of the connection (``fan_out().sum()``, the number of its synapses).
- ``"poisson"``: Bernoulli rate coding. At each step pixel ``p`` of an image fires with
  probability ``clip(|x_p|, 0, 1)`` a spike of sign ``sign(x_p)``; the input is then spiking
  and its events count as SynOps on the input connections (no MACs).

Random numbers come from a ``numpy.random.Generator`` seeded per image by ``(seed, index of
the image in the simulated array)``, so the spikes of an image do not depend on how the
images are split into batches, and both engines draw the same stream.
"""

from __future__ import annotations

import numpy as np

from ..network import INPUT

ENCODINGS = ("direct", "poisson")


def resolve_seed(seed):
    """An integer seed: ``seed`` itself, or fresh OS entropy when ``seed`` is None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None or a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def input_connections(net):
    """Connections of ``net`` whose source is the input image, in list order."""
    return [c for c in net.connections if c.src == INPUT]


def direct_currents(net, x):
    """Constant input currents of direct coding, one array per input connection.

    Parameters
    ----------
    net : SpikingNetwork
    x : ndarray, float32, shape (B, *net.input_shape)

    Returns
    -------
    dict of str -> ndarray, float32, shape (B, n_dst)
        Connection name -> ``apply(x)`` (public C-order layout of the target population),
        added to the target at every step.
    """
    return {c.name: np.ascontiguousarray(c.apply(x), dtype=np.float32)
            for c in input_connections(net)}


def direct_macs_per_image(net):
    """MACs of computing the direct-coding input currents of one image (structural MACs).

    Every synapse of every input connection is one multiply-accumulate, done once per image
    (the current is reused at every step): ``Σ_input connections fan_out().sum()``.
    """
    return int(sum(int(c.fan_out().sum()) for c in input_connections(net)))


def poisson_spikes(x, T, seed, first_index=0):
    """Bernoulli rate-coded input spikes (Poisson coding), shape ``(T, B, *input_shape)``.

    Parameters
    ----------
    x : ndarray, shape (B, ...)
        Normalised images; pixel ``p`` fires with probability ``clip(|x_p|, 0, 1)`` per step.
    T : int
        Number of steps.
    seed : int
        Base seed (see :func:`resolve_seed`).
    first_index : int
        Index of ``x[0]`` in the whole array being simulated: image ``i`` of ``x`` draws from
        ``numpy.random.default_rng([seed, first_index + i])``.

    Returns
    -------
    ndarray of int8
        Values in {-1, 0, 1}: the sign of the pixel where it fires, 0 elsewhere.
    """
    x = np.asarray(x, dtype=np.float32)
    p = np.clip(np.abs(x), 0.0, 1.0)
    sign = np.sign(x).astype(np.int8)
    out = np.zeros((T,) + x.shape, dtype=np.int8)
    for i in range(len(x)):
        rng = np.random.default_rng([int(seed), int(first_index) + i])
        fire = rng.random((T,) + x.shape[1:], dtype=np.float32) < p[i]
        out[:, i] = fire * sign[i]
    return out
