"""Where the event engine spends its time on a real network: a per-kernel breakdown.

The engine runs a whole batch inside one compiled function, so it cannot be profiled from
Python. Instead this script replays it: it simulates a few images once with
``record=("trains",)`` to get every population's events at every step, then times, on one
core, each connection's delivery of exactly those events (the engine's own kernels, prepared
and called as the engine does, see ``bench_kernels.LandedConnection``) and each IF
population's update, and compares the sum with the engine's own single-thread time. Times are
process CPU times (robust to other processes competing for the cores).

Usage: ``python benchmarks/profile_engine.py [--network resnet20] [--T 32] [--images 2]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _events(counts_internal):
    nz = np.flatnonzero(counts_internal)
    n = counts_internal.shape[0]
    idx = np.zeros(n + 1, np.int32)
    cnt = np.zeros(n + 1, np.int32)
    idx[:len(nz)] = nz
    cnt[:len(nz)] = counts_internal[nz]
    return idx, cnt, len(nz)


def profile(net, x, T, log=print):
    """Per-kernel single-core times (s) of simulating ``x`` for ``T`` steps; see module doc."""
    from bench_kernels import LandedConnection

    from eventsnn import simulate
    from eventsnn.engine.numba_engine import ASCENDING_EVENTS, to_internal
    from eventsnn.kernels.neurons import if_image

    common.set_threads(1)
    B = len(x)
    simulate(net, x[:1], 2, progress=False)
    engine_s = fixed_s = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        simulate(net, x, T, progress=False)
        engine_s = min(engine_s, time.process_time() - t0)
        t0 = time.process_time()
        simulate(net, x, 1, progress=False)  # fixed costs: program, input currents, 1 step
        fixed_s = min(fixed_s, time.process_time() - t0)
    res = simulate(net, x, T, progress=False, record=("trains",))
    shapes = {p.name: p.shape for p in net.populations}
    ev = {}
    for name, tr in res.records["trains"].items():
        internal = to_internal(tr.reshape(T * B, -1), shapes[name]).astype(np.int32)
        ev[name] = [_events(internal[k]) for k in range(T * B)]
    rows = []
    kinds = {p.name: p.kind for p in net.populations}
    for c in net.connections:
        if c.src == "input" or c.kind == "pool":
            continue
        landed = LandedConnection(c, kinds[c.src] in ASCENDING_EVENTS)
        I = np.zeros(c.n_dst, np.float32)
        evs = ev[c.src]
        fo = landed.fan_out
        updates = sum(int(fo[i[:n]].sum()) for i, _, n in evs)
        landed(*evs[0], I)
        t0 = time.process_time()
        for e in evs:
            landed(*e, I)
        t_landed = time.process_time() - t0
        row = {"connection": c.name, "kind": c.kind, "path": landed.path,
               "src_shape": list(c.src_shape),
               "dst_shape": list(c.dst_shape), "events": sum(e[2] for e in evs) / B,
               "updates_per_image": updates / B, "landed_s_per_image": t_landed / B,
               "landed_updates_per_s": updates / t_landed}
        rows.append(row)
    if_rows = []
    for p in net.populations:
        if p.kind != "if":
            continue
        n = p.size
        V, I = np.zeros(n, np.float32), np.zeros(n, np.float32)
        const = np.full(n, 0.2, np.float32)
        ei, ec = np.zeros(n, np.int32), np.zeros(n, np.int32)
        if_image(V, I, const, np.float32(p.threshold), p.burst, np.float32(np.inf), ei, ec)
        t0 = time.process_time()
        for _ in range(T * B):
            if_image(V, I, const, np.float32(p.threshold), p.burst, np.float32(np.inf), ei, ec)
        if_rows.append({"population": p.name, "neurons": n,
                        "s_per_image": (time.process_time() - t0) / B})
    syn = sum(r["landed_s_per_image"] for r in rows)
    neu = sum(r["s_per_image"] for r in if_rows)
    # simulate(T) - simulate(1) = (T - 1) steps; scale the kernels' T-step sums alike
    steps = (engine_s - fixed_s) / B * T / (T - 1) if T > 1 else engine_s / B
    out = {"T": T, "images": B, "engine_1thread_s_per_image": engine_s / B,
           "engine_fixed_s_per_image": fixed_s / B, "engine_steps_s_per_image": steps,
           "synapses_s_per_image": syn, "if_update_s_per_image": neu,
           "other_s_per_image": steps - syn - neu,
           "updates_per_image": sum(r["updates_per_image"] for r in rows),
           "synops_per_image": res.total_synops() / B,
           "connections": rows, "if_populations": if_rows}
    log(f"  engine (1 thread, CPU) {out['engine_1thread_s_per_image'] * 1e3:.1f} ms/img: fixed "
        f"(program, input currents, T=1) {fixed_s / B * 1e3:.1f}; {T} steps {steps * 1e3:.1f} = "
        f"synapses {syn * 1e3:.1f} + IF update {neu * 1e3:.1f} + other "
        f"{out['other_s_per_image'] * 1e3:.1f}; "
        f"{out['updates_per_image'] / 1e6:.0f} M updates/img -> "
        f"{out['updates_per_image'] / syn / 1e9:.2f} G/s in the synapse kernels")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="resnet20", help="resnet20 resnet56 vgg16 fmnist")
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--cifar", default=None)
    ap.add_argument("--out", default=None, help="write the breakdown as JSON here")
    args = ap.parse_args(argv)
    if args.network == "fmnist":
        data = common.fmnist_data(args.images, 256)
    else:
        data = common.load_cifar(args.cifar or common.default_cifar(), args.images, 256)
    net, _, _ = common.get_network(args.network, data["x_calib"])
    out = profile(net, data["x_test"][:args.images], args.T)
    if args.out:
        common.write_json(args.out, out)
    for r in sorted(out["connections"], key=lambda r: -r["landed_s_per_image"])[:12]:
        print(f"    {r['connection'][:50]:50s} {r['kind']:8s} {str(r['src_shape']):15s} "
              f"{r['landed_s_per_image'] * 1e3:6.2f} ms {r['landed_updates_per_s'] / 1e9:5.2f} G/s")


if __name__ == "__main__":
    main()
