"""Layer-wise calibration of a converted network: bias and potential calibration.

After conversion every layer's spike rate differs from the ANN activation it stands for
(quantisation, clipping at the burst cap, spikes of inactive neurons, the slow start of deep
layers), and the errors of one layer shift the input of the next: they accumulate with depth.
"A Free Lunch From ANN" (Li et al., ICML 2021, light pipeline) corrects each layer in turn so
that its expected output matches the ANN's on calibration data:

* **bias calibration** — per channel ``c`` of layer ``l`` (Li et al. Eq. 13)::

      b_l[c] += θ · (E[a_l[c]] − E[r_l[c]]) / g_l[c]                           (C1)

  ``a_l = min(o_l / λ_l, Γ)`` is the ANN activation in rate units (capped at what a burst neuron
  can fire), ``r_l`` the SNN's rate ``n / T``, ``E`` the mean over calibration images and the
  channel's positions, and ``g_l[c] ∈ [1/4, 1]`` the share of the channel's (image, neuron) pairs
  whose analog input lies inside ``(0, Γθ)`` (a bias shift moves only those; clamped below so
  nearly silent channels are not over-corrected).
* **potential calibration** — per neuron ``i`` (Li et al. Eq. 15, the initial potential)::

      V_l(0)[i] += θ · T · (E[a_l[i]] − E[r_l[i]]) / g_l[i]                    (C2)

  clipped to ``[0, θ)`` (the range allowed for ``Population.v_init``), so it trims at most
  ``±1/T`` of rate per neuron; with ``"bias+potential"`` it corrects what (C1) left per neuron.

Cheap order of work. Re-simulating the whole network once per layer costs ``L`` simulations
(ResNet-56: 57 populations). Instead each *pass* simulates the calibration images once with the
event engine (per-neuron spike counts recorded) and then walks the layers in topological order,
predicting how the corrections already made upstream in this pass change each layer's rate
from the analog (rate-domain) layer map ``f_l(r) = clip(Σ W r_src + b, 0, Γθ)/θ``::

      r̂_l = r_l + f_l(r̂_src; b_new) − f_l(r_src; b_old)                        (C3)

(max pooling: ``r̂ = r + maxpool(r̂_src) − maxpool(r_src)``, exact for LIPool). The correction of
layer ``l`` is then computed from ``r̂_l`` instead of ``r_l``: a first-order Gauss–Seidel walk, so
one simulation corrects all layers without each one over-correcting for errors that upstream
layers have just fixed. A second pass (one more simulation) removes most of what the
first-order prediction missed. Cost: ``passes`` simulations of the calibration images plus
two analog forward passes per pass.

The ANN graph is only read (``Graph.forward``): calibration never changes the ANN's output.
"""

from __future__ import annotations

import numpy as np

from ..graph import maxpool2d
from ..network import INPUT, SpikingNetwork

__all__ = ["CALIBRATIONS", "MIN_IMAGES", "calibrate_layers", "rate_errors"]

CALIBRATIONS = ("none", "bias", "potential", "bias+potential")
MIN_IMAGES = {"none": 0, "bias": 16, "potential": 32, "bias+potential": 32}
_MIN_GAIN = 0.25


def _channel_view(a, shape):
    """``(B, N)`` -> ``(B, C, rest)`` (per-channel statistics; 1-D populations: one channel each)."""
    c = shape[0]
    return a.reshape(len(a), c, -1)


def _targets(graph, net, x, batch_size):
    """Per population: the ANN activation in rate units, ``min(o / λ, Γ)``, float32 ``(B, N)``."""
    from ..analysis import normalised_activations
    from .analog import ann_activations

    out = {}
    for a in range(0, len(x), batch_size):
        acts = ann_activations(graph, net, x[a:a + batch_size])
        for p in net.populations:
            if p.kind == "if" or p.kind == "output":
                t = normalised_activations(p, acts[p.name])
                if p.kind == "if":
                    t = np.minimum(t, p.burst)
                out.setdefault(p.name, []).append(t.astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}


def _rates(net, x, T, batch_size):
    """Per population: spike rate ``n / T`` (spiking kinds) or ``U(T) / T`` (output), ``(B, N)``."""
    from ..engine import simulate

    parts = {}
    for a in range(0, len(x), batch_size):
        res = simulate(net, x[a:a + batch_size], T, record=("neuron_counts",), progress=False)
        counts = res.records["neuron_counts"]
        for p in net.populations:
            r = (res.outputs[-1] if p.kind == "output" else counts[p.name]).reshape(len(res.outputs[-1]), -1)
            parts.setdefault(p.name, []).append((r / np.float32(T)).astype(np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def _analog(net, p, vals, x_flat):
    """Input current of population ``p`` per step from source rates ``vals`` (float64 ``(B, N)``)."""
    u = np.zeros((len(x_flat), p.size))
    for c in net.incoming(p.name):
        u += c.apply(x_flat if c.src == INPUT else vals[c.src])
    if p.bias is not None:
        u += p.bias.reshape(-1)
    return u


def _pool(net, p, r):
    c = net.incoming(p.name)[0]
    return maxpool2d(r.reshape((len(r),) + c.src_shape), c.kernel, c.stride, c.padding).reshape(len(r), -1)


def rate_errors(net, rates, targets):
    """Per-layer mean rate error: mean over channels of ``|E[r] − E[a]|`` (spikes per step).

    Parameters
    ----------
    net : SpikingNetwork
    rates, targets : dict
        Population name -> ``(B, N)`` SNN rates and ANN targets (rate units).

    Returns
    -------
    dict
        ``"if"`` population name -> float.
    """
    out = {}
    for p in net.populations:
        if p.kind == "if":
            d = _channel_view(rates[p.name] - targets[p.name], p.shape).mean(axis=(0, 2))
            out[p.name] = float(np.abs(d).mean())
    return out


def _gain(u, p):
    """Share of pairs with analog input inside ``(0, Γθ)``, clamped to ``[1/4, 1]``."""
    return np.clip(((u > 0) & (u < p.burst * p.threshold)).astype(np.float64), _MIN_GAIN, 1.0)


def _one_pass(net, x_flat, rates, targets, mode, T):
    pred = {}
    for p in net.populations:
        r = rates[p.name].astype(np.float64)
        if p.kind in ("lipool", "maxgate"):
            src = p.pool["source"]
            pred[p.name] = r + _pool(net, p, pred[src]) - _pool(net, p, rates[src].astype(np.float64))
            continue
        old = _analog(net, p, {k: v.astype(np.float64) for k, v in rates.items()}, x_flat)
        th = float(p.threshold)
        f_old = old if p.kind == "output" else np.clip(old, 0, p.burst * th) / th
        new = _analog(net, p, pred, x_flat)
        f_new = new if p.kind == "output" else np.clip(new, 0, p.burst * th) / th
        r_hat = r + f_new - f_old                                                     # (C3)
        e = targets[p.name].astype(np.float64) - r_hat
        g = np.ones_like(new) if p.kind == "output" else _gain(new, p)
        shift = np.zeros(p.size)
        if mode in ("bias", "bias+potential") or p.kind == "output":
            ce = _channel_view(e, p.shape).mean(axis=(0, 2)) / _channel_view(g, p.shape).mean(axis=(0, 2))
            db = th * ce                                                              # (C1)
            db = np.broadcast_to(db.reshape((-1,) + (1,) * (len(p.shape) - 1)), p.shape)
            bias = (np.zeros(p.shape) if p.bias is None else p.bias.astype(np.float64)) + db
            p.bias = np.ascontiguousarray(bias, dtype=np.float32)
            shift += db.reshape(-1) / th * g.mean(axis=0)
        if p.kind == "if" and mode in ("potential", "bias+potential"):
            gm = g.mean(axis=0)
            v_old = p.initial_potential().astype(np.float64)
            v = np.clip(v_old + th * T * (e.mean(axis=0) - shift) / gm,                 # (C2)
                        0, np.nextafter(np.float32(th), np.float32(0)))
            p.v_init = p._check_v_init(v.reshape(p.shape).astype(np.float32))
            shift += (p.initial_potential() - v_old) / (th * T) * gm
        pred[p.name] = r_hat + shift if p.kind == "output" else np.clip(r_hat + shift, 0, p.burst)


def calibrate_layers(graph, net, x, T, *, mode="bias", passes=2, batch_size=32):
    """Bias / potential calibration of ``net`` in place (module docstring, Eq. C1-C3).

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN ``net`` was converted from (BN-folded or not). Only read.
    net : SpikingNetwork
        Converted network; biases and ``v_init`` of its populations are changed in place.
    x : ndarray
        Calibration images ``(N, *input_shape)``, float32, normalised as for the ANN
        (training images, never test images). At least ``MIN_IMAGES[mode]``.
    T : int
        Steps the network will be run for.
    mode : {"bias", "potential", "bias+potential", "none"}
        What to correct.
    passes : int
        Simulations of ``x`` (each followed by one topological walk).
    batch_size : int
        Images simulated (and ANN-evaluated) at once.

    Returns
    -------
    dict
        ``"rate_error"``: list (one entry per pass, measured before its corrections) of the
        per-layer mean rate errors (:func:`rate_errors`) on ``x``, and ``"passes"``, ``"images"``, ``"mode"``.
    """
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"calibrate_layers needs a SpikingNetwork, got {type(net).__name__}")
    if mode not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {mode!r}; use one of {', '.join(map(repr, CALIBRATIONS))}")
    for name, v in (("T", T), ("passes", passes), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1:] != net.input_shape:
        raise ValueError(f"x has shape {x.shape}, expected (N, *{net.input_shape})")
    if len(x) < MIN_IMAGES[mode]:
        raise ValueError(f"calibration {mode!r} needs at least {MIN_IMAGES[mode]} images (per-channel "
                         f"means over too few images are noise), got {len(x)}; pass more "
                         "calibration images or calibration='none'")
    history = []
    targets = _targets(graph, net, x, batch_size)
    x_flat = x.reshape(len(x), -1)
    for _ in range(passes if mode != "none" else 0):
        rates = _rates(net, x, T, batch_size)
        history.append(rate_errors(net, rates, targets))
        _one_pass(net, x_flat, rates, targets, mode, T)
    return {"mode": mode, "passes": int(passes), "images": int(len(x)), "T": int(T),
            "rate_error": history}
