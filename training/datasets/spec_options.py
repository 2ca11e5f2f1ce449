"""Feature-spec options of the loaders that compute features: whole specs and per-field overrides.

A loader that computes its features from raw signals (DEAP, DREAMER, synthetic, recordings) has a
default :class:`~signals.spec.FeatureSpec` per modality. A caller changes it in two ways:

- ``specs={'eeg': DESpec(...)}`` replaces the whole spec of a modality;
- ``spec_overrides={'eeg': {'window_s': 4.0, 'hop_s': 1.0}}`` replaces fields of the spec the
  modality would otherwise get (the one in ``specs``, else the loader's default), validated like
  any spec (the window and hop must be whole numbers of samples).

Loaders of released features (SEED, SEED-IV, SEED-V) take neither: their features are read, not
computed, so no spec can change them (:func:`training.datasets.load_dataset` refuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec

from .base import DatasetError

AnySpec = DESpec | EyeSpec | HrvSpec | PpsSpec
_SPEC_TYPES = (DESpec, EyeSpec, HrvSpec, PpsSpec)


def override_spec(spec: AnySpec, updates: Mapping[str, Any], where: str = "spec") -> AnySpec:
    """A copy of ``spec`` with the fields in ``updates`` replaced, validated.

    Parameters
    ----------
    spec : FeatureSpec
    updates : dict of str to value
        Field name -> new value (e.g. ``{'window_s': 4.0}``).
    where : str
        What the spec is, for the error message (e.g. ``"the 'eeg' spec"``).

    Returns
    -------
    FeatureSpec
        Of the same kind as ``spec``.

    Raises
    ------
    ValueError
        An unknown field, or a value the spec refuses (e.g. a window that is not a whole number of
        samples at the spec's ``sfreq``); the message names the field and the value.
    """
    if not isinstance(spec, _SPEC_TYPES):
        raise TypeError(f"{where} must be a FeatureSpec, got {type(spec).__name__}.")
    if not isinstance(updates, Mapping):
        raise TypeError(
            f"the overrides of {where} must be a dict of field -> value, got {type(updates).__name__}."
        )
    unknown = sorted(set(updates) - set(type(spec).model_fields))
    if unknown:
        raise ValueError(
            f"{where} ({spec.kind}) has no field(s) {unknown}; it has {sorted(type(spec).model_fields)}."
        )
    try:
        return type(spec).model_validate({**spec.model_dump(), **dict(updates)})
    except ValidationError as err:
        changes = ", ".join(f"{k}={v!r}" for k, v in updates.items())
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ValueError(f"{where} with {changes} is not a valid feature spec: {problems}") from None


def resolve_specs(
    defaults: Mapping[str, AnySpec],
    specs: Mapping[str, AnySpec] | None,
    spec_overrides: Mapping[str, Mapping[str, Any]] | None,
    wanted: tuple[str, ...],
    dataset: str,
) -> dict[str, AnySpec]:
    """The spec of each wanted modality: the default, replaced by ``specs``, then overridden.

    Parameters
    ----------
    defaults : dict of str to FeatureSpec
        The loader's default spec of every modality it has.
    specs : dict of str to FeatureSpec | None
        Whole specs replacing defaults.
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec (:func:`override_spec`).
    wanted : tuple of str
        The modalities being loaded.
    dataset : str
        Dataset name for messages.

    Returns
    -------
    dict of str to FeatureSpec
        One per wanted modality, in ``wanted`` order.

    Raises
    ------
    DatasetError
        ``specs`` or ``spec_overrides`` name a modality the dataset does not have.
    """
    specs, overrides = dict(specs or {}), dict(spec_overrides or {})
    for name, given in (("specs", specs), ("spec_overrides", overrides)):
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise DatasetError(f"{name} has modalities {unknown}; {dataset} has {list(defaults)}.")
    for m, spec in specs.items():
        if not isinstance(spec, _SPEC_TYPES):
            raise TypeError(f"specs['{m}'] must be a FeatureSpec, got {type(spec).__name__}.")
    chosen = {m: specs.get(m, defaults[m]) for m in wanted}
    for m, updates in overrides.items():
        if m in chosen:
            chosen[m] = override_spec(chosen[m], updates, f"the '{m}' spec")
    return chosen


__all__ = ["AnySpec", "override_spec", "resolve_specs"]
