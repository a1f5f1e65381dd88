"""The model zoo (benchmarks/zoo_models.py, keras_ref.py, zoo.py).

``keras_ref`` is tested on a small Keras-format HDF5 file written here (its graph in the Keras 2
``model_config`` JSON, weights under ``model_weights``) against a torch network with the same
weights; the pretrained zoo models are tested only when their weights are in the zoo directory
(``$EVENTSNN_ZOO_DIR`` or ``~/.cache/eventsnn/zoo``, filled by ``benchmarks/zoo_fetch.py``).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import keras_ref  # noqa: E402
import zoo_models  # noqa: E402


def _layer(cls, name, inbound, **config):
    return {"class_name": cls, "name": name,
            "config": {"name": name, **config},
            "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}


def _write_keras(path, rng):
    """A Keras-2-style functional model: stride-2 'same' conv (asymmetric pad), BN, ReLU,
    concat, 'same' max pooling on an odd map, average pooling, dense + softmax."""
    conv = dict(kernel_size=[3, 3], padding="same", activation="linear", use_bias=True,
                dilation_rate=[1, 1])
    layers = [
        _layer("InputLayer", "input_1", None, batch_input_shape=[None, 9, 9, 2]),
        _layer("Conv2D", "conv2d_1", ["input_1"], filters=4, strides=[2, 2], **conv),
        _layer("BatchNormalization", "bn_1", ["conv2d_1"], epsilon=1e-3, axis=-1),
        _layer("ReLU", "re_lu_1", ["bn_1"]),
        _layer("Conv2D", "conv2d_2", ["re_lu_1"], filters=3, strides=[1, 1], **conv),
        _layer("Activation", "act_2", ["conv2d_2"], activation="relu"),
        _layer("Concatenate", "concat_1", ["re_lu_1", "act_2"], axis=-1),
        _layer("MaxPooling2D", "max_1", ["concat_1"], pool_size=[2, 2], strides=[2, 2],
               padding="same"),
        _layer("AveragePooling2D", "avg_1", ["max_1"], pool_size=[3, 3], strides=[3, 3],
               padding="valid"),
        _layer("Flatten", "flatten_1", ["avg_1"]),
        _layer("Dense", "dense_1", ["flatten_1"], units=5, activation="softmax", use_bias=True),
    ]
    weights = {
        "conv2d_1": {"kernel": rng.normal(size=(3, 3, 2, 4)), "bias": rng.normal(size=4)},
        "bn_1": {"gamma": rng.uniform(0.5, 2, 4), "beta": rng.normal(size=4),
                 "moving_mean": rng.normal(size=4), "moving_variance": rng.uniform(0.5, 2, 4)},
        "conv2d_2": {"kernel": rng.normal(size=(3, 3, 4, 3)), "bias": rng.normal(size=3)},
        "dense_1": {"kernel": rng.normal(size=(7, 5)), "bias": rng.normal(size=5)},
    }
    config = {"class_name": "Model", "config": {"name": "m", "layers": layers,
                                                "output_layers": [["dense_1", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        for layer in layers:
            g = group.create_group(layer["name"])
            for k, v in weights.get(layer["name"], {}).items():
                g.create_dataset(f"{layer['name']}/{k}:0", data=v.astype(np.float32))
    return {k: {n: torch.tensor(a.astype(np.float32), dtype=torch.float64) for n, a in v.items()}
            for k, v in weights.items()}


def test_keras_ref_matches_torch_with_tensorflow_padding(tmp_path):
    """TensorFlow 'same' padding puts the odd pixel after: a 9x9 map with a stride-2 3x3 conv
    pads 1 before and 1 after, a 5x5 map with 2x2 pooling pads 0 before and 1 after (padded
    cells excluded from the max). Float64 both sides: agreement to rounding (1e-9)."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    w = _write_keras(tmp_path / "m.h5", rng)
    x = rng.normal(size=(3, 9, 9, 2))
    out = keras_ref.keras_forward(tmp_path / "m.h5", x)

    t = torch.tensor(x).permute(0, 3, 1, 2)

    def conv(v, p, stride, pads):
        return F.conv2d(F.pad(v, pads), p["kernel"].permute(3, 2, 0, 1), p["bias"], stride)

    a = conv(t, w["conv2d_1"], 2, (1, 1, 1, 1))
    bn = w["bn_1"]
    a = (a - bn["moving_mean"].view(1, -1, 1, 1)) / torch.sqrt(
        bn["moving_variance"].view(1, -1, 1, 1) + 1e-3) * bn["gamma"].view(1, -1, 1, 1) \
        + bn["beta"].view(1, -1, 1, 1)
    a = F.relu(a)
    b = F.relu(conv(a, w["conv2d_2"], 1, (1, 1, 1, 1)))
    c = torch.cat([a, b], 1)
    c = F.max_pool2d(F.pad(c, (0, 1, 0, 1), value=-np.inf), 2)
    c = F.avg_pool2d(c, 3).flatten(1)
    ref = torch.softmax(c @ w["dense_1"]["kernel"] + w["dense_1"]["bias"], 1).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


def test_keras_ref_fake_quant_is_tensorflows():
    """fake_quant_with_min_max_vars on [-128, 127], 8 bits: grid step 1, clip, round half up."""
    x = np.array([-200.0, -1.5, -0.5, 0.49, 0.5, 2.5, 126.7, 300.0])
    np.testing.assert_array_equal(keras_ref._fake_quant(x, -128.0, 127.0, 8),
                                  [-128, -1, 0, 0, 1, 3, 127, 127])


def test_keras_ref_refuses_unknown_layers(tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        keras_ref._layer("LSTM", {"name": "lstm"}, {}, [np.zeros((1, 2))])


def test_zoo_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSNN_ZOO_DIR", str(tmp_path))
    assert zoo_models.zoo_dir() == tmp_path
    assert zoo_models.zoo_dir(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(FileNotFoundError, match="zoo_fetch"):
        zoo_models.weight_path("mlperf_resnet8")
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo_models.entry("nope")


def test_zoo_weight_checksum_is_enforced(tmp_path):
    (tmp_path / "mlperf_resnet8.h5").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256"):
        zoo_models.weight_path("mlperf_resnet8", tmp_path)


@pytest.mark.parametrize("name", sorted(zoo_models.ZOO))
def test_zoo_model_imports_like_its_source(name, shared_dir):
    """A pretrained zoo model (skipped when its weights are not in the zoo directory, or the
    test images of ../shared are absent, ``shared_dir``): the torch
    module matches the model as saved by its authors, and eventsnn.from_torch matches torch.
    Tolerances: float32 arithmetic in another order (relative 1e-4, the importers' bound)."""
    if name not in zoo_models.available():
        pytest.skip(f"{name}: weights not in {zoo_models.zoo_dir()} (benchmarks/zoo_fetch.py)")
    import zoo

    from eventsnn.io.torch_import import from_torch

    e = zoo_models.entry(name)
    module = zoo_models.load_model(name)
    x, y, _ = zoo.subsets(e, 20, 10, seed=0)
    for check in zoo.source_checks(name, x, None):
        assert check["rel_error"] < 1e-4, check
        assert check["argmax_agree"] == 1.0, check
    ref = zoo.torch_forward(module, x)
    graph = from_torch(module, x[:4])
    assert zoo.rel_error(graph.forward(x), ref) < 1e-4
    assert (ref.argmax(1) == y).mean() >= 0.5  # the weights are trained, not random


def test_keras_ref_channels_first_theano_kernels(tmp_path):
    """A channels-first Sequential model saved by the Theano backend (Keras 2.0 format: layer
    list, no InputLayer, weight names without ':0'): kernels are true convolutions, so the
    cross-correlation kernel is the stored one flipped; BatchNormalization on axis 1; flatten in
    channel-first order. Float64 both sides (1e-9)."""
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4)
    bn = {k: rng.uniform(0.5, 2, 4) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    dense_k, dense_b = rng.normal(size=(16, 3)), rng.normal(size=3)
    layers = [
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "filters": 4, "kernel_size": [3, 3],
                                            "strides": [1, 1], "padding": "valid",
                                            "data_format": "channels_first", "activation": "relu",
                                            "use_bias": True, "batch_input_shape": [None, 2, 8, 8]}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": 1, "epsilon": 1e-3}},
        {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [3, 3],
                                                  "strides": [2, 2], "padding": "valid",
                                                  "data_format": "channels_first"}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "linear",
                                           "use_bias": True}},
    ]
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
        f.attrs["backend"] = "theano"
        g = f.create_group("model_weights")
        for lname, arrays in (("conv2d_1", {"kernel": kernel, "bias": bias}), ("bn", bn),
                              ("dense_1", {"kernel": dense_k, "bias": dense_b})):
            for k, v in arrays.items():
                g.create_dataset(f"{lname}/{lname}/{k}", data=v)
        for lname in ("pool", "flat"):
            g.create_group(lname)
    x = rng.normal(size=(2, 2, 8, 8))
    assert keras_ref.channels_first(tmp_path / "t.h5")
    out = keras_ref.keras_forward(tmp_path / "t.h5", x)

    w = torch.tensor(kernel[::-1, ::-1].copy()).permute(3, 2, 0, 1)
    a = F.relu(F.conv2d(torch.tensor(x), w, torch.tensor(bias)))
    t = {k: torch.tensor(v).view(1, -1, 1, 1) for k, v in bn.items()}
    a = (a - t["moving_mean"]) / torch.sqrt(t["moving_variance"] + 1e-3) * t["gamma"] + t["beta"]
    a = F.max_pool2d(a, 3, 2).flatten(1)
    ref = (a @ torch.tensor(dense_k) + torch.tensor(dense_b)).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


def test_zoo_fetch_takes_pinned_commit_and_checks_sha256(tmp_path, monkeypatch):
    """zoo_fetch reads the file at the pinned commit (not the branch tip), writes it under its
    zoo name, and refuses a file whose sha256 differs."""
    import dataclasses
    import hashlib
    import subprocess

    import zoo_fetch

    repo = tmp_path / "src"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                              text=True, env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b",
                                              "GIT_COMMITTER_NAME": "a",
                                              "GIT_COMMITTER_EMAIL": "a@b",
                                              "PATH": "/usr/bin:/bin"}).stdout.strip()

    git("init", "-q")
    (repo / "w.bin").write_bytes(b"pinned weights")
    git("add", "w.bin")
    git("commit", "-qm", "one")
    pinned = git("rev-parse", "HEAD")
    (repo / "w.bin").write_bytes(b"later weights")
    git("commit", "-qam", "two")
    digest = hashlib.sha256(b"pinned weights").hexdigest()
    fake = dataclasses.replace(zoo_models.ZOO["mlperf_resnet8"], name="fake", repo="o/src",
                               commit=pinned, files={"fake.bin": ("w.bin", digest)})
    monkeypatch.setitem(zoo_models.ZOO, "fake", fake)
    out = tmp_path / "zoo"
    zoo_fetch.fetch("fake", out, {"o/src": str(repo)}, None, log=lambda *_: None)
    assert (out / "fake.bin").read_bytes() == b"pinned weights"
    (out / "fake.bin").unlink()
    bad = dataclasses.replace(fake, files={"fake.bin": ("w.bin", "0" * 64)})
    monkeypatch.setitem(zoo_models.ZOO, "fake", bad)
    with pytest.raises(RuntimeError, match="sha256"):
        zoo_fetch.fetch("fake", out, {"o/src": str(repo)}, None, log=lambda *_: None)
    assert not (out / "fake.bin").exists()
