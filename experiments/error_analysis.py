#!/usr/bin/env python3
"""Conversion-error decomposition (paper Sec. 3.2) of one configuration on a test subset.

Runs :func:`eventsnn.analyze_simulation` with the ANN graph and
``record=("neuron_counts", "potential")``. For every layer it reports the rate error
against the normalised ANN activation, the residual information (charge left above
threshold at T, i.e. spikes held back by the cap Γ per step), the spikes of inactivated
neurons (SIN) and the share of activations above Γ. It also reports how often the output
agrees with the ANN's argmax.

Example::

    nice -n 5 .venv/bin/python experiments/error_analysis.py --model resnet20 \\
        --config burst5-lipool --T 64 --n 200

Writes ``results/<model>/errors_<config>_T<T>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_experiment as rx  # noqa: E402
import configs  # noqa: E402,F401  (puts benchmarks/ on sys.path for the shared helpers)
from common import machine_info, now, write_json  # noqa: E402


def main(argv=None):
    import eventsnn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data")
    p.add_argument("--config", default="burst5-lipool")
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--tag")
    args = p.parse_args(argv)
    ns = argparse.Namespace(model=args.model, data=args.data, chunk_size=None, seed=0, calib_n=1000,
                            tag=args.tag, n_test=None)
    setup = rx.Setup(ns)
    net = rx.network(setup, args.config, {})
    ds = setup.test()
    idx = setup.order()[:args.n]
    t0 = time.perf_counter()
    an = eventsnn.analyze_simulation(net, ds.x[idx], args.T, ds.y[idx], setup.graph, batch_size=100)
    d = an.to_dict()
    keep = ("name", "kind", "mae", "mae_reachable", "mean_error", "residual_rate", "residual_share",
            "above_gamma_share", "ann_excess_rate", "sin_share_of_spikes", "inactive_firing_share",
            "sin_rate")
    errors = [{k: e.get(k) for k in keep} for e in d["errors"]]
    out = {"model": setup.name, "config": args.config, "T": args.T, "n_images": len(idx),
           "accuracy": d["accuracy"], "output_error": d["output_error"], "errors": errors,
           "layers": [{k: v for k, v in L.items() if k in ("name", "firing_rate", "burst_factor",
                                                          "gamma_event_share", "capped_share")}
                      for L in d["layers"]],
           "wall_s": time.perf_counter() - t0, "machine": machine_info(), "date": now()}
    write_json(setup.out / f"errors_{args.config}_T{args.T}.json", out)
    print(f"accuracy SNN {d['accuracy']['snn_final']:.3f} ANN {d['accuracy']['ann']:.3f}; "
          f"output argmax agreement {d['output_error']['argmax_agreement_share']:.3f}")
    for e in errors:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in e.items() if v is not None))


if __name__ == "__main__":
    main()
