"""Peer simulators side by side: BrainCog and SpikingJelly conversions of the same networks.

The peers are NOT dependencies of eventsnn (CI stays light). Install them by hand::

    pip install --no-deps braincog==0.2.7.19 spikingjelly==2.0.0
    pip install einops loguru requests    # the small modules their conversion code imports

(``--no-deps`` keeps pip from pulling BrainCog's declared dependencies: timm, torchvision,
torchaudio, pygame, dv, tonic, tensorboard ... none of which the conversion code needs, and a
plain ``torch``/``torchvision`` from PyPI would replace the CPU build of torch.) A peer that is
not installed is skipped with a message naming this command; the others still run.

What runs, for each network (the shipped Fashion-MNIST VGG, the pretrained ResNet20 on
CIFAR-10, and ``models/cifar10_vgg.npz`` when it exists), in one process, one thread each
(``torch.set_num_threads(1)``, ``numba.set_num_threads(1)``):

* the same ANN: the eventsnn Graph, and ``eventsnn.to_torch(graph)`` for the peers (one
  standard torch module per node, so BrainCog's ``named_children`` walk finds every ``nn.ReLU``
  and ``nn.MaxPool2d`` and SpikingJelly's ``torch.fx`` trace sees the same ops);
* the same calibration images (1000 training images, class-balanced, seeded subset
  ``eventsnn.datasets.subset_indices(y, 1000, seed=0)``) and the same N test images (seed 0);
* configurations
  - ``eventsnn`` — ``convert(graph, x_calib, burst=5, pooling="lipool")`` (burst-aware
    percentile 99.9: values > 1 divided by Γ, then the percentile), ``simulate(engine="numba")``;
  - ``eventsnn pct99.95`` / ``eventsnn pct99.9`` — the same with ``norm="percentile"``: BrainCog's
    λ rule without its cap at Γ (see below);
  - ``braincog p=…`` — ``Convertor(dataloader=[one batch of the 1000 images], p, gamma=5,
    lipool=True, soft_mode=True, merge=True, batch_num=1, channelnorm=False)`` with its
    default ``p=0.9995``, the paper's ``p=0.999`` and its example scripts' ``p=0.99``;
  - ``spikingjelly 99.9%`` — ``Converter(RateCodingRecipe(dataloader, mode="99.9%"))``: IF
    neurons (Γ = 1, soft reset), the MaxPool left as a max over each step's (scaled) spikes.
* every configuration is simulated for T steps (default 64) on the same images; accuracy is
  read at every step from the accumulated output. BrainCog's and SpikingJelly's own evaluation
  loops do exactly this: ``out = 0; reset; for t: out += snn(x); pred_t = argmax(out)``
  (``evaluate_snn`` in BrainCog's conversion examples, ``val`` in SpikingJelly's
  ``ann2snn/examples/cnn_mnist.py``); eventsnn's output integrator ``U(t)`` is the same sum.

How λ differs. eventsnn (the authors' published rule, ``paper-notes.md``): values above 1 are
divided by Γ, then the 99.9th percentile (index ``int(N p) - 1`` of the sorted values). BrainCog's
``HookScale`` clips the ReLU output at ``gamma`` (= Γ, in ANN units), then takes the value at the
same index for ``p`` (``sort[int(N p) - 1]``): λ = min(p-percentile, Γ). So BrainCog's λ equals
eventsnn's ``norm="percentile"`` λ wherever that is below Γ (checked and reported per layer);
with λ_BrainCog ≈ the plain percentile, a neuron needs an activation above λ to burst, whereas
the burst-aware λ is about Γ× smaller for the values above 1. SpikingJelly uses
``torch.quantile`` (linear interpolation) of the ReLU output, no Γ.

Two peer-specific workarounds (both recorded in the JSON):

* ``import braincog.base.conversion`` runs ``braincog/base/__init__.py``, which imports
  ``brainarea`` -> ``braincog.model_zoo`` -> ``torchvision`` (PyPI only has CUDA builds of it,
  which do not load with the CPU torch). The conversion code itself needs only
  ``braincog.base.connection`` and ``braincog.base.conversion``. When the normal import fails,
  :func:`load_braincog` registers the package ``braincog.base`` (same directory, same files)
  without running its ``__init__``, then imports ``braincog.base.conversion`` — BrainCog's own,
  unmodified modules.
* SpikingJelly 2.0's step-mode adapter refuses padding modules and ``F.pad`` (ResNet20's
  option-A shortcut pads channels). When it refuses, the error is recorded and each channel-only
  ``ConstantPad3d`` is replaced by ``torch.cat([0 * x[:, :p], x, 0 * x[:, :q]], 1)`` (the same
  function, built from ops it accepts) and the conversion is retried. ``torch.quantile`` accepts
  at most 2**24 values, so SpikingJelly gets the 1000 images in the fewest equal batches that
  fit (ResNet20 1, Fashion-MNIST VGG 2), with ``momentum = 0.5`` for 2 batches so its running
  scale is the mean of the two batch quantiles.

Timing: wall and process CPU time of the whole simulation of the N images at T steps, per image;
the torch peers at the fastest of ``--batches`` (probed on the first images). Ratios are CPU
time per image relative to eventsnn (default configuration), measured in the same run.

Usage::

    python benchmarks/peers.py                       # FMNIST 1000, ResNet20 256 images, T=64
    python benchmarks/peers.py --quick               # 64 / 16 images: a smoke run
    python benchmarks/peers.py --networks resnet20 --n-resnet20 512

Writes ``results/peers.json`` and ``results/peers.md`` (``--out`` to change the folder).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
import time
import traceback
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PIP_BRAINCOG = "pip install --no-deps braincog==0.2.7.19 && pip install einops"
PIP_SPIKINGJELLY = "pip install --no-deps spikingjelly==2.0.0 && pip install loguru requests"
GAMMA = 5
N_CALIB = 1000
REPORT_T = (16, 32, 64)
QUANTILE_MAX = 2 ** 24  # torch.quantile refuses larger inputs
NETWORKS = ("fmnist", "resnet20", "cifar10_vgg")


class PeerMissing(RuntimeError):
    """A peer simulator is not installed (the message names the pip command)."""


# ------------------------------------------------------------------ peers

def load_braincog():
    """``braincog.base.conversion`` (BrainCog's own modules; see the module docstring)."""
    if importlib.util.find_spec("braincog") is None:
        raise PeerMissing(f"BrainCog is not installed; install it with `{PIP_BRAINCOG}`")
    note = "import braincog.base.conversion"
    try:
        mod = importlib.import_module("braincog.base.conversion")
    except ImportError as e:
        missing = getattr(e, "name", None)
        for name in [m for m in sys.modules if m == "braincog.base" or m.startswith("braincog.base.")]:
            del sys.modules[name]
        root = Path(importlib.util.find_spec("braincog").submodule_search_locations[0])
        # braincog/base/__init__.py imports brainarea -> model_zoo -> torchvision; the conversion
        # code needs none of it. Register the package without running that __init__ (same
        # directory, BrainCog's unmodified files), then import the conversion subpackage.
        base = types.ModuleType("braincog.base")
        base.__path__ = [str(root / "base")]
        base.__package__ = "braincog.base"
        sys.modules["braincog.base"] = base
        try:
            mod = importlib.import_module("braincog.base.conversion")
        except ImportError as e2:
            raise PeerMissing(f"BrainCog's conversion module does not import ({e2}); install its small "
                              f"dependencies with `{PIP_BRAINCOG}`") from e2
        note = (f"braincog.base registered without running its __init__ (which needs "
                f"{missing or e}); braincog.base.conversion imported from {root / 'base' / 'conversion'}")
    return mod, note


def load_spikingjelly():
    """``(ann2snn, functional)`` of SpikingJelly's activation_based API."""
    if importlib.util.find_spec("spikingjelly") is None:
        raise PeerMissing(f"SpikingJelly is not installed; install it with `{PIP_SPIKINGJELLY}`")
    try:
        ann2snn = importlib.import_module("spikingjelly.activation_based.ann2snn")
        functional = importlib.import_module("spikingjelly.activation_based.functional")
    except ImportError as e:
        raise PeerMissing(f"SpikingJelly does not import ({e}); install its small dependencies with "
                          f"`{PIP_SPIKINGJELLY}`") from e
    try:  # its loguru logger prints an INFO line per conversion; keep the log readable
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    except ImportError:
        pass
    return ann2snn, functional


def peer_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("braincog", "spikingjelly", "einops", "loguru"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------ data

def network_data(name, n_test, n_calib=N_CALIB, seed=0, cifar=None):
    """``{graph, x_calib, x_test, y_test, source}`` of a benchmark network, or None if absent."""
    from eventsnn import datasets
    from eventsnn.graph import load_graph

    if name == "fmnist":
        path, norm = datasets.default_model_path()
        graph = load_graph(path)
        folder = common.SHARED / "data" / "fashion-mnist"
        if folder.is_dir():
            tr = datasets.load_dataset(folder, "train", normalization=norm, n=n_calib, seed=seed)
            te = datasets.load_dataset(folder, "test", normalization=norm, n=n_test, seed=seed)
            src = f"{folder} (train {n_calib}, test {n_test}; class-balanced subsets, seed {seed})"
        else:  # the shipped sample (500 train, 1000 test images)
            tr = datasets.subset(datasets.load_shipped("train"), min(n_calib, 500), seed)
            te = datasets.subset(datasets.load_shipped("test"), min(n_test, 1000), seed)
            src = "eventsnn.datasets.load_shipped() (the full set is not in ../shared)"
        return {"graph": graph, "x_calib": tr.x, "x_test": te.x, "y_test": te.y, "source": src,
                "model": str(path)}
    if name in ("resnet20", "cifar10_vgg"):
        if name == "cifar10_vgg" and not common.CIFAR10_VGG.is_file():
            return None
        model = (common.MODELS / "resnet20_cifar10.onnx" if name == "resnet20"
                 else common.CIFAR10_VGG)
        graph = common.ann_graph(name)
        path = cifar or common.default_cifar()
        d = common.load_cifar(path, n_test, n_calib, seed, network=name, calib_seed=seed)
        return {"graph": graph, "x_calib": d["x_calib"], "x_test": d["x_test"],
                "y_test": d["y_test"], "model": str(model),
                "source": f"{path} (train {n_calib}, test {n_test}; class-balanced subsets, seed {seed})"}
    raise ValueError(f"unknown network {name!r}; choose from {NETWORKS}")


# ------------------------------------------------------------------ simulation and timing

def report_points(T):
    return [t for t in REPORT_T if t <= T] + ([T] if T not in REPORT_T else [])


def torch_simulate(model, reset, x, y, T, batch):
    """Accumulate ``model(x_batch)`` over T steps per batch; correct predictions at every step."""
    import torch

    correct = np.zeros(T, np.int64)
    w0, c0 = time.perf_counter(), common.cpu_seconds()
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch]))
            yb = torch.from_numpy(np.asarray(y[s:s + batch]))
            reset(model)
            out = None
            for t in range(T):
                step = model(xb)
                out = step if out is None else out + step
                correct[t] += int((out.argmax(1) == yb).sum())
    return correct / len(x), time.perf_counter() - w0, common.cpu_seconds() - c0


def run_torch_peer(model, reset, x, y, T, batches, probe, log):
    """Probe the batch sizes on the first images, then simulate all images at the fastest."""
    probe_ms = {}
    if len(batches) > 1:
        n = min(len(x), probe)
        for b in batches:
            _, wall, cpu = torch_simulate(model, reset, x[:n], y[:n], T, b)
            probe_ms[b] = round(cpu / n * 1e3, 2)
            log(f"      batch {b}: {probe_ms[b]:.1f} ms CPU/img (probe, {n} images)")
        best = min(probe_ms, key=probe_ms.get)
    else:
        best = batches[0]
    acc, wall, cpu = torch_simulate(model, reset, x, y, T, best)
    return {"accuracy_curve": acc.tolist(), "wall_s": wall, "cpu_s": cpu, "batch_size": best,
            "batch_probe_cpu_ms_per_image": probe_ms}


def run_eventsnn(graph, xc, x, y, T, norm, percentile, log):
    from eventsnn import convert, simulate

    w0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = convert(graph, xc, norm=norm, percentile=percentile, burst=GAMMA, pooling="lipool",
                      preset="paper")
    conv_s = time.perf_counter() - w0
    simulate(net, x[:2], 2, engine="numba", progress=False)  # JIT / cache load, not timed
    w0, c0 = time.perf_counter(), common.cpu_seconds()
    res = simulate(net, x, T, engine="numba", progress=False)
    wall, cpu = time.perf_counter() - w0, common.cpu_seconds() - c0
    lam = {p.name: float(p.scale) for p in net.populations if p.kind == "if"}
    return {"accuracy_curve": res.accuracy(y).tolist(), "wall_s": wall, "cpu_s": cpu,
            "batch_size": "auto", "convert_seconds": conv_s, "lambda": lam,
            "synops_per_image": res.total_synops() / len(x),
            "spikes_per_image": res.total_spikes() / len(x)}


def _relu_names(graph):
    return [n.name for n in graph.nodes if n.op == "relu"]


def _bn_merge_safe(graph):
    """BrainCog's mergeConvBN pairs each BatchNorm2d with the last Conv2d sibling before it."""
    last_conv = None
    for n in graph.nodes:
        if n.op == "conv":
            last_conv = n.name
        elif n.op == "batchnorm" and len(graph.shape_of(n.inputs[0])) == 3:
            if n.inputs[0] != last_conv:
                return False
    return True


def run_braincog(bc, graph, xc, x, y, T, p, batches, probe, log):
    import torch

    from eventsnn import to_torch

    model = to_torch(graph)
    inverse = {v: k for k, v in model.names.items()}
    merge = _bn_merge_safe(graph)
    loader = [(torch.from_numpy(xc), torch.zeros(len(xc), dtype=torch.long))]  # one batch of all
    w0 = time.perf_counter()
    conv = bc.Convertor(dataloader=loader, p=p, channelnorm=False, lipool=True, gamma=GAMMA,
                        soft_mode=True, merge=merge, batch_num=1)
    with torch.no_grad():
        snn = conv(model)
    conv_s = time.perf_counter() - w0
    lam = {}
    for key, mod in snn.layers.named_children():
        if isinstance(mod, torch.nn.Sequential) and len(mod) == 4 and type(mod[1]).__name__ == "SNode":
            lam[inverse[key]] = float(mod[3].scale)
    out = run_torch_peer(snn, lambda m: m.reset(), x, y, T, batches, probe, log)
    out.update(convert_seconds=conv_s, **{"lambda": lam}, merge_conv_bn=merge)
    return out


def channel_zero_pad(torch, before, after):
    """A module that zero-pads the channel axis using only ops SpikingJelly's adapter accepts."""

    class ChannelZeroPad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.before, self.after = int(before), int(after)

        def forward(self, x):
            parts = [x[:, :self.before] * 0] if self.before else []
            parts.append(x)
            if self.after:
                parts.append(x[:, :self.after] * 0)
            return torch.cat(parts, 1)

    return ChannelZeroPad()


def _sj_rewrite_pads(torch, model, shapes):
    """Replace channel-only zero ConstantPad3d by :func:`channel_zero_pad`; returns the keys rewritten."""
    done = []
    for key, mod in list(model.layers.named_children()):
        if isinstance(mod, torch.nn.ConstantPad3d) and float(mod.value) == 0.0:
            pl, pr, pt, pb, cb, ca = mod.padding
            if pl == pr == pt == pb == 0 and max(cb, ca) <= shapes[key][0]:
                model.layers[key] = channel_zero_pad(torch, cb, ca)
                done.append(key)
    return done


def run_spikingjelly(sj, graph, xc, x, y, T, batches, probe, log):
    import torch

    from eventsnn import to_torch

    ann2snn, functional = sj
    biggest = max(int(np.prod(graph.node(n).shape)) for n in _relu_names(graph))
    k = max(1, math.ceil(len(xc) * biggest / (QUANTILE_MAX - 1)))
    while len(xc) % k:
        k += 1
    chunks = [torch.from_numpy(c) for c in np.split(xc, k)]
    momentum = 0.5 if k == 2 else 0.1
    notes = {"calibration_batches": k, "momentum": momentum}
    w0 = time.perf_counter()
    model = to_torch(graph)
    try:
        snn = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=chunks, mode="99.9%",
                                                         momentum=momentum)).convert(model)
    except ValueError as e:
        notes["refused"] = f"{type(e).__name__}: {e}"
        log(f"      SpikingJelly refused the network as is ({e}); rewriting channel pads and retrying")
        model = to_torch(graph)
        inputs = {model.names[n.name]: graph.shape_of(n.inputs[0]) for n in graph.nodes}
        notes["rewritten_pads"] = _sj_rewrite_pads(torch, model, inputs)
        snn = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=chunks, mode="99.9%",
                                                         momentum=momentum)).convert(model)
    conv_s = time.perf_counter() - w0
    relus = _relu_names(graph)
    lam = {}
    for i, name in enumerate(relus):
        try:
            lam[name] = float(snn.get_submodule(f"layers.spiking_{i}.scaler1").scale)
        except AttributeError:
            break
    out = run_torch_peer(snn, functional.reset_net, x, y, T, batches, probe, log)
    out.update(convert_seconds=conv_s, **{"lambda": lam}, **notes)
    return out


# ------------------------------------------------------------------ driver

def configurations(bc_ps):
    cfgs = [{"name": "eventsnn", "tool": "eventsnn",
             "settings": "convert(burst=5, pooling='lipool', norm='burst-percentile', percentile=99.9); "
                         "simulate(engine='numba')", "norm": "burst-percentile", "percentile": 99.9},
            {"name": "eventsnn pct99.95", "tool": "eventsnn",
             "settings": "norm='percentile', percentile=99.95 (BrainCog's default λ rule, no cap at Γ)",
             "norm": "percentile", "percentile": 99.95},
            {"name": "eventsnn pct99.9", "tool": "eventsnn",
             "settings": "norm='percentile', percentile=99.9 (BrainCog p=0.999 λ rule, no cap at Γ)",
             "norm": "percentile", "percentile": 99.9}]
    for p in bc_ps:
        cfgs.append({"name": f"braincog p={p:g}", "tool": "braincog", "p": p,
                     "settings": f"Convertor(p={p:g}, gamma=5, lipool=True, soft_mode=True, merge, "
                                 "batch_num=1, channelnorm=False)"})
    cfgs.append({"name": "spikingjelly 99.9%", "tool": "spikingjelly",
                 "settings": "Converter(RateCodingRecipe(mode='99.9%')): IF (Γ=1), soft reset, "
                             "MaxPool on spikes"})
    return cfgs


def run_network(name, n_test, T, batches, probe, bc_ps, peers, cifar, log):
    data = network_data(name, n_test, cifar=cifar)
    if data is None:
        log(f"  {name}: model not found, skipped")
        return None
    graph, xc, x, y = data["graph"], data["x_calib"], data["x_test"], data["y_test"]
    ann = graph.forward(x).argmax(1)
    ann_acc = float((ann == y).mean())
    log(f"== {name}: {len(x)} test images, {len(xc)} calibration images, ANN accuracy {ann_acc:.2%}")
    res = {"network": name, "model": data["model"], "data": data["source"], "n_test": len(x),
           "n_calib": len(xc), "T": T, "ann_accuracy": ann_acc, "configs": []}
    for cfg in configurations(bc_ps):
        log(f"  {cfg['name']}: {cfg['settings']}")
        row = {k: cfg[k] for k in ("name", "tool", "settings")}
        try:
            if cfg["tool"] == "eventsnn":
                out = run_eventsnn(graph, xc, x, y, T, cfg["norm"], cfg["percentile"], log)
            elif cfg["tool"] == "braincog":
                bc = peers["braincog"]
                if isinstance(bc, Exception):
                    raise bc
                out = run_braincog(bc[0], graph, xc, x, y, T, cfg["p"], batches, probe, log)
            else:
                sj = peers["spikingjelly"]
                if isinstance(sj, Exception):
                    raise sj
                out = run_spikingjelly(sj, graph, xc, x, y, T, batches, probe, log)
        except PeerMissing as e:
            row["error"] = str(e)
            log(f"    skipped: {e}")
            res["configs"].append(row)
            continue
        except Exception as e:  # a peer that crashes on this network: record it, go on
            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc(limit=4)
            log(f"    FAILED: {row['error']}")
            res["configs"].append(row)
            continue
        row.update(out)
        curve = row["accuracy_curve"]
        row["accuracy"] = {str(t): curve[t - 1] for t in report_points(T)}
        row["wall_ms_per_image"] = row["wall_s"] / len(x) * 1e3
        row["cpu_ms_per_image"] = row["cpu_s"] / len(x) * 1e3
        log("    accuracy " + ", ".join(f"T={t}: {a:.2%}" for t, a in row["accuracy"].items())
            + f"; {row['cpu_ms_per_image']:.1f} ms CPU/img, {row['wall_ms_per_image']:.1f} ms wall/img"
            + f" (batch {row['batch_size']})")
        res["configs"].append(row)
    ref = next((c for c in res["configs"] if c["name"] == "eventsnn" and "cpu_s" in c), None)
    for c in res["configs"]:
        if ref and "cpu_s" in c:
            c["cpu_ratio_vs_eventsnn"] = c["cpu_s"] / ref["cpu_s"]
            c["wall_ratio_vs_eventsnn"] = c["wall_s"] / ref["wall_s"]
    res["lambda"] = lambda_table(graph, res["configs"])
    return res


def lambda_table(graph, configs):
    """λ per ReLU layer for every configuration, and whether BrainCog's rule = eventsnn's percentile."""
    rows = []
    lam = {c["name"]: c.get("lambda", {}) for c in configs}
    for relu in _relu_names(graph):
        row = {"layer": relu}
        for c in configs:
            v = lam[c["name"]].get(relu)
            if v is not None:
                row[c["name"]] = v
        for p, pct in ((0.9995, "eventsnn pct99.95"), (0.999, "eventsnn pct99.9")):
            b = row.get(f"braincog p={p:g}")
            e = row.get(pct)
            if b is not None and e is not None:
                row[f"braincog p={p:g} == min({pct}, Γ)"] = bool(abs(b - min(e, GAMMA)) <= 1e-5 * max(b, 1))
        rows.append(row)
    return rows


def run(networks=("fmnist", "resnet20", "cifar10_vgg"), n=None, T=64, batches=(16, 64), probe=64,
        bc_ps=(0.9995, 0.999, 0.99), cifar=None, out=common.RESULTS, log=print):
    import torch

    common.set_threads(1)
    n = n or {}
    peers = {}
    for key, loader in (("braincog", load_braincog), ("spikingjelly", load_spikingjelly)):
        try:
            peers[key] = loader()
        except PeerMissing as e:
            peers[key] = e
            log(f"peers: {e} (skipping its configurations; the others still run)")
    info = common.machine_info(threads=1)
    info["torch_threads"] = torch.get_num_threads()
    res = {"machine": info, "peer_versions": peer_versions(), "T": T, "gamma": GAMMA,
           "n_calib": N_CALIB, "batches": list(batches),
           "braincog_import": (peers["braincog"][1] if not isinstance(peers["braincog"], Exception)
                               else str(peers["braincog"])),
           "networks": []}
    t0 = time.perf_counter()
    with common.LoadMonitor() as mon:
        for name in networks:
            r = run_network(name, n.get(name, 256), T, batches, probe, bc_ps, peers, cifar, log)
            mon.sample()
            if r is not None:
                res["networks"].append(r)
    res["load_average_during_run"] = mon.summary()
    res["seconds"] = time.perf_counter() - t0
    out = Path(out)
    common.write_json(out / "peers.json", res)
    (out / "peers.md").write_text(markdown(res))
    log(f"peers: {res['seconds']:.0f} s; wrote {out / 'peers.json'} and {out / 'peers.md'}")
    return res


def _pct(v):
    return f"{v:.2%}" if v is not None else "—"


def markdown(res):
    lines = ["# Peer simulators: BrainCog and SpikingJelly on the same networks", "",
             "Regenerate with `python benchmarks/peers.py` (see its docstring). The peers are not "
             "eventsnn dependencies; install them by hand:", "",
             "```", "pip install --no-deps braincog==0.2.7.19 spikingjelly==2.0.0",
             "pip install einops loguru requests", "```", "",
             common.machine_md(res["machine"]), "",
             f"Peer versions: {', '.join(f'{k} {v}' for k, v in res['peer_versions'].items())}. "
             f"BrainCog import: {res['braincog_import']}.", "",
             f"One thread each (torch and numba). Every configuration converts the same ANN "
             f"(eventsnn Graph; `eventsnn.to_torch(graph)` for the peers), calibrates on the same "
             f"{res['n_calib']} training images (class-balanced, seed 0; BrainCog gets them as one "
             f"batch) and simulates the same test images for T={res['T']} steps with the image as a "
             "constant analog input (direct coding). Accuracy at step t is that of argmax of the "
             "output accumulated over steps 1..t — the way BrainCog's and SpikingJelly's own "
             "evaluation loops read it (`out += snn(x)` after a reset) and eventsnn's output "
             "integrator U(t). CPU ms/img: process CPU time of the whole simulation divided by "
             "the number of images; torch peers at the fastest of the probed batch sizes "
             f"{res['batches']}; ratio = CPU time relative to eventsnn (default) in the same run. "
             f"Load average during the run: {res.get('load_average_during_run')} (2-core machine "
             "shared with other jobs).", ""]
    for net in res["networks"]:
        Ts = report_points(net["T"])
        lines += [f"## {net['network']}", "",
                  f"Model `{Path(net['model']).name}`; data {net['data']}. ANN accuracy on the "
                  f"same {net['n_test']} images: **{net['ann_accuracy']:.2%}**.", ""]
        rows = []
        for c in net["configs"]:
            if "error" in c:
                rows.append([c["name"]] + ["—"] * len(Ts) + ["—", "—", "—", "—",
                                                              c["error"].replace("|", "/")[:160]])
                continue
            acc, probe = c["accuracy"], c.get("batch_probe_cpu_ms_per_image")
            gap = acc[str(Ts[-1])] - net["ann_accuracy"]
            rows.append([c["name"]] + [_pct(acc[str(t)]) for t in Ts]
                        + [f"{gap * 100:+.2f}", f"{c['cpu_ms_per_image']:.1f}",
                           f"{c['wall_ms_per_image']:.1f}",
                           f"x{c['cpu_ratio_vs_eventsnn']:.2f}" if "cpu_ratio_vs_eventsnn" in c else "—",
                           f"batch {c['batch_size']}" + (f"; probe {probe}" if probe else "")])
        done = [c for c in net["configs"] if "accuracy" in c]
        if done:
            T = str(Ts[-1])
            gaps = {}
            for tool in ("eventsnn", "braincog", "spikingjelly"):
                cs = [c for c in done if c["tool"] == tool]
                if cs:
                    best = max(cs, key=lambda c: c["accuracy"][T])
                    gaps[tool] = f"{best['name']} {(best['accuracy'][T] - net['ann_accuracy']) * 100:+.2f}"
            lines += ["Best configuration of each tool, accuracy minus ANN accuracy at "
                      f"T={T} (points): " + "; ".join(gaps.values()) + ".", ""]
        lines += [common.md_table(["configuration"] + [f"T={t}" for t in Ts]
                                  + [f"gap to ANN at T={Ts[-1]} (points)", "CPU ms/img", "wall ms/img",
                                     "CPU vs eventsnn", "notes"], rows), ""]
        for c in net["configs"]:
            extra = [f"{k}: {c[k]}" for k in ("calibration_batches", "momentum", "rewritten_pads",
                                             "merge_conv_bn") if k in c]
            if c.get("refused"):
                extra.append(f"refused as is: `{c['refused'][:300]}`")
            if extra:
                lines.append(f"- {c['name']}: " + "; ".join(extra))
        # λ table
        names = [c["name"] for c in net["configs"] if c.get("lambda")]
        lam_rows = [[r["layer"]] + [f"{r[n]:.4g}" if n in r else "—" for n in names] for r in net["lambda"]]
        lines += ["", "λ per ReLU layer (ANN units; rate 1 spike/step ≈ activation λ):", "",
                  common.md_table(["layer"] + names, lam_rows), ""]
        for p, pct in ((0.9995, "eventsnn pct99.95"), (0.999, "eventsnn pct99.9")):
            key = f"braincog p={p:g} == min({pct}, Γ)"
            flags = [r[key] for r in net["lambda"] if key in r]
            if flags:
                capped = [r["layer"] for r in net["lambda"] if r.get(pct, 0) > GAMMA]
                lines.append(f"- BrainCog p={p:g} λ equals min(eventsnn `norm='percentile', "
                             f"percentile={100 * p:g}` λ, Γ={GAMMA}) on {sum(flags)}/{len(flags)} layers"
                             + (f"; capped at Γ: {', '.join(capped)}" if capped else "; none capped")
                             + ("." if all(flags) else
                                ". Elsewhere they differ slightly because BrainCog's calibration pass "
                                "feeds the clipped activations min(ReLU, Γ) forward, so layers after "
                                "one with values above Γ see different inputs."))
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", default=",".join(NETWORKS),
                    help=f"comma-separated subset of {','.join(NETWORKS)} (cifar10_vgg only if "
                         "models/cifar10_vgg.npz exists)")
    ap.add_argument("--n-fmnist", type=int, default=1000)
    ap.add_argument("--n-resnet20", type=int, default=256)
    ap.add_argument("--n-cifar10-vgg", type=int, default=256)
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--batches", default="16,64", help="batch sizes to probe for the torch peers")
    ap.add_argument("--probe", type=int, default=64, help="images per batch-size probe")
    ap.add_argument("--braincog-p", default="0.9995,0.999,0.99")
    ap.add_argument("--cifar", default=None, help="CIFAR-10 npz or JPEG tarball")
    ap.add_argument("--quick", action="store_true", help="64 / 16 / 16 images, T=32: a smoke run")
    ap.add_argument("--out", default=None, help="results folder (default results/, --quick: results/quick/)")
    ap.add_argument("--markdown", action="store_true",
                    help="only rebuild peers.md from the peers.json already in the folder")
    args = ap.parse_args(argv)
    if args.markdown:
        folder = Path(args.out) if args.out else common.RESULTS
        (folder / "peers.md").write_text(markdown(json.loads((folder / "peers.json").read_text())))
        print((folder / "peers.md").read_text())
        return
    n = {"fmnist": args.n_fmnist, "resnet20": args.n_resnet20, "cifar10_vgg": args.n_cifar10_vgg}
    T = args.T
    if args.quick:
        n, T = {"fmnist": 64, "resnet20": 16, "cifar10_vgg": 16}, min(T, 32)
    out = Path(args.out) if args.out else common.RESULTS / ("quick" if args.quick else "")
    run([s.strip() for s in args.networks.split(",") if s.strip()], n, T,
        tuple(int(b) for b in args.batches.split(",")), args.probe,
        tuple(float(p) for p in args.braincog_p.split(",")), args.cifar, out)


if __name__ == "__main__":
    main()
