"""The named schema of the engine's flat tables (eventsnn.kernels.schema)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from eventsnn.engine.numba_engine import NumbaProgram
from eventsnn.kernels import schema as S
from eventsnn.network import ConvConnection, PoolConnection

from eventsnn.testing.strategies import networks_and_inputs


def test_column_constants_follow_the_names():
    for k, name in enumerate(S.POPULATION_COLUMNS):
        assert getattr(S, f"P_{name.upper()}") == k
    for k, name in enumerate(S.COMMON_COLUMNS):
        assert getattr(S, f"C_{name.upper()}") == k
    prefix = {S.CONN_CONV: "CV", S.CONN_DENSE: "DN", S.CONN_CSR: "SP", S.CONN_POOL: "PL",
              S.CONN_CONV3X3: "W3", S.CONN_MAP: "MP"}
    for kind, names in S.CONNECTION_COLUMNS.items():
        assert S.C_ARGS + len(names) <= S.C_NPARAM
        for k, name in enumerate(names):
            assert getattr(S, f"{prefix[kind]}_{name.upper()}") == S.C_ARGS + k


def test_connection_row_names_every_column():
    row = S.connection_row(S.CONN_DENSE, src=1, dst=2, active=1, fanout=7, float=9, n_dst=5)
    assert row.tolist()[:S.C_ARGS + 1] == [S.CONN_DENSE, 1, 2, 1, 7, 9, 5]
    assert not row[S.C_ARGS + 1:].any()
    with pytest.raises(ValueError, match="n_dst"):
        S.connection_row(S.CONN_DENSE, src=1, dst=2, active=1, fanout=7, float=9)
    with pytest.raises(ValueError, match="expected"):
        S.connection_row(S.CONN_IDENTITY, src=1, dst=2, active=1, fanout=7, float=9, n_dst=5)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=networks_and_inputs())
def test_program_rows_read_back_the_geometry(case):
    net = case[0]
    prog = NumbaProgram(net)
    for row, c in zip(prog.conns, net.connections):
        if isinstance(c, ConvConnection) and row[S.C_KIND] == S.CONN_CONV3X3:
            assert c.weight.shape[0] in (16, 32, 64) and c.weight.shape[2:] == (3, 3)
            assert [row[S.W3_C_IN], row[S.W3_H], row[S.W3_W]] == list(c.src_shape)
            assert [row[S.W3_STRIDE], row[S.W3_C_OUT]] == [c.stride[0], c.weight.shape[0]]
        elif isinstance(c, ConvConnection):
            o, i, kh, kw = c.weight.shape
            assert row[S.C_KIND] == S.CONN_CONV
            assert [row[S.CV_C_IN], row[S.CV_KH], row[S.CV_KW], row[S.CV_C_OUT]] == [i, kh, kw, o]
            assert [row[S.CV_SH], row[S.CV_SW]] == list(c.stride)
            assert [row[S.CV_PT], row[S.CV_PL]] == list(c.padding[:2])
            assert [row[S.CV_H_OUT], row[S.CV_W_OUT]] == list(c.dst_shape[1:])
        elif isinstance(c, PoolConnection):
            assert row[S.C_KIND] == S.CONN_POOL
            assert [row[S.PL_C], row[S.PL_H_IN], row[S.PL_W_IN]] == list(c.src_shape)
            assert [row[S.PL_KH], row[S.PL_KW]] == list(c.kernel)
        fo = prog.ibuf[row[S.C_FANOUT]:row[S.C_FANOUT] + c.n_src]
        assert np.array_equal(np.sort(fo), np.sort(c.fan_out().astype(np.int64)))
    for k, p in enumerate(net.populations):
        assert prog.pops[k, S.P_KIND] == S.POPULATION_KINDS[p.kind]
        assert prog.pops[k, S.P_N] == p.size


def test_worker_bytes_counts_every_state_array():
    # V, I, stamp, touched: 4 B per neuron; event lists: 8 B per neuron and input;
    # pooling state: 4 B per hidden unit, 8 B per max-gate element; nev: 8 B per population + 1
    assert S.worker_bytes(neurons=10, inputs=3, lipool=5, maxgate=2, populations=4) == \
        24 * 10 + 8 * 3 + 4 * 5 + 8 * 2 + 8 * 5


def test_window_sweep_only_where_events_ascend():
    """3x3 convs with padding 1 are swept (stride 1 with 16/32 channels, stride 2 with 16-64)
    from IF populations and the input, but scattered by rows from a pooling population
    (window-order events) and for other channel counts."""
    from eventsnn.network import INPUT, DenseConnection, Population, SpikingNetwork

    def conv(src, dst, c_in, hw, c_out, stride=1):
        ho = (hw - 1) // stride + 1
        return ConvConnection(src, dst, (c_in, hw, hw), (c_out, ho, ho),
                              weight=np.zeros((c_out, c_in, 3, 3), np.float32),
                              stride=[stride] * 2, padding=[1] * 4)

    pops = [Population("a", (16, 8, 8), "if"), Population("b", (32, 8, 8), "if"),
            Population("p", (32, 4, 4), "lipool", pool={"source": "b", "kernel": [2, 2],
                                                        "stride": [2, 2], "padding": [0] * 4}),
            Population("c", (16, 4, 4), "if"), Population("d", (64, 2, 2), "if"),
            Population("e", (64, 2, 2), "if"), Population("out", (2,), "output")]
    conns = [conv(INPUT, "a", 16, 8, 16), conv("a", "b", 16, 8, 32),
             PoolConnection("b", "p", (32, 8, 8), (32, 4, 4), kernel=[2, 2], stride=[2, 2],
                            padding=[0] * 4),
             conv("p", "c", 32, 4, 16), conv("c", "d", 16, 4, 64, stride=2),
             conv("d", "e", 64, 2, 64),
             DenseConnection("e", "out", (64, 2, 2), (2,), weight=np.zeros((2, 256), np.float32))]
    net = SpikingNetwork((16, 8, 8), pops, conns)
    kinds = NumbaProgram(net).conns[:, S.C_KIND].tolist()
    assert kinds == [S.CONN_CONV3X3, S.CONN_CONV3X3, S.CONN_POOL, S.CONN_CONV, S.CONN_CONV3X3,
                     S.CONN_CONV, S.CONN_DENSE]
