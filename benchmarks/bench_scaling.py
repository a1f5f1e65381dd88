"""Scaling of the event engine: time vs SynOps, peak memory, and 1 -> N cores.

1. **Time vs work.** Wall (and CPU) time per image of ``eventsnn.simulate`` for several
   networks, burst sizes Γ and numbers of steps T, against the work the run did: total SynOps
   (Σ multiplicity × fan-out, the paper's count) and synaptic updates (Σ events × fan-out, a
   burst delivered once — what the kernels actually execute). A least-squares line
   ``time = a + b * work`` is fitted to each; a good fit (R² near 1) means the engine's cost is
   proportional to the work of the events, not to the size of the network or T.
2. **Peak memory** (max RSS) of a fresh process that loads the full-width VGG16 and simulates
   it (engine defaults: automatic batch size), next to the same process that only loads the
   network (the baseline of Python + numba + numpy + the weights).
3. **Threads**: the same simulation with 1 and with N numba threads (images in parallel),
   16 images per thread, runs of both thread counts interleaved, best of several. A
   pure-compute parallel loop (no memory traffic, perfectly balanced) is timed alongside with
   the same thread counts: its speed-up is what the machine allowed at that moment (other
   processes share the cores), the ceiling to compare the engine's with.

Writes ``results/scaling.json``, ``scaling.md`` and ``scaling.png``.

Usage: ``python benchmarks/bench_scaling.py [--quick] [--cifar PATH]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

FULL = {"networks": {"resnet20": 8, "resnet56": 4, "vgg16": 4, "fmnist": 16},
        "bursts": (1, 5), "T": (16, 32, 64), "rss_network": "vgg16", "rss_T": 64, "rss_images": 16,
        "threads_images_per_thread": 16, "threads_T": 32, "threads_reps": 3}
QUICK = {"networks": {"resnet20": 4, "fmnist": 8}, "bursts": (5,), "T": (8, 16),
         "rss_network": "resnet20", "rss_T": 8, "rss_images": 4,
         "threads_images_per_thread": 4, "threads_T": 8, "threads_reps": 2}
N_CALIB = 256

# VmHWM (peak resident set of this process image; unlike ru_maxrss it does not inherit the
# parent's peak across fork + exec)
_RSS_CHILD = r"""
import json, sys, time
import numpy as np
from eventsnn import load_network, simulate
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
net = load_network(sys.argv[1])
x = np.load(sys.argv[2])["x"]
T, simulate_it = int(sys.argv[3]), sys.argv[4] == "1"
base = hwm_kb()
t0 = time.perf_counter()
if simulate_it:
    r = simulate(net, x, T, progress=False)
print(json.dumps({"maxrss_kb": hwm_kb(), "after_load_kb": base,
                  "seconds": time.perf_counter() - t0}))
"""


def updates_of(net, res):
    """Synaptic updates (Σ events × fan-out): SynOps of each connection divided by the mean
    multiplicity of its source's events (exact when the fan-out is uniform)."""
    total = 0.0
    for c in net.connections:
        if c.src == "input":
            continue
        sp = res.spikes[c.src].sum()
        ev = res.events[c.src].sum()
        if sp:
            total += res.synops[c.name].sum() * ev / sp
    return total


def fit(x, y):
    """Least squares ``y = a + b x``; returns a, b, R²."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    A = np.stack([np.ones_like(x), x], 1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = a + b * x
    ss = ((y - y.mean()) ** 2).sum()
    return float(a), float(b), float(1 - ((y - pred) ** 2).sum() / ss) if ss > 0 else 1.0


def time_vs_work(cfg, cif, log):
    from eventsnn import simulate

    points = []
    for name, n in cfg["networks"].items():
        if name == "fmnist":
            data = common.fmnist_data(n, N_CALIB)
            if data is None:
                log("  skipping fmnist: the default model is not shipped yet")
                continue
        else:
            data = {"x_test": cif["x_test"][:n], "x_calib": cif["x_calib"]}
        x = data["x_test"][:n]
        for burst in cfg["bursts"]:
            net, _, _ = common.get_network(name, data["x_calib"], burst=burst, log=log)
            simulate(net, x[:1], 2, progress=False)
            for T in cfg["T"]:
                w0, c0 = time.perf_counter(), common.cpu_seconds()
                res = simulate(net, x, T, progress=False)
                wall, cpu = time.perf_counter() - w0, common.cpu_seconds() - c0
                p = {"network": name, "burst": burst, "T": T, "images": len(x),
                     "wall_per_image": wall / len(x), "cpu_per_image": cpu / len(x),
                     "synops_per_image": res.total_synops() / len(x),
                     "updates_per_image": updates_of(net, res) / len(x),
                     "events_per_image": sum(int(v.sum()) for v in res.events.values()) / len(x),
                     "neuron_steps_per_image": T * sum(p.size for p in net.populations),
                     "load": common.load_average()}
                points.append(p)
                log(f"  {name} Γ={burst} T={T}: {p['wall_per_image'] * 1e3:.1f} ms/img, "
                    f"{p['synops_per_image'] / 1e6:.0f} M SynOps, "
                    f"{p['updates_per_image'] / 1e6:.0f} M updates")
    fits = {}
    for key in ("synops_per_image", "updates_per_image"):
        for t in ("wall_per_image", "cpu_per_image"):
            a, b, r2 = fit([p[key] for p in points], [p[t] for p in points])
            fits[f"{t}~{key}"] = {"intercept_s": a, "slope_s": b, "r2": r2,
                                  "rate_per_s": 1 / b if b > 0 else None}
    return points, fits


def peak_rss(cfg, cif, log):
    """Max RSS of a fresh process simulating VGG16 (and of one that only loads it)."""
    name = cfg["rss_network"]
    net, _, _ = common.get_network(name, cif["x_calib"], log=log)
    path = common._cache_path(name, 5, "lipool", len(cif["x_calib"]))
    xs = common.CACHE / "rss_images.npz"
    np.savez(xs, x=cif["x_test"][:cfg["rss_images"]])
    out = {}
    for label, sim in (("load_only", "0"), ("simulate", "1")):
        r = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(xs),
                            str(cfg["rss_T"]), sim], capture_output=True, text=True,
                           cwd=str(common.REPO))
        if r.returncode != 0:
            raise RuntimeError(f"RSS child failed: {r.stderr[-2000:]}")
        out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    from eventsnn.engine.numba_engine import NumbaProgram

    prog = NumbaProgram(net)
    res = {"network": name, "T": cfg["rss_T"], "images": cfg["rss_images"],
           "peak_rss_mb": out["simulate"]["maxrss_kb"] / 1024,
           "load_only_rss_mb": out["load_only"]["maxrss_kb"] / 1024,
           "simulate_seconds": out["simulate"]["seconds"],
           "neurons": int(sum(p.size for p in net.populations)),
           "weights_mb": sum(a.nbytes for c in net.connections for a in c.arrays().values()) / 2**20}
    if hasattr(prog, "default_batch_size"):
        res["engine_batch_size"] = prog.default_batch_size(cfg["rss_T"])
        res["engine_bytes_per_image"] = prog.bytes_per_image(cfg["rss_T"])
        res["engine_bytes_per_worker"] = prog.bytes_per_worker()
    log(f"  {name} peak RSS {res['peak_rss_mb']:.0f} MB ({res['load_only_rss_mb']:.0f} MB after "
        f"loading only), {cfg['rss_images']} images, T={cfg['rss_T']}")
    return res


def _compute_loop():
    """A pure-compute parallel loop (the machine's own speed-up ceiling): ``spin(chunks, n)``
    runs ``chunks`` independent chains of ``n`` dependent square roots, one chunk per
    ``prange`` iteration."""
    from numba import njit, prange

    @njit(parallel=True)
    def spin(chunks, n):
        out = np.zeros(chunks)
        for c in prange(chunks):
            s = 0.0
            for i in range(n):
                s = np.sqrt(s + i)
            out[c] = s
        return out

    return spin


def thread_scaling(cfg, cif, threads, log):
    """Wall and CPU time per image with 1 and ``threads`` threads, and the compute ceiling."""
    from eventsnn import simulate

    net, _, _ = common.get_network("resnet20", cif["x_calib"], log=log)
    x = cif["x_test"][:cfg["threads_images_per_thread"] * threads]
    T = cfg["threads_T"]
    counts = sorted({1, threads})
    spin = _compute_loop()
    wall, cpu, ceiling = ({k: [] for k in counts} for _ in range(3))
    for k in counts:  # compile and start the thread pools
        common.set_threads(k)
        simulate(net, x[:2], 2, progress=False)
        spin(2 * k, 10)
    load_before = common.load_average()
    for _ in range(cfg["threads_reps"]):
        for k in counts:
            common.set_threads(k)
            w0, c0 = time.perf_counter(), common.cpu_seconds()
            simulate(net, x, T, progress=False)
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(common.cpu_seconds() - c0)
            w0 = time.perf_counter()
            spin(16, 2_000_000)
            ceiling[k].append(time.perf_counter() - w0)
    common.set_threads(threads)
    res = {"network": "resnet20", "T": T, "images": len(x), "reps": cfg["threads_reps"],
           "seconds": {str(k): min(v) / len(x) for k, v in wall.items()},
           "cpu_seconds": {str(k): float(np.median(v)) / len(x) for k, v in cpu.items()},
           "speedup": min(wall[1]) / min(wall[threads]),
           "ceiling_speedup": min(ceiling[1]) / min(ceiling[threads]),
           "threads": threads, "load_before": load_before, "load": common.load_average()}
    log(f"  threads 1 -> {threads}: x{res['speedup']:.2f} (pure-compute loop "
        f"x{res['ceiling_speedup']:.2f}; load {res['load']})")
    return res


def plot(points, fits, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {1: "o", 5: "s"}
    nets = list(dict.fromkeys(p["network"] for p in points))
    colors = dict(zip(nets, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, key, label in ((axes[0], "synops_per_image", "SynOps per image"),
                           (axes[1], "updates_per_image", "synaptic updates per image")):
        for p in points:
            ax.scatter(p[key], p["wall_per_image"] * 1e3, color=colors[p["network"]],
                       marker=markers.get(p["burst"], "^"), s=30)
            ax.annotate(f"T{p['T']}", (p[key], p["wall_per_image"] * 1e3), fontsize=6,
                        xytext=(2, 2), textcoords="offset points")
        f = fits[f"wall_per_image~{key}"]
        xs = np.linspace(0, max(p[key] for p in points) * 1.05, 50)
        ax.plot(xs, (f["intercept_s"] + f["slope_s"] * xs) * 1e3, "k--", lw=1,
                label=f"fit: {f['slope_s'] * 1e12:.1f} ps/op, R²={f['r2']:.3f}")
        ax.set_xlabel(label)
        ax.set_ylabel("wall time per image (ms)")
        ax.grid(alpha=0.3)
        for n in nets:
            ax.scatter([], [], color=colors[n], label=n)
        for g, m in markers.items():
            ax.scatter([], [], color="gray", marker=m, label=f"Γ={g}")
        ax.legend(fontsize=7)
    fig.suptitle("eventsnn numba engine: time vs work")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(quick=False, cifar=None, threads=None, out=common.RESULTS, log=print):
    threads = threads or common.default_threads()
    common.set_threads(threads)
    cfg = QUICK if quick else FULL
    info = common.machine_info(threads)
    log(f"bench_scaling: {info['cpu']}, {threads} threads, load {info['load_average']}")
    n = max(v for k, v in cfg["networks"].items() if k != "fmnist")
    n = max(n, cfg["threads_images_per_thread"] * threads, cfg["rss_images"])
    cif = common.load_cifar(Path(cifar) if cifar else common.default_cifar(), n, N_CALIB)
    points, fits = time_vs_work(cfg, cif, log)
    result = {"machine": info, "quick": quick, "threads": threads, "points": points,
              "fits": fits}
    result["threads_scaling"] = thread_scaling(cfg, cif, threads, log)
    result["memory"] = peak_rss(cfg, cif, log)
    result["load_at_end"] = common.load_average()
    out = Path(out)
    common.write_json(out / "scaling.json", result)
    plot(points, fits, out / "scaling.png")
    (out / "scaling.md").write_text(markdown(result))
    log(f"  wrote {out / 'scaling.json'}, scaling.md, scaling.png")
    return result


def markdown(res):
    lines = ["# Scaling of the event engine", "", common.machine_md(res["machine"]),
             f"Threads: {res['threads']}. Load average at the end: {res.get('load_at_end')}.", "",
             "![time vs work](scaling.png)", "", "## Time vs work", "",
             common.md_table(["network", "Γ", "T", "images", "ms/img (wall)", "ms/img (CPU)",
                              "M SynOps/img", "M updates/img", "k events/img"],
                             [[p["network"], p["burst"], p["T"], p["images"],
                               f"{p['wall_per_image'] * 1e3:.1f}",
                               f"{p['cpu_per_image'] * 1e3:.1f}",
                               f"{p['synops_per_image'] / 1e6:.1f}",
                               f"{p['updates_per_image'] / 1e6:.1f}",
                               f"{p['events_per_image'] / 1e3:.0f}"] for p in res["points"]]),
             "", "Linear fits `time = a + b * work` (per image):", "",
             common.md_table(["fit", "a (ms)", "b (ps/op)", "ops/s", "R²"],
                             [[k, f"{v['intercept_s'] * 1e3:.2f}", f"{v['slope_s'] * 1e12:.1f}",
                               f"{v['rate_per_s'] / 1e9:.2f} G" if v["rate_per_s"] else "",
                               f"{v['r2']:.3f}"] for k, v in res["fits"].items()]), ""]
    m = res["memory"]
    lines += ["## Peak memory", "",
              f"{m['network']} ({m['neurons']} neurons, {m['weights_mb']:.0f} MB of weights), "
              f"{m['images']} images, T={m['T']}: peak RSS **{m['peak_rss_mb']:.0f} MB** "
              f"(a process that only loads the network: {m['load_only_rss_mb']:.0f} MB); engine "
              f"batch size {m.get('engine_batch_size')}, "
              f"{(m.get('engine_bytes_per_image') or 0) / 2**20:.2f} MB of results per image, "
              f"{(m.get('engine_bytes_per_worker') or 0) / 2**20:.1f} MB of state per thread. "
              f"Target < 1 GB: {'met' if m['peak_rss_mb'] < 1024 else 'NOT met'}.", ""]
    t = res["threads_scaling"]
    n = t["threads"]
    lines += ["## Threads", "",
              f"ResNet20, T={t['T']}, {t['images']} images, best of {t['reps']} interleaved runs: "
              f"1 thread {t['seconds']['1'] * 1e3:.1f} ms/img "
              f"(CPU {t['cpu_seconds']['1'] * 1e3:.1f}), "
              f"{n} threads {t['seconds'][str(n)] * 1e3:.1f} ms/img "
              f"(CPU {t['cpu_seconds'][str(n)] * 1e3:.1f}): speed-up **x{t['speedup']:.2f}**. "
              f"A pure-compute parallel loop timed alongside: x{t['ceiling_speedup']:.2f}, the "
              f"most the machine allowed at the time (load average {t['load_before']} before, "
              f"{t['load']} after).", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cifar", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(common.RESULTS))
    args = ap.parse_args(argv)
    run(args.quick, args.cifar, args.threads, args.out)


if __name__ == "__main__":
    main()
