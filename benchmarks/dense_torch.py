"""A dense, clock-driven PyTorch simulation of an eventsnn SpikingNetwork.

This is how today's conversion toolboxes (BrainCog, SpikingJelly, snntoolbox) simulate a
converted SNN: every step, every layer runs as a dense tensor operation on the spike tensor of
the layer before, whether its entries are zero or not. It implements exactly the semantics of
docs/design.md ("Simulation semantics"), with the same weights, thresholds, Γ and pooling as the
event-driven engine, so the two can be timed side by side and their predictions compared.

It is meant as a *fair* baseline, not a straw man: the constant current (bias + direct-coded
input, computed once per image, as in the event engine) is hoisted out of the time loop, the
neuron update works in place (no temporaries beyond the spike tensor), ``θ = 1`` skips the
division, convolutions run through oneDNN (optionally in channels-last layout), and
:func:`best_batch_size` picks the fastest batch size on the machine at hand.

Used by ``benchmarks/bench_end_to_end.py`` / ``bench_scaling.py`` and by
``tests/test_dense_twin.py`` (exact agreement with the event-driven engine on dyadic networks).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from eventsnn.network import (INPUT, ConvConnection, DenseConnection, IdentityConnection,
                              PoolConnection, SparseConnection)


def _pad_conv(x, weight, stride, padding):
    pt, pl, pb, pr = padding
    if pt == pb and pl == pr:
        return F.conv2d(x, weight, stride=stride, padding=(pt, pl))
    return F.conv2d(F.pad(x, (pl, pr, pt, pb)), weight, stride=stride)


class DenseTorchSNN:
    """Clock-driven dense simulation of a :class:`eventsnn.network.SpikingNetwork` in torch.

    Parameters
    ----------
    net : SpikingNetwork
        The converted network.
    dtype : torch.dtype
        Floating point type of potentials and currents (float32, as the event engine).
    channels_last : bool
        Keep 4-d tensors in channels-last memory format (often faster oneDNN convolutions).
    """

    def __init__(self, net, dtype=torch.float32, channels_last=False):
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.ops = {c.name: self._make_op(c) for c in net.connections}
        self.bias = {p.name: torch.from_numpy(p.bias).to(dtype) for p in net.populations
                     if p.bias is not None}
        self.incoming = {p.name: [c for c in net.incoming(p.name) if c.src != INPUT]
                         for p in net.populations}
        # NIR neurons: (leak, alpha, r, v_leak, v_threshold, v_reset), each shaped like the
        # population (eventsnn.engine.steps.nir_step)
        self.dynamics = {}
        for p in net.populations:
            if p.dynamics is not None:
                leak, params = p.step_parameters()
                self.dynamics[p.name] = (leak, *(torch.from_numpy(a.reshape(p.shape)).to(dtype)
                                                 for a in params))

    def _fmt(self, t):
        if self.channels_last and t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    def _make_op(self, c):
        if isinstance(c, ConvConnection):
            w = self._fmt(torch.from_numpy(c.weight).to(self.dtype))
            return lambda s: _pad_conv(s, w, c.stride, c.padding)
        if isinstance(c, DenseConnection):
            wt = torch.from_numpy(c.weight).to(self.dtype).T.contiguous()
            return lambda s: (s.reshape(len(s), -1) @ wt).reshape((len(s),) + c.dst_shape)
        if isinstance(c, SparseConnection):
            m = c.matrix.T.tocsr()
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore")
                wt = torch.sparse_csr_tensor(torch.from_numpy(m.indptr).long(),
                                             torch.from_numpy(m.indices).long(),
                                             torch.from_numpy(m.data).to(self.dtype),
                                             size=m.shape, check_invariants=False)
            return lambda s: (wt @ s.reshape(len(s), -1).T).T.reshape((len(s),) + c.dst_shape)
        if isinstance(c, IdentityConnection):
            scale = torch.from_numpy(c.scale).to(self.dtype)
            if scale.ndim == 1:
                scale = scale.reshape((-1,) + (1,) * (len(c.src_shape) - 1))
            return lambda s: s * scale
        if isinstance(c, PoolConnection):
            return None
        raise TypeError(f"no dense simulation for connection kind {c.kind!r}")

    @torch.inference_mode()
    def run(self, x, T):
        """Simulate ``T`` steps on a batch ``x`` (numpy or tensor, (B, *input_shape)).

        Per step and population (list order, zero synaptic delay), as in docs/design.md, from
        ``V(0) = Population.v_init`` (``U(0) = 0``): ``V += I(t) + const``;
        ``s = clip(floor(V/θ), 0, Γ)``; ``V -= s·θ`` (Eq. 2-4), with
        ``const`` = bias + direct-coded input current (computed once); LIPool (Eq. 12) and
        max-gate (Eq. 11) on spike counts; the output integrator ``U += I(t) + const``; the
        NIR neurons (``"lif"``, ``"output"`` with dynamics) as :func:`eventsnn.engine.steps.nir_step`.

        Returns
        -------
        torch.Tensor
            Output integrator values ``U(t)`` for t = 1..T, shape (T, B, n_out).
        """
        x = torch.as_tensor(x, dtype=self.dtype)
        b = len(x)
        net = self.net
        const = {}
        for c in net.outgoing(INPUT):
            cur = self.ops[c.name](self._fmt(x))
            const[c.dst] = cur if c.dst not in const else const[c.dst] + cur
        for name, bias in self.bias.items():
            const[name] = const[name] + bias if name in const else bias.expand((b,) + bias.shape)
        const = {k: self._fmt(v.contiguous()) for k, v in const.items()}
        state, spikes, pools = {}, {}, {}
        for p in net.populations:
            if p.kind in ("if", "output", "lif"):
                v0 = torch.as_tensor(p.initial_potential().reshape(p.shape), dtype=self.dtype)
                state[p.name] = self._fmt(v0.expand((b,) + p.shape).clone())
        outputs = torch.empty((T, b, net.output.size), dtype=self.dtype)
        for t in range(T):
            for p in net.populations:
                if p.kind in ("lipool", "maxgate"):
                    spikes[p.name] = self._pool(p, spikes[p.pool["source"]], pools, b)
                    continue
                incoming = self.incoming[p.name]
                v = state[p.name]
                if incoming:
                    current = self.ops[incoming[0].name](spikes[incoming[0].src])
                    for c in incoming[1:]:
                        current += self.ops[c.name](spikes[c.src])
                    if p.name in const:
                        current += const[p.name]
                else:
                    current = const.get(p.name, 0.0)
                if p.name in self.dynamics:
                    z = self._nir_step(v, current, *self.dynamics[p.name], p.kind == "lif")
                    if p.kind == "lif":
                        spikes[p.name] = z
                else:
                    v += current
                if p.kind == "output":
                    outputs[t] = v.reshape(b, -1)
                    continue
                if p.kind == "lif":
                    continue
                theta = float(p.threshold)
                s = torch.floor(v) if theta == 1.0 else torch.floor(v / theta)
                s.clamp_(0, p.burst)
                if theta == 1.0:
                    v -= s
                else:
                    v.sub_(s, alpha=theta)
                if p.v_max is not None:  # bounded ReLU
                    v.clamp_(max=p.v_max)
                spikes[p.name] = s
        return outputs

    @staticmethod
    def _nir_step(v, x, leak, alpha, r, v_leak, v_th, v_reset, spiking):
        """NIR IF/LIF/I/LI step in place (eventsnn.engine.steps.nir_step); returns the spikes."""
        if leak:
            v += alpha * ((v_leak - v) + r * x)
        else:
            v += alpha * (r * x)
        if not spiking:
            return None
        z = v > v_th
        torch.where(z, v_reset, v, out=v)
        return z.to(v.dtype)

    def _pool(self, p, counts, pools, b):
        kh, kw = p.pool["kernel"]
        pt, pl, pb, pr = p.pool["padding"]
        c, ho, wo = p.shape
        cols = F.unfold(F.pad(counts, (pl, pr, pt, pb)), (kh, kw), stride=p.pool["stride"])
        cols = cols.reshape(b, c, kh * kw, ho * wo)
        if p.name not in pools:
            pools[p.name] = torch.zeros_like(cols)
        acc = pools[p.name]
        acc += cols
        if p.kind == "lipool":
            out = torch.clamp(acc.max(dim=2, keepdim=True).values, min=0)
            acc -= out
        else:
            idx = acc.argmax(dim=2, keepdim=True)
            out = torch.gather(cols, 2, idx)
        return self._fmt(out.reshape(b, c, ho, wo))


def time_dense(sim, x, T, batch_size, repeat=1):
    """Best wall time per image (s) of ``sim.run`` over ``x`` in batches of ``batch_size``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s in range(0, len(x), batch_size):
            sim.run(x[s:s + batch_size], T)
        best = min(best, (time.perf_counter() - t0) / len(x))
    return best


def best_batch_size(net, x, T, candidates=(1, 4, 16, 32, 64), channels_last=(False, True),
                    rounds=3):
    """Fastest (batch size, channels_last) of the dense simulation on this machine.

    Times ``min(T, 8)`` steps on one batch of each candidate size (images from ``x``), every
    configuration once per round, ``rounds`` interleaved rounds (so that a change of machine
    load hits all of them alike), after one untimed warm-up run per configuration (oneDNN
    builds its primitives per shape). The best time of each configuration counts.

    Returns
    -------
    batch_size : int
    channels_last : bool
    table : list of (batch_size, channels_last, seconds per image)
    """
    steps = min(int(T), 8)
    sims = {cl: DenseTorchSNN(net, channels_last=cl) for cl in channels_last}
    configs = [(bs, cl) for cl in channels_last for bs in candidates]
    batches = {bs: x[np.arange(bs) % len(x)] for bs in candidates}
    for bs, cl in configs:
        sims[cl].run(batches[bs], 1)
    best = {c: float("inf") for c in configs}
    for _ in range(rounds):
        for bs, cl in configs:
            best[(bs, cl)] = min(best[(bs, cl)],
                                 time_dense(sims[cl], batches[bs], steps, bs, repeat=1))
    table = [(bs, cl, best[(bs, cl)]) for bs, cl in configs]
    bs, cl, _ = min(table, key=lambda r: r[2])
    return bs, cl, table
