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
    p.add_argument("--norm", default="burst-percentile",
                   choices=["max", "percentile", "burst-percentile"],
                   help="data-based weight normalisation (Eq. 6); burst-percentile divides "
                        "activations above 1 by Γ before the percentile (default: %(default)s)")
    p.add_argument("--percentile", type=float, default=99.9,
                   help="percentile p of the activations used as λ (default: %(default)s)")
    p.add_argument("--burst", type=int, default=5,
                   help="Γ, most spikes a neuron emits per step; 1 = plain IF (default: %(default)s)")
    p.add_argument("--pooling", default="lipool", choices=["lipool", "maxgate", "avg"],
                   help="how MaxPool is converted: Lateral Inhibition Pooling (Eq. 12), the "
                        "max-gate baseline (Eq. 11) or average pooling (default: %(default)s)")
    p.add_argument("--channelwise", action="store_true",
                   help="one normalisation factor λ per channel instead of per layer")
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

    p = sub.add_parser("export-nir", help="export to NIR with the list of approximations and a "
                                          "measured loss report",
                       description="Write a converted network (or an ANN converted here) as a "
                                   "NIR graph; list every feature NIR cannot express exactly and "
                                   "measure accuracy and SynOps of the original against the "
                                   "exported semantics (from_nir of the file).")
    _add_model_args(p)
    _add_data_args(p)
    _add_convert_args(p)
    _add_sim_args(p)
    p.add_argument("--out", required=True, help="output .nir file")
    p.add_argument("--exact", action="store_true",
                   help="convert with the preset NIR holds exactly: Γ=1, reset to zero, "
                        "average pooling (overrides --burst and --pooling)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) instead of writing an approximate graph")
    return parser


def _shape(text):
    return None if text is None else tuple(int(s) for s in text.split(","))


def _convert(args, graph, calib_x):
    from .convert import convert

    return convert(graph, calib_x, norm=args.norm, percentile=args.percentile, burst=args.burst,
                   pooling=args.pooling, channelwise=args.channelwise)


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
    print(f"converted in {time.perf_counter() - t0:.1f} s: norm={args.norm} p={args.percentile} "
          f"Γ={args.burst} pooling={args.pooling} channelwise={args.channelwise}, "
          f"calibrated on {note}")
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


def cmd_export_nir(args):
    import nir

    from .io.nir import NIR_PRESET, export_report, nir_features, to_nir
    from .network import load_network

    test, calib_x, note = _load_data(args)
    if args.model is not None and Path(args.model).suffix == ".npz" and \
            "__topology__" in np.load(args.model, allow_pickle=False).files:
        net = load_network(args.model)
        print(f"network: {args.model}")
    else:
        graph = load_model(args.model, _shape(args.input_shape))
        if args.exact:
            args.burst, args.pooling = NIR_PRESET["burst"], NIR_PRESET["pooling"]
        from .convert import convert

        net = convert(graph, calib_x, norm=args.norm, percentile=args.percentile,
                      burst=args.burst, pooling=args.pooling, channelwise=args.channelwise,
                      reset=NIR_PRESET["reset"] if args.exact else "subtract")
        print(f"converted: norm={args.norm} Γ={args.burst} pooling={args.pooling} "
              f"reset={'zero' if args.exact else 'subtract'}, calibrated on {note}")
    feats = nir_features(net)
    print(f"features NIR cannot express exactly: {len(feats)}")
    for pop, feat in feats:
        print(f"  - {pop}: {feat}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the list above is the warning
        graph_nir = to_nir(net, strict=args.strict)
    nir.write(args.out, graph_nir)
    print(f"wrote {args.out} (dt = {graph_nir.metadata['dt']}; read it with "
          f"eventsnn.from_nir(path, dt={graph_nir.metadata['dt']}))")
    rows = export_report(net, nir.read(args.out), test.x, test.y, args.T,
                         dt=graph_nir.metadata["dt"], engine=args.engine,
                         batch_size=args.batch_size, progress=not args.no_progress,
                         encoding=args.encoding, seed=args.seed)
    print(f"\nmeasured on {test.name}, {len(test)} images ({args.encoding} input):")
    print(f"{'T':>5} {'acc original %':>15} {'acc NIR %':>10} {'SynOps/img original':>20} "
          f"{'SynOps/img NIR':>15}")
    for r in rows:
        print(f"{r['T']:>5} {100 * r['acc_original']:>15.2f} {100 * r['acc_nir']:>10.2f} "
              f"{r['synops_original']:>20.4g} {r['synops_nir']:>15.4g}")
    return 0


COMMANDS = {"run": cmd_run, "inspect": cmd_inspect, "convert": cmd_convert, "report": cmd_report,
            "export-nir": cmd_export_nir}


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
