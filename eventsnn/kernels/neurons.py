"""Per-image neuron kernels: burst IF neurons (Eq. 2-4, Algorithm 1), NIR IF/LIF/I/LI neurons,
output integrator, events. Numpy twins: :mod:`eventsnn.engine.steps`."""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

from .caching import kernel_jit
from .vectors import pointer, splat


@kernel_jit()
def if_image(V, I, const, theta, gamma, v_max, ev_idx, ev_cnt):
    """One step of a population of burst IF neurons of one image; returns the event count.

    ``V += I + const``; ``s = clip(floor(V / theta), 0, gamma)``; ``V = min(V - s * theta, v_max)``
    (Eq. 2-4, soft reset; ``gamma`` = Γ, 1 for the plain IF neuron; ``v_max`` = inf except for
    bounded ReLUs, whose charge above the clamp is dropped). ``I`` (synaptic current
    of this step) is cleared for the next step. Two passes: a vectorised update that writes
    every neuron's count, then a branch-free compaction into the event list.

    Parameters
    ----------
    V, I, const : float32 (N,)
        Membrane potentials, this step's synaptic current, constant current (bias +
        direct-coded input).
    theta : float32
        Threshold θ.
    gamma : int
        Largest burst Γ.
    v_max : float32
        Upper clamp of V after the reset (``inf``: unbounded).
    ev_idx, ev_cnt : int32 (N,)
        Output: neurons (ascending) and multiplicities of the events, first ``n`` valid.

    Returns
    -------
    int
        Number of events ``n``.
    """
    g = np.float32(gamma)
    zero = np.float32(0.0)
    # pass 1 (vectorised): integrate, fire, soft reset; spike counts into ev_cnt (dense)
    for n in range(V.shape[0]):
        v = V[n] + (I[n] + const[n])
        I[n] = zero
        s = min(max(np.floor(v / theta), zero), g)
        V[n] = min(v - s * theta, v_max)
        ev_cnt[n] = np.int32(s)
    return compact_events(ev_idx, ev_cnt, V.shape[0])


def _host_has_avx512():
    """Whether numba compiles for this machine's CPU and it has AVX-512F (see :func:`_compress16`)."""
    if config.CPU_NAME:      # a fixed target CPU (e.g. portable caches): do not assume AVX-512
        return False
    try:
        import llvmlite.binding as ll

        return bool(ll.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:     # features unknown on this platform
        return False


AVX512 = _host_has_avx512()
BLOCK = 16  # neurons per compress step of :func:`_compress16`


@intrinsic
def _compress16(typingctx, ev_idx, ev_cnt, n, ne):
    """Append the neurons ``n .. n+15`` with a positive ``ev_cnt`` to the event list at ``ne``.

    ``ev_cnt[n:n+16]`` is loaded as one vector; its positive lanes and their indices are packed
    to the front of two vectors (AVX-512 ``vpcompressd`` into registers: the compress-to-memory
    form is microcoded and slower than a scalar loop on AMD Zen 4) and stored whole at
    ``ev_idx[ne:]`` / ``ev_cnt[ne:]`` (lanes past the events are zeros; ``ne <= n`` keeps the
    stores inside the block already loaded, so it works in place). Returns the new ``ne``.
    Compiled only where :data:`AVX512` holds.
    """
    if not all(isinstance(a, types.Array) and a.dtype == types.int32 for a in (ev_idx, ev_cnt)):
        return None
    sig = types.intp(ev_idx, ev_cnt, n, ne)

    def codegen(context, builder, signature, args):
        n_, ne_ = args[2], args[3]
        i32 = ir.IntType(32)
        v16 = ir.VectorType(i32, BLOCK)
        zeros = ir.Constant(v16, [0] * BLOCK)

        def vec(k, off):  # argument k (ev_idx or ev_cnt) from element off, as a v16 pointer
            return pointer(context, builder, signature.args[k], args[k], off, v16)

        cnt = builder.load(vec(1, n_), align=4)
        mask = builder.icmp_signed(">", cnt, zeros)
        idx = builder.add(splat(builder, builder.trunc(n_, i32), v16),
                          ir.Constant(v16, list(range(BLOCK))))
        compress = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v16, [v16, v16, mask.type]),
            "llvm.x86.avx512.mask.compress.v16i32")
        builder.store(builder.call(compress, [idx, zeros, mask]), vec(0, ne_), align=4)
        builder.store(builder.call(compress, [cnt, zeros, mask]), vec(1, ne_), align=4)
        i64 = ir.IntType(64)
        popcount = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64]),
                                                  "llvm.ctpop.i64")
        bits = builder.zext(builder.bitcast(mask, ir.IntType(BLOCK)), i64)
        return builder.add(ne_, builder.call(popcount, [bits]))

    return sig, codegen


@kernel_jit()
def compact_events(ev_idx, ev_cnt, N):
    """Turn the dense counts ``ev_cnt[:N]`` into an event list in place; return its length.

    With AVX-512, sixteen neurons at a time (:func:`_compress16`, ~3x faster at 10-20 % firing);
    the rest, or everything elsewhere, by :func:`compact_scalar`.
    """
    n = 0
    ne = 0
    if AVX512:
        while n + BLOCK <= N:
            ne = _compress16(ev_idx, ev_cnt, n, ne)
            n += BLOCK
    return compact_scalar(ev_idx, ev_cnt, n, ne, N)


@kernel_jit()
def compact_scalar(ev_idx, ev_cnt, n0, ne, N):
    """:func:`compact_events` from neuron ``n0`` on, ``ne`` events already listed (scalar).

    Branch-free, in place: slot ``ne <= n`` is written after ``n`` is read.
    """
    for n in range(n0, N):
        c = ev_cnt[n]
        ev_idx[ne] = n
        ev_cnt[ne] = c
        ne += c > 0
    return ne


@kernel_jit()
def nir_image(V, I, const, prm, leak, spiking, ev_idx, ev_cnt):
    """One step of NIR IF / LIF (``spiking``) or I / LI neurons of one image; returns the events.

    ``x = I + const``; with ``leak``: ``V += alpha·((v_leak − V) + r·x)``, else
    ``V += alpha·(r·x)``; if ``spiking``: ``z = V > v_threshold`` (strict), ``V = v_reset``
    where ``z`` (at most one spike). ``I`` is cleared. Twin:
    :func:`eventsnn.engine.steps.nir_step`.

    Parameters
    ----------
    V, I, const : float32 (N,)
        Potentials, this step's synaptic current, constant current (bias + direct input).
    prm : float32 (5 * N,)
        ``alpha, r, v_leak, v_threshold, v_reset``, N values each
        (:meth:`eventsnn.network.Population.step_parameters`).
    leak, spiking : bool
    ev_idx, ev_cnt : int32 (N,)
        Output event list (as :func:`if_image`); untouched when not ``spiking``.

    Returns
    -------
    int
        Number of events (0 when not ``spiking``).
    """
    N = V.shape[0]
    zero = np.float32(0.0)
    for n in range(N):
        x = I[n] + const[n]
        I[n] = zero
        if leak:
            v = V[n] + prm[n] * ((prm[2 * N + n] - V[n]) + prm[N + n] * x)
        else:
            v = V[n] + prm[n] * (prm[N + n] * x)
        z = spiking and v > prm[3 * N + n]
        V[n] = prm[4 * N + n] if z else v
        ev_cnt[n] = np.int32(z)
    if not spiking:
        return 0
    return compact_events(ev_idx, ev_cnt, N)


@kernel_jit()
def burst_stats(ev_cnt, n, hist):
    """Add the ``n`` events to the burst-size histogram ``hist``; return their spike total.

    One vectorised counting pass per burst size ``k = 1..Γ`` (``Γ = len(hist) - 1``): about
    3x faster than incrementing ``hist[ev_cnt[e]]`` event by event, whose read-modify-writes
    of the same few bins form a dependency chain through memory.
    """
    total = 0
    for e in range(n):
        total += ev_cnt[e]
    for k in range(1, hist.shape[0]):
        c = 0
        for e in range(n):
            c += ev_cnt[e] == k
        hist[k] += c
    return total


@kernel_jit()
def output_image(U, I, const):
    """One step of the non-spiking output integrator of one image: ``U += I + const``; clear I."""
    for n in range(U.shape[0]):
        U[n] += I[n] + const[n]
        I[n] = 0.0


@kernel_jit()
def count_events(ev_idx, ev_cnt, n, counts):
    """Add the multiplicity of each of the ``n`` events to its neuron: ``counts[idx] += cnt``."""
    for e in range(n):
        counts[ev_idx[e]] += ev_cnt[e]


@kernel_jit()
def spikes_to_events(spk, ev_idx, ev_cnt):
    """Event list of a dense spike vector (e.g. Poisson input); returns the event count.

    Every non-zero entry becomes one event with its (signed) value as multiplicity.
    """
    ne = 0
    for n in range(spk.shape[0]):
        s = spk[n]
        if s != 0:
            ev_idx[ne] = n
            ev_cnt[ne] = s
            ne += 1
    return ne
