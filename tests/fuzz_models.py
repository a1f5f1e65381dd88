"""Hypothesis strategies for random small third-party-style CNNs (torch modules).

:func:`fuzz_models` draws a :class:`FuzzNet`: an optional input normalisation, one to four
blocks from the whole supported vocabulary — convolutions (any kernel 1-3, stride, symmetric
padding, dilation, groups down to depthwise) followed by ReLU, ReLU6, Hardtanh(0, a),
clamp(0, a), BatchNorm + ReLU, ReLU + BatchNorm (Keras order) or nothing; max pooling
(overlapping, 1x1 and stride-1 windows, padding) after rates or after a per-channel affine of
them; average pooling; channel concatenation of the signal with a new branch (DenseNet) or
of two branches (Inception); residual adds; constant per-channel affines ``x * s + t``;
asymmetric zero padding (Keras 'same'); adaptive average pooling to an uneven size — and a
head (flatten, NHWC flatten through permute, spatial mean, global max or average pooling,
then a linear layer, sometimes a final softmax).

Most drawn models convert; a max pool of a signal that is not a rate (nor a non-negative
affine of one) is drawn now and then on purpose, and must be refused with a ValueError that
names the node and its op. :func:`dyadic_version` rounds a converted network to exact
arithmetic so that both engines must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from eventsnn.network import SparseConnection

ACTS = ("relu", "relu6", "hardtanh", "clamp", "bn_relu", "relu_bn", "none")


def _torch():
    import torch

    return torch


def build_fuzz_net(spec, in_shape, seed):
    """A torch ``nn.Module`` computing ``spec`` (see :func:`fuzz_models`) on ``(B, *in_shape)``."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    gen = torch.Generator().manual_seed(seed)

    def bn(c):
        m = nn.BatchNorm2d(c)
        with torch.no_grad():
            m.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
        return m

    def conv(cin, cout, k, s, p, d, g):
        m = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g)
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.5 / np.sqrt(cin // g * k * k)))
            m.bias.copy_(torch.randn(cout, generator=gen) * 0.1)
        return m

    class FuzzNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = spec
            self.mods = nn.ModuleList()
            for blk in spec:  # submodules in the order forward uses them
                convs, bns = list(blk.get("convs", ())), list(blk.get("bns", ()))
                if blk["kind"] == "cat" and blk["two"]:
                    self.mods.extend([conv(*convs[0])] + [bn(c) for c in bns] + [conv(*convs[1])])
                else:
                    self.mods.extend([conv(*g) for g in convs] + [bn(c) for c in bns])
                if blk["kind"] == "head":
                    self.mods.append(nn.Linear(blk["features"], blk["classes"]))
            for k, blk in enumerate(spec):
                if "scale" in blk:
                    self.register_buffer(f"s{k}", torch.tensor(blk["scale"], dtype=torch.float32).view(1, -1, 1, 1))
                    self.register_buffer(f"t{k}", torch.tensor(blk["shift"], dtype=torch.float32).view(1, -1, 1, 1))

        def act(self, x, act, a, i):
            if act == "relu":
                return F.relu(x), i
            if act == "relu6":
                return F.relu6(x), i
            if act == "hardtanh":
                return F.hardtanh(x, 0.0, a), i
            if act == "clamp":
                return torch.clamp(x, 0, a), i
            if act == "bn_relu":
                return F.relu(self.mods[i](x)), i + 1
            if act == "relu_bn":
                return self.mods[i](F.relu(x)), i + 1
            return x, i

        def forward(self, x):
            i = 0
            for k, blk in enumerate(self.spec):
                kind = blk["kind"]
                if kind == "norm":
                    x = (x - getattr(self, f"t{k}")) / getattr(self, f"s{k}")
                elif kind == "conv":
                    x, i = self.act(self.mods[i](x), blk["act"], blk["a"], i + 1)
                elif kind == "cat":
                    y, i = self.act(self.mods[i](x), blk["act"], blk["a"], i + 1)
                    if blk["two"]:
                        z, i = self.act(self.mods[i](x), "relu", 0, i + 1)
                        x = torch.cat([y, z], 1)
                    else:
                        x = torch.cat([x, y], 1)
                elif kind == "res":
                    y = self.mods[i + 1](self.mods[i](x))
                    i += 2
                    x, i = self.act(x + y, blk["act"], blk["a"], i)
                elif kind == "affine":
                    x = x * getattr(self, f"s{k}") + getattr(self, f"t{k}")
                elif kind == "maxpool":
                    x = F.max_pool2d(x, blk["k"], blk["s"], blk["p"])
                elif kind == "avgpool":
                    x = F.avg_pool2d(x, blk["k"], blk["s"], blk["p"])
                elif kind == "pad":
                    x = F.pad(x, blk["pads"])
                elif kind == "adaptive":
                    x = F.adaptive_avg_pool2d(x, blk["out"])
                else:  # head
                    if blk["how"] == "flatten":
                        x = torch.flatten(x, 1)
                    elif blk["how"] == "nhwc":
                        x = x.permute(0, 2, 3, 1).flatten(1)
                    elif blk["how"] == "mean":
                        x = x.mean((2, 3))
                    elif blk["how"] == "gmax":
                        x = F.adaptive_max_pool2d(x, 1).flatten(1)
                    x = self.mods[i](x)
                    if blk["softmax"]:
                        x = F.softmax(x, dim=1)
            return x

    return FuzzNet().eval()


def _divisors(a, b):
    return [g for g in range(1, min(a, b) + 1) if a % g == 0 and b % g == 0]


@st.composite
def _conv_geometry(draw, c, h, w, same=False):
    """(cin, cout, k, stride, pad, dilation, groups) and the output shape of one conv."""
    k = draw(st.sampled_from([1, 2, 3]))
    d = draw(st.sampled_from([1, 2])) if k > 1 and not same else 1
    span = (k - 1) * d + 1
    if same:  # shape-preserving (odd k): stride 1, pad (k-1)/2
        k = draw(st.sampled_from([1, 3]))
        s, p, span = 1, (k - 1) // 2, k
    else:
        s = draw(st.sampled_from([1, 1, 2]))
        p = draw(st.integers(0, (span - 1) // 2 + (1 if span > 1 else 0)))
    cout = c if same else draw(st.integers(1, 6))
    g = draw(st.sampled_from(_divisors(c, cout)))
    ho, wo = (h + 2 * p - span) // s + 1, (w + 2 * p - span) // s + 1
    if ho < 1 or wo < 1:  # the window does not fit: stride 1 and enough padding (output >= input)
        s, p = 1, span // 2
        ho, wo = h + 2 * p - span + 1, w + 2 * p - span + 1
    return (c, cout, k, s, p, d, g), (cout, ho, wo)


@st.composite
def fuzz_models(draw, max_blocks=4):
    """``(spec, input_shape, seed)`` of a random small CNN; build it with :func:`build_fuzz_net`."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(5, 10)), draw(st.integers(5, 10))
    in_shape = (c, h, w)
    spec = []
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    rate = False      # the signal is a spike rate (ReLU-type output): max pooling converts
    pos_affine = False  # ... or a non-negative per-channel affine of one
    if draw(st.booleans()):
        spec.append({"kind": "norm", "scale": rng.uniform(0.2, 0.5, c).tolist(), "shift": rng.uniform(0.3, 0.6, c).tolist()})
    for _ in range(draw(st.integers(1, max_blocks))):
        kinds = ["conv", "conv", "cat", "res", "affine", "avgpool", "pad", "adaptive"]
        if rate or pos_affine or draw(st.integers(0, 9)) == 0:  # now and then an unconvertible max pool
            kinds += ["maxpool", "maxpool"]
        kind = draw(st.sampled_from(kinds))
        act, a = draw(st.sampled_from(ACTS)), float(draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])))
        blk = {"kind": kind, "act": act, "a": a}
        if kind == "conv":
            geo, (c, h, w) = draw(_conv_geometry(c, h, w))
            blk["convs"] = [geo]
            blk["bns"] = [c] if act in ("bn_relu", "relu_bn") else []
            rate, pos_affine = act not in ("none", "relu_bn"), act == "relu_bn"
        elif kind == "cat":
            blk["two"] = draw(st.booleans())
            g1, (c1, _, _) = draw(_conv_geometry(c, h, w, same=True))
            g1 = (c, draw(st.integers(1, 4)), g1[2], 1, g1[4], 1, 1)
            blk["convs"] = [g1]
            blk["bns"] = [g1[1]] if act in ("bn_relu", "relu_bn") else []
            if blk["two"]:
                blk["convs"].append((c, 2, 1, 1, 0, 1, 1))
                c = g1[1] + 2
                rate = act not in ("none", "relu_bn")
            else:
                c = c + g1[1]
                rate = rate and act not in ("none", "relu_bn")
            pos_affine = False
        elif kind == "res":
            geo, _ = draw(_conv_geometry(c, h, w, same=True))
            blk["convs"] = [geo]
            blk["bns"] = [c] + ([c] if act in ("bn_relu", "relu_bn") else [])
            rate, pos_affine = act not in ("none", "relu_bn"), act == "relu_bn"
        elif kind == "affine":
            positive = draw(st.integers(0, 9)) > 0
            scale = rng.uniform(0.5, 2.0, c) * (1 if positive else rng.choice([-1, 1], c))
            blk.update(scale=scale.tolist(), shift=rng.uniform(-0.5, 0.5, c).tolist())
            pos_affine, rate = (rate or pos_affine) and positive, False
        elif kind in ("maxpool", "avgpool"):
            k = draw(st.integers(1, min(3, h, w)))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, k // 2))
            blk.update(k=k, s=s, p=p)
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if kind == "avgpool":
                rate = pos_affine = False
        elif kind == "pad":
            pads = [draw(st.integers(0, 1)) for _ in range(4)]
            blk["pads"] = pads
            h, w = h + pads[2] + pads[3], w + pads[0] + pads[1]
            rate = rate and not any(pads)  # zero padding keeps rates >= 0, but it is linear
            pos_affine = False
        else:  # adaptive
            out = [draw(st.integers(1, h)), draw(st.integers(1, w))]
            blk["out"] = out
            h, w = out
            rate = pos_affine = False
        spec.append(blk)
    heads = ["flatten", "nhwc", "mean"]
    if rate or pos_affine or draw(st.integers(0, 9)) == 0:  # global max pooling converts after rates
        heads.append("gmax")
    how = draw(st.sampled_from(heads))
    features = c * h * w if how in ("flatten", "nhwc") else c
    spec.append({"kind": "head", "how": how, "features": features, "classes": draw(st.integers(2, 5)),
                 "softmax": draw(st.integers(0, 4)) == 0})
    return spec, in_shape, draw(st.integers(0, 2 ** 16))


def dyadic_version(net, bits=6, bound=4.0):
    """Round every weight, bias and scale of ``net`` (in place) to a multiple of ``2^-bits`` in
    ``[-bound, bound]``: float32 sums of such values (and of products with inputs that are
    multiples of 2^-4) are exact in any order, so the engines must agree bit for bit."""
    q = 2.0 ** bits

    def rnd(a):
        return np.asarray(np.clip(np.round(np.asarray(a, np.float64) * q) / q, -bound, bound), dtype=np.float32)

    for c in net.connections:
        for attr in ("weight", "scale"):
            if getattr(c, attr, None) is not None:
                setattr(c, attr, rnd(getattr(c, attr)))
        if isinstance(c, SparseConnection):
            c.matrix.data = rnd(c.matrix.data)
    for p in net.populations:
        if p.bias is not None:
            p.bias = rnd(p.bias)
    return net
