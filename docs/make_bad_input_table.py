"""Regenerate docs/bad-input.md: every bad input we know of, run through the real command line
and the real Python API, with the message the user gets.

Run from the repository root: ``python docs/make_bad_input_table.py`` (about a minute). Each
case must fail (exit status 2, or the stated exception/warning); the script stops otherwise, so
the table cannot drift from the code.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventsnn import cli  # noqa: E402


def _files(folder):
    """The bad files the cases refer to, created in ``folder`` (the working directory)."""
    from eventsnn.graph import Graph, Node
    from eventsnn.network import DenseConnection, IdentityConnection, Population, SpikingNetwork

    rng = np.random.default_rng(0)
    Path("random.npz").write_bytes(rng.bytes(3000))
    Path("empty.npz").write_bytes(b"")
    z = np.zeros((0, 28, 28), np.uint8)
    np.savez("no-images.npz", x_train=z, y_train=z[:, 0, 0], x_test=z, y_test=z[:, 0, 0])
    x = rng.integers(0, 256, (20, 28, 28), np.uint8)
    np.savez("one-split.npz", x=x, y=np.arange(20) % 10)
    np.savez("labels-1-to-10.npz", x_train=x, y_train=np.arange(20) % 10 + 1, x_test=x,
             y_test=np.arange(20) % 10 + 1)
    pops = [Population("a", (2,), "if"), Population("out", (2,), "output")]
    conns = [IdentityConnection("input", "a", (2,), (2,), scale=np.float32(1.0)),
             DenseConnection("a", "out", (2,), (2,), weight=np.eye(2, dtype=np.float32))]
    SpikingNetwork((2,), pops, conns).save("converted.npz")
    Path("report-taken").write_text("an existing file")
    g = Graph([Node("fc", "linear", ("input",), params={"weight": np.ones((2, 4), np.float32)})], (4,))
    try:
        import onnx
        from onnx import TensorProto, helper

        onnx.save(helper.make_model(helper.make_graph(
            [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Flatten", ["r"], ["y"])],
            "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])), "cifar-model")
    except ImportError:
        pass
    return g


CLI_CASES = [
    ("calibration file missing", "eventsnn run --calib-data nope.npz"),
    ("calibration file empty (0 bytes)", "eventsnn run --calib-data empty.npz"),
    ("calibration file with no images", "eventsnn run --calib-data no-images.npz"),
    ("more calibration images than available", "eventsnn run --calib 5000"),
    ("calibration size not positive", "eventsnn run --calib -1"),
    ("data with one split (x/y) and no --calib-data", "eventsnn run --data one-split.npz"),
    ("labels outside the model's classes", "eventsnn run --data labels-1-to-10.npz"),
    ("more test images than available", "eventsnn run -n 5000"),
    ("huge burst", "eventsnn run --burst 1000000000"),
    ("burst not an integer / overflowing", "eventsnn run --burst 1e23"),
    ("negative energy", "eventsnn run --energy-mac -1"),
    ("report into an existing file", "eventsnn report --out report-taken"),
    ("JSON into a missing folder", "eventsnn run --json no-such-folder/s.json"),
    ("JSON onto a folder", "eventsnn run --json ."),
    ("--mean without --std", "eventsnn run --mean 0.5"),
    ("no time step", "eventsnn run --T 0"),
    ("random bytes named .npz as data", "eventsnn run --data random.npz"),
    ("random bytes named .npz as model", "eventsnn inspect random.npz"),
    ("a converted network as --model", "eventsnn run --model converted.npz"),
    ("ONNX model for other images, no --data", "eventsnn convert --model cifar-model --out n.npz"),
    ("unknown pooling", "eventsnn run --pooling max"),
]


def _api_cases(g):
    import eventsnn
    from eventsnn.network import load_network

    net = load_network("converted.npz")
    res = eventsnn.simulate(net, np.ones((3, 2), np.float32), 4)
    x4 = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    return [
        ("raw uint8 images", "simulate(net, uint8_images, T)",
         lambda: eventsnn.simulate(net, np.full((1, 2), 200, np.uint8), 4)),
        ("float images in 0–255 (not normalised)", "simulate(net, x.astype(float32), T)",
         lambda: eventsnn.simulate(net, np.array([[30.0, 200.0]], np.float32), 4)),
        ("a single image without batch axis", "simulate(net, x[0], T)",
         lambda: eventsnn.simulate(net, np.ones(2, np.float32), 4)),
        ("labels outside the model's classes", "result.accuracy([0, 1, 2])",
         lambda: res.accuracy([0, 1, 2])),
        ("labels outside the model's classes", "analyze_simulation(net, x, T, y=[0, 1, 5])",
         lambda: eventsnn.analyze_simulation(net, np.ones((3, 2), np.float32), 4, np.array([0, 1, 5]))),
        ("huge burst", "convert(graph, x, burst=10**9)",
         lambda: eventsnn.convert(g, x4, burst=10 ** 9)),
        ("per-step spike trains of a long run", "simulate(net, x, 10**9, record=('trains',))",
         lambda: eventsnn.simulate(net, np.ones((64, 2), np.float32), 10 ** 9, record=("trains",))),
        ("an op eventsnn does not know", "Graph([Node('act', 'sigmoid', ('input',))], (4,))",
         lambda: eventsnn.Graph([eventsnn.Node("act", "sigmoid", ("input",))], (4,))),
    ]


def _run_cli(command):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(command.split()[1:] + ["--no-progress"] * (" inspect " not in f" {command} "))
    lines = [ln for ln in err.getvalue().splitlines() if "error:" in ln]
    if code != 2 or not lines:
        raise SystemExit(f"{command!r} did not fail with status 2: {code}, {err.getvalue()!r}")
    return lines[-1].split("error: ", 1)[1]


def _run_api(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
        except (ValueError, TypeError, MemoryError) as e:
            return f"{type(e).__name__}: {e}"
    if caught:
        return f"{caught[-1].category.__name__}: {caught[-1].message}"
    raise SystemExit("an API case neither raised nor warned")


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def make_table():
    """The Markdown of docs/bad-input.md."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            g = _files(tmp)
            rows = [(what, f"`{cmd}`", _run_cli(cmd)) for what, cmd in CLI_CASES
                    if "cifar-model" not in cmd or Path("cifar-model").exists()]
            api = [(what, f"`{call}`", _run_api(fn)) for what, call, fn in _api_cases(g)]
        finally:
            os.chdir(cwd)
    out = ["# Bad input and what eventsnn says",
           "",
           "Generated by `python docs/make_bad_input_table.py`, which runs every case through the "
           "real command line (exit status 2 each time) and the real Python API. Files named "
           "below are small bad files the script creates; `net` is a converted two-neuron "
           "network. Memory figures depend on the machine.",
           "",
           "## Command line", "", "| input | command | message (stderr, exit status 2) |",
           "|---|---|---|"]
    out += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} |" for a, b, c in rows]
    out += ["", "## Python API", "", "| input | call | exception or warning |", "|---|---|---|"]
    out += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} |" for a, b, c in api]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = REPO / "docs" / "bad-input.md"
    target.write_text(make_table())
    print(f"wrote {target}")
