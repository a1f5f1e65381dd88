"""Shared helpers of the benchmark and experiment scripts: machine, threads, JSON, data, networks.

Nothing here is part of the eventsnn package. The scripts of ``benchmarks/`` and
``experiments/`` add this folder to ``sys.path`` and ``import common``. Data and pretrained
models are read from ``../shared`` beside the repository, or from ``$EVENTSNN_SHARED``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
SHARED = Path(os.environ.get("EVENTSNN_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
CIFAR_JPEG = SHARED / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
DATA_CACHE = REPO / ".cache"  # decoded data sets, shared by benchmarks and experiments
CIFAR10_VGG = REPO / "models" / "cifar10_vgg.npz"  # trained here; its own normalisation in .json
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------ machine and threads

def cpu_model():
    """CPU model name from lscpu (or /proc/cpuinfo)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    """The SIMD extensions that matter for the kernels (AVX2, AVX-512F, FMA)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
    except OSError:
        pass
    return []


def load_average():
    """1-, 5- and 15-minute load averages (runnable processes; the machine has ``cores``)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info(threads=None):
    """A JSON-serialisable description of the machine, the software and the current load."""
    import numba

    info = {
        "cpu": cpu_model(),
        "simd": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "load_average": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        info["numba_threading_layer"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    if threads is not None:
        info["threads"] = threads
    info["git"] = git_revision()
    return info


def git_revision():
    """Short commit of the checkout, with ``+dirty(eventsnn)`` when the package has edits."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "eventsnn"], capture_output=True, text=True, timeout=10).stdout
        return rev + ("+dirty(eventsnn)" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now():
    """The current UTC time, ISO 8601 (``2026-01-31T12:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def set_threads(n):
    """Use ``n`` threads in numba and in torch (if installed)."""
    import numba

    numba.set_num_threads(int(n))
    try:
        import torch

        torch.set_num_threads(int(n))
    except ImportError:
        pass


def default_threads():
    """All usable CPUs (capped by numba's configured maximum)."""
    import numba

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))


class LoadMonitor:
    """Samples the 1-minute load average while a benchmark runs (context manager)."""

    def __init__(self):
        self.samples = []

    def sample(self):
        la = load_average()
        if la:
            self.samples.append(la[0])

    def __enter__(self):
        self.sample()
        return self

    def __exit__(self, *exc):
        self.sample()

    def summary(self):
        if not self.samples:
            return None
        return {"min": min(self.samples), "max": max(self.samples),
                "mean": round(float(np.mean(self.samples)), 2), "n": len(self.samples)}


def cpu_seconds():
    """CPU time of this process, all threads (user + system)."""
    return time.process_time()


# ------------------------------------------------------------------ output

def write_json(path, obj, indent=1):
    """Write ``obj`` as JSON (numpy scalars, arrays and paths allowed), atomically.

    The file is written under a per-process temporary name and renamed, so two processes
    that write the same result file at the same moment never leave a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def md_table(header, rows):
    """A GitHub Markdown table."""
    out = ["| " + " | ".join(str(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine_md(info):
    la = info.get("load_average")
    return (f"Machine: {info['cpu']} ({', '.join(info.get('simd', []))}), "
            f"{info['usable_cpus']} usable CPUs; Python {info['python']}, numpy {info['numpy']}, "
            f"numba {info['numba']} ({info.get('numba_threading_layer')}), torch {info.get('torch')}; "
            f"git {info.get('git')}; load average at start {la}; {info['date']}.")


# ------------------------------------------------------------------ CIFAR-10

def cifar_npz(path):
    """``path`` itself if it is an npz, else the CIFAR-10 JPEG tarball decoded once to an npz.

    The decoded uint8 arrays (``x_train``, ``y_train``, ``x_test``, ``y_test``, read with
    ``eventsnn.datasets.read_raw``) are cached in ``.cache/`` at the repository root, keyed by
    the tarball's path, size and modification time, so later runs skip the JPEG decoding.
    """
    from eventsnn import datasets

    path = Path(path)
    if path.suffix == ".npz":
        return path
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime}".encode()).hexdigest()[:12]
    cached = DATA_CACHE / f"cifar10-{key}.npz"
    if not cached.is_file():
        print(f"decoding {path} -> {cached} (once)", flush=True)
        parts = {s: datasets.read_raw(path, s)[:2] for s in ("train", "test")}
        DATA_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"{k}_{s}": v for s, (x, y) in parts.items()
                         for k, v in (("x", x), ("y", y))})
        os.replace(tmp, cached)
    return cached


def _raw_cifar(path):
    """Raw uint8 CIFAR-10 ``{split: (x (N,32,32,3), y)}`` from an npz or the JPEG tarball."""
    from eventsnn import datasets

    npz = cifar_npz(path)
    return {s: datasets.read_raw(npz, s)[:2] for s in ("train", "test")}


def default_cifar():
    """The CIFAR-10 JPEG tarball in ``../shared`` (decoded once, see :func:`cifar_npz`)."""
    return CIFAR_JPEG


def cifar_normalization(network=None):
    """``(Normalization, source)`` of a CIFAR-10 benchmark network's input.

    ``cifar10_vgg`` (``models/cifar10_vgg.npz``) was trained with its own normalisation, stored in
    ``models/cifar10_vgg.json``; the others (pretrained ResNets, the random VGG16) use
    ``../shared/models/meta.json``.
    """
    from eventsnn.datasets import Normalization

    if network == "cifar10_vgg":
        side = CIFAR10_VGG.with_suffix(".json")
        return Normalization.from_dict(json.loads(side.read_text())["normalization"]), side
    meta = json.loads((MODELS / "meta.json").read_text())
    return Normalization(meta["mean"], meta["std"]), MODELS / "meta.json"


def load_cifar(path, n_test, n_calib, seed=0, network=None, calib_seed=None):
    """Normalised CIFAR-10 subsets: class-balanced ``n_test`` test and ``n_calib`` train images.

    Normalisation (mean/std of the [0, 1]-scaled image) of ``network``, see
    :func:`cifar_normalization` (default: ``../shared/models/meta.json``, the one the pretrained
    ResNets were trained with). Test subset drawn with ``seed``, calibration subset with
    ``calib_seed`` (default ``seed + 1``).

    Returns
    -------
    dict with ``x_test`` float32 (n_test, 3, 32, 32), ``y_test`` int64, ``x_calib``,
    ``source`` (path) and ``normalization``.
    """
    from eventsnn.datasets import subset_indices

    norm, _ = cifar_normalization(network)
    raw = _raw_cifar(path)
    xt, yt = raw["test"]
    xc, yc = raw["train"]
    it = subset_indices(yt, int(n_test), seed)
    ic = subset_indices(yc, int(n_calib), seed + 1 if calib_seed is None else calib_seed)
    return {"x_test": norm.apply(xt[it]), "y_test": np.asarray(yt[it], np.int64),
            "x_calib": norm.apply(xc[ic]), "source": str(path),
            "normalization": norm.to_dict()}


# ------------------------------------------------------------------ networks

def _cache_path(name, burst, pooling, n_calib, extra=""):
    return CACHE / f"{name}-G{burst}-{pooling}-c{n_calib}{extra}.npz"


def onnx_graph(name):
    """The pretrained ``resnet20`` / ``resnet56`` CIFAR-10 ONNX model as an eventsnn Graph."""
    from eventsnn.io.onnx import load_onnx

    return load_onnx(MODELS / f"{name}_cifar10.onnx")


def vgg16_graph(x_calib, seed=0):
    """A full-width VGG16 (paper architecture) as an eventsnn Graph, built with torch.

    13 conv3x3-BN-ReLU layers ``64,64,M,128,128,M,256x3,M,512x3,M,512x3,M`` and a linear
    classifier (512 -> 10). Weights are random (Kaiming init, seeded); the BatchNorm running
    statistics are calibrated on ``x_calib`` (cumulative average over the images in train
    mode), so activations have realistic scales. Not trained: its predictions are meaningless,
    but its size and per-layer statistics are those of the real network.
    """
    import torch
    import torch.nn as nn

    sys.path.insert(0, str(REPO / "models"))
    from architectures import vgg

    from eventsnn.io.torch_import import from_torch

    torch.manual_seed(seed)
    model = vgg(VGG16_CFG, in_ch=3, in_size=32, hidden=0, n_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative moving average
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        xs = torch.from_numpy(np.asarray(x_calib, np.float32))
        for s in range(0, len(xs), 64):
            model(xs[s:s + 64])
    model.eval()
    return from_torch(model, torch.zeros(1, 3, 32, 32))


def shipped_model():
    """The shipped default model (Graph) and its test images, or None when not shipped yet."""
    from eventsnn import datasets
    from eventsnn.graph import load_graph

    try:
        path, _norm = datasets.default_model_path()
    except FileNotFoundError:
        return None
    ds = datasets.load_shipped()
    return load_graph(path), ds


def ann_graph(name, x_calib=None):
    """The ANN Graph of a benchmark network (``x_calib`` only for ``vgg16``'s BN statistics)."""
    from eventsnn.graph import load_graph

    if name in ("resnet20", "resnet56"):
        return onnx_graph(name)
    if name == "vgg16":
        return vgg16_graph(x_calib)
    if name == "cifar10_vgg":
        return load_graph(CIFAR10_VGG)
    if name == "fmnist":
        return shipped_model()[0]
    raise ValueError(f"unknown benchmark network {name!r}")


def get_network(name, x_calib, burst=5, pooling="lipool", use_cache=True, log=print):
    """Convert (or load the cached conversion of) a benchmark network.

    ``name``: ``resnet20``, ``resnet56`` (ONNX), ``vgg16`` (full width, random + calibrated BN,
    see :func:`vgg16_graph`), ``cifar10_vgg`` (the trained VGG-style net with max pooling,
    ``models/cifar10_vgg.npz``; ``x_calib`` normalised with its own statistics, see
    :func:`cifar_normalization`) or ``fmnist`` (the shipped default model; ``x_calib`` are then its
    own images). Returns ``(net, graph, seconds)`` where ``seconds`` is the conversion time (0
    when loaded from the cache).
    """
    from eventsnn.convert import convert
    from eventsnn.graph import load_graph
    from eventsnn.network import load_network

    n_calib = len(x_calib)
    extra = ""
    if name == "cifar10_vgg":  # a retrained model must not hit a stale cached conversion
        extra = "-" + hashlib.sha1(CIFAR10_VGG.read_bytes()).hexdigest()[:8]
    cp = _cache_path(name, burst, pooling, n_calib, extra)
    gp = CACHE / f"{name}-graph-c{n_calib}{extra}.npz"
    if use_cache and cp.is_file() and gp.is_file():
        return load_network(cp), load_graph(gp), 0.0
    t0 = time.perf_counter()
    graph = ann_graph(name, x_calib)
    log(f"  converting {name} (Γ={burst}, {pooling}, {n_calib} calibration images) ...")
    net = convert(graph, x_calib, burst=burst, pooling=pooling, preset="paper")
    seconds = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    net.save(cp)
    graph.save(gp)
    return net, graph, seconds


def network_stats(net, graph):
    """Sizes of a network: neurons, synapses (structural), ANN MACs per image."""
    neurons = sum(p.size for p in net.populations)
    synapses = sum(int(c.fan_out().sum()) for c in net.connections)
    return {"populations": len(net.populations), "connections": len(net.connections),
            "neurons": int(neurons), "synapses": int(synapses),
            "ann_macs": int(sum(graph.macs().values())),
            "params": int(sum(a.size for c in net.connections for a in c.arrays().values()))}


def fmnist_data(n_test, n_calib, seed=0):
    """Test images of the shipped default model (its 1000 shipped Fashion-MNIST test images) and
    calibration images (the shipped training images; else the Fashion-MNIST train split from
    ../shared; else other shipped test images). None when the default model is not shipped."""
    from eventsnn import datasets

    shipped = shipped_model()
    if shipped is None:
        return None
    graph, ds = shipped
    idx = datasets.subset_indices(ds.y, min(int(n_test), len(ds.y)), seed)
    x_calib, note = None, ""
    try:  # the shipped sample carries balanced training images for calibration
        cal = datasets.load_dataset("fashion-mnist-sample", split="train",
                                    normalization=ds.normalization)
        x_calib = cal.x[datasets.subset_indices(cal.y, min(int(n_calib), len(cal.y)), seed + 1)]
        note = f"{len(x_calib)} shipped Fashion-MNIST training images"
    except (OSError, ValueError, KeyError):
        x_calib = None
    folder = SHARED / "data" / "fashion-mnist"
    if x_calib is None and folder.is_dir():
        try:
            cal = datasets.load_dataset(folder, split="train", normalization=ds.normalization,
                                        n=int(n_calib), seed=seed + 1)
            x_calib, note = cal.x, f"{len(cal)} Fashion-MNIST train images"
        except (OSError, ValueError):
            x_calib = None
    if x_calib is None:
        rest = np.setdiff1d(np.arange(len(ds.y)), idx)
        x_calib = ds.x[rest[:int(n_calib)]]
        note = f"{len(x_calib)} other shipped test images (no train split found)"
    return {"graph": graph, "x_test": ds.x[idx], "y_test": ds.y[idx], "x_calib": x_calib,
            "source": "eventsnn.datasets.load_shipped()", "calib_note": note}
