"""Frequency bands: a validated ``Band`` model and the band sets of the datasets we support."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Band(BaseModel):
    """A named frequency band ``[low, high]`` in Hz.

    How the edges map to FFT bins depends on the DE formula (see
    :func:`signals.de.band_bin_weights`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Band name, e.g. 'alpha'.")
    low: float = Field(ge=0, description="Lower edge in Hz.")
    high: float = Field(gt=0, description="Upper edge in Hz.")

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.high <= self.low:
            raise ValueError(
                f"Band '{self.name}' must have high > low, got low={self.low} Hz, high={self.high} Hz."
            )
        return self


# BCMI's fStart/fEnd for SEED, SEED-IV and SEED-V (docs/design/features.md §1.2). The paper writes them as
# delta 1-3, theta 4-7, alpha 8-13, beta 14-30, gamma 31-50 Hz: the integer-Hz reading of these.
SEED_BANDS: tuple[Band, ...] = (
    Band(name="delta", low=1, high=4),
    Band(name="theta", low=4, high=8),
    Band(name="alpha", low=8, high=14),
    Band(name="beta", low=14, high=31),
    Band(name="gamma", low=31, high=50),
)

# DEAP's preprocessed EEG is band-passed 4-45 Hz, so delta carries no signal and is left out.
DEAP_BANDS: tuple[Band, ...] = (
    Band(name="theta", low=4, high=8),
    Band(name="alpha", low=8, high=14),
    Band(name="beta", low=14, high=31),
    Band(name="gamma", low=31, high=45),
)

# Pupil-diameter bands of the SEED eye-movement table (docs/design/features.md §2.1).
PUPIL_BANDS: tuple[Band, ...] = (
    Band(name="pupil_0.0-0.2", low=0.0, high=0.2),
    Band(name="pupil_0.2-0.4", low=0.2, high=0.4),
    Band(name="pupil_0.4-0.6", low=0.4, high=0.6),
    Band(name="pupil_0.6-1.0", low=0.6, high=1.0),
)

BAND_SETS: dict[str, tuple[Band, ...]] = {"seed": SEED_BANDS, "deap": DEAP_BANDS, "pupil": PUPIL_BANDS}


def as_bands(bands: str | Sequence[Band | Sequence | dict]) -> tuple[Band, ...]:
    """Return ``bands`` as a tuple of :class:`Band`.

    Parameters
    ----------
    bands : str | sequence
        A band-set name (``'seed'``, ``'deap'``, ``'pupil'``), or a sequence whose items are
        :class:`Band`, ``(name, low, high)`` tuples or ``{"name", "low", "high"}`` dicts.

    Returns
    -------
    bands : tuple of Band
    """
    if isinstance(bands, str):
        if bands not in BAND_SETS:
            raise ValueError(
                f"Invalid value for the 'bands' parameter. Allowed band-set names are "
                f"{', '.join(map(repr, BAND_SETS))}, but got {bands!r} instead."
            )
        return BAND_SETS[bands]
    out = []
    for i, b in enumerate(bands):
        if isinstance(b, Band):
            out.append(b)
        elif isinstance(b, dict):
            out.append(Band(**b))
        elif isinstance(b, Sequence) and len(b) == 3:
            out.append(Band(name=b[0], low=b[1], high=b[2]))
        else:
            raise TypeError(f"bands[{i}] must be a Band, a (name, low, high) tuple or a dict, got {b!r}.")
    if not out:
        raise ValueError("bands is empty; give at least one band.")
    names = [b.name for b in out]
    if len(set(names)) != len(names):
        raise ValueError(f"Band names must be unique, got {names}.")
    return tuple(out)
