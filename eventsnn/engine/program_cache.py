"""Reuse of compiled network programs between :func:`eventsnn.simulate` calls.

Building a :class:`~.numba_engine.NumbaProgram` (weight layouts, window tables, packing) costs
about 10 ms for ResNet20 and more for larger networks, every call; analysis loops that simulate
many small batches of the same network paid it each time. Programs are cached by a
fingerprint of the network's *content* (every field of every population and connection,
arrays hashed byte for byte, plus the input shape): a network changed in place gets a new
fingerprint and a new program, and equal networks share one. Hashing reads the parameters
once, several times cheaper than building the program. The cache keeps the last
:data:`MAX_PROGRAMS` programs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

MAX_PROGRAMS = 2

_lock = threading.Lock()
_programs: OrderedDict = OrderedDict()


def _update(h, obj):
    """Feed ``obj`` (arrays, sparse matrices, dataclasses, containers, scalars) into ``h``."""
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"nd{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    elif sp.issparse(obj):
        m = obj.tocsr()
        h.update(f"sp{m.shape}".encode())
        for a in (m.data, m.indices, m.indptr):
            _update(h, a)
    elif dataclasses.is_dataclass(obj):
        h.update(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode())
            _update(h, getattr(obj, f.name))
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            _update(h, k)
            _update(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _update(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def network_fingerprint(net):
    """BLAKE2b digest (bytes) of everything a program is built from.

    Parameters
    ----------
    net : SpikingNetwork

    Returns
    -------
    bytes
        Equal for networks with equal input shape, populations and connections (in order).
    """
    h = hashlib.blake2b(digest_size=20)
    _update(h, net.input_shape)
    _update(h, net.populations)
    _update(h, net.connections)
    return h.digest()


def cached_program(net):
    """The :class:`~.numba_engine.NumbaProgram` of ``net``, built once per network content.

    Parameters
    ----------
    net : SpikingNetwork
        Already validated.

    Returns
    -------
    NumbaProgram
    """
    from .numba_engine import NumbaProgram

    key = network_fingerprint(net)
    with _lock:
        program = _programs.get(key)
        if program is not None:
            _programs.move_to_end(key)
            return program
    program = NumbaProgram(net)
    with _lock:
        _programs[key] = program
        while len(_programs) > MAX_PROGRAMS:
            _programs.popitem(last=False)
    return program
