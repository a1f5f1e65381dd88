"""Energy estimate of the ANN and of the converted SNN from exact operation counts.

The model follows the paper (Sec. 4.4, after Rathi & Roy 2021): an ANN spends one
multiply-accumulate (MAC) per synapse per inference; an SNN spends one accumulate (AC) per
synaptic operation (SynOp: an event of multiplicity ``s`` from a neuron of fan-out ``f``
costs ``s·f`` ACs) plus, with direct coding, the MACs that turn the analog image into the
input current of the first layer (computed once per image). So, per image,

    E_ANN = MACs_ANN · E_MAC
    E_SNN = SynOps · E_AC + MACs_input · E_MAC   (+ bias ACs · E_AC, optional)

Figures are in picojoules (pJ) per image unless a key says otherwise.

Per-layer mapping
-----------------
Layers are keyed by the SNN population that receives the connections (the "layer" ``ℓ``).
Its SNN cost is the SynOps of every connection into it (plus the input MACs of connections
from ``"input"``). Its ANN cost is the MACs (:meth:`Graph.macs`) of the ANN nodes that the
population's incoming connections implement: walking the graph backwards from the
population's ``ann_node`` through node inputs, stopping at the graph input and at the
``ann_node`` of any other population. E.g. ``conv → bn → relu`` (``relu`` = ann_node of
``ℓ``) maps to ``ℓ``; a residual ``add`` and both its branches up to the previous spiking
stages map to the population after the ``add``. A node reached from two populations is
given to the first in network order; nodes reached from none (e.g. after the output
node) are reported as ``unmapped`` and still count in the ANN total.

ANN MACs follow :meth:`Graph.macs` (a conv counts every kernel tap, zero padding included);
the SNN's input MACs are the structural ones of the input connection (taps inside the image
only, :meth:`Connection.fan_out`), as counted by the engine.

Note that pooling populations (LIPool, max-gate) cost SynOps (each input spike is added to
the hidden units of its windows) while the ANN max-pooling costs comparisons, not MACs (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import INPUT

__all__ = ["EnergyModel", "PRESETS", "get_energy_model", "layer_map", "estimate_energy",
           "format_energy"]


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation.

    Parameters
    ----------
    mac_pj : float
        Energy of one multiply-accumulate, in picojoules.
    ac_pj : float
        Energy of one accumulate (addition), in picojoules.
    name : str
        Identifier shown in reports.
    source : str
        Where the figures come from.
    """

    mac_pj: float
    ac_pj: float
    name: str = "custom"
    source: str = "user-supplied"

    def __post_init__(self):
        for k in ("mac_pj", "ac_pj"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(v) or v < 0:
                raise ValueError(f"energy model {self.name!r}: {k} must be a finite number >= 0 "
                                 f"(picojoules), got {v!r}")

    def compare(self, graph, result, upto=None):
        """Whole-network ANN vs SNN energy per image (no per-layer mapping, no network needed).

        Parameters
        ----------
        graph : Graph
            The ANN (MACs from :meth:`Graph.macs`).
        result : SimResult or Analysis
            ``synops`` per connection per step, ``input_macs``, ``n_images``.
        upto : int, optional
            Count SynOps of steps ``1..upto`` only (energy of a run stopped at ``T = upto``);
            default all steps. Input MACs are spent once per image whatever ``upto``.

        Returns
        -------
        dict
            ``ann_macs``, ``snn_synops``, ``snn_input_macs`` (per image), ``ann_pj``,
            ``snn_pj`` (pJ per image) and ``ratio`` = snn_pj / ann_pj (None if the ANN has no
            MACs).
        """
        n = _n_images(result)
        upto = _check_upto(result, upto)
        syn = sum(_synops(v, upto) for v in result.synops.values()) / n
        imacs = result.input_macs / n
        ann_macs = int(sum(graph.macs().values()))
        ann, snn = ann_macs * self.mac_pj, syn * self.ac_pj + imacs * self.mac_pj
        return {"ann_macs": ann_macs, "snn_synops": syn, "snn_input_macs": imacs,
                "ann_pj": ann, "snn_pj": snn, "ratio": snn / ann if ann else None}

    def to_dict(self):
        return {"name": self.name, "mac_pJ": float(self.mac_pj), "ac_pJ": float(self.ac_pj),
                "source": self.source}


_HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
             "ISSCC 2014, 45 nm, 0.9 V")

PRESETS = {
    "45nm-fp32": EnergyModel(
        4.6, 0.9, "45nm-fp32",
        "32-bit float: MAC = mult 3.7 pJ + add 0.9 pJ, AC = add 0.9 pJ; " + _HOROWITZ
        + "; the figures of the paper (Sec. 4.4) and Rathi & Roy 2021"),
    "45nm-fp16": EnergyModel(
        1.5, 0.4, "45nm-fp16",
        "16-bit float: MAC = mult 1.1 pJ + add 0.4 pJ, AC = add 0.4 pJ; " + _HOROWITZ),
    "45nm-int32": EnergyModel(
        3.2, 0.1, "45nm-int32",
        "32-bit integer: MAC = mult 3.1 pJ + add 0.1 pJ, AC = add 0.1 pJ; " + _HOROWITZ),
    "45nm-int8": EnergyModel(
        0.23, 0.03, "45nm-int8",
        "8-bit integer: MAC = mult 0.2 pJ + add 0.03 pJ, AC = add 0.03 pJ; " + _HOROWITZ),
}
"""Named energy models (per-op energies in pJ, 45 nm CMOS, Horowitz ISSCC 2014)."""


def get_energy_model(model="45nm-fp32"):
    """Resolve ``model``: a preset name, an :class:`EnergyModel`, or a dict
    ``{"mac_pj": ..., "ac_pj": ...}`` (optionally ``name``, ``source``)."""
    if isinstance(model, EnergyModel):
        return model
    if isinstance(model, str):
        if model not in PRESETS:
            raise ValueError(f"unknown energy model {model!r}; use one of {sorted(PRESETS)} or an "
                             "EnergyModel(mac_pj, ac_pj, name)")
        return PRESETS[model]
    if isinstance(model, dict):
        extra = set(model) - {"mac_pj", "ac_pj", "name", "source"}
        if extra or not {"mac_pj", "ac_pj"} <= set(model):
            raise ValueError(f"an energy model dict needs keys 'mac_pj' and 'ac_pj' (pJ), optionally "
                             f"'name' and 'source'; got {sorted(model)}")
        return EnergyModel(model["mac_pj"], model["ac_pj"], model.get("name", "custom"),
                           model.get("source", "user-supplied"))
    raise TypeError(f"energy model must be a preset name, an EnergyModel or a dict, got "
                    f"{type(model).__name__}")


def format_energy(pj):
    """Human-readable energy with its unit, from picojoules (e.g. ``'1.23 µJ'``)."""
    if pj is None:
        return "n/a"
    a = abs(pj)
    for scale, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")):
        if a >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def layer_map(graph, net):
    """Which ANN nodes each SNN population's incoming connections implement.

    Parameters
    ----------
    graph : Graph
    net : SpikingNetwork

    Returns
    -------
    dict
        ``{population name: [ANN node names]}`` for every population in network order, plus
        ``"unmapped": [node names]`` (see the module docstring for the rule).
    """
    anchors = {p.ann_node: p.name for p in net.populations if p.ann_node is not None}
    missing = [n for n in anchors if n != graph.input_name and n not in {m.name for m in graph.nodes}]
    if missing:
        raise ValueError(f"populations refer to ANN nodes {missing} that the graph lacks; pass the "
                         "graph the network was converted from")
    order = {n.name: k for k, n in enumerate(graph.nodes)}
    claimed, out = set(), {}
    for p in net.populations:
        seg = []
        if p.ann_node is not None and p.ann_node != graph.input_name:
            stack, seen = [p.ann_node], set()
            while stack:
                name = stack.pop()
                if name in seen:
                    continue
                seen.add(name)
                if name not in claimed:
                    seg.append(name)
                for inp in graph.node(name).inputs:
                    if inp != graph.input_name and inp not in anchors:
                        stack.append(inp)
        claimed.update(seg)
        out[p.name] = sorted(seg, key=order.get)
    out["unmapped"] = [n.name for n in graph.nodes if n.name not in claimed]
    return out


def _n_images(result):
    n = int(result.n_images)
    if n < 1:
        raise ValueError("the result holds no images; simulate at least one before estimating energy")
    return n


def _check_upto(result, upto):
    if upto is None:
        return None
    if isinstance(upto, bool) or not isinstance(upto, (int, np.integer)) or not 1 <= upto <= result.T:
        raise ValueError(f"upto must be a step between 1 and T = {result.T}, got {upto!r}")
    return int(upto)


def _synops(per_step, upto):
    """SynOps of steps 1..upto (all steps when upto is None) from a per-step array."""
    a = np.asarray(per_step, dtype=np.int64)
    return int(a[:upto].sum()) if upto is not None and a.ndim else int(a.sum())


def _input_macs_per_conn(net, result):
    """Input MACs per image of every connection from ``"input"``, splitting ``input_macs``
    in proportion to the structural MACs (number of synapses) of each connection."""
    conns = [c for c in net.connections if c.src == INPUT]
    struct = {c.name: int(c.fan_out().sum()) for c in conns}
    total = sum(struct.values())
    per_image = result.input_macs / result.n_images if result.n_images else 0.0
    return {k: (per_image * v / total if total else 0.0) for k, v in struct.items()}


def estimate_energy(graph, net, result, model="45nm-fp32", *, include_bias=False, upto=None):
    """Energy of the ANN and of the SNN per image, per layer and in total.

    Parameters
    ----------
    graph : Graph
        The ANN (MACs from :meth:`Graph.macs`).
    net : SpikingNetwork
        The converted network.
    result : SimResult or Analysis
        Anything with ``synops`` (connection -> per-step SynOps summed over images),
        ``input_macs`` (whole batch), ``n_images`` and ``T``.
    model : str, EnergyModel or dict
        Per-op energies; see :data:`PRESETS` (default ``"45nm-fp32"``: 4.6 pJ/MAC, 0.9 pJ/AC,
        as in the paper).
    include_bias : bool
        Also charge one AC per step for every neuron with a non-zero bias (``V += b`` each
        step). Off by default, as in the paper's model.
    upto : int, optional
        Count SynOps (and bias additions) of steps ``1..upto`` only: the energy of a run
        stopped at ``T = upto``. Default: all ``T`` steps.

    Returns
    -------
    dict
        ``model``, ``unit`` ("pJ per image"), ``layers`` (list of dicts: ``name``,
        ``ann_nodes``, ``ann_macs``, ``ann_energy_pJ``, ``connections`` (name -> SynOps per
        image), ``snn_synops``, ``snn_input_macs``, ``snn_bias_acs``, ``snn_energy_pJ``,
        ``ratio``), ``unmapped`` (nodes and their MACs), ``total`` (same keys summed, plus
        ``ratio`` = E_SNN / E_ANN).
    """
    m = get_energy_model(model)
    n = _n_images(result)
    upto = _check_upto(result, upto)
    steps = int(result.T) if upto is None else upto
    names = {c.name for c in net.connections}
    unknown = [k for k in result.synops if k not in names]
    if unknown:
        raise ValueError(f"the result has SynOps for connections {unknown} that the network lacks; "
                         "pass the network that produced the result")
    macs = graph.macs()
    mapping = layer_map(graph, net)
    in_macs = _input_macs_per_conn(net, result)
    layers = []
    for p in net.populations:
        conns = {c.name: _synops(result.synops.get(c.name, 0), upto) / n
                 for c in net.incoming(p.name)}
        syn = float(sum(conns.values()))
        imacs = float(sum(in_macs.get(c, 0.0) for c in conns))
        bias_acs = 0.0
        if include_bias and p.bias is not None:
            bias_acs = float(steps * np.count_nonzero(p.bias))
        ann_macs = int(sum(macs[k] for k in mapping[p.name]))
        ann_e = ann_macs * m.mac_pj
        snn_e = (syn + bias_acs) * m.ac_pj + imacs * m.mac_pj
        layers.append({"name": p.name, "kind": p.kind, "ann_nodes": mapping[p.name],
                       "ann_macs": ann_macs, "ann_energy_pJ": ann_e,
                       "connections": conns, "snn_synops": syn, "snn_input_macs": imacs,
                       "snn_bias_acs": bias_acs, "snn_energy_pJ": snn_e,
                       "ratio": snn_e / ann_e if ann_e else None})
    unmapped = {k: int(macs[k]) for k in mapping["unmapped"]}
    tot_ann_macs = int(sum(macs.values()))
    tot = {"ann_macs": tot_ann_macs, "ann_energy_pJ": tot_ann_macs * m.mac_pj}
    for k in ("snn_synops", "snn_input_macs", "snn_bias_acs", "snn_energy_pJ"):
        tot[k] = float(sum(layer[k] for layer in layers))
    tot["ratio"] = tot["snn_energy_pJ"] / tot["ann_energy_pJ"] if tot["ann_energy_pJ"] else None
    return {"model": m.to_dict(), "unit": "pJ per image", "n_images": n, "T": steps,
            "include_bias": bool(include_bias), "layers": layers,
            "unmapped": {"nodes": unmapped, "ann_macs": int(sum(unmapped.values()))},
            "total": tot}
