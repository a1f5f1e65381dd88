"""Argument checks shared by the public functions (graph, convert, simulate, analysis, CLI).

Every check raises :class:`ValueError` (a wrong value: shape, range, NaN) or
:class:`TypeError` (a wrong kind of object) with a message naming the argument, the problem
and the fix, so the same mistake reads the same wherever it is made.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

MAX_BURST = 2 ** 16
"""Largest burst size Γ accepted: each ``"if"`` population keeps a histogram of Γ + 1 counters
per image and per thread. Γ above the largest normalised activation already never clips."""

RAW_PIXEL_MAX = 255.0
"""Largest value of raw 8-bit pixels; float batches spanning ``[0, 255]`` look un-normalised."""


def _expected(input_shape):
    return "(B, " + ", ".join(str(s) for s in input_shape) + ")"


def check_batch(x, input_shape, name="x"):
    """Validate a batch of images and return it as contiguous float32.

    Parameters
    ----------
    x : array_like, shape (B, *input_shape)
        Normalised images, floating point, finite, at least one.
    input_shape : tuple of int
        Per-sample shape the model expects.
    name : str
        The argument's name, used in messages.

    Returns
    -------
    ndarray, float32, shape (B, *input_shape)

    Raises
    ------
    TypeError
        ``x`` is not a real numeric array.
    ValueError
        Wrong shape (a single image without its batch axis included), no images, integer
        pixels (raw ``uint8`` images: normalise first), NaN or inf.

    Warns
    -----
    UserWarning
        Float images whose values span more than ``[0, 25]`` within ``[0, 255]``: raw pixel
        values that were cast but not normalised (see :func:`warn_if_unnormalised`).
    """
    input_shape = tuple(int(s) for s in input_shape)
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"{name} must be a numeric array of shape {_expected(input_shape)}: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a real numeric array of float images, got dtype {arr.dtype}")
    if arr.ndim != len(input_shape) + 1 or arr.shape[1:] != input_shape:
        hint = " (a single image: add the batch axis, x[None])" if arr.shape == input_shape else ""
        raise ValueError(f"{name} has shape {arr.shape}, expected {_expected(input_shape)}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one image")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} has dtype {arr.dtype}, expected floating point: normalise the "
                         "images first, e.g. x.astype(np.float32) / 255, then (x - mean) / std")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf values; clean or re-normalise the data "
                         "(e.g. drop those images) first")
    warn_if_unnormalised(arr, name)
    return arr


def warn_if_unnormalised(x, name="x"):
    """Warn when float images look like raw 0–255 pixels that were never normalised.

    The test: all values in ``[0, 255]`` and the largest above 25. Normalised images
    (``x/255`` or ``(x/255 - mean)/std`` with usual statistics) stay far below that.
    """
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and 25 < hi <= RAW_PIXEL_MAX:
        warnings.warn(f"{name} holds values in [{lo:g}, {hi:g}]: these look like raw 0-255 pixels; "
                      "normalise them as for training (x / 255, then (x - mean) / std; on the "
                      "command line --mean/--std)", UserWarning, stacklevel=3)


def check_labels(y, n, n_classes=None, name="labels"):
    """Validate class labels and return them as int64.

    Parameters
    ----------
    y : array_like of int, shape (n,)
    n : int
        Number of images the labels belong to.
    n_classes : int, optional
        Number of classes of the model; labels must lie in ``[0, n_classes)``.
    name : str
        The argument's name, used in messages.

    Raises
    ------
    TypeError
        Non-integer labels.
    ValueError
        Wrong shape, or labels outside ``[0, n_classes)`` (they could never be predicted and
        would silently count as errors).
    """
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} have shape {y.shape}; expected ({n},), one per simulated image")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}")
    if n_classes is not None and n and (y.min() < 0 or y.max() >= n_classes):
        bad = np.unique(y[(y < 0) | (y >= n_classes)])
        raise ValueError(f"{name} {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} are outside "
                         f"the model's {n_classes} classes 0..{n_classes - 1}; these labels belong "
                         "to another data set or label encoding (check --data/--model)")
    return y.astype(np.int64, copy=False)


def check_int(value, name, minimum, *, allow_none=False):
    """``value`` as an int >= ``minimum`` (or None when ``allow_none``); TypeError/ValueError otherwise."""
    if value is None and allow_none:
        return None
    alt = " or None" if allow_none else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}{alt}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{alt}, got {value}")
    return int(value)


def check_positive_int(value, name, *, allow_none=False):
    """``value`` as an int >= 1 (or None when ``allow_none``); TypeError/ValueError otherwise."""
    return check_int(value, name, 1, allow_none=allow_none)


def check_finite_float(value, name, *, minimum=None, maximum=None):
    """``value`` as a finite float within ``[minimum, maximum]``; TypeError/ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value:g}")
    return value


class UnsupportedModelError(ValueError):
    """A model uses something eventsnn cannot convert: raised by the importers and the graph.

    Parameters
    ----------
    message : str
        What is unsupported and what to do instead.
    node : str
        Name of the offending node (ONNX node, ``torch.fx`` node or graph node).
    op : str
        Its operation (ONNX op type, torch module/function, or graph op).
    """

    def __init__(self, message, *, node, op):
        super().__init__(message)
        self.node = node
        self.op = op
