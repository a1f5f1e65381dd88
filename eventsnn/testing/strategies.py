"""Hypothesis strategies: random small SpikingNetworks with exact (dyadic) arithmetic, spike
counts and pooling geometries.

Every weight, bias, identity scale and input pixel is a small multiple of 2^-8 and thresholds
are in {0.5, 0.75, 1, 1.25}, so every current, potential and output value the engines compute
is exactly representable in float32 and float sums do not depend on their order (docs/design.md:
the engines must then agree bit for bit). Magnitudes are bounded so that even the direct input
currents (products of two multiples of 2^-8) stay exact over ``T <= MAX_T`` steps.

Networks contain: conv (random kernel, stride, asymmetric padding; a quarter 3x3 with padding 1,
stride 1 or 2 and 16-64 output channels, the engine's window sweep), dense and csr connections
(csr with explicit zero synapses; some with at most one synapse per source), identity residual
adds (a population with two incoming connections), lipool and maxgate pooling with random (also
overlapping, padded) geometry, dead-end populations, direct input into a later population, and
the output integrator; a quarter of the neuron populations are NIR IF/LIF neurons (hard reset)
and a quarter of the outputs NIR I/LI nodes, with dyadic parameters and ``dt/tau`` in {1, 1/2, 1/4}.

Needs Hypothesis (``pip install eventsnn[test]``); see :mod:`eventsnn.testing` for an example.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

try:
    from hypothesis import strategies as st
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the strategies of eventsnn.testing need Hypothesis; install it with "
                      f"`pip install eventsnn[test]` (import failed: {e})") from e

from ..network import (
    INPUT,
    ConvConnection,
    DenseConnection,
    IdentityConnection,
    PoolConnection,
    Population,
    SparseConnection,
    SpikingNetwork,
)
from ..primitives import out_hw

__all__ = ["Q", "MAX_T", "THRESHOLDS", "dyadic", "spiking_networks", "inputs", "networks_and_inputs",
           "pooling_geometries", "spike_counts", "pooling_cases"]

Q = 2.0 ** -8
MAX_T = 12
THRESHOLDS = (0.5, 0.75, 1.0, 1.25)


def dyadic(rng, shape, lo, hi):
    """float32 array of integers in ``[lo, hi]`` times 2^-8 (:data:`Q`).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : int or tuple of int
    lo, hi : int
        Inclusive range of the integer numerators.

    Returns
    -------
    numpy.ndarray
        float32; every value, and every sum of a few hundred of them, is exact in float32.
    """
    return (rng.integers(lo, hi + 1, size=shape) * Q).astype(np.float32)


def nir_dynamics(draw, rng, shape):
    """``dt``, ``r`` and, half of the time, a leak (``tau``, ``v_leak``) of an NIR neuron.

    ``dt/tau`` is 1, 1/2 or 1/4 and ``r``, ``v_leak`` are dyadic, so the coefficients
    ``alpha = dt/tau`` are exact in float32; both engines and the dense twin then run the same
    float32 operations on exactly representable currents and agree bit for bit.
    """
    dt = draw(st.sampled_from([1.0, 0.5]))
    out = {"dt": dt, "r": rng.choice([0.5, 1.0, 2.0], size=shape)}
    if draw(st.booleans()):
        out["tau"] = dt * rng.choice([1.0, 2.0, 4.0], size=shape)
        out["v_leak"] = dyadic(rng, shape, -64, 64)
    return out


class _Builder:
    """Accumulates populations and connections while a network is drawn."""

    def __init__(self, draw, rng, input_shape):
        self.draw, self.rng = draw, rng
        self.input_shape = input_shape
        self.pops, self.conns = [], []
        self.shapes = {INPUT: input_shape}

    def weight_range(self, src, dst=None):
        # Input connections multiply two dyadic numbers: keep them smaller (exactness).
        lo, hi = (-16, 48) if src == INPUT else (-48, 128)
        if dst == "out":
            # the output integrator sums over all T steps and may also take the direct input
            # (multiples of 2^-16, exact below 2^8): keep a wide source (the 16-64 channel
            # populations of the window-sweep convs) within the charge of the widest other
            # one, 3 x 6 x 6 neurons
            k = -(-int(np.prod(self.shapes[src])) // 108)
            lo, hi = min(-1, -(-lo // k)), max(1, hi // k)
        return lo, hi

    def add_if(self, shape):
        name = f"p{len(self.pops)}"
        bias = None if self.draw(st.booleans()) else dyadic(self.rng, shape, -64, 256)
        if self.draw(st.integers(0, 3)) == 0:  # an NIR IF / LIF neuron (hard reset)
            self.pops.append(Population(name, shape, "lif", bias=bias, dynamics={
                **nir_dynamics(self.draw, self.rng, shape),
                "v_threshold": self.rng.choice(THRESHOLDS, size=shape),
                "v_reset": dyadic(self.rng, shape, -64, 64)}))
        else:
            self.pops.append(Population(
                name, shape, "if",
                threshold=self.draw(st.sampled_from(THRESHOLDS)),
                burst=self.draw(st.integers(1, 5)),
                bias=bias,
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
        elif draw(st.integers(0, 3)) == 0:
            # the geometry of the engine's window sweep (3x3, padding 1, stride 1 or 2, 16-64
            # output channels; the row scatter when the source is a pooling population)
            from ..kernels.synapses import WINDOW_LANES

            s = draw(st.sampled_from([1, 2]))
            kernel, stride, pad = (3, 3), (s, s), [1] * 4
            dst_channels = dst_channels or draw(st.sampled_from(WINDOW_LANES[s]))
        else:
            pad = [draw(st.integers(0, 2)) for _ in range(4)]
            kernel = (draw(st.integers(1, min(3, h + pad[0] + pad[2]))),
                      draw(st.integers(1, min(3, w + pad[1] + pad[3]))))
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        o = dst_channels or draw(st.integers(1, 3))
        ho, wo = out_hw((h, w), kernel, stride, pad)
        dst = self.add_if((o, ho, wo))
        weight = dyadic(self.rng, (o, c) + kernel, *self.weight_range(src))
        self.conns.append(ConvConnection(src, dst, (c, h, w), (o, ho, wo), weight=weight,
                                         stride=list(stride), padding=pad))
        return dst

    def dense(self, src, dst=None, n=None):
        n_src = int(np.prod(self.shapes[src]))
        if dst is None:
            dst = self.add_if((n or self.draw(st.integers(2, 10)),))
        weight = dyadic(self.rng, (int(np.prod(self.shapes[dst])), n_src),
                        *self.weight_range(src, dst))
        self.conns.append(DenseConnection(src, dst, self.shapes[src], self.shapes[dst], weight=weight))
        return dst

    def csr(self, src):
        """A random sparse connection (explicit zero synapses included) into a new population."""
        shape = self.draw(st.sampled_from([(self.draw(st.integers(2, 12)),), (2, 3, 3), (1, 4, 4)]))
        dst = self.add_if(shape)
        n_src, n_dst = int(np.prod(self.shapes[src])), int(np.prod(shape))
        density = self.draw(st.sampled_from([0.1, 0.3, 0.7, "one"]))
        if density == "one":  # at most one synapse per source (a strided shortcut)
            mask = np.zeros((n_src, n_dst), bool)
            has = self.rng.random(n_src) < 0.5
            mask[np.flatnonzero(has), self.rng.integers(0, n_dst, has.sum())] = True
        else:
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
        ho, wo = out_hw((h, w), kernel, stride, pad)
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
    """A random small :class:`~eventsnn.network.SpikingNetwork` with dyadic parameters.

    Parameters
    ----------
    max_blocks : int
        At most this many populations after the first (see the module docstring for the
        kinds of populations and connections drawn).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of networks whose last population is the ``"output"`` integrator ``"out"``.
    """
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
    out_dynamics = nir_dynamics(draw, rng, (n_out,)) if draw(st.integers(0, 3)) == 0 else None
    b.pops.append(Population("out", (n_out,), "output", dynamics=out_dynamics,
                             bias=None if draw(st.booleans()) else dyadic(rng, (n_out,), -64, 64)))
    b.shapes["out"] = (n_out,)
    b.dense(tip, dst="out")
    extra = draw(st.sampled_from([None, None, INPUT] + spiking[:-1]))
    if extra is not None:  # a second input to the output integrator (skip or direct input)
        b.dense(extra, dst="out")
    return SpikingNetwork(input_shape, b.pops, b.conns, meta={"strategy": "eventsnn.testing.spiking_networks"})


def inputs(net, max_batch=3):
    """Input images for ``net``: multiples of 2^-8 in [-1, 1], float32 ``(B, *input_shape)``.

    ``B`` is drawn from 1..``max_batch``; the values are exact in float32, and so are their
    products with the dyadic weights of :func:`spiking_networks`.
    """
    return st.builds(
        lambda seed, n: dyadic(np.random.default_rng(seed), (n,) + net.input_shape, -256, 256),
        st.integers(0, 2**32 - 1), st.integers(1, max_batch))


@st.composite
def networks_and_inputs(draw, max_blocks=3, max_batch=3):
    """``(net, x, T)``: a :func:`spiking_networks` network, its :func:`inputs` and ``T`` in
    1..:data:`MAX_T` (the steps over which the arithmetic stays exact)."""
    net = draw(spiking_networks(max_blocks))
    return net, draw(inputs(net, max_batch)), draw(st.integers(1, MAX_T))


@st.composite
def pooling_geometries(draw, max_kernel=3, max_size=6):
    """A PyTorch-compatible 2-D pooling geometry and an input size it fits.

    Parameters
    ----------
    max_kernel : int
        Largest kernel height/width and stride.
    max_size : int
        Largest input height/width.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of ``(kernel, stride, padding, (h, w))``: ``(kh, kw)``, ``(sh, sw)``, symmetric padding
        ``(ph, pw)`` of at most half the kernel (as ``torch.nn.MaxPool2d`` accepts), and an
        input at least as large as the kernel once padded. Strides may exceed or fall short
        of the kernel (gaps, overlapping windows).
    """
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), max(max_size, kh)))
    w = draw(st.integers(max(1, kw - 2 * pw), max(max_size, kw)))
    return (kh, kw), (sh, sw), (ph, pw), (h, w)


@st.composite
def spike_counts(draw, shape, max_burst=5):
    """Spike counts per step (bursts included): an int64 array of ``shape``, e.g. ``(T, C, H, W)``.

    Counts are in ``0..m`` with ``m`` drawn from 1..``max_burst``; a drawn share (0, 0.5 or
    0.9) of them is set to 0, so sparse and dense trains both occur.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.9]))
    counts = rng.integers(0, draw(st.integers(1, max_burst)) + 1, size=shape)
    counts[rng.random(counts.shape) < sparsity] = 0
    return counts


@st.composite
def pooling_cases(draw, max_t=8):
    """``(counts, kernel, stride, padding)``: :func:`spike_counts` of shape ``(T, C, H, W)``
    (``T`` in 1..``max_t``, ``C`` in 1..2) for a :func:`pooling_geometries` geometry."""
    kernel, stride, padding, (h, w) = draw(pooling_geometries())
    t, c = draw(st.integers(1, max_t)), draw(st.integers(1, 2))
    return draw(spike_counts((t, c, h, w))), kernel, stride, padding


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
