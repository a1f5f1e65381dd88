#!/usr/bin/env python3
"""Rate limit (T → ∞) of each converted network: ``eventsnn.analog_forward`` accuracy.

``analog_forward`` runs the converted network as an ANN (IF populations as ReLU without the
Γ cap, pooling as the exact max): the accuracy an ideal simulation converges to. It tells a
conversion error (SNN below its own limit) from a change of the function itself (e.g. the
average-pool baseline replaces the trained MaxPool, so its limit is below the ANN).

Example::

    nice -n 5 .venv/bin/python experiments/analog_limit.py --model fmnist-vgg

Writes ``results/<model>/analog_limit.json`` (networks from the run_experiment cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_experiment as rx  # noqa: E402
from configs import CONFIGS  # noqa: E402  (puts benchmarks/ on sys.path)
from common import now, write_json  # noqa: E402


def main(argv=None):
    import eventsnn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--n", type=int, help="first n images of the seeded test order (default: all)")
    p.add_argument("--tag")
    args = p.parse_args(argv)
    ns = argparse.Namespace(model=args.model, data=args.data, chunk_size=None, seed=0, calib_n=1000,
                            tag=args.tag, n_test=None)
    setup = rx.Setup(ns)
    ds = setup.test()
    idx = setup.order()[:args.n] if args.n else np.arange(len(ds))
    out = {}
    for c in args.configs.split(","):
        if (setup.out / f"{c}.json").is_file() is False:
            continue
        if not (setup.out / c / "meta.json").is_file():
            continue
        net = rx.network(setup, c, {})
        correct = 0
        for a in range(0, len(idx), 500):
            b = idx[a:a + 500]
            o = eventsnn.analog_forward(net, ds.x[b])[net.populations[-1].name]
            correct += int((o.reshape(len(b), -1).argmax(1) == ds.y[b]).sum())
        out[c] = correct / len(idx)
        print(f"{c}: analog limit accuracy {out[c]:.4f} on {len(idx)} images", flush=True)
    write_json(setup.out / "analog_limit.json", {"model": setup.name, "n_images": len(idx),
                                                 "accuracy": out, "date": now()})


if __name__ == "__main__":
    main()
