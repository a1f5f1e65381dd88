#!/usr/bin/env python3
"""Pooling correct ratio vs T (paper Fig. 5b) with eventsnn.analysis, on a test subset.

For each pooling configuration (default: p-Norm Γ=1 with the max-gate baseline, p-Norm Γ=1
with LIPool, and our Burst Γ=5 + LIPool) and each T, the subset is simulated with
``record=("neuron_counts",)`` and :class:`eventsnn.analysis.Analysis` reports per pooling
layer the share of positive outputs whose count is within one spike of the max-pooled input
count (rate within 2/T, the paper's "correct ratio"). Needs a network with MaxPool.

Example::

    nice -n 5 .venv/bin/python experiments/pooling.py --model fmnist-vgg --n 500

Writes ``results/<model>/pooling.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_experiment as rx  # noqa: E402
from configs import CONFIGS, RESULTS  # noqa: E402  (puts benchmarks/ on sys.path)
from common import machine_info, now, write_json  # noqa: E402


def main(argv=None):
    import eventsnn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data")
    p.add_argument("--configs", default="pnorm,pnorm-lipool,burst5-lipool")
    p.add_argument("--T", default="4,8,16,32,64,128")
    p.add_argument("--n", type=int, default=500, help="test images (first n of the seeded order)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", help="results folder name (default: the model name)")
    args = p.parse_args(argv)
    ns = argparse.Namespace(model=args.model, data=args.data, chunk_size=None, seed=args.seed,
                            calib_n=1000, tag=args.tag, n_test=None)
    setup = rx.Setup(ns)
    if not any(n.op == "maxpool" for n in setup.graph.nodes):
        raise SystemExit(f"{setup.name} has no MaxPool: nothing to measure")
    ds = setup.test()
    idx = setup.order()[:args.n]
    x, y = ds.x[idx], ds.y[idx]
    runs, walls = {}, {}
    for c in args.configs.split(","):
        net = rx.network(setup, c, {})
        key = f"{c} ({CONFIGS[c]['pooling']})"
        runs[key] = {}
        for T in (int(t) for t in args.T.split(",")):
            t0 = time.perf_counter()
            an = eventsnn.analyze_simulation(net, x, T, y, None, batch_size=250,
                                             record=("neuron_counts",))
            d = an.to_dict()
            runs[key][str(T)] = {"pooling": d["pooling"], "accuracy": d["accuracy"]["snn_final"]}
            walls[f"{key} T={T}"] = time.perf_counter() - t0
            print(f"{key} T={T}: " + ", ".join(f"{q['name']} {q['correct_ratio']:.3f}"
                                               for q in d["pooling"]), flush=True)
    write_json(setup.out / "pooling.json", {
        "model": setup.name, "n_images": len(idx), "test_order_seed": args.seed,
        "config_note": "Γ=1 p-Norm max-gate vs LIPool, and Burst Γ=5 + LIPool",
        "runs": runs, "wall_s": walls, "machine": machine_info(), "date": now()})


if __name__ == "__main__":
    main()
