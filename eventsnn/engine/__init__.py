"""Simulation of a :class:`~eventsnn.network.SpikingNetwork`: :func:`simulate`.

Two engines implement the same clock-driven, event-driven semantics (DESIGN.md, "Simulation
semantics"): ``"numba"`` (compiled kernels, the fast path) and ``"reference"`` (pure Python
event queue, the oracle for small networks). Both return a :class:`SimResult`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .encoding import ENCODINGS, resolve_seed
from .result import RECORD_KINDS, SimResult, concatenate

ENGINES = ("numba", "reference")

__all__ = ["simulate", "SimResult", "concatenate", "ENGINES", "ENCODINGS", "RECORD_KINDS"]

def _check_T(T):
    if isinstance(T, (bool, np.bool_)) or not isinstance(T, numbers.Integral):
        raise TypeError(f"T (number of time steps) must be an integer, got {T!r}")
    if T < 1:
        raise ValueError(f"T (number of time steps) must be >= 1, got {T}")
    return int(T)


def _check_x(net, x):
    shape = tuple(net.input_shape)
    expected = f"(batch, {', '.join(str(s) for s in shape)})"
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"x must be a numeric array of shape {expected}: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"x must be a real numeric array (float32 images), got dtype {arr.dtype}")
    if arr.shape == shape:
        raise ValueError(
            f"x has shape {arr.shape}, a single image; add the batch axis: x[None] has shape "
            f"{(1,) + shape}, the expected {expected}"
        )
    if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
        raise ValueError(f"x has shape {arr.shape}; expected {expected} for this network")
    if arr.shape[0] == 0:
        raise ValueError(f"x holds no images (shape {arr.shape}); pass at least one")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("x contains NaN or infinite values; clean or normalise the input first")
    return arr


def _check_record(record):
    if record is None:
        return ()
    if isinstance(record, str):
        record = (record,)
    try:
        record = tuple(record)
    except TypeError:
        raise TypeError(f"record must be a sequence of names from {RECORD_KINDS}, got {record!r}") from None
    for r in record:
        if r not in RECORD_KINDS:
            raise ValueError(f"unknown record {r!r}; choose from {RECORD_KINDS}")
    return tuple(dict.fromkeys(record))


def simulate(net, x, T, *, engine="numba", batch_size=None, progress=True, encoding="direct",
             seed=None, record=()):
    """Simulate a spiking network on a batch of images for ``T`` time steps.

    Semantics (DESIGN.md, "Simulation semantics"): at each step ``t = 1..T`` populations are
    updated in list order with zero synaptic delay. Burst IF neurons (Eq. 2-4, Algorithm 1):
    ``V += I(t) + b``, ``s = clip(floor(V/θ), 0, Γ)``, ``V -= s·θ``. LIPooling (Eq. 12) and
    max-gated pooling (Eq. 11) act on spike counts. The output integrator accumulates
    ``U += I(t) + b`` and predicts ``argmax U(t)`` at every step.

    Parameters
    ----------
    net : SpikingNetwork
    x : array_like, shape (B, *net.input_shape)
        Normalised input images (float32; finite).
    T : int
        Number of time steps, >= 1.
    engine : {"numba", "reference"}
        ``"numba"``: the compiled event-driven engine (the network's kernel tables are built
        once per network content and reused by later calls, see
        :mod:`eventsnn.engine.program_cache`). ``"reference"``: the pure-Python oracle
        (small networks only); it receives all images at once (``batch_size`` and
        ``progress`` do not apply).
    batch_size : int, optional
        Images simulated together (numba engine); by default as many as fit in about
        256 MiB of per-image results and records (at most 512), see
        ``NumbaProgram.default_batch_size``.
        Results do not depend on it.
    progress : bool
        Show a tqdm progress bar over batches (when there is more than one).
    encoding : {"direct", "poisson"}
        Input coding, see :mod:`eventsnn.engine.encoding`.
    seed : int, optional
        Seed of Poisson coding (ignored by direct coding); None draws a fresh one.
    record : sequence of str
        Per-neuron records to keep, from ``("neuron_counts", "potential", "trains")``.

    Returns
    -------
    SimResult
    """
    from ..network import SpikingNetwork

    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"net must be a SpikingNetwork (see eventsnn.convert), got {type(net).__name__}")
    T = _check_T(T)
    x = _check_x(net, x)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
    record = _check_record(record)
    if batch_size is not None:
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"batch_size must be an integer or None, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (or None for automatic), got {batch_size}")
        batch_size = int(batch_size)
    seed = resolve_seed(seed) if encoding == "poisson" else (None if seed is None else resolve_seed(seed))

    if engine == "reference":
        from .reference import simulate_reference

        return simulate_reference(net, x, T, encoding=encoding, seed=seed, record=record)

    from .program_cache import cached_program

    program = cached_program(net)
    if batch_size is None:
        batch_size = program.default_batch_size(T, record, encoding)
    starts = range(0, len(x), batch_size)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="simulate", unit="batch")
    results = [program.run(x[s:s + batch_size], T, encoding=encoding, seed=seed, first_index=s,
                           record=record)
               for s in starts]
    return concatenate(results)
