"""The ``eventsnn`` command line: every subcommand on the shipped model and on a user's model."""

import json

import numpy as np
import pytest

from eventsnn.cli import build_parser, main
from eventsnn.datasets import default_model_path
from eventsnn.graph import Graph, Node


def _tiny_model(path):
    """A small conv-bn-relu-maxpool-linear net on 1x28x28 input, saved natively."""
    rng = np.random.default_rng(0)
    nodes = [
        Node("conv", "conv", ("input",), {"stride": [2, 2], "padding": [1, 1, 1, 1]},
             {"weight": rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32),
              "bias": rng.normal(0, 0.1, 4).astype(np.float32)}),
        Node("bn", "batchnorm", ("conv",), {"eps": 1e-5},
             {"mean": np.zeros(4, np.float32), "var": np.ones(4, np.float32),
              "weight": np.ones(4, np.float32), "bias": np.full(4, 0.1, np.float32)}),
        Node("relu", "relu", ("bn",)),
        Node("pool", "maxpool", ("relu",), {"kernel": [2, 2], "stride": [2, 2]}),
        Node("flat", "flatten", ("pool",)),
        Node("fc", "linear", ("flat",),
             params={"weight": rng.normal(0, 0.2, (10, 196)).astype(np.float32),
                     "bias": np.zeros(10, np.float32)}),
    ]
    Graph(nodes, (1, 28, 28)).save(path)
    return path


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("run", "inspect", "convert", "report"):
        assert cmd in out


def test_run_help_explains_every_option():
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    for action in run._actions:
        if action.dest != "help":
            assert action.help, f"option {action.dest} of `eventsnn run` has no help text"


def test_inspect_prints_layers_and_macs(tmp_path, capsys):
    model = _tiny_model(tmp_path / "m.npz")
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "maxpool" in out and "MACs" in out


def test_run_user_model_reports_accuracy_table(tmp_path, capsys):
    model = _tiny_model(tmp_path / "m.npz")
    out_json = tmp_path / "s.json"
    code = main(["run", "--model", str(model), "-n", "40", "--T", "4,8", "--calib", "20",
                 "--no-progress", "--json", str(out_json), "--save-network",
                 str(tmp_path / "net.npz")])
    assert code == 0
    out = capsys.readouterr().out
    assert "ANN accuracy" in out and "SynOps/img" in out
    summary = json.loads(out_json.read_text())
    assert [r["T"] for r in summary["rows"]] == [4, 8]
    assert all(0 <= r["accuracy"] <= 1 for r in summary["rows"])
    assert summary["rows"][1]["synops_per_image"] >= summary["rows"][0]["synops_per_image"]
    assert main(["inspect", str(tmp_path / "net.npz")]) == 0
    assert "lipool" in capsys.readouterr().out


def test_convert_and_report_write_files(tmp_path, capsys):
    model = _tiny_model(tmp_path / "m.npz")
    assert main(["convert", "--model", str(model), "-n", "20", "--calib", "20",
                 "--pooling", "maxgate", "--burst", "2", "--out", str(tmp_path / "n.npz")]) == 0
    assert (tmp_path / "n.npz").is_file()
    out_dir = tmp_path / "rep"
    assert main(["report", "--model", str(model), "-n", "30", "--T", "4,8", "--calib", "20",
                 "--no-progress", "--out", str(out_dir)]) == 0
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep and (out_dir / "report.md").is_file()


def test_bad_input_gives_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert main(["inspect", str(bad)]) == 2
    assert "error" in capsys.readouterr().err
    model = _tiny_model(tmp_path / "m.npz")
    assert main(["run", "--model", str(model), "-n", "10", "--burst", "0", "--no-progress"]) == 2
    assert "burst" in capsys.readouterr().err.lower()
    assert main(["run", "--T", "0"]) == 2


def test_default_run_on_shipped_model(capsys):
    try:
        default_model_path()
    except FileNotFoundError:
        pytest.skip("shipped model not built yet")
    assert main(["run", "-n", "50", "--T", "8,16", "--calib", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "shipped Fashion-MNIST VGG" in out and "SNN acc" in out
