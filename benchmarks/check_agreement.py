"""Are event-vs-dense prediction disagreements float rounding? A three-way comparison.

The event engine and the dense torch simulation add the same float32 numbers in different
orders (a scatter of events vs a convolution), so a membrane potential that lands within
rounding of the threshold can fire in one and not in the other; the spike trains then differ
from that step on and the output potentials drift apart by about one synaptic weight. An
image whose top-2 output potentials are that close can flip its prediction.

This script simulates the same images with the event engine (float32), the dense simulation
in float32 and the dense simulation in float64, and reports the pairwise prediction agreement
at every step: if event-vs-dense32 disagreements are rounding, the dense simulation disagrees
with *itself* (float32 vs float64) about as often, and on the disagreeing images the float64
result sides with either float32 run about equally.

Usage: ``python benchmarks/check_agreement.py [--network resnet20] [--images 256] [--T 64]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def run(network="resnet20", images=256, T=64, batch=8, cifar=None, out=None, log=print):
    import torch

    from dense_torch import DenseTorchSNN

    from eventsnn import simulate

    # one thread: timings are not the point here, and a single torch thread does not stall at
    # every operation's barrier on a busy machine
    common.set_threads(1)
    if network == "fmnist":
        data = common.fmnist_data(images, 256)
    else:
        data = common.load_cifar(Path(cifar) if cifar else common.default_cifar(), images, 256)
    x, y = data["x_test"][:images], data["y_test"][:images]
    net, _, _ = common.get_network(network, data["x_calib"], log=log)
    ev = simulate(net, x, T, progress=False).outputs
    outs = {"event32": ev}
    for name, dtype in (("dense32", torch.float32), ("dense64", torch.float64)):
        sim = DenseTorchSNN(net, dtype=dtype, channels_last=True)
        outs[name] = torch.cat([sim.run(x[s:s + batch], T) for s in range(0, len(x), batch)],
                               1).numpy()
    preds = {k: v.argmax(2) for k, v in outs.items()}
    pairs = (("event32", "dense32"), ("event32", "dense64"), ("dense32", "dense64"))
    res = {"network": network, "images": int(len(x)), "T": T, "pairs": {}}
    for a, b in pairs:
        agree = (preds[a] == preds[b]).mean(axis=1)
        res["pairs"][f"{a}~{b}"] = {
            "agreement_at_T": float(agree[-1]), "agreement_at_32": float(agree[min(T, 32) - 1]),
            "min_over_t": float(agree.min()), "all_steps": float((preds[a] == preds[b]).mean()),
            "images_disagreeing_at_some_t": int((preds[a] != preds[b]).any(axis=0).sum()),
            "max_abs_output_difference_at_T": float(np.abs(outs[a][-1] - outs[b][-1]).max())}
    # on the images where event32 and dense32 disagree at T: whom does float64 side with?
    dis = np.flatnonzero(preds["event32"][-1] != preds["dense32"][-1])
    res["event_dense32_disagreements_at_T"] = [
        {"image": int(i), "label": int(y[i]), "event32": int(preds["event32"][-1, i]),
         "dense32": int(preds["dense32"][-1, i]), "dense64": int(preds["dense64"][-1, i]),
         "top2_margin_dense64": float(-np.diff(np.sort(outs["dense64"][-1, i])[::-1][:2])[0])}
        for i in dis]
    srt = np.sort(outs["dense64"][-1], axis=1)
    res["median_top2_margin_dense64"] = float(np.median(srt[:, -1] - srt[:, -2]))
    for k, v in res["pairs"].items():
        log(f"  {network} {len(x)} images T={T} {k}: {v['agreement_at_T']:.2%} at T, "
            f"{v['all_steps']:.3%} of (t, image), {v['images_disagreeing_at_some_t']} images "
            f"disagree at some t")
    if out:
        common.write_json(out, res)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="resnet20")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--cifar", default=None)
    ap.add_argument("--out", default=str(common.RESULTS / "agreement_fp64.json"))
    args = ap.parse_args(argv)
    run(args.network, args.images, args.T, cifar=args.cifar, out=args.out)


if __name__ == "__main__":
    main()
