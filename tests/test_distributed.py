"""Runs on a Dask cluster (eventsnn.distributed) are identical to in-process runs.

The cluster is a real 2-worker ``LocalCluster`` of single-threaded processes; results are
compared byte for byte (outputs, records) and exactly (integer counts, analysis sums).
"""

import json
import os
import signal
import sys

import numpy as np
import pytest

import eventsnn
from eventsnn.analysis import analyze, analyze_simulation
from eventsnn.cli import main
from eventsnn.datasets import default_model_path, load_shipped
from eventsnn.distributed import INSTALL_HINT, connect
from eventsnn.testing import assert_results_equal

T = 8
RECORD = ("neuron_counts", "potential")


@pytest.fixture(scope="module")
def model():
    """The shipped VGG converted on 32 calibration images, and 24 test images with labels."""
    graph = eventsnn.load_graph(default_model_path()[0])
    test, calib = load_shipped("test"), load_shipped("train")
    net = eventsnn.convert(graph, calib.x[:32], burst=5, pooling="lipool")
    idx = np.random.default_rng(0).permutation(len(test))[:24]     # seeded, mixed classes
    return graph, net, test.x[idx], test.y[idx]


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with connect("local:2") as c:
        c.wait_for_workers(2, timeout=60)
        yield c


# --------------------------------------------------------------------------------------
# without Dask: a slice with first_index is simulated as within the whole array
# --------------------------------------------------------------------------------------


def tiny_network():
    """Four burst-IF neurons (Γ = 2) on a 2x2 image, fully connected to 3 outputs (dyadic)."""
    from eventsnn.network import DenseConnection, Population, SpikingNetwork

    w1 = np.arange(-8, 8, dtype=np.float32).reshape(4, 4) / 8
    w2 = np.arange(-6, 6, dtype=np.float32).reshape(3, 4) / 4
    return SpikingNetwork((1, 2, 2), [Population("h", (4,), "if", burst=2),
                                      Population("out", (3,), "output")],
                          [DenseConnection("input", "h", (1, 2, 2), (4,), weight=w1),
                           DenseConnection("h", "out", (4,), (3,), weight=w2)])


@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_slice_with_first_index_draws_the_whole_array_streams(engine):
    net = tiny_network()
    x = np.random.default_rng(1).uniform(-1, 1, (6, 1, 2, 2)).astype(np.float32)
    kw = dict(engine=engine, encoding="poisson", seed=11, progress=False, record=("trains",))
    whole = eventsnn.simulate(net, x, 16, **kw)
    tail = eventsnn.simulate(net, x[2:], 16, first_index=2, **kw)
    assert tail.outputs.tobytes() == whole.outputs[:, 2:].tobytes()
    assert np.array_equal(tail.records["trains"]["h"], whole.records["trains"]["h"][:, 2:])
    shifted = eventsnn.simulate(net, x[2:], 16, **kw)          # first_index 0: other streams
    assert not np.array_equal(shifted.records["trains"]["h"], whole.records["trains"]["h"][:, 2:])


def test_analyze_simulation_poisson_uses_the_whole_array_streams(model):
    # batches of 5 draw the streams of images 0..23 of one seed, as one simulate() call does
    graph, net, x, y = model
    whole = eventsnn.simulate(net, x, T, encoding="poisson", seed=5, progress=False, record=RECORD)
    streamed = analyze_simulation(net, x, T, y, graph, batch_size=5, encoding="poisson", seed=5)
    one = analyze(net, whole, x, y, graph)
    for field in ("spikes", "events", "synops", "burst_hist"):
        a, b = getattr(streamed, field), getattr(one, field)
        assert all(np.array_equal(a[k], b[k]) for k in b)
    np.testing.assert_array_equal(streamed.accuracy(), whole.accuracy(y))


@pytest.mark.parametrize("first_index", [-1, 1.5, None])
def test_first_index_is_checked(model, first_index):
    _, net, x, _ = model
    with pytest.raises((TypeError, ValueError), match="first_index"):
        eventsnn.simulate(net, x, 2, first_index=first_index, progress=False)


# --------------------------------------------------------------------------------------
# a 2-worker LocalCluster gives exactly the in-process result
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding,chunk_size", [("direct", None), ("poisson", 5)])
def test_simulate_on_dask_is_identical(model, client, encoding, chunk_size):
    _, net, x, _ = model
    kw = dict(encoding=encoding, seed=3, record=RECORD)
    local = eventsnn.simulate(net, x, T, progress=False, **kw)
    remote = eventsnn.simulate(net, x, T, client=client, chunk_size=chunk_size, progress=False, **kw)
    assert_results_equal(remote, local)


def test_simulate_on_dask_keeps_first_index_and_trains(model, client):
    _, net, x, _ = model
    kw = dict(encoding="poisson", seed=9, record=("trains",), first_index=7, progress=False)
    assert_results_equal(eventsnn.simulate(net, x[:6], 4, client=client, chunk_size=4, **kw),
                     eventsnn.simulate(net, x[:6], 4, **kw))


def test_worker_peak_memory(client):
    from eventsnn.distributed import peak_rss, worker_peak_memory

    peaks = worker_peak_memory(client)
    assert set(peaks) == set(client.nthreads())
    assert all(isinstance(v, int) and 10 * 2**20 < v < 8 * 2**30 for v in peaks.values())
    assert peak_rss() > 10 * 2**20


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_analyze_simulation_on_dask_is_identical(model, client, encoding):
    graph, net, x, y = model
    kw = dict(batch_size=7, encoding=encoding, seed=4)
    local = analyze_simulation(net, x, T, y, graph, **kw)
    remote = analyze_simulation(net, x, T, y, graph, client=client, **kw)
    assert remote.net is net and remote.n_images == len(x)
    assert json.dumps(remote.to_dict()) == json.dumps(local.to_dict())   # floats included


def test_report_from_dask_analysis_is_identical(model, client, tmp_path):
    graph, net, x, y = model
    for where, c in (("local", None), ("dask", client)):
        an = analyze_simulation(net, x, T, y, graph, batch_size=10, client=c)
        eventsnn.write_report(graph, net, an, None, None, tmp_path / where, formats=("json", "md"))
    for name in ("report.json", "report.md"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


# --------------------------------------------------------------------------------------
# a worker killed mid-run is survived
# --------------------------------------------------------------------------------------


class KillOnce:
    """Worker plugin: the first worker to start a simulation task kills its own process.

    ``flag`` is created atomically just before the kill, so exactly one worker dies, with
    its task running; the nanny starts a replacement and Dask reruns the lost task.
    """

    name = "eventsnn-test-kill-once"

    def __init__(self, flag):
        self.flag = flag

    def setup(self, worker):
        pass

    def teardown(self, worker):
        pass

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or "_simulate_chunk" not in str(key):
            return
        try:
            os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def test_worker_killed_mid_run_gives_the_same_result(model, client, tmp_path):
    import cloudpickle
    from distributed import WorkerPlugin

    _, net, x, _ = model
    local = eventsnn.simulate(net, x, T, progress=False, record=RECORD)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import tests
    plugin = type("KillOncePlugin", (KillOnce, WorkerPlugin), {})(str(tmp_path / "killed"))
    before = set(client.nthreads())
    client.register_plugin(plugin)
    try:
        remote = eventsnn.simulate(net, x, T, client=client, chunk_size=3, progress=False,
                                   record=RECORD)
    finally:
        client.unregister_worker_plugin(KillOnce.name)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (tmp_path / "killed").exists()                 # a worker did die mid-task
    client.wait_for_workers(2, timeout=60)
    assert set(client.nthreads()) != before               # ... and was replaced
    assert_results_equal(remote, local)


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------

CLI = ["-n", "20", "--T", "4,8", "--calib", "32", "--no-progress"]


def test_cli_run_on_local_cluster_is_identical(tmp_path, capsys):
    pytest.importorskip("distributed")
    assert main(["run", *CLI, "--json", str(tmp_path / "a.json")]) == 0
    assert main(["run", *CLI, "--dask", "local:2", "--json", str(tmp_path / "b.json")]) == 0
    assert "dask:  2 workers, 2 threads" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["rows"] == b["rows"] and a["mean_firing_rate"] == b["mean_firing_rate"]


def test_cli_report_on_dask_scheduler_is_identical(client, tmp_path, capsys):
    args = ["report", "-n", "12", "--T", "4", "--calib", "32", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    address = client.scheduler.address
    assert main([*args, "--dask", address, "--out", str(tmp_path / "dask")]) == 0
    assert f"threads at {address}" in capsys.readouterr().out
    local, remote = (json.loads((tmp_path / d / "report.json").read_text(), object_hook=untimed)
                     for d in ("local", "dask"))
    assert remote == local
    assert (tmp_path / "dask" / "report.md").read_bytes() == (tmp_path / "local" / "report.md").read_bytes()


def untimed(d):
    """A JSON object without the wall-clock time of the conversion (the only timing field)."""
    d.pop("convert_seconds", None)
    return d


# --------------------------------------------------------------------------------------
# errors name the fix
# --------------------------------------------------------------------------------------


def test_unreachable_scheduler_names_the_fix():
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"cannot reach a Dask scheduler at 'tcp://127\.0\.0\.1:9'.*local:N"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass


def test_cli_unreachable_scheduler_is_a_clean_error(capsys, monkeypatch):
    pytest.importorskip("distributed")
    import eventsnn.distributed as d

    real = d.connect
    monkeypatch.setattr(d, "connect", lambda address: real(address, timeout=1))
    assert main(["run", *CLI, "--dask", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach a Dask scheduler" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["local:0", "local:two", "local:"])
def test_bad_local_address(address):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="local:N"):
        with connect(address):
            pass


def test_missing_dask_names_the_install_command(model, monkeypatch):
    _, net, x, _ = model
    monkeypatch.setitem(sys.modules, "distributed", None)     # import distributed fails
    with pytest.raises(ImportError, match=r"pip install 'eventsnn\[dask\]'"):
        eventsnn.simulate(net, x, 2, client=object(), progress=False)
    with pytest.raises(ImportError, match=r"pip install 'eventsnn\[dask\]'"):
        with connect("local:2"):
            pass
    assert "eventsnn[dask]" in INSTALL_HINT


def test_client_must_be_a_running_client(model):
    distributed = pytest.importorskip("distributed")
    _, net, x, _ = model
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        eventsnn.simulate(net, x, 2, client="tcp://127.0.0.1:8786", progress=False)
    closed = distributed.Client(distributed.LocalCluster(n_workers=0, processes=False,
                                                         dashboard_address=None))
    closed.cluster.close()
    closed.close()
    with pytest.raises(ValueError, match="client is closed"):
        eventsnn.simulate(net, x, 2, client=closed, progress=False)


def test_import_eventsnn_does_not_import_dask():
    import subprocess

    code = ("import sys, eventsnn, eventsnn.distributed; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(eventsnn.__file__)))
    assert out.stdout.strip() == "[]"
