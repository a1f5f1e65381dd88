"""ANN -> SNN conversion, in the order it happens.

* :mod:`~eventsnn.convert.fold`: BatchNorm folded into the preceding conv/linear (Eq. 7);
* :mod:`~eventsnn.convert.calibrate`: per-layer (or per-channel) scale factors λ measured on
  calibration data (Eq. 6);
* :mod:`~eventsnn.convert.fusion`: each chain of linear ops between two spiking stages fused
  into one connection;
* :mod:`~eventsnn.convert.walk`: the graph walk that builds the populations and connections of
  a :class:`~eventsnn.network.SpikingNetwork` (:func:`convert`);
* :mod:`~eventsnn.convert.analog`: the network's analog rate limit (:func:`analog_forward`)
  and the ANN activations it equals (:func:`ann_activations`), the converter's oracle.
"""

from .analog import analog_forward, ann_activations
from .calibrate import NORMS
from .fold import fold_batchnorm
from .walk import POOLINGS, convert

__all__ = ["convert", "analog_forward", "ann_activations", "fold_batchnorm", "NORMS", "POOLINGS"]
