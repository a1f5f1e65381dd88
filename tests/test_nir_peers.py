"""A network exported to NIR by snnTorch, read by eventsnn.from_nir and compared with
snnTorch's own simulation.

Convention (snnTorch 1.0 ``export_to_nir``): a ``Leaky`` neuron (``U ← β·U + I``, spike when
``U > θ``) is written as LIF with ``tau = dt/(1-β)``, ``r = tau/dt`` and a hard-coded
``dt = 1e-4``, ``v_reset = 0`` whatever the reset mechanism. With ``from_nir(g, dt=1e-4)``
the step ``v += (dt/tau)·(v_leak − v + r·I)`` is ``v ← β·v + I`` (up to float rounding of
``dt/tau`` and ``r``), so a network with ``reset_mechanism="zero"`` (and
``reset_delay`` either way: a delayed reset to zero is the same for the next step) must spike
identically. snnTorch's default ``"subtract"`` reset is not in the file (the export is lossy
there, as Sinabs' multi-spike IAF). Inputs are dyadic and β = 1/2, so rounding cannot decide
a threshold comparison here.

snnTorch and nirtorch are not dependencies (their PyPI requirements pull a CUDA torch);
install them with ``pip install --no-deps snntorch nirtorch`` to run this test.
"""

import numpy as np
import pytest

import eventsnn

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
pytest.importorskip("nirtorch")
pytest.importorskip("nir")


def test_snntorch_leaky_network_spikes_identically():
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    q = 2.0 ** -5
    lin1, lin2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 4)
    with torch.no_grad():  # dyadic weights and biases
        for lin in (lin1, lin2):
            lin.weight.copy_(torch.round(lin.weight * 4 / q) * q)
            lin.bias.copy_(torch.round(lin.bias / q) * q)
    # per-neuron beta/threshold: snnTorch 1.0 + nir 1.0.8 fail type inference on scalars
    net = torch.nn.Sequential(
        lin1, snn.Leaky(beta=torch.full((6,), 0.5), threshold=torch.ones(6), init_hidden=True,
                        reset_mechanism="zero"),
        lin2, snn.Leaky(beta=torch.full((4,), 0.5), threshold=torch.ones(4), init_hidden=True,
                        reset_mechanism="zero", output=True))
    graph = export_to_nir(net, torch.zeros(1, 8), ignore_dims=[0])
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Affine", "LIF", "Output"}

    rng = np.random.default_rng(1)
    x = (rng.integers(-32, 33, size=(16, 8)) * q).astype(np.float32)
    T = 20
    with torch.no_grad():
        from snntorch import utils

        utils.reset(net)
        ref = np.stack([net(torch.from_numpy(x))[0].numpy() for _ in range(T)])  # (T, B, 4)

    ours = eventsnn.from_nir(graph, dt=1e-4)
    res = eventsnn.simulate(ours, x, T, progress=False)
    # the LIF node feeding Output is read by an integrator: outputs are cumulative spikes
    np.testing.assert_array_equal(res.outputs, np.cumsum(ref, axis=0))
    assert ref.sum() > 0 and ref.sum() < ref.size  # neither silent nor saturated


def test_sinabs_iaf_network_spikes_identically():
    """Sinabs (3.x) writes its IAF as IF with ``r = 1`` (so ``dt = 1``) and drops its spike and
    reset functions. With ``SingleSpike`` + ``MembraneReset`` (one spike, reset to 0) the
    neuron is NIR's IF except that Sinabs fires at ``V ≥ θ`` and NIR at ``V > θ``; θ = 1 + 2^-12
    is never hit exactly by these inputs (multiples of 2^-10), so the spikes must be
    identical. (Sinabs' default multi-spike, subtractive IAF is exported the same way: lossy.)
    Sinabs also writes the time axis into the Input node's shape, hence ``input_shape=``.
    """
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, SingleSpike

    torch.manual_seed(0)
    q = 2.0 ** -5
    theta = 1.0 + 2.0 ** -12
    lin1, lin2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 4)
    with torch.no_grad():
        for lin in (lin1, lin2):
            lin.weight.copy_(torch.round(lin.weight * 4 / q) * q)
            lin.bias.copy_(torch.round(lin.bias / q) * q)
    kw = dict(spike_threshold=theta, spike_fn=SingleSpike, reset_fn=MembraneReset())
    net = torch.nn.Sequential(lin1, sl.IAF(**kw), lin2, sl.IAF(**kw))
    T = 20
    graph = sinabs.to_nir(net, torch.zeros(1, T, 8))
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Affine", "IF", "Output"}

    rng = np.random.default_rng(2)
    x = (rng.integers(-32, 33, size=(16, 8)) * q).astype(np.float32)
    with torch.no_grad():
        for m in net:
            if isinstance(m, sl.IAF):
                m.reset_states()
        ref = net(torch.from_numpy(np.repeat(x[:, None], T, axis=1))).numpy()  # (B, T, 4)

    # Sinabs writes the time axis into the Input node's shape, (T, 8): give one step's shape
    res = eventsnn.simulate(eventsnn.from_nir(graph, dt=1.0, input_shape=(8,)), x, T,
                            progress=False)
    np.testing.assert_array_equal(res.outputs, np.cumsum(ref, axis=1).transpose(1, 0, 2))
    assert 0 < ref.sum() < ref.size
