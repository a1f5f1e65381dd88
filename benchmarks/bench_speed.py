"""Per-core speed of the event engine against two dense baselines, side by side, per conversion.

For each network and each conversion setting (``convert()`` defaults, and the paper's method
``preset="paper"``), on the same images, in interleaved rounds
(so that a change of machine load hits all three alike; the best round counts):

* **event**: ``eventsnn.simulate`` (numba engine), CPU time per image;
* **dense twin**: the clock-driven torch simulation of the same SNN (``dense_torch.py``), batch
  32, CPU time per image;
* **dense bound**: ``T`` times one forward pass of the BatchNorm-folded ANN in torch at batch 32
  (the least work any clock-driven simulation of the network can do), CPU time per image.

With ``--threads 1`` (default) the CPU times are per-core costs; ``--threads 2`` also times the
event engine and the dense twin with 2 threads (wall clock). Each setting also gets the
per-connection breakdown of :mod:`profile_engine` (G synaptic updates/s per layer, against the
in-cache AXPY rate of :mod:`bench_kernels` measured in the same run) and the peak RSS.

Usage: ``python benchmarks/bench_speed.py [--networks resnet20] [--T 32] [--images 32]
[--threads 1 2] [--settings defaults paper]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SETTINGS = ("defaults", "paper")
BATCH = 32


def converted(name, data, setting, log=print):
    """The network converted with ``convert()``'s defaults (``"defaults"``: percentile λ,
    V(0) = θ/2, bias calibration; converted afresh, so it follows the current defaults) or
    with the paper's method (``"paper"``, Γ = 5, LIPooling; cached in ``benchmarks/.cache``)."""
    from eventsnn.convert import convert

    net, graph, _ = common.get_network(name, data["x_calib"], log=log)
    if setting == "defaults":
        log(f"  converting {name} with convert() defaults ...")
        net = convert(graph, data["x_calib"])
    return net, graph


def _cpu(fn):
    c0 = common.cpu_seconds()
    fn()
    return common.cpu_seconds() - c0


def _wall(fn):
    w0 = time.perf_counter()
    fn()
    return time.perf_counter() - w0


def time_setting(net, graph, x, T, repeat, threads):
    """Interleaved best-of-``repeat`` times per image of the engine and both dense baselines."""
    import torch
    from dense_torch import DenseTorchSNN

    from eventsnn import simulate
    from eventsnn.convert import fold_batchnorm
    from eventsnn import to_torch

    n = len(x)
    model = to_torch(fold_batchnorm(graph)).eval()
    twin = DenseTorchSNN(net, channels_last=True)
    xt = torch.from_numpy(np.ascontiguousarray(x[np.arange(BATCH) % n]))

    def event():
        simulate(net, x, T, progress=False)

    def dense_twin():
        for s in range(0, n, BATCH):
            twin.run(x[s:s + BATCH], T)

    def bound():
        with torch.no_grad():
            model(xt)

    out = {}
    for th in threads:
        common.set_threads(th)
        event(), dense_twin(), bound()  # warm-up: JIT, oneDNN primitives, program cache
        clock = _cpu if th == 1 else _wall
        best = {"event": np.inf, "dense_twin": np.inf, "dense_bound": np.inf}
        for _ in range(repeat):
            best["event"] = min(best["event"], clock(event) / n)
            best["dense_twin"] = min(best["dense_twin"], clock(dense_twin) / n)
            best["dense_bound"] = min(best["dense_bound"], T * clock(bound) / len(xt))
        out[f"{th}_thread{'s' if th > 1 else ''}"] = {
            "clock": "cpu" if th == 1 else "wall", "seconds_per_image": best,
            "ratio_vs_dense_twin": best["dense_twin"] / best["event"],
            "ratio_vs_dense_bound": best["dense_bound"] / best["event"]}
    common.set_threads(1)
    return out


def run(networks=("resnet20",), T=32, images=32, repeat=3, threads=(1,), out=None, log=print,
        settings=SETTINGS):
    """Time every network and setting; write ``speed.json`` and ``speed.md`` under ``out``."""
    import profile_engine
    from bench_kernels import measure_axpy

    from eventsnn import simulate

    out = Path(out or common.RESULTS)
    common.set_threads(1)
    axpy = max(measure_axpy().values())
    res = {"machine": common.machine_info(1), "T": T, "images": images, "repeat": repeat,
           "axpy_updates_per_s": axpy, "networks": []}
    for name in networks:
        data = common.fmnist_data(images, 256) if name == "fmnist" else \
            common.load_cifar(common.default_cifar(), images, 256, network=name)
        x = data["x_test"][:images]
        for setting in settings:
            net, graph = converted(name, data, setting, log)
            mon = common.LoadMonitor()
            with mon:
                times = time_setting(net, graph, x, T, repeat, threads)
                prof = profile_engine.profile(net, x[:2], T, log=log)
            r = simulate(net, x, T, progress=False)
            conns = [{"connection": c["connection"], "kind": c["kind"],
                      "src_shape": c["src_shape"], "dst_shape": c["dst_shape"],
                      "path": c["path"],
                      "density_per_step": c["events"] / T / int(np.prod(c["src_shape"])),
                      "g_updates_per_s": c["landed_updates_per_s"] / 1e9,
                      "frac_axpy": c["landed_updates_per_s"] / axpy,
                      "ms_per_image": c["landed_s_per_image"] * 1e3}
                     for c in prof["connections"]]
            entry = {"network": name, "setting": setting, "times": times,
                     "synops_per_image": r.total_synops() / len(x),
                     "spikes_per_image": r.total_spikes() / len(x),
                     "profile": {k: v for k, v in prof.items()
                                 if k not in ("connections", "if_populations")},
                     "connections": conns, "load": mon.summary(),
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            res["networks"].append(entry)
            one = times["1_thread"]
            log(f"  {name} {setting} T={T}: event {one['seconds_per_image']['event'] * 1e3:.1f}, "
                f"dense twin {one['seconds_per_image']['dense_twin'] * 1e3:.1f}, dense bound "
                f"{one['seconds_per_image']['dense_bound'] * 1e3:.1f} ms CPU/img -> "
                f"x{one['ratio_vs_dense_twin']:.2f} vs twin, x{one['ratio_vs_dense_bound']:.2f} "
                f"vs bound; load {entry['load']}")
    common.write_json(out / "speed.json", res)
    (out / "speed.md").write_text(markdown(res))
    return res


def markdown(res):
    """The report of :func:`run` (Markdown)."""
    lines = ["# Event engine vs dense, per core", "", common.machine_md(res["machine"]), "",
             f"T = {res['T']}, {res['images']} test images (CIFAR-10; Fashion-MNIST for fmnist), "
             f"best of {res['repeat']} interleaved rounds; CPU time per image for 1 thread, "
             "wall time for 2. "
             f"In-cache AXPY: {res['axpy_updates_per_s'] / 1e9:.1f} G updates/s per core.", ""]
    rows = []
    for e in res["networks"]:
        for th, t in e["times"].items():
            s = t["seconds_per_image"]
            rows.append([e["network"], e["setting"], th, f"{e['synops_per_image'] / 1e6:.0f} M",
                         f"{s['event'] * 1e3:.1f}", f"{s['dense_twin'] * 1e3:.1f}",
                         f"{s['dense_bound'] * 1e3:.1f}", f"x{t['ratio_vs_dense_twin']:.2f}",
                         f"x{t['ratio_vs_dense_bound']:.2f}", e["load"] and e["load"]["mean"],
                         f"{e['peak_rss_mb']:.0f}"])
    lines.append(common.md_table(
        ["network", "conversion", "threads", "SynOps/img", "event ms/img", "dense twin ms/img",
         "dense bound ms/img", "vs twin", "vs bound", "load", "peak RSS MB"], rows))
    for e in res["networks"]:
        lines += ["", f"## {e['network']}, {e['setting']}: per connection (1 thread, replayed "
                  "events)", ""]
        lines.append(common.md_table(
            ["connection", "kind", "src", "dst", "density/step", "path", "G upd/s", "of AXPY",
             "ms/img"],
            [[c["connection"][:48], c["kind"], "x".join(map(str, c["src_shape"])),
              "x".join(map(str, c["dst_shape"])), f"{c['density_per_step']:.3f}", c["path"],
              f"{c['g_updates_per_s']:.1f}", f"{c['frac_axpy']:.0%}", f"{c['ms_per_image']:.2f}"]
             for c in e["connections"]]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", nargs="+", default=["resnet20"])
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    ap.add_argument("--out", default=str(common.RESULTS))
    args = ap.parse_args(argv)
    run(args.networks, args.T, args.images, args.repeat, tuple(args.threads), args.out,
        settings=tuple(args.settings))


if __name__ == "__main__":
    main()
