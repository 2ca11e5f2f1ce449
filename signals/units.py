"""The one unit table: factors between the spellings of physical units that signals arrive in.

:func:`spec_channel_units` says which unit each channel of a feature spec needs and
:func:`channel_factors` gives the factors for a stream's declared units (the live rule). Every input
converts here, once, at ingestion: live LSL streams (their channel metadata), recordings
read for training and replay (EDF/BDF/FIF headers via MNE, XDF stream headers), and ``POST /predict``
signals.

Units
-----
Per channel, the declared unit (stream, file or request) must match the spec's meaning for that channel:

- single-unit specs (EEG ``'uV'``, ECG ``'mV'``): voltages convert between V/mV/µV/nV
  (:func:`~signals.units.unit_scale`); a stream that declares no unit (``'unknown'``) is
  refused, because a wrong voltage scale (1e6 for V vs µV) silently ruins DE features.
- ``'native'`` specs (PPS: each channel in its own unit): any declared unit is accepted as is.
- the eye spec's composite ``'deg,mm'``: gaze rows must be in the params' ``gaze_unit``
  (``'deg'`` / ``'norm'``, common spellings accepted), pupil rows in mm, validity in anything.
  A non-voltage channel whose stream declares no unit (``'unknown'``) is accepted with a
  warning (factor 1): eye trackers rarely describe their channels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ._checks import check_type
from .spec import EyeSpec

logger = logging.getLogger(__name__)

# Unit spellings (casefolded) -> factor to volts. str.casefold maps the micro sign U+00B5 to the
# Greek mu U+03BC, so both spellings of µV land on the same key.
_VOLTS = {
    **dict.fromkeys(("v", "volt", "volts"), 1.0),
    **dict.fromkeys(("mv", "millivolt", "millivolts"), 1e-3),
    **dict.fromkeys(("uv", "\u03bcv", "microvolt", "microvolts"), 1e-6),
    **dict.fromkeys(("nv", "nanovolt", "nanovolts"), 1e-9),
}
# Units with no physical scale: they convert to themselves only.
_DIMENSIONLESS = ("native", "a.u.")


_UNKNOWN_UNIT = "unknown"  # what service.lsl reports when the outlet declares no unit
# Non-voltage unit spellings (casefolded) -> canonical name.
_UNIT_ALIASES = {
    **dict.fromkeys(("deg", "deg.", "degree", "degrees", "\u00b0"), "deg"),
    **dict.fromkeys(("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "mm"),
    **dict.fromkeys(("norm", "normalized", "normalised", "normalized screen", "fraction"), "norm"),
}


def unit_scale(stream_unit: str, spec_unit: str) -> float:
    """Factor turning samples in ``stream_unit`` into ``spec_unit``: ``x_spec = x_stream * factor``.

    Voltages convert between any spellings of V, mV, µV and nV (``'V'``, ``'volts'``,
    ``'mV'``, ``'millivolts'``, ``'uV'``, ``'µV'``, ``'μV'``, ``'microvolts'``, ``'nV'``, …; case
    is ignored). ``'native'`` and ``'a.u.'`` (no physical scale) and any other unit (``'deg'``,
    ``'mm'``, ``'deg,mm'``) convert only to the same unit, with factor 1.

    Parameters
    ----------
    stream_unit : str
        Unit the stream declares for its samples.
    spec_unit : str
        Unit the feature spec requires (``FeatureSpec.unit``).

    Returns
    -------
    factor : float

    Raises
    ------
    TypeError
        A unit is not a string.
    ValueError
        The stream declares no unit, or the units cannot be converted into each other.
    """
    check_type(stream_unit, str, "stream_unit")
    check_type(spec_unit, str, "spec_unit")
    src, dst = stream_unit.strip().casefold(), spec_unit.strip().casefold()
    if not src:
        raise ValueError(
            f"the stream declares no unit but the model needs '{spec_unit}'. Declare the channel unit (an LSL "
            "outlet: desc/channels/channel/unit; a file: its header; POST /predict: signal.unit), e.g. "
            "'microvolts'."
        )
    if src in _VOLTS and dst in _VOLTS:
        return _VOLTS[src] / _VOLTS[dst]
    if _UNIT_ALIASES.get(src, src) == _UNIT_ALIASES.get(dst, dst):  # 'degrees' is 'deg'
        return 1.0
    if src in _DIMENSIONLESS or dst in _DIMENSIONLESS:
        why = "'native' and 'a.u.' have no physical scale, so they convert only to themselves"
    else:
        why = "voltages convert between V, mV, uV/µV and nV (any common spelling); other units must match exactly"
    raise ValueError(
        f"cannot convert the stream's unit '{stream_unit}' to the model's unit '{spec_unit}': {why}. "
        "Send the signal in the model's unit."
    )


def spec_channel_units(spec) -> tuple[str | None, ...]:
    """The unit each of a feature spec's channels must be in; None = any unit is accepted.

    Parameters
    ----------
    spec : FeatureSpec
        A graph's feature spec.

    Returns
    -------
    units : tuple of (str or None), length n_channels
        In the spec's channel order.

    Raises
    ------
    ValueError
        A composite unit (``'a,b'``) on a spec this function does not know how to split.
    """
    n = len(spec.channels)
    unit = spec.unit.strip()
    if unit.casefold() in ("native", "a.u."):
        return (None,) * n
    if "," not in unit:
        return (unit,) * n
    if isinstance(spec, EyeSpec):  # rows gaze_x, gaze_y, pupil_left, pupil_right, validity
        gaze = spec.params.gaze_unit
        return (gaze, gaze, "mm", "mm", None)
    raise ValueError(
        f"the '{spec.modality}' spec declares the composite unit {spec.unit!r}, which the service does not "
        "know how to assign to channels; re-export the bundle with one unit per spec."
    )


def channel_factors(stream_units: Sequence[str], spec) -> np.ndarray:
    """Per-channel factors taking a stream's channels (already in spec order) to the spec's units.

    Parameters
    ----------
    stream_units : sequence of str, length n_channels
        The declared unit of each stream channel, in the spec's channel order (``'unknown'`` when
        the outlet declares none, as :mod:`service.lsl` reports it).
    spec : FeatureSpec
        The feature spec; see the module's *Units* section for the rules.

    Returns
    -------
    factors : array of float64, shape (n_channels,)
        ``x_spec[c] = x_stream[c] * factors[c]``.

    Raises
    ------
    ValueError
        A unit that cannot be converted, or an undeclared unit where a voltage is required; the
        message names the channel.
    """
    if isinstance(stream_units, str):
        raise TypeError(
            f"stream_units must be a sequence of unit names, got the single string {stream_units!r}."
        )
    stream_units = tuple(stream_units)
    expected = spec_channel_units(spec)
    if len(stream_units) != len(expected):
        raise ValueError(
            f"stream_units has {len(stream_units)} entries but the '{spec.modality}' spec has {len(expected)} channels."
        )
    factors = np.ones(len(expected))
    unknown = []
    for i, (have, need) in enumerate(zip(stream_units, expected, strict=True)):
        channel = spec.channels[i]
        if need is None:
            continue
        have_key = have.strip().casefold()
        need_key = need.strip().casefold()
        if have_key in ("", _UNKNOWN_UNIT):
            if need_key in _VOLTS:
                raise ValueError(
                    f"channel {channel!r} declares no unit but the model needs {need!r}; declare it in the "
                    "outlet's metadata (desc/channels/channel/unit, e.g. 'microvolts'): a wrong voltage scale "
                    "would silently corrupt the features."
                )
            unknown.append(channel)
            continue
        try:
            factors[i] = unit_scale(have, need)
        except ValueError as err:
            raise ValueError(f"channel {channel!r}: {err}") from None
    if unknown:
        logger.warning(
            "'%s' channels %s declare no unit; assuming the model's units (%s). Declare units in the outlet's "
            "metadata to have them checked.",
            spec.modality,
            unknown,
            spec.unit,
        )
    return factors


__all__ = ["channel_factors", "spec_channel_units", "unit_scale"]
