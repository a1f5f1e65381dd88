"""Reports: every figure of :mod:`eventsnn.analysis` and :mod:`eventsnn.energy` as JSON, a
Markdown summary and plots.

:func:`write_report` is what the ``eventsnn report`` command calls::

    paths = write_report(graph, net, result, x, y, "out/")          # one SimResult
    an = analyze_simulation(net, x, T, y, graph, batch_size=256)     # thousands of images
    paths = write_report(graph, net, an, None, None, "out/")

Plots use matplotlib (the ``plot`` extra) through its Agg canvas, without pyplot, so the
caller's backend is left alone; matplotlib is imported only when plots are written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .analysis import RATE_UNIT, Analysis, analyze
from .energy import estimate_energy, format_energy

__all__ = ["build_report", "render_markdown", "write_report", "PLOTS", "FORMATS"]

FORMATS = ("json", "md", "png", "npz")
PLOTS = ("accuracy", "firing_rate", "energy", "burst_hist", "errors")


def _as_analysis(graph, net, result, x, y, ann_batch_size):
    if isinstance(result, Analysis):
        if x is not None or y is not None:
            raise ValueError("result is an Analysis that already holds its images; pass x=None and "
                             "y=None (add further batches with Analysis.add)")
        if result.net is not net:
            raise ValueError("the Analysis was accumulated for another network; pass the same net")
        return result
    return analyze(net, result, x, y, graph, ann_batch_size=ann_batch_size)


def _clean(v):
    """JSON-safe copy: numpy scalars/arrays to python, non-finite floats to None."""
    if isinstance(v, dict):
        return {str(k): _clean(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(w) for w in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def build_report(graph, net, result, x=None, y=None, *, energy="45nm-fp32", include_bias=False,
                 ann_batch_size=None):
    """Every figure as one JSON-serialisable dict.

    Parameters
    ----------
    graph : Graph or None
        The ANN (ANN accuracy, conversion errors, energy); None leaves those out.
    net : SpikingNetwork
    result : SimResult or Analysis
        One simulated batch (ideally with ``record=("neuron_counts", "potential")``), or an
        accumulated :class:`~eventsnn.analysis.Analysis` (then ``x`` and ``y`` must be None).
    x, y : ndarray, optional
        The simulated images and their labels (SimResult only).
    energy : str, EnergyModel or dict
        Energy model (:data:`eventsnn.energy.PRESETS`).
    include_bias : bool
        Charge bias additions as ACs (see :func:`eventsnn.energy.estimate_energy`).

    Returns
    -------
    dict
        The keys of :meth:`Analysis.to_dict` plus ``network`` (populations, connections,
        conversion settings) and ``energy`` (None without a graph).
    """
    an = _as_analysis(graph, net, result, x, y, ann_batch_size)
    rep = an.to_dict()
    rep["network"] = {"input_shape": list(net.input_shape),
                      "populations": [{"name": p.name, "kind": p.kind, "shape": list(p.shape),
                                       "burst": p.burst, "threshold": float(p.threshold),
                                       "ann_node": p.ann_node} for p in net.populations],
                      "connections": [{"name": c.name, "kind": c.kind} for c in net.connections],
                      "meta": net.meta}
    rep["energy"] = (estimate_energy(graph, net, an, energy, include_bias=include_bias)
                     if graph is not None else None)
    if graph is None:
        rep["missing"] = sorted(set(rep["missing"]) | {"energy: no graph was given"})
    return _clean(rep)


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------


def _f(v, digits=4):
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}g}"


def _pct(v):
    if v is None:
        return "n/a"
    if 0 < abs(v) < 1e-4:
        return f"{100 * v:.2g} %"           # keep tiny shares visible (not 0.00 %)
    return f"{100 * v:.2f} %"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _report_steps(T):
    steps = sorted({t for t in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if t <= T} | {T})
    return steps


def render_markdown(rep, plots=None, title="eventsnn report"):
    """A Markdown summary of a report dict from :func:`build_report`.

    Parameters
    ----------
    rep : dict
    plots : dict of str -> str, optional
        Plot name (see :data:`PLOTS`) -> path relative to the Markdown file.
    title : str
    """
    plots = plots or {}
    out = [f"# {title}", ""]
    T, n = rep["T"], rep["n_images"]
    acc, en = rep["accuracy"], rep["energy"]
    summary = [f"- images: {n:,}; time steps T = {T}",
               f"- network: {len(rep['network']['populations'])} populations, "
               f"{len(rep['network']['connections'])} connections"]
    if acc:
        summary.append(f"- ANN accuracy: {_pct(acc['ann'])}; SNN accuracy at T = {T}: "
                       f"{_pct(acc['snn_final'])} (best {_pct(acc['snn_best'])} at t = {acc['snn_best_step']})")
    if en:
        tot = en["total"]
        summary.append(f"- energy per image ({en['model']['name']}): ANN {format_energy(tot['ann_energy_pJ'])}, "
                       f"SNN {format_energy(tot['snn_energy_pJ'])}, SNN/ANN = {_pct(tot['ratio'])}")
    out += summary + [""]

    if acc:
        out += ["## Accuracy vs time steps", "",
                _table(["t (steps)", "SNN accuracy"],
                       [[t, _pct(acc["snn_per_step"][t - 1])] for t in _report_steps(T)]), ""]
        if acc["ann"] is not None:
            out += [f"ANN accuracy on the same {acc['images']:,} images: {_pct(acc['ann'])}.", ""]
        if "accuracy" in plots:
            out += [f"![accuracy vs T]({plots['accuracy']})", ""]
    st = rep["settle"]
    if st:
        out += ["## Prediction settling", "",
                "Settle step: the first step after which an image's prediction never changes.", "",
                _table(["mean", "median", "90th percentile", "max", "mean (correct)", "mean (wrong)"],
                       [[f"{_f(st['mean_step'])} steps", f"{_f(st['median_step'])} steps",
                         f"{_f(st['p90_step'])} steps", f"{st['max_step']} steps",
                         f"{_f(st.get('mean_step_correct'))} steps",
                         f"{_f(st.get('mean_step_wrong'))} steps"]]), ""]

    if rep["layers"]:
        out += ["## Firing per layer", "",
                f"Firing rate in {RATE_UNIT} (a burst of s spikes counts s); event rate in events / "
                "neuron / step; burst factor = spikes / event; shares over (image, neuron) pairs.", "",
                _table(["layer", "kind", "neurons", "Γ", "firing rate", "event rate",
                        "burst factor (spikes/event)", "silent", "events of size Γ",
                        "neurons hitting Γ (≥)", "spikes (total)"],
                       [[d["name"], d["kind"], f"{d['neurons']:,}", d["burst"] or "-",
                         _f(d["firing_rate"]), _f(d["event_rate"]), _f(d["burst_factor"]),
                         _pct(d.get("silent_share")), _pct(d.get("gamma_event_share")),
                         _pct(d.get("gamma_neuron_share") if d.get("gamma_neuron_share") is not None
                              else d.get("gamma_neuron_share_lower_bound")),
                         f"{d['spikes']:,}"] for d in rep["layers"]]), ""]
        if "firing_rate" in plots:
            out += [f"![firing rate per layer]({plots['firing_rate']})", ""]
        if "burst_hist" in plots:
            out += ["Burst sizes (share of events with k spikes):", "",
                    f"![burst-size histogram]({plots['burst_hist']})", ""]

    if rep["errors"]:
        out += ["## Conversion errors (paper Sec. 3.2)", "",
                f"Rate error = SNN firing rate − normalised ANN activation, in {RATE_UNIT}. "
                "Residual = whole spikes left in V(T) by the cap of Γ spikes per step, per step; "
                "SIN = spikes of neurons whose ANN activation is 0.", "",
                _table(["layer", "MAE", "RMSE", "mean error", "MAE within cap", "ANN act. > Γ",
                        "residual rate", "mean V(T) above θ (θ)", "SIN spikes", "SIN share of spikes"],
                       [[d["name"], _f(d["mae"]), _f(d["rmse"]), _f(d["mean_error"]),
                         _f(d.get("mae_reachable")), _pct(d.get("above_gamma_share")),
                         _f(d.get("residual_rate")), _f(d.get("mean_v_above_threshold")),
                         f"{d['sin_spikes']:,}", _pct(d["sin_share_of_spikes"])]
                        for d in rep["errors"]]), ""]
        if "errors" in plots:
            out += [f"![conversion errors per layer]({plots['errors']})", ""]
    oe = rep.get("output_error")
    if oe:
        out += [f"Output integrator: U(T)/T vs normalised ANN output: MAE {_f(oe['mae'])}, "
                f"RMSE {_f(oe['rmse'])} (per step); argmax agrees with the ANN on "
                f"{_pct(oe['argmax_agreement_share'])} of images.", ""]
    if rep["pooling"]:
        out += ["## Pooling error (Eq. 11)", "",
                f"Error = output rate − max of the window's input rates, in {RATE_UNIT}; correct "
                "ratio (Fig. 5b) = share of positive outputs within 2/T of the max.", "",
                _table(["layer", "kind", "windows", "mean error", "MAE", "max error", "over max",
                        "correct ratio"],
                       [[d["name"], d["kind"], f"{d['windows']:,}", _f(d["mean_error"]), _f(d["mae"]),
                         _f(d["max_error"]), _pct(d["over_share"]), _pct(d["correct_ratio"])]
                        for d in rep["pooling"]]), ""]

    if en:
        m = en["model"]
        out += ["## Energy per image", "",
                f"Model {m['name']}: {m['mac_pJ']} pJ per MAC, {m['ac_pJ']} pJ per AC ({m['source']}). "
                "ANN: MACs × E_MAC. SNN: SynOps × E_AC + input MACs × E_MAC"
                + (" + bias ACs × E_AC" if en["include_bias"] else "") + ".", "",
                _table(["layer", "ANN nodes", "ANN MACs / image", "ANN energy / image",
                        "SNN SynOps / image", "SNN input MACs / image", "SNN energy / image", "SNN/ANN"],
                       [[d["name"], ", ".join(d["ann_nodes"]) or "-", f"{d['ann_macs']:,}",
                         format_energy(d["ann_energy_pJ"]), f"{d['snn_synops']:,.0f}",
                         f"{d['snn_input_macs']:,.0f}", format_energy(d["snn_energy_pJ"]),
                         _pct(d["ratio"])] for d in en["layers"]]
                       + [["**total**", "", f"{en['total']['ann_macs']:,}",
                           format_energy(en["total"]["ann_energy_pJ"]),
                           f"{en['total']['snn_synops']:,.0f}", f"{en['total']['snn_input_macs']:,.0f}",
                           format_energy(en["total"]["snn_energy_pJ"]), _pct(en["total"]["ratio"])]]),
                ""]
        if en["unmapped"]["nodes"]:
            out += [f"ANN nodes not mapped to a layer (counted in the ANN total): "
                    f"{', '.join(en['unmapped']['nodes'])} ({en['unmapped']['ann_macs']:,} MACs).", ""]
        if "energy" in plots:
            out += [f"![energy per layer]({plots['energy']})", ""]
    if rep["missing"]:
        out += ["## Not computed", ""] + [f"- {m}" for m in rep["missing"]] + [""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------


def _figure(width=7.0, height=4.2):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'eventsnn[plot]', or leave 'png' out "
                          "of formats") from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_accuracy(rep, path):
    """Accuracy (%) vs time step, ANN accuracy as a horizontal line."""
    acc = rep["accuracy"]
    fig = _figure()
    ax = fig.add_subplot()
    t = np.arange(1, rep["T"] + 1)
    ax.plot(t, 100 * np.asarray(acc["snn_per_step"]), marker="." if rep["T"] <= 64 else None,
            label="SNN")
    if acc["ann"] is not None:
        ax.axhline(100 * acc["ann"], color="k", linestyle="--", label=f"ANN ({100 * acc['ann']:.2f} %)")
    if rep["T"] < 16:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step t (steps)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy vs time steps ({rep['n_images']:,} images)")
    if rep["T"] >= 16:
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator([2 ** k for k in range(int(np.log2(rep["T"])) + 1)]
                                                + ([rep["T"]] if rep["T"] & (rep["T"] - 1) else [])))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path)


def _bar_positions(n, k):
    width = 0.8 / k
    x = np.arange(n)
    return x, width, [x - 0.4 + width * (j + 0.5) for j in range(k)]


def plot_firing_rates(rep, path):
    """Firing rate and event rate per spiking layer."""
    layers = rep["layers"]
    names = [d["name"] for d in layers]
    fig = _figure(max(6.0, 0.5 * len(names) + 2))
    ax = fig.add_subplot()
    x, w, pos = _bar_positions(len(names), 2)
    ax.bar(pos[0], [d["firing_rate"] for d in layers], w, label="spikes (burst of s counts s)")
    ax.bar(pos[1], [d["event_rate"] for d in layers], w, label="events (burst counts 1)")
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("layer (population)")
    ax.set_ylabel(f"rate ({RATE_UNIT})")
    ax.set_ylim(0, max([d["firing_rate"] for d in layers] + [1e-9]) * 1.3)
    ax.set_title(f"Firing rate per layer (T = {rep['T']})")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.savefig(path)


def plot_energy(rep, path):
    """ANN vs SNN energy per layer (per image)."""
    en = rep["energy"]
    layers = en["layers"]
    names = [d["name"] for d in layers]
    ann = np.array([d["ann_energy_pJ"] for d in layers], float)
    snn = np.array([d["snn_energy_pJ"] for d in layers], float)
    top = max(ann.max(initial=0), snn.max(initial=0))
    scale, unit = next(((s, u) for s, u in ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")) if top >= s),
                       (1.0, "pJ"))
    fig = _figure(max(6.0, 0.5 * len(names) + 2))
    ax = fig.add_subplot()
    x, w, pos = _bar_positions(len(names), 2)
    ax.bar(pos[0], ann / scale, w, label=f"ANN (MACs × {en['model']['mac_pJ']} pJ)")
    ax.bar(pos[1], snn / scale, w, label=f"SNN (SynOps × {en['model']['ac_pJ']} pJ + input MACs)")
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("layer (population)")
    ax.set_ylabel(f"energy per image ({unit})")
    tot = en["total"]
    ax.set_title(f"Energy per layer ({en['model']['name']}); total SNN/ANN = "
                 + ("n/a" if tot["ratio"] is None else f"{100 * tot['ratio']:.1f} %"))
    pos_vals = np.concatenate([ann[ann > 0], snn[snn > 0]]) / scale
    if len(pos_vals) and pos_vals.max() / pos_vals.min() > 100:
        ax.set_yscale("log")
        ax.set_ylim(top=pos_vals.max() * 10)          # room for the legend
    elif len(pos_vals):
        ax.set_ylim(0, pos_vals.max() * 1.3)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.savefig(path)


def plot_burst_hist(rep, path):
    """Share of events of each burst size k = 1..Γ, per burst-IF layer."""
    layers = [d for d in rep["layers"] if d.get("burst_hist") and sum(d["burst_hist"]) > 0]
    fig = _figure()
    ax = fig.add_subplot()
    gmax = max((len(d["burst_hist"]) - 1 for d in layers), default=1)
    if layers:
        x, w, pos = _bar_positions(gmax, len(layers))
        for j, d in enumerate(layers):
            h = np.asarray(d["burst_hist"][1:], float)
            h = np.pad(h, (0, gmax - len(h)))
            ax.bar(pos[j], 100 * h / h.sum(), w, label=f"layer {d['name']} (Γ={d['burst']})")
        ax.set_xticks(x, [str(k) for k in range(1, gmax + 1)])
        ax.set_ylim(0, 115)
        ax.legend(fontsize="small", ncol=max(1, len(layers) // 8))
    else:
        ax.text(0.5, 0.5, "no spike events", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("burst size k (spikes per event)")
    ax.set_ylabel("share of events (%)")
    ax.set_title("Burst-size histogram")
    ax.grid(True, axis="y", alpha=0.3)
    fig.savefig(path)


def plot_errors(rep, path):
    """Conversion error terms per layer: rate MAE, residual rate, SIN rate (all per step)."""
    errs = rep["errors"]
    names = [d["name"] for d in errs]
    fig = _figure(max(6.0, 0.5 * len(names) + 2))
    ax = fig.add_subplot()
    series = [("mae", "rate MAE |r − a|"), ("residual_rate", "residual (spikes held in V(T) / T)"),
              ("sin_rate", "SIN (spikes per inactive (a = 0) neuron per step)")]
    x, w, pos = _bar_positions(len(names), len(series))
    top = 1e-9
    for j, (key, label) in enumerate(series):
        vals = [d.get(key) or 0.0 for d in errs]
        top = max(top, *vals)
        ax.bar(pos[j], vals, w, label=label)
    ax.set_ylim(0, top * 1.4)
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("layer (population)")
    ax.set_ylabel(f"error ({RATE_UNIT})")
    ax.set_title("Conversion errors per layer (Sec. 3.2)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path)


_PLOTTERS = {"accuracy": (plot_accuracy, lambda r: r["accuracy"] is not None),
             "firing_rate": (plot_firing_rates, lambda r: bool(r["layers"])),
             "energy": (plot_energy, lambda r: r["energy"] is not None and bool(r["energy"]["layers"])),
             "burst_hist": (plot_burst_hist, lambda r: any(d.get("burst_hist") for d in r["layers"])),
             "errors": (plot_errors, lambda r: bool(r["errors"]))}


def _matplotlib_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(graph, net, result, x=None, y=None, out_dir="report", *, formats=None,
                 energy="45nm-fp32", include_bias=False, title="eventsnn report",
                 ann_batch_size=None):
    """Write the analysis and energy figures of a simulation to ``out_dir``.

    Parameters
    ----------
    graph : Graph or None
        The ANN the network was converted from (ANN accuracy, conversion errors, energy).
    net : SpikingNetwork
    result : SimResult or Analysis
        A simulation of ``x`` (best with ``record=("neuron_counts", "potential")``), or an
        :class:`~eventsnn.analysis.Analysis` accumulated over batches (then ``x = y = None``),
        e.g. from :func:`eventsnn.analysis.analyze_simulation`.
    x : ndarray, optional
        The simulated images (with a SimResult).
    y : array_like of int, optional
        Their labels.
    out_dir : str or Path
        Created if needed; existing report files are overwritten.
    formats : sequence of str, optional
        Any of ``"json"`` (``report.json``, every figure), ``"md"`` (``report.md``), ``"png"``
        (``accuracy.png``, ``firing_rate.png``, ``energy.png``, ``burst_hist.png``,
        ``errors.png`` — those whose data exist), ``"npz"`` (``neuron_rates.npz``: mean
        firing rate of every neuron, per population). Default: all of them, ``"png"`` only
        if matplotlib is installed.
    energy : str, EnergyModel or dict
        Energy model, see :data:`eventsnn.energy.PRESETS`.
    include_bias : bool
        Charge bias additions as ACs.
    title : str
        Title of the Markdown summary.

    Returns
    -------
    dict of str -> pathlib.Path
        ``"json"``, ``"md"``, ``"npz"`` and ``"png:<plot>"`` for every plot, to the files written.
    """
    if formats is None:
        formats = tuple(f for f in FORMATS if f != "png" or _matplotlib_available())
    elif isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown report formats {bad}; choose from {FORMATS}")
    an = _as_analysis(graph, net, result, x, y, ann_batch_size)
    rep = build_report(graph, net, an, energy=energy, include_bias=include_bias)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, plots = {}, {}
    if "png" in formats:
        for name, (fn, available) in _PLOTTERS.items():
            if available(rep):
                p = out / f"{name}.png"
                fn(rep, p)
                paths[f"png:{name}"] = p
                plots[name] = p.name
    if "json" in formats:
        p = out / "report.json"
        p.write_text(json.dumps(rep, indent=1, allow_nan=False), encoding="utf-8")
        paths["json"] = p
    if "md" in formats:
        p = out / "report.md"
        p.write_text(render_markdown(rep, plots, title), encoding="utf-8")
        paths["md"] = p
    if "npz" in formats:
        p = out / "neuron_rates.npz"
        with open(p, "wb") as f:
            np.savez_compressed(f, **an.neuron_rates())
        paths["npz"] = p
    return paths
