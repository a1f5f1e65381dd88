"""NIR both ways: :func:`from_nir` runs NIR graphs event by event, :func:`to_nir` exports.

NIR (the Neuromorphic Intermediate Representation, PyPI ``nir``; Pedersen et al., Nat.
Commun. 15:8122, 2024) defines its neurons in continuous time. eventsnn discretises them with
an explicit step ``dt`` (one simulation step), every node updated in topological order within
a step (zero delay):

* IF (r, v_threshold, v_reset = 0 if absent): ``v += dt·r·I(t)``; ``z = v > v_threshold``
  (strictly); where ``z``: ``v = v_reset``. At most one spike per step.
* LIF (tau, r, v_leak, v_threshold, v_reset): ``v += (dt/tau)·(v_leak − v + r·I(t))``, then
  as IF.
* I (r): ``v += dt·r·I(t)``; LI (tau, r, v_leak): ``v += (dt/tau)·(v_leak − v + r·I(t))``:
  non-spiking; when such a node feeds Output, its value after each step is
  ``SimResult.outputs[t]``.
* Linear nodes act on the current step's values; the Input node's value is the analog input
  given to ``simulate`` (constant every step, direct coding) or the encoded spikes.

Tools disagree on ``r`` and ``dt`` (Sinabs writes ``r = 1``, SpikingJelly ``r = 1/dt``,
snnTorch assumes ``dt = 1e-4``), so ``dt`` is an explicit argument of :func:`from_nir`.

``nir`` is imported only inside the functions (``pip install eventsnn[nir]``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..convert.fusion import Conv, Dense, LinOp, Scale, Structural, compile_terms, structural_node
from ..graph import conv2d, pool_windows
from ..network import (INPUT, ConvConnection, DenseConnection, IdentityConnection,
                       Population, SparseConnection, SpikingNetwork)

__all__ = ["from_nir", "to_nir", "nir_features", "hard_reset", "export_report", "NIR_NODES",
           "NIR_PRESET"]

NIR_NODES = ("Input", "Output", "Conv2d", "Affine", "Linear", "Scale", "Flatten", "SumPool2d",
             "AvgPool2d", "IF", "LIF", "I", "LI")
"""NIR node types :func:`from_nir` reads."""

_LINEAR_NODES = ("Conv2d", "Affine", "Linear", "Scale", "Flatten", "SumPool2d", "AvgPool2d")


def _import_nir():
    try:
        import nir
    except ImportError:
        raise ImportError("NIR support needs the 'nir' package: pip install eventsnn[nir]") from None
    return nir


def _pair(v, what, name):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        return v
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).ravel()
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise ValueError(f"NIR node {name!r}: {what} must be one or two integers, got {v!r}")
    return [int(a[0]), int(a[1])]


# --- linear ops that fusion materialises (probing their forward into a CSR matrix) ---------


class GroupedConv(LinOp):
    """Bias-free 2-D convolution with ``groups`` and ``dilation`` (NIR Conv2d).

    Fusion materialises it as a CSR connection whose synapses are the nonzero weights of each
    group's (dilated) taps: exact, with the true fan-out (a dense conv would count the
    cross-group and dilation zeros as synapses).
    """

    def __init__(self, weight, stride, padding, dilation, groups, in_shape, out_shape):
        o, i, kh, kw = weight.shape
        dy, dx = dilation
        self.weight = np.zeros((o, i, (kh - 1) * dy + 1, (kw - 1) * dx + 1), np.float32)
        self.weight[:, :, ::dy, ::dx] = weight
        self.stride, self.padding, self.groups = stride, padding, groups
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def apply(self, x):
        g, (o, i) = self.groups, self.weight.shape[:2]
        og = o // g
        return np.concatenate([
            conv2d(x[:, k * i:(k + 1) * i], self.weight[k * og:(k + 1) * og], None, self.stride,
                   self.padding) for k in range(g)], axis=1)


class SumPool(LinOp):
    """NIR SumPool2d: the sum of each window (zero padding), materialised as weight-1 synapses."""

    def __init__(self, kernel, stride, padding, in_shape, out_shape):
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def apply(self, x):
        return pool_windows(x, self.kernel, self.stride, self.padding, 0.0).sum(
            axis=(4, 5), dtype=np.float32)


class Elementwise(LinOp):
    """NIR Scale with a factor per element (not constant per channel)."""

    def __init__(self, s, shape):
        self.s = np.asarray(s, np.float32)
        self.in_shape = self.out_shape = tuple(shape)

    def apply(self, x):
        return (x * self.s).astype(np.float32)


# --- import ---------------------------------------------------------------------------


class _Expr:
    """The value of a NIR node as ``Σ chain(source) + const``: linear terms plus a constant."""

    def __init__(self, terms, const):
        self.terms = terms            # list of (source population or INPUT, [LinOp, ...])
        self.const = const            # float32 array of the node's shape (biases so far)

    @property
    def shape(self):
        return self.const.shape

    def then(self, op):
        const = op.apply(self.const[None].astype(np.float32))[0]
        return _Expr([(s, chain + [op]) for s, chain in self.terms], const)


def _topological(graph):
    names = list(graph.nodes)
    indeg = {n: 0 for n in names}
    succ = {n: [] for n in names}
    for s, d in graph.edges:
        for n in (s, d):
            if n not in indeg:
                raise ValueError(f"NIR edge ({s!r}, {d!r}) names an unknown node {n!r}")
        succ[s].append(d)
        indeg[d] += 1
    order = []
    ready = [n for n in names if indeg[n] == 0]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for d in succ[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    if len(order) != len(names):
        cyc = sorted(n for n in names if indeg[n] > 0)
        raise ValueError(f"the NIR graph has a cycle (recurrent edges) through {cyc}; eventsnn "
                         "runs feed-forward graphs (all nodes within one step, zero delay)")
    return order


def _conv_padding(node, name, kernel, dilation):
    p = _pair(node.padding, "padding", name)
    if p == "valid":
        return [0, 0, 0, 0]
    if p == "same":
        stride = _pair(node.stride, "stride", name)
        if stride != [1, 1]:
            raise ValueError(f"NIR Conv2d {name!r}: padding='same' needs stride 1, got {stride}")
        tot = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2]
    if isinstance(p, str):
        raise ValueError(f"NIR Conv2d {name!r}: unknown padding {p!r}; use an int, a pair, "
                         "'same' or 'valid'")
    return [p[0], p[1], p[0], p[1]]


def _conv_op(node, name, shape):
    w = np.asarray(node.weight, np.float32)
    if len(shape) != 3 or w.ndim != 4:
        raise ValueError(f"NIR Conv2d {name!r}: needs a (C, H, W) input and a 4-d weight, got "
                         f"input {shape} and weight {w.shape}")
    groups = int(np.asarray(node.groups))
    o, i, kh, kw = w.shape
    c, h, wd = shape
    if i * groups != c or o % groups:
        raise ValueError(f"NIR Conv2d {name!r}: weight {w.shape} with groups={groups} does not "
                         f"take {c} input channels")
    stride = _pair(node.stride, "stride", name)
    dilation = _pair(node.dilation, "dilation", name)
    pad = _conv_padding(node, name, (kh, kw), dilation)
    ho = (h + pad[0] + pad[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + pad[1] + pad[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"NIR Conv2d {name!r}: output of shape {(o, ho, wo)} is empty")
    out = (o, ho, wo)
    if groups == 1 and dilation == [1, 1]:
        return Conv(w, stride, pad, shape, out)
    return GroupedConv(w, stride, pad, dilation, groups, shape, out)


def _pool_op(node, name, shape, kind):
    if len(shape) != 3:
        raise ValueError(f"NIR {kind} {name!r}: needs a (C, H, W) input, got {shape}")
    kernel = _pair(node.kernel_size, "kernel_size", name)
    stride = _pair(node.stride, "stride", name)
    p = _pair(node.padding, "padding", name)
    if isinstance(p, str):
        raise ValueError(f"NIR {kind} {name!r}: padding must be integers, got {p!r}")
    pad = [p[0], p[1], p[0], p[1]]
    c, h, w = shape
    out = (c, (h + 2 * p[0] - kernel[0]) // stride[0] + 1, (w + 2 * p[1] - kernel[1]) // stride[1] + 1)
    if kind == "SumPool2d":
        return SumPool(kernel, stride, pad, shape, out)
    return Structural(structural_node(name, "avgpool", ["x"], {
        "kernel": kernel, "stride": stride, "padding": pad, "count_include_pad": True}, out), shape)


def _flatten(expr, name, shape):
    node = structural_node(name, "flatten", ["x"], {}, (int(np.prod(expr.shape)),))
    return expr.then(Structural(node, expr.shape)) if expr.shape != tuple(shape) else expr


def _scale_op(node, name, shape):
    s = np.asarray(node.scale, np.float32)
    if s.size == 1:
        return Scale(float(s.reshape(())), shape)
    try:
        full = np.broadcast_to(s.reshape(shape) if s.size == int(np.prod(shape)) else s, shape)
    except ValueError:
        raise ValueError(f"NIR Scale {name!r}: scale of shape {s.shape} does not fit its input "
                         f"{shape}") from None
    per_channel = full.reshape(shape[0], -1)
    if len(shape) == 1 or (per_channel == per_channel[:, :1]).all():
        return Scale(per_channel[:, 0], shape)
    return Elementwise(full, shape)


def _linear_op(node, name, expr, kind):
    w = np.asarray(node.weight, np.float32)
    if w.ndim != 2 or w.shape[1] != int(np.prod(expr.shape)):
        raise ValueError(f"NIR {kind} {name!r}: weight {w.shape} does not take an input of shape "
                         f"{expr.shape} ({int(np.prod(expr.shape))} values)")
    expr = _flatten(expr, f"{name}.flatten", (w.shape[1],))
    expr = expr.then(Dense(w, expr.shape, (w.shape[0],)))
    if kind == "Affine":
        expr.const = expr.const + np.asarray(node.bias, np.float32).reshape(-1)
    return expr


def _param(node, key, name, shape):
    v = getattr(node, key, None)
    if v is None:
        return None
    a = np.asarray(v, np.float32)
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    if a.size == 1:
        return np.full(shape, a.reshape(()), np.float32)
    raise ValueError(f"NIR node {name!r}: {key} of shape {a.shape} does not fit the {shape} "
                     "neurons it drives")


def _dynamics(node, name, kind, shape, dt):
    keys = {"IF": ("r", "v_threshold", "v_reset"),
            "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
            "I": ("r",), "LI": ("tau", "r", "v_leak")}[kind]
    d = {"dt": dt}
    for k in keys:
        a = _param(node, k, name, shape)
        if a is not None:
            d[k] = a
    return d


def _bias(expr):
    """The constant of ``expr`` as a population bias (None when it is all zero)."""
    return expr.const if expr.const.any() else None


def _neuron_shape(expr):
    return expr.shape if len(expr.shape) in (1, 3) else (int(np.prod(expr.shape)),)


def from_nir(graph_or_path, dt=1.0, input_shape=None):
    """Build a :class:`~eventsnn.network.SpikingNetwork` from a NIR graph (or a ``.nir`` file).

    Semantics: see the module docstring (the discretisation with step ``dt``). Supported
    nodes: :data:`NIR_NODES` (Conv2d with stride, padding incl. ``'same'``/``'valid'``,
    dilation and groups; SumPool2d, AvgPool2d with symmetric padding); several edges into one
    node are summed. Every chain of linear nodes between two neuron nodes is fused into one
    connection (:func:`eventsnn.fusion.compile_terms`); biases (Affine, Conv2d) pushed
    through the chain become the target population's bias. Affine / Linear flatten a
    multi-dimensional input in C order. Grouped or dilated convolutions, SumPool2d and
    per-element Scale become CSR connections of their nonzero weights.

    IF / LIF nodes become ``"lif"`` populations. The node feeding Output becomes the output:
    an I / LI node is the ``"output"`` population itself (``SimResult.outputs[t]`` is its
    value after step t); any other node (spiking, or linear) is read by an output integrator
    ``U += value`` (then ``outputs[t]`` is the running sum, e.g. the spike count so far).

    Parameters
    ----------
    graph_or_path : nir.NIRGraph or str or Path
        The graph, or a file written by ``nir.write``.
    dt : float
        The length of one simulation step in the units of the graph's ``tau`` and ``r``
        (Sinabs writes ``r = 1`` and means ``dt = 1``; SpikingJelly ``r = 1/dt``).
    input_shape : tuple of int, optional
        Shape of one step's input, instead of the Input node's (Sinabs writes the time
        axis into it, e.g. ``(T, N)``).

    Returns
    -------
    SpikingNetwork

    Raises
    ------
    ValueError
        For an unsupported node (naming the node and its type), a cycle, a graph without
        exactly one Input and one Output, or shapes that do not fit.
    """
    nir = _import_nir()
    if isinstance(graph_or_path, (str, Path)):
        path = Path(graph_or_path)
        if not path.is_file():
            raise ValueError(f"no NIR file at {str(path)!r}")
        graph = nir.read(path)
    else:
        graph = graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph_or_path must be a nir.NIRGraph or a path, got {type(graph).__name__}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)) \
            or not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 (the step in the graph's time units), got {dt!r}")
    dt = float(dt)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    for name, kind in kinds.items():
        if kind not in NIR_NODES:
            raise ValueError(f"NIR node {name!r} has type {kind}, which eventsnn cannot run; "
                             f"supported: {', '.join(NIR_NODES)}")
    inputs = [n for n, k in kinds.items() if k == "Input"]
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the NIR graph needs exactly one Input and one Output node, has "
                         f"inputs {inputs} and outputs {outputs}")
    preds = {n: [s for s, d in graph.edges if d == n] for n in graph.nodes}
    succs = {n: [d for s, d in graph.edges if s == n] for n in graph.nodes}
    in_name = inputs[0]
    if input_shape is None:
        input_shape = np.asarray(graph.nodes[in_name].input_type["input"]).ravel()
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"input shape {input_shape} must be positive sizes; pass input_shape=")
    exprs, shapes, pops, conns, out_pop = {}, {INPUT: input_shape}, [], [], None
    for name in _topological(graph):
        node, kind = graph.nodes[name], kinds[name]
        if kind == "Input":
            exprs[name] = _Expr([(INPUT, [])], np.zeros(input_shape, np.float32))
            continue
        if not preds[name]:
            raise ValueError(f"NIR node {name!r} ({kind}) has no incoming edge")
        if kind == "Output" and len(preds[name]) == 1 and kinds[preds[name][0]] in ("I", "LI"):
            continue  # the I / LI population is the output
        srcs = [exprs[s] for s in preds[name]]
        for s, e in zip(preds[name], srcs):
            if e is None:
                raise ValueError(f"NIR node {s!r} ({kinds[s]}) is non-spiking; its value can only "
                                 f"go to Output, not to {name!r}")
            if e.shape != srcs[0].shape:
                raise ValueError(f"NIR node {name!r}: inputs of shapes {srcs[0].shape} and "
                                 f"{e.shape} cannot be summed")
        expr = _Expr([t for e in srcs for t in e.terms], np.sum([e.const for e in srcs], axis=0))
        if kind == "Output":
            shape = _neuron_shape(expr)
            expr = _flatten(expr, f"{name}.flatten", shape)
            target = out_pop = Population(name, shape, "output", bias=_bias(expr))
        elif kind in ("Conv2d", "SumPool2d", "AvgPool2d", "Scale"):
            op = (_conv_op(node, name, expr.shape) if kind == "Conv2d" else
                  _scale_op(node, name, expr.shape) if kind == "Scale" else
                  _pool_op(node, name, expr.shape, kind))
            exprs[name] = expr.then(op)
            if kind == "Conv2d" and getattr(node, "bias", None) is not None:
                exprs[name].const = exprs[name].const + np.asarray(
                    node.bias, np.float32).reshape(-1, 1, 1)
            continue
        elif kind in ("Affine", "Linear"):
            exprs[name] = _linear_op(node, name, expr, kind)
            continue
        elif kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            nd = len(expr.shape)
            start, end = start % nd, end % nd
            new = expr.shape[:start] + (int(np.prod(expr.shape[start:end + 1])),) + expr.shape[end + 1:]
            exprs[name] = expr.then(Structural(structural_node(
                name, "reshape", ["x"], {"shape": list(new)}, new), expr.shape)) \
                if new != expr.shape else expr
            continue
        else:  # neurons
            shape = _neuron_shape(expr)
            expr = _flatten(expr, f"{name}.flatten", shape)
            dyn = _dynamics(node, name, kind, shape, dt)
            if kind in ("I", "LI"):
                if succs[name] != [outputs[0]]:
                    raise ValueError(f"NIR node {name!r} ({kind}) is non-spiking; eventsnn runs "
                                     "it only as the output (its only edge must go to Output)")
                target = out_pop = Population(name, shape, "output", dynamics=dyn,
                                              bias=_bias(expr))
                exprs[name] = None
            else:
                target = Population(name, shape, "lif", dynamics=dyn, bias=_bias(expr))
                pops.append(target)
                exprs[name] = _Expr([(name, [])], np.zeros(shape, np.float32))
        shapes[target.name] = target.shape
        conns += compile_terms(target.name, target.shape, expr.terms, shapes)
    return SpikingNetwork(input_shape, pops + [out_pop], conns,
                          meta={"source": "nir", "dt": dt})


# --- export ---------------------------------------------------------------------------


_NO_RESHAPE = "(NIR has no reshape)"  # a feature no NIR graph approximates


def _per_channel(a, shape):
    """(C,) values if ``a`` (of ``shape``) is constant over each channel, else None."""
    if len(shape) == 1:
        return None
    m = a.reshape(shape[0], -1)
    return m[:, 0] if (m == m[:, :1]).all() else None


def nir_features(net):
    """Features of ``net`` that NIR cannot express exactly, as ``(population, feature)`` pairs.

    Burst IF neurons (kind ``"if"``): subtractive reset, threshold ``V ≥ θ`` (NIR: ``V > θ``,
    then ``V = v_reset``), bursts Γ > 1; LIPool / max-gate pooling (no spiking max pool in
    NIR); an initial potential ``v_init ≠ 0``; a bias that no NIR node can add (a
    ``(C, H, W)`` population whose bias is not constant per channel, or with no incoming conv
    or dense connection); pooling padding that is not symmetric; dense / sparse connections
    into a ``(C, H, W)`` population (NIR has no reshape); NIR neurons with different ``dt``;
    the output integrator when ``dt`` is not a power of two.
    """
    out = []
    dts = sorted({p.dynamics["dt"] for p in net.populations if p.dynamics is not None})
    dt = dts[0] if dts else 1.0
    if len(dts) > 1:
        out.append(("*", f"NIR neurons with different dt {dts}; exported with dt={dt}"))
    for p in net.populations:
        if p.kind == "if":
            out.append((p.name, "subtractive (soft) reset V -= s·θ; NIR resets to v_reset"))
            out.append((p.name, "threshold V ≥ θ; NIR fires when V > v_threshold"))
            if p.burst > 1:
                out.append((p.name, f"bursts of up to Γ={p.burst} spikes per step; NIR: one"))
            if p.v_max is not None:
                out.append((p.name, f"upper clamp of V at {p.v_max:g} (bounded ReLU); NIR has none"))
        elif p.kind in ("lipool", "maxgate"):
            name = "LIPool" if p.kind == "lipool" else "max-gate pooling"
            out.append((p.name, f"{name} (NIR has no spiking max pooling); exported as AvgPool2d"))
            pad = p.pool["padding"]
            if pad[0] != pad[2] or pad[1] != pad[3]:
                out.append((p.name, f"asymmetric pooling padding {pad}; exported symmetric"))
        elif p.kind == "output" and p.dynamics is None and np.frexp(dt)[0] != 0.5:
            # I(r = 1/dt) computes dt·(r·I) = I exactly only when dt is a power of two
            out.append((p.name, f"output integrator U += I with dt={dt}: exported as I(r=1/dt)"))
        v_init = getattr(p, "v_init", None)
        if v_init is not None and np.any(v_init):
            out.append((p.name, "initial potential v_init ≠ 0 (NIR neurons start at 0)"))
        incoming = net.incoming(p.name)
        if p.kind not in ("lipool", "maxgate"):
            if p.bias is not None and p.bias.any() and _bias_carrier(p, incoming) is None:
                out.append((p.name, "bias not constant per channel or without an incoming conv/"
                                    "dense connection; exported per channel (mean)"))
        for c in incoming:
            if len(p.shape) == 3 and isinstance(c, (DenseConnection, SparseConnection)):
                out.append((p.name, f"{c.kind} connection {c.name} into a (C, H, W) population "
                                    f"{_NO_RESHAPE}"))
    return out


def _bias_carrier(p, incoming):
    """The incoming connection whose NIR node carries ``p``'s bias, or None."""
    for c in incoming:
        if isinstance(c, (DenseConnection, SparseConnection)) and len(p.shape) == 1:
            return c
        if isinstance(c, ConvConnection) and _per_channel(p.bias, p.shape) is not None:
            return c
    return None


def _node_name(name):
    return name.replace("/", "|").replace(".", ":")


def _conv_node(nir, c, bias):
    w = c.weight
    pt, pl, pb, pr = c.padding
    _, h, wd = c.src_shape
    same = [(w.shape[2] - 1) // 2, (w.shape[3] - 1) // 2, w.shape[2] // 2, w.shape[3] // 2]
    if c.stride == [1, 1] and [pt, pl, pb, pr] == same and (w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0):
        padding = "same"
    else:
        # NIR pads symmetrically: extend the kernel by zero taps on the side with less padding
        py, px = max(pt, pb), max(pl, pr)
        ext = np.zeros(w.shape[:2] + (w.shape[2] + abs(pt - pb), w.shape[3] + abs(pl - pr)), np.float32)
        ext[:, :, py - pt:py - pt + w.shape[2], px - pl:px - pl + w.shape[3]] = w
        w, padding = ext, (py, px)
    return nir.Conv2d(input_shape=(h, wd), weight=w, stride=tuple(c.stride), padding=padding,
                      dilation=(1, 1), groups=1,
                      bias=np.zeros(w.shape[0], np.float32) if bias is None else bias)


def to_nir(net, strict=True):
    """Export ``net`` as a ``nir.NIRGraph`` (write it with ``nir.write``).

    Every population becomes a NIR node of the same name (``"/"`` → ``"|"``, ``"."`` →
    ``":"``); ``"lif"`` → IF / LIF with its parameters, the output → I / LI (the integrator
    ``U += I + b`` is I with ``r = 1/dt``), and every connection one linear node (Conv2d,
    Flatten + Affine / Linear, Scale). A population's bias goes into the Conv2d / Affine bias
    of one incoming connection. A conv with asymmetric padding is written with symmetric
    padding and a kernel widened by zero taps (same outputs; the re-imported conv counts
    those taps as synapses). ``dt`` of the NIR neurons goes to ``graph.metadata["dt"]``;
    read the file back with ``from_nir(g, dt=that)``.

    Parameters
    ----------
    net : SpikingNetwork
    strict : bool
        True: raise if NIR cannot express ``net`` exactly (:func:`nir_features`). False: write
        the closest graph (burst IF → IF with ``r = 1``, ``v_threshold = θ``, ``v_reset = 0``;
        LIPool / max-gate → AvgPool2d), list every approximation in
        ``graph.metadata["approximations"]`` and warn.

    Returns
    -------
    nir.NIRGraph

    Raises
    ------
    ValueError
        ``strict`` and an inexact feature (the message lists every one with its population),
        or a feature with no approximation (a dense connection into a ``(C, H, W)``
        population).
    """
    nir = _import_nir()
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"net must be a SpikingNetwork, got {type(net).__name__}")
    feats = nir_features(net)
    listing = "\n".join(f"  - {p}: {f}" for p, f in feats)
    fatal = [f for _, f in feats if f.endswith(_NO_RESHAPE)]
    if fatal or (feats and strict):
        raise ValueError(
            f"NIR cannot express this network exactly ({len(feats)} features):\n{listing}\n"
            + ("pass strict=False to write the closest NIR graph and a list of approximations"
               if not fatal else "dense connections into (C, H, W) populations cannot be exported"))
    dt = min((p.dynamics["dt"] for p in net.populations if p.dynamics is not None), default=1.0)
    name_of = {INPUT: "input", **{p.name: _node_name(p.name) for p in net.populations}}
    nodes = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    edges = []
    for p in net.populations:
        n, shp = name_of[p.name], p.shape
        d = p.dynamics
        if p.kind in ("lipool", "maxgate"):
            kh, kw = p.pool["kernel"]
            pad = p.pool["padding"]
            nodes[n] = nir.AvgPool2d(kernel_size=np.array([kh, kw]), stride=np.array(p.pool["stride"]),
                                     padding=np.array([max(pad[0], pad[2]), max(pad[1], pad[3])]))
            edges.append((name_of[p.pool["source"]], n))
            continue
        if p.kind == "if":
            nodes[n] = nir.IF(r=np.ones(shp, np.float32),
                              v_threshold=np.full(shp, p.threshold, np.float32),
                              v_reset=np.zeros(shp, np.float32))
        elif p.kind == "lif":
            common = dict(r=d["r"], v_threshold=d["v_threshold"],
                          v_reset=d.get("v_reset", np.zeros(shp, np.float32)))
            nodes[n] = (nir.LIF(tau=d["tau"], v_leak=d["v_leak"] if "v_leak" in d
                                else np.zeros(shp, np.float32), **common)
                        if "tau" in d else nir.IF(**common))
        elif d is None:
            nodes[n] = nir.I(r=np.full(shp, 1.0 / dt, np.float32))
        elif "tau" in d:
            nodes[n] = nir.LI(tau=d["tau"], r=d["r"],
                              v_leak=d.get("v_leak", np.zeros(shp, np.float32)))
        else:
            nodes[n] = nir.I(r=d["r"])
        carrier = None
        if p.bias is not None and p.bias.any():
            carrier = _bias_carrier(p, net.incoming(p.name))
            if carrier is None:  # approximation (listed): per-channel mean on the first conv
                carrier = next((c for c in net.incoming(p.name) if isinstance(
                    c, (ConvConnection, DenseConnection, SparseConnection))), None)
        for k, c in enumerate(net.incoming(p.name)):
            cn = f"{name_of[c.src]}->{n}"
            bias = None
            if c is carrier:  # exact per-channel values, or their mean (listed approximation)
                per_channel = None if len(shp) == 1 else _per_channel(p.bias, shp)
                bias = (p.bias.reshape(-1) if len(shp) == 1 else per_channel
                        if per_channel is not None
                        else p.bias.reshape(shp[0], -1).astype(np.float64).mean(axis=1))
            src = name_of[c.src]
            if isinstance(c, ConvConnection):
                nodes[cn] = _conv_node(nir, c, bias)
            elif isinstance(c, IdentityConnection):
                nodes[cn] = nir.Scale(scale=c.per_neuron_scale().reshape(c.src_shape))
            else:
                w = (c.weight if isinstance(c, DenseConnection)
                     else np.asarray(c.to_csr().T.todense(), np.float32))
                if len(c.src_shape) != 1:
                    nodes[f"{cn}.flatten"] = nir.Flatten(
                        input_type={"input": np.array(c.src_shape)}, start_dim=0, end_dim=-1)
                    edges.append((src, f"{cn}.flatten"))
                    src = f"{cn}.flatten"
                nodes[cn] = (nir.Linear(weight=w) if bias is None
                             else nir.Affine(weight=w, bias=bias))
            edges += [(src, cn), (cn, n)]
    out = net.output
    out_name = next(n for n in ("output", "output_node", "nir_output") if n not in nodes)
    nodes[out_name] = nir.Output(output_type={"output": np.array(out.shape)})
    edges.append((name_of[out.name], out_name))
    meta = {"dt": dt, "source": "eventsnn"}
    if feats:
        meta["approximations"] = listing
        warnings.warn(f"to_nir: the NIR graph approximates {len(feats)} features of the "
                      f"network (also in graph.metadata['approximations']):\n{listing}",
                      stacklevel=2)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


# --- the conversion preset NIR holds exactly, and the measured loss of an export ---------

NIR_PRESET = {"burst": 1, "pooling": "avg", "reset": "zero"}
"""``convert(..., **NIR_PRESET)`` gives networks that :func:`to_nir` exports exactly."""


def hard_reset(net):
    """A copy of ``net`` whose burst IF populations reset to zero, as NIR's IF neuron.

    Every ``"if"`` population (Γ = 1 required) becomes a ``"lif"`` population without leak:
    ``V += I + b``; ``z = V > θ``; ``V = 0`` where ``z`` (NIR IF with ``r = 1``, ``dt = 1``,
    ``v_threshold = θ``, ``v_reset = 0``) instead of Eq. 2-4's ``s = floor(V/θ)``,
    ``V -= s·θ``. Used by ``convert(..., reset="zero")``.
    """
    bursts = [p.name for p in net.populations if p.kind == "if" and p.burst != 1]
    if bursts:
        raise ValueError(f"reset='zero' needs Γ = 1 (burst=1); populations {bursts} burst")
    pops = [p if p.kind != "if" else Population(
        p.name, p.shape, "lif", bias=p.bias, ann_node=p.ann_node, scale=p.scale,
        dynamics={"dt": 1.0, "r": 1.0, "v_threshold": p.threshold, "v_reset": 0.0})
        for p in net.populations]
    return SpikingNetwork(net.input_shape, pops, net.connections, {**net.meta, "reset": "zero"})


def export_report(net, graph, x, y, steps, dt=1.0, **simulate_kw):
    """Measured loss of a NIR export: the original ``net`` against ``from_nir(graph, dt)``.

    Both are simulated on ``x`` for ``max(steps)`` steps with :func:`eventsnn.simulate`.

    Returns
    -------
    list of dict
        Per ``T`` in ``steps``: ``T``, ``acc_original``, ``acc_nir`` (accuracy on ``y``) and
        ``synops_original``, ``synops_nir`` (per image, steps 1..T).
    """
    from ..engine import simulate

    T = max(steps)
    exported = from_nir(graph, dt=dt)
    res = [simulate(n, x, T, **simulate_kw) for n in (net, exported)]
    acc = [r.accuracy(y) for r in res]
    syn = [np.cumsum(sum(v for v in r.synops.values())) / len(x) for r in res]
    return [{"T": t, "acc_original": float(acc[0][t - 1]), "acc_nir": float(acc[1][t - 1]),
             "synops_original": float(syn[0][t - 1]), "synops_nir": float(syn[1][t - 1])}
            for t in steps]
