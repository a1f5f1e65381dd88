"""ANN -> SNN conversion: BN folding, linear-chain fusion, data-based normalisation.

:func:`convert` turns an :class:`eventsnn.graph.Graph` into a :class:`SpikingNetwork` of
burst IF neurons (Algorithm 1), LIPooling / max-gate pooling populations (Eq. 12 / Eq. 11)
and an output integrator, with weights normalised by per-layer factors λ (Eq. 6) measured
on calibration data. :func:`eventsnn.convert.analog.analog_forward` runs the result as an ANN — the exact rate
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
:mod:`eventsnn.convert.fusion` (conv stays weight-shared; other chains are materialised as CSR).
"""

from __future__ import annotations

import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .calibrate import NORMS, collect_scales
from .layer_calibration import MIN_IMAGES, calibrate_layers
from .presets import resolve_settings
from .fold import fold_batchnorm
from .fusion import Conv, Dense, Scale, Structural, compile_terms, structural_node
from ..graph import OPS, Graph, bn_scale_shift, conv_geometry
from ..network import INPUT, PoolConnection, Population, SpikingNetwork
from ..validation import MAX_BURST, check_batch, check_finite_float, check_positive_int

__all__ = ["convert", "NORMS", "POOLINGS"]

POOLINGS = ("lipool", "maxgate", "avg")
_LINEAR_OPS = ("conv", "linear", "batchnorm", "avgpool", "global_avgpool", "flatten", "reshape",
               "pad", "slice", "identity", "transpose", "adaptive_avgpool")


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
    clip: float | None = None     # upper bound of a bounded ReLU (ANN units), "if" only
    scale: np.ndarray = field(default_factory=lambda: np.asarray(1.0))


class _Walker:
    """Builds population specs from the graph (see the module docstring)."""

    def __init__(self, graph, pooling):
        self.g, self.pooling = graph, pooling
        self.pops = {}     # name -> _Pop, in creation (= topological) order
        self.values = {}   # node name -> ("pop", name) | ("expr", _Expr) | ("cat", (node, axis, parts))
        self.used = {INPUT}
        self.output = self._logits()
        self.live = self._ancestors()

    def _logits(self):
        """The output node, past a final ReLU / bounded ReLU on the logits (dropped, with a warning)."""
        out = self.g.output
        while self.g.node(out).op in ("relu", "clip") and self.g.node(out).inputs[0] != self.g.input_name:
            node = self.g.node(out)
            warnings.warn(f"convert: the {node.op} on the logits (node {out!r}) is dropped; the output integrator "
                          "accumulates the logits themselves, so the prediction (argmax) is the ANN's wherever "
                          "its largest logit is positive (below 0 the ANN's own output ties at 0)",
                          UserWarning, stacklevel=4)
            out = node.inputs[0]
        return out

    def _ancestors(self):
        live, stack = set(), [self.output]
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
        return self._as_expr(self.values[name])

    def _as_expr(self, value):
        kind, v = value
        if kind == "expr":
            return v
        if kind == "cat":
            return self._cat_expr(v)
        shape = self.pops[v].shape
        return _Expr([(v, ())], np.zeros(shape, dtype=np.float32))

    def _cat_expr(self, cat):
        """A concatenation as one expression: part k is zero-padded along the axis into place."""
        name, axis, parts = cat
        shape = self._shape(name)
        nd, offset, terms, biases = len(shape), 0, [], []
        for k, part in enumerate(parts):
            e = self._as_expr(part)
            n = e.bias.shape[axis]
            pads = [0] * (2 * nd)
            pads[axis], pads[nd + axis] = offset, shape[axis] - offset - n
            place = Structural(structural_node(f"{name}/place{k}", "pad", (), {"pads": pads}, shape), e.bias.shape)
            terms += [(src, chain + (place,)) for src, chain in e.terms]
            biases.append(e.bias)
            offset += n
        return _Expr(terms, np.ascontiguousarray(np.concatenate(biases, axis=axis), dtype=np.float32))

    def _add_pop(self, pop):
        self.pops[pop.name] = pop
        return ("pop", pop.name)

    def run(self):
        g = self.g
        self.values[g.input_name] = ("expr", _Expr([(INPUT, ())], np.zeros(g.input_shape, np.float32)))
        for node in g.nodes:
            if node.name in self.live:
                self.values[node.name] = self._visit(node)
        out = self._expr(self.output)
        self._add_pop(_Pop(self._name("output"), "output", g.output_shape, self.output, expr=out))
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
        if op == "concat":
            return ("cat", (node.name, node.attrs["axis"], [self.values[i] for i in node.inputs]))
        if op in ("relu", "clip"):
            return self._relu(node)
        if op == "maxpool":
            return self._maxpool(node)
        raise self._fail(node, f"op {op!r} is neither linear nor a ReLU/MaxPool; the converter handles "
                               f"{sorted(_LINEAR_OPS + ('add', 'concat', 'relu', 'clip', 'maxpool'))}")

    def _linear(self, node):
        (src,) = node.inputs
        kind, v = self.values[src]
        if node.op == "identity" and kind in ("pop", "cat"):
            return (kind, v)
        in_shape = self._shape(src)
        if node.op == "conv":
            lin = Conv(node.params["weight"], node.attrs["stride"], node.attrs["padding"],
                       in_shape, node.shape, *conv_geometry(node.attrs))
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

    def _pops_of(self, value, channels_only=False):
        """Population names if ``value`` is a population or a concatenation of populations (along
        channels only, if asked), else None."""
        kind, v = value
        if kind == "pop":
            return [v]
        if kind == "cat" and (v[1] == 0 or not channels_only):
            names = [self._pops_of(part, channels_only) for part in v[2]]
            return None if any(n is None for n in names) else [p for n in names for p in n]
        return None

    def _relu(self, node):
        """ReLU / bounded ReLU (``clip``): an IF population, unless the value is already a rate."""
        (src,) = node.inputs
        value = self.values[src]
        bound = node.attrs["max"] if node.op == "clip" else None
        pops = self._pops_of(value)
        # rates are >= 0 (ReLU is idempotent on them) and never exceed a bound they already have
        if pops is not None and all(bound is None or (self.pops[p].clip is not None and self.pops[p].clip <= bound)
                                    for p in pops):
            return value
        return self._add_pop(_Pop(self._name(node.name), "if", node.shape, node.name,
                                  expr=self._as_expr(value), clip=bound))

    def _pool_pop(self, node, src_pop, ann, padding=None):
        a = node.attrs
        padding = a["padding"] if padding is None else padding
        pool = {"source": src_pop, "kernel": a["kernel"], "stride": a["stride"],
                "padding": [int(p) for p in padding]}
        out_shape = (self.pops[src_pop].shape[0],) + tuple(node.shape[1:])
        return self._add_pop(_Pop(self._name(node.name), self.pooling, out_shape, ann, pool=pool))

    def _pooled_affine(self, node, e):
        """max pooling of ``a * p + c`` (one population ``p``, per-channel ``a >= 0`` and ``c``) is
        ``a * maxpool(p) + c`` exactly (max commutes with a non-negative scale and a constant; padding
        never wins), or None when ``e`` is not of that form."""
        if len(e.terms) != 1:
            return None
        src, chain = e.terms[0]
        if src == INPUT or not all(isinstance(op, Scale) for op in chain):
            return None
        factor = np.ones(()) if not chain else np.prod(np.broadcast_arrays(*[op.s for op in chain]), axis=0)
        c = self.pops[src].shape[0]
        shift = e.bias.reshape(c, -1)
        if np.any(factor < 0) or np.any(shift != shift[:, :1]):
            return None
        pooled = self._pool_pop(node, src, None)[1]
        bias = np.broadcast_to(shift[:, :1].reshape((c,) + (1,) * (len(node.shape) - 1)), node.shape)
        return ("expr", _Expr([(pooled, (Scale(factor, node.shape),))], np.ascontiguousarray(bias, np.float32)))

    def _zero_padded_pop(self, expr):
        """``(population, [top, left, bottom, right])`` when ``expr`` is a spiking population
        zero-padded in H and W only (e.g. ``ZeroPad2d`` after a ReLU): a non-negative signal
        whose padding max pooling can take over. None otherwise."""
        if len(expr.terms) != 1 or np.any(expr.bias):
            return None
        src, chain = expr.terms[0]
        if src == INPUT or not chain or any(not isinstance(op, Structural) or op.op != "pad"
                                            for op in chain):
            return None
        extra = np.zeros(4, np.int64)
        for op in chain:
            pads = op.node.attrs["pads"]
            if len(pads) != 6 or pads[0] or pads[3]:
                return None                  # channel padding or not (C, H, W)
            extra += (pads[1], pads[2], pads[4], pads[5])
        return src, extra

    def _maxpool(self, node):
        (src,) = node.inputs
        kind, v = self.values[src]
        if kind == "cat":  # pooling acts per channel: pool every population of the concatenation
            pops = self._pops_of((kind, v), channels_only=True)
            if pops is None:
                raise self._fail(node, "max pooling of a concatenation needs every part to be a ReLU output "
                                       "(concatenated along channels); use pooling='avg' otherwise")
            return ("cat", (node.name, 0, [self._pool_pop(node, p, None) for p in pops]))
        if kind == "expr":
            padded = self._zero_padded_pop(v)
            if padded is not None:               # max(0, ...) of zeros = 0: pool the population
                pop, extra = padded
                return self._pool_pop(node, pop, node.name,
                                      np.asarray(node.attrs["padding"], np.int64) + extra)
            affine = self._pooled_affine(node, v)
            if affine is not None:
                return affine
            consumers = [c for c in self.g.consumers(node.name) if c.name in self.live]
            if node.name == self.output or len(consumers) != 1 or consumers[0].op != "relu":
                raise self._fail(node, "max pooling of a signal that is neither a ReLU output nor a "
                                       "non-negative per-channel affine map of one cannot be converted "
                                       "(spike rates are non-negative; a negative scale turns the max into "
                                       "a min); it must follow a ReLU (optionally through BatchNorm or a "
                                       "constant Mul/Add with a positive scale), or feed only a ReLU "
                                       "(then the two are swapped), or use pooling='avg'")
            relu = consumers[0]
            pre = self._add_pop(_Pop(self._name(relu.name), "if", self._shape(src), src,
                                     ann_relu=True, expr=v))
            return self._pool_pop(node, pre[1], relu.name)
        return self._pool_pop(node, v, node.name)


def _check_args(graph, calib_x, norm, percentile, burst, pooling, channelwise, batch_size):
    if not isinstance(graph, Graph):
        raise TypeError(
            f"convert needs an eventsnn.graph.Graph, got {type(graph).__name__}; import a model "
            "with eventsnn.load_onnx, eventsnn.from_torch or eventsnn.load_graph")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(map(repr, NORMS))}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(map(repr, POOLINGS))}")
    if not 0 < check_finite_float(percentile, "percentile") <= 100:
        raise ValueError(f"percentile must be in (0, 100] (e.g. 99.9), got {percentile}")
    if isinstance(burst, bool) or not isinstance(burst, numbers.Real):
        raise TypeError(f"burst Γ must be an integer >= 1, got {burst!r}")
    if burst != int(burst) or not 1 <= burst <= MAX_BURST:
        raise ValueError(f"burst Γ must be an integer from 1 to {MAX_BURST} (1 = plain IF neuron; "
                         f"the paper uses 2 or 5), got {burst:g}")
    if not isinstance(channelwise, (bool, np.bool_)):
        raise TypeError(f"channelwise must be True or False, got {channelwise!r}")
    check_positive_int(batch_size, "batch_size")
    return check_batch(calib_x, graph.input_shape, "calib_x")


def _bounded_scale(bound, lam, burst):
    """λ of a bounded ReLU ``min(max(x, 0), bound)``: ``bound / k`` with ``k = min(Γ, ceil(bound / λ))``.

    The population then fires at most ``k`` spikes per step (its Γ), which is exactly the bound
    in normalised units (Eq. 6: rate = activation / λ), so the SNN rate saturates where the
    ANN clips. ``k`` rounds the calibrated ``bound / λ`` up (λ never grows past the bound, a
    max-norm calibration gives ``k = 1``); one λ per layer (the cap is one Γ per population).
    """
    lam = float(np.max(lam))
    k = min(int(burst), max(1, int(np.ceil(bound / lam - 1e-6))))
    return np.asarray(bound / k)


def _scale_op(lam, shape, invert=False):
    lam = np.asarray(lam, dtype=np.float64)
    return Scale(1.0 / lam if invert else lam, shape)


def convert(graph, calib_x, *, norm=None, percentile=None, burst=None, pooling="lipool",
            channelwise=None, batch_size=100, v_init=None, calibration=None, timesteps=None,
            calib_images=None, calib_passes=None, preset="default", progress=False,
            reset="subtract"):
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
        How λ is taken from the activations of a layer (see :mod:`eventsnn.convert.calibrate`):
        the maximum; the p-th percentile of all values, zeros included (sorted index
        ``int(N p / 100) - 1``); the authors' burst-aware percentile (values above 1
        divided by Γ before the percentile); or the λ minimising the squared error of a
        burst neuron run for ``timesteps`` steps from ``v_init`` (:mod:`eventsnn.convert.thresholds`).
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
        steps (:func:`eventsnn.convert.layer_calibration.calibrate_layers`, ``calib_passes`` passes).
    timesteps : int
        The ``T`` the network is meant to run for (``norm="mmse"`` and calibration).
    calib_images, calib_passes : int
        Images (a seeded subset of ``calib_x``; unset: the preset's 64, or all of ``calib_x``
        when it has fewer) and passes of the layer-wise calibration. Bias calibration needs at
        least 16 images, potential calibration 32 (:data:`eventsnn.convert.layer_calibration.MIN_IMAGES`).
    preset : {"default", "paper"}
        Where unset settings come from (:data:`eventsnn.convert.presets.PRESETS`): ``"paper"`` is the
        paper's method (burst-percentile 99.9, ``V(0) = 0``, no calibration).
    progress : bool
        Show a tqdm progress bar over the calibration images.
    reset : {"subtract", "zero"}
        ``"subtract"``: Eq. 2-4. ``"zero"`` (needs ``burst=1``): IF neurons with NIR's hard
        reset and strict threshold, ``V = 0`` after a spike
        (:func:`eventsnn.io.nir.hard_reset`), starting from ``V(0) = 0`` and not calibrated
        here (``v_init`` and ``calibration`` must then be unset or 0 / ``"none"``); with
        ``pooling="avg"`` the network is exactly expressible in NIR
        (``eventsnn.io.nir.NIR_PRESET``).

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
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' (Eq. 2-4) or 'zero' (NIR's IF), got {reset!r}")
    if reset == "zero":
        if v_init not in (None, 0) or calibration not in (None, "none"):
            raise ValueError("reset='zero' (NIR's IF neuron) starts from V(0) = 0 and is not "
                             "calibrated here; leave v_init and calibration unset (or pass "
                             "v_init=0, calibration='none')")
        v_init, calibration = 0.0, "none"
    cfg = resolve_settings(preset, norm=norm, percentile=percentile, burst=burst,
                           channelwise=channelwise, v_init=v_init, calibration=calibration,
                           timesteps=timesteps, calib_images=calib_images, calib_passes=calib_passes)
    norm, percentile, burst, channelwise = cfg["norm"], cfg["percentile"], cfg["burst"], cfg["channelwise"]
    if reset == "zero" and burst != 1:
        raise ValueError(f"reset='zero' fires at most one spike per step; pass burst=1, not {burst!r}")
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
                            timesteps=cfg["timesteps"], v0=cfg["v_init"], progress=progress)
    by_name = {p.name: p for p in pops}
    for p in pops:
        if p.kind == "if":
            p.scale = scales[p.name] if p.clip is None else _bounded_scale(p.clip, scales[p.name], int(burst))
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
        gamma = 1 if p.kind != "if" else int(burst) if p.clip is None else int(round(p.clip / float(p.scale)))
        populations.append(Population(p.name, p.shape, p.kind, threshold=1.0, burst=gamma, bias=bias,
                                      pool=p.pool, ann_node=p.ann_node,
                                      scale=np.asarray(p.scale, dtype=np.float32),
                                      v_max=None if p.clip is None else 1.0,
                                      v_init=cfg["v_init"] if p.kind == "if" else 0.0))
    meta = {
        "converter": "eventsnn.convert", "norm": norm, "percentile": float(percentile),
        "burst": int(burst), "pooling": pooling, "channelwise": bool(channelwise),
        "calib_size": int(len(x)), "folded_batchnorms": int(n_folded),
        "ann_relu": [p.name for p in pops if p.ann_relu],
        "scales": {p.name: np.asarray(p.scale, dtype=np.float32).tolist() for p in pops},
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
    if reset == "zero":
        from ..io.nir import hard_reset

        return hard_reset(net)
    return net

