"""Data-based normalisation factors λ (paper Eq. 6) from ANN activations on calibration data.

Three rules, all on the activation values of one layer (zeros included), optionally one λ
per channel (axis 0 of the per-sample shape):

``"max"``
    λ = the largest activation (Diehl et al. 2015).
``"percentile"``
    λ = the p-th percentile (Rueckauer et al. 2017, "p-Norm"), taken as the authors of the
    paper do: sort all N values ascending and take index ``int(N * p / 100) - 1``
    (clamped to 0) — no interpolation.
``"burst-percentile"``
    The authors' burst-aware variant (their published code, see ``paper-notes.md``): values
    above 1 (in the ANN's own units) are divided by Γ first, then the percentile above is
    taken. Burst neurons can emit up to Γ spikes per step, so activations up to Γ·λ remain
    representable (Sec. 4.1: the set R1 grows to ``o/λ <= Γ``).
``"mmse"``
    The λ minimising the squared error between the activations and what a burst neuron run
    for ``T`` steps from ``V(0)`` represents (:mod:`eventsnn.convert.thresholds`).

The statistics are streamed over batches: for the percentile only the ``k`` largest (or,
for low p, the ``k`` smallest) values of each layer/channel are kept, ``k = N - index``
(about ``N (1 - p/100)``), so calibrating ResNet-56 on 1000 images needs a few MB.
A λ that comes out as 0 (a layer whose percentile lies in its zeros) falls back to the
layer's (channel's) maximum, and to 1 when that is 0 too (all-zero layer); one warning per
call lists the layers concerned.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..graph import OPS

__all__ = ["NORMS", "percentile_index", "ScaleAccumulator", "activation_scale", "collect_scales"]

NORMS = ("max", "percentile", "burst-percentile", "mmse")


def percentile_index(n, p):
    """Index of the p-th percentile in ``n`` sorted values: ``max(int(n * p / 100) - 1, 0)``."""
    return max(int(n * p / 100) - 1, 0)


class ScaleAccumulator:
    """Streams activations of one layer and returns its λ (Eq. 6).

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape of the activation.
    n_samples : int
        Total number of samples that will be fed (fixes the percentile index).
    norm : {"max", "percentile", "burst-percentile"}
        Normalisation rule (module docstring).
    percentile : float
        p in (0, 100].
    burst : int
        Γ (used by ``"burst-percentile"`` only).
    channelwise : bool
        One λ per channel (axis 0) instead of one per layer.
    """

    def __init__(self, shape, n_samples, norm, percentile, burst, channelwise):
        self.shape = tuple(shape)
        self.norm, self.p, self.burst, self.channelwise = norm, float(percentile), int(burst), channelwise
        rows = self.shape[0] if channelwise else 1
        self.n = int(n_samples) * int(np.prod(self.shape)) // rows  # values per row
        self.index = percentile_index(self.n, self.p)
        self.k_top = self.n - self.index  # λ = smallest of the k_top largest values
        self.top = self.k_top <= self.index + 1
        self.max = np.full(rows, -np.inf)
        self.buf = np.empty((rows, 0), dtype=np.float32)
        self.seen = 0

    def _rows(self, a):
        a = np.asarray(a, dtype=np.float32).reshape((-1,) + self.shape)
        if self.channelwise:
            return np.moveaxis(a, 1, 0).reshape(self.shape[0], -1)
        return a.reshape(1, -1)

    def update(self, acts):
        """Add a batch ``(B, *shape)`` of activations."""
        v = self._rows(acts)
        if v.size == 0:
            return
        self.seen += v.shape[1]
        if self.norm == "burst-percentile":
            v = np.where(v > 1, v / np.float32(self.burst), v)
        self.max = np.maximum(self.max, v.max(axis=1))
        if self.norm == "max":
            return
        buf = np.concatenate([self.buf, v], axis=1)
        if self.top and buf.shape[1] > self.k_top:
            cut = buf.shape[1] - self.k_top
            buf = np.partition(buf, cut, axis=1)[:, cut:]
        elif not self.top and buf.shape[1] > self.index + 1:
            buf = np.partition(buf, self.index, axis=1)[:, :self.index + 1]
        self.buf = buf

    def raw(self):
        """λ per row before the zero fallback (float64, shape ``(rows,)``)."""
        if self.seen != self.n:
            raise RuntimeError(f"fed {self.seen} values per row, expected {self.n}")
        if self.norm == "max":
            return self.max.astype(np.float64)
        return (self.buf.min(axis=1) if self.top else self.buf.max(axis=1)).astype(np.float64)

    def result(self):
        """``(λ, n_to_max, n_dead)``: λ is 0-d (layer-wise) or ``(C,)`` (channel-wise), all > 0.

        A λ <= 0 falls back to the row's maximum (counted in ``n_to_max``), or to 1 when
        the row is all zero (counted in ``n_dead``).
        """
        lam = self.raw()
        bad = lam <= 0
        to_max = bad & (self.max > 0)
        dead = bad & ~(self.max > 0)
        lam = np.where(dead, 1.0, np.where(to_max, self.max, lam))
        return (lam if self.channelwise else np.asarray(lam[0])), int(to_max.sum()), int(dead.sum())


def _accumulator(shape, n_samples, norm, percentile, burst, channelwise, timesteps, v0):
    """A :class:`ScaleAccumulator`, or for ``norm="mmse"`` an
    :class:`eventsnn.convert.thresholds.MMSEAccumulator` (same interface)."""
    if norm == "mmse":
        from .thresholds import MMSEAccumulator

        return MMSEAccumulator(shape, n_samples, burst, channelwise, timesteps, v0)
    return ScaleAccumulator(shape, n_samples, norm, percentile, burst, channelwise)


def _warn_fallbacks(found, channelwise, stacklevel):
    """One warning for all layers whose λ fell back (``found``: name -> (n_to_max, n_dead))."""
    unit = "channel(s)" if channelwise else "layer(s)"
    for k, what in ((0, "percentile is 0, used the maximum as λ"),
                    (1, "all calibration activations are 0 (dead, or unrepresentative calibration "
                        "data), used λ = 1")):
        hits = {n: c[k] for n, c in found.items() if c[k]}
        if hits:
            names = ", ".join(f"{n!r} ({c})" if channelwise else repr(n) for n, c in list(hits.items())[:5])
            more = f" and {len(hits) - 5} more layers" if len(hits) > 5 else ""
            warnings.warn(f"{sum(hits.values())} {unit}: {what}: {names}{more}", UserWarning,
                          stacklevel=stacklevel + 1)


def activation_scale(acts, norm="burst-percentile", percentile=99.9, burst=5, channelwise=False,
                     name="layer", timesteps=32, v0=0.0):
    """λ (Eq. 6) of one layer from all its activations at once.

    Parameters
    ----------
    acts : array_like
        ``(N, *shape)`` activations of the layer over the calibration set.
    norm, percentile, burst, channelwise
        As in :class:`ScaleAccumulator`.
    name : str
        Layer name used in warnings.
    timesteps, v0
        ``T`` and ``V(0) / θ`` of ``norm="mmse"``.

    Returns
    -------
    numpy.ndarray
        0-d (layer-wise) or ``(C,)`` (channel-wise) float64, all > 0.
    """
    acts = np.asarray(acts, dtype=np.float32)
    acc = _accumulator(acts.shape[1:], len(acts), norm, percentile, burst, channelwise, timesteps, v0)
    acc.update(acts)
    lam, to_max, dead = acc.result()
    _warn_fallbacks({name: (to_max, dead)}, channelwise, stacklevel=2)
    return lam


def collect_scales(graph, x, refs, *, norm, percentile, burst, channelwise, batch_size,
                   timesteps=32, v0=0.0, progress=False):
    """λ for every calibration target, streaming the ANN forward over ``x`` in batches.

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN.
    x : numpy.ndarray
        Calibration inputs ``(N, *graph.input_shape)`` (already validated).
    refs : dict
        ``target name -> (node name, relu)``: the target's activation is that node's output
        (the graph input name allowed), passed through a ReLU when ``relu`` is True.
    norm, percentile, burst, channelwise
        As in :class:`ScaleAccumulator`.
    batch_size : int
        Images per forward batch. Only the activations that are still needed are kept.
    timesteps, v0
        ``T`` and ``V(0) / θ`` of ``norm="mmse"`` (:class:`eventsnn.convert.thresholds.MMSEAccumulator`).
    progress : bool
        Show a tqdm progress bar over the images.

    Returns
    -------
    dict
        ``target name -> λ`` (0-d or ``(C,)`` float64 arrays).
    """
    by_node = {}
    for target, (node, relu) in refs.items():
        by_node.setdefault(node, []).append((target, relu))
    accs = {t: _accumulator(graph.shape_of(n), len(x), norm, percentile, burst, channelwise,
                            timesteps, v0) for t, (n, _) in refs.items()}
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    stop = max([order.get(n, -1) for n in by_node] + [-1])
    nodes = graph.nodes[:stop + 1]
    last_use = {}
    for i, node in enumerate(nodes):
        for inp in node.inputs:
            last_use[inp] = i

    def feed(name, a):
        for target, relu in by_node.get(name, ()):
            accs[target].update(np.maximum(a, 0) if relu else a)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(x), desc="calibrate", unit="img", disable=not progress)
    for start in range(0, len(x), batch_size):
        acts = {graph.input_name: graph.check_input(x[start:start + batch_size])}
        feed(graph.input_name, acts[graph.input_name])
        for i, node in enumerate(nodes):
            acts[node.name] = OPS[node.op].forward(node, [acts[n] for n in node.inputs])
            feed(node.name, acts[node.name])
            for inp in node.inputs:
                if last_use.get(inp) == i:
                    acts.pop(inp, None)
        bar.update(min(batch_size, len(x) - start))
    bar.close()
    out, found = {}, {}
    for t, acc in accs.items():
        out[t], to_max, dead = acc.result()
        found[refs[t][0]] = (to_max, dead)
    _warn_fallbacks(found, channelwise, stacklevel=3)
    return out
