"""Analysis of simulation results: firing, bursts, accuracy over time and conversion errors.

Everything here works from a :class:`~eventsnn.engine.SimResult` (aggregated counts plus the
optional per-neuron records ``"neuron_counts"`` and ``"potential"``, both ``(B, N)`` per
population), the :class:`~eventsnn.network.SpikingNetwork` and, for the conversion-error
decomposition, the ANN :class:`~eventsnn.graph.Graph` and the simulated images. No function
needs a per-neuron-per-step array ``(T, B, N)``; ``"trains"`` is used only if it was recorded.

:class:`Analysis` is a streaming accumulator: :meth:`Analysis.add` one batch at a time (the
per-neuron records of the batch are reduced to sums and dropped), :meth:`Analysis.merge`
two accumulators, :meth:`Analysis.to_dict` the figures. :func:`analyze_simulation` simulates
a large set of images batch by batch and accumulates, so thousands of images never have to
be held as per-neuron records at once.

Definitions
-----------
Let ``T`` be the number of steps, ``n_{b,i}`` the spike count of neuron ``i`` on image ``b``
(a burst of ``s`` spikes counting ``s``), ``r_{b,i} = n_{b,i} / T`` its firing rate (Eq. 5),
``θ`` the threshold and ``Γ`` the burst limit of its population, ``V_{b,i}(T)`` its final
membrane potential, and ``a_{b,i} = o_{b,i} / λ`` the normalised ANN activation of the
population's ``ann_node`` (``λ`` = ``Population.scale``, Eq. 6). Rates and activations are in
spikes per neuron per step (with ``θ = 1`` after normalisation, one spike per step carries an
activation of 1).

Per layer (every spiking population):

- ``firing_rate`` = Σ spikes / (N · B · T); ``event_rate`` = Σ events / (N · B · T);
  ``burst_factor`` = spikes / events (mean spikes per event; 1 without bursts).
- ``silent_share``: share of (image, neuron) pairs with ``n = 0``; ``never_firing_share``:
  share of neurons silent on every image.
- ``gamma_event_share`` = ``burst_hist[Γ]`` / events: share of events that are full bursts.
- ``gamma_neuron_share``: share of pairs that emitted a burst of ``Γ`` at least once (exact,
  needs ``record="trains"``); ``gamma_neuron_share_lower_bound``: share of pairs with
  ``n > (Γ-1)·T``, which must have emitted ``Γ`` at some step (pigeonhole; exact for Γ = 1);
  ``capped_share``: share of pairs with ``n = Γ·T`` (at the rate cap on every step).

Conversion errors (paper Sec. 3.2), per population with an ``ann_node`` and a ``scale``:

- rate error ``e = r - a``: ``mean_error``, ``mae`` = mean ``|e|``, ``rmse``; ``mae_reachable``
  = mean ``|r - clip(a, 0, Γ)|`` ("if" only), the error left once the rate cap is excused.
- **residual information** ("if", Eq. 8-10): charge is conserved, ``V(0) + Σ_t (I(t) + b) =
  θ·n + V(T)`` (``V(0)`` = ``Population.v_init``, in ``[0, θ)``), and a neuron that fired fewer
  than Γ spikes at the last step ends with ``V(T) < θ``; so ``V(T) ≥ θ`` means whole spikes
  were held back by the cap Γ per step, whatever ``V(0)``.
  ``residual_spikes = floor(max(V(T), 0) / θ)`` per pair; ``residual_rate`` = mean
  ``residual_spikes / T``; ``mean_v_above_threshold`` = mean ``max(0, V(T) - θ) / θ`` (in units
  of θ); ``residual_share`` = share of pairs with ``V(T) ≥ θ``. The ANN predicts it:
  ``above_gamma_share`` = share of pairs with ``a > Γ`` (the set R₂ of Eq. 8 with the cap Γ of
  burst neurons instead of 1) and ``ann_excess_rate`` = mean ``max(0, a - Γ)``; for a neuron
  with a constant input current ``a > Γ``, ``V(T) = V(0) + (a - Γ)·T·θ`` exactly.
- **spikes of inactivated neurons** (SIN, Eq. 10): spikes of pairs whose ANN activation is
  ``a ≤ 0``. ``sin_spikes`` (count), ``sin_share_of_spikes``, ``inactive_share`` (share of
  pairs with ``a ≤ 0``), ``inactive_firing_share`` (share of those that spiked at all),
  ``sin_rate`` = SIN spikes per inactive pair per step.

Pooling error (Eq. 11), per ``"maxgate"``/``"lipool"`` population ``P`` pooling source ``S``:
with ``m_{b,j}`` the max over window ``j`` of the source counts (``PoolConnection.apply``,
padding reads 0) and ``n_{b,j}`` the output count, ``d = n - m`` (in spikes; rate error
``d / T``). ``mean_error``, ``mae``, ``max_error`` (spikes per neuron per step),
``over_share``/``under_share`` (share of windows with ``d > 0`` / ``d < 0``), and the paper's
``correct_ratio`` (Fig. 5b): among positive windows (``n > 0`` or ``m > 0``; for both pooling
kinds ``n ≥ m``, so these are the positive outputs) the share with ``|d| / T < 2 / T``, i.e.
``|d| ≤ 1`` spike. LIPool recovers the max exactly (``d = 0``); max-gating gives ``d ≥ 0``.

Accuracy and settling: ``accuracy[t-1]`` is the share of images with ``argmax U(t) = y``;
the settle step of an image is the first step ``t`` (1-based) after which the prediction
never changes: ``pred(t') = pred(T)`` for all ``t' ≥ t``.
"""

from __future__ import annotations

import math

import numpy as np

from .engine.result import SimResult
from .network import SpikingNetwork
from .validation import check_batch, check_labels, check_positive_int

__all__ = ["Analysis", "analyze", "analyze_simulation", "firing_rates", "settle_steps",
           "normalised_activations", "RATE_UNIT"]

RATE_UNIT = "spikes / neuron / step"
SPIKING_KINDS = ("if", "lipool", "maxgate")
_ANN_CHUNK_BYTES = 256 * 2**20

UNITS = {
    "firing_rate": RATE_UNIT, "event_rate": "events / neuron / step",
    "burst_factor": "spikes / event", "spikes": "spikes (whole run, all images)",
    "events": "events (whole run, all images)", "*_share": "fraction of 1",
    "*_ratio": "fraction of 1", "accuracy": "fraction of 1",
    "mean_error": RATE_UNIT, "mae": RATE_UNIT, "rmse": RATE_UNIT, "max_error": RATE_UNIT,
    "mae_reachable": RATE_UNIT, "residual_rate": RATE_UNIT, "ann_excess_rate": RATE_UNIT,
    "sin_rate": RATE_UNIT, "mean_v_above_threshold": "threshold units (θ)",
    "mean_final_v": "threshold units (θ)", "sin_spikes": "spikes (whole run, all images)",
    "*_step": "time steps (1-based)", "T": "time steps",
}


# --------------------------------------------------------------------------------------
# small functions
# --------------------------------------------------------------------------------------


def settle_steps(predictions):
    """Step at which each image's prediction settles.

    Parameters
    ----------
    predictions : array_like of int, shape (T, B)
        ``argmax U(t)`` for every step and image (:meth:`SimResult.predictions`).

    Returns
    -------
    ndarray of int64, shape (B,)
        The first step ``t`` (1-based) such that ``pred(t') = pred(T)`` for every
        ``t' ≥ t``; 1 when the prediction never changes, ``T`` when it changed at the end.
    """
    p = np.asarray(predictions)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"predictions must have shape (T, B) with T >= 1, got {p.shape}")
    changed = p != p[-1][None, :]
    T = p.shape[0]
    # index of the last step that differs from the final prediction, or -1
    last = T - 1 - np.argmax(changed[::-1], axis=0)
    last = np.where(changed.any(axis=0), last, -1)
    return (last + 2).astype(np.int64)


def firing_rates(net, result):
    """Mean firing rate of every spiking population (Eq. 5), spikes per neuron per step.

    ``Σ spikes / (N · B · T)``, a burst of ``s`` spikes counting ``s``.

    Returns
    -------
    dict of str -> float
    """
    _check_pair(net, result)
    return {p.name: float(result.spikes[p.name].sum()) / (p.size * result.n_images * result.T)
            for p in net.populations if p.name in result.spikes}


def _per_neuron(values, shape):
    """Broadcast a 0-d or per-channel ``(C,)`` array over a population shape, flattened."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(v, shape).reshape(-1)


def normalised_activations(pop, activation):
    """ANN activation of ``pop.ann_node`` divided by ``pop.scale`` (λ, Eq. 6), ``(B, N)``.

    Parameters
    ----------
    pop : Population
        With ``scale`` set (0-d or one value per channel).
    activation : ndarray, shape (B, ...)
        The activation of ``pop.ann_node`` (from ``Graph.forward(x, return_all=True)``).

    Returns
    -------
    ndarray of float64, shape (B, N)
        The rate the population should fire at; neurons of a channel with ``λ = 0`` get 0.
    """
    a = np.asarray(activation, dtype=np.float64)
    a = a.reshape(len(a), -1)
    if a.shape[1] != pop.size:
        raise ValueError(f"population {pop.name!r} has {pop.size} neurons but the activation of "
                         f"its ann_node {pop.ann_node!r} has {a.shape[1]} values per image")
    lam = _per_neuron(pop.scale, pop.shape)
    out = np.zeros_like(a)
    np.divide(a, lam[None, :], out=out, where=lam[None, :] != 0)
    return out


def _check_pair(net, result):
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"net must be a SpikingNetwork, got {type(net).__name__}")
    if not isinstance(result, SimResult):
        raise TypeError(f"result must be a SimResult (from eventsnn.simulate), got "
                        f"{type(result).__name__}")
    names = {p.name for p in net.populations}
    unknown = [k for k in result.spikes if k not in names]
    if unknown:
        raise ValueError(f"result has populations {unknown} that the network lacks; pass the "
                         "network that produced the result")


def _merge(a, b):
    """Merge two accumulated sums: arrays and numbers add, ``max_*`` take the maximum,
    lists concatenate, dicts merge key by key, None yields to the other side."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        keys = list(a) + [k for k in b if k not in a]
        return {k: (_merge_max(a.get(k), b.get(k)) if isinstance(k, str) and k.startswith("max_")
                    else _merge(a.get(k), b.get(k))) for k in keys}
    if isinstance(a, list):
        return a + b
    return a + b


def _merge_max(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _div(num, den):
    """num / den as a float, or None when the denominator is 0."""
    return float(num) / float(den) if den else None


def _auto_chunk(graph):
    per_image = 4 * (int(np.prod(graph.input_shape)) + sum(int(np.prod(n.shape)) for n in graph.nodes))
    return int(max(1, min(1024, _ANN_CHUNK_BYTES // max(per_image, 1))))


# --------------------------------------------------------------------------------------
# the accumulator
# --------------------------------------------------------------------------------------


class Analysis:
    """Streaming accumulator of the figures of :mod:`eventsnn.analysis` over batches of images.

    Parameters
    ----------
    net : SpikingNetwork
        The simulated network.
    graph : Graph, optional
        The ANN it was converted from. Needed for ANN accuracy and the conversion-error
        decomposition (each population's ``ann_node`` and ``scale``), and by the energy model.
    ann_batch_size : int, optional
        Images per ANN forward pass when computing activations (default: as many as fit in
        about 256 MiB of activations).

    Notes
    -----
    Call :meth:`add` once per simulated batch (with the images ``x`` and labels ``y`` of that
    batch); the per-neuron records are reduced to per-population sums, so memory does not grow
    with the number of images (except for one settle step and one flag per image). Figures
    that need a record that was not kept are reported as ``None`` with a note in
    ``to_dict()["missing"]``.
    """

    def __init__(self, net, graph=None, *, ann_batch_size=None):
        if not isinstance(net, SpikingNetwork):
            raise TypeError(f"net must be a SpikingNetwork, got {type(net).__name__}")
        if graph is not None:
            from .graph import Graph

            if not isinstance(graph, Graph):
                raise TypeError(f"graph must be an eventsnn Graph or None, got {type(graph).__name__}")
        ann_batch_size = check_positive_int(ann_batch_size, "ann_batch_size", allow_none=True)
        self.net = net
        self.graph = graph
        self.ann_batch_size = ann_batch_size
        self.T = None
        self.n_images = 0
        self._s = {}          # accumulated sums, merged with _merge
        self._missing = {}    # note -> True

    # --- SimResult-like view (used by eventsnn.energy) ---------------------------------

    @property
    def spikes(self):
        """Per spiking population: spikes per step summed over all images, int64 ``(T,)``."""
        return self._s.get("spikes", {})

    @property
    def events(self):
        """Per spiking population: events per step summed over all images, int64 ``(T,)``."""
        return self._s.get("events", {})

    @property
    def synops(self):
        """Per connection: SynOps per step summed over all images, int64 ``(T,)``."""
        return self._s.get("synops", {})

    @property
    def burst_hist(self):
        """Per ``"if"`` population: number of events of each size ``k = 0..Γ``."""
        return self._s.get("burst_hist", {})

    @property
    def input_macs(self):
        """MACs spent on the analog input over all images."""
        return int(self._s.get("input_macs", 0))

    # --- accumulation ------------------------------------------------------------------

    def add(self, result, x=None, y=None):
        """Accumulate one simulated batch.

        Parameters
        ----------
        result : SimResult
            Result of simulating ``x`` with ``self.net``. Per-neuron figures need
            ``record=("neuron_counts",)``; residual information also ``"potential"``.
        x : ndarray, shape (B, *input_shape), optional
            The simulated images (needed with a graph, for ANN accuracy and conversion errors).
        y : array_like of int, shape (B,), optional
            Labels (for accuracy vs T and ANN accuracy).

        Returns
        -------
        Analysis
            ``self``.
        """
        _check_pair(self.net, result)
        B = int(result.n_images)
        if self.T is not None and result.T != self.T:
            raise ValueError(f"cannot accumulate results with different T ({self.T} and {result.T}); "
                             "use one Analysis per T")
        if y is not None:
            y = check_labels(y, B, self.net.output.size)
        if x is not None:
            x = np.asarray(x)
            if len(x) != B:
                raise ValueError(f"x holds {len(x)} images but the result has {B}; pass the images "
                                 "that were simulated, in the same order")
        T = int(result.T)
        s = {"spikes": {k: np.asarray(v, np.int64) for k, v in result.spikes.items()},
             "events": {k: np.asarray(v, np.int64) for k, v in result.events.items()},
             "synops": {k: np.asarray(v, np.int64) for k, v in result.synops.items()},
             "burst_hist": {k: np.asarray(v, np.int64) for k, v in result.burst_hist.items()},
             "input_macs": int(result.input_macs)}
        pred = result.predictions()
        s["settle"] = [settle_steps(pred)]
        if y is not None:
            correct = pred == y[None, :]
            s["correct"] = correct.sum(axis=1).astype(np.int64)
            s["labelled"] = B
            s["final_correct"] = [correct[-1]]
        else:
            self._missing["accuracy: no labels were given"] = True
        counts = result.records.get("neuron_counts", {})
        potential = result.records.get("potential", {})
        trains = result.records.get("trains", {})
        s["neurons"] = self._neuron_sums(counts, trains, T, B)
        s["pooling"] = self._pool_sums(counts, T)
        if self.graph is not None and x is not None:
            self._ann_sums(s, result, x, y, counts, potential, T)
        elif self.graph is None:
            self._missing["conversion errors and ANN accuracy: no graph was given"] = True
        else:
            self._missing["conversion errors and ANN accuracy: the images x were not given"] = True
        self._s = _merge(self._s, s)
        self.T = T
        self.n_images += B
        return self

    def merge(self, other):
        """A new accumulator holding the images of ``self`` followed by those of ``other``."""
        if not isinstance(other, Analysis):
            raise TypeError(f"can only merge another Analysis, got {type(other).__name__}")
        if other.net is not self.net and [p.name for p in other.net.populations] != \
                [p.name for p in self.net.populations]:
            raise ValueError("cannot merge analyses of different networks")
        if self.T is not None and other.T is not None and self.T != other.T:
            raise ValueError(f"cannot merge analyses with different T ({self.T} and {other.T})")
        out = Analysis(self.net, self.graph if self.graph is not None else other.graph,
                       ann_batch_size=self.ann_batch_size)
        out._s = _merge(self._s, other._s)
        out._missing = {**self._missing, **other._missing}
        out.T = self.T if self.T is not None else other.T
        out.n_images = self.n_images + other.n_images
        return out

    def _neuron_sums(self, counts, trains, T, B):
        out = {}
        for p in self.net.populations:
            if p.kind not in SPIKING_KINDS:
                continue
            if p.name not in counts:
                self._missing[f"per-neuron firing of {p.name}: record 'neuron_counts' was not kept"] = True
                continue
            n = np.asarray(counts[p.name], dtype=np.int64).reshape(B, -1)
            d = {"count_sum": n.sum(axis=0), "pairs": n.size, "images": B,
                 "silent": int((n == 0).sum())}
            if p.kind == "if":
                d["gamma_lb"] = int((n > (p.burst - 1) * T).sum())
                d["capped"] = int((n == p.burst * T).sum())
                if p.name in trains:
                    tr = np.asarray(trains[p.name]).reshape(T, B, -1)
                    d["gamma_exact"] = int((tr == p.burst).any(axis=0).sum())
                    d["gamma_exact_pairs"] = n.size
            out[p.name] = d
        return out

    def _pool_sums(self, counts, T):
        out = {}
        for p in self.net.populations:
            if p.kind not in ("lipool", "maxgate"):
                continue
            src = p.pool["source"]
            if p.name not in counts or src not in counts:
                self._missing[f"pooling error of {p.name}: record 'neuron_counts' was not kept"] = True
                continue
            conn = self.net.incoming(p.name)[0]
            n_src = np.asarray(counts[src], dtype=np.float64).reshape(len(counts[src]), -1)
            ref = np.rint(conn.apply(n_src)).astype(np.int64)     # max over each window (counts)
            n = np.asarray(counts[p.name], dtype=np.int64).reshape(len(ref), -1)
            d = n - ref
            positive = (n > 0) | (ref > 0)
            out[p.name] = {"windows": d.size, "sum_d": int(d.sum()), "sum_abs_d": int(np.abs(d).sum()),
                           "max_d": int(d.max()) if d.size else 0,
                           "over": int((d > 0).sum()), "under": int((d < 0).sum()),
                           "positive": int(positive.sum()),
                           "correct": int((positive & (np.abs(d) <= 1)).sum())}
        return out

    def _ann_sums(self, s, result, x, y, counts, potential, T):
        graph, net = self.graph, self.net
        pops = [p for p in net.populations if p.ann_node is not None and p.scale is not None]
        for p in net.populations:
            if p not in pops:
                self._missing[f"conversion error of {p.name}: population has no ann_node/scale"] = True
        known = {graph.input_name} | {n.name for n in graph.nodes}
        bad = [p.ann_node for p in pops if p.ann_node not in known]
        if bad:
            raise ValueError(f"populations refer to ANN nodes {bad} that the graph lacks; pass the "
                             "graph the network was converted from")
        chunk = self.ann_batch_size or _auto_chunk(graph)
        err, ann_correct, out_sums = {}, 0, None
        final_U = result.outputs[-1].astype(np.float64) / T
        for a in range(0, len(x), chunk):
            b = min(len(x), a + chunk)
            acts = graph.forward(np.asarray(x[a:b], dtype=np.float32), return_all=True)
            logits = acts[graph.output].reshape(b - a, -1)
            if y is not None:
                ann_correct += int((np.argmax(logits, axis=1) == y[a:b]).sum())
            part = {}
            for p in pops:
                target = normalised_activations(p, acts[p.ann_node])
                if p.kind == "output":
                    o = _output_error(final_U[a:b], target)
                    out_sums = _merge(out_sums, o)
                    continue
                if p.name not in counts:
                    self._missing[f"conversion error of {p.name}: record 'neuron_counts' was not kept"] = True
                    continue
                n = np.asarray(counts[p.name], dtype=np.int64).reshape(len(x), -1)[a:b]
                v = None
                if p.kind == "if":
                    if p.name in potential:
                        v = np.asarray(potential[p.name], dtype=np.float64).reshape(len(x), -1)[a:b]
                    else:
                        self._missing[f"residual information of {p.name}: record 'potential' "
                                      "was not kept"] = True
                part[p.name] = _error_sums(p, n, v, target, T)
            err = _merge(err, part)
            del acts
        s["errors"] = err
        if out_sums is not None:
            s["output_error"] = out_sums
        if y is not None:
            s["ann_correct"] = ann_correct
            s["ann_labelled"] = len(x)

    # --- results -------------------------------------------------------------------------

    def neuron_rates(self):
        """Mean firing rate of every neuron over all images, per population.

        Returns
        -------
        dict of str -> ndarray of float64, shape ``population.shape``
            Spikes per neuron per step (Eq. 5), populations with ``"neuron_counts"`` only.
        """
        out = {}
        for p in self.net.populations:
            d = self._s.get("neurons", {}).get(p.name)
            if d is not None:
                out[p.name] = (d["count_sum"] / (d["images"] * self.T)).reshape(p.shape)
        return out

    def accuracy(self):
        """SNN accuracy at every step ``t = 1..T``, float64 ``(T,)`` (None without labels)."""
        if not self._s.get("labelled"):
            return None
        return self._s["correct"] / self._s["labelled"]

    def ann_accuracy(self):
        """Accuracy of the ANN on the same images (None without graph, images or labels)."""
        return _div(self._s.get("ann_correct", 0), self._s.get("ann_labelled", 0))

    def settle_steps(self):
        """Settle step of every image (see :func:`settle_steps`), int64 ``(n_images,)``."""
        return np.concatenate(self._s["settle"]) if self._s.get("settle") else np.zeros(0, np.int64)

    def to_dict(self):
        """Every figure as a JSON-serialisable dict (see the module docstring for definitions).

        Keys: ``format``, ``T``, ``n_images``, ``units``, ``accuracy``, ``settle``,
        ``layers`` (list, one per spiking population), ``errors`` (list), ``output_error``,
        ``pooling`` (list), ``missing`` (notes on figures that could not be computed).
        """
        if self.T is None:
            raise ValueError("nothing was accumulated; call add(result, x, y) first")
        return {
            "format": "eventsnn.analysis", "version": 1,
            "T": self.T, "n_images": self.n_images, "units": dict(UNITS),
            "accuracy": self._accuracy_dict(), "settle": self._settle_dict(),
            "layers": self._layers_list(), "errors": self._errors_list(),
            "output_error": self._output_dict(), "pooling": self._pooling_list(),
            "missing": sorted(self._missing),
        }

    def _accuracy_dict(self):
        acc = self.accuracy()
        if acc is None:
            return None
        best = int(np.argmax(acc))
        return {"snn_per_step": [float(v) for v in acc], "snn_final": float(acc[-1]),
                "snn_best": float(acc[best]), "snn_best_step": best + 1,
                "ann": self.ann_accuracy(), "images": int(self._s["labelled"])}

    def _settle_dict(self):
        st = self.settle_steps()
        if not len(st):
            return None
        d = {"mean_step": float(st.mean()), "median_step": float(np.median(st)),
             "p90_step": float(np.percentile(st, 90)), "max_step": int(st.max()),
             "histogram": np.bincount(st, minlength=self.T + 1)[1:].tolist()}
        ok = np.concatenate(self._s["final_correct"]) if self._s.get("final_correct") else None
        if ok is not None and len(ok) == len(st):
            d["mean_step_correct"] = float(st[ok].mean()) if ok.any() else None
            d["mean_step_wrong"] = float(st[~ok].mean()) if (~ok).any() else None
        return d

    def _layers_list(self):
        T, B = self.T, self.n_images
        out = []
        for p in self.net.populations:
            if p.kind not in SPIKING_KINDS or p.name not in self.spikes:
                continue
            spikes, events = self.spikes[p.name], self.events[p.name]
            S, E = int(spikes.sum()), int(events.sum())
            d = {"name": p.name, "kind": p.kind, "shape": list(p.shape), "neurons": p.size,
                 "burst": p.burst if p.kind == "if" else None,
                 "spikes": S, "events": E,
                 "firing_rate": S / (p.size * B * T), "event_rate": E / (p.size * B * T),
                 "burst_factor": _div(S, E),
                 "firing_rate_per_step": (spikes / (p.size * B)).tolist()}
            if p.name in self.burst_hist:
                h = self.burst_hist[p.name]
                d["burst_hist"] = h.tolist()
                d["gamma_event_share"] = _div(h[p.burst], h.sum())
            nd = self._s.get("neurons", {}).get(p.name)
            if nd is not None:
                rates = nd["count_sum"] / (nd["images"] * T)
                d["silent_share"] = nd["silent"] / nd["pairs"]
                d["never_firing_share"] = float((nd["count_sum"] == 0).mean())
                q = np.quantile(rates, [0, 0.5, 0.9, 0.99, 1.0])
                d["neuron_rate_quantiles"] = dict(zip(["min", "p50", "p90", "p99", "max"],
                                                      (float(v) for v in q)))
                if p.kind == "if":
                    d["gamma_neuron_share_lower_bound"] = nd["gamma_lb"] / nd["pairs"]
                    d["capped_share"] = nd["capped"] / nd["pairs"]
                    d["gamma_neuron_share"] = _div(nd.get("gamma_exact", 0),
                                                   nd.get("gamma_exact_pairs", 0))
            out.append(d)
        return out

    def _errors_list(self):
        out = []
        T = self.T
        for p in self.net.populations:
            e = self._s.get("errors", {}).get(p.name)
            if e is None:
                continue
            n = e["pairs"]
            d = {"name": p.name, "kind": p.kind, "ann_node": p.ann_node, "pairs": n,
                 "mean_error": e["sum_e"] / n, "mae": e["sum_abs_e"] / n,
                 "rmse": math.sqrt(e["sum_sq_e"] / n),
                 "sin_spikes": e["sin_spikes"], "sin_share_of_spikes": _div(e["sin_spikes"], e["spikes"]),
                 "inactive_share": e["inactive"] / n,
                 "inactive_firing_share": _div(e["inactive_firing"], e["inactive"]),
                 "sin_rate": _div(e["sin_spikes"], e["inactive"] * T)}
            if p.kind == "if":
                d.update({"mae_reachable": e["sum_abs_reach"] / n,
                          "above_gamma_share": e["above_gamma"] / n,
                          "ann_excess_rate": e["sum_excess"] / n})
                if "residual_pairs" in e:
                    m = e["residual_pairs"]
                    d.update({"residual_rate": e["residual_spikes"] / (m * T),
                              "residual_share": e["residual_n"] / m,
                              "mean_v_above_threshold": e["sum_v_above"] / m,
                              "mean_final_v": e["sum_v"] / m})
            out.append(d)
        return out

    def _output_dict(self):
        o = self._s.get("output_error")
        if o is None:
            return None
        n = o["pairs"]
        return {"name": self.net.output.name, "ann_node": self.net.output.ann_node,
                "mean_error": o["sum_e"] / n, "mae": o["sum_abs_e"] / n,
                "rmse": math.sqrt(o["sum_sq_e"] / n),
                "argmax_agreement_share": o["agree"] / o["images"]}

    def _pooling_list(self):
        out = []
        T = self.T
        for p in self.net.populations:
            q = self._s.get("pooling", {}).get(p.name)
            if q is None:
                continue
            n = q["windows"]
            out.append({"name": p.name, "kind": p.kind, "source": p.pool["source"], "windows": n,
                        "mean_error": q["sum_d"] / (n * T), "mae": q["sum_abs_d"] / (n * T),
                        "max_error": q["max_d"] / T, "over_share": q["over"] / n,
                        "under_share": q["under"] / n, "positive_windows": q["positive"],
                        "correct_ratio": _div(q["correct"], q["positive"])})
        return out


def _error_sums(p, n, v, a, T):
    """Per-population error sums for one chunk: counts ``n`` (B, N), final potentials ``v``
    (B, N) or None, normalised ANN activations ``a`` (B, N)."""
    r = n / T
    e = r - a
    inactive = a <= 0
    d = {"pairs": e.size, "sum_e": float(e.sum()), "sum_abs_e": float(np.abs(e).sum()),
         "sum_sq_e": float((e * e).sum()), "spikes": int(n.sum()),
         "sin_spikes": int(n[inactive].sum()), "inactive": int(inactive.sum()),
         "inactive_firing": int((inactive & (n > 0)).sum())}
    if p.kind == "if":
        g = p.burst
        d["sum_abs_reach"] = float(np.abs(r - np.clip(a, 0, g)).sum())
        d["above_gamma"] = int((a > g).sum())
        d["sum_excess"] = float(np.maximum(a - g, 0).sum())
        if v is not None:
            vt = v / p.threshold
            d.update({"residual_pairs": vt.size,
                      "residual_spikes": int(np.floor(np.maximum(vt, 0)).sum()),
                      "residual_n": int((vt >= 1).sum()),
                      "sum_v_above": float(np.maximum(vt - 1, 0).sum()),
                      "sum_v": float(vt.sum())})
    return d


def _output_error(u_rate, target):
    e = u_rate - target
    return {"pairs": e.size, "images": len(e), "sum_e": float(e.sum()),
            "sum_abs_e": float(np.abs(e).sum()), "sum_sq_e": float((e * e).sum()),
            "agree": int((np.argmax(u_rate, axis=1) == np.argmax(target, axis=1)).sum())}


# --------------------------------------------------------------------------------------
# one-shot helpers
# --------------------------------------------------------------------------------------


def analyze(net, result, x=None, y=None, graph=None, *, ann_batch_size=None):
    """Analyse one (possibly merged) :class:`SimResult`: ``Analysis(net, graph).add(result, x, y)``.

    Parameters
    ----------
    net : SpikingNetwork
    result : SimResult
        Ideally simulated with ``record=("neuron_counts", "potential")``.
    x : ndarray, optional
        The simulated images (with ``graph``: conversion errors and ANN accuracy).
    y : array_like of int, optional
        Labels.
    graph : Graph, optional
        The ANN.

    Returns
    -------
    Analysis
    """
    return Analysis(net, graph, ann_batch_size=ann_batch_size).add(result, x, y)


def analyze_batch(net, graph, x, y, T, first_index, record, ann_batch_size, simulate_kwargs):
    """Simulate one batch, images ``first_index, first_index + 1, ...`` of the whole array,
    and return its :class:`Analysis` (the unit of :func:`analyze_simulation`, in this process
    or on a Dask worker)."""
    from .engine import simulate

    res = simulate(net, x, T, record=record, batch_size=len(x), first_index=first_index,
                   **simulate_kwargs)
    return Analysis(net, graph, ann_batch_size=ann_batch_size).add(res, x, y)


def analyze_simulation(net, x, T, y=None, graph=None, *, batch_size=256,
                       record=("neuron_counts", "potential"), ann_batch_size=None, client=None,
                       **simulate_kwargs):
    """Simulate ``x`` batch by batch and accumulate an :class:`Analysis`, dropping the
    per-neuron records of each batch once reduced (for thousands of images).

    Parameters
    ----------
    net : SpikingNetwork
    x : ndarray, shape (n, *net.input_shape)
    T : int
        Steps per image.
    y : array_like of int, optional
        Labels.
    graph : Graph, optional
        The ANN (conversion errors, ANN accuracy, energy).
    batch_size : int
        Images per :func:`eventsnn.simulate` call (and per Dask task with ``client``).
    record : sequence of str
        Records to keep per batch (``"trains"`` adds the exact Γ-hit share; memory ``8·T·B·N``).
    client : dask.distributed.Client, optional
        Simulate and analyse the batches on a Dask cluster (:mod:`eventsnn.distributed`);
        the result is identical to the in-process one.
    **simulate_kwargs
        Passed to :func:`eventsnn.engine.simulate` (``engine``, ``encoding``, ``seed``, ...).
        With Poisson coding every image draws the stream it draws in
        ``simulate(net, x, T, seed=seed)`` (one seed, drawn once when None).

    Returns
    -------
    Analysis
    """
    from .engine.encoding import resolve_seed

    batch_size = check_positive_int(batch_size, "batch_size")
    x = check_batch(x, net.input_shape)
    if y is not None:
        y = check_labels(y, len(x), net.output.size)
    simulate_kwargs.setdefault("progress", False)
    if simulate_kwargs.get("encoding") == "poisson":
        simulate_kwargs["seed"] = resolve_seed(simulate_kwargs.get("seed"))
    if client is not None:
        from .distributed import analyze_on_client

        return analyze_on_client(client, net, graph, x, y, T, batch_size, record, ann_batch_size,
                                 simulate_kwargs)
    an = Analysis(net, graph, ann_batch_size=ann_batch_size)
    for a in range(0, len(x), batch_size):
        an = an.merge(analyze_batch(net, graph, x[a:a + batch_size],
                                    None if y is None else y[a:a + batch_size], T, a, record,
                                    ann_batch_size, simulate_kwargs))
    return an
