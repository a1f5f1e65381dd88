"""The accuracy–energy trade of conversion settings: a grid sweep with its Pareto front.

:func:`sweep` converts a model with every combination of a grid of conversion settings
(``norm``, ``percentile``, ``burst``, ``v_init``, ``calibration``, ...; any keyword of
:func:`eventsnn.convert`), simulates each network event by event on the same images for ``T``
steps and measures accuracy, SynOps, firing rate and ``E_SNN / E_ANN``. A setting is on the
**Pareto front** when no other setting is at least as accurate and at most as costly with one of
the two strictly better. :func:`write_sweep` writes the table as JSON and Markdown and, when
matplotlib is installed, a plot of accuracy against ``E_SNN / E_ANN`` and against SynOps with
the front marked. Users pick their trade from it.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["sweep", "pareto_front", "write_sweep", "DEFAULT_GRID"]

DEFAULT_GRID = {"norm": ["burst-percentile", "percentile", "mmse"], "percentile": [99.0, 99.9],
                "v_init": [0.0, 0.5], "calibration": ["none", "bias"]}
_NO_PERCENTILE = ("max", "mmse")


def _combos(grid):
    """Dicts of the grid's cartesian product, without duplicates that differ only in settings
    the norm ignores (``percentile`` of ``"max"`` / ``"mmse"``)."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict of setting -> list of values, got {grid!r}")
    for k, v in grid.items():
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"grid[{k!r}] must be a non-empty list of values, got {v!r}")
    keys = list(grid)
    seen, out = set(), []
    for values in itertools.product(*(grid[k] for k in keys)):
        c = dict(zip(keys, values))
        if c.get("norm") in _NO_PERCENTILE:
            c.pop("percentile", None)
        key = json.dumps(c, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def pareto_front(accuracy, cost):
    """Boolean mask of the points no other point dominates (higher accuracy, lower cost).

    Point ``i`` is dominated when some ``j`` has ``accuracy[j] >= accuracy[i]`` and
    ``cost[j] <= cost[i]`` with at least one strict inequality.
    """
    a, c = np.asarray(accuracy, float), np.asarray(cost, float)
    dominated = ((a[None, :] >= a[:, None]) & (c[None, :] <= c[:, None])
                 & ((a[None, :] > a[:, None]) | (c[None, :] < c[:, None]))).any(axis=1)
    return ~dominated


def sweep(graph, calib_x, x, y, *, T=32, grid=None, base=None, energy="45nm-fp32", progress=True,
          batch_size=None, client=None):
    """Convert and simulate every setting of ``grid``; accuracy and cost at ``T``.

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN.
    calib_x : ndarray
        Calibration images (training data), as for :func:`eventsnn.convert`.
    x, y : ndarray
        Evaluation images and labels (every setting sees the same images).
    T : int
        Steps; also passed to ``convert`` as ``timesteps`` (``norm="mmse"``, calibration).
    grid : dict, optional
        Setting -> list of values (default :data:`DEFAULT_GRID`).
    base : dict, optional
        Settings common to all runs (e.g. ``{"preset": "paper"}``, ``{"pooling": "avg"}``).
    energy : str, EnergyModel or dict
        Energy model of :func:`eventsnn.energy.estimate_energy` (default 4.6 pJ/MAC, 0.9 pJ/AC).
    progress : bool
        Show a progress bar over the settings.
    batch_size : int, optional
        Simulation batch size.
    client : dask.distributed.Client, optional
        Simulate every setting on this Dask cluster (:func:`eventsnn.simulate` with
        ``client``; results identical to an in-process run). Conversion and its layer-wise
        calibration run in this process.

    Returns
    -------
    dict
        ``T``, ``n_images``, ``ann_accuracy``, ``energy_model`` and ``rows``: one dict per setting
        with ``settings``, ``accuracy``, ``energy_ratio``, ``synops_per_image``, ``firing_rate``,
        ``convert_seconds``, ``simulate_seconds``, and ``pareto`` (on the front of accuracy vs
        ``energy_ratio``) and ``pareto_synops`` (vs SynOps).
    """
    from tqdm.auto import tqdm

    from .convert import convert
    from .energy import estimate_energy, get_energy_model
    from .engine import simulate

    from .validation import check_batch, check_labels, check_positive_int

    T = check_positive_int(T, "T")
    x = check_batch(x, graph.input_shape)
    y = check_labels(y, len(x), int(np.prod(graph.output_shape)), name="y")
    combos = _combos(DEFAULT_GRID if grid is None else grid)
    base = dict(base or {})
    ann_acc = float((graph.forward(x).argmax(axis=1) == y).mean())
    rows = []
    for c in tqdm(combos, desc="sweep", unit="setting", disable=not progress):
        t0 = time.perf_counter()
        net = convert(graph, calib_x, **{"timesteps": int(T), **base, **c})
        t1 = time.perf_counter()
        res = simulate(net, x, T, progress=False, batch_size=batch_size, client=client)
        t2 = time.perf_counter()
        tot = estimate_energy(graph, net, res, energy)["total"]
        n_neurons = sum(p.size for p in net.populations if p.kind != "output")
        rows.append({"settings": {**base, **c}, "accuracy": float(res.accuracy(y)[-1]),
                     "energy_ratio": tot["ratio"], "synops_per_image": tot["snn_synops"],
                     "firing_rate": res.total_spikes() / (n_neurons * len(x) * T),
                     "convert_seconds": round(t1 - t0, 2), "simulate_seconds": round(t2 - t1, 2)})
    acc = [r["accuracy"] for r in rows]
    for key, cost in (("pareto", "energy_ratio"), ("pareto_synops", "synops_per_image")):
        for r, on in zip(rows, pareto_front(acc, [r[cost] for r in rows])):
            r[key] = bool(on)
    return {"T": T, "n_images": int(len(x)), "ann_accuracy": ann_acc,
            "energy_model": get_energy_model(energy).to_dict(), "rows": rows}


def _label(settings):
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def write_sweep(result, out, title="sweep"):
    """Write ``sweep.json``, ``sweep.md`` and (with matplotlib) ``sweep.png`` into ``out``.

    Returns
    -------
    dict
        Kind -> path of the files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "markdown": out / "sweep.md"}
    paths["json"].write_text(json.dumps(result, indent=1))
    rows = sorted(result["rows"], key=lambda r: r["energy_ratio"])
    lines = [f"# {title}: accuracy vs cost at T = {result['T']}", "",
             f"{result['n_images']} images, ANN accuracy {100 * result['ann_accuracy']:.2f} %. "
             f"Energy {result['energy_model']['mac_pJ']} pJ/MAC (ANN), "
             f"{result['energy_model']['ac_pJ']} pJ/AC (SynOps). ★ = Pareto front "
             "(accuracy vs E_SNN/E_ANN).", "",
             "| settings | accuracy % | ANN − SNN (pt) | E_SNN/E_ANN | SynOps/img | firing rate | front |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_label(r['settings'])} | {100 * r['accuracy']:.2f} | "
                     f"{100 * (result['ann_accuracy'] - r['accuracy']):.2f} | {r['energy_ratio']:.3f} | "
                     f"{r['synops_per_image']:.4g} | {r['firing_rate']:.4f} | {'★' if r['pareto'] else ''} |")
    paths["markdown"].write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost, front, xlabel in ((axes[0], "energy_ratio", "pareto", "E_SNN / E_ANN"),
                                    (axes[1], "synops_per_image", "pareto_synops", "SynOps per image")):
        c = np.array([r[cost] for r in rows])
        a = np.array([100 * r["accuracy"] for r in rows])
        on = np.array([r[front] for r in rows])
        ax.scatter(c[~on], a[~on], c="0.6", s=18, label="setting")
        order = np.argsort(c[on])
        ax.plot(c[on][order], a[on][order], "o-", c="C3", ms=5, label="Pareto front")
        ax.axhline(100 * result["ann_accuracy"], ls="--", c="k", lw=0.8, label="ANN")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"accuracy at T={result['T']} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    paths["plot"] = out / "sweep.png"
    fig.savefig(paths["plot"], dpi=120)
    plt.close(fig)
    return paths
