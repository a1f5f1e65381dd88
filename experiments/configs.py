"""What the experiments run: the configurations (Table 1 rows), the model registry, the data.

Nothing here is part of the eventsnn package; the scripts in this folder reproduce the
paper's tables (Li & Zeng, IJCAI 2022) on real data with the public eventsnn API. The
helpers they share with the benchmarks (machine description, JSON output, CIFAR-10
decoding, ``SHARED``) are in ``benchmarks/common.py``, put on ``sys.path`` here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from common import CIFAR_JPEG, SHARED, cifar_npz  # noqa: E402

RESULTS = HERE / "results"
FIGURES = HERE / "figures"
CACHE = HERE / ".cache"          # converted networks (not committed)

# ------------------------------------------------------------------------ configurations
# Table 1 of the paper (ablation) plus an average-pooling baseline. "paper_row" is the
# paper's label. Burst rows use the authors' burst-aware percentile (values above 1 divided
# by Γ before the 99.9th percentile), as in their code (paper-notes.md).
CONFIGS = {
    "maxnorm":       dict(norm="max", percentile=100.0, burst=1, pooling="maxgate",
                          label="Max-norm (Γ=1, max-gate pool)"),
    "pnorm":         dict(norm="percentile", percentile=99.9, burst=1, pooling="maxgate",
                          label="p-Norm 99.9 (Γ=1, max-gate pool)"),
    "pnorm-avgpool": dict(norm="percentile", percentile=99.9, burst=1, pooling="avg",
                          label="p-Norm + avg-pool baseline (Γ=1)"),
    "pnorm-lipool":  dict(norm="percentile", percentile=99.9, burst=1, pooling="lipool",
                          label="p-Norm + LIPool (Γ=1)"),
    "burst2-lipool": dict(norm="burst-percentile", percentile=99.9, burst=2, pooling="lipool",
                          label="Burst Γ=2 + LIPool"),
    "burst5-lipool": dict(norm="burst-percentile", percentile=99.9, burst=5, pooling="lipool",
                          label="Burst Γ=5 + LIPool"),
    # not in the paper: bursts with the plain p-Norm λ (no division by Γ), to separate the
    # effect of the burst cap from that of the burst-aware (smaller) λ on accuracy and energy
    "burst5-lipool-pnorm": dict(norm="percentile", percentile=99.9, burst=5, pooling="lipool",
                                label="Burst Γ=5 + LIPool, plain p-Norm λ (extra)"),
}
TABLE1_ORDER = ["maxnorm", "pnorm", "pnorm-avgpool", "pnorm-lipool", "burst2-lipool", "burst5-lipool",
                "burst5-lipool-pnorm"]
OURS = "burst5-lipool"


def convert_kwargs(cfg):
    """The eventsnn.convert keyword arguments of a configuration dict (the paper's method:
    V(0) = 0, no layer-wise calibration)."""
    return {k: cfg[k] for k in ("norm", "percentile", "burst", "pooling", "channelwise")
            if k in cfg} | {"channelwise": bool(cfg.get("channelwise", False)), "preset": "paper"}


def pooling_collapse(graph, config):
    """Name of the configuration ``config`` is identical to on a graph without MaxPool.

    Without MaxPool the pooling option has no effect, so the pooling rows of Table 1 are the
    same network as the plain row. Returns None when ``config`` is distinct.
    """
    has_max = any(n.op == "maxpool" for n in graph.nodes)
    if has_max:
        return None
    base = {"pnorm-avgpool": "pnorm", "pnorm-lipool": "pnorm"}
    return base.get(config)


# ------------------------------------------------------------------------ model registry

def registry():
    """Known models: name -> dict(path, dataset, normalization (dict or None), chunk)."""
    reg = {}
    meta = SHARED / "models" / "meta.json"
    norm = None
    if meta.is_file():
        m = json.loads(meta.read_text())
        norm = {"mean": m["mean"], "std": m["std"]}
    for depth in (20, 56):
        reg[f"resnet{depth}"] = dict(path=SHARED / "models" / f"resnet{depth}_cifar10.onnx",
                                     dataset="cifar10", normalization=norm, chunk=100)
    reg["fmnist-vgg"] = dict(path=REPO / "eventsnn" / "models" / "fmnist_vgg.npz",
                             dataset="fashion-mnist", normalization=None, chunk=500)
    # any other trained native model in models/ with a sidecar JSON (normalisation, data)
    for npz in sorted((REPO / "models").glob("*.npz")):
        name = npz.stem.replace("_", "-")
        if name in reg:
            continue
        side = npz.with_suffix(".json")
        info = json.loads(side.read_text()) if side.is_file() else {}
        data = str(info.get("data", info.get("dataset", ""))).lower()
        ds = "cifar10" if "cifar" in data or "cifar" in name else \
             "mnist" if ("mnist" in data and "fashion" not in data) or name.startswith("mnist") else \
             "fashion-mnist"
        reg[name] = dict(path=npz, dataset=ds, normalization=info.get("normalization"),
                         chunk=500 if ds != "cifar10" else 100)
    return reg


def resolve_model(model):
    """(name, path, registry entry or {}) for a registry name or a file path."""
    reg = registry()
    if model in reg:
        return model, Path(reg[model]["path"]), reg[model]
    p = Path(model)
    if not p.is_file():
        raise SystemExit(f"unknown model {model!r}: not in the registry {sorted(reg)} "
                         "and not an existing .onnx/.npz file")
    return p.stem.replace("_", "-"), p, {}


def load_model(path):
    """An eventsnn Graph from an ONNX file or a native .npz."""
    import eventsnn

    path = Path(path)
    if path.suffix == ".onnx":
        return eventsnn.load_onnx(str(path))
    return eventsnn.load_graph(str(path))


def model_normalization(path, entry):
    """Normalisation dict of a model: registry entry, else the sidecar JSON, else None."""
    if entry.get("normalization"):
        return entry["normalization"]
    side = Path(path).with_suffix(".json")
    if side.is_file():
        info = json.loads(side.read_text())
        if "normalization" in info:
            return info["normalization"]
    return None


# ------------------------------------------------------------------------ data

def default_data(dataset):
    if dataset == "cifar10":
        return str(CIFAR_JPEG)
    if dataset in ("fashion-mnist", "mnist"):
        return str(SHARED / "data" / dataset)
    raise SystemExit(f"no default data for {dataset!r}; pass --data")


def load_split(data, split, normalization):
    """A normalised eventsnn Dataset from a path (.npz, IDX folder, CIFAR jpeg .tar.gz)."""
    from eventsnn.datasets import load_dataset

    p = Path(data)
    if p.name.endswith(".tar.gz") or p.name.endswith(".tgz"):
        p = cifar_npz(p)
    return load_dataset(str(p), split, normalization=normalization)


def test_order(n_total, seed=0):
    """Seeded permutation of the test set: chunk k simulates order[k*c:(k+1)*c].

    The CIFAR-10 arrays are sorted by class, so contiguous chunks would be biased; a random
    order makes every prefix of chunks an unbiased random subset of the test set.
    """
    return np.random.default_rng(seed).permutation(n_total)
