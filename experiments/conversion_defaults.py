"""Conversion settings compared on several networks: the paper preset vs the new defaults.

For each model and configuration: convert (calibration on training images, never test), simulate
a stratified seeded test subset event by event up to the largest T, and report per T the SNN
accuracy, the firing rate (spikes per neuron per step) and E_SNN / E_ANN (4.6 pJ/MAC, 0.9 pJ/AC),
next to the ANN's accuracy on the same images. Output: one merged JSON per model under
``experiments/results/conversion/`` and a Markdown table.

    python experiments/conversion_defaults.py --model resnet20 -n 500 --configs paper default
    python experiments/conversion_defaults.py --model fmnist-vgg -n 1000 \
        --configs paper default "norm=percentile,percentile=99,v_init=0.5,calibration=none"

A configuration is a preset name or ``key=value`` pairs (keys of ``eventsnn.convert``; an
optional ``preset=...`` among them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from configs import default_data, load_model, load_split, model_normalization, resolve_model  # noqa: E402

OUT = HERE / "results" / "conversion"


def parse_config(text):
    """``"paper"`` -> {"preset": "paper"}; ``"norm=mmse,v_init=0.5"`` -> typed kwargs."""
    if "=" not in text:
        return {"preset": text}
    out = {}
    for part in text.split(","):
        k, v = part.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                continue
        if v in ("True", "False"):
            v = v == "True"
        out[k.strip()] = v
    return out


def firing_rate(net, result, t):
    """Spikes per neuron per step of all spiking populations over steps 1..t."""
    n = sum(p.size for p in net.populations if p.kind != "output")
    spikes = sum(int(v[:t].sum()) for v in result.spikes.values())
    return spikes / (n * result.n_images * t)


def evaluate(graph, net, x, y, steps, batch_size=None):
    """Accuracy, firing rate and energy ratio per T of ``net`` on ``(x, y)``."""
    import eventsnn
    from eventsnn.energy import estimate_energy

    t0 = time.perf_counter()
    res = eventsnn.simulate(net, x, max(steps), progress=False, batch_size=batch_size)
    wall = time.perf_counter() - t0
    acc = res.accuracy(y)
    rows = {}
    for t in steps:
        e = estimate_energy(graph, net, res, upto=t)["total"]
        rows[t] = {"accuracy": float(acc[t - 1]), "firing_rate": firing_rate(net, res, t),
                   "energy_ratio": e["ratio"], "synops_per_image": e["snn_synops"]}
    return rows, wall


def run(model, n, n_calib, configs, steps, seed=0, data=None):
    import eventsnn
    from eventsnn.datasets import load_dataset, subset

    name, path, entry = resolve_model(model)
    graph = load_model(path)
    norm = model_normalization(path, entry)
    if data == "fashion-mnist-sample":  # the 1000 + 500 images shipped with the package
        test, train = load_dataset(data, "test"), load_dataset(data, "train")
        name += "-shipped-images"
    else:
        data = data or default_data(entry.get("dataset", "cifar10"))
        test = load_split(data, "test", norm)
        train = load_split(data, "train", norm)
    test = subset(test, min(n, len(test)), seed)
    calib = subset(train, min(n_calib, len(train)), seed + 1)
    ann_acc = float((graph.forward(test.x).argmax(axis=1) == test.y).mean())
    print(f"{name}: {len(test)} test images, ANN {100 * ann_acc:.2f} %, {len(calib)} calibration "
          "images (train split)", flush=True)
    out = {"model": name, "n_test": len(test), "n_calib": len(calib), "seed": seed,
           "ann_accuracy": ann_acc, "energy_model": "4.6 pJ/MAC, 0.9 pJ/AC", "configs": {}}
    for text in configs:
        kw = parse_config(text)
        t0 = time.perf_counter()
        net = eventsnn.convert(graph, calib.x, **kw)
        conv = time.perf_counter() - t0
        rows, wall = evaluate(graph, net, test.x, test.y, steps)
        out["configs"][text] = {"kwargs": kw, "convert_seconds": conv, "simulate_seconds": wall,
                                "meta": {k: net.meta[k] for k in ("norm", "percentile", "burst",
                                         "v_init", "calibration", "timesteps", "preset")},
                                "per_T": rows}
        r = rows[32] if 32 in rows else rows[max(steps)]
        print(f"  {text:<60} conv {conv:6.1f}s sim {wall:6.1f}s | " + "  ".join(
            f"T={t}: {100 * rows[t]['accuracy']:.1f}% {rows[t]['energy_ratio']:.2f}x" for t in steps)
            + f" | rate@32 {r['firing_rate']:.4f}", flush=True)
    return out


def markdown(res):
    lines = [f"### {res['model']} ({res['n_test']} stratified test images, ANN "
             f"{100 * res['ann_accuracy']:.2f} %)", "",
             "| configuration | T | accuracy % | ANN − SNN (pt) | firing rate | E_SNN/E_ANN |",
             "|---|---|---|---|---|---|"]
    for text, c in res["configs"].items():
        for t, r in c["per_T"].items():
            lines.append(f"| {text} | {t} | {100 * r['accuracy']:.2f} | "
                         f"{100 * (res['ann_accuracy'] - r['accuracy']):.2f} | "
                         f"{r['firing_rate']:.4f} | {r['energy_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def summarise():
    """Merge every model's table into ``results/conversion/README.md`` (paper vs default first)."""
    parts = ["# Conversion settings: the paper preset vs the new defaults", "",
             "Written by `python experiments/conversion_defaults.py --summary` from the per-model "
             "JSON files beside it. Stratified seeded test subsets (sizes in each heading), the "
             "ANN measured on the same images; λ and calibration from training images only. "
             "Energy: 4.6 pJ/MAC (ANN, analog input), 0.9 pJ/AC (SynOps). `default` = "
             "`convert()` defaults (percentile 99.8, V(0) = θ/2, bias calibration tuned for T = 32, "
             "64 images, 2 passes), run unchanged at every T.", ""]
    for f in sorted(OUT.glob("*.json")):
        parts.append(markdown(json.loads(f.read_text(), object_pairs_hook=dict)))
    (OUT / "README.md").write_text("\n".join(parts))
    print(f"wrote {OUT / 'README.md'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--summary", action="store_true",
                    help="only merge the per-model results into results/conversion/README.md")
    ap.add_argument("-n", type=int, default=500, help="stratified test images")
    ap.add_argument("--calib", type=int, default=256, help="training images for λ and calibration")
    ap.add_argument("--configs", nargs="+", default=["paper", "default"])
    ap.add_argument("--T", default="8,16,32,64")
    ap.add_argument("--data", default=None,
                    help="data path or 'fashion-mnist-sample' (default: the model's full data set)")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    args = ap.parse_args(argv)
    if args.summary:
        return summarise()
    if args.model is None:
        ap.error("--model is required (or --summary)")
    steps = sorted({int(t) for t in args.T.split(",")})
    res = run(args.model, args.n, args.calib, args.configs, steps, data=args.data)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"{res['model']}{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1))
    stem.with_suffix(".md").write_text(markdown(res))
    print(f"wrote {stem}.json / .md")


if __name__ == "__main__":
    main()
