"""The ``eventsnn`` command line: run, inspect, convert and report.

``eventsnn run`` with no arguments converts the shipped Fashion-MNIST VGG model and simulates
it event by event on the 1000 shipped test images.

Conventions: everything a command needs (arguments, input and output paths, memory) is
checked before the work starts; a wrong argument or unusable input ends with one line
``eventsnn COMMAND: error: ...`` saying what to change and exit status 2. Calibration never
silently uses the evaluation images: it reads the train split of ``--calib-data`` (default:
the ``--data`` source) and fails when that is missing, empty, smaller than ``--calib`` or the
same images as the test split; ``--calib-from-test`` calibrates on test images on request and
says so. Progress bars (stderr) show reading, calibration and simulation; ``--no-progress``
hides them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .validation import MAX_BURST

DEFAULT_T = "8,16,32,64"
REFERENCE_S_PER_NEURON_STEP = 1e-6
"""Lower bound of the reference engine's cost per neuron, image and step (measured 1.8-4.7 µs
on the shipped model, 2-core EPYC); used to warn before very long reference runs."""
REFERENCE_WARN_S = 60.0


class CLIError(ValueError):
    """A wrong argument or unusable input found by the command (exit status 2)."""


# --- argument types -------------------------------------------------------------------------


def _steps(text):
    try:
        steps = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return steps


def _number(expected, valid, integer=False):
    """An argparse type: a finite number (an integer if ``integer``) for which ``valid`` holds."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and valid(value) and (not integer or value == int(value))):
            raise argparse.ArgumentTypeError(f"{expected}, got {text}")
        return int(value) if integer else value

    return parse


_positive_int = _number("expected an integer >= 1", lambda v: v >= 1, integer=True)
_burst = _number(f"Γ must be an integer from 1 to {MAX_BURST} (the paper uses 2 or 5; Γ above the "
                 "largest normalised activation never clips)", lambda v: 1 <= v <= MAX_BURST,
                 integer=True)
_percentile = _number("expected a number in (0, 100] (e.g. 99.9)", lambda v: 0 < v <= 100)
_picojoules = _number("expected a finite energy in pJ >= 0", lambda v: v >= 0)


def _shape(text):
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise CLIError(f"--input-shape takes comma-separated sizes such as 3,32,32, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise CLIError(f"--input-shape takes positive sizes such as 3,32,32, got {text!r}")
    return shape


# --- models and data ------------------------------------------------------------------------


def load_model(path, input_shape=None):
    """Load an ANN (None: the shipped model), recognising the file by content.

    ONNX files are read with :func:`eventsnn.io.onnx.load_onnx` whatever their name, eventsnn
    graphs (``Graph.save``) with :func:`eventsnn.load_graph`; anything else (a converted
    network, a data file, random bytes) raises :class:`CLIError` saying what the file is.
    """
    from .datasets import default_model_path
    from .files import describe, file_kind
    from .graph import load_graph

    if path is None:
        path, _ = default_model_path()
    kind = file_kind(path)
    if kind == "onnx":
        from .io.onnx import load_onnx

        return load_onnx(path, input_shape=input_shape)
    if kind == "graph":
        return load_graph(path)
    if kind == "network":
        raise CLIError(f"{path} is a converted SpikingNetwork, not an ANN: --model takes the ANN "
                       "(an ONNX file or an eventsnn Graph .npz); look at the network with "
                       f"`eventsnn inspect {path}`, or simulate it in Python with "
                       "eventsnn.simulate(eventsnn.load_network(path), x, T)")
    raise CLIError(f"{path}: {describe(kind)}; --model takes an ONNX file or an eventsnn Graph "
                   ".npz (written by Graph.save)")


def _normalization(args):
    """``(Normalization or None, where it comes from)``: --mean/--std, the model's sidecar
    JSON, the shipped model's, or None (the data file's own, else pixels / 255)."""
    from .datasets import Normalization, default_model_path

    if args.mean is not None:
        return Normalization(args.mean, args.std), "--mean/--std"
    if args.model is None:
        return default_model_path()[1], "the shipped model's"
    sidecar = Path(args.model).with_suffix(".json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if "normalization" in meta:
            return Normalization.from_dict(meta["normalization"]), f"from {sidecar.name}"
    return None, None


def _describe_norm(norm, source):
    from .datasets import Normalization

    if norm == Normalization.identity():
        return "none: pixels / 255 in [0, 1] (pass --mean/--std if the model was trained otherwise)"
    fmt = lambda v: "[" + ", ".join(f"{float(a):.4g}" for a in np.ravel(v)) + "]"  # noqa: E731
    return f"mean={fmt(norm.mean)} std={fmt(norm.std)} ({source or 'stored in the data file'})"


def _load_test(args, input_shape, n_classes):
    """The test images of ``--data`` (``-n`` subset), checked against the model's input shape and
    classes; returns ``(dataset, normalisation note)``."""
    from .datasets import load_dataset
    from .validation import check_labels

    norm, source = _normalization(args)
    print(f"reading {args.data} (test split) ...", flush=True)
    test = load_dataset(args.data, split="test", normalization=norm, n=None, seed=args.seed,
                        progress=not args.no_progress)
    if args.n is not None:
        if args.n > len(test):
            raise CLIError(f"-n {args.n} but {test.name} has {len(test)} images; pass -n "
                           f"{len(test)} or fewer")
        from .datasets import subset

        test = subset(test, args.n, seed=args.seed)
    if test.x.shape[1:] != tuple(input_shape):
        raise CLIError(f"the model takes inputs of shape {tuple(input_shape)} but the images "
                       f"of {test.name} are {test.x.shape[1:]}; pass --data with images for this "
                       "model (e.g. --data path/to/cifar10.npz for a CIFAR-10 model)")
    check_labels(test.y, len(test), n_classes, name=f"labels of {test.name}")
    return test, _describe_norm(test.normalization, source)


def _calibration(args, test):
    """Calibration images and a note on where they came from; never the test images silently."""
    from .datasets import load_dataset, subset

    if args.calib_from_test:
        idx = np.random.default_rng(args.seed).permutation(len(test))[:args.calib]
        note = (f"{len(idx)} images OF THE TEST SET {test.name} (--calib-from-test: accuracies "
                "on these images are optimistic)")
        return test.x[idx], note
    src = args.calib_data or args.data
    fix = ("pass --calib-data with training images normalised like the test images, or "
           "--calib-from-test to calibrate on the test images (optimistic)")
    try:
        calib = load_dataset(src, split="train", normalization=test.normalization, seed=args.seed,
                             progress=not args.no_progress)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise CLIError(f"calibration data {src}: {e}; {fix}") from None
    same = args.calib_data is None or Path(args.calib_data).resolve() == Path(args.data).resolve()
    if calib.single_split and same:
        raise CLIError(f"{src} holds one set of images (x/y), which is the evaluation set; "
                       f"calibrating on it would tune the network to the test images; {fix}")
    if len(calib) == 0:
        raise CLIError(f"calibration data {calib.name} holds no images; {fix}")
    if args.calib > len(calib):
        raise CLIError(f"--calib {args.calib} but {calib.name} has only {len(calib)} images; pass "
                       f"--calib {len(calib)} or fewer")
    if calib.x.shape[1:] != test.x.shape[1:]:
        raise CLIError(f"calibration images of {calib.name} have shape {calib.x.shape[1:]} but the "
                       f"test images {test.x.shape[1:]}; {fix}")
    calib = subset(calib, args.calib, seed=args.seed)
    return calib.x, f"{len(calib)} {calib.name} images"


# --- up-front checks ------------------------------------------------------------------------


def _check_output_file(path, option):
    """An output file must be creatable: its folder exists and is writable, it is no folder."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{option} {path} is a folder; give a file name")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CLIError(f"{option} {path}: not writable; choose another location")


def _check_output_folder(path, option):
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{option} {path} is an existing file, not a folder; choose a folder name")
    existing = p if p.exists() else next((a for a in p.absolute().parents if a.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        raise CLIError(f"{option} {path}: not writable; choose another location")


def _check_outputs(args):
    if args.command == "run":
        _check_output_file(args.json, "--json")
        _check_output_file(args.save_network, "--save-network")
    elif args.command == "convert":
        _check_output_file(args.out, "--out")
    elif args.command == "report":
        _check_output_folder(args.out, "--out")


def _energy_model(args):
    from .energy import EnergyModel, get_energy_model

    preset = get_energy_model(args.energy)
    if args.energy_mac is None and args.energy_ac is None:
        return preset
    return EnergyModel(preset.mac_pj if args.energy_mac is None else args.energy_mac,
                       preset.ac_pj if args.energy_ac is None else args.energy_ac,
                       f"{preset.name} with --energy-mac/--energy-ac")


def _first_compile_note():
    """A line to print when the Numba kernels are not in the cache yet (first run)."""
    from .kernels import simulate as kernels

    try:
        folder = Path(kernels.simulate_batch._cache._cache_path)
    except AttributeError:      # compiled in memory: no writable cache folder
        return "compiling the Numba kernels (about 20 s; no writable cache folder, so every run)"
    if folder.is_dir() and any(folder.glob("*simulate_batch*.nbi")):
        return None
    return f"compiling the Numba kernels (first run only, about 20 s; cached in {folder.parent})"


def _reference_warning(net, n_images, T):
    neurons = sum(p.size for p in net.populations)
    seconds = REFERENCE_S_PER_NEURON_STEP * neurons * n_images * T
    if seconds < REFERENCE_WARN_S:
        return None
    return (f"warning: the reference engine is plain Python: {n_images} images x T={T} x "
            f"{neurons} neurons will take at least {seconds / 60:.0f} min (about 1 µs per neuron "
            "and step); use --engine numba, or fewer images (-n) and steps (--T)")


# --- the parser -----------------------------------------------------------------------------


def _add_model_args(p):
    p.add_argument("--model", default=None,
                   help="ANN file: ONNX or native eventsnn Graph .npz, recognised by content "
                        "(default: the shipped Fashion-MNIST VGG)")
    p.add_argument("--input-shape", default=None,
                   help="per-sample input shape for ONNX models with dynamic shapes, e.g. 3,32,32")


def _add_data_args(p):
    p.add_argument("--data", default="fashion-mnist-sample",
                   help="data set: 'fashion-mnist-sample' (shipped, 1000 test images), "
                        "'fashion-mnist', 'mnist', an IDX folder, a CIFAR-10 batch folder, a "
                        "CIFAR-10 JPEG .tar.gz or an .npz with x/y (default: %(default)s)")
    p.add_argument("-n", type=_positive_int, default=None,
                   help="evaluate a class-balanced seeded subset of N test images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for subsets and Poisson input")
    p.add_argument("--mean", type=float, nargs="+", default=None,
                   help="per-channel mean of the input normalisation (default: the model's or "
                        "the data file's; the one applied is printed)")
    p.add_argument("--std", type=float, nargs="+", default=None,
                   help="per-channel std of the input normalisation")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_convert_args(p):
    from .convert import POOLINGS
    from .convert.calibrate import NORMS
    from .convert.layer_calibration import CALIBRATIONS
    from .convert.presets import PRESETS as CONVERSION_PRESETS

    p.add_argument("--preset", default="default", choices=list(CONVERSION_PRESETS),
                   help="conversion settings not given below: 'default' (percentile 99.8, "
                        "V(0)=θ/2, bias calibration) or 'paper' (burst-percentile 99.9, V(0)=0, no "
                        "calibration: the paper's method) (default: %(default)s)")
    p.add_argument("--norm", default=None, choices=NORMS,
                   help="data-based weight normalisation (Eq. 6); burst-percentile divides "
                        "activations above 1 by Γ before the percentile; mmse minimises the "
                        "burst neuron's squared error at --calib-T (default: the preset's)")
    p.add_argument("--percentile", type=_percentile, default=None,
                   help="percentile p of the activations used as λ (default: the preset's)")
    p.add_argument("--burst", type=_burst, default=None,
                   help="Γ, most spikes a neuron emits per step; 1 = plain IF (default: the preset's, 5)")
    p.add_argument("--pooling", default="lipool", choices=POOLINGS,
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
    p.add_argument("--calib-images", type=_positive_int, default=None,
                   help="calibration images simulated by --calibrate (default: the preset's, 64)")
    p.add_argument("--calib-passes", type=_positive_int, default=None,
                   help="simulations of them (default: the preset's, 2)")
    p.add_argument("--calib-T", type=_positive_int, default=None,
                   help="T the conversion is tuned for by --norm mmse and --calibrate "
                        "(default: the preset's, 32)")
    _add_calib_source_args(p)


def _add_calib_source_args(p):
    p.add_argument("--calib", type=_positive_int, default=256,
                   help="number of calibration images, a class-balanced seeded subset "
                        "(default: %(default)s)")
    p.add_argument("--calib-data", default=None,
                   help="data set for calibration, its train split (an x/y .npz: all of it); "
                        "default: the train split of --data. Missing or unusable: an error")
    p.add_argument("--calib-from-test", action="store_true",
                   help="calibrate on test images instead (optimistic; printed in the output)")


def _add_sim_args(p):
    from .engine import ENCODINGS, ENGINES

    p.add_argument("--T", type=_steps, default=_steps(DEFAULT_T),
                   help="time steps at which to report accuracy, comma separated; the "
                        "simulation runs to the largest (default: %(default)s)")
    p.add_argument("--engine", default="numba", choices=ENGINES,
                   help="event-driven engine: compiled Numba kernels or the pure-Python "
                        "reference (small networks only) (default: %(default)s)")
    p.add_argument("--encoding", default="direct", choices=ENCODINGS,
                   help="input coding: analog current every step, or Bernoulli rate coding")
    _add_run_args(p)


def _add_run_args(p):
    """Options of every command that simulates: batch size and energy figures."""
    from .energy import PRESETS

    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="images simulated together")
    p.add_argument("--energy", default="45nm-fp32", choices=sorted(PRESETS),
                   help="energy preset (pJ per MAC and per AC; default: %(default)s, "
                        f"{PRESETS['45nm-fp32'].mac_pj} pJ/MAC and {PRESETS['45nm-fp32'].ac_pj} pJ/AC)")
    p.add_argument("--energy-mac", type=_picojoules, default=None,
                   help="energy of one MAC in pJ (overrides the preset's)")
    p.add_argument("--energy-ac", type=_picojoules, default=None,
                   help="energy of one accumulate (SynOp) in pJ (overrides the preset's)")


def _add_dask_args(p):
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="simulate on a Dask cluster: a scheduler address (tcp://host:8786), or "
                        "local:N to start N single-threaded worker processes on this machine "
                        "(closed at the end); the results are identical to a local run. Needs "
                        "pip install eventsnn[dask]")


def build_parser():
    """The argument parser of the ``eventsnn`` command."""
    parser = argparse.ArgumentParser(
        prog="eventsnn",
        description="Convert a trained CNN into a spiking network with burst spikes and "
                    "Lateral Inhibition Pooling (Li & Zeng, IJCAI 2022) and simulate it event "
                    "by event, with exact spike and synaptic-operation counts. Argument and "
                    "input errors exit with status 2.")
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
    _add_dask_args(p)
    p.add_argument("--json", default=None, help="also write the summary as JSON to this file")
    p.add_argument("--save-network", default=None,
                   help="write the converted SpikingNetwork (.npz) to this file")

    p = sub.add_parser("inspect", help="print a model's layers: op, shape, parameters, MACs",
                       description="Print the graph of an ANN (native .npz or ONNX) or of a "
                                   "converted SpikingNetwork file, recognised by content.")
    p.add_argument("path", nargs="?", default=None,
                   help="model file (default: the shipped model)")
    p.add_argument("--input-shape", default=None,
                   help="per-sample input shape for ONNX models with dynamic shapes, e.g. 3,32,32")

    p = sub.add_parser("convert", help="convert an ANN to a SpikingNetwork file",
                       description="Calibrate on data and write the converted SpikingNetwork. "
                                   "The calibration images must fit the model: for a model "
                                   "that is not the shipped one pass --data.")
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
    _add_dask_args(p)
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

    p = sub.add_parser("sweep", help="accuracy vs energy of a grid of conversion settings, with "
                                     "the Pareto front (table + plot)",
                       description="Convert and simulate the model with every combination of "
                                   "the listed settings at one T; write sweep.json, sweep.md and "
                                   "sweep.png (accuracy vs E_SNN/E_ANN and vs SynOps, Pareto "
                                   "front marked).")
    _add_model_args(p)
    _add_data_args(p)
    p.add_argument("--T", type=_positive_int, default=32, help="time steps (default: %(default)s)")
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
    _add_calib_source_args(p)
    _add_run_args(p)
    _add_dask_args(p)
    p.add_argument("--out", default="eventsnn-sweep", help="output folder (default: %(default)s)")
    return parser


def _check_args(args):
    """Argument combinations argparse cannot check, and the outputs (before any work)."""
    if args.command in ("run", "convert", "report", "export-nir", "sweep"):
        if (args.mean is None) != (args.std is None):
            raise CLIError("--mean and --std go together (one value per channel each)")
        if args.mean is not None and len(args.mean) != len(args.std):
            raise CLIError(f"--mean has {len(args.mean)} values but --std {len(args.std)}")
        if args.mean is not None and min(args.std) <= 0:
            raise CLIError(f"--std must be > 0, got {args.std}")
    _check_outputs(args)


# --- commands -------------------------------------------------------------------------------


def _convert(args, graph, calib_x, reset="subtract"):
    from .convert import convert

    return convert(graph, calib_x, norm=args.norm, percentile=args.percentile, burst=args.burst,
                   pooling=args.pooling, channelwise=args.channelwise or None, preset=args.preset,
                   v_init=args.v_init, calibration=args.calibrate, timesteps=args.calib_T,
                   calib_images=args.calib_images, calib_passes=args.calib_passes,
                   progress=not args.no_progress, reset=reset)


def cmd_inspect(args):
    from .files import file_kind

    if args.path is not None and file_kind(args.path) == "network":
        from .network import load_network

        print(load_network(args.path).summary())
        return 0
    graph = load_model(args.path, _shape(args.input_shape))
    print(graph.summary())
    return 0


def _model_and_data(args):
    graph = load_model(args.model, _shape(args.input_shape))
    what = "the shipped Fashion-MNIST VGG" if args.model is None else args.model
    print(f"model: {what} ({len(graph.nodes)} nodes, input {graph.input_shape})")
    n_classes = int(np.prod(graph.output_shape))
    test, norm_note = _load_test(args, graph.input_shape, n_classes)
    print(f"data:  {test.name}, {len(test)} images; input normalisation: {norm_note}")
    return graph, test, n_classes


def cmd_convert(args):
    graph, test, _ = _model_and_data(args)
    calib_x, note = _calibration(args, test)
    t0 = time.perf_counter()
    net = _convert(args, graph, calib_x)
    net.save(args.out)
    print(f"converted in {time.perf_counter() - t0:.1f} s (calibrated on {note}); "
          f"wrote {args.out}")
    print(net.summary())
    return 0


def _ann_accuracy(graph, test, progress, chunk=256):
    from tqdm.auto import tqdm

    correct = 0
    for s in tqdm(range(0, len(test), chunk), desc="ANN", unit="batch", disable=not progress):
        correct += int((graph.forward(test.x[s:s + chunk]).argmax(axis=1) == test.y[s:s + chunk]).sum())
    return correct / len(test)


def _pipeline(args, record=()):
    """Shared by run and report: load, ANN accuracy, convert, simulate."""
    from .distributed import connect
    from .engine import simulate

    graph, test, n_classes = _model_and_data(args)
    calib_x, note = _calibration(args, test)
    ann_acc = _ann_accuracy(graph, test, not args.no_progress)
    print(f"ANN accuracy: {100 * ann_acc:.2f} %")
    if ann_acc < 1.5 / n_classes:
        print(f"warning: the ANN is near chance ({100 / n_classes:.1f} % for {n_classes} classes): "
              "check the input normalisation (--mean/--std) and that --data matches the model",
              flush=True)
    print(f"{'warning: ' if args.calib_from_test else ''}calibrating on {note} ...", flush=True)
    t0 = time.perf_counter()
    net = _convert(args, graph, calib_x)
    m = net.meta
    print(f"converted in {time.perf_counter() - t0:.1f} s: preset={m['preset']} norm={m['norm']} "
          f"p={m['percentile']} Γ={m['burst']} V(0)={m['v_init']}θ calibration={m['calibration']} "
          f"pooling={m['pooling']} channelwise={m['channelwise']}, calibrated on {note}")
    T = max(args.T)
    with connect(args.dask) as client:
        if client is not None:
            print(f"dask:  {len(client.nthreads())} workers, {sum(client.nthreads().values())} "
                  f"threads at {client.scheduler.address}")
        elif args.engine == "reference":
            warning = _reference_warning(net, len(test), T)
        else:
            warning = _first_compile_note()
        if client is None and warning:
            print(warning, flush=True)
        t0 = time.perf_counter()
        result = simulate(net, test.x, T, engine=args.engine, batch_size=args.batch_size,
                          progress=not args.no_progress, encoding=args.encoding, seed=args.seed,
                          record=record, client=client)
        wall = time.perf_counter() - t0
    print(f"simulated T={T} event by event ({args.engine} engine) in {wall:.1f} s "
          f"({1000 * wall / len(test):.1f} ms per image)")
    return graph, test, net, result, ann_acc, wall


def _upto(per_step, t):
    """Sum of per-step counts of every population/connection over steps 1..t."""
    return float(sum(int(v[:t].sum()) for v in per_step.values()))


def _summary(args, graph, test, net, result, ann_acc, wall):
    from .analysis import firing_rates

    acc = result.accuracy(test.y)
    model = _energy_model(args)
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
            "mean_firing_rate": mean_rate, "wall_s": wall, "energy_model": model.to_dict(),
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
    e = summary["energy_model"]
    print(f"ANN accuracy {100 * summary['ann_accuracy']:.2f} %; mean firing rate "
          f"{summary['mean_firing_rate']:.4f} spikes/neuron/step; energy at "
          f"{e['mac_pJ']:g} pJ/MAC (ANN, analog input) and {e['ac_pJ']:g} pJ/AC (SynOps), "
          f"{e['name']}")


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
    from .report import write_report

    graph, test, net, result, ann_acc, wall = _pipeline(args, record=("neuron_counts", "potential"))
    summary = _summary(args, graph, test, net, result, ann_acc, wall)
    _print_table(summary)
    paths = write_report(graph, net, result, test.x, test.y, args.out, energy=_energy_model(args))
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def cmd_export_nir(args):
    import nir

    from .io.nir import NIR_PRESET, export_report, nir_features, to_nir
    from .network import load_network

    from .files import file_kind

    if args.model is not None and file_kind(args.model) == "network":
        net = load_network(args.model)
        print(f"network: {args.model}")
        test, norm_note = _load_test(args, net.input_shape, net.output.size)
        print(f"data:  {test.name}, {len(test)} images; input normalisation: {norm_note}")
    else:
        graph, test, _ = _model_and_data(args)
        calib_x, note = _calibration(args, test)
        if args.exact:
            args.burst, args.pooling = NIR_PRESET["burst"], NIR_PRESET["pooling"]
        net = _convert(args, graph, calib_x, reset=NIR_PRESET["reset"] if args.exact else "subtract")
        m = net.meta
        print(f"converted: preset={m['preset']} norm={m['norm']} Γ={m['burst']} "
              f"pooling={m['pooling']} V(0)={m['v_init']}θ calibration={m['calibration']} "
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


def cmd_sweep(args):
    from .sweep import sweep, write_sweep

    graph, test, _ = _model_and_data(args)
    calib_x, note = _calibration(args, test)
    grid = {"norm": args.norm, "percentile": args.percentile, "burst": args.burst,
            "v_init": args.v_init, "calibration": args.calibrate}
    print(f"sweep on {test.name} ({len(test)} images) at T={args.T}; calibrated on {note}")
    from .distributed import connect

    with connect(args.dask) as client:
        res = sweep(graph, calib_x, test.x, test.y, T=args.T, grid=grid,
                    base={"preset": args.preset}, energy=_energy_model(args),
                    progress=not args.no_progress, batch_size=args.batch_size, client=client)
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
            "export-nir": cmd_export_nir, "sweep": cmd_sweep}


def main(argv=None):
    """Entry point of the ``eventsnn`` command.

    Returns
    -------
    int
        0 on success, 2 for a wrong argument or unusable input (one line on stderr saying
        what to change; argparse's own errors use 2 as well).
    """
    from .validation import UnsupportedModelError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:          # --help (0) or an argparse error (2, already printed)
        return e.code
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _check_args(args)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # the reader (e.g. `| head`) closed the pipe: stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UnsupportedModelError, ValueError, TypeError, FileNotFoundError, ImportError,
            MemoryError) as e:
        print(f"eventsnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
