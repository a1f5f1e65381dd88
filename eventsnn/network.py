"""The converted spiking network: populations of neurons and the connections between them.

A :class:`SpikingNetwork` is what :func:`eventsnn.convert` produces and what
:func:`eventsnn.simulate` runs. It is framework-neutral and holds only numpy / scipy data.

Public layout: a population of per-sample shape ``(C, H, W)`` (or ``(N,)``) numbers its neurons
in C order, exactly as ``numpy.ravel`` does. Engines may use other layouts internally, but every
array that leaves them uses this order.

Every connection can export its synapses as a ``scipy.sparse.csr_matrix`` with one row per
pre-synaptic neuron (:meth:`Connection.to_csr`) and reports the structural fan-out of each
pre-synaptic neuron (:meth:`Connection.fan_out`), which is what SynOps are counted with:
an event of multiplicity ``s`` from neuron ``j`` costs ``s * fan_out[j]`` synaptic operations.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .primitives import out_hw
from .validation import MAX_BURST

POPULATION_KINDS = ("if", "lipool", "maxgate", "output", "lif")
INPUT = "input"
DYNAMICS_KEYS = ("r", "tau", "v_leak", "v_threshold", "v_reset")
"""Per-neuron parameters of ``Population.dynamics`` (NIR's names; ``dt`` is a scalar beside them)."""


def _ints(values, n, what):
    out = [int(v) for v in values]
    if len(out) != n:
        raise ValueError(f"{what} needs {n} integers, got {values!r}")
    return out


def axis_taps(n_in, n_out, kernel, stride, pad_begin):
    """Valid (output index, input index) pairs along one spatial axis, per kernel tap.

    Output position ``o`` reads input position ``o * stride - pad_begin + k`` through tap ``k``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output extent along the axis.
    kernel, stride, pad_begin : int
        Kernel size, stride and leading zero-padding along the axis.

    Returns
    -------
    list of (ndarray, ndarray)
        For each tap ``k``: output indices and the input indices they read (both int64),
        restricted to input positions inside ``[0, n_in)`` (padding reads nothing).
    """
    out = []
    o = np.arange(n_out, dtype=np.int64)
    for k in range(kernel):
        i = o * stride - pad_begin + k
        ok = (i >= 0) & (i < n_in)
        out.append((o[ok], i[ok]))
    return out


def axis_fan_out(n_in, n_out, kernel, stride, pad_begin):
    """Number of (output position, tap) pairs reading each input position along one axis."""
    counts = np.zeros(n_in, dtype=np.int64)
    for _, i in axis_taps(n_in, n_out, kernel, stride, pad_begin):
        np.add.at(counts, i, 1)
    return counts


def conv_csr(weight, stride, padding, src_shape, dst_shape, groups=1, dilation=(1, 1)):
    """Structural CSR ``(n_src, n_dst)`` of a 2-D convolution, optionally grouped and dilated.

    Output ``(o, y, x)`` reads input ``(g(o) * I + j, y * s - p + ky * d, x * s - p + kx * d)``
    through ``weight[o, j, ky, kx]`` (``weight`` is ``(O, I, kh, kw)`` with ``I`` input channels
    per group, ``g(o) = o // (O / groups)``); taps in the padding are not synapses, every other
    tap is (zero weights included), so row lengths are the structural fan-outs.
    """
    o_n, i_n, kh, kw = weight.shape
    _, h, w = src_shape
    _, ho, wo = dst_shape
    dy, dx = dilation
    taps_y = axis_taps(h, ho, (kh - 1) * dy + 1, stride[0], padding[0])[::dy]
    taps_x = axis_taps(w, wo, (kw - 1) * dx + 1, stride[1], padding[1])[::dx]
    oc = np.arange(o_n)[:, None, None, None]
    ic = (oc // (o_n // groups)) * i_n + np.arange(i_n)[None, :, None, None]
    rows, cols, data = [], [], []
    for ky, (oy, iy) in enumerate(taps_y):
        for kx, (ox, ix) in enumerate(taps_x):
            src = (ic * h + iy[None, None, :, None]) * w + ix[None, None, None, :]
            dst = (oc * ho + oy[None, None, :, None]) * wo + ox[None, None, None, :]
            shape = (o_n, i_n, len(oy), len(ox))
            rows.append(np.broadcast_to(src, shape).ravel())
            cols.append(np.broadcast_to(dst, shape).ravel())
            data.append(np.broadcast_to(weight[:, :, ky, kx][:, :, None, None], shape).ravel())
    n_src, n_dst = int(np.prod(src_shape)), int(np.prod(dst_shape))
    return _structural_csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(data), (n_src, n_dst))


def _structural_csr(rows, cols, data, shape):
    """CSR matrix that keeps every listed entry, explicit zeros included (they are synapses)."""
    order = np.lexsort((cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return sp.csr_matrix(
        (data.astype(np.float32), cols.astype(np.int64), np.cumsum(indptr)), shape=shape
    )


@dataclass
class Population:
    """A group of neurons of one kind with a common per-sample shape.

    Parameters
    ----------
    name : str
        Unique name.
    shape : tuple of int
        Per-sample shape, ``(C, H, W)`` or ``(N,)``.
    kind : {"if", "lipool", "maxgate", "output", "lif"}
        ``"if"``: integrate-and-fire neuron with burst spikes (Eq. 2-4, Algorithm 1):
        ``V += I + b``, ``s = clip(floor(V / threshold), 0, burst)``, ``V -= s * threshold``.
        ``"lipool"``: Lateral Inhibition Pooling (Eq. 12). ``"maxgate"``: the max-gated
        pooling baseline (Eq. 11). ``"output"``: non-spiking integrator ``U += I + b``, or the
        NIR I / LI node given by ``dynamics``. ``"lif"``: the NIR IF / LIF neuron given by
        ``dynamics`` (hard reset, strict threshold, at most one spike per step; ``threshold``
        and ``burst`` are not used, Γ = 1).
    threshold : float
        Firing threshold θ (1 after normalisation, Eq. 6).
    burst : int
        Γ, the largest number of spikes per step (Γ = 1 is the plain IF neuron).
    bias : ndarray or None
        Per-neuron bias current of shape ``shape`` ("if" and "output" only).
    pool : dict or None
        For pooling kinds: ``{"source", "kernel", "stride", "padding"}``.
    ann_node : str or None
        Name of the ANN graph node whose activation this population approximates.
    scale : ndarray or None
        Normalisation factor λ (Eq. 6): the population's rate approximates
        ``ann_activation / scale``. A 0-d array (layer-wise) or ``(C,)`` (channel-wise).
    v_max : float or None
        Upper clamp of the membrane potential after the reset ("if" only), None = unbounded.
        A bounded ReLU ``min(max(x, 0), a)`` becomes a population with Γ = a / λ and
        ``v_max = threshold``: its rate saturates at Γ exactly like the ANN clips, and charge
        above the clamp is discarded instead of being released after the input drops.
    dynamics : dict or None
        The NIR neuron model (Pedersen et al. 2024) of a ``"lif"`` or ``"output"``
        population, discretised with step ``dt`` (see :meth:`step_parameters`): ``"dt"``
        (float, default 1), and per-neuron arrays (broadcast to ``shape``) ``"r"`` (required),
        ``"tau"`` (absent: no leak, IF / I), ``"v_leak"`` (default 0, with ``tau`` only),
        ``"v_threshold"`` (required for ``"lif"``) and ``"v_reset"`` (``"lif"``, default 0).
        With ``tau``, ``V += (dt/tau)·(v_leak − V + r·(I + b))``, else ``V += dt·r·(I + b)``;
        then, for ``"lif"``, ``z = V > v_threshold`` and ``V = v_reset`` where ``z``.
        ``None`` for an ``"output"`` population: the integrator ``U += I + b``.
    v_init : float or ndarray
        Initial membrane potential ``V(0)`` ("if" only; 0 for the other kinds), in
        ``[0, threshold)``: a scalar, one value per channel ``(C,)`` or one per neuron
        (``shape``). With ``V(0) = θ/2`` the spike count of a neuron driven by a constant
        current ``a ≤ Γθ`` is ``floor(aT/θ + 1/2)``: rounding instead of flooring, rate error
        ``≤ θ/(2T)`` instead of ``< θ/T`` (Bu et al., AAAI 2022; Hwang et al., 2021).
    """

    name: str
    shape: tuple
    kind: str
    threshold: float = 1.0
    burst: int = 1
    bias: np.ndarray | None = None
    pool: dict | None = None
    ann_node: str | None = None
    scale: np.ndarray | None = None
    v_max: float | None = None
    dynamics: dict | None = None
    v_init: object = 0.0

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if self.v_max is not None:
            if self.kind != "if" or not np.isfinite(self.v_max) or self.v_max < 0:
                raise ValueError(f"population {self.name!r}: v_max must be a finite value >= 0 on an 'if' "
                                 f"population (or None), got {self.v_max!r} on kind {self.kind!r}")
            self.v_max = float(self.v_max)
        if self.kind not in POPULATION_KINDS:
            raise ValueError(
                f"population {self.name!r}: unknown kind {self.kind!r}; use one of {POPULATION_KINDS}"
            )
        if not self.threshold > 0:
            raise ValueError(f"population {self.name!r}: threshold must be > 0, got {self.threshold}")
        if not isinstance(self.burst, numbers.Integral) or not 1 <= self.burst <= MAX_BURST:
            raise ValueError(
                f"population {self.name!r}: burst Γ must be an integer from 1 to {MAX_BURST}, "
                f"got {self.burst}"
            )
        self.burst = int(self.burst)
        if self.bias is not None:
            self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)
            if self.bias.shape != self.shape:
                raise ValueError(
                    f"population {self.name!r}: bias has shape {self.bias.shape}, "
                    f"expected the population shape {self.shape}"
                )
        if self.kind in ("lipool", "maxgate"):
            if self.bias is not None:
                raise ValueError(f"pooling population {self.name!r} cannot have a bias; pass bias=None")
            if not self.pool or "source" not in self.pool:
                raise ValueError(f"pooling population {self.name!r} needs pool={{'source', ...}}")
            self.pool = {
                "source": str(self.pool["source"]),
                "kernel": _ints(self.pool["kernel"], 2, "pool kernel"),
                "stride": _ints(self.pool["stride"], 2, "pool stride"),
                "padding": _ints(self.pool["padding"], 4, "pool padding"),
            }
        if self.scale is not None:
            self.scale = np.asarray(self.scale, dtype=np.float32)
        self._check_dynamics()
        self.v_init = self._check_v_init(0.0 if self.v_init is None else self.v_init)

    def _check_dynamics(self):
        if self.kind == "lif" and self.dynamics is None:
            raise ValueError(f"population {self.name!r} of kind 'lif' needs dynamics="
                             "{'r': ..., 'v_threshold': ...} (see Population)")
        if self.dynamics is None:
            return
        if self.kind not in ("lif", "output"):
            raise ValueError(f"population {self.name!r}: dynamics apply to kinds 'lif' and "
                             f"'output' only, not {self.kind!r}; pass dynamics=None")
        if self.kind == "lif" and self.burst != 1:
            raise ValueError(f"population {self.name!r}: a 'lif' neuron spikes at most once per "
                             f"step; pass burst=1, not {self.burst}")
        d = dict(self.dynamics)
        unknown = set(d) - set(DYNAMICS_KEYS) - {"dt"}
        if unknown:
            raise ValueError(f"population {self.name!r}: unknown dynamics keys {sorted(unknown)}; "
                             f"use 'dt' and {DYNAMICS_KEYS}")
        needed = ("r", "v_threshold") if self.kind == "lif" else ("r",)
        spiking_only = {"v_threshold", "v_reset"} & set(d) if self.kind == "output" else set()
        if any(k not in d for k in needed) or spiking_only or ("v_leak" in d and "tau" not in d):
            raise ValueError(
                f"population {self.name!r}: a {self.kind!r} population's dynamics need {needed}, "
                f"'v_leak' only with 'tau'{', no threshold or reset' if self.kind == 'output' else ''}; "
                f"got keys {sorted(d)}")
        dt = float(d.pop("dt", 1.0))
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"population {self.name!r}: dynamics dt must be a finite number > 0, got {dt}")
        out = {"dt": dt}
        for k, v in d.items():
            a = np.asarray(v, dtype=np.float32)
            try:
                a = np.ascontiguousarray(np.broadcast_to(a, self.shape))
            except ValueError:
                raise ValueError(f"population {self.name!r}: dynamics[{k!r}] of shape {a.shape} "
                                 f"does not broadcast to the population shape {self.shape}") from None
            if not np.isfinite(a).all() or (k == "tau" and not (a > 0).all()):
                raise ValueError(f"population {self.name!r}: dynamics[{k!r}] must be finite"
                                 f"{' and > 0' if k == 'tau' else ''}")
            out[k] = a
        self.dynamics = out

    def step_parameters(self):
        """Per-neuron float32 coefficients of the ``"lif"`` / dynamic ``"output"`` update.

        Returns
        -------
        leak : bool
            Whether ``tau`` is given (LIF / LI).
        params : float32 (5, N)
            Rows ``alpha, r, v_leak, v_threshold, v_reset`` in C order, with
            ``alpha = dt / tau`` (leak) or ``dt`` (no leak), rounded once to float32; the
            engines update ``V += alpha·((v_leak − V) + r·x)`` or ``V += alpha·(r·x)`` with
            ``x = I + b`` (:func:`eventsnn.engine.steps.nir_step`). Missing entries are 0
            (threshold: +inf for ``"output"``).
        """
        d = self.dynamics
        n = self.size
        leak = "tau" in d
        alpha = d["dt"] / d["tau"].astype(np.float64) if leak else np.full(self.shape, d["dt"])
        rows = [alpha, d["r"], d.get("v_leak", 0.0), d.get("v_threshold", np.inf),
                d.get("v_reset", 0.0)]
        return leak, np.stack([np.broadcast_to(np.asarray(r, np.float64), self.shape).reshape(n)
                               for r in rows]).astype(np.float32)

    def _check_v_init(self, v):
        v = np.array(v, dtype=np.float32)
        if v.shape not in ((), self.shape[:1], self.shape):
            raise ValueError(
                f"population {self.name!r}: v_init has shape {v.shape}; pass a scalar, one value "
                f"per channel {self.shape[:1]} or one per neuron {self.shape}")
        if self.kind != "if" and np.any(v != 0):
            raise ValueError(f"population {self.name!r} of kind {self.kind!r} has no membrane "
                             "potential to initialise; pass v_init=0")
        bad = v[~((v >= 0) & (v < np.float32(self.threshold)))]
        if bad.size:
            raise ValueError(
                f"population {self.name!r}: v_init must lie in [0, threshold) = [0, "
                f"{self.threshold}) (e.g. threshold / 2), got {bad.size} value(s) outside, "
                f"e.g. {bad.flat[0]}")
        return v

    @property
    def size(self):
        """Number of neurons per sample."""
        return int(np.prod(self.shape))

    def initial_potential(self):
        """``V(0)`` of every neuron in public C order: float32 ``(size,)``."""
        v = self.v_init
        if v.ndim == 1 and len(self.shape) > 1:
            v = v.reshape((-1,) + (1,) * (len(self.shape) - 1))
        return np.array(np.broadcast_to(v, self.shape).reshape(-1), dtype=np.float32)


@dataclass
class Connection:
    """Base class of all connections: synapses from population ``src`` to population ``dst``.

    ``src`` may be :data:`INPUT` (the analog input image, direct coding).
    """

    src: str
    dst: str
    src_shape: tuple
    dst_shape: tuple
    kind = "base"

    def __post_init__(self):
        self.src_shape = tuple(int(s) for s in self.src_shape)
        self.dst_shape = tuple(int(s) for s in self.dst_shape)

    def _require_images(self):
        if len(self.src_shape) != 3 or len(self.dst_shape) != 3:
            raise ValueError(
                f"{self.kind} connection {self.name}: needs (C, H, W) shapes on both sides, got "
                f"{self.src_shape} -> {self.dst_shape}"
            )

    @property
    def name(self):
        """``"src->dst"``: the key of this connection in SynOps tables."""
        return f"{self.src}->{self.dst}"

    @property
    def n_src(self):
        return int(np.prod(self.src_shape))

    @property
    def n_dst(self):
        return int(np.prod(self.dst_shape))

    def _flat_input(self, x):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim >= 1 and x.shape[1:] == self.src_shape:
            return x.reshape(len(x), -1)
        if x.ndim == 2 and x.shape[1] == self.n_src:
            return x
        raise ValueError(
            f"connection {self.name}: input of shape {x.shape} does not match "
            f"(batch, {self.n_src}) or (batch, *{self.src_shape})"
        )

    def fan_out(self):
        """Structural fan-out of every pre-synaptic neuron, int64 of length ``n_src``."""
        return np.diff(self.to_csr().indptr).astype(np.int64)

    def apply(self, x):
        """The connection as a dense linear map (no bias): ``(B, n_src) -> (B, n_dst)``."""
        return np.asarray(self.to_csr().T @ self._flat_input(x).T).T.astype(np.float32)

    def arrays(self):
        """Arrays to store when saving (name -> ndarray)."""
        return {}

    def attrs(self):
        """JSON-serialisable attributes to store when saving."""
        return {"kind": self.kind, "src": self.src, "dst": self.dst,
                "src_shape": list(self.src_shape), "dst_shape": list(self.dst_shape)}


@dataclass
class ConvConnection(Connection):
    """Weight-shared 2-D convolution from a ``(I, H, W)`` to an ``(O, Ho, Wo)`` population.

    Never materialised on the fast path: an event at input position ``(i, y, x)`` scatters
    ``weight[:, i, ky, kx]`` into every output position whose window covers ``(y, x)``.
    """

    weight: np.ndarray = None
    stride: list = field(default_factory=lambda: [1, 1])
    padding: list = field(default_factory=lambda: [0, 0, 0, 0])
    kind = "conv"

    def __post_init__(self):
        super().__post_init__()
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        self.stride = _ints(self.stride, 2, "conv stride")
        self.padding = _ints(self.padding, 4, "conv padding")
        self._require_images()
        if self.weight.ndim != 4:
            raise ValueError(f"conv connection {self.name}: weight must be (O, I, kh, kw), got "
                             f"shape {self.weight.shape}")
        o, i, kh, kw = self.weight.shape
        c, h, w = self.src_shape
        ho, wo = out_hw((h, w), (kh, kw), self.stride, self.padding)
        if i != c or self.dst_shape != (o, ho, wo):
            raise ValueError(
                f"conv connection {self.name}: weight {self.weight.shape} with stride "
                f"{self.stride} and padding {self.padding} maps {self.src_shape} to {(o, ho, wo)}, "
                f"not to {self.dst_shape}"
            )

    def _taps(self):
        _, _, kh, kw = self.weight.shape
        _, h, w = self.src_shape
        _, ho, wo = self.dst_shape
        return (axis_taps(h, ho, kh, self.stride[0], self.padding[0]),
                axis_taps(w, wo, kw, self.stride[1], self.padding[1]))

    def fan_out(self):
        _, _, kh, kw = self.weight.shape
        c, h, w = self.src_shape
        o, ho, wo = self.dst_shape
        fy = axis_fan_out(h, ho, kh, self.stride[0], self.padding[0])
        fx = axis_fan_out(w, wo, kw, self.stride[1], self.padding[1])
        per_pos = o * np.outer(fy, fx)
        return np.broadcast_to(per_pos, (c, h, w)).reshape(-1).astype(np.int64)

    def to_csr(self):
        return conv_csr(self.weight, self.stride, self.padding, self.src_shape, self.dst_shape)

    def apply(self, x):
        from .graph import conv2d

        x = self._flat_input(x).reshape((-1,) + self.src_shape)
        return conv2d(x, self.weight, None, self.stride, self.padding).reshape(len(x), -1)

    def arrays(self):
        return {"weight": self.weight}

    def attrs(self):
        return {**super().attrs(), "stride": self.stride, "padding": self.padding}


@dataclass
class DenseConnection(Connection):
    """All-to-all connection; ``weight`` has shape ``(n_dst, n_src)`` over C-order flattening."""

    weight: np.ndarray = None
    kind = "dense"

    def __post_init__(self):
        super().__post_init__()
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        if self.weight.shape != (self.n_dst, self.n_src):
            raise ValueError(
                f"dense connection {self.name}: weight shape {self.weight.shape}, expected "
                f"(n_dst, n_src) = {(self.n_dst, self.n_src)}"
            )

    def fan_out(self):
        return np.full(self.n_src, self.n_dst, dtype=np.int64)

    def to_csr(self):
        n_src, n_dst = self.n_src, self.n_dst
        return sp.csr_matrix(
            (np.ascontiguousarray(self.weight.T).ravel(),
             np.tile(np.arange(n_dst, dtype=np.int64), n_src),
             np.arange(0, n_src * n_dst + 1, n_dst, dtype=np.int64)),
            shape=(n_src, n_dst),
        )

    def apply(self, x):
        from .kernels.gemm import linear

        return linear(self._flat_input(x), self.weight)

    def arrays(self):
        return {"weight": self.weight}


@dataclass
class SparseConnection(Connection):
    """Any explicit sparse connectivity (e.g. a strided-slice + channel-pad shortcut).

    ``matrix`` is a ``scipy.sparse.csr_matrix`` of shape ``(n_src, n_dst)``; its stored entries
    are the synapses (explicit zeros included).
    """

    matrix: sp.csr_matrix = None
    kind = "csr"

    def __post_init__(self):
        super().__post_init__()
        m = sp.csr_matrix(self.matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()  # one synapse per (pre, post) pair; explicit zeros stay synapses
        if m.shape != (self.n_src, self.n_dst):
            raise ValueError(
                f"sparse connection {self.name}: matrix shape {m.shape}, expected "
                f"(n_src, n_dst) = {(self.n_src, self.n_dst)}"
            )
        self.matrix = m

    def to_csr(self):
        return self.matrix.copy()

    def arrays(self):
        m = self.matrix
        return {"data": m.data, "indices": m.indices.astype(np.int64),
                "indptr": m.indptr.astype(np.int64)}


@dataclass
class IdentityConnection(Connection):
    """One-to-one connection with a scale: a scalar (0-d) or one factor per channel ``(C,)``."""

    scale: np.ndarray = None
    kind = "identity"

    def __post_init__(self):
        super().__post_init__()
        self.scale = np.asarray(1.0 if self.scale is None else self.scale, dtype=np.float32)
        if self.src_shape != self.dst_shape:
            raise ValueError(
                f"identity connection {self.name}: shapes differ ({self.src_shape} vs {self.dst_shape})"
            )
        if self.scale.ndim not in (0, 1) or (
            self.scale.ndim == 1 and self.scale.shape[0] != self.src_shape[0]
        ):
            raise ValueError(
                f"identity connection {self.name}: scale must be a scalar or have one value per "
                f"channel ({self.src_shape[0]}), got shape {self.scale.shape}"
            )

    def per_neuron_scale(self):
        """The scale of every neuron, shape ``(n_src,)``."""
        s = self.scale if self.scale.ndim == 0 else self.scale.reshape(
            (-1,) + (1,) * (len(self.src_shape) - 1))
        return np.broadcast_to(s, self.src_shape).reshape(-1).astype(np.float32)

    def fan_out(self):
        return np.ones(self.n_src, dtype=np.int64)

    def to_csr(self):
        n = self.n_src
        return sp.csr_matrix(
            (self.per_neuron_scale(), np.arange(n, dtype=np.int64), np.arange(n + 1, dtype=np.int64)),
            shape=(n, n),
        )

    def apply(self, x):
        return self._flat_input(x) * self.per_neuron_scale()

    def arrays(self):
        return {"scale": self.scale}


@dataclass
class PoolConnection(Connection):
    """Feeds a pooling population (LIPool, Eq. 12, or max-gate, Eq. 11) with weight-1 synapses.

    Source neuron ``(c, y, x)`` connects to every window of channel ``c`` that covers it.
    """

    kernel: list = field(default_factory=lambda: [2, 2])
    stride: list = field(default_factory=lambda: [2, 2])
    padding: list = field(default_factory=lambda: [0, 0, 0, 0])
    kind = "pool"

    def __post_init__(self):
        super().__post_init__()
        self.kernel = _ints(self.kernel, 2, "pool kernel")
        self.stride = _ints(self.stride, 2, "pool stride")
        self.padding = _ints(self.padding, 4, "pool padding")
        self._require_images()
        c, h, w = self.src_shape
        ho, wo = out_hw((h, w), self.kernel, self.stride, self.padding)
        if self.dst_shape != (c, ho, wo):
            raise ValueError(
                f"pool connection {self.name}: kernel {self.kernel}, stride {self.stride}, padding "
                f"{self.padding} map {self.src_shape} to {(c, ho, wo)}, not {self.dst_shape}"
            )

    def fan_out(self):
        c, h, w = self.src_shape
        _, ho, wo = self.dst_shape
        fy = axis_fan_out(h, ho, self.kernel[0], self.stride[0], self.padding[0])
        fx = axis_fan_out(w, wo, self.kernel[1], self.stride[1], self.padding[1])
        return np.broadcast_to(np.outer(fy, fx), (c, h, w)).reshape(-1).astype(np.int64)

    def to_csr(self):
        c, h, w = self.src_shape
        _, ho, wo = self.dst_shape
        taps_y = axis_taps(h, ho, self.kernel[0], self.stride[0], self.padding[0])
        taps_x = axis_taps(w, wo, self.kernel[1], self.stride[1], self.padding[1])
        ch = np.arange(c)[:, None, None]
        rows, cols = [], []
        for oy, iy in taps_y:
            for ox, ix in taps_x:
                shape = (c, len(oy), len(ox))
                rows.append(np.broadcast_to((ch * h + iy[None, :, None]) * w + ix[None, None, :], shape).ravel())
                cols.append(np.broadcast_to((ch * ho + oy[None, :, None]) * wo + ox[None, None, :], shape).ravel())
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        return _structural_csr(rows, cols, np.ones(len(rows), np.float32), (self.n_src, self.n_dst))

    def apply(self, x):
        """Max pooling of non-negative values (padding reads 0): the ANN-equivalent of the pool."""
        x = self._flat_input(x)
        m = self.to_csr().tocsc()
        out = np.zeros((len(x), self.n_dst), dtype=np.float32)
        for j in range(self.n_dst):
            rows = m.indices[m.indptr[j]:m.indptr[j + 1]]
            if len(rows):
                out[:, j] = np.maximum(x[:, rows].max(axis=1), 0.0)
        return out

    def attrs(self):
        return {**super().attrs(), "kernel": self.kernel, "stride": self.stride,
                "padding": self.padding}


CONNECTION_TYPES = {cls.kind: cls for cls in
                    (ConvConnection, DenseConnection, SparseConnection, IdentityConnection,
                     PoolConnection)}


class SpikingNetwork:
    """A converted spiking network: populations in topological order plus their connections.

    Parameters
    ----------
    input_shape : tuple of int
        Per-sample shape of the input image.
    populations : list of Population
        In topological order; the last one must be the ``"output"`` integrator.
    connections : list of Connection
        Each ``dst`` must be a population; each ``src`` a population earlier in the list
        or :data:`INPUT`. Pooling populations have exactly one incoming :class:`PoolConnection`.
    meta : dict, optional
        JSON-serialisable conversion settings (norm, percentile, burst, pooling, ...).
    """

    def __init__(self, input_shape, populations, connections, meta=None):
        self.input_shape = tuple(int(s) for s in input_shape)
        self.populations = list(populations)
        self.connections = list(connections)
        self.meta = dict(meta or {})
        self._validate()

    def _validate(self):
        order = {}
        for k, p in enumerate(self.populations):
            if p.name in order or p.name == INPUT:
                raise ValueError(f"population name {p.name!r} is used twice or reserved")
            order[p.name] = k
        if not self.populations or self.populations[-1].kind != "output":
            raise ValueError("the last population must be the 'output' integrator")
        if any(p.kind == "output" for p in self.populations[:-1]):
            raise ValueError("only the last population may be of kind 'output'")
        shapes = {INPUT: self.input_shape, **{p.name: p.shape for p in self.populations}}
        names = set()
        for c in self.connections:
            if c.dst not in order:
                raise ValueError(f"connection {c.name}: unknown target population {c.dst!r}")
            if c.src != INPUT and (c.src not in order or order[c.src] >= order[c.dst]):
                raise ValueError(
                    f"connection {c.name}: source must be 'input' or a population listed before "
                    f"{c.dst!r}"
                )
            if c.name in names:
                raise ValueError(f"connection {c.name} appears twice; merge the two into one")
            names.add(c.name)
            if shapes[c.src] != c.src_shape or shapes[c.dst] != c.dst_shape:
                raise ValueError(
                    f"connection {c.name}: shapes {c.src_shape}->{c.dst_shape} do not match the "
                    f"populations {shapes[c.src]}->{shapes[c.dst]}"
                )
        for p in self.populations:
            incoming = self.incoming(p.name)
            if p.kind in ("lipool", "maxgate"):
                if (len(incoming) != 1 or not isinstance(incoming[0], PoolConnection)
                        or incoming[0].src != p.pool["source"]):
                    raise ValueError(
                        f"pooling population {p.name!r} needs exactly one PoolConnection from "
                        f"{p.pool['source']!r}"
                    )
                conn = incoming[0]
                if [conn.kernel, conn.stride, conn.padding] != [
                        p.pool["kernel"], p.pool["stride"], p.pool["padding"]]:
                    raise ValueError(
                        f"pooling population {p.name!r} says kernel/stride/padding "
                        f"{p.pool['kernel']}/{p.pool['stride']}/{p.pool['padding']} but its "
                        f"PoolConnection has {conn.kernel}/{conn.stride}/{conn.padding}; make "
                        "them equal"
                    )
                src = self.population(p.pool["source"]) if p.pool["source"] != INPUT else None
                if src is None or src.kind == "output":
                    raise ValueError(f"pooling population {p.name!r} must pool a spiking population")
            elif not incoming:
                raise ValueError(f"population {p.name!r} has no incoming connection")
            elif any(isinstance(c, PoolConnection) for c in incoming):
                raise ValueError(f"population {p.name!r} of kind {p.kind!r} cannot take a pool connection")

    @property
    def output(self):
        """The output integrator population."""
        return self.populations[-1]

    def population(self, name):
        """The population called ``name``."""
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"no population {name!r}; have {[p.name for p in self.populations]}")

    def incoming(self, name):
        """Connections whose target is population ``name``, in list order."""
        return [c for c in self.connections if c.dst == name]

    def outgoing(self, name):
        """Connections whose source is ``name`` (a population or :data:`INPUT`)."""
        return [c for c in self.connections if c.src == name]

    def summary(self):
        """A text table of populations and their incoming connections."""
        lines = [f"SpikingNetwork: input {self.input_shape}, {len(self.populations)} populations, "
                 f"{len(self.connections)} connections"]
        for p in self.populations:
            extra = f"Γ={p.burst}" if p.kind == "if" else ""
            extra += "" if p.v_max is None else f" V<={p.v_max:g} (bounded ReLU)"
            lines.append(f"  {p.name:<24} {p.kind:<8} {str(p.shape):<16} {extra}")
            for c in self.incoming(p.name):
                lines.append(f"      <- {c.src:<20} {c.kind}")
        return "\n".join(lines)

    def save(self, path):
        """Write the network to ``path`` (npz, topology as JSON inside, no pickle)."""
        arrays, pops, conns = {}, [], []
        for k, p in enumerate(self.populations):
            pops.append({"name": p.name, "shape": list(p.shape), "kind": p.kind,
                         "threshold": float(p.threshold), "burst": p.burst, "pool": p.pool,
                         "ann_node": p.ann_node, **({} if p.v_max is None else {"v_max": p.v_max}),
                         "dt": None if p.dynamics is None else p.dynamics["dt"]})
            for key, a in (p.dynamics or {}).items():
                if key != "dt":
                    arrays[f"pop{k}/dynamics/{key}"] = a
            if p.bias is not None:
                arrays[f"pop{k}/bias"] = p.bias
            if p.scale is not None:
                arrays[f"pop{k}/scale"] = p.scale
            if np.any(p.v_init):
                arrays[f"pop{k}/v_init"] = p.v_init
        for k, c in enumerate(self.connections):
            conns.append(c.attrs())
            for name, a in c.arrays().items():
                arrays[f"conn{k}/{name}"] = a
        topo = {"format": "eventsnn.SpikingNetwork", "version": 1,
                "input_shape": list(self.input_shape), "populations": pops,
                "connections": conns, "meta": self.meta}
        arrays["__topology__"] = np.frombuffer(json.dumps(topo).encode(), dtype=np.uint8)
        with open(Path(path), "wb") as f:
            np.savez_compressed(f, **arrays)


def load_network(path):
    """Read a :class:`SpikingNetwork` written by :meth:`SpikingNetwork.save`."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable eventsnn network file ({e})") from None
    if "__topology__" not in arrays:
        raise ValueError(f"{path}: no topology inside; was it written by SpikingNetwork.save?")
    topo = json.loads(arrays["__topology__"].tobytes().decode())
    if topo.get("format") != "eventsnn.SpikingNetwork":
        raise ValueError(f"{path}: holds {topo.get('format')!r}, not a SpikingNetwork "
                         "(a Graph file loads with eventsnn.load_graph)")
    pops = []
    for k, p in enumerate(topo["populations"]):
        p = dict(p)
        dt = p.pop("dt", None)
        dyn = {n.rsplit("/", 1)[1]: a for n, a in arrays.items()
               if n.startswith(f"pop{k}/dynamics/")}
        pops.append(Population(bias=arrays.get(f"pop{k}/bias"), scale=arrays.get(f"pop{k}/scale"),
                               v_init=arrays.get(f"pop{k}/v_init"),
                               dynamics=None if dt is None else {"dt": dt, **dyn}, **p))
    conns = []
    for k, attrs in enumerate(topo["connections"]):
        attrs = dict(attrs)
        kind = attrs.pop("kind")
        if kind not in CONNECTION_TYPES:
            raise ValueError(f"{path}: unknown connection kind {kind!r}; this eventsnn knows "
                             f"{sorted(CONNECTION_TYPES)} (is the file from a newer version?)")
        cls = CONNECTION_TYPES[kind]
        extra = {n.split("/", 1)[1]: a for n, a in arrays.items() if n.startswith(f"conn{k}/")}
        if cls is SparseConnection:
            n_src, n_dst = int(np.prod(attrs["src_shape"])), int(np.prod(attrs["dst_shape"]))
            extra = {"matrix": sp.csr_matrix((extra["data"], extra["indices"], extra["indptr"]),
                                             shape=(n_src, n_dst))}
        conns.append(cls(**attrs, **extra))
    return SpikingNetwork(topo["input_shape"], pops, conns, topo["meta"])
