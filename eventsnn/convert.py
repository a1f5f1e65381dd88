"""ANN -> SNN conversion: BN folding, linear-chain fusion, data-based normalisation.

:func:`convert` turns an :class:`eventsnn.graph.Graph` into a :class:`SpikingNetwork` of
burst IF neurons (Algorithm 1), LIPooling / max-gate pooling populations (Eq. 12 / Eq. 11)
and an output integrator, with weights normalised by per-layer factors λ (Eq. 6) measured
on calibration data. :func:`analog_forward` runs the result as an ANN — the exact rate
limit of the SNN — and is the converter's correctness oracle.

How the graph is walked
-----------------------
Nodes are visited in topological order and each gets a *value*: either a **population**
(a spiking stage) or an **affine expression** ``Σ_k chain_k(src_k) + b`` — a list of terms
(a source population or the input, and the chain of bias-free linear ops its signal goes
through) plus a per-neuron bias array of the node's shape.

* Linear ops (conv, linear, batchnorm, avgpool, global_avgpool, flatten, reshape, pad,
  slice, identity) append themselves to every term's chain; the bias is pushed through
  the op exactly by running the op's own numpy forward (with its bias) on the bias array,
  so e.g. a BatchNorm after a ReLU folded into a zero-padded conv gives a per-neuron bias
  that is exact at the borders.
* ``add`` concatenates the terms of its inputs and sums their biases.
* ``relu`` of an expression creates an ``"if"`` population (threshold 1, burst Γ);
  ``relu`` of a population is that population (ReLU is idempotent on rates).
* ``maxpool`` of a population creates a ``"lipool"`` / ``"maxgate"`` population fed by a
  :class:`PoolConnection`. ``maxpool`` of an expression whose only consumer is a ReLU is
  commuted (``relu∘maxpool = maxpool∘relu``): the IF population is built on the pre-pool
  expression, then the pool population. With ``pooling="avg"`` every maxpool is replaced
  by an avgpool of the same kernel/stride/padding (``count_include_pad=True``), a linear op.
* The graph output becomes the ``"output"`` integrator (``U += W·s + b``, λ = 1, so
  ``U(T)/T`` approximates the ANN logits).

Every term of a population's input expression is compiled to one connection by
:mod:`eventsnn.fusion` (conv stays weight-shared; other chains are materialised as CSR).
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import numpy as np

from .calibrate import NORMS, collect_scales
from .layer_calibration import MIN_IMAGES, calibrate_layers
from .presets import resolve_settings
from .fold import fold_batchnorm
from .fusion import Conv, Dense, Scale, Structural, compile_terms, structural_node
from .graph import OPS, Graph, bn_scale_shift, maxpool2d
from .network import INPUT, PoolConnection, Population, SpikingNetwork

__all__ = ["convert", "analog_forward", "ann_activations", "fold_batchnorm", "NORMS", "POOLINGS"]

POOLINGS = ("lipool", "maxgate", "avg")
_LINEAR_OPS = ("conv", "linear", "batchnorm", "avgpool", "global_avgpool", "flatten", "reshape",
               "pad", "slice", "identity")


@dataclass
class _Expr:
    """Affine expression: terms ``(src, chain)`` plus a per-neuron bias (float32 array)."""

    terms: list
    bias: np.ndarray


@dataclass
class _Pop:
    name: str
    kind: str
    shape: tuple
    ann_node: str
    ann_relu: bool = False
    expr: _Expr | None = None     # input of "if" / "output"
    pool: dict | None = None      # for "lipool" / "maxgate"
    scale: np.ndarray = field(default_factory=lambda: np.asarray(1.0))


class _Walker:
    """Builds population specs from the graph (see the module docstring)."""

    def __init__(self, graph, pooling):
        self.g, self.pooling = graph, pooling
        self.pops = {}     # name -> _Pop, in creation (= topological) order
        self.values = {}   # node name -> ("pop", name) | ("expr", _Expr)
        self.used = {INPUT}
        self.live = self._ancestors()

    def _ancestors(self):
        live, stack = set(), [self.g.output]
        while stack:
            n = stack.pop()
            if n in live or n == self.g.input_name:
                continue
            live.add(n)
            stack.extend(self.g.node(n).inputs)
        return live

    def _name(self, base):
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def _shape(self, name):
        return self.g.shape_of(name)

    def _expr(self, name):
        kind, v = self.values[name]
        if kind == "expr":
            return v
        shape = self.pops[v].shape
        return _Expr([(v, ())], np.zeros(shape, dtype=np.float32))

    def _add_pop(self, pop):
        self.pops[pop.name] = pop
        return ("pop", pop.name)

    def run(self):
        g = self.g
        self.values[g.input_name] = ("expr", _Expr([(INPUT, ())], np.zeros(g.input_shape, np.float32)))
        for node in g.nodes:
            if node.name in self.live:
                self.values[node.name] = self._visit(node)
        out = self._expr(g.output)
        self._add_pop(_Pop(self._name("output"), "output", g.output_shape, g.output, expr=out))
        return list(self.pops.values())

    def _fail(self, node, why):
        return ValueError(f"cannot convert node {node.name!r} (op {node.op!r}): {why}")

    def _visit(self, node):
        op = node.op
        if op == "maxpool" and self.pooling == "avg":
            a = node.attrs
            node = structural_node(node.name, "avgpool", node.inputs,
                                   {"kernel": a["kernel"], "stride": a["stride"], "padding": a["padding"],
                                    "count_include_pad": True}, node.shape)
            op = "avgpool"
        if op in _LINEAR_OPS:
            return self._linear(node)
        if op == "add":
            exprs = [self._expr(i) for i in node.inputs]
            bias = np.sum([e.bias for e in exprs], axis=0, dtype=np.float32)
            return ("expr", _Expr([t for e in exprs for t in e.terms], bias))
        if op == "relu":
            return self._relu(node)
        if op == "maxpool":
            return self._maxpool(node)
        raise self._fail(node, f"op {op!r} is neither linear nor a ReLU/MaxPool; "
                               f"the converter handles {sorted(_LINEAR_OPS + ('add', 'relu', 'maxpool'))}")

    def _linear(self, node):
        (src,) = node.inputs
        kind, v = self.values[src]
        if node.op == "identity" and kind == "pop":
            return (kind, v)
        in_shape = self._shape(src)
        if node.op == "conv":
            lin = Conv(node.params["weight"], node.attrs["stride"], node.attrs["padding"],
                       in_shape, node.shape)
        elif node.op == "linear":
            lin = Dense(node.params["weight"], in_shape, node.shape)
        elif node.op == "batchnorm":
            p, eps = node.params, node.attrs["eps"]
            a = p["weight"].astype(np.float64) / np.sqrt(p["var"].astype(np.float64) + eps)
            lin = Scale(a, in_shape)
        else:
            lin = Structural(node, in_shape)
        e = self._expr(src)
        if np.any(e.bias):
            bias = OPS[node.op].forward(node, [e.bias[None]])[0]
        else:  # the op's response to a zero input: its own bias, broadcast (zero padding reads 0)
            bias = np.zeros(node.shape, dtype=np.float32)
            if node.op in ("conv", "linear") and node.params.get("bias") is not None:
                bias += node.params["bias"].reshape((-1,) + (1,) * (len(node.shape) - 1))
            elif node.op == "batchnorm":
                bias += bn_scale_shift(node.params, node.attrs["eps"])[1].reshape(
                    (-1,) + (1,) * (len(node.shape) - 1))
        return ("expr", _Expr([(s, chain + (lin,)) for s, chain in e.terms],
                              np.ascontiguousarray(bias, dtype=np.float32)))

    def _relu(self, node):
        (src,) = node.inputs
        kind, v = self.values[src]
        if kind == "pop":
            return (kind, v)
        return self._add_pop(_Pop(self._name(node.name), "if", node.shape, node.name, expr=v))

    def _maxpool(self, node):
        (src,) = node.inputs
        kind, v = self.values[src]
        if kind == "expr":
            consumers = [c for c in self.g.consumers(node.name) if c.name in self.live]
            if node.name == self.g.output or len(consumers) != 1 or consumers[0].op != "relu":
                raise self._fail(node, "max pooling of a signal that is not a ReLU output cannot be "
                                       "converted (spike rates are non-negative); it must follow a "
                                       "ReLU, or feed only a ReLU (then the two are swapped), or "
                                       "use pooling='avg'")
            relu = consumers[0]
            pre = self._add_pop(_Pop(self._name(relu.name), "if", self._shape(src), src,
                                     ann_relu=True, expr=v))
            v, ann = pre[1], relu.name
        else:
            ann = node.name
        a = node.attrs
        pool = {"source": v, "kernel": a["kernel"], "stride": a["stride"], "padding": a["padding"]}
        return self._add_pop(_Pop(self._name(node.name), self.pooling, node.shape, ann, pool=pool))


def _check_args(graph, calib_x, norm, percentile, burst, pooling, channelwise, batch_size):
    if not isinstance(graph, Graph):
        raise TypeError(
            f"convert needs an eventsnn.graph.Graph, got {type(graph).__name__}; import a model "
            "with eventsnn.io.onnx.load_onnx / eventsnn.io.torch.from_torch or eventsnn.load_graph")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(map(repr, NORMS))}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(map(repr, POOLINGS))}")
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
        raise TypeError(f"percentile must be a number in (0, 100], got {percentile!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100] (e.g. 99.9), got {percentile}")
    if isinstance(burst, bool) or not isinstance(burst, numbers.Real):
        raise TypeError(f"burst Γ must be an integer >= 1, got {burst!r}")
    if burst != int(burst) or burst < 1:
        raise ValueError(f"burst Γ must be an integer >= 1 (1 = plain IF neuron; the paper uses 2 or 5), "
                         f"got {burst}")
    if not isinstance(channelwise, (bool, np.bool_)):
        raise TypeError(f"channelwise must be True or False, got {channelwise!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = np.asarray(calib_x)
    expected = "(N, " + ", ".join(map(str, graph.input_shape)) + ")"
    if x.ndim != len(graph.input_shape) + 1 or x.shape[1:] != graph.input_shape:
        hint = " (add a batch axis: x[None])" if x.shape == graph.input_shape else ""
        raise ValueError(f"calib_x has shape {x.shape}, expected {expected}{hint}")
    if len(x) == 0:
        raise ValueError(f"calib_x is empty (shape {x.shape}); pass at least one calibration image, "
                         "e.g. a few hundred training images")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"calib_x has dtype {x.dtype}; pass float images normalised exactly as for the "
                         "ANN, e.g. (x / 255 - mean) / std as float32")
    if not np.all(np.isfinite(x)):
        raise ValueError("calib_x contains NaN or inf; clean the calibration data (e.g. drop those "
                         "images) before converting")
    return np.ascontiguousarray(x, dtype=np.float32)


def _scale_op(lam, shape, invert=False):
    lam = np.asarray(lam, dtype=np.float64)
    return Scale(1.0 / lam if invert else lam, shape)


def convert(graph, calib_x, *, norm=None, percentile=None, burst=None, pooling="lipool",
            channelwise=None, batch_size=100, v_init=None, calibration=None, timesteps=None,
            calib_images=None, calib_passes=None, preset="default"):
    """Convert a ReLU ANN into a spiking network of burst IF neurons.

    Steps: fold BatchNorm into the preceding Conv/Linear (Eq. 7, :func:`fold_batchnorm`);
    walk the graph fusing linear chains into connections (module docstring); measure λ of
    every IF population on ``calib_x`` and normalise (Eq. 6):
    ``ŵ = w · λ_src / λ_dst`` and ``b̂ = b / λ_dst``, thresholds 1, with λ_input = 1 (direct
    coding: the image is an analog current) and λ_output = 1. Each IF population fires
    bursts of up to Γ spikes per step (Algorithm 1); max pooling becomes LIPooling
    (Eq. 12), the max-gate baseline (Eq. 11) or average pooling.

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The trained ANN (Conv, Linear, BatchNorm, ReLU, MaxPool/AvgPool, global average
        pooling, Flatten/Reshape, Pad, Slice, residual Add). Not modified.
    calib_x : array_like
        Calibration images ``(N, *graph.input_shape)``, float, normalised as for the ANN.
    norm : {"mmse", "burst-percentile", "percentile", "max"}
        How λ is taken from the activations of a layer (see :mod:`eventsnn.calibrate`):
        the maximum; the p-th percentile of all values, zeros included (sorted index
        ``int(N p / 100) - 1``); the authors' burst-aware percentile (values above 1
        divided by Γ before the percentile); or the λ minimising the squared error of a
        burst neuron run for ``timesteps`` steps from ``v_init`` (:mod:`eventsnn.thresholds`).
        This and every other setting left at None comes from ``preset``.
    percentile : float
        p in (0, 100]; ignored for ``norm="max"``.
    burst : int
        Γ >= 1, the largest number of spikes an IF neuron emits per step.
    pooling : {"lipool", "maxgate", "avg"}
        What MaxPool becomes: LIPooling (Eq. 12), the max-gated baseline (Eq. 11), or an
        average pool with the same kernel/stride/padding (``count_include_pad=True``),
        fused into the next connection — the SNN then approximates the ANN with AvgPool.
    channelwise : bool
        One λ per channel (axis 0) instead of one per layer.
    batch_size : int
        Calibration images per ANN forward batch (memory: only needed activations are kept).
    v_init : float
        Initial membrane potential of every IF neuron in units of θ, in ``[0, 1)``
        (``Population.v_init``; 0.5 rounds instead of flooring the rate).
    calibration : {"none", "bias", "potential", "bias+potential"}
        Layer-wise calibration on ``calib_images`` of ``calib_x`` simulated for ``timesteps``
        steps (:func:`eventsnn.layer_calibration.calibrate_layers`, ``calib_passes`` passes).
    timesteps : int
        The ``T`` the network is meant to run for (``norm="mmse"`` and calibration).
    calib_images, calib_passes : int
        Images (a seeded subset of ``calib_x``; unset: the preset's 64, or all of ``calib_x``
        when it has fewer) and passes of the layer-wise calibration. Bias calibration needs at
        least 16 images, potential calibration 32 (:data:`eventsnn.layer_calibration.MIN_IMAGES`).
    preset : {"default", "paper"}
        Where unset settings come from (:data:`eventsnn.presets.PRESETS`): ``"paper"`` is the
        paper's method (burst-percentile 99.9, ``V(0) = 0``, no calibration).

    Returns
    -------
    SpikingNetwork
        Every population has ``ann_node`` (the graph node whose activation it approximates)
        and ``scale`` (λ: rate ≈ activation / λ). For an IF population created by swapping
        a MaxPool and a ReLU, the approximated activation is ``relu(ann_node)``; those
        populations are listed in ``net.meta["ann_relu"]``. ``net.meta`` also holds the
        settings, the calibration size, ``scales`` (λ per population), the number of folded
        BatchNorms and the conversion time.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (the message says how to fix them), or a graph the converter cannot
        map to spiking stages (names the node and why).
    """
    t0 = time.perf_counter()
    cfg = resolve_settings(preset, norm=norm, percentile=percentile, burst=burst,
                           channelwise=channelwise, v_init=v_init, calibration=calibration,
                           timesteps=timesteps, calib_images=calib_images, calib_passes=calib_passes)
    norm, percentile, burst, channelwise = cfg["norm"], cfg["percentile"], cfg["burst"], cfg["channelwise"]
    x = _check_args(graph, calib_x, norm, percentile, burst, pooling, channelwise, batch_size)
    if calib_images is None:  # the preset's number, or all of calib_x when it has fewer
        cfg["calib_images"] = min(cfg["calib_images"], len(x))
    need = MIN_IMAGES[cfg["calibration"]]
    if cfg["calibration"] != "none" and not need <= cfg["calib_images"] <= len(x):
        raise ValueError(f"calibration {cfg['calibration']!r} needs at least {need} calibration "
                         f"images and simulates calib_images={cfg['calib_images']}, but calib_x has "
                         f"{len(x)}; pass more images (at least {need}) or calibration='none'")
    folded = fold_batchnorm(graph)
    n_folded = len(graph.nodes) - len(folded.nodes)
    pops = _Walker(folded, pooling).run()

    refs = {p.name: (p.ann_node, p.ann_relu) for p in pops if p.kind == "if"}
    scales = collect_scales(folded, x, refs, norm=norm, percentile=float(percentile), burst=int(burst),
                            channelwise=bool(channelwise), batch_size=int(batch_size),
                            timesteps=cfg["timesteps"], v0=cfg["v_init"])
    by_name = {p.name: p for p in pops}
    for p in pops:
        if p.kind == "if":
            p.scale = scales[p.name]
        elif p.kind in ("lipool", "maxgate"):
            p.scale = by_name[p.pool["source"]].scale

    shapes = {INPUT: folded.input_shape, **{p.name: p.shape for p in pops}}
    lam = {INPUT: np.asarray(1.0), **{p.name: p.scale for p in pops}}
    populations, connections = [], []
    for p in pops:
        if p.kind in ("lipool", "maxgate"):
            src = p.pool["source"]
            connections.append(PoolConnection(src, p.name, shapes[src], p.shape, kernel=p.pool["kernel"],
                                              stride=p.pool["stride"], padding=p.pool["padding"]))
            bias = None
        else:
            terms = [(src, (_scale_op(lam[src], shapes[src]),) + tuple(chain)
                      + (_scale_op(p.scale, p.shape, invert=True),)) for src, chain in p.expr.terms]
            connections.extend(compile_terms(p.name, p.shape, terms, shapes))
            s = np.asarray(p.scale, dtype=np.float64)
            b = p.expr.bias / (s if s.ndim == 0 else s.reshape((-1,) + (1,) * (len(p.shape) - 1)))
            bias = b.astype(np.float32) if np.any(b) else None
        populations.append(Population(p.name, p.shape, p.kind, threshold=1.0,
                                      burst=int(burst) if p.kind == "if" else 1, bias=bias,
                                      pool=p.pool, ann_node=p.ann_node,
                                      scale=np.asarray(p.scale, dtype=np.float32),
                                      v_init=cfg["v_init"] if p.kind == "if" else 0.0))
    meta = {
        "converter": "eventsnn.convert", "norm": norm, "percentile": float(percentile),
        "burst": int(burst), "pooling": pooling, "channelwise": bool(channelwise),
        "calib_size": int(len(x)), "folded_batchnorms": int(n_folded),
        "ann_relu": [p.name for p in pops if p.ann_relu],
        "scales": {p.name: np.asarray(p.scale, dtype=np.float64).tolist() for p in pops},
        "preset": preset, "v_init": cfg["v_init"], "calibration": cfg["calibration"],
        "timesteps": cfg["timesteps"],
    }
    net = SpikingNetwork(folded.input_shape, populations, connections, meta)
    if cfg["calibration"] != "none":
        pick = np.sort(np.random.default_rng(0).choice(len(x), cfg["calib_images"], replace=False))
        rep = calibrate_layers(folded, net, x[pick], cfg["timesteps"], mode=cfg["calibration"],
                               passes=cfg["calib_passes"])
        net.meta.update(calib_images=cfg["calib_images"], calib_passes=cfg["calib_passes"],
                        calib_rate_error=[float(np.mean(list(e.values()))) for e in rep["rate_error"]])
    net.meta["convert_seconds"] = round(time.perf_counter() - t0, 3)
    return net


def _check_net_input(net, x):
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"expected a SpikingNetwork (from eventsnn.convert), got {type(net).__name__}")
    x = np.asarray(x)
    if x.ndim != len(net.input_shape) + 1 or x.shape[1:] != net.input_shape:
        expected = "(B, " + ", ".join(map(str, net.input_shape)) + ")"
        raise ValueError(f"x has shape {x.shape}, expected {expected}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ValueError("x must be finite floating-point images normalised as for the ANN")
    return np.ascontiguousarray(x, dtype=np.float32)


def analog_forward(net, x):
    """Run a :class:`SpikingNetwork` as an ANN: the exact rate limit of the SNN.

    Each ``"if"`` population computes ``relu(Σ_in W·a_src + b)`` (no clipping at Γ —
    rates above the burst limit are kept), pooling populations the max of their window
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
