"""Importers that turn trained ANNs into an eventsnn :class:`~eventsnn.graph.Graph`.

* :func:`load_onnx` — an ONNX file (e.g. from ``torch.onnx.export``); needs ``onnx``
  (``pip install eventsnn[onnx]``), imported only when called.
* :func:`from_torch` — a ``torch.nn.Module``; needs ``torch``, imported only when called.
* :func:`to_torch` — the inverse: a Graph as a ``torch.nn.Module`` (one submodule per node).

Importing this package imports neither onnx nor torch.
"""

from .onnx import SUPPORTED_ONNX_OPS, load_onnx

__all__ = ["load_onnx", "from_torch", "to_torch", "SUPPORTED_ONNX_OPS"]


def __getattr__(name):
    # ``from_torch`` / ``to_torch`` live in eventsnn.io.torch; resolved lazily so this package
    # stays light.
    if name in ("from_torch", "to_torch"):
        from . import torch as _torch_io

        return getattr(_torch_io, name)
    raise AttributeError(f"module 'eventsnn.io' has no attribute {name!r}")
