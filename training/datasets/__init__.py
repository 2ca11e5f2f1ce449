"""Dataset loaders behind one registry: detect what a folder holds and load it as an EmotionDataset.

Every loader module (``training.datasets.<kind>``) exposes ``NAME``, ``detect(path) -> bool`` and
``load(path, *, modalities=None, subjects=None, include_raw=False, **options) -> EmotionDataset``;
those that compute their features from raw signals (:data:`COMPUTED`) also take ``specs`` and
``spec_overrides`` (:mod:`training.datasets.spec_options`). Each fills the one skeleton of
:mod:`training.datasets.skeleton` (:class:`~training.datasets.skeleton.Loader`): argument checks,
subject and modality selection, spec checks and logging are the same for every kind.
Loader modules are imported only when needed (:func:`loader`), so importing this package stays
cheap and a broken loader does not break the others. A loader that fails to import is a bug: the
error propagates, it is never skipped silently.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .base import DatasetError, EmotionDataset, ModalityInfo, RawSignal, Trial
from .spec_options import override_spec

logger = logging.getLogger(__name__)

#: Dataset kind -> module implementing it (imported lazily by :func:`loader`).
LOADERS: dict[str, str] = {
    "seed": "training.datasets.seed",
    "seed_iv": "training.datasets.seed_iv",
    "seed_v": "training.datasets.seed_v",
    "deap": "training.datasets.deap",
    "dreamer": "training.datasets.dreamer",
    "recording": "training.datasets.recordings",
    "synthetic": "training.datasets.synthetic",
}

#: Kinds whose loaders compute features from raw signals (and so take feature specs).
COMPUTED: frozenset[str] = frozenset({"deap", "dreamer", "recording", "synthetic"})

#: What a path must look like for each kind (quoted when detection fails).
EXPECTS: dict[str, str] = {
    "seed": "a SEED folder holding ExtractedFeatures/ (or SEED_EEG/ExtractedFeatures_1s), or SEED_Multimodal "
    "with eeg_used_1s/ or eeg_used_4s/ up to 4 levels down",
    "seed_iv": "a SEED-IV folder holding eeg_feature_smooth/{1,2,3}/ (possibly one level down)",
    "seed_v": "a SEED-V folder holding EEG_DE_features/ (possibly one level down)",
    "deap": "a DEAP data_preprocessed_python/ folder of s01.dat ... s32.dat, or its parent",
    "dreamer": "the DREAMER.mat file or a folder holding it",
    "recording": "one raw recording file (.edf, .bdf, .fif, .fif.gz, .xdf, .xdfz)",
    "synthetic": "a .json file holding a synthetic.SyntheticConfig",
}


def known_kinds() -> list[str]:
    """Dataset kinds the registry knows, in detection order."""
    return list(LOADERS)


def loader(kind: str) -> ModuleType:
    """The loader module of ``kind`` (imported on first use).

    Raises
    ------
    DatasetError
        When ``kind`` is not a known dataset kind.
    """
    if not isinstance(kind, str) or kind not in LOADERS:
        raise DatasetError(f"unknown dataset kind {kind!r}; choose one of {', '.join(LOADERS)}.")
    module = importlib.import_module(LOADERS[kind])
    if getattr(module, "NAME", None) != kind:
        raise RuntimeError(
            f"loader module {LOADERS[kind]} declares NAME={getattr(module, 'NAME', None)!r}, the registry "
            f"expects {kind!r}; fix the module or training.datasets.LOADERS."
        )
    return module


def _existing(path: str | Path) -> Path:
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be an instance of str, Path, got {type(path).__name__} instead.")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a dataset folder or file.")
    return path


def detect_dataset(path: str | Path) -> str:
    """Which dataset kind ``path`` holds.

    Parameters
    ----------
    path : str | Path
        A dataset folder or file.

    Returns
    -------
    str
        A key of :data:`LOADERS`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DatasetError
        When no kind, or more than one, recognises ``path``; the message lists what each kind
        expects (or the candidates) and says to pass the kind explicitly.
    """
    path = _existing(path)
    matches = [kind for kind in LOADERS if loader(kind).detect(path)]
    if len(matches) == 1:
        logger.debug("%s detected as %s", path, matches[0])
        return matches[0]
    if not matches:
        expected = "; ".join(f"{kind}: {EXPECTS[kind]}" for kind in LOADERS)
        raise DatasetError(
            f"{path} is not a dataset folder or file this package recognises. Expected {expected}."
        )
    raise DatasetError(
        f"{path} looks like several dataset kinds ({', '.join(matches)}); pass the kind explicitly "
        "(--dataset NAME, or kind= in load_dataset)."
    )


def _takes(module: ModuleType, parameter: str) -> bool:
    return parameter in inspect.signature(module.load).parameters


def load_dataset(
    path: str | Path,
    kind: str | None = None,
    *,
    specs: Mapping[str, Any] | None = None,
    spec_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> EmotionDataset:
    """Load ``path`` as an :class:`EmotionDataset`.

    Parameters
    ----------
    path : str | Path
        A dataset folder or file.
    kind : str | None
        Dataset kind (a key of :data:`LOADERS`); None detects it with :func:`detect_dataset`.
    specs : dict of str to FeatureSpec | None
        Whole feature spec per modality, for the loaders that compute their features (deap,
        dreamer, synthetic, recording). Loaders of released features (seed, seed_iv, seed_v)
        refuse any.
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec, e.g. ``{'eeg': {'window_s': 4.0, 'hop_s': 1.0}}``
        (:func:`~training.datasets.spec_options.override_spec`). A modality given in ``specs`` is
        overridden here; any other goes to the loader, which applies it to its default spec.
    **options
        Passed to the loader's ``load`` (``modalities``, ``subjects``, ``include_raw`` and
        loader-specific options).

    Returns
    -------
    EmotionDataset

    Raises
    ------
    DatasetError
        ``specs`` or ``spec_overrides`` for a loader of released features, or overrides of a
        default spec for a loader that takes whole specs only (the message says what to pass).
    """
    path = _existing(path)
    if kind is None:
        kind = detect_dataset(path)
    module = loader(kind)
    specs = dict(specs or {})
    overrides = {m: dict(u) for m, u in (spec_overrides or {}).items() if u}
    if (specs or overrides) and kind not in COMPUTED:
        raise DatasetError(
            f"{kind} features are released features read from the dataset files, not computed from raw "
            f"signals, so a feature spec cannot change them (got a spec or window/hop for "
            f"{sorted({*specs, *overrides})}). Load {kind} without --spec/--window-s/--hop-s; the loaders "
            f"that compute features ({', '.join(sorted(COMPUTED))}) take them."
        )
    for m in [m for m in overrides if m in specs]:
        specs[m] = override_spec(specs[m], overrides.pop(m), f"the '{m}' spec")
    if overrides and not _takes(module, "spec_overrides"):
        raise DatasetError(
            f"the {kind} loader takes whole specs only, not overrides of its default spec "
            f"({overrides}); write the spec of {sorted(overrides)} as JSON (with its window_s and hop_s) "
            "and pass it with --spec MODALITY=FILE (specs= in load_dataset)."
        )
    if specs:
        options["specs"] = specs
    if overrides:
        options["spec_overrides"] = overrides
    dataset = module.load(path, **options)
    logger.info(
        "loaded %s from %s: %d subjects, %d trials", kind, path, len(dataset.subjects), len(dataset.trials)
    )
    return dataset


__all__ = [
    "COMPUTED",
    "EXPECTS",
    "LOADERS",
    "DatasetError",
    "EmotionDataset",
    "ModalityInfo",
    "RawSignal",
    "Trial",
    "detect_dataset",
    "known_kinds",
    "load_dataset",
    "loader",
]
