"""Regenerate every benchmark result: ``python benchmarks/run_all.py [--quick]``.

Runs, in order, ``bench_kernels.py`` (kernel roofline), ``bench_end_to_end.py`` (event engine vs
dense PyTorch on ResNet20/56, the default model and VGG16 at T = 32, 64) and
``bench_scaling.py`` (time vs SynOps, VGG16 peak memory, 1 -> N threads), then writes
``results/README.md`` with the headline numbers. ``--quick`` runs small subsets (a smoke test of
a few minutes); results then go to ``results/quick/`` so they never overwrite a full run.

Image counts of a full run: end to end ResNet20 64, ResNet56 32, default model 128, VGG16 32
images at T = 32 and 64, each timed 3 times per engine (alternating), plus one prediction-
agreement run at T = 64 on 512 (ResNet20) and 1000 (default model) images; scaling 4-16 images
per point. It takes about 20-30 minutes on 2 loaded cores; converted networks are cached in
``benchmarks/.cache`` (``--no-cache`` converts the end-to-end networks again).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def summary(kern, e2e, scal):
    import numpy as np

    lines = ["# Benchmark results", "",
             "Regenerate with `python benchmarks/run_all.py` (details in the linked files).", "",
             common.machine_md(e2e["machine"]), ""]
    conv = [r for r in kern["kernels"] if r["kernel"] == "conv" and r["variant"] == "landed"
            and r["c_out"] >= 64]
    if conv:
        fr = [r["frac_axpy"] for r in conv]
        lines.append(f"- [Kernels](kernels.md): in-cache AXPY {kern['axpy_ref_per_s'] / 1e9:.1f} G/s "
                     f"per core; conv 3x3 (>= 64 channels) {min(fr):.0%}-{max(fr):.0%} of it "
                     f"(median {np.median(fr):.0%}).")
    for e in e2e["networks"]:
        for r in e["runs"]:
            lines.append(f"- [End to end](end_to_end.md) {e['network']} T={r['T']}: event "
                         f"{r['event_wall_per_image'] * 1e3:.1f} ms/img vs dense torch "
                         f"{r['dense_wall_per_image'] * 1e3:.1f} ms/img: **x{r['ratio_wall']:.2f}**"
                         f" (CPU time x{r['ratio_cpu']:.2f}); predictions agree on "
                         f"{r['agreement_at_T']:.2%} at T.")
    f = scal["fits"].get("wall_per_image~synops_per_image")
    if f:
        lines.append(f"- [Scaling](scaling.md): wall time = {f['intercept_s'] * 1e3:.1f} ms + "
                     f"{f['slope_s'] * 1e12:.0f} ps x SynOps (R² {f['r2']:.3f}); peak RSS "
                     f"{scal['memory']['network']} {scal['memory']['peak_rss_mb']:.0f} MB; "
                     f"1 -> {scal['threads_scaling']['threads']} threads "
                     f"x{scal['threads_scaling']['speedup']:.2f}.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small subsets: a smoke run")
    ap.add_argument("--cifar", default=None, help="CIFAR-10 npz or JPEG tarball")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--out", default=None, help="results folder (default results/ or results/quick/)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else common.RESULTS / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    import bench_end_to_end
    import bench_kernels
    import bench_scaling

    t0 = time.perf_counter()
    kern = bench_kernels.run(args.quick, out)
    e2e = bench_end_to_end.run(args.quick, args.cifar, args.threads, None, out,
                               use_cache=not args.no_cache)
    scal = bench_scaling.run(args.quick, args.cifar, args.threads, out)
    (out / "README.md").write_text(summary(kern, e2e, scal))
    print(f"run_all: {time.perf_counter() - t0:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
