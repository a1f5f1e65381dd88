"""Why an op of a third-party model cannot become a rate-coded spiking neuron.

Both importers (:mod:`eventsnn.io.torch`, :mod:`eventsnn.io.onnx`) name the reason in their
refusal, so that a user learns whether to replace the op (and fine-tune) or to export
differently. A rate-coded IF neuron computes a rectified linear function of its input
current (rates are >= 0, Eq. 2-4), synapses have fixed weights, and the network has no
sample-dependent normalisation: whatever needs more cannot be converted.
"""

from __future__ import annotations

_REASONS = {
    "sigmoid": "a sigmoid is not piecewise linear: a spike rate (a rectified, linear function of its "
               "input current) cannot follow its curve",
    "tanh": "tanh is not piecewise linear and takes negative values; spike rates are non-negative and "
            "linear in their input",
    "gelu": "GELU is not piecewise linear and dips below zero; a rate-coded neuron computes a rectified "
            "linear function of its input",
    "erf": "erf (GELU) is not piecewise linear; a rate-coded neuron computes a rectified linear function "
           "of its input",
    "silu": "SiLU/swish multiplies the input by its own sigmoid; a rate-coded neuron cannot multiply two "
            "signals",
    "hardswish": "hard-swish multiplies the input by a function of itself; a rate-coded neuron cannot "
                 "multiply two signals",
    "hardsigmoid": "hard-sigmoid has a negative offset region and is used to gate (multiply) signals; a "
                   "rate-coded neuron cannot multiply two signals",
    "layernorm": "layer normalisation divides by a statistic of the sample itself; the converted network "
                 "only has fixed weights and biases",
    "layernormalization": "layer normalisation divides by a statistic of the sample itself; the converted "
                          "network only has fixed weights and biases",
    "groupnorm": "group normalisation divides by a statistic of the sample itself; the converted network "
                 "only has fixed weights and biases",
    "softmax": "a softmax inside the network normalises by a sum of exponentials of the sample; only a "
               "softmax on the logits can be dropped (argmax unchanged)",
    "multiheadattention": "attention multiplies two input-dependent signals (queries and keys); spiking "
                          "neurons with fixed synapses cannot",
    "matmul": "a product of two input-dependent tensors cannot be a synapse with a fixed weight",
    "mul": "a product of two input-dependent tensors cannot be a synapse with a fixed weight",
    "leakyrelu": "a leaky ReLU is negative for negative inputs; spike rates are non-negative",
    "elu": "ELU is negative for negative inputs and not piecewise linear; spike rates are non-negative",
}


def why_not_rate_coded(op: str) -> str | None:
    """The reason ``op`` (a torch module/function name or an ONNX op type, any case, underscores
    ignored) cannot be converted, or None for ops without a known reason."""
    return _REASONS.get(op.lower().replace("_", ""))
