"""Evaluate a Keras HDF5 model from its own stored graph, in NumPy, with Keras semantics (NHWC).

TensorFlow cannot be installed beside the project, yet a Keras model's import has to be checked
against the model as its authors saved it, not against a hand-written torch transcription of it.
:func:`keras_forward` reads the functional graph (``model_config``) and the weights of a Keras 2
``.h5`` file and evaluates it layer by layer in float64, channels last, with TensorFlow's
padding rules ("same": ``pad = max((ceil(n/s) - 1)·s + k - n, 0)``, the odd pixel after) and
pooling rules (padded cells excluded from max and mean). Layers: InputLayer, Conv2D, Dense,
BatchNormalization, Activation/ReLU/Softmax, Add, Concatenate, MaxPooling2D, AveragePooling2D,
GlobalAveragePooling2D, Flatten, Dropout, and the NNoM fake-quantisation Lambda
(``tf.fake_quant_with_min_max_vars``: clip to the nudged range, round half up to the grid).
Models saved channels first (``data_format="channels_first"``, BatchNormalization on axis 1)
are evaluated channels first; files saved by the Theano backend hold true-convolution kernels,
flipped here. Anything else raises ValueError. It is checked against the authors' TFLite export
on the MLPerf Tiny ResNet-8 (``benchmarks/zoo.py`` records the agreement).
"""

from __future__ import annotations

import json

import numpy as np


def _same_pads(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _windows(x, k, s, padding, fill):
    """(N, Ho, Wo, kh, kw, C) windows of NHWC ``x`` with Keras padding (``fill`` in the pad)."""
    if padding == "same":
        (t, b), (l, r) = _same_pads(x.shape[1], k[0], s[0]), _same_pads(x.shape[2], k[1], s[1])
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    elif padding != "valid":
        raise ValueError(f"padding {padding!r} not supported")
    w = np.lib.stride_tricks.sliding_window_view(x, k, axis=(1, 2))[:, ::s[0], ::s[1]]
    return w.transpose(0, 1, 2, 4, 5, 3)


def _activation(x, name):
    if name in ("linear", None):
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    raise ValueError(f"activation {name!r} not supported")


def _fake_quant(x, lo, hi, bits):
    """``tf.fake_quant_with_min_max_vars`` (narrow_range False): nudge the range so 0 is on
    the grid, clip, round half up to the grid."""
    qmax = 2 ** bits - 1
    scale = (hi - lo) / qmax
    zero = np.clip(np.round(-lo / scale), 0, qmax)
    lo_n, hi_n = -zero * scale, (qmax - zero) * scale
    return np.floor((np.clip(x, lo_n, hi_n) - lo_n) / scale + 0.5) * scale + lo_n


def _weights(group):
    found = {}
    group.visititems(lambda k, v: found.__setitem__(k.split("/")[-1].split(":")[0],
                                                    np.asarray(v[()], np.float64))
                     if hasattr(v, "shape") else None)
    return found


def _channels_first(fn):
    """Run an NHWC layer function on an NCHW tensor when the layer is channels first."""
    def wrapped(cls, cfg, w, ins, theano=False):
        if cfg.get("data_format") == "channels_first":
            out = fn(cls, cfg, w, [v.transpose(0, 2, 3, 1) for v in ins], theano)
            return out.transpose(0, 3, 1, 2)
        return fn(cls, cfg, w, ins, theano)
    return wrapped


@_channels_first
def _spatial(cls, cfg, w, ins, theano):
    x = ins[0]
    if cls == "Conv2D":
        if cfg.get("dilation_rate", [1, 1]) != [1, 1]:
            raise ValueError("dilated Conv2D not supported")
        win = _windows(x, cfg["kernel_size"], cfg["strides"], cfg["padding"], 0.0)
        kernel = w["kernel"][::-1, ::-1] if theano else w["kernel"]
        y = np.einsum("nhwijc,ijco->nhwo", win, kernel)
        return _activation(y + w["bias"] if cfg["use_bias"] else y, cfg["activation"])
    fill = -np.inf if cls == "MaxPooling2D" else np.nan
    win = _windows(x, cfg["pool_size"], cfg["strides"], cfg["padding"], fill)
    return win.max(axis=(3, 4)) if cls == "MaxPooling2D" else np.nanmean(win, axis=(3, 4))


def _layer(cls, cfg, w, ins, theano=False):
    x = ins[0]
    if cls in ("InputLayer", "Dropout"):
        return x
    if cls in ("Conv2D", "MaxPooling2D", "AveragePooling2D"):
        return _spatial(cls, cfg, w, ins, theano)
    if cls == "Dense":
        y = x @ w["kernel"]
        return _activation(y + w["bias"] if cfg["use_bias"] else y, cfg["activation"])
    if cls == "BatchNormalization":
        axis = cfg.get("axis", -1)
        shape = [1] * x.ndim
        shape[axis[0] if isinstance(axis, list) else axis] = -1  # Keras >= 2.4 stores a list
        c = len(w["moving_mean"])
        gamma, beta = w.get("gamma", np.ones(c)), w.get("beta", np.zeros(c))
        scale = gamma / np.sqrt(w["moving_variance"] + cfg["epsilon"])
        return (x - w["moving_mean"].reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)
    if cls == "Activation":
        return _activation(x, cfg["activation"])
    if cls == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            raise ValueError("ReLU with max_value/negative_slope/threshold not supported")
        return np.maximum(x, 0.0)
    if cls == "Softmax":
        return _activation(x, "softmax")
    if cls == "Add":
        return sum(ins)
    if cls == "Concatenate":
        return np.concatenate(ins, axis=cfg["axis"])
    if cls == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    if cls == "Flatten":
        return x.reshape(len(x), -1)
    if cls == "Lambda" and {"clip_range", "bits"} <= set(cfg.get("arguments") or {}):
        lo, hi = cfg["arguments"]["clip_range"]
        return _fake_quant(x, lo, hi, cfg["arguments"]["bits"])
    raise ValueError(f"Keras layer {cls} ({cfg.get('name')}) not supported by the reference")


def keras_forward(path, x):
    """Outputs of the Keras model stored in ``path`` on float input ``x`` (float64 result).

    ``x`` is in the model's own layout: NHWC, or NCHW for a channels-first model.
    Single-input, single-output functional or Sequential models of the layers listed in the
    module docstring.
    """
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        theano = f.attrs.get("backend") == "theano"
        weights = {name: _weights(f["model_weights"][name]) for name in f["model_weights"]}
    layers = config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
    values = {}
    x = np.asarray(x, np.float64)
    for i, layer in enumerate(layers):
        cfg, cls = layer["config"], layer["class_name"]
        nodes = layer.get("inbound_nodes") or []
        if nodes:
            ins = [values[n[0]] for n in nodes[0]]
        elif i == 0:
            ins = [x]
        else:  # a Sequential model: each layer reads the previous one
            ins = [values[layers[i - 1]["config"]["name"]]]
        values[cfg["name"]] = _layer(cls, cfg, weights.get(cfg["name"], {}), ins, theano)
    out = config["config"].get("output_layers") if isinstance(config["config"], dict) else None
    return values[out[0][0] if out else layers[-1]["config"]["name"]]


def channels_first(path):
    """Whether the Keras model in ``path`` takes channels-first (NCHW) input."""
    import h5py

    with h5py.File(path, "r") as f:
        return '"channels_first"' in str(f.attrs["model_config"])
