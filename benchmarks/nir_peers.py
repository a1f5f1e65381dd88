"""Networks exported to NIR by snnTorch and Sinabs, run by ``eventsnn.from_nir``, against the
peers' own simulations.

Each peer builds a two-layer network (Linear 8→6, neurons, Linear 6→4, neurons) with dyadic
weights and biases, simulates it for ``T`` steps on a constant input, and exports it with its
own NIR exporter; eventsnn reads the file and simulates the NIR semantics (README, "NIR").

Conventions: snnTorch writes ``Leaky`` (``U ← β·U + I``) as LIF with ``tau = dt/(1-β)``,
``r = tau/dt`` and a hard-coded ``dt = 1e-4``, so it is read with ``dt=1e-4``; it drops the
reset mechanism (NIR resets to ``v_reset = 0``). Sinabs writes ``IAF`` as IF with ``r = 1``
(read with ``dt=1``), drops its spike function (multi-spike by default) and reset
(subtractive by default), fires at ``V ≥ θ`` (NIR: ``V > θ``) and writes the time axis into the
Input node's shape (hence ``input_shape=``). With the configurations NIR can express
(snnTorch ``reset_mechanism="zero"``; Sinabs ``SingleSpike`` + ``MembraneReset``, θ never hit
exactly) the spikes are identical (``tests/test_nir_peers.py``); with the peers' defaults the
export is silently lossy, which ``python benchmarks/nir_peers.py`` measures.

snnTorch and Sinabs are not dependencies: ``pip install --no-deps snntorch nirtorch sinabs pbr``
into an environment with CPU torch.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

Q = 2.0 ** -5
THETA_SINABS = 1.0 + 2.0 ** -12  # never equal to a potential here (multiples of 2^-10)


def _linears(seed):
    import torch

    torch.manual_seed(seed)
    lin1, lin2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 4)
    with torch.no_grad():  # dyadic weights and biases
        for lin in (lin1, lin2):
            lin.weight.copy_(torch.round(lin.weight * 4 / Q) * Q)
            lin.bias.copy_(torch.round(lin.bias / Q) * Q)
    return lin1, lin2


def inputs(seed, n=16):
    """``n`` dyadic inputs of 8 values in [-1, 1]."""
    return (np.random.default_rng(seed).integers(-32, 33, size=(n, 8)) * Q).astype(np.float32)


def snntorch_run(seed, x, T, reset_mechanism="zero"):
    """(NIR graph, output spikes (T, B, 4)) of an snnTorch Leaky network (β = 1/2)."""
    import snntorch as snn
    import torch
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    lin1, lin2 = _linears(seed)
    # per-neuron beta/threshold: snnTorch 1.0 with nir 1.0.8 fails type inference on scalars
    net = torch.nn.Sequential(
        lin1, snn.Leaky(beta=torch.full((6,), 0.5), threshold=torch.ones(6), init_hidden=True,
                        reset_mechanism=reset_mechanism),
        lin2, snn.Leaky(beta=torch.full((4,), 0.5), threshold=torch.ones(4), init_hidden=True,
                        reset_mechanism=reset_mechanism, output=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = export_to_nir(net, torch.zeros(1, 8), ignore_dims=[0])
    with torch.no_grad():
        utils.reset(net)
        spikes = np.stack([net(torch.from_numpy(x))[0].numpy() for _ in range(T)])
    return graph, spikes


def sinabs_run(seed, x, T, single_spike=True):
    """(NIR graph, output spikes (T, B, 4)) of a Sinabs IAF network (θ = 1 + 2^-12)."""
    import sinabs
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneReset, SingleSpike

    lin1, lin2 = _linears(seed)
    kw = dict(spike_threshold=THETA_SINABS)
    if single_spike:
        kw.update(spike_fn=SingleSpike, reset_fn=MembraneReset())
    net = torch.nn.Sequential(lin1, sl.IAF(**kw), lin2, sl.IAF(**kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = sinabs.to_nir(net, torch.zeros(1, T, 8))
    with torch.no_grad():
        for m in net:  # the export ran the network once: start from rest
            if isinstance(m, sl.IAF):
                m.reset_states()
        out = net(torch.from_numpy(np.repeat(x[:, None], T, axis=1))).numpy()
    return graph, out.transpose(1, 0, 2)


def eventsnn_spikes(graph, x, T, dt, input_shape=None):
    """Output spikes (T, B, n) of ``from_nir(graph)``: the steps of its output integrator."""
    import eventsnn

    out = eventsnn.simulate(eventsnn.from_nir(graph, dt=dt, input_shape=input_shape), x, T,
                            progress=False).outputs
    return np.diff(out, axis=0, prepend=np.zeros_like(out[:1]))


def main(T=20, n=256, seeds=(0, 1, 2)):
    x = inputs(1, n)
    print(f"{n} inputs, T={T}; share of (step, input, neuron) output spikes that differ, total "
          "spikes (peer / NIR semantics), share of inputs whose most active output agrees")
    for seed in seeds:
        for peer, run, kw, dt, shape in (
                ("snnTorch Leaky, subtract reset", snntorch_run, {"reset_mechanism": "subtract"},
                 1e-4, None),
                ("Sinabs IAF, multi-spike + subtract", sinabs_run, {"single_spike": False}, 1.0,
                 (8,))):
            graph, ref = run(seed, x, T, **kw)
            ours = eventsnn_spikes(graph, x, T, dt, shape)
            agree = (ref.sum(0).argmax(1) == ours.sum(0).argmax(1)).mean()
            print(f"seed {seed} {peer:<36} differ {np.mean(ref != ours):.3f}  spikes "
                  f"{ref.sum():.0f} / {ours.sum():.0f}  argmax agree {agree:.3f}")


if __name__ == "__main__":
    main()
