"""Simulation and analysis on a Dask cluster, identical to an in-process run.

Images are independent, so a run splits into chunks of images that Dask workers simulate in
parallel (on one machine, a workstation or a SLURM cluster through ``dask-jobqueue``):

- the network (and, for the analysis, the ANN graph) is sent to every worker once
  (``client.scatter(..., broadcast=True)``); each task carries only its chunk of images;
- every task runs the in-process engine on its chunk with one engine thread (Dask's worker
  threads and processes are the parallelism), passing the position of the chunk in the
  whole array so that Poisson coding draws the same per-image streams
  (:func:`eventsnn.engine.encoding.poisson_spikes`);
- a task lost with its worker is run again (Dask retries, ``RETRIES`` times), and results are
  joined in image order, not completion order.

The merged :class:`~eventsnn.engine.result.SimResult` is bit-identical to the in-process
one: every image is simulated on its own (its outputs and records do not depend on the other
images of its batch), and the per-step counts are integer sums, which do not depend on the
order of addition. The analysis (:func:`eventsnn.analysis.analyze_simulation`) sends one task
per batch and merges the per-batch sums in batch order, exactly as the in-process loop adds
them, so its floating-point sums are identical too.

Dask is an optional dependency (``pip install eventsnn[dask]``), imported only when a client
is used.
"""

from __future__ import annotations

import contextlib
import math
import os

INSTALL_HINT = "pip install 'eventsnn[dask]'"
RETRIES = 2
"""Times a failed task is run again (a task lost with a killed worker is rescheduled by Dask)."""
TASKS_PER_THREAD = 16
"""Default number of chunks per worker thread: small enough chunks that the last ones finish
together (idle tail below about 1/32 of the run), large enough that the per-task overhead
(milliseconds) is negligible."""
WORKER_ENV = {"NUMBA_NUM_THREADS": "1"}
"""Environment of the worker processes of ``connect("local:N")``: one Numba thread each."""

__all__ = ["connect", "check_client", "plan_chunks", "simulate_on_client", "analyze_on_client",
           "worker_peak_memory", "peak_rss", "INSTALL_HINT", "RETRIES"]


def _distributed():
    """The ``distributed`` package, or an ImportError naming the install command."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(f"running on Dask needs the optional dependency dask[distributed] ({e}); "
                          f"install it with: {INSTALL_HINT}") from None
    return distributed


def check_client(client):
    """Check that ``client`` is a running ``dask.distributed.Client``; return it."""
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client (or None to run in this "
                        f"process), got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"the Dask client is {client.status}; connect a new one with "
                         "eventsnn.distributed.connect(address) or dask.distributed.Client(address)")
    return client


def _local_workers(address):
    """N for ``"local:N"`` (``"local"``: one per CPU core), None for a scheduler address."""
    if not isinstance(address, str):
        raise TypeError(f"the Dask address must be a string such as 'tcp://host:8786' or "
                        f"'local:2', got {address!r}")
    if address == "local":
        return os.cpu_count() or 1
    if not address.startswith("local:"):
        return None
    n = address[len("local:"):]
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"bad Dask address {address!r}: write local:N with N >= 1 worker "
                         "processes, e.g. local:2")
    return int(n)


@contextlib.contextmanager
def connect(address, *, timeout=10):
    """A Dask client for ``address``, closed (with its local cluster) on exit.

    Parameters
    ----------
    address : str or None
        ``"local:N"``: start a ``LocalCluster`` of N single-threaded worker processes on this
        machine (one Numba thread each) and close it at the end; ``"local"``: one per CPU
        core; anything else: the address of a running scheduler (``"tcp://host:8786"``, a
        scheduler file's address, ...). None yields None (run in this process).
    timeout : float
        Seconds to wait for a remote scheduler before giving up.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    ImportError
        dask[distributed] is not installed (the message names ``pip install eventsnn[dask]``).
    ValueError
        A malformed ``local:N``, or no scheduler answers at ``address``.
    """
    if address is None:
        yield None
        return
    n_local = _local_workers(address)
    distributed = _distributed()
    if n_local is not None:
        import dask

        # no dashboard, so no use for the workers' statistical profiler (a thread sampling
        # every task's stack every 10 ms); the worker processes inherit this configuration
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(n_workers=n_local, threads_per_worker=1,
                                               processes=True, dashboard_address=None,
                                               env=dict(WORKER_ENV))
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise ValueError(
            f"cannot reach a Dask scheduler at {address!r} ({e}); start one there (`dask "
            "scheduler`, then `dask worker ADDRESS --nthreads 1` on each machine), check the "
            "address, or use 'local:N' for N worker processes on this machine") from None
    with client:
        yield client


def plan_chunks(n_images, n_threads, chunk_size=None):
    """Consecutive ``(start, stop)`` image ranges, one per task.

    Parameters
    ----------
    n_images : int
    n_threads : int
        Worker threads of the cluster (0 while none has joined yet: treated as 1).
    chunk_size : int, optional
        Images per chunk; default ``ceil(n_images / (TASKS_PER_THREAD · n_threads))``.
    """
    if chunk_size is None:
        chunk_size = max(1, math.ceil(n_images / (TASKS_PER_THREAD * max(1, n_threads))))
    return [(a, min(n_images, a + chunk_size)) for a in range(0, n_images, chunk_size)]


def _map_ordered(client, fn, args, shared, constants, desc, progress):
    """Run ``fn(*args[i], **shared, **constants)`` as Dask tasks; results in the order of ``args``.

    ``shared`` objects (the network, the graph) are sent to every worker once; None values
    are passed as they are. Tasks are retried ``RETRIES`` times; a progress bar counts
    finished tasks.
    """
    distributed = _distributed()
    from tqdm.auto import tqdm

    held = {k: client.scatter(v, broadcast=True, hash=False)
            for k, v in shared.items() if v is not None}
    kwargs = {**shared, **held, **constants}
    futures = client.map(fn, *zip(*args), retries=RETRIES, pure=False, **kwargs)
    position = {f.key: i for i, f in enumerate(futures)}
    out = [None] * len(futures)
    try:
        with tqdm(total=len(futures), desc=desc, unit="chunk", disable=not progress) as bar:
            for fut, res in distributed.as_completed(futures, with_results=True):
                out[position[fut.key]] = res
                bar.update()
    finally:
        client.cancel(futures + list(held.values()))
    return out


def _one_engine_thread():
    """Each task runs the engine on one thread: the cluster's threads are the parallelism."""
    import numba

    numba.set_num_threads(1)


def _simulate_chunk(x, first_index, *, net, T, options):
    from .engine import simulate

    _one_engine_thread()
    return simulate(net, x, T, first_index=first_index, progress=False, **options)


def simulate_on_client(client, net, x, T, *, chunk_size=None, progress=True, first_index=0,
                       **options):
    """:func:`eventsnn.simulate` on a Dask cluster (called by it when given ``client=``).

    Parameters
    ----------
    client : distributed.Client
    net : SpikingNetwork
    x : ndarray, float32, shape (B, *net.input_shape)
        Validated images.
    T : int
    chunk_size : int, optional
        Images per task, see :func:`plan_chunks`.
    progress : bool
        A progress bar over finished chunks.
    first_index : int
        Position of ``x[0]`` in the whole array (Poisson streams).
    **options
        ``engine``, ``batch_size``, ``encoding``, ``seed`` (resolved), ``record``: passed to
        :func:`eventsnn.simulate` on the workers.

    Returns
    -------
    SimResult
        Identical to ``eventsnn.simulate(net, x, T, **options)`` in this process.
    """
    from .engine.result import concatenate

    check_client(client)
    chunks = plan_chunks(len(x), sum(client.nthreads().values()), chunk_size)
    parts = _map_ordered(client, _simulate_chunk, [(x[a:b], first_index + a) for a, b in chunks],
                         {"net": net}, {"T": T, "options": options}, "simulate on dask", progress)
    return concatenate(parts)


def _analyze_chunk(x, y, first_index, *, net, graph, T, record, ann_batch_size, options):
    from .analysis import analyze_batch

    _one_engine_thread()
    part = analyze_batch(net, graph, x, y, T, first_index, record, ann_batch_size, options)
    part.net = part.graph = None    # the client holds both: do not send them back
    return part


def analyze_on_client(client, net, graph, x, y, T, batch_size, record, ann_batch_size, options):
    """:func:`eventsnn.analysis.analyze_simulation` on a Dask cluster, one task per batch.

    The per-batch :class:`~eventsnn.analysis.Analysis` sums are merged in batch order, as
    the in-process loop adds them, so the result is identical to it.

    Parameters
    ----------
    client : distributed.Client
    net, graph, x, y, T, batch_size, record, ann_batch_size
        As in :func:`~eventsnn.analysis.analyze_simulation` (validated).
    options : dict
        Keyword arguments of :func:`eventsnn.simulate` (``progress`` sets the progress bar
        over finished batches).

    Returns
    -------
    Analysis
    """
    from .analysis import Analysis

    check_client(client)
    options = dict(options)
    progress = options.pop("progress", False)
    starts = range(0, len(x), batch_size)
    args = [(x[a:a + batch_size], None if y is None else y[a:a + batch_size], a) for a in starts]
    parts = _map_ordered(client, _analyze_chunk, args, {"net": net, "graph": graph},
                         {"T": T, "record": record, "ann_batch_size": ann_batch_size,
                          "options": options}, "analyse on dask", progress)
    an = Analysis(net, graph, ann_batch_size=ann_batch_size)
    for part in parts:
        part.net, part.graph = net, graph
        an = an.merge(part)
    return an


def peak_rss():
    """Peak resident memory of this process (bytes): ``VmHWM`` of ``/proc/self/status`` on
    Linux (``ru_maxrss`` is inherited across fork and exec there, so a freshly spawned worker
    would report its parent's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def worker_peak_memory(client):
    """Peak resident memory of every worker process so far (bytes), by worker address."""
    check_client(client)
    return client.run(peak_rss)
