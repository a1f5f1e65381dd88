"""Hypothesis strategies for random small SpikingNetworks with exact (dyadic) arithmetic.

Every weight, bias, identity scale and input pixel is a small multiple of 2^-8 and thresholds
are in {0.5, 0.75, 1, 1.25}, so every current, potential and output value the engines compute
is exactly representable in float32 and float sums do not depend on their order (DESIGN.md:
the engines must then agree bit for bit). Magnitudes are bounded so that even the direct input
currents (products of two multiples of 2^-8) stay exact over ``T <= MAX_T`` steps.

Networks contain: conv (random kernel, stride, asymmetric padding), dense and csr connections
(csr with explicit zero synapses), identity residual adds (a population with two incoming
connections), lipool and maxgate pooling with random (also overlapping, padded) geometry,
dead-end populations, direct input into a later population, and the output integrator.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

from eventsnn.network import (
    INPUT,
    ConvConnection,
    DenseConnection,
    IdentityConnection,
    PoolConnection,
    Population,
    SparseConnection,
    SpikingNetwork,
)

Q = 2.0 ** -8
MAX_T = 12
THRESHOLDS = (0.5, 0.75, 1.0, 1.25)


def dyadic(rng, shape, lo, hi):
    """float32 array of integers in ``[lo, hi]`` times 2^-8."""
    return (rng.integers(lo, hi + 1, size=shape) * Q).astype(np.float32)


class _Builder:
    """Accumulates populations and connections while a network is drawn."""

    def __init__(self, draw, rng, input_shape):
        self.draw, self.rng = draw, rng
        self.input_shape = input_shape
        self.pops, self.conns = [], []
        self.shapes = {INPUT: input_shape}

    def weight_range(self, src):
        # Input connections multiply two dyadic numbers: keep them smaller (exactness).
        return (-16, 48) if src == INPUT else (-48, 128)

    def add_if(self, shape):
        name = f"p{len(self.pops)}"
        self.pops.append(Population(
            name, shape, "if",
            threshold=self.draw(st.sampled_from(THRESHOLDS)),
            burst=self.draw(st.integers(1, 5)),
            bias=None if self.draw(st.booleans()) else dyadic(self.rng, shape, -64, 256),
        ))
        self.shapes[name] = tuple(shape)
        return name

    def conv(self, src, dst_channels=None, same=False):
        """A conv connection out of ``src`` into a new IF population; returns the population."""
        c, h, w = self.shapes[src]
        draw = self.draw
        if same:
            k = draw(st.sampled_from([1, 3]))
            kernel, stride, pad = (k, k), (1, 1), [k // 2] * 4
        else:
            pad = [draw(st.integers(0, 2)) for _ in range(4)]
            kernel = (draw(st.integers(1, min(3, h + pad[0] + pad[2]))),
                      draw(st.integers(1, min(3, w + pad[1] + pad[3]))))
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        o = dst_channels or draw(st.integers(1, 3))
        ho = (h + pad[0] + pad[2] - kernel[0]) // stride[0] + 1
        wo = (w + pad[1] + pad[3] - kernel[1]) // stride[1] + 1
        dst = self.add_if((o, ho, wo))
        weight = dyadic(self.rng, (o, c) + kernel, *self.weight_range(src))
        self.conns.append(ConvConnection(src, dst, (c, h, w), (o, ho, wo), weight=weight,
                                         stride=list(stride), padding=pad))
        return dst

    def dense(self, src, dst=None, n=None):
        n_src = int(np.prod(self.shapes[src]))
        if dst is None:
            dst = self.add_if((n or self.draw(st.integers(2, 10)),))
        weight = dyadic(self.rng, (int(np.prod(self.shapes[dst])), n_src), *self.weight_range(src))
        self.conns.append(DenseConnection(src, dst, self.shapes[src], self.shapes[dst], weight=weight))
        return dst

    def csr(self, src):
        """A random sparse connection (explicit zero synapses included) into a new population."""
        shape = self.draw(st.sampled_from([(self.draw(st.integers(2, 12)),), (2, 3, 3), (1, 4, 4)]))
        dst = self.add_if(shape)
        n_src, n_dst = int(np.prod(self.shapes[src])), int(np.prod(shape))
        density = self.draw(st.sampled_from([0.1, 0.3, 0.7]))
        mask = self.rng.random((n_src, n_dst)) < density
        rows, cols = np.nonzero(mask)
        data = dyadic(self.rng, len(rows), *self.weight_range(src))
        data[self.rng.random(len(rows)) < 0.1] = 0.0  # explicit zeros are synapses too
        # np.nonzero is row-major: rows sorted, columns sorted within each row.
        indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
        matrix = sp.csr_matrix((data, cols, indptr), shape=(n_src, n_dst))
        self.conns.append(SparseConnection(src, dst, self.shapes[src], shape, matrix=matrix))
        return dst

    def pool(self, src, kind):
        c, h, w = self.shapes[src]
        draw = self.draw
        kernel = [draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))]
        stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        pad = [draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)),
               draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))]
        ho = (h + pad[0] + pad[2] - kernel[0]) // stride[0] + 1
        wo = (w + pad[1] + pad[3] - kernel[1]) // stride[1] + 1
        name = f"p{len(self.pops)}"
        self.pops.append(Population(name, (c, ho, wo), kind, pool={
            "source": src, "kernel": kernel, "stride": stride, "padding": pad}))
        self.shapes[name] = (c, ho, wo)
        self.conns.append(PoolConnection(src, name, (c, h, w), (c, ho, wo), kernel=kernel,
                                         stride=stride, padding=pad))
        return name

    def residual(self, src):
        """``src -> conv -> B``; ``C`` integrates ``conv(B)`` plus the identity shortcut of src."""
        shape = self.shapes[src]
        if len(shape) == 3:
            mid = self.conv(src, dst_channels=shape[0], same=True)
            out = self.add_if(shape)
            inner = self.conns[-1]
            self.conns.append(ConvConnection(mid, out, shape, shape,
                                             weight=dyadic(self.rng, inner.weight.shape, *self.weight_range(mid)),
                                             stride=inner.stride, padding=inner.padding))
        else:
            mid = self.dense(src, n=shape[0])
            out = self.dense(mid, n=shape[0])
        per_channel = self.draw(st.booleans())
        scale = dyadic(self.rng, (shape[0],) if per_channel else (), 16, 256)
        self.conns.append(IdentityConnection(src, out, shape, shape, scale=scale))
        return out


@st.composite
def spiking_networks(draw, max_blocks=3):
    """A random small :class:`SpikingNetwork` with dyadic parameters (see module docstring)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    input_shape = (draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    b = _Builder(draw, rng, input_shape)
    first = draw(st.sampled_from(["conv", "conv", "dense", "csr", "residual"]))
    tip = getattr(b, first)(INPUT)  # "residual": identity shortcut straight from the input
    spiking = [tip]
    for _ in range(draw(st.integers(0, max_blocks))):
        image = len(b.shapes[tip]) == 3
        ops = ["dense", "csr", "residual"] + (["conv", "lipool", "maxgate"] if image else [])
        op = draw(st.sampled_from(ops))
        if op in ("lipool", "maxgate"):
            tip = b.pool(tip, op)
        else:
            tip = getattr(b, op)(tip)
        spiking.append(tip)
    if draw(st.integers(0, 4)) == 0:  # a dead-end population: spikes that nobody receives
        b.dense(draw(st.sampled_from(spiking)), n=3)
    n_out = draw(st.integers(2, 4))
    b.pops.append(Population("out", (n_out,), "output",
                             bias=None if draw(st.booleans()) else dyadic(rng, (n_out,), -64, 64)))
    b.shapes["out"] = (n_out,)
    b.dense(tip, dst="out")
    extra = draw(st.sampled_from([None, None, INPUT] + spiking[:-1]))
    if extra is not None:  # a second input to the output integrator (skip or direct input)
        b.dense(extra, dst="out")
    return SpikingNetwork(input_shape, b.pops, b.conns, meta={"strategy": "tests.strategies"})


def inputs(net, max_batch=3):
    """Input images for ``net``: multiples of 2^-8 in [-1, 1], float32 ``(B, *input_shape)``."""
    return st.builds(
        lambda seed, n: dyadic(np.random.default_rng(seed), (n,) + net.input_shape, -256, 256),
        st.integers(0, 2**32 - 1), st.integers(1, max_batch))


@st.composite
def networks_and_inputs(draw, max_blocks=3, max_batch=3):
    """``(net, x, T)`` with ``T`` in 1..MAX_T."""
    net = draw(spiking_networks(max_blocks))
    return net, draw(inputs(net, max_batch)), draw(st.integers(1, MAX_T))


def with_v_init(net, seed):
    """A copy of ``net`` whose IF populations start from random dyadic ``V(0)`` in [0, θ):
    per population a scalar, one value per channel or one per neuron."""
    rng = np.random.default_rng(seed)
    pops = []
    for p in net.populations:
        if p.kind == "if":
            shape = [(), p.shape[:1], p.shape][int(rng.integers(0, 3))]
            v = dyadic(rng, shape, 0, int(p.threshold / Q) - 1)
            p = dataclasses.replace(p, v_init=v)
        pops.append(p)
    return SpikingNetwork(net.input_shape, pops, net.connections, meta=net.meta)
