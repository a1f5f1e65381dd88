"""Dask overhead: ``local:2`` (two single-threaded worker processes) against the in-process
engine with two threads, on the same machine, side by side.

The shipped Fashion-MNIST VGG (converted with the defaults, Γ = 5, LIPooling) simulates its
1000 shipped test images for ``T`` steps

* in this process: ``eventsnn.simulate(net, x, T)`` with 2 Numba threads;
* on Dask: ``eventsnn.simulate(net, x, T, client=client)`` with the client of
  ``eventsnn.distributed.connect("local:2")`` (started once, before the timed runs).

The two alternate for ``--repeat`` rounds (in-process first in even rounds, Dask first in odd
ones), so both see the same machine load; every round checks that the Dask result is
bit-identical to the in-process one. Reported per run: wall time, throughput (images/s) and
CPU time (this process for the in-process engine, the sum over the worker processes for Dask,
read with ``client.run``, plus this process, which runs the scheduler and the client),
and their ratios (Dask / in-process: throughput > 1 means Dask is
faster; CPU per image > 1 means Dask spends more CPU). The machine is shared with other jobs:
the load average is recorded before and after every run, and the CPU-time ratio is the figure
that load disturbs least. Also recorded: the cluster start and first-task (Numba cache load)
time, and the peak resident memory of every worker process and of this process.

Usage: ``python benchmarks/bench_dask.py [--n 1000] [--T 32] [--repeat 3] [--workers 2]``;
writes ``benchmarks/results/dask.json`` and ``dask.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def identical(a, b):
    """True when two SimResults agree byte for byte (outputs) and exactly (counts)."""
    if a.outputs.tobytes() != b.outputs.tobytes() or a.input_macs != b.input_macs:
        return False
    return all(np.array_equal(getattr(a, f)[k], getattr(b, f)[k])
               for f in ("spikes", "events", "synops", "burst_hist") for k in getattr(a, f))


def worker_cpu(client):
    """Total CPU seconds (user + system, all threads) of the worker processes so far."""
    return sum(client.run(time.process_time).values())


def run_local(net, x, T):
    import eventsnn

    la = common.load_average()
    c0, t0 = time.process_time(), time.perf_counter()
    res = eventsnn.simulate(net, x, T, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return res, {"wall_s": wall, "cpu_s": cpu, "load_before": la, "load_after": common.load_average()}


def run_dask(client, net, x, T):
    import eventsnn

    la = common.load_average()
    c0, m0, t0 = worker_cpu(client), time.process_time(), time.perf_counter()
    res = eventsnn.simulate(net, x, T, progress=False, client=client)
    wall = time.perf_counter() - t0
    main_cpu = time.process_time() - m0                          # scheduler and client
    workers = worker_cpu(client) - c0
    return res, {"wall_s": wall, "cpu_s": workers + main_cpu, "workers_cpu_s": workers,
                 "scheduler_client_cpu_s": main_cpu, "load_before": la,
                 "load_after": common.load_average()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="test images (default: %(default)s)")
    ap.add_argument("--T", type=int, default=32, help="time steps (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="local:N workers (default: %(default)s)")
    ap.add_argument("--out", default=str(common.RESULTS / "dask"), help="output stem")
    args = ap.parse_args(argv)

    import numba

    import eventsnn
    from eventsnn.distributed import connect, peak_rss, worker_peak_memory

    common.set_threads(args.workers)
    data = common.fmnist_data(args.n, 256)
    x = data["x_test"]
    net, _graph, _ = common.get_network("fmnist", data["x_calib"])
    info = common.machine_info(threads=args.workers)
    print(common.machine_md(info))
    eventsnn.simulate(net, x[:4], 2, progress=False)             # compile / load the kernels here

    t0 = time.perf_counter()
    with connect(f"local:{args.workers}") as client:
        client.wait_for_workers(args.workers)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        eventsnn.simulate(net, x[:2 * args.workers], 2, progress=False, client=client,
                          chunk_size=1)                         # every worker loads the kernels
        warm = time.perf_counter() - t1
        print(f"cluster of {args.workers} workers started in {started:.1f} s, warm-up {warm:.1f} s")
        rounds = []
        for r in range(args.repeat):
            order = ("local", "dask") if r % 2 == 0 else ("dask", "local")
            out = {}
            for which in order:
                out[which] = (run_local(net, x, args.T) if which == "local"
                              else run_dask(client, net, x, args.T))
            same = identical(out["local"][0], out["dask"][0])
            row = {"round": r, "order": list(order), "identical": same,
                   "local": out["local"][1], "dask": out["dask"][1]}
            row["throughput_ratio"] = row["local"]["wall_s"] / row["dask"]["wall_s"]
            row["cpu_ratio"] = row["dask"]["cpu_s"] / row["local"]["cpu_s"]
            rounds.append(row)
            print(f"round {r}: in-process {row['local']['wall_s']:.1f} s "
                  f"({args.n / row['local']['wall_s']:.1f} img/s, CPU {row['local']['cpu_s']:.1f} s), "
                  f"dask {row['dask']['wall_s']:.1f} s ({args.n / row['dask']['wall_s']:.1f} img/s, "
                  f"CPU {row['dask']['cpu_s']:.1f} s): throughput x{row['throughput_ratio']:.3f}, "
                  f"CPU/img x{row['cpu_ratio']:.3f}, identical={same}, load {row['local']['load_before']}")
            if not same:
                raise SystemExit("the Dask result differs from the in-process one")
        workers_rss = worker_peak_memory(client)
    main_rss = peak_rss()

    best_local = min(r["local"]["wall_s"] for r in rounds)
    best_dask = min(r["dask"]["wall_s"] for r in rounds)
    summary = {
        "throughput_ratio_best": best_local / best_dask,
        "throughput_ratio_median": float(np.median([r["throughput_ratio"] for r in rounds])),
        "cpu_ratio_median": float(np.median([r["cpu_ratio"] for r in rounds])),
        "workers_cpu_ratio_median": float(np.median([r["dask"]["workers_cpu_s"] / r["local"]["cpu_s"]
                                                     for r in rounds])),
        "local_img_s_best": args.n / best_local,
        "dask_img_s_best": args.n / best_dask,
    }
    result = {"machine": info, "network": "fmnist (shipped VGG, Γ=5, lipool)",
              "n_images": args.n, "T": args.T, "workers": args.workers,
              "numba_threads_in_process": numba.get_num_threads(),
              "cluster_start_s": started, "warm_up_s": warm, "rounds": rounds,
              "summary": summary, "worker_peak_rss_bytes": workers_rss,
              "main_process_peak_rss_bytes": main_rss,
              "load_average_end": common.load_average()}
    common.write_json(args.out + ".json", result)

    rows = [[r["round"], " then ".join(r["order"]),
             f"{r['local']['wall_s']:.1f}", f"{args.n / r['local']['wall_s']:.1f}", f"{r['local']['cpu_s']:.1f}",
             f"{r['dask']['wall_s']:.1f}", f"{args.n / r['dask']['wall_s']:.1f}",
             f"{r['dask']['workers_cpu_s']:.1f} + {r['dask']['scheduler_client_cpu_s']:.1f}",
             f"x{r['throughput_ratio']:.3f}", f"x{r['cpu_ratio']:.3f}", r["identical"],
             f"{r['local']['load_before'][0]} / {r['dask']['load_before'][0]}"] for r in rounds]
    mem = ", ".join(f"{v / 2**20:.0f} MiB" for v in workers_rss.values())
    md = [f"# Dask: local:{args.workers} against the in-process engine ({args.workers} threads)", "",
          common.machine_md(info), "",
          f"{args.n} shipped Fashion-MNIST test images, shipped VGG (Γ = 5, LIPooling), T = {args.T}; "
          f"`eventsnn.simulate(net, x, T)` in this process with {args.workers} Numba threads vs "
          f"`eventsnn.simulate(net, x, T, client=client)` on `connect(\"local:{args.workers}\")` "
          f"({args.workers} single-threaded worker processes, default chunking). Alternating "
          f"rounds; `python benchmarks/bench_dask.py --n {args.n} --T {args.T} --repeat {args.repeat}`.", "",
          common.md_table(["round", "order", "in-process s", "img/s", "CPU s", "dask s", "img/s",
                           "dask CPU s (workers + scheduler/client)", "throughput dask/in-process", "CPU per image dask/in-process",
                           "identical", "load (1 min) before each"], rows), "",
          f"- Throughput Dask / in-process: best of each x{summary['throughput_ratio_best']:.3f}, "
          f"median of rounds x{summary['throughput_ratio_median']:.3f} (target >= 0.9).",
          f"- CPU time per image Dask / in-process (median): x{summary['cpu_ratio_median']:.3f} "
          f"(the worker processes alone: x{summary['workers_cpu_ratio_median']:.3f}; the rest is "
          "the scheduler and client, which run in this process).",
          f"- Every round's Dask result is bit-identical to the in-process one: "
          f"{all(r['identical'] for r in rounds)}.",
          f"- Cluster start {started:.1f} s and first tasks (every worker loads the Numba cache) "
          f"{warm:.1f} s, not in the timings above.",
          f"- Peak resident memory: workers {mem}; this process (holds the images, the network "
          f"and both results) {main_rss / 2**20:.0f} MiB.",
          f"- Load average at the end: {result['load_average_end']} on {info['usable_cpus']} CPUs "
          "shared with other jobs."]
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
