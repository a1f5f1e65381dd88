"""The model zoo: pretrained third-party CNNs imported, converted with the defaults, simulated.

For every model of ``zoo_models.ZOO`` whose weights are in the zoo directory:

1. build the torch module and load the published weights (``zoo_models.load_model``);
2. check the torch module against the source framework (the authors' TFLite export for the
   Keras model; torch checkpoints are their own source) and measure the ANN accuracy;
3. import it twice: ``eventsnn.from_torch`` and ``torch.onnx.export`` + ``eventsnn.load_onnx``,
   each compared with torch (max |error| / max |torch output|, on the test images);
4. ``eventsnn.convert`` with its defaults (calibrated on training images), ``simulate`` with the
   numba engine to ``T``, and record the SNN accuracy at T = 16/32/64, the mean firing rate and
   E_SNN/E_ANN (4.6 pJ/MAC, 0.9 pJ/AC).

Data: a class-balanced seeded subset of the CIFAR-10 test set (``-n``, default 500; the arrays
are sorted by class, so never the first n) and a class-balanced subset of the training set for
calibration, each model with its own input normalisation; the ANN is measured on the same
images as the SNN. A model the importer or converter refuses is reported with the error.

Writes ``benchmarks/results/zoo.json`` and ``zoo.md`` (after each model, so a long run can be
followed). Run from the repository root::

    python benchmarks/zoo.py [--zoo-dir DIR] [-n 500] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (RESULTS, SHARED, _raw_cifar, default_cifar, machine_info, machine_md,  # noqa: E402
                    md_table, write_json)
import keras_ref  # noqa: E402
import zoo_models  # noqa: E402

MNIST = SHARED / "data" / "mnist"

T_REPORT = (16, 32, 64)  # plus the last step simulated when --T is larger


def rel_error(out, ref):
    """``max |out - ref| / max |ref|``: the importers' agreement measure (float32 arithmetic in
    a different order differs by rounding only, ~1e-6)."""
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(out, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def data_source(dataset):
    """Where the images of ``dataset`` ("cifar10" or "mnist") are read from."""
    return default_cifar() if dataset == "cifar10" else MNIST


def subsets(entry, n_test, n_calib, seed):
    """Class-balanced test/calibration images of the entry's data set, prepared for it."""
    from eventsnn.datasets import Normalization, read_raw, subset_indices

    if entry.dataset == "cifar10":
        raw = _raw_cifar(data_source("cifar10"))
    else:
        raw = {s: read_raw(data_source(entry.dataset), s)[:2] for s in ("train", "test")}
    (xt, yt), (xc, yc) = raw["test"], raw["train"]
    norm = Normalization(entry.mean, entry.std)

    def prep(x):
        x = norm.apply(x)
        return np.floor(x) if entry.prep == "floor" else x

    it = subset_indices(yt, n_test, seed)
    ic = subset_indices(yc, n_calib, seed + 1)
    return prep(xt[it]), np.asarray(yt[it], np.int64), prep(xc[ic])


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def agreement(out, ref, against):
    return {"against": against, "rel_error": rel_error(out, ref),
            "argmax_agree": float((np.argmax(out, 1) == np.argmax(ref, 1)).mean()),
            "images": len(ref)}


def source_checks(name, x, directory):
    """Compare the torch module with the model as its authors saved it, on ``x``.

    Keras models: the graph and weights stored in the ``.h5`` evaluated by ``keras_ref`` (and,
    where the authors exported one, their float TFLite file, which also checks ``keras_ref``);
    compared as softmax probabilities with the torch module as trained (NNoM: with its
    rounding). Torch checkpoints are their own source: an empty list.
    """
    e = zoo_models.entry(name)
    if not e.framework.startswith("Keras"):
        return []
    as_trained = zoo_models.load_model(name, directory, quantised=True)
    probs = softmax(torch_forward(as_trained, x))
    path = zoo_models.weight_path(name, directory)
    keras = keras_ref.keras_forward(path, x if keras_ref.channels_first(path) else
                                    x.transpose(0, 2, 3, 1))
    checks = [agreement(probs, keras, "the .h5 graph and weights (keras_ref, NumPy)")]
    tfl = zoo_models.tflite_outputs(name, x, directory)
    if tfl is not None:
        checks.append(agreement(probs, tfl, "the authors' float TFLite export"))
        checks.append(agreement(keras, tfl, "(keras_ref itself) the TFLite export"))
    return checks


def torch_forward(module, x, batch=250):
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[i:i + batch])).numpy()
                               for i in range(0, len(x), batch)])


def onnx_import(module, x_example):
    """Export ``module`` with ``torch.onnx.export`` (opset 17) and read it back with
    ``eventsnn.load_onnx``; returns ``(graph, onnxruntime outputs on x_example or None)``."""
    import torch

    from eventsnn.io.onnx import load_onnx

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation/folding notices
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(module, torch.from_numpy(x_example[:1]), str(path), opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
        graph = load_onnx(path)
        try:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            ort_out = sess.run(None, {"input": x_example})[0]
        except ImportError:
            ort_out = None
    return graph, ort_out


def run_model(name, args, log=print):
    """Everything for one zoo model; returns its result dict (``errors``: refusals by stage)."""
    import torch

    from eventsnn.analysis import firing_rates
    from eventsnn.convert import convert
    from eventsnn.energy import get_energy_model
    from eventsnn.engine import simulate
    from eventsnn.io.torch_import import from_torch

    e = zoo_models.entry(name)
    rec = {"model": name, "title": e.title, "source": e.source_url, "repo": e.repo,
           "commit": e.commit, "files": {k: {"path": p, "sha256": zoo_models.sha256(
               zoo_models.zoo_dir(args.zoo_dir) / k)} for k, (p, _) in e.files.items()},
           "licence": e.licence, "framework": e.framework, "features": list(e.features),
           "dataset": e.dataset, "normalization": {"mean": e.mean, "std": e.std, "prep": e.prep},
           "reported": e.reported, "notes": e.notes}
    torch.set_num_threads(max(1, args.threads))
    module = zoo_models.load_model(name, args.zoo_dir)
    x, y, x_calib = subsets(e, args.n, args.calib, args.seed)
    ref = torch_forward(module, x)
    rec["ann_accuracy"] = float((ref.argmax(1) == y).mean())
    log(f"{name}: ANN (torch) {100 * rec['ann_accuracy']:.2f} % on {len(y)} images")
    rec["source_checks"] = source_checks(name, x[:args.check_n], args.zoo_dir)
    if e.builder == "nnom_densenet":  # the rounding the float network drops
        trained = torch_forward(zoo_models.load_model(name, args.zoo_dir, quantised=True), x)
        rec["ann_accuracy_as_trained"] = float((trained.argmax(1) == y).mean())
    REFUSED = (ValueError, TypeError, NotImplementedError, RuntimeError)
    graphs, rec["errors"] = {}, {}
    try:
        graphs["torch"] = from_torch(module, x[:8])
        rec["from_torch_rel_error"] = rel_error(graphs["torch"].forward(x), ref)
    except REFUSED as err:
        rec["errors"]["from_torch"] = f"{type(err).__name__}: {err}"
    try:
        graphs["onnx"], ort_out = onnx_import(module, x[:args.check_n])
        rec["onnx_rel_error"] = rel_error(graphs["onnx"].forward(x), ref)
        if ort_out is not None:
            rec["onnxruntime_rel_error"] = rel_error(ort_out, ref[:args.check_n])
    except REFUSED as err:
        rec["errors"]["load_onnx"] = f"{type(err).__name__}: {err}"
    for stage, msg in rec["errors"].items():
        log(f"  refused by {stage}: {msg[:300]}")
        if args.verbose:
            traceback.print_exc()
    if not graphs:
        return rec
    rec["converted_from"] = next(iter(graphs))  # the from_torch graph where both exist
    graph = graphs[rec["converted_from"]]
    rec["graph"] = {"nodes": len(graph.nodes), "macs": int(sum(graph.macs().values())),
                    "ops": sorted({n.op for n in graph.nodes})}
    log("  import rel. error: " + ", ".join(f"{k} {rec[k]:.2e}" for k in
                                             ("from_torch_rel_error", "onnx_rel_error") if k in rec))
    try:
        t0 = time.perf_counter()
        net = convert(graph, x_calib)
        rec["convert_s"] = time.perf_counter() - t0
    except REFUSED as err:
        rec["errors"]["convert"] = f"{type(err).__name__}: {err}"
        log(f"  refused by convert: {err}")
        return rec
    t0 = time.perf_counter()
    result = simulate(net, x, args.T, engine="numba", progress=False)
    rec["simulate_s"] = time.perf_counter() - t0
    acc = result.accuracy(y)
    model = get_energy_model("45nm-fp32")  # 4.6 pJ/MAC, 0.9 pJ/AC
    rec["snn"] = {str(t): {"accuracy": float(acc[t - 1]),
                           "energy_ratio": float(model.compare(graph, result, upto=t)["ratio"])}
                  for t in report_steps(args.T)}
    rates = firing_rates(net, result)
    rec["mean_firing_rate"] = float(np.mean(list(rates.values()))) if rates else 0.0
    rec["snn_accuracy_curve"] = [float(a) for a in acc]
    log("  SNN " + ", ".join(f"T={t} {100 * r['accuracy']:.2f} %" for t, r in rec["snn"].items())
        + f"; firing rate {rec['mean_firing_rate']:.4f}; simulated in {rec['simulate_s']:.0f} s")
    return rec


def report_steps(T):
    """The steps reported: 16, 32, 64 (those <= T) and T itself."""
    return sorted({t for t in T_REPORT if t <= T} | {T})


def pct(v):
    return "—" if v is None else f"{100 * v:.2f}"


def markdown(results, meta):
    """The zoo table (Markdown)."""
    steps = report_steps(meta["T"])
    rows = []
    for r in results:
        snn = r.get("snn", {})
        gap = (r["ann_accuracy"] - snn["64"]["accuracy"]) if "64" in snn else None
        rows.append([
            f"[{r['model']}]({r['source']})", r["licence"], "; ".join(r["features"]),
            pct(r.get("ann_accuracy")),
            *(pct(snn.get(str(t), {}).get("accuracy")) for t in steps),
            "—" if gap is None else f"{100 * gap:+.2f}",
            f"{r['mean_firing_rate']:.4f}" if "mean_firing_rate" in r else "—",
            *(f"{100 * snn[str(t)]['energy_ratio']:.1f} %" if str(t) in snn else "—"
              for t in steps),
            " / ".join(f"{r[k]:.1e}" if k in r else "refused"
                       for k in ("from_torch_rel_error", "onnx_rel_error"))])
    header = ["model", "licence", "structure", "ANN %", *(f"SNN T={t}" for t in steps),
              "ANN−SNN T=64 (pt)", "firing rate", *(f"E ratio T={t}" for t in steps),
              "import rel. err. torch / ONNX"]
    lines = ["# Model zoo: pretrained third-party CNNs converted with the defaults", "",
             meta["data"], "", md_table(header, rows), ""]
    for r in results:
        line = f"- **{r['model']}** ({r['title']}, {r['dataset']}): {r['repo']}@" \
               f"{r['commit'][:10]}, {r['framework']}; published accuracy {r['reported']}."
        for sc in r["source_checks"]:
            line += (f" Torch vs {sc['against']}: rel. error {sc['rel_error']:.1e}, argmax "
                     f"agrees on {100 * sc['argmax_agree']:.0f} % of {sc['images']} images.")
        if "ann_accuracy_as_trained" in r:
            line += (f" As trained (with rounding): {pct(r['ann_accuracy_as_trained'])} %; "
                     f"{r['notes']}")
        if "onnxruntime_rel_error" in r:
            line += f" onnxruntime vs torch: {r['onnxruntime_rel_error']:.1e}."
        for stage, msg in r.get("errors", {}).items():
            short = msg if len(msg) <= 240 else msg[:240] + " …"
            line += f" **Refused by {stage}** — {short}"
        lines.append(line)
    lines += ["", meta["settings"], "", meta["machine"], ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zoo-dir", default=None,
                   help="weights folder (default: $EVENTSNN_ZOO_DIR or ~/.cache/eventsnn/zoo)")
    p.add_argument("--models", nargs="*", default=None, help="zoo models (default: all present)")
    p.add_argument("-n", type=int, default=500, help="test images (class-balanced, seeded)")
    p.add_argument("--calib", type=int, default=256, help="calibration (training) images")
    p.add_argument("--T", type=int, default=64, help="time steps simulated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-n", type=int, default=64,
                   help="images for the source-framework and onnxruntime checks")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", default=str(RESULTS / "zoo"), help="output stem (.json, .md)")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of refusals")
    args = p.parse_args(argv)
    names = args.models if args.models is not None else zoo_models.available(args.zoo_dir)
    if not names:
        print(f"no zoo model found in {zoo_models.zoo_dir(args.zoo_dir)}; see "
              "benchmarks/zoo_fetch.md")
        return 1
    from eventsnn.convert.presets import PRESETS

    defaults = ", ".join(f"{k}={v}" for k, v in PRESETS["default"].items())
    meta = {"data": (f"CIFAR-10 ({default_cifar().name}) or MNIST (IDX): {args.n} test images, "
                     f"class-balanced seeded subset (seed {args.seed}), calibration on "
                     f"{args.calib} class-balanced training images (seed {args.seed + 1}); each "
                     "model with its own input preparation. ANN and SNN measured on the same "
                     "images."),
            "settings": (f"`eventsnn.convert` defaults (preset 'default': {defaults}, LIPool), "
                         f"numba engine, direct input, T up to {args.T}; E ratio = E_SNN/E_ANN "
                         "at 4.6 pJ/MAC and 0.9 pJ/AC. Import rel. error = max |graph − torch| "
                         "/ max |torch| over the test images."), "T": args.T}
    info = machine_info()
    meta["machine"] = machine_md(info)
    results = []
    out = Path(args.out)
    for name in names:
        results.append(run_model(name, args))
        write_json(out.with_suffix(".json"), {"meta": meta, "args": vars(args),
                                              "machine": info, "models": results})
        out.with_suffix(".md").write_text(markdown(results, meta))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
