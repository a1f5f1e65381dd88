"""The ``eventsnn`` command line: run, inspect, convert, simulate and report.

``eventsnn run`` with no arguments converts the shipped Fashion-MNIST VGG model and simulates
it event by event on the 1000 shipped test images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_T = "8,16,32,64"


def _steps(text):
    try:
        steps = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--T takes comma-separated integers, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"--T needs integers >= 1, got {text!r}")
    return steps


def load_model(path, input_shape=None):
    """Load an ANN from a native ``.npz`` Graph or an ``.onnx`` file (None: the shipped model)."""
    from .datasets import default_model_path
    from .graph import load_graph

    if path is None:
        path, _ = default_model_path()
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from .io.onnx import load_onnx

        return load_onnx(path, input_shape=input_shape)
    return load_graph(path)


def _normalization(args, model_path):
    """The normalisation to apply to the data: --mean/--std, the model's sidecar, or the file's."""
    from .datasets import Normalization, default_model_path

    if args.mean is not None or args.std is not None:
        if args.mean is None or args.std is None:
            raise SystemExit("error: --mean and --std go together")
        return Normalization(args.mean, args.std)
    sidecar = Path(model_path).with_suffix(".json") if model_path else None
    if sidecar is not None and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if "normalization" in meta:
            return Normalization.from_dict(meta["normalization"])
    if model_path is None:
        return default_model_path()[1]
    return None


def _load_data(args):
    from .datasets import load_dataset

    norm = _normalization(args, args.model)
    test = load_dataset(args.data, split="test", normalization=norm, n=args.n, seed=args.seed)
    calib_src = args.calib_data or args.data
    try:
        calib = load_dataset(calib_src, split="train", normalization=test.normalization,
                             n=args.calib, seed=args.seed)
        calib_note = f"{len(calib)} {calib.name} images"
    except (ValueError, FileNotFoundError):
        calib = None
    if calib is None:
        calib_x = test.x[np.random.default_rng(args.seed).permutation(len(test))[:args.calib]]
        calib_note = f"{len(calib_x)} images of the evaluation set (no train split available)"
    else:
        calib_x = calib.x
    return test, calib_x, calib_note


def _add_model_args(p):
    p.add_argument("--model", default=None,
                   help="ANN file: native .npz Graph or .onnx (default: the shipped Fashion-MNIST VGG)")
    p.add_argument("--input-shape", default=None,
                   help="per-sample input shape for ONNX models with dynamic shapes, e.g. 3,32,32")


def _add_data_args(p):
    p.add_argument("--data", default="fashion-mnist-sample",
                   help="data set: 'fashion-mnist-sample' (shipped, 1000 test images), "
                        "'fashion-mnist', 'mnist', an IDX folder, a CIFAR-10 batch folder or an "
                        ".npz with x/y (default: %(default)s)")
    p.add_argument("-n", type=int, default=None,
                   help="evaluate a class-balanced seeded subset of N test images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for subsets and Poisson input")
    p.add_argument("--mean", type=float, nargs="+", default=None,
                   help="per-channel mean of the input normalisation (default: the model's or "
                        "the data file's)")
    p.add_argument("--std", type=float, nargs="+", default=None,
                   help="per-channel std of the input normalisation")


def _add_convert_args(p):
    from .layer_calibration import CALIBRATIONS
    from .presets import PRESETS

    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="conversion settings not given below: 'default' (error-minimising λ, "
                        "V(0)=θ/2, bias calibration) or 'paper' (burst-percentile 99.9, V(0)=0, no "
                        "calibration: the paper's method) (default: %(default)s)")
    p.add_argument("--norm", default=None,
                   choices=["max", "percentile", "burst-percentile", "mmse"],
                   help="data-based weight normalisation (Eq. 6); burst-percentile divides "
                        "activations above 1 by Γ before the percentile; mmse minimises the "
                        "burst neuron's squared error at --calib-T (default: the preset's)")
    p.add_argument("--percentile", type=float, default=None,
                   help="percentile p of the activations used as λ (default: the preset's, 99.9)")
    p.add_argument("--burst", type=int, default=None,
                   help="Γ, most spikes a neuron emits per step; 1 = plain IF (default: the preset's, 5)")
    p.add_argument("--pooling", default="lipool", choices=["lipool", "maxgate", "avg"],
                   help="how MaxPool is converted: Lateral Inhibition Pooling (Eq. 12), the "
                        "max-gate baseline (Eq. 11) or average pooling (default: %(default)s)")
    p.add_argument("--channelwise", action="store_true",
                   help="one normalisation factor λ per channel instead of per layer")
    p.add_argument("--v-init", type=float, default=None,
                   help="initial membrane potential in units of θ, in [0, 1) (default: the "
                        "preset's: 0.5, paper 0)")
    p.add_argument("--calibrate", default=None, choices=list(CALIBRATIONS),
                   help="layer-wise calibration of biases / initial potentials on the calibration "
                        "images, simulated event by event (default: the preset's)")
    p.add_argument("--calib-images", type=int, default=None,
                   help="calibration images simulated by --calibrate (default: the preset's, 64)")
    p.add_argument("--calib-passes", type=int, default=None,
                   help="simulations of them (default: the preset's, 2)")
    p.add_argument("--calib-T", type=int, default=None,
                   help="T the conversion is tuned for by --norm mmse and --calibrate "
                        "(default: the preset's, 32)")
    p.add_argument("--calib", type=int, default=256,
                   help="number of calibration images (default: %(default)s)")
    p.add_argument("--calib-data", default=None,
                   help="data set for calibration (train split; default: the --data source)")


def _add_sim_args(p):
    p.add_argument("--T", type=_steps, default=_steps(DEFAULT_T),
                   help="time steps at which to report accuracy, comma separated; the "
                        "simulation runs to the largest (default: %(default)s)")
    p.add_argument("--engine", default="numba", choices=["numba", "reference"],
                   help="event-driven engine: compiled Numba kernels or the pure-Python "
                        "reference (small networks only) (default: %(default)s)")
    p.add_argument("--encoding", default="direct", choices=["direct", "poisson"],
                   help="input coding: analog current every step, or Bernoulli rate coding")
    _add_run_args(p)


def _add_run_args(p):
    p.add_argument("--batch-size", type=int, default=None, help="images simulated together")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--energy-mac", type=float, default=4.6,
                   help="energy of one 32-bit MAC in pJ (default: %(default)s)")
    p.add_argument("--energy-ac", type=float, default=0.9,
                   help="energy of one accumulate (SynOp) in pJ (default: %(default)s)")


def build_parser():
    """The argument parser of the ``eventsnn`` command."""
    parser = argparse.ArgumentParser(
        prog="eventsnn",
        description="Convert a trained CNN into a spiking network with burst spikes and "
                    "Lateral Inhibition Pooling (Li & Zeng, IJCAI 2022) and simulate it event "
                    "by event, with exact spike and synaptic-operation counts.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="convert and simulate a model, print accuracy vs T, SynOps, "
                                   "energy (default: the shipped model and data)",
                       description="Load an ANN, measure its accuracy, convert it and simulate "
                                   "the SNN event by event; prints accuracy at every requested "
                                   "T, spikes, SynOps, firing rate and energy against the ANN.")
    _add_model_args(p)
    _add_data_args(p)
    _add_convert_args(p)
    _add_sim_args(p)
    p.add_argument("--json", default=None, help="also write the summary as JSON to this file")
    p.add_argument("--save-network", default=None,
                   help="write the converted SpikingNetwork (.npz) to this file")

    p = sub.add_parser("inspect", help="print a model's layers: op, shape, parameters, MACs",
                       description="Print the graph of an ANN (native .npz or ONNX) or of a "
                                   "converted SpikingNetwork file.")
    p.add_argument("path", nargs="?", default=None,
                   help="model file (default: the shipped model)")
    p.add_argument("--input-shape", default=None,
                   help="per-sample input shape for ONNX models with dynamic shapes, e.g. 3,32,32")

    p = sub.add_parser("convert", help="convert an ANN to a SpikingNetwork file",
                       description="Calibrate on data and write the converted SpikingNetwork.")
    _add_model_args(p)
    _add_data_args(p)
    _add_convert_args(p)
    p.add_argument("--out", required=True, help="output .npz for the SpikingNetwork")

    p = sub.add_parser("report", help="convert, simulate and write a JSON + Markdown report "
                                      "with plots",
                       description="Everything `run` does, plus firing rates, sparsity, the "
                                   "conversion-error decomposition and energy per layer, written "
                                   "as JSON, Markdown and PNG figures.")
    _add_model_args(p)
    _add_data_args(p)
    _add_convert_args(p)
    _add_sim_args(p)
    p.add_argument("--out", default="eventsnn-report", help="output folder (default: %(default)s)")

    p = sub.add_parser("sweep", help="accuracy vs energy of a grid of conversion settings, with "
                                     "the Pareto front (table + plot)",
                       description="Convert and simulate the model with every combination of "
                                   "the listed settings at one T; write sweep.json, sweep.md and "
                                   "sweep.png (accuracy vs E_SNN/E_ANN and vs SynOps, Pareto "
                                   "front marked).")
    _add_model_args(p)
    _add_data_args(p)
    p.add_argument("--T", type=int, default=32, help="time steps (default: %(default)s)")
    p.add_argument("--preset", default="default", help="base preset (default: %(default)s)")
    p.add_argument("--norm", nargs="+", default=["burst-percentile", "percentile", "mmse"],
                   help="norms to try (default: %(default)s)")
    p.add_argument("--percentile", type=float, nargs="+", default=[99.0, 99.9],
                   help="percentiles to try (percentile norms only) (default: %(default)s)")
    p.add_argument("--burst", type=int, nargs="+", default=[5], help="Γ values (default: %(default)s)")
    p.add_argument("--v-init", type=float, nargs="+", default=[0.0, 0.5],
                   help="V(0) values in units of θ (default: %(default)s)")
    p.add_argument("--calibrate", nargs="+", default=["none", "bias"],
                   help="calibrations to try (default: %(default)s)")
    p.add_argument("--calib", type=int, default=256,
                   help="number of calibration images (default: %(default)s)")
    p.add_argument("--calib-data", default=None,
                   help="data set for calibration (train split; default: the --data source)")
    _add_run_args(p)
    p.add_argument("--out", default="eventsnn-sweep", help="output folder (default: %(default)s)")
    return parser


def _shape(text):
    return None if text is None else tuple(int(s) for s in text.split(","))


def _convert(args, graph, calib_x):
    from .convert import convert

    return convert(graph, calib_x, norm=args.norm, percentile=args.percentile, burst=args.burst,
                   pooling=args.pooling, channelwise=args.channelwise or None, preset=args.preset,
                   v_init=args.v_init, calibration=args.calibrate, timesteps=args.calib_T,
                   calib_images=args.calib_images, calib_passes=args.calib_passes)


def cmd_inspect(args):
    path = args.path
    if path is not None and Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            is_net = "__topology__" in z.files
        if is_net:
            from .network import load_network

            print(load_network(path).summary())
            return 0
    graph = load_model(path, _shape(args.input_shape))
    print(graph.summary())
    return 0


def cmd_convert(args):
    graph = load_model(args.model, _shape(args.input_shape))
    _, calib_x, note = _load_data(args)
    t0 = time.perf_counter()
    net = _convert(args, graph, calib_x)
    net.save(args.out)
    print(f"converted in {time.perf_counter() - t0:.1f} s (calibrated on {note}); "
          f"wrote {args.out}")
    print(net.summary())
    return 0


def _pipeline(args, record=()):
    """Shared by run and report: load, ANN accuracy, convert, simulate."""
    from .engine import simulate

    graph = load_model(args.model, _shape(args.input_shape))
    test, calib_x, note = _load_data(args)
    what = "the shipped Fashion-MNIST VGG" if args.model is None else args.model
    print(f"model: {what} ({len(graph.nodes)} nodes, input {graph.input_shape})")
    print(f"data:  {test.name}, {len(test)} images")
    ann_pred = graph.forward(test.x).argmax(axis=1)
    ann_acc = float((ann_pred == test.y).mean())
    print(f"ANN accuracy: {100 * ann_acc:.2f} %")
    t0 = time.perf_counter()
    net = _convert(args, graph, calib_x)
    m = net.meta
    print(f"converted in {time.perf_counter() - t0:.1f} s: preset={m['preset']} norm={m['norm']} "
          f"p={m['percentile']} Γ={m['burst']} V(0)={m['v_init']}θ calibration={m['calibration']} "
          f"pooling={m['pooling']} channelwise={m['channelwise']}, λ from {note}")
    T = max(args.T)
    t0 = time.perf_counter()
    result = simulate(net, test.x, T, engine=args.engine, batch_size=args.batch_size,
                      progress=not args.no_progress, encoding=args.encoding, seed=args.seed,
                      record=record)
    wall = time.perf_counter() - t0
    print(f"simulated T={T} event by event ({args.engine} engine) in {wall:.1f} s "
          f"({1000 * wall / len(test):.1f} ms per image)")
    return graph, test, net, result, ann_acc, wall


def _upto(per_step, t):
    """Sum of per-step counts of every population/connection over steps 1..t."""
    return float(sum(int(v[:t].sum()) for v in per_step.values()))


def _summary(args, graph, test, net, result, ann_acc, wall):
    from .analysis import firing_rates
    from .energy import EnergyModel

    acc = result.accuracy(test.y)
    model = EnergyModel(mac_pj=args.energy_mac, ac_pj=args.energy_ac)
    rows = []
    for t in args.T:
        energy = model.compare(graph, result, upto=t)
        rows.append({"T": t, "accuracy": float(acc[t - 1]),
                     "synops_per_image": _upto(result.synops, t) / len(test),
                     "spikes_per_image": _upto(result.spikes, t) / len(test),
                     "energy_ratio": energy["ratio"],
                     "snn_energy_uj": energy["snn_pj"] / 1e6,
                     "ann_energy_uj": energy["ann_pj"] / 1e6})
    rates = firing_rates(net, result)
    mean_rate = float(np.mean([r for r in rates.values()])) if rates else 0.0
    return {"ann_accuracy": ann_acc, "n_images": len(test), "rows": rows,
            "mean_firing_rate": mean_rate, "wall_s": wall,
            "settings": {k: v for k, v in vars(args).items() if k != "func"}}


def _print_table(summary):
    print()
    print(f"{'T':>5} {'SNN acc %':>10} {'ANN-SNN':>8} {'SynOps/img':>12} {'spikes/img':>11} "
          f"{'E_SNN/E_ANN':>12}")
    for r in summary["rows"]:
        print(f"{r['T']:>5} {100 * r['accuracy']:>10.2f} "
              f"{100 * (summary['ann_accuracy'] - r['accuracy']):>+8.2f} "
              f"{r['synops_per_image']:>12.4g} {r['spikes_per_image']:>11.4g} "
              f"{100 * r['energy_ratio']:>11.1f}%")
    print(f"ANN accuracy {100 * summary['ann_accuracy']:.2f} %; mean firing rate "
          f"{summary['mean_firing_rate']:.4f} spikes/neuron/step; energy at "
          f"4.6 pJ/MAC (ANN, analog input) and 0.9 pJ/AC (SynOps) unless set")


def cmd_run(args):
    graph, test, net, result, ann_acc, wall = _pipeline(args)
    summary = _summary(args, graph, test, net, result, ann_acc, wall)
    _print_table(summary)
    if args.save_network:
        net.save(args.save_network)
        print(f"wrote {args.save_network}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


def cmd_report(args):
    from .energy import EnergyModel
    from .report import write_report

    graph, test, net, result, ann_acc, wall = _pipeline(args, record=("neuron_counts", "potential"))
    summary = _summary(args, graph, test, net, result, ann_acc, wall)
    _print_table(summary)
    energy = EnergyModel(mac_pj=args.energy_mac, ac_pj=args.energy_ac, name="cli")
    paths = write_report(graph, net, result, test.x, test.y, args.out, energy=energy)
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def cmd_sweep(args):
    from .energy import EnergyModel
    from .sweep import sweep, write_sweep

    graph = load_model(args.model, _shape(args.input_shape))
    test, calib_x, note = _load_data(args)
    grid = {"norm": args.norm, "percentile": args.percentile, "burst": args.burst,
            "v_init": args.v_init, "calibration": args.calibrate}
    print(f"sweep on {test.name} ({len(test)} images) at T={args.T}; λ from {note}")
    res = sweep(graph, calib_x, test.x, test.y, T=args.T, grid=grid, base={"preset": args.preset},
                energy=EnergyModel(mac_pj=args.energy_mac, ac_pj=args.energy_ac, name="cli"),
                progress=not args.no_progress, batch_size=args.batch_size)
    paths = write_sweep(res, args.out, title=f"{args.model or 'shipped Fashion-MNIST VGG'}")
    for r in sorted(res["rows"], key=lambda r: r["energy_ratio"]):
        mark = "*" if r["pareto"] else " "
        print(f"{mark} {100 * r['accuracy']:6.2f} %  {r['energy_ratio']:6.3f}x  "
              + ", ".join(f"{k}={v}" for k, v in r["settings"].items()))
    print(f"ANN {100 * res['ann_accuracy']:.2f} %; * = Pareto front (accuracy vs E_SNN/E_ANN)")
    for p in paths.values():
        print(f"wrote {p}")
    return 0


COMMANDS = {"run": cmd_run, "inspect": cmd_inspect, "convert": cmd_convert, "report": cmd_report,
            "sweep": cmd_sweep}


def main(argv=None):
    """Entry point of the ``eventsnn`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"eventsnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
