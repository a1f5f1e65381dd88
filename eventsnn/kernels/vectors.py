"""SIMD values for numba kernels: a float32 vector type that lives in registers.

Numba has no vector value type, so a kernel that keeps a running sum of a few output
vectors across loop iterations would have to keep it in memory (one load and one store per
update). :class:`F32Vec` is an LLVM ``<lanes x float>`` value: kernels hold accumulators in
ordinary variables, which LLVM keeps in vector registers. Operations (no bounds checks,
offsets in elements; products and sums are separate instructions, never a fused
multiply-add, so each rounds like the scalar float32 expression):

* :func:`vzero` — ``lanes`` zeros (``lanes`` must be a compile-time constant);
* :func:`vmadd` — ``acc + s * w[off:off + lanes]``;
* :func:`vflush` — ``out[off:off + lanes] += acc``.

:func:`splat` and :func:`pointer` are the code-generation helpers they share with the other
vector intrinsics of the package.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

_I32 = ir.IntType(32)


class F32Vec(types.Type):
    """Numba type of an LLVM ``<lanes x float>`` value."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


@register_model(F32Vec)
class _F32VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), fe_type.lanes))


def splat(builder, scalar, vty):
    """The vector of type ``vty`` with ``scalar`` in every lane."""
    undef = ir.Constant(vty, ir.Undefined)
    one = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(_I32, vty.count),
                                                          [0] * vty.count))


def pointer(context, builder, arytype, ary, off, vty):
    """Pointer to ``ary[off:]`` (a numba array value of type ``arytype``) as a ``vty`` pointer."""
    data = context.make_array(arytype)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [off]), vty.as_pointer())


@intrinsic
def vzero(typingctx, lanes):
    """A :class:`F32Vec` of ``lanes`` zeros; ``lanes`` is a literal int."""
    if not isinstance(lanes, types.IntegerLiteral):
        return None
    vec = F32Vec(lanes.literal_value)

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.VectorType(ir.FloatType(), vec.lanes), [0.0] * vec.lanes)

    return vec(lanes), codegen


@intrinsic
def vmadd(typingctx, acc, s, w, off):
    """``acc + s * w[off:off + lanes]`` (float32 ``s``, float32 array ``w``)."""
    if not (isinstance(acc, F32Vec) and s == types.float32 and isinstance(w, types.Array)
            and w.dtype == types.float32):
        return None

    def codegen(context, builder, signature, args):
        vty = ir.VectorType(ir.FloatType(), acc.lanes)
        v = builder.load(pointer(context, builder, signature.args[2], args[2], args[3], vty),
                         align=4)
        return builder.fadd(args[0], builder.fmul(splat(builder, args[1], vty), v))

    return acc(acc, s, w, off), codegen


@intrinsic
def vflush(typingctx, out, off, acc):
    """``out[off:off + lanes] += acc`` (float32 array ``out``)."""
    if not (isinstance(acc, F32Vec) and isinstance(out, types.Array)
            and out.dtype == types.float32):
        return None

    def codegen(context, builder, signature, args):
        vty = ir.VectorType(ir.FloatType(), acc.lanes)
        p = pointer(context, builder, signature.args[0], args[0], args[1], vty)
        builder.store(builder.fadd(builder.load(p, align=4), args[2]), p, align=4)
        return context.get_dummy_value()

    return types.void(out, off, acc), codegen
