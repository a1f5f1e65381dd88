#!/usr/bin/env python3
"""Calibration sensitivity: percentile p, calibration set size, layer- vs channel-wise λ.

One factor at a time around the default of the chosen method (``--base``, default our
Burst Γ=5 + LIPool, burst-aware 99.9th percentile, 1000 training images, layer-wise λ):

* p ∈ {99, 99.9, 99.99, 100} (1000 images, layer-wise);
* calibration set size ∈ {100, 500, 1000, 5000} (p = 99.9, layer-wise);
* channel-wise λ (p = 99.9, 1000 images).

Calibration images are seeded class-balanced subsets of the TRAIN split. Each variant is
simulated chunk by chunk exactly like ``run_experiment.py`` (same seeded test order, same
chunk files, resumable), under ``results/<model>/calibration/<variant>/``; the summary
``results/<model>/calibration.json`` is what ``tables.py`` shows.

Examples::

    nice -n 5 .venv/bin/python experiments/calibration.py --model fmnist-vgg --T 64
    nice -n 5 .venv/bin/python experiments/calibration.py --model resnet20 --T 64 \\
        --max-chunks 8 --stop-at 20:05
"""

from __future__ import annotations

import argparse
import json
import datetime as dt
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_experiment as rx  # noqa: E402
from configs import CONFIGS, RESULTS  # noqa: E402  (puts benchmarks/ on sys.path)
from common import now, write_json  # noqa: E402

PERCENTILES = (99.0, 99.9, 99.99, 100.0)
SIZES = (100, 500, 1000, 5000)


def variants(base):
    """name -> configuration dict for every variant around ``base``."""
    b = dict(CONFIGS[base])
    out = {}
    for p in PERCENTILES:
        out[f"p{p:g}"] = dict(b, percentile=p, calib_n=1000, channelwise=False)
    for n in SIZES:
        if n != 1000:
            out[f"n{n}"] = dict(b, percentile=99.9, calib_n=n, channelwise=False)
    out["channelwise"] = dict(b, percentile=99.9, calib_n=1000, channelwise=True)
    for k, v in out.items():
        v["label"] = f"{b['label']} [{k}]"
    return out


def vs_base_default(config, base):
    """True for the variant that is exactly the base configuration (p 99.9, 1000, layer-wise)."""
    return config == f"cal-{base}-p99.9"


def _reuse_main(setup, top, config, is_default, k, T):
    """Copy chunk k of the main run of the base configuration when this variant is the base
    itself (same network, same images): saves simulating the default twice."""
    if not is_default:
        return False
    base = config[len("cal-"):-len("-p99.9")]
    src = top / base / f"chunk_{k:04d}.json"
    if not src.is_file():
        return False
    c = json.loads(src.read_text())
    if c.get("T", 0) < T or c.get("chunk_size") != setup.chunk or c.get("seed") != setup.seed:
        return False
    c["config"] = config
    c["copied_from"] = str(src.relative_to(RESULTS))
    write_json(rx.chunk_path(setup, config, k), c)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data")
    p.add_argument("--base", default="burst5-lipool", choices=list(CONFIGS))
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--n-test", type=int, help="use only the first N images of the seeded test order")
    p.add_argument("--max-chunks", type=int)
    p.add_argument("--stop-at", help="HH:MM UTC: start no new chunk after this time")
    p.add_argument("--only", help="comma-separated variant names (default: all)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--merge-only", action="store_true")
    p.add_argument("--tag", help="results folder name (default: the model name)")
    args = p.parse_args(argv)

    vs = variants(args.base)
    if args.only:
        vs = {k: v for k, v in vs.items() if k in args.only.split(",")}
    prefixed = {f"cal-{args.base}-{k}": v for k, v in vs.items()}
    CONFIGS.update(prefixed)  # so run_experiment's helpers know them
    ns = argparse.Namespace(model=args.model, data=args.data, chunk_size=args.chunk_size, seed=args.seed,
                            calib_n=1000, tag=args.tag, n_test=args.n_test)
    setup = rx.Setup(ns)
    top = setup.out
    setup.out = top / "calibration"
    ann = json.loads((top / "ann.json").read_text()) if (top / "ann.json").is_file() else None
    n_chunks, n_use = setup.n_chunks()
    deadline = rx._deadline(args.stop_at)
    nets, done, stopped = {}, 0, False
    if not args.merge_only:
        for k in range(n_chunks):
            for c in prefixed:
                if rx.chunk_done(setup, c, k, args.T):
                    continue
                if (args.max_chunks is not None and done >= args.max_chunks) or \
                        (deadline is not None and dt.datetime.now(dt.timezone.utc) >= deadline):
                    stopped = True
                    break
                if _reuse_main(setup, top, c, vs_base_default(c, args.base), k, args.T):
                    continue
                rx.run_chunk(setup, c, k, args.T, nets, args.batch_size)
                done += 1
            if stopped:
                break
    rows = []
    for c, v in prefixed.items():
        m = rx.merge(setup, c, ann)
        if m is None:
            continue
        if vs_base_default(c, args.base) and (top / f"{args.base}.json").is_file():
            # the default variant reuses the chunks of the main run: take its λ, rates and
            # energy from the main run's merged file (same network, same images)
            main_run = json.loads((top / f"{args.base}.json").read_text())
            if main_run.get("n_images", 0) >= m["n_images"]:
                for key in ("scales", "mean_if_firing_rate", "energy"):
                    m[key] = main_run[key]
        scales = [np.mean(s) for s in m["scales"].values() if s is not None]
        rows.append({"name": c[len(f"cal-{args.base}-"):],
                     "config": c, "norm": v["norm"], "percentile": v["percentile"],
                     "calib_n": v["calib_n"], "channelwise": v["channelwise"],
                     "burst": v["burst"], "pooling": v["pooling"],
                     "accuracy": m["accuracy"], "T": m["T"], "n_images": m["n_images"],
                     "complete": m["complete"], "mean_scale": float(np.mean(scales)) if scales else float("nan"),
                     "energy_ratio": {t: e.get("ratio") for t, e in m["energy"].items()
                                      if isinstance(e, dict) and int(t) <= args.T},
                     "mean_if_firing_rate": {t: v for t, v in m["mean_if_firing_rate"].items()
                                             if int(t) <= args.T},
                     "ann_accuracy_same_images": m["ann_accuracy_same_images"]})
    if rows:
        T = min(r["T"] for r in rows)
        n = min(r["n_images"] for r in rows)
        write_json(top / "calibration.json", {
            "model": setup.name, "base": args.base,
            "config_note": f"{CONFIGS[args.base]['label']}, one factor varied at a time",
            "T": T, "report_T": [t for t in (16, 32, 64, 128, 256) if t <= T],
            "n_images": n, "n_test": len(setup.test()), "complete": all(r["complete"] for r in rows),
            "variants": rows, "date": now()})
        for r in rows:
            print(f"{r['name']:>12}: n={r['n_images']} " + " ".join(
                f"T={t}:{100 * r['accuracy'][t - 1]:.2f}" for t in (16, 32, 64, 128, 256) if t <= r["T"])
                + f" mean λ {r['mean_scale']:.3g}", flush=True)
    return 0 if stopped else 10


if __name__ == "__main__":
    sys.exit(main())
