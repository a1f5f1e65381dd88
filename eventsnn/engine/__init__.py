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


def _check_count(name, value, minimum, none_means=None):
    """``value`` as an int >= ``minimum``; None passes when ``none_means`` says what it means."""
    if value is None and none_means is not None:
        return None
    alt = f" (or None for {none_means})" if none_means is not None else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{alt}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{alt}, got {value}")
    return int(value)


def simulate(net, x, T, *, engine="numba", batch_size=None, progress=True, encoding="direct",
             seed=None, record=(), first_index=0, client=None, chunk_size=None):
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
        ``"numba"``: the compiled event-driven engine. ``"reference"``: the pure-Python
        oracle (small networks only); it receives all images at once (``batch_size`` and
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
    first_index : int
        Position of ``x[0]`` in a larger array of images: image ``i`` of ``x`` draws the
        Poisson stream of image ``first_index + i`` (see
        :func:`~eventsnn.engine.encoding.poisson_spikes`), so a slice simulated on its own
        gives exactly what it gives within the whole array.
    client : dask.distributed.Client, optional
        Run on a Dask cluster (:mod:`eventsnn.distributed`): the network is sent once to
        every worker, chunks of ``chunk_size`` images run as tasks (one engine thread each)
        and their results are joined in image order. The result is identical to the
        in-process one. Needs ``pip install eventsnn[dask]``.
    chunk_size : int, optional
        Images per Dask task (with ``client``); by default about 16 tasks per worker thread.

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
    batch_size = _check_count("batch_size", batch_size, 1, "automatic")
    chunk_size = _check_count("chunk_size", chunk_size, 1, "automatic")
    first_index = _check_count("first_index", first_index, 0)
    seed = resolve_seed(seed) if encoding == "poisson" else (None if seed is None else resolve_seed(seed))

    if client is not None:
        from ..distributed import simulate_on_client

        return simulate_on_client(client, net, x, T, chunk_size=chunk_size, progress=progress,
                                  first_index=first_index, engine=engine, batch_size=batch_size,
                                  encoding=encoding, seed=seed, record=record)
    if engine == "reference":
        from .reference import simulate_reference

        return simulate_reference(net, x, T, encoding=encoding, seed=seed, record=record,
                                  first_index=first_index)

    from .numba_engine import NumbaProgram

    program = NumbaProgram(net)
    if batch_size is None:
        batch_size = program.default_batch_size(T, record, encoding)
    starts = range(0, len(x), batch_size)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="simulate", unit="batch")
    results = [program.run(x[s:s + batch_size], T, encoding=encoding, seed=seed,
                           first_index=first_index + s, record=record)
               for s in starts]
    return concatenate(results)
