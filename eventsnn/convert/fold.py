"""Batch-normalisation folding (paper Eq. 7).

A BatchNorm that directly follows a Conv or Linear layer (and is that layer's only consumer)
is an affine map per output channel, so it can be merged into the layer's weights and bias.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node

__all__ = ["fold_batchnorm"]


def _foldable(graph, bn):
    """The Conv/Linear node that ``bn`` can be folded into, or None."""
    if bn.op != "batchnorm":
        return None
    src = bn.inputs[0]
    if src == graph.input_name:
        return None
    prod = graph.node(src)
    if prod.op not in ("conv", "linear") or src == graph.output:
        return None
    consumers = graph.consumers(src)
    if len(consumers) != 1 or consumers[0].name != bn.name:
        return None
    return prod


def fold_batchnorm(graph):
    """Fold every BatchNorm that directly follows a Conv/Linear into that layer (Eq. 7).

    With the BN in affine form ``y = γ (x - μ) / sqrt(σ² + ε) + β = a·x + c`` per output
    channel (:func:`eventsnn.graph.bn_scale_shift`), the preceding layer becomes
    ``ŵ = a · w`` (scaled per output channel) and ``b̂ = a · b + c`` (Eq. 7; a missing bias
    counts as 0). Only BNs whose input is a Conv/Linear node that feeds nothing else are
    folded; any other BN (after a ReLU, an Add, the input, ...) is left in place — the
    converter fuses those exactly as affine ops.

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN. It is not modified.

    Returns
    -------
    eventsnn.graph.Graph
        A new graph. Each folded pair is replaced by one Conv/Linear node that **takes the
        BatchNorm's name** (it produces the BN's value), so every node name of the result
        has the same activation as in ``graph``; the pre-BN conv/linear activation is gone.
        ``output`` and ``input_name`` are kept. The computation is unchanged up to float32
        rounding of the folded parameters (the fold itself is computed in float64).

    Raises
    ------
    TypeError
        ``graph`` is not an :class:`eventsnn.graph.Graph`.
    """
    if not isinstance(graph, Graph):
        raise TypeError(
            f"fold_batchnorm needs an eventsnn.graph.Graph, got {type(graph).__name__}; "
            "import models with eventsnn.io (load_onnx / from_torch) or build a Graph"
        )
    fold_into = {}  # conv/linear name -> bn node
    for node in graph.nodes:
        prod = _foldable(graph, node)
        if prod is not None:
            fold_into[prod.name] = node
    folded_bns = {bn.name for bn in fold_into.values()}
    nodes = []
    for node in graph.nodes:
        if node.name in folded_bns:
            continue  # replaced by the fused layer emitted at the conv/linear's position
        if node.name in fold_into:
            bn = fold_into[node.name]
            var = bn.params["var"].astype(np.float64)
            a64 = bn.params["weight"].astype(np.float64) / np.sqrt(var + bn.attrs["eps"])
            c64 = bn.params["bias"].astype(np.float64) - bn.params["mean"].astype(np.float64) * a64
            w = node.params["weight"].astype(np.float64)
            w = w * a64.reshape((-1,) + (1,) * (w.ndim - 1))
            b = node.params.get("bias")
            b64 = np.zeros(len(a64)) if b is None else b.astype(np.float64)
            params = {"weight": w.astype(np.float32), "bias": (a64 * b64 + c64).astype(np.float32)}
            nodes.append(Node(bn.name, node.op, tuple(node.inputs), dict(node.attrs), params))
        else:
            nodes.append(Node(node.name, node.op, tuple(node.inputs), dict(node.attrs),
                              {k: v.copy() for k, v in node.params.items()}))
    return Graph(nodes, graph.input_shape, output=graph.output, input_name=graph.input_name)
