"""Networks exported to NIR by snnTorch and Sinabs, read by eventsnn.from_nir, spike exactly as
the peers' own simulations (conventions: benchmarks/nir_peers.py).

snnTorch: ``Leaky`` with ``reset_mechanism="zero"`` is written as LIF with ``dt = 1e-4``
hard-coded; ``from_nir(g, dt=1e-4)`` gives ``v ← v + (1-β)·(−v + I/(1-β))`` = ``β·v + I``
(β = 1/2: exact). Sinabs: ``IAF`` with ``SingleSpike`` + ``MembraneReset`` is written as IF
with ``r = 1`` (``dt = 1``); Sinabs fires at ``V ≥ θ``, NIR at ``V > θ``, and θ = 1 + 2^-12 is
never hit exactly by these potentials (multiples of 2^-10). Inputs and weights are dyadic.

snnTorch, nirtorch and Sinabs are not dependencies (their PyPI requirements pull a CUDA
torch); ``pip install --no-deps snntorch nirtorch sinabs pbr`` to run these tests.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("nir")
pytest.importorskip("nirtorch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import nir_peers  # noqa: E402

T = 20


def test_snntorch_leaky_network_spikes_identically():
    pytest.importorskip("snntorch")
    x = nir_peers.inputs(1)
    graph, ref = nir_peers.snntorch_run(0, x, T, reset_mechanism="zero")
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Affine", "LIF", "Output"}
    np.testing.assert_array_equal(nir_peers.eventsnn_spikes(graph, x, T, dt=1e-4), ref)
    assert 0 < ref.sum() < ref.size  # neither silent nor saturated


def test_sinabs_iaf_network_spikes_identically():
    pytest.importorskip("sinabs")
    x = nir_peers.inputs(2)
    graph, ref = nir_peers.sinabs_run(0, x, T, single_spike=True)
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Affine", "IF", "Output"}
    # Sinabs writes the time axis into the Input node's shape, (T, 8): give one step's shape
    np.testing.assert_array_equal(
        nir_peers.eventsnn_spikes(graph, x, T, dt=1.0, input_shape=(8,)), ref)
    assert 0 < ref.sum() < ref.size
