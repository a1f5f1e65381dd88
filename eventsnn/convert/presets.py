"""Named sets of conversion settings for :func:`eventsnn.convert` and their validation.

``"paper"``
    Exactly the method of Li & Zeng (IJCAI 2022) as reproduced in the paper tables: the
    authors' burst-aware 99.9th percentile λ, ``V(0) = 0``, no calibration.
``"default"``
    Accurate at low latency with few spikes (chosen from measurements on several networks,
    README "Conversion techniques"): λ = the 99.8th percentile (large λ, few spikes),
    ``V(0) = θ/2``, and bias calibration (:mod:`eventsnn.convert.layer_calibration`) for ``T = 32``,
    which removes most of the error the large λ leaves. ``norm="mmse"``
    (:mod:`eventsnn.convert.thresholds`) is more accurate at small T but fires 2-3x more.

Every setting given explicitly to :func:`eventsnn.convert` overrides the preset's.
"""

from __future__ import annotations

import math
import numbers

from .layer_calibration import CALIBRATIONS, MIN_IMAGES

__all__ = ["PRESETS", "resolve_settings"]

_COMMON = {"burst": 5, "channelwise": False, "timesteps": 32, "calib_images": 64, "calib_passes": 2}
PRESETS = {
    "paper": {**_COMMON, "norm": "burst-percentile", "percentile": 99.9, "v_init": 0.0,
              "calibration": "none"},
    "default": {**_COMMON, "norm": "percentile", "percentile": 99.8, "v_init": 0.5,
                "calibration": "bias"},
}


def _positive_int(name, v, hint):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive integer ({hint}), got {v!r}")
    return int(v)


def resolve_settings(preset, **given):
    """The preset's settings, overridden by every ``given`` value that is not None; validated.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    **given
        ``norm``, ``percentile``, ``burst``, ``channelwise``, ``v_init``, ``calibration``,
        ``timesteps``, ``calib_images``, ``calib_passes`` (None: take the preset's).

    Returns
    -------
    dict
        All settings. ``v_init`` is a float in ``[0, 1)`` (units of the threshold θ = 1).

    Raises
    ------
    ValueError
        Unknown preset or calibration, ``v_init`` outside ``[0, 1)`` or NaN, non-positive
        ``timesteps`` / ``calib_images`` / ``calib_passes``, or fewer calibration images than
        the calibration needs (the message names the minimum).
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(map(repr, PRESETS))} "
                         "('paper' reproduces the paper, 'default' is accurate with fewer spikes)")
    s = dict(PRESETS[preset])
    unknown = set(given) - set(s)
    if unknown:
        raise TypeError(f"unknown conversion setting(s) {sorted(unknown)}; known: {sorted(s)}")
    s.update({k: v for k, v in given.items() if v is not None})
    v = s["v_init"]
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) or not 0 <= v < 1:
        raise ValueError(f"v_init is the initial membrane potential in units of the threshold θ and "
                         f"must be a number in [0, 1) (0.5 = θ/2, 0 = the paper), got {v!r}; for "
                         "per-channel or per-neuron values set Population.v_init after conversion")
    s["v_init"] = float(v)
    if s["calibration"] not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {s['calibration']!r}; use one of "
                         f"{', '.join(map(repr, CALIBRATIONS))}")
    s["timesteps"] = _positive_int("timesteps", s["timesteps"],
                                   "the T the network will be run for, used by norm='mmse' and calibration")
    s["calib_images"] = _positive_int("calib_images", s["calib_images"],
                                      "calibration images simulated by the layer-wise calibration")
    s["calib_passes"] = _positive_int("calib_passes", s["calib_passes"],
                                      "simulations of the calibration images, 1-3")
    need = MIN_IMAGES[s["calibration"]]
    if s["calib_images"] < need:
        raise ValueError(f"calibration {s['calibration']!r} needs calib_images >= {need}, got "
                         f"{s['calib_images']}; raise calib_images or use calibration='none'")
    return s
