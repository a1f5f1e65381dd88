"""End to end: the event-driven engine against a dense PyTorch simulation of the same SNN.

For every network the SAME converted SpikingNetwork (Γ = 5, LIPooling, burst-aware percentile
normalisation, :func:`eventsnn.convert` defaults) is simulated on the same images by

* ``eventsnn.simulate(net, x, T, engine="numba")`` — event by event (its automatic batch size);
* ``DenseTorchSNN`` (benchmarks/dense_torch.py) — clock-driven, every layer a dense torch op at
  every step, torch on CPU with the same number of threads, at the batch size and memory
  format (NCHW / channels-last) that were fastest for it on this machine.

The two are timed alternately in one run (best of ``--repeat`` runs each, wall and process CPU
time), so their ratio is measured under the same machine load; the load average is recorded.
Predictions (``argmax U(t)``) are compared at every step: they must agree on >= 99.9 % of the
images; any disagreement is listed with its top-2 logit margin (float summation order differs
between a convolution and a scatter of events, which can flip a near-tie).

Agreement is also checked on more images (ResNet20 512, the CIFAR-10 VGG 256, default model
1000) in one run each.

Networks: ResNet20 and ResNet56 (pretrained, CIFAR-10, ../shared/models/*.onnx), the trained
CIFAR-10 VGG-style net with max pooling (``models/cifar10_vgg.npz``, its own input
normalisation from ``models/cifar10_vgg.json``), the shipped default model (Fashion-MNIST VGG,
when it is shipped) and a full-width VGG16 (random weights, BatchNorm statistics calibrated on
CIFAR-10) for scale; T = 32 and 64.

Usage: ``python benchmarks/bench_end_to_end.py [--quick] [--cifar PATH] [--threads N]``;
``--networks cifar10_vgg --merge`` runs one network and merges its entry into the results
already in ``--out`` (the other networks' entries are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# images per network (full run) and in --quick mode
FULL = {"resnet20": 64, "resnet56": 32, "cifar10_vgg": 64, "fmnist": 128, "vgg16": 32}
QUICK = {"resnet20": 8, "fmnist": 16}
# prediction agreement on more images (one run each at the largest T; every t <= T compared)
FULL_AGREE = {"resnet20": 512, "cifar10_vgg": 256, "fmnist": 1000}
QUICK_AGREE = {}
N_CALIB = 256
DENSE_BATCHES = (1, 8, 32)


def disagreements(ev_out, dense_out, y, t):
    """Images whose predictions differ at step ``t`` (1-based), with their logit margins."""
    pe = ev_out[t - 1].argmax(1)
    pd = dense_out[t - 1].argmax(1)
    rows = []
    for i in np.flatnonzero(pe != pd):
        u = np.sort(ev_out[t - 1, i])[::-1]
        rows.append({"image": int(i), "label": int(y[i]), "event": int(pe[i]),
                     "dense": int(pd[i]), "event_top2_margin": float(u[0] - u[1]),
                     "event_logit_scale": float(np.abs(u[0])),
                     "max_abs_output_difference": float(np.abs(ev_out[t - 1, i]
                                                               - dense_out[t - 1, i]).max())})
    return rows


def time_event(net, x, T, repeat):
    from eventsnn import simulate

    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), common.cpu_seconds()
        result = simulate(net, x, T, engine="numba", progress=False)
        walls.append(time.perf_counter() - w0)
        cpus.append(common.cpu_seconds() - c0)
    return walls, cpus, result


def time_dense(sim, x, T, bs, repeat):
    import torch

    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), common.cpu_seconds()
        out = torch.cat([sim.run(x[s:s + bs], T) for s in range(0, len(x), bs)], 1)
        walls.append(time.perf_counter() - w0)
        cpus.append(common.cpu_seconds() - c0)
    return walls, cpus, out.numpy()


def bench_network(name, data, Ts, repeat, quick, log, use_cache=True):
    from dense_torch import DenseTorchSNN, best_batch_size

    from eventsnn import simulate

    x, y = data["x_test"], data["y_test"]
    net, graph, conv_s = common.get_network(name, data["x_calib"], use_cache=use_cache, log=log)
    stats = common.network_stats(net, graph)
    ann_pred = graph.forward(x).argmax(1)
    log(f"  {name}: {stats['neurons']} neurons, {stats['synapses'] / 1e6:.1f} M synapses, "
        f"{stats['ann_macs'] / 1e6:.1f} M MACs/image; {len(x)} images")
    simulate(net, x[:2], 2, progress=False)  # JIT warm-up (cached on disk)
    candidates = (8,) if quick else DENSE_BATCHES
    bs, cl, table = best_batch_size(net, x[:max(candidates)], max(Ts), candidates=candidates)
    bs = min(bs, len(x))
    log(f"  dense baseline: batch {bs}, channels_last={cl} "
        f"({', '.join(f'{b}/{c}: {s * 1e3:.1f}' for b, c, s in table)} ms/img at <= 8 steps)")
    sim = DenseTorchSNN(net, channels_last=cl)
    sim.run(x[:bs], 1)  # oneDNN builds its primitives per shape: not part of the timing
    entry = {"network": name, "images": int(len(x)), "data": data.get("source"),
             "normalization": data.get("normalization"),
             "calibration": data.get("calib_note", f"{len(data['x_calib'])} CIFAR-10 train images"),
             "stats": stats, "conversion_seconds": round(conv_s, 1),
             "dense_tuning": [{"batch_size": b, "channels_last": c, "seconds_per_image": s}
                              for b, c, s in table],
             "dense_batch_size": bs, "dense_channels_last": cl,
             "ann_accuracy": float((ann_pred == y).mean()), "runs": []}
    for T in Ts:
        mon = common.LoadMonitor()
        ev_w, ev_c, dn_w, dn_c = [], [], [], []
        with mon:
            for _ in range(repeat):  # alternate: both see the same load
                w, c, res = time_event(net, x, T, 1)
                ev_w += w
                ev_c += c
                mon.sample()
                w, c, dense_out = time_dense(sim, x, T, bs, 1)
                dn_w += w
                dn_c += c
                mon.sample()
        n = len(x)
        ev_out = res.outputs
        pe, pd = ev_out.argmax(2), dense_out.argmax(2)
        agree_t = (pe == pd).mean(axis=1)
        run = {
            "T": T,
            "event_wall_per_image": min(ev_w) / n, "dense_wall_per_image": min(dn_w) / n,
            "event_cpu_per_image": min(ev_c) / n, "dense_cpu_per_image": min(dn_c) / n,
            "event_walls": ev_w, "dense_walls": dn_w, "event_cpus": ev_c, "dense_cpus": dn_c,
            "ratio_wall": min(dn_w) / min(ev_w), "ratio_cpu": min(dn_c) / min(ev_c),
            "ratio_wall_paired_median": float(np.median(np.array(dn_w) / np.array(ev_w))),
            "agreement_at_T": float(agree_t[-1]), "agreement_min_over_t": float(agree_t.min()),
            "agreement_all_steps": float((pe == pd).mean()),
            "disagreements_at_T": disagreements(ev_out, dense_out, y, T),
            "event_accuracy_at_T": float((pe[-1] == y).mean()),
            "dense_accuracy_at_T": float((pd[-1] == y).mean()),
            "snn_ann_agreement_at_T": float((pe[-1] == ann_pred).mean()),
            "synops_per_image": res.total_synops() / n,
            "spikes_per_image": res.total_spikes() / n,
            "events_per_image": sum(int(v.sum()) for v in res.events.values()) / n,
            "input_macs_per_image": res.input_macs / n,
            "dense_macs_per_image": T * (stats["synapses"]
                                         - sum(int(c.fan_out().sum()) for c in net.connections
                                               if c.src == "input"))
            + res.input_macs / n,
            "load": mon.summary(),
        }
        entry["runs"].append(run)
        log(f"  {name} T={T}: event {run['event_wall_per_image'] * 1e3:.1f} ms/img, dense "
            f"{run['dense_wall_per_image'] * 1e3:.1f} ms/img -> x{run['ratio_wall']:.2f} wall "
            f"(x{run['ratio_cpu']:.2f} CPU); agreement {run['agreement_at_T']:.2%} at T, "
            f"{run['agreement_all_steps']:.2%} over all t; load {run['load']}")
    return entry


def agreement_run(name, data, T, bs, cl, log):
    """Predictions of both simulators on many images at every t <= T (one run each)."""
    from dense_torch import DenseTorchSNN

    net, _, _ = common.get_network(name, data["x_calib"], log=log)
    x, y = data["x_test"], data["y_test"]
    ew, ec, res = time_event(net, x, T, 1)
    sim = DenseTorchSNN(net, channels_last=cl)
    sim.run(x[:bs], 1)
    dw, dc, dense_out = time_dense(sim, x, T, bs, 1)
    pe, pd = res.outputs.argmax(2), dense_out.argmax(2)
    agree_t = (pe == pd).mean(axis=1)
    checkpoints = sorted({t for t in (8, 16, 32, 64, T) if t <= T})
    out = {"network": name, "T": T, "images": int(len(x)),
           "agreement_at": {str(t): float(agree_t[t - 1]) for t in checkpoints},
           "agreement_min_over_t": float(agree_t.min()),
           "agreement_all_steps": float((pe == pd).mean()),
           "disagreements": {str(t): disagreements(res.outputs, dense_out, y, t)
                             for t in checkpoints if agree_t[t - 1] < 1},
           "event_wall_per_image": ew[0] / len(x), "dense_wall_per_image": dw[0] / len(x),
           "event_cpu_per_image": ec[0] / len(x), "dense_cpu_per_image": dc[0] / len(x),
           "event_accuracy": {str(t): float((pe[t - 1] == y).mean()) for t in checkpoints},
           "load": common.load_average()}
    log(f"  agreement {name} ({len(x)} images, T={T}): " + ", ".join(
        f"t={t}: {v:.2%}" for t, v in out["agreement_at"].items())
        + f"; event {out['event_wall_per_image'] * 1e3:.1f} vs dense "
          f"{out['dense_wall_per_image'] * 1e3:.1f} ms/img")
    return out


def merge_results(old, new):
    """``old`` results with the networks (and agreement runs) of ``new`` replaced or added.

    Each merged network entry keeps the machine description of its own run (``machine``)."""
    ran = {e["network"] for e in new["networks"]}
    merged = dict(old)
    merged["networks"] = ([e for e in old["networks"] if e["network"] not in ran]
                          + [{**e, "machine": new["machine"], "T": new["T"],
                              "repeat": new["repeat"]} for e in new["networks"]])
    merged["agreement"] = ([a for a in old.get("agreement", []) if a["network"] not in ran]
                           + [{**a, "machine": new["machine"]} for a in new.get("agreement", [])])
    merged["skipped"] = {**{k: v for k, v in old.get("skipped", {}).items() if k not in ran},
                         **new.get("skipped", {})}
    return merged


def run(quick=False, cifar=None, threads=None, repeat=None, out=common.RESULTS, Ts=None,
        networks=None, use_cache=True, images=None, agreement=True, log=print, merge=False):
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    threads = threads or common.default_threads()
    common.set_threads(threads)
    counts = dict(QUICK if quick else FULL)
    if networks:
        counts = {k: v for k, v in {**FULL, **counts}.items() if k in networks}
    if images:
        counts = {k: int(images) for k in counts}
    Ts = tuple(Ts or ((32,) if quick else (32, 64)))
    repeat = repeat or (1 if quick else 3)
    info = common.machine_info(threads)
    log(f"bench_end_to_end: {info['cpu']}, {threads} threads, load {info['load_average']}")
    cifar = Path(cifar) if cifar else common.default_cifar()
    results = {"machine": info, "quick": quick, "T": list(Ts), "repeat": repeat,
               "threads": threads, "cifar": str(cifar), "networks": [], "skipped": {}}
    agree = {k: v for k, v in (QUICK_AGREE if quick else FULL_AGREE).items()
             if k in counts and agreement}
    n_cifar = max([counts[k] for k in counts if k != "fmnist"]
                  + [agree[k] for k in agree if k != "fmnist"], default=0)
    cif = {}  # normalised CIFAR-10 subsets per normalisation (cifar10_vgg has its own)

    def cifar_data(name, n):
        key = str(common.cifar_normalization(name)[1])
        if key not in cif:
            cif[key] = common.load_cifar(cifar, n_cifar, N_CALIB, network=name)
        c = cif[key]
        return {"x_test": c["x_test"][:n], "y_test": c["y_test"][:n], "x_calib": c["x_calib"],
                "source": str(cifar), "normalization": c["normalization"]}

    old = None
    if merge and (Path(out) / "end_to_end.json").is_file():
        old = json.loads((Path(out) / "end_to_end.json").read_text())

    def save():
        common.write_json(Path(out) / "end_to_end.json",
                          merge_results(old, results) if old else results)
    for name, n in counts.items():
        if name == "fmnist":
            data = common.fmnist_data(n, N_CALIB)
            if data is None:
                results["skipped"][name] = "the default model is not shipped yet " \
                                           "(eventsnn.datasets.default_model_path() failed)"
                log(f"  skipping {name}: {results['skipped'][name]}")
                continue
        else:
            if name == "cifar10_vgg" and not common.CIFAR10_VGG.is_file():
                results["skipped"][name] = f"{common.CIFAR10_VGG} is absent"
                continue
            if not (common.MODELS / "meta.json").is_file() and name != "cifar10_vgg":
                results["skipped"][name] = "../shared/models is absent"
                continue
            data = cifar_data(name, n)
        results["networks"].append(bench_network(name, data, Ts, repeat, quick, log,
                                                 use_cache=use_cache))
        save()
    results["agreement"] = []
    for name, n in agree.items():
        e = next((e for e in results["networks"] if e["network"] == name), None)
        if e is None:
            continue
        data = common.fmnist_data(n, N_CALIB) if name == "fmnist" else cifar_data(name, n)
        results["agreement"].append(agreement_run(name, data, max(Ts), e["dense_batch_size"],
                                                  e["dense_channels_last"], log))
        save()
    results["load_at_end"] = common.load_average()
    if old:
        info["load_at_end"] = results["load_at_end"]
        results = merge_results(old, results)
    common.write_json(Path(out) / "end_to_end.json", results)
    (Path(out) / "end_to_end.md").write_text(markdown(results))
    log(f"  wrote {Path(out) / 'end_to_end.json'} and end_to_end.md")
    return results


def markdown(res):
    lines = ["# End to end: event-driven engine vs dense PyTorch simulation", "",
             common.machine_md(res["machine"]),
             f"Threads: {res['threads']} (numba and torch). Best of {res['repeat']} alternating "
             f"runs each. CIFAR-10 from `{res['cifar']}`. Load average at the end: "
             f"{res.get('load_at_end')}.", "",
             "Same converted SNN (Γ=5, LIPooling) in both; dense = `benchmarks/dense_torch.py` "
             "at its fastest batch size / memory format. Agreement = identical argmax U(t).", ""]
    rows = []
    for e in res["networks"]:
        for r in e["runs"]:
            rows.append([e["network"], r["T"], e["images"],
                         f"{r['event_wall_per_image'] * 1e3:.1f}",
                         f"{r['dense_wall_per_image'] * 1e3:.1f}",
                         f"**{r['ratio_wall']:.2f}x**", f"{r['ratio_cpu']:.2f}x",
                         f"{r['agreement_at_T']:.2%}", f"{r['agreement_all_steps']:.2%}",
                         f"{r['event_accuracy_at_T']:.1%} / {e['ann_accuracy']:.1%}",
                         f"{r['synops_per_image'] / 1e6:.0f}",
                         f"{r['dense_macs_per_image'] / 1e6:.0f}",
                         f"{e['dense_batch_size']}{' CL' if e['dense_channels_last'] else ''}",
                         r["load"]["mean"] if r["load"] else ""])
    lines += [common.md_table(
        ["network", "T", "images", "event ms/img", "dense ms/img", "speed-up (wall)",
         "speed-up (CPU)", "agree @T", "agree all t", "SNN / ANN acc", "M SynOps/img",
         "dense M MACs/img", "dense batch", "load"], rows), ""]
    for e in res["networks"]:
        m = e.get("machine")
        if m:  # merged in from a separate run (--merge)
            lines.append(f"- {e['network']} was measured in a separate run (`--merge`) on "
                         f"{m['date']}, git {m.get('git')}, threads: {m.get('threads')}, best of "
                         f"{e.get('repeat')}; load average at start {m.get('load_average')}, at "
                         f"the end {m.get('load_at_end')}.")
    for e in res["networks"]:
        for r in e["runs"]:
            for d in r["disagreements_at_T"]:
                lines.append(f"- {e['network']} T={r['T']}: image {d['image']} event predicts "
                             f"{d['event']}, dense {d['dense']}; event top-2 margin "
                             f"{d['event_top2_margin']:.3g} (logit {d['event_logit_scale']:.3g}), "
                             f"max |ΔU| {d['max_abs_output_difference']:.3g}")
    for a in res.get("agreement", []):
        lines += ["", f"Agreement on {a['images']} images, {a['network']}, every t <= {a['T']} "
                  f"(one run each; event {a['event_wall_per_image'] * 1e3:.1f} ms/img, dense "
                  f"{a['dense_wall_per_image'] * 1e3:.1f} ms/img): " + ", ".join(
                      f"t={t}: {v:.2%}" for t, v in a["agreement_at"].items())
                  + f"; lowest over all t {a['agreement_min_over_t']:.2%}, all (t, image) pairs "
                  f"{a['agreement_all_steps']:.3%}."]
        for t, ds in a["disagreements"].items():
            for d in ds:
                lines.append(f"- t={t} image {d['image']}: event {d['event']}, dense "
                             f"{d['dense']}; event top-2 margin {d['event_top2_margin']:.3g} "
                             f"(top logit {d['event_logit_scale']:.3g}), max |ΔU| "
                             f"{d['max_abs_output_difference']:.3g}")
    for k, v in res.get("skipped", {}).items():
        lines.append(f"- skipped {k}: {v}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="ResNet20 (+ default model), 8 images, T=32")
    ap.add_argument("--cifar", default=None,
                    help="CIFAR-10 as an npz (x_train, y_train, x_test, y_test) or the JPEG "
                         "tarball (default: ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz, "
                         "decoded once into .cache/)")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all usable CPUs)")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per engine")
    ap.add_argument("--T", type=int, nargs="+", default=None, help="time steps (default 32 64)")
    ap.add_argument("--networks", nargs="+", default=None,
                    help="subset of resnet20 resnet56 cifar10_vgg fmnist vgg16")
    ap.add_argument("--images", type=int, default=None, help="images per network (override)")
    ap.add_argument("--no-agreement", action="store_true",
                    help="skip the prediction-agreement runs on many images")
    ap.add_argument("--no-cache", action="store_true", help="convert again, ignore benchmarks/.cache")
    ap.add_argument("--out", default=str(common.RESULTS))
    ap.add_argument("--merge", action="store_true",
                    help="merge the networks run into the end_to_end.json already in --out "
                         "(replacing their entries, keeping the others) and rebuild end_to_end.md")
    args = ap.parse_args(argv)
    run(args.quick, args.cifar, args.threads, args.repeat, args.out, args.T, args.networks,
        not args.no_cache, args.images, not args.no_agreement, merge=args.merge)


if __name__ == "__main__":
    main()
