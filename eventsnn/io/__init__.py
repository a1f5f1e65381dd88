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
    # ``from_torch`` (eventsnn.io.torch_import) and ``to_torch`` (eventsnn.io.torch_export) are
    # resolved lazily so this package stays light.
    if name == "from_torch":
        from .torch_import import from_torch

        return from_torch
    if name == "to_torch":
        from .torch_export import to_torch

        return to_torch
    raise AttributeError(f"module 'eventsnn.io' has no attribute {name!r}")
