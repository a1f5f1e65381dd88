"""Pretrained third-party CNNs for the model zoo: where each comes from, its architecture, its loader.

Every entry of :data:`ZOO` names a network trained and published by other authors, the file
holding its weights (a public repository, pinned to a commit, with the file's sha256), its
licence, its input normalisation and the structural features it exercises. The weights are
read from a zoo directory (:func:`zoo_dir`: ``--zoo-dir``, else ``$EVENTSNN_ZOO_DIR``, else
``~/.cache/eventsnn/zoo``) that ``benchmarks/zoo_fetch.py`` fills (see ``zoo_fetch.md``).

The torch architectures below are written here from the papers' descriptions (He et al. 2016,
"Deep Residual Learning", Sec. 4.2 for the CIFAR ResNets; the MLPerf Tiny paper, Banbury et al.
2021, Table 1 / Fig. 2 for ResNet-8), with parameter names chosen so the published state dict
(or the Keras layer names) map onto them; no third-party code is used. Nothing here is part of
the eventsnn package.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_ZOO_DIR = Path("~/.cache/eventsnn/zoo")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model: provenance, licence, input normalisation and how to build it.

    ``mean``/``std`` are in units of the [0, 1]-scaled image (``x' = (x/255 - mean)/std``);
    ``std = 1/255`` with ``mean = 0`` means raw 0-255 pixel values; ``prep = "floor"`` floors
    the normalised values (integer inputs, e.g. ``floor(x/2)``). ``dataset`` is ``"cifar10"`` or
    ``"mnist"``. ``files`` maps the name in the zoo directory to ``(path in the repository,
    sha256)``.
    """

    name: str
    title: str
    repo: str
    commit: str
    files: dict
    licence: str
    framework: str
    features: tuple
    mean: tuple
    std: tuple
    reported: str
    builder: str
    dataset: str = "cifar10"
    prep: str = "normalize"
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def source_url(self):
        return f"https://github.com/{self.repo}/tree/{self.commit}"


ZOO = {
    "mlperf_resnet8": ZooEntry(
        name="mlperf_resnet8",
        title="ResNet-8 (MLPerf Tiny image classification reference)",
        repo="mlcommons/tiny",
        commit="1afd2c9820f795965a6134facd0b4dfae41ef23f",
        files={
            "mlperf_resnet8.h5": (
                "benchmark/training/image_classification/trained_models/pretrainedResnet.h5",
                "5f938a8eea605438cc7360aa13c987bc6d7bd0c8d931b2917361ae7ae4eeda2f"),
            "mlperf_resnet8.tflite": (
                "benchmark/training/image_classification/trained_models/pretrainedResnet.tflite",
                "b5c0046d6e0328b4956afd6baa29555a29b1f1c65bdd45aaed75b7cd484d9f79"),
        },
        licence="Apache-2.0",
        framework="Keras 2.4 (TensorFlow), HDF5; float TFLite export beside it",
        features=("Keras-made", "1x1 conv shortcuts (stride 2)", "asymmetric 'same' padding",
                  "raw 0-255 input", "final softmax (dropped: argmax unchanged)"),
        mean=(0.0,), std=(1.0 / 255.0,),
        reported="87 % (MLPerf Tiny reference, original CIFAR-10 test set)",
        builder="resnet8",
    ),
    "akamaster_resnet32": ZooEntry(
        name="akamaster_resnet32",
        title="ResNet-32 (He et al. CIFAR variant, option-A shortcuts)",
        repo="akamaster/pytorch_resnet_cifar10",
        commit="d5489e8995e81e91ce6b1d69dcc98ad579b0b153",
        files={"akamaster_resnet32.th": ("pretrained_models/resnet32-d509ac18.th",
                                           "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850")},
        licence="BSD-2-Clause",
        framework="PyTorch state dict (DataParallel 'module.' keys)",
        features=("BatchNorm", "option-A shortcuts: strided slice + channel zero-pad",
                  "global average pooling"),
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
        reported="92.63 % (authors' README: 7.37 % error, original CIFAR-10 test set)",
        builder="cifar_resnet",
        extra={"depth": 32},
    ),
}

NNOM_COMMIT = "9edbc8569d8b966ff7e0e4035f518180f2c7ef55"
NNOM_NOTES = ("Trained with NNoM's fake_clip after every conv/dense: TF fake_quant_with_min_max_vars"
              " on [-128, 127] with 8 bits, i.e. clip then round to integers. The zoo converts the"
              " float network it approximates: clip kept (ReLU then clip = ReLU clipped at 127),"
              " rounding dropped; clips after the global pool are no-ops (inputs already in"
              " [0, 127]) and the clip + softmax on the logits is dropped (argmax unchanged unless"
              " two logits exceed 127).")


def _nnom_entry(name, fname, path, digest, head, first_kernel):
    return ZooEntry(
        name=name,
        title=f"NNoM MNIST DenseNet ({first_kernel}x{first_kernel} stem, global {head} pooling)",
        repo="majianjia/nnom", commit=NNOM_COMMIT, files={fname: (path, digest)},
        licence="Apache-2.0 (repository; the example's training script is marked LGPL-3.0)",
        framework="Keras 2.2.4 (TensorFlow), HDF5",
        features=("Keras-made", "DenseNet channel concatenation (up to 5 inputs)",
                  "bounded ReLU clip(0, 127)", "max pooling 'same'",
                  f"global {head} pooling", "integer 0-127 input"),
        mean=(0.0,), std=(2.0 / 255.0,), prep="floor",
        reported="about 99 % (MNIST; the repository states no figure for this file)",
        builder="nnom_densenet", dataset="mnist", notes=NNOM_NOTES,
        extra={"head": head, "first_kernel": first_kernel})


ZOO["snntoolbox_cnn_bn"] = ZooEntry(
    name="snntoolbox_cnn_bn",
    title="CIFAR-10 CNN with BatchNorm and overlapping max pooling (SNN toolbox, AlexNet-style)",
    repo="NeuromorphicProcessorProject/snn_toolbox",
    commit="189874302de894294bd5bb482d2ca09a89afd32f",
    files={"snntoolbox_cnn_bn.h5": (
        "ann_architectures/cifar10/81.45.h5",
        "5756c925b9874605166d08ab1a2732934d4ca6f0f974de48dc785369d8519b9e")},
    licence="MIT",
    framework="Keras 2.0.4 (Theano backend, channels first), HDF5",
    features=("Keras-made (Theano: flipped kernels)", "BatchNorm after every conv",
              "overlapping max pooling 3x3 stride 2", "channels-first flatten",
              "final softmax (dropped: argmax unchanged)"),
    mean=(0.0,), std=(1.0,),
    reported="81.45 % (the file name; original CIFAR-10 test set)",
    builder="snntoolbox_cnn",
)

ZOO["nnom_densenet_avg"] = _nnom_entry(
    "nnom_densenet_avg", "nnom_densenet_avg.h5",
    "examples/mnist-densenet/model/keras_cifar10_model.h5/keras_cifar10_model.h5",
    "3956dc3c3b7a9c4e9d45acd36e584bf026d50fac93ccb0176929e608f576790d", "average", 3)
ZOO["nnom_densenet_max"] = _nnom_entry(
    "nnom_densenet_max", "nnom_densenet_max.h5",
    "examples/mnist-densenet/model/keras_mnist_model.h5/keras_mnist_model.h5",
    "76af98fb4dcc32353275367b4ba6e7d70577fba5a3d15590b62cf8c2946ab25a", "max", 7)


def zoo_dir(path=None):
    """The zoo directory: ``path``, else ``$EVENTSNN_ZOO_DIR``, else ``~/.cache/eventsnn/zoo``."""
    chosen = path or os.environ.get("EVENTSNN_ZOO_DIR") or DEFAULT_ZOO_DIR
    return Path(chosen).expanduser()


def sha256(path):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry(name):
    """The :class:`ZooEntry` called ``name`` (ValueError listing the known names otherwise)."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; known: {sorted(ZOO)}")
    return ZOO[name]


def weight_path(name, directory=None, index=0):
    """Path of the ``index``-th weight file of model ``name`` in the zoo directory.

    Raises FileNotFoundError (saying how to populate the directory) when it is absent, and
    ValueError when its sha256 differs from the recorded one.
    """
    e = entry(name)
    fname, (_, digest) = list(e.files.items())[index]
    path = zoo_dir(directory) / fname
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: populate the zoo directory with "
                                f"`python benchmarks/zoo_fetch.py --zoo-dir {path.parent}` "
                                f"(see benchmarks/zoo_fetch.md)")
    if digest is not None and sha256(path) != digest:
        raise ValueError(f"{path}: sha256 {sha256(path)} differs from the recorded {digest}; "
                         "fetch the file again from the pinned commit")
    return path


def available(directory=None):
    """Names of the zoo models whose weight files are all present in the zoo directory."""
    d = zoo_dir(directory)
    return [n for n, e in ZOO.items() if all((d / f).is_file() for f in e.files)]


# ----------------------------------------------------------------------------- architectures

def _torch():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    return torch, nn, F


def cifar_resnet(depth):
    """The CIFAR ResNet of He et al. (2016, Sec. 4.2) with option-A (parameter-free) shortcuts.

    ``depth = 6n + 2``: a 3x3 conv (16 channels), three stages of ``n`` basic blocks with 16,
    32, 64 channels (the first block of stages 2 and 3 has stride 2), global average pooling
    and a linear layer to 10 classes. A shortcut that changes the shape takes every second
    pixel and zero-pads the new channels (option A). Parameter names follow the published
    checkpoints (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv{1,2}``/``bn{1,2}``, ``linear``).
    """
    torch, nn, F = _torch()
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = (cout - cin) // 2
            self.stride = stride

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            short = x
            if self.stride != 1 or self.pad:
                short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            cin, stages = 16, []
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(n):
                    blocks.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = F.adaptive_avg_pool2d(out, 1).flatten(1)
            return self.linear(out)

    return ResNet()


def resnet8():
    """ResNet-8 of the MLPerf Tiny image-classification benchmark (Banbury et al. 2021).

    A 3x3 conv (16) + BN + ReLU, then three residual stacks of two 3x3 conv + BN (16, 32, 64
    channels; the 2nd and 3rd start with stride 2 and have a 1x1 stride-2 conv shortcut with
    bias), each stack ending in ``ReLU(main + shortcut)``; 8x8 average pooling and a dense layer
    to 10 classes. Keras "same" padding: stride-1 3x3 convs pad 1 on every side, stride-2 3x3
    convs on 32/16-pixel maps pad 0 before and 1 after (TensorFlow puts the odd pixel at the
    end), 1x1 convs pad nothing. Convs have biases (Keras default). The Keras model ends in a
    softmax; this module returns the logits (the argmax, i.e. the prediction, is the same).
    Module names are the Keras layer names (``conv2d_3`` -> ``conv2d_3``).
    """
    torch, nn, F = _torch()

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [(3, 16), (16, 16), (16, 16), (16, 32), (32, 32), (16, 32), (32, 64),
                     (64, 64), (32, 64)]
            for i, (cin, cout) in enumerate(chans):
                k = 1 if i in (5, 8) else 3
                stride = 2 if i in (3, 5, 6, 8) else 1
                setattr(self, _keras_name("conv2d", i), nn.Conv2d(cin, cout, k, stride))
            for i, c in enumerate((16, 16, 16, 32, 32, 64, 64)):
                setattr(self, _keras_name("batch_normalization", i), nn.BatchNorm2d(c, eps=1e-3))
            self.dense = nn.Linear(64, 10)

        def conv(self, i, x):
            layer = getattr(self, _keras_name("conv2d", i))
            if layer.kernel_size[0] == 3:
                x = F.pad(x, (0, 1, 0, 1)) if layer.stride[0] == 2 else F.pad(x, (1, 1, 1, 1))
            return layer(x)

        def bn(self, i, x):
            return getattr(self, _keras_name("batch_normalization", i))(x)

        def forward(self, x):
            a = F.relu(self.bn(0, self.conv(0, x)))
            b = F.relu(self.bn(1, self.conv(1, a)))
            a = F.relu(a + self.bn(2, self.conv(2, b)))
            b = F.relu(self.bn(3, self.conv(3, a)))
            a = F.relu(self.conv(5, a) + self.bn(4, self.conv(4, b)))
            b = F.relu(self.bn(5, self.conv(6, a)))
            a = F.relu(self.conv(8, a) + self.bn(6, self.conv(7, b)))
            return self.dense(F.avg_pool2d(a, 8).flatten(1))

    return ResNet8()


def nnom_densenet(first_kernel=3, head="average", quantised=False):
    """The MNIST DenseNet of the NNoM examples (Huang et al. 2017 dense blocks, 28x28x1 input).

    Stem: conv ``first_kernel`` x ``first_kernel`` (16) and 2x2 max pooling; dense block 1: four
    3x3 convs of 12 channels, each reading the concatenation of the block input and all earlier
    outputs, block output = concatenation of all five; transition: 1x1 conv (48) and 2x2 max
    pooling; dense block 2 with 24 channels; global ``head`` (average or max) pooling over 7x7;
    dense 128 and dense 10. Every conv/dense but the last is followed by the activation
    ``min(ReLU(x), 127)`` (NNoM's fake clip to [-128, 127] then ReLU). With ``quantised=True``
    every fake clip also rounds to integers (half up, as TensorFlow), after the global pool and
    on the logits too: the network as trained and saved. Returns logits (the softmax is dropped;
    in the float network, ``quantised=False``, so is the clip of the logits, see
    ``NNOM_NOTES``). Module names are the Keras layer names (``conv2d_1`` ... ``dense_2``).
    """
    torch, nn, F = _torch()

    def quant(x):  # NNoM's fake clip: TF fake quantisation on [-128, 127], 8 bits
        return torch.floor(torch.clamp(x, -128.0, 127.0) + 0.5) if quantised else x

    def act(x):
        return F.hardtanh(quant(x), 0.0, 127.0)

    class DenseNet(nn.Module):
        def __init__(self):
            super().__init__()
            # (in, out, kernel) of conv2d_1 .. conv2d_10: stem, block 1 (12 per layer on 16
            # input channels), 1x1 transition to 48, block 2 (24 per layer)
            convs = [(1, 16, first_kernel), (16, 12, 3), (28, 12, 3), (40, 12, 3), (52, 12, 3),
                     (64, 48, 1), (48, 24, 3), (72, 24, 3), (96, 24, 3), (120, 24, 3)]
            for i, (cin, cout, k) in enumerate(convs):
                setattr(self, f"conv2d_{i + 1}", nn.Conv2d(cin, cout, k, padding=k // 2))
            self.dense_1 = nn.Linear(144, 128)
            self.dense_2 = nn.Linear(128, 10)

        def conv(self, i, x):
            return act(getattr(self, f"conv2d_{i}")(x))

        def block(self, x, first):
            parts = [x, self.conv(first, x)]
            for i in range(first + 1, first + 4):
                parts.append(self.conv(i, torch.cat(parts, 1)))
            return torch.cat(parts, 1)

        def forward(self, x):
            x = F.max_pool2d(self.conv(1, x), 2)
            x = F.max_pool2d(self.conv(6, self.block(x, 2)), 2)
            x = self.block(x, 7)
            x = quant(F.avg_pool2d(x, 7) if head == "average" else F.max_pool2d(x, 7))
            return quant(self.dense_2(act(self.dense_1(x.flatten(1)))))

    return DenseNet()


def snntoolbox_cnn():
    """The CIFAR-10 CNN with batch normalisation of the SNN toolbox's architecture scripts
    (Rueckauer et al. 2017; an AlexNet-style stack, Keras, channels first, 3x32x32 in [0, 1]).

    conv 5x5 (64, 'same') + BN + ReLU, max pool 3x3 stride 2; conv 5x5 (64, 'same') + BN +
    ReLU, max pool 3x3 stride 2 (overlapping windows, 'valid'); conv 3x3 (64, 'valid') + BN +
    ReLU; conv 3x3 (32, 'valid') + BN + ReLU; flatten (channels first, as torch) and a dense
    layer to 10 classes (the softmax is dropped). Dropout layers of training are identities.
    Module names are the Keras layer names.
    """
    torch, nn, F = _torch()

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            for i, (cin, cout, k) in enumerate(((3, 64, 5), (64, 64, 5), (64, 64, 3),
                                                (64, 32, 3))):
                setattr(self, f"conv2d_{i + 1}", nn.Conv2d(cin, cout, k, padding=2 if k == 5 else 0))
                setattr(self, f"batch_normalization_{i + 1}", nn.BatchNorm2d(cout, eps=1e-3))
            self.dense_1 = nn.Linear(288, 10)

        def block(self, i, x):
            bn = getattr(self, f"batch_normalization_{i}")
            return F.relu(bn(getattr(self, f"conv2d_{i}")(x)))

        def forward(self, x):
            x = F.max_pool2d(self.block(1, x), 3, 2)
            x = F.max_pool2d(self.block(2, x), 3, 2)
            x = self.block(4, self.block(3, x))
            return self.dense_1(torch.flatten(x, 1))

    return CNN()


def _keras_name(base, i):
    return base if i == 0 else f"{base}_{i}"


# ----------------------------------------------------------------------------- loaders

def _load_torch_checkpoint(module, path):
    """Load a published torch checkpoint (``state_dict`` key optional, ``module.`` prefixes
    stripped) strictly into ``module``; read with ``weights_only=True`` (no code executed)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k.removeprefix("module."): v for k, v in state.items()}
    module.load_state_dict(state, strict=True)
    return module


def _load_keras_h5(module, path):
    """Copy the weights of a Keras HDF5 model into ``module`` (layers matched by name).

    Conv kernels are stored (kh, kw, cin, cout) and become (cout, cin, kh, kw); dense kernels
    (in, out) become (out, in); BatchNormalization gamma/beta/moving_mean/moving_variance map to
    weight/bias/running_mean/running_var. Every Keras weight must be used exactly once. Files
    saved with the Theano backend hold true-convolution kernels (Theano flips the filter; Keras
    2 only converts between backends on request, ``convert_all_kernels_in_model``): they are
    flipped in both spatial axes to become the cross-correlation kernels torch uses.
    """
    import h5py
    import torch

    used = set()
    with h5py.File(path, "r") as f:
        theano = f.attrs.get("backend") == "theano"
        group = f["model_weights"]
        for name, layer in module.named_children():
            weights = {}
            group[name].visititems(lambda k, v: weights.__setitem__(
                k.split("/")[-1].split(":")[0], v[()]) if hasattr(v, "shape") else None)
            used.add(name)
            if "kernel" in weights:
                k = weights["kernel"]
                if k.ndim == 4:
                    k = (k[::-1, ::-1] if theano else k).transpose(3, 2, 0, 1)
                else:
                    k = k.T
                pairs = {"weight": k, "bias": weights["bias"]}
            else:
                pairs = {"weight": weights["gamma"], "bias": weights["beta"],
                         "running_mean": weights["moving_mean"],
                         "running_var": weights["moving_variance"]}
            for attr, value in pairs.items():
                target = getattr(layer, attr)
                if tuple(target.shape) != value.shape:
                    raise ValueError(f"{path}: {name}.{attr} has shape {value.shape}, the "
                                     f"module expects {tuple(target.shape)}")
                with torch.no_grad():
                    target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        unused = [k for k, g in group.items() if len(g.keys()) and k not in used]
    if unused:
        raise ValueError(f"{path}: Keras layers with weights not mapped: {unused}")
    return module


def load_model(name, directory=None, quantised=False):
    """The pretrained model ``name`` as an eval-mode ``torch.nn.Module`` (weights from the zoo
    directory, sha256-checked). ``quantised`` applies to the NNoM models only: keep the
    training-time rounding of activations (not convertible; used to measure its effect)."""
    e = entry(name)
    path = weight_path(name, directory)
    if e.builder == "cifar_resnet":
        return _load_torch_checkpoint(cifar_resnet(e.extra["depth"]), path).eval()
    if e.builder == "resnet8":
        return _load_keras_h5(resnet8(), path).eval()
    if e.builder == "snntoolbox_cnn":
        return _load_keras_h5(snntoolbox_cnn(), path).eval()
    if e.builder == "nnom_densenet":
        module = nnom_densenet(e.extra["first_kernel"], e.extra["head"], quantised=quantised)
        return _load_keras_h5(module, path).eval()
    raise ValueError(f"zoo entry {name!r} has an unknown builder {e.builder!r}")


def tflite_outputs(name, x, directory=None):
    """Outputs of the authors' float TFLite export of model ``name`` on NCHW float32 ``x``
    (run with ``ai-edge-litert``; NHWC inside, softmax probabilities out), or None when the
    entry has no ``.tflite`` file or ``ai-edge-litert`` (``pip install eventsnn[zoo]``) is not
    installed: then only the Keras ``.h5`` graph is checked."""
    e = entry(name)
    index = [i for i, f in enumerate(e.files) if f.endswith(".tflite")]
    if not index:
        return None
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None

    interp = Interpreter(model_path=str(weight_path(name, directory, index=index[0])))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (len(x),) + tuple(x.shape[2:]) + (x.shape[1],))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1), np.float32))
    interp.invoke()
    return interp.get_tensor(out["index"])
