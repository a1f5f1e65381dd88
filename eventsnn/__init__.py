"""eventsnn: ANN-to-SNN conversion with burst spikes and LIPooling, simulated event by event.

Pipeline (see README.md)::

    graph = eventsnn.load_onnx("model.onnx")          # or eventsnn.from_torch(module, x)
    net = eventsnn.convert(graph, calib_x, burst=5, pooling="lipool")
    result = eventsnn.simulate(net, x, T=64)           # event-driven Numba engine
    result.accuracy(y)                                 # accuracy at every step t = 1..T

Importing eventsnn imports neither torch nor onnx; the importers load them when called.
"""

from .analysis import Analysis, analyze, analyze_simulation
from .convert import analog_forward, ann_activations, convert, fold_batchnorm
from .engine import SimResult, simulate
from .graph import Graph, Node, load_graph
from .io import load_onnx
from .io.nir import from_nir, to_nir
from .energy import EnergyModel, estimate_energy
from .network import SpikingNetwork, load_network
from .report import write_report
from .validation import UnsupportedModelError

__version__ = "0.1.0"

__all__ = ["UnsupportedModelError", "Graph", "Node", "load_graph", "load_onnx", "from_torch", "to_torch", "convert", "analog_forward", "ann_activations",
           "fold_batchnorm", "SpikingNetwork", "load_network", "simulate", "SimResult", "Analysis",
           "analyze", "analyze_simulation", "EnergyModel", "estimate_energy", "write_report", "from_nir", "to_nir"]


def __getattr__(name):
    # from_torch / to_torch need torch; resolve them only when asked for so `import eventsnn`
    # stays light.
    if name in ("from_torch", "to_torch"):
        from . import io

        return getattr(io, name)
    raise AttributeError(f"module 'eventsnn' has no attribute {name!r}")
