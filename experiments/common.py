"""Shared pieces of the experiment scripts: model registry, data loading, configurations.

Nothing here is part of the eventsnn package; the scripts in this folder reproduce the
paper's tables (Li & Zeng, IJCAI 2022) on real data with the public eventsnn API.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("EVENTSNN_SHARED", REPO.parent / "shared"))
RESULTS = HERE / "results"
FIGURES = HERE / "figures"
CACHE = HERE / ".cache"          # converted networks, decoded CIFAR-10 (not committed)

CIFAR_TGZ = SHARED / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"

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

def _shipped_fmnist():
    try:
        from eventsnn.datasets import default_model_path
        return default_model_path()[0]
    except FileNotFoundError:
        return REPO / "models" / "fmnist_vgg.npz"


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
    reg["fmnist-vgg"] = dict(path=_shipped_fmnist(), dataset="fashion-mnist", normalization=None,
                             chunk=500)
    # any other trained native model in models/ with a sidecar JSON (normalisation, data)
    for npz in sorted((REPO / "models").glob("*.npz")):
        name = npz.stem.replace("_", "-")
        if name == "fmnist-vgg" or name in reg:
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

def decode_cifar_tgz(src, out):
    """Decode the CIFAR-10 JPEG tar.gz into a uint8 npz (same layout as to_npz.py)."""
    from eventsnn.datasets import read_cifar10_jpeg

    arrays = {}
    for split in ("train", "test"):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = read_cifar10_jpeg(src, split)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def default_data(dataset):
    if dataset == "cifar10":
        return str(CIFAR_TGZ)
    if dataset in ("fashion-mnist", "mnist"):
        return str(SHARED / "data" / dataset)
    raise SystemExit(f"no default data for {dataset!r}; pass --data")


def load_split(data, split, normalization):
    """A normalised eventsnn Dataset from a path (.npz, IDX folder, CIFAR jpeg .tar.gz)."""
    from eventsnn.datasets import load_dataset

    p = Path(data)
    if p.name.endswith(".tar.gz") or p.name.endswith(".tgz"):
        key = hashlib.sha256(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime}".encode()).hexdigest()[:12]
        cached = CACHE / f"cifar10-{key}.npz"
        if not cached.is_file():
            print(f"decoding {p} -> {cached} (once)", flush=True)
            decode_cifar_tgz(p, cached)
        p = cached
    return load_dataset(str(p), split, normalization=normalization)


def test_order(n_total, seed=0):
    """Seeded permutation of the test set: chunk k simulates order[k*c:(k+1)*c].

    The CIFAR-10 arrays are sorted by class, so contiguous chunks would be biased; a random
    order makes every prefix of chunks an unbiased random subset of the test set.
    """
    return np.random.default_rng(seed).permutation(n_total)


# ------------------------------------------------------------------------ bookkeeping

def machine():
    """CPU model, logical cores, load average and host name."""
    model = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "loadavg": list(os.getloadavg()),
            "host": platform.node(), "numba_threads": _numba_threads()}


def _numba_threads():
    try:
        import numba
        return int(numba.get_num_threads())
    except Exception:  # noqa: BLE001 - informational only
        return None


def git_commit():
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "eventsnn"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty-eventsnn" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path, obj, indent=1):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a per-process temporary name: two runs of the same model (disjoint --chunks) may merge
    # the same result file at the same moment
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
