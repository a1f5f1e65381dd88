"""Named columns of the engine's flat tables, and the memory they and the worker state take.

The batch driver (:mod:`.simulate`) receives the network as two int64 tables built by
:class:`eventsnn.engine.numba_engine.NumbaProgram`: a population table (one row per
population, columns ``P_*``) and a connection table (one row per connection). A connection row
has the common columns ``C_*`` followed, from ``C_ARGS`` on, by the columns of its kind,
named in :data:`CONNECTION_COLUMNS` (``CV_*`` convolution, ``W3_*`` 3x3 convolution by window
sweep, ``DN_*`` all-to-all, ``SP_*`` explicit sparse matrix, ``MP_*`` one synapse per source at
most, ``PL_*`` pooling windows). Columns named ``*_ptr``/``*_out``/``*_tap``/``indptr``/
``indices``/``targets`` hold offsets into the int64 buffer ``ibuf``; ``C_FLOAT`` an offset
into the float32 buffer ``fbuf``; ``C_FANOUT`` the ``ibuf`` offset of the fan-out of every
source neuron.

The constants below are plain module-level ints, so numba compiles them into the kernels as
literals; :func:`connection_row` fills a row by column name, and :func:`worker_bytes` sizes the
state of a worker thread from :data:`WORKER_STATE`, the list of arrays that
:func:`~.simulate.simulate_batch` allocates.
"""

import numpy as np

# ---- population table: kinds and columns --------------------------------------------------
POP_IF, POP_LIPOOL, POP_MAXGATE, POP_OUTPUT, POP_LIF = 0, 1, 2, 3, 4
POPULATION_KINDS = {"if": POP_IF, "lipool": POP_LIPOOL, "maxgate": POP_MAXGATE,
                    "output": POP_OUTPUT, "lif": POP_LIF}
POPULATION_COLUMNS = (
    "kind",    # POP_* code
    "off",     # first neuron in the packed state arrays
    "n",       # neurons
    "gamma",   # maximum burst Γ (Eq. 4)
    "hist",    # offset of the burst histogram (IF populations)
    "state",   # offset of the pooling state (LIPool hidden units / max-gate counts)
    "conn",    # incoming pool connection (pooling populations)
    "const",   # offset in the per-image constant currents, or -1 (use the bias)
    "dyn",     # NIR neurons ("lif", "output" with dynamics): fbuf offset of their 5·N coefficients, or -1
    "leak",    # NIR neurons: 1 when the model leaks (LIF / LI), else 0
)
P_KIND, P_OFF, P_N, P_GAMMA, P_HIST, P_STATE, P_CONN, P_CONST, P_DYN, P_LEAK = range(
    len(POPULATION_COLUMNS))
P_NPARAM = len(POPULATION_COLUMNS)

# ---- connection table: kinds, common columns, kind-specific columns -------------------------
CONN_CONV, CONN_DENSE, CONN_CSR, CONN_IDENTITY, CONN_POOL, CONN_CONV3X3, CONN_MAP = range(7)
COMMON_COLUMNS = (
    "kind",    # CONN_* code
    "src",     # source population (P = the input image)
    "dst",     # target population
    "active",  # 0: skipped (input connections under direct coding)
    "fanout",  # ibuf offset of the per-source-neuron fan-out
    "float",   # fbuf offset of the weights
)
C_KIND, C_SRC, C_DST, C_ACTIVE, C_FANOUT, C_FLOAT = range(len(COMMON_COLUMNS))
C_ARGS = len(COMMON_COLUMNS)

CONNECTION_COLUMNS = {
    # source channels/width, kernel, stride, top/left padding, target channels/height/width
    CONN_CONV: ("c_in", "w_in", "kh", "kw", "sh", "sw", "pt", "pl", "c_out", "h_out", "w_out"),
    CONN_DENSE: ("n_dst",),
    # ibuf offsets of the CSR row pointers and (internal-order) column indices
    CONN_CSR: ("indptr", "indices"),
    CONN_IDENTITY: (),
    # source channels/height/width, window kernel, stride, top/left padding, target width,
    # ibuf offsets of the per-axis window tables (see numba_engine.scatter_table)
    CONN_POOL: ("c", "h_in", "w_in", "kh", "kw", "sh", "sw", "pt", "pl", "w_out",
                "y_ptr", "y_out", "y_tap", "x_ptr", "x_out", "x_tap"),
    # 3x3, padding 1, stride 1 or 2, from a source with ascending events (window sweep):
    # source channels, height and width, stride, target channels
    CONN_CONV3X3: ("c_in", "h", "w", "stride", "c_out"),
    # at most one synapse per source neuron: ibuf offset of every source's target
    CONN_MAP: ("targets",),
}
C_NPARAM = C_ARGS + max(len(cols) for cols in CONNECTION_COLUMNS.values())

(CV_C_IN, CV_W_IN, CV_KH, CV_KW, CV_SH, CV_SW, CV_PT, CV_PL, CV_C_OUT, CV_H_OUT,
 CV_W_OUT) = range(C_ARGS, C_ARGS + len(CONNECTION_COLUMNS[CONN_CONV]))
(DN_N_DST,) = range(C_ARGS, C_ARGS + 1)
SP_INDPTR, SP_INDICES = range(C_ARGS, C_ARGS + 2)
(PL_C, PL_H_IN, PL_W_IN, PL_KH, PL_KW, PL_SH, PL_SW, PL_PT, PL_PL, PL_W_OUT, PL_Y_PTR,
 PL_Y_OUT, PL_Y_TAP, PL_X_PTR, PL_X_OUT, PL_X_TAP) = range(
    C_ARGS, C_ARGS + len(CONNECTION_COLUMNS[CONN_POOL]))
W3_C_IN, W3_H, W3_W, W3_STRIDE, W3_C_OUT = range(
    C_ARGS, C_ARGS + len(CONNECTION_COLUMNS[CONN_CONV3X3]))
(MP_TARGETS,) = range(C_ARGS, C_ARGS + 1)


def connection_row(kind, **columns):
    """A connection table row (int64, ``C_NPARAM``) with its columns given by name.

    Parameters
    ----------
    kind : int
        ``CONN_*`` code.
    **columns : int
        Every common column but ``kind`` and every column of ``CONNECTION_COLUMNS[kind]``.

    Returns
    -------
    numpy.ndarray
        The row; unused trailing columns are 0.

    Raises
    ------
    ValueError
        If a column is missing or not a column of this kind (a builder bug).
    """
    names = COMMON_COLUMNS[1:] + CONNECTION_COLUMNS[kind]
    if set(columns) != set(names):
        raise ValueError(f"connection kind {kind}: columns {sorted(columns)} given, "
                         f"{sorted(names)} expected")
    row = np.zeros(C_NPARAM, dtype=np.int64)
    row[C_KIND] = kind
    for k, name in enumerate(COMMON_COLUMNS[1:], start=1):
        row[k] = columns[name]
    for k, name in enumerate(CONNECTION_COLUMNS[kind], start=C_ARGS):
        row[k] = columns[name]
    return row


# ---- per-worker state of simulate_batch: (name, bytes per element, size) --------------------
# sizes are sums of the named counts: "neurons" (all populations), "inputs" (input elements,
# the Poisson event list), "lipool" (LIPool hidden units), "maxgate" (max-gate counts),
# "populations" (+ 1 for the input).
WORKER_STATE = (
    ("V", 4, ("neurons",)),
    ("I", 4, ("neurons",)),
    ("ev_idx", 4, ("neurons", "inputs")),
    ("ev_cnt", 4, ("neurons", "inputs")),
    ("lip_h", 4, ("lipool",)),
    ("stamp", 4, ("neurons",)),
    ("touched", 4, ("neurons",)),
    ("mg_cum", 4, ("maxgate",)),
    ("mg_cur", 4, ("maxgate",)),
    ("nev", 8, ("populations", "one")),
)


def worker_bytes(**counts):
    """Bytes of the state one worker of :func:`~.simulate.simulate_batch` allocates.

    Parameters
    ----------
    **counts : int
        ``neurons``, ``inputs``, ``lipool``, ``maxgate``, ``populations`` (see
        :data:`WORKER_STATE`).

    Returns
    -------
    int
    """
    counts = dict(counts, one=1)
    return int(sum(nbytes * sum(counts[c] for c in size) for _, nbytes, size in WORKER_STATE))
