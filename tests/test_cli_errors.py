"""The ``eventsnn`` command fails early and clearly instead of giving silently wrong results:
calibration never falls back to the test images, arguments and outputs are checked before any
work, labels and input shapes are checked against the model, files are recognised by content,
and every argument or input error exits with status 2."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import _tiny_model

import eventsnn.engine
from eventsnn import cli
from eventsnn.cli import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["-n", "20", "--T", "2", "--calib", "20", "--no-progress"]


@pytest.fixture
def model(tmp_path):
    return str(_tiny_model(tmp_path / "m.npz"))


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a simulation starts: the checks must come first."""
    def boom(*a, **k):
        raise AssertionError("simulated before checking the arguments")
    monkeypatch.setattr(eventsnn.engine, "simulate", boom)


def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


# --- calibration source ---------------------------------------------------------------------


def test_missing_calibration_data_is_an_error(model, capsys):
    code, err = _err(capsys, ["run", "--model", model, *FAST, "--calib-data", "nope.npz"])
    assert code == 2 and "calibration data nope.npz" in err and "--calib-from-test" in err


def test_empty_or_unusable_calibration_file_is_an_error(model, tmp_path, capsys):
    (tmp_path / "empty.npz").write_bytes(b"")
    code, err = _err(capsys, ["run", "--model", model, *FAST, "--calib-data",
                              str(tmp_path / "empty.npz")])
    assert code == 2 and "not a file eventsnn reads" in err
    z = np.zeros((0, 28, 28), np.uint8)
    zero = _npz(tmp_path / "zero.npz", x_train=z, y_train=z[:, 0, 0], x_test=z, y_test=z[:, 0, 0])
    code, err = _err(capsys, ["run", "--model", model, *FAST, "--calib-data", zero])
    assert code == 2 and "holds no images" in err


def test_calib_larger_than_available_or_not_positive(model, capsys):
    code, err = _err(capsys, ["run", "--model", model, "-n", "20", "--calib", "5000",
                              "--no-progress"])
    assert code == 2 and "--calib 5000 but fashion-mnist-sample:train has only 500 images" in err
    for bad in ("0", "-1"):
        code, err = _err(capsys, ["run", "--model", model, "--calib", bad])
        assert code == 2 and "--calib: expected an integer >= 1" in err


def test_npz_without_a_train_split_is_not_used_for_calibration(model, tmp_path, capsys):
    y = np.arange(20) % 10
    data = _npz(tmp_path / "xy.npz", x=np.zeros((20, 28, 28), np.uint8), y=y)
    code, err = _err(capsys, ["run", "--model", model, "--data", data, *FAST])
    assert code == 2 and "one set of images" in err and "--calib-data" in err
    code, err = _err(capsys, ["run", "--model", model, "--data", data, *FAST, "--calib-data", data])
    assert code == 2 and "one set of images" in err


def test_calibrating_on_test_images_only_on_request_and_printed(model, capsys):
    assert main(["run", "--model", model, *FAST, "--calib-from-test"]) == 0
    out = capsys.readouterr().out
    assert "warning: calibrating on 20 images OF THE TEST SET" in out


def test_default_calibration_says_where_it_came_from(model, capsys):
    assert main(["run", "--model", model, *FAST]) == 0
    out = capsys.readouterr().out
    assert "calibrated on 20 fashion-mnist-sample:train images" in out
    assert "TEST SET" not in out


# --- labels, shapes, normalisation ----------------------------------------------------------


def test_labels_outside_the_model_classes_stop_the_run(model, tmp_path, capsys, no_simulation):
    x = np.zeros((10, 28, 28), np.uint8)
    data = _npz(tmp_path / "d.npz", x_train=x, y_train=np.arange(10), x_test=x,
                y_test=np.arange(10) + 3)
    code, err = _err(capsys, ["run", "--model", model, "--data", data, "--no-progress"])
    assert code == 2 and "[10, 11, 12] are outside the model's 10 classes 0..9" in err


def test_model_input_shape_and_data_must_match(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    m = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Flatten", ["r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    onnx.save(m, tmp_path / "cifar_model")                        # ONNX without .onnx
    code, err = _err(capsys, ["convert", "--model", str(tmp_path / "cifar_model"),
                              "--out", str(tmp_path / "n.npz")])
    assert code == 2 and "takes inputs of shape (3, 32, 32)" in err and "pass --data" in err


def test_normalisation_and_near_chance_are_printed(model, tmp_path, capsys):
    assert main(["run", "--model", model, *FAST]) == 0
    out = capsys.readouterr().out
    assert "input normalisation: mean=[0.286] std=[0.353] (stored in the data file)" in out
    from eventsnn.graph import load_graph

    x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), np.uint8)
    wrong = (load_graph(model).forward(x[:, None] / np.float32(255)).argmax(1) + 1) % 10
    data = _npz(tmp_path / "d.npz", x_train=x, y_train=wrong, x_test=x, y_test=wrong)
    assert main(["run", "--model", model, *FAST, "--data", data]) == 0
    out = capsys.readouterr().out
    assert "input normalisation: none: pixels / 255 in [0, 1] (pass --mean/--std" in out
    assert "ANN accuracy: 0.00 %" in out
    assert "warning: the ANN is near chance (10.0 % for 10 classes)" in out
    assert main(["run", "--model", model, *FAST, "--mean", "0.5", "--std", "0.25"]) == 0
    assert "mean=[0.5] std=[0.25] (--mean/--std)" in capsys.readouterr().out


# --- resources and outputs checked first ----------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--burst", "1000000000"], "--burst: Γ must be an integer from 1 to 65536"),
    (["--burst", "1e23"], "--burst: Γ must be an integer from 1 to 65536"),
    (["--energy-mac", "-1"], "--energy-mac: expected a finite energy in pJ >= 0, got -1"),
    (["--json", "/nonexistent-folder/s.json"], "folder /nonexistent-folder does not exist"),
    (["--mean", "0.5"], "--mean and --std go together"),
    (["-n", "0"], "-n: expected an integer >= 1"),
    (["--T", "0"], "--T: expected integers >= 1"),
])
def test_bad_arguments_fail_before_any_work(model, capsys, no_simulation, argv, message):
    code, err = _err(capsys, ["run", "--model", model, "--no-progress", *argv])
    assert code == 2 and message in err


def test_report_into_an_existing_file_fails_first(model, tmp_path, capsys, no_simulation):
    existing = tmp_path / "taken"
    existing.write_text("x")
    code, err = _err(capsys, ["report", "--model", model, "--out", str(existing)])
    assert code == 2 and "is an existing file, not a folder" in err
    code, err = _err(capsys, ["run", "--model", model, "--json", str(tmp_path)])
    assert code == 2 and "is a folder; give a file name" in err


def test_unwritable_json_fails_first(model, tmp_path, capsys, no_simulation, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False if Path(p) == locked
                        else real_access(p, mode))            # root ignores chmod
    code, err = _err(capsys, ["run", "--model", model, "--json", str(locked / "s.json")])
    assert code == 2 and "not writable" in err


def test_reference_engine_warns_before_a_long_run():
    class Net:
        populations = [type("P", (), {"size": 84810})()]
    msg = cli._reference_warning(Net(), 1000, 64)
    assert msg.startswith("warning: the reference engine") and "--engine numba" in msg
    assert cli._reference_warning(Net(), 1, 8) is None


def test_energy_footer_uses_the_values_in_use(model, capsys):
    assert main(["run", "--model", model, *FAST, "--energy", "45nm-int8"]) == 0
    assert "energy at 0.23 pJ/MAC (ANN, analog input) and 0.03 pJ/AC (SynOps), 45nm-int8" \
        in capsys.readouterr().out
    assert main(["run", "--model", model, *FAST, "--energy-ac", "0.5"]) == 0
    assert "4.6 pJ/MAC (ANN, analog input) and 0.5 pJ/AC" in capsys.readouterr().out


def test_progress_bars_in_the_cli(model, capsys):
    assert main(["run", "--model", model, "-n", "20", "--T", "2", "--calib", "20"]) == 0
    err = capsys.readouterr().err
    for bar in ("ANN", "calibrate", "simulate"):
        assert bar in err


# --- files ----------------------------------------------------------------------------------


def test_files_are_recognised_by_content(model, tmp_path, capsys):
    rnd = tmp_path / "random.npz"
    rnd.write_bytes(np.random.default_rng(0).bytes(3000))
    code, err = _err(capsys, ["run", "--data", str(rnd), "--no-progress"])
    assert code == 2 and "not a file eventsnn reads" in err and "pickle" not in err
    code, err = _err(capsys, ["inspect", str(rnd)])
    assert code == 2 and "not a file eventsnn reads" in err
    net = tmp_path / "net.npz"
    assert main(["convert", "--model", model, *FAST[:2], "--calib", "20", "--no-progress",
                 "--out", str(net)]) == 0
    code, err = _err(capsys, ["run", "--model", str(net)])
    assert code == 2 and "is a converted SpikingNetwork, not an ANN" in err and "inspect" in err


def test_cli_choices_come_from_the_registries():
    from eventsnn.convert.calibrate import NORMS
    from eventsnn.convert import POOLINGS
    from eventsnn.energy import PRESETS
    from eventsnn.engine import ENCODINGS, ENGINES

    run = cli.build_parser()._subparsers._group_actions[0].choices["run"]
    choices = {a.dest: tuple(a.choices) for a in run._actions if a.choices}
    assert choices["norm"] == tuple(NORMS) and choices["pooling"] == tuple(POOLINGS)
    assert choices["engine"] == tuple(ENGINES) and choices["encoding"] == tuple(ENCODINGS)
    assert set(choices["energy"]) == set(PRESETS)


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path):
    from eventsnn.graph import Graph, Node

    # far more output than a pipe buffers, so the writer meets the closed pipe
    nodes = [Node(f"id{i}", "identity", (f"id{i - 1}" if i else "input",)) for i in range(4000)]
    Graph(nodes, (4,)).save(tmp_path / "long.npz")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(f"{sys.executable} -m eventsnn.cli inspect {tmp_path / 'long.npz'} | head -1",
                         shell=True, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.stdout.startswith("name")
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_bad_input_table_runs_every_case():
    """docs/make_bad_input_table.py fails unless every case fails cleanly; each appears."""
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import make_bad_input_table as table
    finally:
        sys.path.remove(str(REPO / "docs"))
    md = table.make_table()
    for what, command in table.CLI_CASES:
        assert f"`{command}`" in md or "cifar-model" in command
    assert md.count("UnsupportedModelError") == 1 and "MemoryError: this simulation" in md
