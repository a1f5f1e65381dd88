#!/usr/bin/env python3
"""Resumable, chunked conversion + simulation runs on a full test set (paper Tables 1-2, Fig. 5).

For a model (registry name, ONNX file or native .npz) and a list of configurations
(``configs.CONFIGS``: the rows of the paper's Table 1), this script

1. measures the ANN accuracy on the whole test set once (``results/<model>/ann.json``);
2. converts the ANN with ``eventsnn.convert``, calibrated on a seeded, class-balanced subset
   of the TRAIN split (default 1000 images; never ``[:n]``: the CIFAR-10 arrays are sorted
   by class), caching the network in ``experiments/.cache``;
3. simulates the test set with the numba engine to ``T`` steps in chunks of images taken in a
   seeded random order of the test set (so any set of finished chunks is an unbiased random
   subset), writing one ``results/<model>/<config>/chunk_XXXX.json`` per chunk (correct
   predictions per step, SynOps / spikes / events per step, burst histogram, wall time,
   machine, commit) and skipping chunks that already exist with at least ``T`` steps;
4. merges the chunks into ``results/<model>/<config>.json`` (accuracy per step, the ANN
   accuracy on the same images, firing rates per layer, energy via ``eventsnn.energy``).

Examples::

    # Fashion-MNIST VGG, every Table 1 row, full test set, T = 256
    nice -n 5 .venv/bin/python experiments/run_experiment.py --model fmnist-vgg --T 256
    # ResNet20, our method to T = 256, at most 5 chunks of 100 images, stop at 20:05 UTC
    nice -n 5 .venv/bin/python experiments/run_experiment.py --model resnet20 \\
        --configs burst5-lipool --T 256 --max-chunks 5 --stop-at 20:05
    # ResNet20: Table 2 row to T = 256, Table 1 rows to T = 64, chunk by chunk
    nice -n 5 .venv/bin/python experiments/run_experiment.py --model resnet20 --T 64 \\
        --configs burst5-lipool:256,maxnorm,pnorm,burst2-lipool --stop-at 20:05
    # re-merge only
    .venv/bin/python experiments/run_experiment.py --model resnet20 --merge-only

On a network without MaxPool (the ResNets) the pooling rows are the same network as the
p-Norm row; they are not simulated, and ``<config>.json`` records ``same_as``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import configs  # noqa: E402  (puts benchmarks/ on sys.path for the shared helpers)
from common import git_revision, machine_info, now, write_json  # noqa: E402
from configs import CACHE, CONFIGS, RESULTS, convert_kwargs  # noqa: E402

REPORT_T = (16, 32, 64, 128, 256)


# ------------------------------------------------------------------------ setup

class Setup:
    """Model, data and settings of one run (everything chunks need)."""

    def __init__(self, args):
        import eventsnn  # noqa: F401  (fail early if the venv is wrong)

        self.name, self.path, entry = configs.resolve_model(args.model)
        self.graph = configs.load_model(self.path)
        self.norm = configs.model_normalization(self.path, entry)
        dataset = entry.get("dataset")
        self.data = args.data or (configs.default_data(dataset) if dataset else None)
        if self.data is None:
            raise SystemExit(f"model {self.path} is not in the registry: pass --data")
        self.chunk = int(args.chunk_size or entry.get("chunk", 100))
        self.seed = int(args.seed)
        self.calib_n = int(args.calib_n)
        self.out = RESULTS / (args.tag or self.name)
        self.args = args
        self._test = self._train = None

    def test(self):
        if self._test is None:
            self._test = configs.load_split(self.data, "test", self.norm)
            if self._test.x.shape[1:] != tuple(self.graph.input_shape):
                raise SystemExit(f"test images {self._test.x.shape[1:]} do not match the model "
                                 f"input {self.graph.input_shape}")
        return self._test

    def calib(self, n=None):
        """(x, y, train indices) of the seeded class-balanced calibration subset of size n."""
        from eventsnn.datasets import subset_indices

        if self._train is None:
            self._train = configs.load_split(self.data, "train", self.norm)
        tr = self._train
        idx = subset_indices(tr.y, int(n or self.calib_n), self.seed)
        return tr.x[idx], tr.y[idx], idx

    def order(self):
        return configs.test_order(len(self.test()), self.seed)

    def n_chunks(self):
        n = len(self.test()) if self.args.n_test is None else min(self.args.n_test, len(self.test()))
        return -(-n // self.chunk), n


# ------------------------------------------------------------------------ ANN accuracy

def ann_accuracy(setup):
    """ANN accuracy on the full test set, cached in results/<model>/ann.json."""
    path = setup.out / "ann.json"
    if path.is_file():
        info = json.loads(path.read_text())
        if info.get("n_images") == len(setup.test()):
            return info
    ds = setup.test()
    t0 = time.perf_counter()
    correct = np.zeros(len(ds), bool)
    for a in range(0, len(ds), 250):
        out = setup.graph.forward(ds.x[a:a + 250])
        correct[a:a + 250] = out.argmax(1) == ds.y[a:a + 250]
    info = {"model": setup.name, "path": str(setup.path), "data": str(setup.data),
            "n_images": len(ds), "accuracy": float(correct.mean()),
            "correct": np.flatnonzero(correct).tolist(),  # test indices the ANN gets right
            "macs_per_image": int(sum(setup.graph.macs().values())),
            "wall_s": time.perf_counter() - t0, "machine": machine_info(), "date": now()}
    write_json(path, info)
    print(f"[{setup.name}] ANN accuracy {info['accuracy']:.4f} on {len(ds)} test images", flush=True)
    return info


# ------------------------------------------------------------------------ networks

def calib_n(setup, config):
    """Calibration set size of a configuration (its own ``calib_n``, else --calib-n)."""
    return int(CONFIGS[config].get("calib_n", setup.calib_n))


def cache_key(setup, config):
    cfg = convert_kwargs(CONFIGS[config])
    src = f"{setup.path.resolve()}:{setup.path.stat().st_mtime}:{calib_n(setup, config)}:{setup.seed}:{sorted(cfg.items())}"
    return hashlib.sha256(src.encode()).hexdigest()[:10]


def network(setup, config, nets):
    """Converted network of ``config`` (memory, then disk cache, then eventsnn.convert)."""
    import eventsnn

    if config in nets:
        return nets[config]
    cpath = CACHE / setup.name / f"{config}-{cache_key(setup, config)}.npz"
    meta_path = setup.out / config / "meta.json"
    if cpath.is_file() and meta_path.is_file():
        net = eventsnn.load_network(str(cpath))
    else:
        xc, yc, idx = setup.calib(calib_n(setup, config))
        t0 = time.perf_counter()
        net = eventsnn.convert(setup.graph, xc, **convert_kwargs(CONFIGS[config]))
        conv_s = time.perf_counter() - t0
        cpath.parent.mkdir(parents=True, exist_ok=True)
        net.save(str(cpath))
        pops = [{"name": p.name, "kind": p.kind, "size": int(np.prod(p.shape)),
                 "shape": list(p.shape), "burst": int(p.burst), "ann_node": p.ann_node,
                 "scale": None if p.scale is None else np.asarray(p.scale, np.float64).tolist()}
                for p in net.populations]
        conns = [{"name": c.name, "kind": c.kind, "src": c.src, "dst": c.dst} for c in net.connections]
        write_json(meta_path, {
            "model": setup.name, "config": config, "settings": CONFIGS[config],
            "convert_kwargs": convert_kwargs(CONFIGS[config]),
            "calibration": {"split": "train", "n": calib_n(setup, config), "seed": setup.seed,
                            "class_balanced": True,
                            "indices_sha256": hashlib.sha256(np.asarray(idx, np.int64).tobytes()).hexdigest()},
            "convert_s": conv_s, "populations": pops, "connections": conns,
            "net_meta": {k: v for k, v in net.meta.items() if k != "scales"},
            "commit": git_revision(), "date": now(), "cache": str(cpath)})
        print(f"[{setup.name}/{config}] converted in {conv_s:.1f} s", flush=True)
    nets[config] = net
    return net


# ------------------------------------------------------------------------ chunks

def chunk_path(setup, config, k):
    return setup.out / config / f"chunk_{k:04d}.json"


def chunk_done(setup, config, k, T):
    p = chunk_path(setup, config, k)
    if not p.is_file():
        return False
    try:
        c = json.loads(p.read_text())
    except json.JSONDecodeError:
        return False
    return c.get("T", 0) >= T and c.get("chunk_size") == setup.chunk and c.get("seed") == setup.seed


def run_chunk(setup, config, k, T, nets, batch_size):
    import eventsnn

    net = network(setup, config, nets)
    ds = setup.test()
    n_chunks, n_use = setup.n_chunks()
    idx = setup.order()[:n_use][k * setup.chunk:(k + 1) * setup.chunk]
    x, y = ds.x[idx], ds.y[idx]
    m0 = machine_info()
    t0 = time.perf_counter()
    res = eventsnn.simulate(net, x, T, engine="numba", batch_size=batch_size, progress=False)
    wall = time.perf_counter() - t0
    pred = res.predictions()
    correct = (pred == y[None, :]).sum(axis=1)
    ann_pred = setup.graph.forward(x).argmax(1)
    rec = {
        "model": setup.name, "config": config, "chunk": k, "chunk_size": setup.chunk,
        "seed": setup.seed, "T": T, "n_images": len(idx), "indices": idx.tolist(),
        "correct": correct.tolist(), "ann_correct": int((ann_pred == y).sum()),
        "agree_ann_final": int((pred[-1] == ann_pred).sum()),
        "synops": {k2: np.asarray(v).tolist() for k2, v in res.synops.items()},
        "spikes": {k2: np.asarray(v).tolist() for k2, v in res.spikes.items()},
        "events": {k2: np.asarray(v).tolist() for k2, v in res.events.items()},
        "burst_hist": {k2: np.asarray(v).tolist() for k2, v in res.burst_hist.items()},
        "input_macs": int(res.input_macs),
        "wall_s": wall, "ms_per_image": 1000 * wall / len(idx),
        "machine": m0, "loadavg_end": list(__import__("os").getloadavg()),
        "commit": git_revision(), "date": now(),
    }
    write_json(chunk_path(setup, config, k), rec, indent=None)
    acc = correct / len(idx)
    show = {t: round(float(acc[t - 1]), 3) for t in REPORT_T if t <= T}
    print(f"[{setup.name}/{config}] chunk {k}/{n_chunks} ({len(idx)} img) {wall:.1f} s "
          f"({rec['ms_per_image']:.0f} ms/img, load {m0['load_average'][0]:.1f}) acc {show} "
          f"ANN {rec['ann_correct'] / len(idx):.3f}", flush=True)
    return rec


# ------------------------------------------------------------------------ merge

def merge(setup, config, ann=None):
    """Aggregate the chunk files of one configuration into results/<model>/<config>.json."""
    d = setup.out / config
    files = sorted(d.glob("chunk_*.json")) if d.is_dir() else []
    chunks = [json.loads(f.read_text()) for f in files]
    chunks = [c for c in chunks if c.get("chunk_size") == setup.chunk and c.get("seed") == setup.seed]
    if not chunks:
        return None
    T = min(c["T"] for c in chunks)
    n = sum(c["n_images"] for c in chunks)
    correct = np.sum([np.asarray(c["correct"][:T]) for c in chunks], axis=0)
    keys = lambda f: sorted(set().union(*(c[f].keys() for c in chunks)))  # noqa: E731
    agg = {f: {k: np.sum([np.asarray(c[f].get(k, [0] * T)[:T], np.int64) for c in chunks], axis=0)
               for k in keys(f)} for f in ("synops", "spikes", "events")}
    burst_hist = {k: np.sum([np.asarray(c["burst_hist"][k], np.int64) for c in chunks
                             if k in c["burst_hist"]], axis=0) for k in keys("burst_hist")}
    input_macs = int(sum(c["input_macs"] for c in chunks))
    meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {}
    sizes = {p["name"]: p["size"] for p in meta.get("populations", [])}
    kinds = {p["name"]: p["kind"] for p in meta.get("populations", [])}
    ts = [t for t in REPORT_T if t <= T] + ([T] if T not in REPORT_T else [])
    rates = {}
    for pop in sizes:  # network order
        if pop in agg["spikes"]:
            s = agg["spikes"][pop]
            rates[pop] = {str(t): float(s[:t].sum()) / (sizes[pop] * n * t) for t in ts}
    spiking = [p for p in rates if kinds.get(p) == "if"]
    tot_n = sum(sizes[p] for p in spiking)
    mean_rate = {str(t): (sum(agg["spikes"][p][:t].sum() for p in spiking) / (tot_n * n * t)
                          if tot_n else None) for t in ts}
    energy = {}
    try:
        import eventsnn

        net = network(setup, config, {}) if (d / "meta.json").is_file() else None
        if net is not None:
            view = SimpleNamespace(synops=agg["synops"], input_macs=input_macs, n_images=n, T=T)
            for t in ts:
                e = eventsnn.estimate_energy(setup.graph, net, view, upto=t)
                energy[str(t)] = {"ratio": e["total"]["ratio"],
                                  "snn_pJ": e["total"]["snn_energy_pJ"],
                                  "ann_pJ": e["total"]["ann_energy_pJ"],
                                  "synops_per_image": e["total"]["snn_synops"],
                                  "input_macs_per_image": e["total"]["snn_input_macs"],
                                  "layers": [{"name": L["name"], "ratio": L["ratio"],
                                              "snn_synops": L["snn_synops"], "ann_macs": L["ann_macs"]}
                                             for L in e["layers"]]}
    except Exception as exc:  # noqa: BLE001 - report, keep the accuracy results
        energy = {"error": f"{type(exc).__name__}: {exc}"}
    n_chunks, n_use = setup.n_chunks()
    out = {
        "model": setup.name, "config": config, "label": CONFIGS[config]["label"],
        "settings": CONFIGS[config], "T": T, "n_images": n, "n_test": len(setup.test()),
        "n_requested": n_use, "complete": n == len(setup.test()), "chunks": sorted(c["chunk"] for c in chunks),
        "n_chunks_total": n_chunks, "chunk_size": setup.chunk,
        "accuracy": (correct / n).tolist(),
        "stderr_final": float(np.sqrt(correct[-1] / n * (1 - correct[-1] / n) / n)),
        "ann_accuracy_same_images": sum(c["ann_correct"] for c in chunks) / n,
        "ann_accuracy_full": None if ann is None else ann["accuracy"],
        "agree_ann_final": sum(c["agree_ann_final"] for c in chunks) / n,
        "synops_per_image_per_step": (sum(agg["synops"].values()) / n).tolist() if agg["synops"] else [],
        "spikes_per_image_per_step": {k: (v / n).tolist() for k, v in agg["spikes"].items()},
        "burst_hist": {k: v.tolist() for k, v in burst_hist.items()},
        "input_macs_per_image": input_macs / n,
        "firing_rate": rates, "mean_if_firing_rate": mean_rate, "energy": energy,
        "scales": {p["name"]: p["scale"] for p in meta.get("populations", []) if p["kind"] == "if"},
        "wall_s": sum(c["wall_s"] for c in chunks),
        "ms_per_image": 1000 * sum(c["wall_s"] for c in chunks) / n,
        "machines": sorted({_machine_label(c["machine"]) for c in chunks}),
        "commits": sorted({str(c.get("commit")) for c in chunks}),
        "date": now(),
    }
    write_json(setup.out / f"{config}.json", out)
    return out


def _machine_label(m):
    """``"CPU (n cores)"`` of a chunk's machine record (``cores``: chunks written before the
    record came from ``common.machine_info``)."""
    return f"{m['cpu']} ({m.get('logical_cpus', m.get('cores'))} cores)"


def write_same_as(setup, config, base):
    write_json(setup.out / f"{config}.json",
               {"model": setup.name, "config": config, "label": CONFIGS[config]["label"],
                "same_as": base, "reason": "the network has no MaxPool, so the pooling option "
                "has no effect: this row is the same network as " + base, "date": now()})


# ------------------------------------------------------------------------ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True, help="registry name (resnet20, resnet56, fmnist-vgg, "
                   "models/*.npz stems) or a path to an .onnx / native .npz file")
    p.add_argument("--data", help="test/train data: CIFAR-10 jpeg .tar.gz, .npz (x_train/y_train/"
                   "x_test/y_test) or an IDX folder (default: the model's data set in ../shared/data)")
    p.add_argument("--configs", default=",".join(configs.TABLE1_ORDER),
                   help=f"comma-separated, from {list(CONFIGS)} (default: all); NAME:T "
                        "overrides --T for one configuration, e.g. burst5-lipool:256")
    p.add_argument("--T", type=int, default=64, help="simulated steps (default 64)")
    p.add_argument("--calib-n", type=int, default=1000, help="calibration images from TRAIN (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of calibration subset and test order")
    p.add_argument("--chunk-size", type=int, help="images per chunk (default: per model, 100 for CIFAR)")
    p.add_argument("--n-test", type=int, help="use only the first N images of the seeded test order")
    p.add_argument("--max-chunks", type=int, help="simulate at most this many new chunks in this call")
    p.add_argument("--chunks", help="chunk indices to run, e.g. 0-9 or 3,5 (default: all, in order)")
    p.add_argument("--stop-at", help="HH:MM (UTC): start no new chunk after this time")
    p.add_argument("--no-interleave", action="store_true",
                   help="finish one configuration before the next (default: chunk k of every "
                        "configuration, then chunk k+1, so partial runs cover the same images)")
    p.add_argument("--batch-size", type=int, help="numba engine batch size (default: engine's)")
    p.add_argument("--tag", help="results folder name (default: the model name)")
    p.add_argument("--merge-only", action="store_true", help="only merge existing chunks")
    return p.parse_args(argv)


def _parse_chunks(spec, n):
    if not spec:
        return list(range(n))
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        else:
            out.append(int(part))
    return [k for k in out if 0 <= k < n]


def _deadline(stop_at):
    if not stop_at:
        return None
    h, m = (int(v) for v in stop_at.split(":"))
    now_ = dt.datetime.now(dt.timezone.utc)
    return now_.replace(hour=h, minute=m, second=0, microsecond=0)


def main(argv=None):
    args = parse_args(argv)
    steps = {}
    for item in (c.strip() for c in args.configs.split(",") if c.strip()):
        name, _, t = item.partition(":")
        steps[name] = int(t) if t else args.T
    names = list(steps)
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        raise SystemExit(f"unknown configurations {bad}; choose from {list(CONFIGS)}")
    setup = Setup(args)
    ann = ann_accuracy(setup)
    active = []
    for c in names:
        base = configs.pooling_collapse(setup.graph, c)
        if base is not None:
            write_same_as(setup, c, base)
            print(f"[{setup.name}] {c}: no MaxPool in the network -> same network as {base}; "
                  "not simulated", flush=True)
            if base not in names and base not in active:
                active.append(base)
                steps[base] = steps[c]
        elif c not in active:
            active.append(c)
    n_chunks, _ = setup.n_chunks()
    ks = _parse_chunks(args.chunks, n_chunks)
    jobs = ([(k, c) for k in ks for c in active] if not args.no_interleave
            else [(k, c) for c in active for k in ks])
    deadline = _deadline(args.stop_at)
    nets, done = {}, 0
    if not args.merge_only:
        for k, c in jobs:
            if chunk_done(setup, c, k, steps[c]):
                continue
            if args.max_chunks is not None and done >= args.max_chunks:
                print(f"--max-chunks {args.max_chunks} reached", flush=True)
                break
            if deadline is not None and dt.datetime.now(dt.timezone.utc) >= deadline:
                print(f"--stop-at {args.stop_at} reached", flush=True)
                break
            run_chunk(setup, c, k, steps[c], nets, args.batch_size)
            done += 1
            merge(setup, c, ann)
    stopped = (args.max_chunks is not None and done >= args.max_chunks)
    for c in active:
        m = merge(setup, c, ann)
        if m:
            acc = m["accuracy"]
            print(f"[{setup.name}/{c}] {m['n_images']}/{m['n_test']} images, T={m['T']}: "
                  + ", ".join(f"T={t}: {acc[t - 1]:.4f}" for t in REPORT_T if t <= m["T"])
                  + f" (ANN same images {m['ann_accuracy_same_images']:.4f})", flush=True)
    if not args.merge_only and not stopped:
        # nothing left, or the --stop-at deadline: tell a driver loop to stop (exit code 10)
        return 10
    return 0


if __name__ == "__main__":
    sys.exit(main())
