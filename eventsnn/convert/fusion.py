"""Linear-chain fusion: turn a chain of bias-free linear ops into one SNN connection.

Between two spiking stages an ANN applies only linear maps (Conv, Linear, BatchNorm,
AvgPool, Flatten, Pad, Slice, ...).  The converter keeps, for every source population, the
*chain* of bias-free linear ops its signal goes through (a tuple of :class:`LinOp`), and
:func:`compile_terms` turns the chains that end in one target population into a single
connection:

* ``[]`` or per-channel scales only, same shape             -> :class:`IdentityConnection`
* ``[scales..., conv, scales...]``                           -> :class:`ConvConnection`
  (scales folded into the in-/out-channel weights; the conv stays weight-shared)
* ``[scales..., flatten/reshape..., linear, scales...]``     -> :class:`DenseConnection`
* anything else (slice + pad shortcut, avgpool -> flatten -> linear, ...) is
  *materialised* by probing the chain with identity basis vectors (its numpy forward) into
  a CSR matrix (:class:`SparseConnection`; nonzeros are the synapses), or a
  :class:`DenseConnection` when more than half of the entries are nonzero. Chains that
  only move values (slice, pad, flatten, reshape, scales — e.g. the option-A shortcut of
  CIFAR ResNets) are materialised in one pass by pushing the source indices through them.

Before matching, a zero Pad (spatial axes only) followed by a Conv is folded into the conv's
padding, and an AvgPool followed by a Conv is composed into one strided conv when that is
exact (see :func:`_compose_avgpool_conv`), so such chains stay weight-shared.
Several chains from the same source into the same target are merged into one connection
(a network has at most one connection per (src, dst) pair): convs with one stride and
identities become one conv when their kernels nest (:func:`_merge_convs`), otherwise the
CSR matrices are summed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..graph import OPS, Node, conv2d
from ..network import (ConvConnection, DenseConnection, IdentityConnection,
                       SparseConnection, conv_csr)
from ..primitives import out_size

__all__ = ["LinOp", "Scale", "Conv", "Dense", "Structural", "apply_chain", "compile_terms"]

_PROBE_FLOATS = 1 << 23  # floats per probing chunk (about 32 MB per array)
_DENSE_FILL = 0.5        # materialised matrices fuller than this become DenseConnection


class LinOp:
    """A bias-free linear op with per-sample ``in_shape`` / ``out_shape``."""

    in_shape: tuple
    out_shape: tuple

    def apply(self, x):
        """Apply to a batch ``(B, *in_shape)``; returns ``(B, *out_shape)`` float32."""
        raise NotImplementedError


class Scale(LinOp):
    """Multiply by a scalar (0-d ``s``) or by one factor per channel (axis 0 of the shape)."""

    def __init__(self, s, shape):
        self.s = np.asarray(s, dtype=np.float64)
        self.in_shape = self.out_shape = tuple(shape)

    @property
    def scalar(self):
        return self.s.ndim == 0

    def broadcast(self):
        """Factors shaped to broadcast against ``(B, *shape)``."""
        if self.scalar:
            return self.s
        return self.s.reshape((-1,) + (1,) * (len(self.in_shape) - 1))

    def per_element(self):
        """One factor per element of the shape, C-order, float64."""
        return np.broadcast_to(self.broadcast(), self.in_shape).reshape(-1)

    def apply(self, x):
        return (x * self.broadcast()).astype(np.float32)


class Conv(LinOp):
    """Bias-free 2-D convolution (weight ``(O, I / groups, kh, kw)``, optional groups/dilation)."""

    def __init__(self, weight, stride, padding, in_shape, out_shape, groups=1, dilation=(1, 1)):
        self.weight = np.asarray(weight, dtype=np.float64)
        self.stride, self.padding = list(stride), list(padding)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.groups, self.dilation = int(groups), list(dilation)

    @property
    def plain(self):
        """True for groups 1 and dilation 1 (a weight-shared :class:`ConvConnection`)."""
        return self.groups == 1 and self.dilation == [1, 1]

    def with_padding(self, padding, in_shape):
        """The same kernel with another zero padding and input shape."""
        return Conv(self.weight, self.stride, padding, in_shape, self.out_shape, self.groups, self.dilation)

    def apply(self, x):
        return conv2d(x, self.weight.astype(np.float32), None, self.stride, self.padding,
                      self.groups, self.dilation)


class Dense(LinOp):
    """Bias-free fully connected layer (weight ``(O, I)``)."""

    def __init__(self, weight, in_shape, out_shape):
        self.weight = np.asarray(weight, dtype=np.float64)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def apply(self, x):
        from ..kernels.gemm import linear

        return linear(x.reshape(len(x), -1), self.weight)


class Structural(LinOp):
    """A parameter-free linear graph op (avgpool, global_avgpool, flatten, reshape, pad,
    slice, identity), run by its registry forward."""

    def __init__(self, node, in_shape):
        self.node = node
        self.op = node.op
        self.in_shape, self.out_shape = tuple(in_shape), tuple(node.shape)

    def apply(self, x):
        return np.asarray(OPS[self.op].forward(self.node, [x]), dtype=np.float32)


def apply_chain(chain, x):
    """Run the ops of ``chain`` in order on the batch ``x``."""
    for op in chain:
        x = op.apply(x)
    return x


# --- chain simplification --------------------------------------------------------------


def _fold_pad_into_conv(chain):
    out = []
    for op in chain:
        prev = out[-1] if out else None
        if (isinstance(op, Conv) and isinstance(prev, Structural) and prev.op == "pad"
                and len(prev.in_shape) == 3):
            p = prev.node.attrs["pads"]
            if p[0] == 0 and p[3] == 0:
                pt, pl, pb, pr = op.padding
                out[-1] = op.with_padding([pt + p[1], pl + p[2], pb + p[4], pr + p[5]], prev.in_shape)
                continue
        out.append(op)
    return out


def _compose_axis(n, k, s, kc, t, pc_begin, n_out):
    """Composite geometry of avgpool(k, s, no padding) then conv(kc, t, pc_begin) on one axis.

    Returns (kernel, stride, pad_begin, pad_end) of the equivalent conv on the pool's input,
    or None when the composition is not exact (windows overlap, a trailing input row is
    dropped by the pool, or the end padding would be negative).
    """
    n_pool = out_size(n, k, s)
    if k > s or n_pool * s < n:
        return None
    kernel, stride, begin = (kc - 1) * s + k, s * t, pc_begin * s
    end = (n_out - 1) * stride + kernel - n - begin
    if end < 0:
        return None
    return kernel, stride, begin, end


def _compose_avgpool_conv(pool, conv):
    """conv(avgpool(x)) as one conv on x, exact when windows do not overlap (k <= s).

    A pooled map padded with zeros reads, through the composite kernel, zero padding of x
    at exactly the same places when ``k <= s`` and the pool drops no trailing row; the
    composite kernel is ``w'[m] = w[v] / (kh*kw)`` for ``m = v*s + u``, ``u < k``.
    """
    a = pool.node.attrs
    if any(a["padding"]) or not conv.plain:
        return None
    (_, h, w), (o, i, kh, kw) = pool.in_shape, conv.weight.shape
    _, ho, wo = conv.out_shape
    gy = _compose_axis(h, a["kernel"][0], a["stride"][0], kh, conv.stride[0], conv.padding[0], ho)
    gx = _compose_axis(w, a["kernel"][1], a["stride"][1], kw, conv.stride[1], conv.padding[1], wo)
    if gy is None or gx is None:
        return None
    (ky, sy, by, ey), (kx, sx, bx, ex) = gy, gx
    weight = np.zeros((o, i, ky, kx))
    (pk_y, pk_x), (ps_y, ps_x) = a["kernel"], a["stride"]
    for v in range(kh):
        for u in range(kw):
            weight[:, :, v * ps_y:v * ps_y + pk_y, u * ps_x:u * ps_x + pk_x] = \
                conv.weight[:, :, v:v + 1, u:u + 1] / (pk_y * pk_x)
    return Conv(weight, [sy, sx], [by, bx, ey, ex], pool.in_shape, conv.out_shape)


def _channel_pad(op):
    """``(begin, end)`` of a zero pad along axis 0 only (a part placed in a concat), else None."""
    if not (isinstance(op, Structural) and op.op == "pad"):
        return None
    p, nd = op.node.attrs["pads"], len(op.in_shape)
    if any(p[1:nd]) or any(p[nd + 1:]):
        return None
    return p[0], p[nd]


def _to_vector(op):
    return isinstance(op, Structural) and op.op in ("flatten", "reshape") and len(op.out_shape) == 1


def _fold_channel_pads(chain):
    """Fold the zero channel padding that places a part in a concatenation into the next layer.

    A per-channel scale after the pad moves before it (its factors sliced to the part); then
    ``conv(pad_c(x))`` is the conv with the part's slice of input channels (groups 1), and
    ``dense(flatten(pad_c(x)))`` the dense layer with the part's block of columns — the
    synapses of the other parts are not this source's.
    """
    out = list(chain)
    changed = True
    while changed:
        changed = False
        for k in range(len(out) - 1):
            pad, nxt = _channel_pad(out[k]), out[k + 1]
            if pad is None:
                continue
            begin, c = pad[0], out[k].in_shape[0]
            if isinstance(nxt, Scale):
                s = nxt.s if nxt.scalar else nxt.s[begin:begin + c]
                out[k:k + 2] = [Scale(s, out[k].in_shape), out[k]]
                changed = True
                break
            if isinstance(nxt, Conv) and nxt.groups == 1:
                out[k:k + 2] = [Conv(nxt.weight[:, begin:begin + c], nxt.stride, nxt.padding, out[k].in_shape,
                                     nxt.out_shape, 1, nxt.dilation)]
                changed = True
                break
            j = k + 1
            while j < len(out) and _to_vector(out[j]):
                j += 1
            if j < len(out) and isinstance(out[j], Dense) and (j > k + 1 or len(out[k].in_shape) == 1):
                inner = int(np.prod(out[k].in_shape[1:]))
                w = out[j].weight[:, begin * inner:(begin + c) * inner]
                out[k:j + 1] = [Dense(w, out[k].in_shape, out[j].out_shape)]
                changed = True
                break
    return out


def simplify(chain):
    """Drop identity-like ops, fold concat placements and zero pads into the next layer, compose
    avgpool -> conv."""
    chain = [op for op in chain if not (
        isinstance(op, Structural) and (op.op == "identity" or
                                        (op.op in ("reshape", "flatten") and op.in_shape == op.out_shape)))]
    chain = _fold_pad_into_conv(_fold_channel_pads(chain))
    out = []
    for op in chain:
        prev = out[-1] if out else None
        if (isinstance(op, Conv) and isinstance(prev, Structural) and prev.op == "avgpool"):
            composed = _compose_avgpool_conv(prev, op)
            if composed is not None:
                out[-1] = composed
                continue
        out.append(op)
    return out


# --- compiling one chain ---------------------------------------------------------------


def _split_scales(chain):
    """(scalar factor, chain without scalar scales)."""
    g = 1.0
    rest = []
    for op in chain:
        if isinstance(op, Scale) and op.scalar:
            g *= float(op.s)
        else:
            rest.append(op)
    return g, rest


def _in_channel_factors(conv, s):
    """Per-input-channel factors ``s`` (C,) laid out like the (possibly grouped) kernel."""
    o, i = conv.weight.shape[:2]
    full = (np.arange(o) // (o // conv.groups))[:, None] * i + np.arange(i)[None, :]
    return s[full][:, :, None, None]


def _match_conv(chain, g):
    core = [k for k, op in enumerate(chain) if not isinstance(op, Scale)]
    if len(core) != 1 or not isinstance(chain[core[0]], Conv):
        return None
    k = core[0]
    conv = chain[k]
    w = conv.weight * g
    for op in chain[:k]:
        w = w * _in_channel_factors(conv, op.s)
    for op in chain[k + 1:]:
        w = w * op.s.reshape(-1, 1, 1, 1)
    return w, conv


def _match_dense(chain, g):
    core = [k for k, op in enumerate(chain) if not isinstance(op, Scale)]
    if not core or not isinstance(chain[core[-1]], Dense):
        return None
    k = core[-1]
    if any(not (isinstance(chain[j], Structural) and chain[j].op in ("flatten", "reshape"))
           for j in core[:-1]):
        return None
    w = chain[k].weight * g
    for op in chain[:k]:
        if isinstance(op, Scale):
            w = w * op.per_element()[None, :]
    for op in chain[k + 1:]:
        w = w * op.per_element()[:, None]
    return w


_SELECTION_OPS = ("slice", "pad", "flatten", "reshape", "identity")


def _selection(chain, src_shape):
    """CSR of a chain that only moves values (slice/pad/flatten/reshape and scales), or None.

    Such a chain sends each output either nothing or one input times a factor, so one pass
    on the source indices (as float64, 0 = padding) and one on ones give the whole matrix.
    """
    if not all(isinstance(op, Scale) or (isinstance(op, Structural) and op.op in _SELECTION_OPS)
               for op in chain):
        return None
    n_src = int(np.prod(src_shape))
    idx = np.arange(1, n_src + 1, dtype=np.float64).reshape((1,) + tuple(src_shape))
    fac = np.ones_like(idx)
    for op in chain:
        if isinstance(op, Scale):
            fac = fac * op.broadcast()
        else:
            idx = OPS[op.op].forward(op.node, [idx])
            fac = OPS[op.op].forward(op.node, [fac])
    idx, fac = idx.reshape(-1), fac.reshape(-1)
    cols = np.flatnonzero((idx > 0) & (fac != 0))
    rows = idx[cols].astype(np.int64) - 1
    return sp.csr_matrix((fac[cols].astype(np.float32), (rows, cols)), shape=(n_src, len(idx)))


def probe(chain, src_shape):
    """Materialise a bias-free linear chain as a CSR matrix ``(n_src, n_dst)``.

    The chain is run on identity basis vectors in chunks; row ``j`` is the response to a
    unit input at source neuron ``j`` (C-order). Exact zeros are not stored.
    """
    n_src = int(np.prod(src_shape))
    widest = max([n_src] + [int(np.prod(op.out_shape)) for op in chain])
    chunk = max(1, min(n_src, _PROBE_FLOATS // widest))
    blocks = []
    for start in range(0, n_src, chunk):
        m = min(chunk, n_src - start)
        x = np.zeros((m, n_src), dtype=np.float32)
        x[np.arange(m), start + np.arange(m)] = 1.0
        y = apply_chain(chain, x.reshape((m,) + tuple(src_shape)))
        blocks.append(sp.csr_matrix(y.reshape(m, -1)))
    return sp.vstack(blocks, format="csr").astype(np.float32)


def _from_matrix(src, dst, m, src_shape, dst_shape):
    m = sp.csr_matrix(m, dtype=np.float32)
    if m.nnz > _DENSE_FILL * m.shape[0] * m.shape[1]:
        return DenseConnection(src, dst, src_shape, dst_shape, weight=np.asarray(m.T.todense()))
    return SparseConnection(src, dst, src_shape, dst_shape, matrix=m)


def compile_chain(src, dst, chain, src_shape, dst_shape):
    """One connection implementing the bias-free linear ``chain`` from ``src`` to ``dst``.

    Parameters
    ----------
    src, dst : str
        Source population (or ``"input"``) and target population names.
    chain : sequence of LinOp
        The ops in order (normalisation factors included as :class:`Scale` ops).
    src_shape, dst_shape : tuple of int
        Per-sample shapes of the two populations.

    Returns
    -------
    eventsnn.network.Connection
    """
    g, chain = _split_scales(simplify(chain))
    if all(isinstance(op, Scale) for op in chain) and tuple(src_shape) == tuple(dst_shape):
        s = np.asarray(g, dtype=np.float64)
        for op in chain:
            s = s * op.s
        return IdentityConnection(src, dst, src_shape, dst_shape, scale=s.astype(np.float32))
    conv = _match_conv(chain, g)
    if conv is not None:
        w, c = conv
        if not c.plain:  # grouped / dilated: the exact synapses as CSR (no zero-filled kernel)
            return SparseConnection(src, dst, src_shape, dst_shape,
                                    matrix=conv_csr(w.astype(np.float32), c.stride, c.padding, src_shape,
                                                    dst_shape, c.groups, c.dilation))
        return ConvConnection(src, dst, src_shape, dst_shape, weight=w.astype(np.float32),
                              stride=c.stride, padding=c.padding)
    dense = _match_dense(chain, g)
    if dense is not None:
        return DenseConnection(src, dst, src_shape, dst_shape, weight=dense.astype(np.float32))
    m = _selection(chain, src_shape)
    if m is None:
        m = probe(chain, src_shape)
    if g != 1.0:
        m = m * np.float32(g)
    return _from_matrix(src, dst, m, src_shape, dst_shape)


def _as_conv(c):
    """``(weight float64, stride, padding)`` of a conv or an image identity, else None."""
    if isinstance(c, ConvConnection):
        return c.weight.astype(np.float64), c.stride, c.padding
    if isinstance(c, IdentityConnection) and len(c.src_shape) == 3:
        n = c.src_shape[0]
        w = np.zeros((n, n, 1, 1))
        w[np.arange(n), np.arange(n), 0, 0] = np.broadcast_to(c.scale.astype(np.float64), (n,))
        return w, [1, 1], [0, 0, 0, 0]
    return None


def _merge_convs(conns):
    """Sum convs / identities of one (src, dst) as one conv, or None if they do not align.

    Output ``o`` of a conv reads input ``o*s - p_begin + k`` through tap ``k``, so a kernel
    of a conv with the same stride sits inside the largest kernel at offset
    ``p_begin(largest) - p_begin(small)`` when that fits (e.g. 3x3 + 1x1 + identity, as
    in RepVGG blocks); taps outside the input read zero padding in both forms.
    """
    forms = [_as_conv(c) for c in conns]
    if any(f is None for f in forms) or not any(isinstance(c, ConvConnection) for c in conns):
        return None
    base = max(forms, key=lambda f: f[0].shape[2] * f[0].shape[3])
    w_out = np.zeros_like(base[0])
    for w, stride, pad in forms:
        dy, dx = base[2][0] - pad[0], base[2][1] - pad[1]
        if (stride != base[1] or dy < 0 or dx < 0 or dy + w.shape[2] > w_out.shape[2]
                or dx + w.shape[3] > w_out.shape[3]):
            return None
        w_out[:, :, dy:dy + w.shape[2], dx:dx + w.shape[3]] += w
    c = conns[0]
    return ConvConnection(c.src, c.dst, c.src_shape, c.dst_shape, weight=w_out.astype(np.float32),
                          stride=base[1], padding=base[2])


def _merge(conns):
    """One connection equal to the sum of several with the same (src, dst)."""
    first = conns[0]
    if len(conns) == 1:
        return first
    conv = _merge_convs(conns)
    if conv is not None:
        return conv
    if all(isinstance(c, IdentityConnection) for c in conns):
        shape = first.src_shape[:1] if any(c.scale.ndim for c in conns) else ()
        s = np.sum([np.broadcast_to(c.scale.astype(np.float64), shape) for c in conns], axis=0)
        return IdentityConnection(first.src, first.dst, first.src_shape, first.dst_shape, scale=s)
    if all(isinstance(c, DenseConnection) for c in conns):
        w = np.sum([c.weight.astype(np.float64) for c in conns], axis=0)
        return DenseConnection(first.src, first.dst, first.src_shape, first.dst_shape,
                               weight=w.astype(np.float32))
    m = conns[0].to_csr().astype(np.float64)
    for c in conns[1:]:
        m = m + c.to_csr().astype(np.float64)
    return _from_matrix(first.src, first.dst, m, first.src_shape, first.dst_shape)


def compile_terms(dst, dst_shape, terms, shapes):
    """Connections into ``dst`` for a list of ``(src, chain)`` terms (merged per source).

    Parameters
    ----------
    dst : str
        Target population.
    dst_shape : tuple of int
        Its shape.
    terms : list of (str, sequence of LinOp)
        Source name and chain of every term of the target's input expression.
    shapes : dict
        Per-sample shape of every source name.

    Returns
    -------
    list of eventsnn.network.Connection
        One connection per distinct source, in order of first appearance.
    """
    by_src = {}
    for src, chain in terms:
        by_src.setdefault(src, []).append(
            compile_chain(src, dst, chain, shapes[src], dst_shape))
    return [_merge(conns) for conns in by_src.values()]


def structural_node(name, op, inputs, attrs, shape):
    """A parameter-free :class:`eventsnn.graph.Node` for a synthetic structural op."""
    return Node(name, op, tuple(inputs), dict(attrs), {}, tuple(shape))
