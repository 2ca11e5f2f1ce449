"""The one unit table: factors between the spellings of physical units that signals arrive in.

Every input converts here, once, at ingestion: live LSL streams (their channel metadata), recordings
read for training and replay (EDF/BDF/FIF headers via MNE, XDF stream headers), and ``POST /predict``
signals.
"""

from __future__ import annotations

from ._checks import check_type

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
            f"the stream declares no unit but the model needs '{spec_unit}'. Declare the channel unit in "
            "the outlet's metadata (desc/channels/channel/unit), e.g. 'microvolts'."
        )
    if src in _VOLTS and dst in _VOLTS:
        return _VOLTS[src] / _VOLTS[dst]
    if src == dst:
        return 1.0
    if src in _DIMENSIONLESS or dst in _DIMENSIONLESS:
        why = "'native' and 'a.u.' have no physical scale, so they convert only to themselves"
    else:
        why = "voltages convert between V, mV, uV/µV and nV (any common spelling); other units must match exactly"
    raise ValueError(
        f"cannot convert the stream's unit '{stream_unit}' to the model's unit '{spec_unit}': {why}. "
        "Send the signal in the model's unit."
    )


__all__ = ["unit_scale"]
