"""Simulation of a :class:`~eventsnn.network.SpikingNetwork`: :func:`simulate`.

Two engines implement the same clock-driven, event-driven semantics (docs/design.md, "Simulation
semantics"): ``"numba"`` (compiled kernels, the fast path) and ``"reference"`` (pure Python
event queue, the oracle for small networks). Both return a :class:`SimResult`.
"""

from __future__ import annotations

import os

from ..validation import check_batch, check_int, check_positive_int
from .encoding import ENCODINGS, resolve_seed
from .result import RECORD_KINDS, SimResult, concatenate

ENGINES = ("numba", "reference")

__all__ = ["simulate", "SimResult", "concatenate", "ENGINES", "ENCODINGS", "RECORD_KINDS"]


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


def available_memory():
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(program, n_images, T, record, encoding, batch_size):
    """Refuse a run whose kept results plus one batch would not fit in the available memory."""
    kept = program.bytes_per_image(T, record, encoding) - program.bytes_per_image(T, (), encoding)
    kept += 4 * T * program.net.output.size                      # outputs (T, B, n_out) float32
    need = n_images * kept + batch_size * program.bytes_per_image(T, record, encoding)
    have = available_memory()
    if have is not None and need > have:
        gib = 2.0 ** 30
        fix = ("drop 'trains' from record (or simulate fewer images per call and reduce each "
               "batch, as eventsnn.analyze_simulation does)" if "trains" in record
               else "simulate fewer images per call, fewer steps T, or fewer records")
        raise MemoryError(
            f"this simulation would need about {need / gib:.1f} GiB ({n_images} images, T={T}, "
            f"records {list(record) or 'none'}: {kept / 2**20:.2f} MiB kept per image) but "
            f"{have / gib:.1f} GiB are available; {fix}")
    return need


def _progress_chunk(n_images, batch_size):
    """Images per engine call when a progress bar is shown: about 25 updates per run, at
    least 16 images per thread (each call has a fixed cost and a tail where threads idle),
    never more than ``batch_size``."""
    import numba

    return max(1, min(batch_size, max(16 * numba.get_num_threads(), -(-n_images // 25))))


def simulate(net, x, T, *, engine="numba", batch_size=None, progress=False, encoding="direct",
             seed=None, record=(), first_index=0, client=None, chunk_size=None):
    """Simulate a spiking network on a batch of images for ``T`` time steps.

    Semantics (docs/design.md, "Simulation semantics"): at each step ``t = 1..T`` populations are
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
        Show a tqdm progress bar over images (default off; the ``eventsnn`` command turns it
        on). The images are then simulated in chunks (about 25, at least 16 images per thread)
        so that the bar moves; results do not depend on it.
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

    Raises
    ------
    MemoryError
        Before any allocation, when the results kept for all images (outputs and records,
        e.g. ``"trains"``: ``8·T·B·N`` bytes) plus one batch exceed the available memory;
        the message gives the size and what to change.
    """
    from ..network import SpikingNetwork

    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"net must be a SpikingNetwork (see eventsnn.convert), got {type(net).__name__}")
    T = check_positive_int(T, "T (number of time steps)")
    x = check_batch(x, net.input_shape)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
    record = _check_record(record)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    chunk_size = check_positive_int(chunk_size, "chunk_size", allow_none=True)
    first_index = check_int(first_index, "first_index", 0)
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

    from .program_cache import cached_program

    program = cached_program(net)
    if batch_size is None:
        batch_size = program.default_batch_size(T, record, encoding)
    _check_memory(program, len(x), T, record, encoding, batch_size)
    if not progress:
        return concatenate([program.run(x[s:s + batch_size], T, encoding=encoding, seed=seed,
                                        first_index=first_index + s, record=record)
                            for s in range(0, len(x), batch_size)])
    from tqdm.auto import tqdm

    chunk = _progress_chunk(len(x), batch_size)
    results = []
    with tqdm(total=len(x), desc="simulate", unit="img") as bar:
        for s in range(0, len(x), chunk):
            results.append(program.run(x[s:s + chunk], T, encoding=encoding, seed=seed,
                                       first_index=first_index + s, record=record))
            bar.update(len(results[-1].outputs[0]))
    return concatenate(results)
