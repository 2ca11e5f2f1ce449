"""SEED-V loader: ``EEG_DE_features/{subj}_123.npz`` + ``Eye_movement_features/{subj}_123.npz``.

Layout (docs/design/datasets.md §3)::

    SEED-V/EEG_DE_features/{subj}_123.npz        'data', 'label': pickled dicts stored as bytes
    SEED-V/Eye_movement_features/{subj}_123.npz  same container, data (W_k, 33)

Both dicts have int keys ``k = 0..44``: session ``k // 15 + 1``, trial ``k % 15 + 1``. EEG data are
``(W_k, 310)`` per trial, channel-major (index = channel*5 + band, TorchEEG's reading; the official
notebook was not available), one row per 4-s window; labels are per-window arrays of the trial's
class: 0 disgust, 1 fear, 2 sad, 3 neutral, 4 happy. The pickles are decoded with the restricted
unpickler of :mod:`training.datasets.safe_pickle`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from signals.spec import SmoothingSpec

from .base import DatasetError, EmotionDataset, ModalityInfo, Trial
from .constants import (
    SEED_V_CLASS_NAMES,
    SEED_V_EYE_DIM,
    SEED_V_N_SESSIONS,
    SEED_V_SESSION_LABELS,
    SEED_V_TRIALS_PER_SESSION,
)
from .safe_pickle import npz_keys, safe_load_npz, safe_loads
from .seed import (
    _de_modality,
    _integral_labels,
    _natural,
    _wrong_folder,
)
from .skeleton import Loader, Source, find_files, require_file

logger = logging.getLogger(__name__)

NAME = "seed_v"

_SPACING_S = 4.0
_EEG_DIM = 310
_FILE = r"(\d+)_123\.npz"
_EXPECTED = "'EEG_DE_features/{subject}_123.npz' (and 'Eye_movement_features/')"
_N_KEYS = SEED_V_N_SESSIONS * SEED_V_TRIALS_PER_SESSION


def _root(path: Path) -> Path | None:
    """The folder holding ``EEG_DE_features``: ``path`` itself or one of its subfolders."""
    if (path / "EEG_DE_features").is_dir():
        return path
    hits = sorted(p.parent for p in path.glob("*/EEG_DE_features") if p.is_dir())
    return hits[0] if hits else None


def detect(path: Path) -> bool:
    """Whether ``path`` is a SEED-V folder (has ``EEG_DE_features/``, possibly one level down)."""
    try:
        path = Path(path)
        return path.is_dir() and _root(path) is not None
    except (OSError, TypeError, ValueError):
        return False


def _read_container(path: Path, dim: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """``data`` and ``label`` dicts of one SEED-V npz, validated: keys 0..44, data (W_k, dim), labels (W_k,)."""
    keys = npz_keys(path)
    if not {"data", "label"} <= set(keys):
        raise DatasetError(f"{path} has keys {keys}; expected 'data' and 'label' (pickled dicts).")
    out = []
    for key in ("data", "label"):
        source = f"{path}['{key}']"
        stored = safe_load_npz(path, key)
        if stored.shape != () or stored.dtype.kind not in "SO":
            raise DatasetError(
                f"{source} is a {stored.dtype} array of shape {stored.shape}; expected a pickled dict."
            )
        obj = safe_loads(stored.item(), source=source) if stored.dtype.kind == "S" else stored.item()
        if not isinstance(obj, dict) or list(obj) != list(range(_N_KEYS)) and set(obj) != set(range(_N_KEYS)):
            got = (
                list(obj)[:5] + (["..."] if len(obj) > 5 else [])
                if isinstance(obj, dict)
                else type(obj).__name__
            )
            n = len(obj) if isinstance(obj, dict) else 0
            raise DatasetError(
                f"{source} should be a dict with int keys 0..{_N_KEYS - 1} (3 sessions x 15 trials); "
                f"got {n} keys {got}."
            )
        out.append(obj)
    data, labels = out
    for k in range(_N_KEYS):
        d = np.asarray(data[k])
        if d.ndim != 2 or d.shape[1] != dim:
            raise DatasetError(f"{path}['data'][{k}] has shape {d.shape}; expected (n_windows, {dim}).")
        lab = _integral_labels(labels[k], f"{path}['label'][{k}]")
        if lab.size != d.shape[0]:
            raise DatasetError(
                f"{path}['label'][{k}] has {lab.size} entries but ['data'][{k}] has {d.shape[0]} rows."
            )
        if lab.size and np.any(lab != lab[0]):
            raise DatasetError(
                f"{path}['label'][{k}] holds several classes {np.unique(lab).tolist()}; expected one."
            )
        data[k], labels[k] = np.ascontiguousarray(d, dtype=np.float64), lab
    return data, labels


def load(
    path: str | Path,
    *,
    modalities: Iterable[str] | None = None,
    subjects: Iterable[str | int] | None = None,
    include_raw: bool = False,
    **options,
) -> EmotionDataset:
    """Read SEED-V as per-trial feature sequences.

    Parameters
    ----------
    path : str | Path
        The SEED-V folder (holding ``EEG_DE_features/``, or a folder one level above it).
    modalities : list of str | None
        ``'eeg'`` and/or ``'eye'``; None loads both (EEG only, with a warning, if there is no
        ``Eye_movement_features/``).
    subjects : list of str or int | None
        Subject ids to load; None loads all.
    include_raw : bool
        Not supported: SEED-V's raw EEG is Neuroscan ``.cnt`` at 1000 Hz (``EEG_raw/``); True raises.
    **options
        None yet (SEED-V releases one DE feature set).

    Returns
    -------
    dataset : EmotionDataset
        ``eeg`` ``(W, 310)`` channel-major and ``eye`` ``(W, 33)``, 4 s apart; labels 0 disgust, 1 fear,
        2 sad, 3 neutral, 4 happy (taken from the files' label dicts).

    Raises
    ------
    DatasetError
        Not a SEED-V folder (naming the dataset it looks like), missing files, unexpected keys or shapes,
        or EEG and eye window counts that differ.
    """
    return _LOADER.load(path, modalities=modalities, subjects=subjects, include_raw=include_raw, **options)


class _SeedV(Loader):
    """SEED-V's two folders of ``{subject}_123.npz`` containers (EEG DE and eye features)."""

    name = NAME
    title = "SEED-V"

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        root = _root(path) if path.is_dir() else None
        if root is None:
            raise _wrong_folder(path, "SEED-V", _EXPECTED)
        eeg_dir, eye_dir = root / "EEG_DE_features", root / "Eye_movement_features"
        files = {
            m.group(1): eeg_dir / m.string for m in find_files(eeg_dir, _FILE, "'{subject}_123.npz' files")
        }
        has_eye = eye_dir.is_dir()
        return Source(
            root=root,
            subjects={s: files[s] for s in sorted(files, key=_natural)},
            modalities=("eeg", "eye") if has_eye else ("eeg",),
            absent={} if has_eye else {"eye": f"{eye_dir} is missing; it holds the SEED-V eye features"},
            no_raw=f"include_raw=True is not supported for SEED-V ({root}): its raw EEG is Neuroscan .cnt at "
            "1000 Hz (EEG_raw/), which this loader does not read. Use include_raw=False.",
            class_names=SEED_V_CLASS_NAMES,
            context=eye_dir,
        )

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        f = source.subjects[subject]
        feats_by_modality = {}
        labels = None
        if "eeg" in modalities:
            feats_by_modality["eeg"], labels = _read_container(f, _EEG_DIM)
        eye_file = source.context / f.name
        if "eye" in modalities:
            require_file(eye_file, f"it holds the eye features paired with {f}")
            feats_by_modality["eye"], eye_labels = _read_container(eye_file, SEED_V_EYE_DIM)
            labels = labels if labels is not None else eye_labels
        trials = []
        for k in range(_N_KEYS):
            session, t = k // SEED_V_TRIALS_PER_SESSION + 1, k % SEED_V_TRIALS_PER_SESSION + 1
            feats = {m: v[k] for m, v in feats_by_modality.items()}
            if len(feats) == 2 and feats["eeg"].shape[0] != feats["eye"].shape[0]:
                raise DatasetError(
                    f"subject {subject} session {session} trial {t}: EEG {f} ['data'][{k}] has "
                    f"{feats['eeg'].shape[0]} windows but eye {eye_file} ['data'][{k}] has "
                    f"{feats['eye'].shape[0]}; they must pair 1:1."
                )
            label = int(labels[k][0]) if labels[k].size else SEED_V_SESSION_LABELS[session][t - 1]
            if not 0 <= label < len(SEED_V_CLASS_NAMES):
                raise DatasetError(f"{f}['label'][{k}] is {label}; SEED-V classes are 0..4.")
            trials.append(
                Trial(subject=subject, session=session, trial=t, label=label, ratings={}, features=feats)
            )
        return trials

    def read(self, source, subjects, modalities, specs, include_raw, options) -> list[Trial]:
        trials = super().read(source, subjects, modalities, specs, include_raw, options)
        mismatched = [t.key for t in trials if t.label != SEED_V_SESSION_LABELS[t.session][t.trial - 1]]
        if mismatched:
            logger.warning(
                "SEED-V: labels of %d trials differ from the published session lists (first: %s); using the "
                "files' labels.",
                len(mismatched),
                mismatched[:3],
            )
        return trials

    def infos(self, source, modalities, specs, options) -> dict[str, ModalityInfo]:
        return {
            "eeg": _de_modality(
                _SPACING_S,
                SmoothingSpec(method="none"),  # the smoothing of SEED-V's released DE is not documented
                "released DE (SEED-V EEG_DE_features), 4-s windows, smoothing unknown; 62 channels x 5 bands "
                "(delta..gamma), channel-major: index = channel*5 + band (TorchEEG's reading of the 310 columns)",
            ),
            "eye": ModalityInfo(
                dim=SEED_V_EYE_DIM,
                spacing_s=_SPACING_S,
                description="released eye-movement features (SEED-V Eye_movement_features), 33-d, 4-s windows; "
                "per-index meaning undocumented",
            ),
        }


_LOADER = _SeedV()
