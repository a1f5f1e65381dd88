"""The analog rate limit of a converted network, and the ANN activations it should equal.

:func:`analog_forward` runs a :class:`~eventsnn.network.SpikingNetwork` as an ANN (T → ∞,
no clipping at Γ); :func:`ann_activations` reads, for every population, the activation of
the ANN node it approximates. With the normalisation of Eq. 6 the two agree up to the
factor ``pop.scale`` (λ): this is the converter's correctness oracle, and the reference
against which the rate of a finite-T simulation converges.
"""

from __future__ import annotations

import numpy as np

from ..graph import maxpool2d
from ..network import INPUT, SpikingNetwork
from ..validation import check_batch

__all__ = ["analog_forward", "ann_activations"]


def _check_net_input(net, x):
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"expected a SpikingNetwork (from eventsnn.convert), got {type(net).__name__}")
    return check_batch(x, net.input_shape)


def analog_forward(net, x):
    """Run a :class:`SpikingNetwork` as an ANN: the exact rate limit of the SNN.

    Each ``"if"`` population computes ``relu(Σ_in W·a_src + b)`` (no clipping at Γ —
    rates above the burst limit are kept; a bounded ReLU population, ``v_max`` set, saturates at
    its Γ), pooling populations the max of their window
    (as :meth:`PoolConnection.apply`, computed with :func:`eventsnn.graph.maxpool2d`: LIPool
    recovers exactly this max, Eq. 12; for max-gate it is the ideal value), and the output
    population ``Σ_in W·a_src + b``. With the
    normalisation of Eq. 6, ``analog_forward(net, x)[pop] * pop.scale`` equals the ANN
    activation the population approximates (:func:`ann_activations`).

    Parameters
    ----------
    net : SpikingNetwork
        A converted network.
    x : array_like
        Input batch ``(B, *net.input_shape)``.

    Returns
    -------
    dict
        Population name -> ``(B, *shape)`` float32 normalised activation (rate per step).
    """
    x = _check_net_input(net, x)
    vals = {INPUT: x.reshape(len(x), -1)}
    out = {}
    for p in net.populations:
        incoming = net.incoming(p.name)
        if p.kind in ("lipool", "maxgate"):
            c = incoming[0]  # max of non-negative rates with zero padding = PoolConnection.apply
            src = vals[c.src].reshape((len(x),) + c.src_shape)
            a = np.maximum(maxpool2d(src, c.kernel, c.stride, c.padding), 0).reshape(len(x), -1)
        else:
            a = np.zeros((len(x), p.size), dtype=np.float64)
            for c in incoming:
                a += c.apply(vals[c.src])
            if p.bias is not None:
                a += p.bias.reshape(-1)
            if p.kind == "if":
                a = np.maximum(a, 0.0)
                if p.v_max is not None:  # bounded ReLU: the rate saturates at Γ = bound / λ
                    a = np.minimum(a, p.burst)
            a = a.astype(np.float32)
        vals[p.name] = a
        out[p.name] = a.reshape((len(x),) + p.shape)
    return out


def ann_activations(graph, net, x):
    """The ANN activation each population approximates, in ANN units.

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN that ``net`` was converted from (BN-folded or not: folding keeps the names
        and values of all remaining nodes).
    net : SpikingNetwork
        The converted network.
    x : array_like
        Input batch ``(B, *graph.input_shape)``.

    Returns
    -------
    dict
        Population name -> ``(B, *shape)`` float32: the output of ``pop.ann_node``, passed
        through a ReLU for the populations listed in ``net.meta["ann_relu"]``.
    """
    acts = graph.forward(x, return_all=True)
    relu = set(net.meta.get("ann_relu", ()))
    out = {}
    for p in net.populations:
        if p.ann_node is None:
            continue
        a = acts[p.ann_node]
        out[p.name] = np.maximum(a, 0) if p.name in relu else a
    return out
