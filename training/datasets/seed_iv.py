"""SEED-IV loader: ``eeg_feature_smooth`` + ``eye_feature_smooth`` (and optionally ``eeg_raw_data``).

Layout (docs/design/datasets.md §2)::

    SEED_IV/eeg_feature_smooth/{1,2,3}/{subj}_{YYYYMMDD}.mat   de_LDS{t}, de_movingAve{t}, ... (62, W, 5)
    SEED_IV/eye_feature_smooth/{1,2,3}/{subj}_{YYYYMMDD}.mat   eye_{t} (31, W)
    SEED_IV/eeg_raw_data/{1,2,3}/{subj}_{YYYYMMDD}.mat         {initials}_eeg{t} (62, n), treated as 200 Hz

The folder name is the session; trials 1..24 with labels fixed per session (ReadMe.txt):
0 neutral, 1 sad, 2 fear, 3 happy. Features are 4-s non-overlapping windows; EEG is returned
``(W, 310)`` channel-major (index = channel*5 + band), eye ``(W, 31)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, EmotionDataset, ModalityInfo, Trial
from .constants import SEED_IV_CLASS_NAMES, SEED_IV_EYE_DIM, SEED_IV_N_TRIALS, SEED_IV_SESSION_LABELS
from .seed import (
    _channel_band_to_vectors,
    _de_modality,
    _loadmat,
    _natural,
    _raw_trials,
    _smoothing_of,
    _wrong_folder,
)
from .skeleton import Loader, Source, find_files, require_file

logger = logging.getLogger(__name__)

NAME = "seed_iv"

_SPACING_S = 4.0
# {session}/{subject}_{YYYYMMDD}.mat below eeg_feature_smooth/
_FILE = rf"({'|'.join(map(str, sorted(SEED_IV_SESSION_LABELS)))})/(\d+)_(\d+)\.mat"
_EXPECTED = "'eeg_feature_smooth/{1,2,3}/' (and 'eye_feature_smooth/{1,2,3}/')"


def _root(path: Path) -> Path | None:
    """The folder holding ``eeg_feature_smooth``: ``path`` itself or one of its subfolders."""
    if (path / "eeg_feature_smooth").is_dir():
        return path
    hits = sorted(p.parent for p in path.glob("*/eeg_feature_smooth") if p.is_dir())
    return hits[0] if hits else None


def detect(path: Path) -> bool:
    """Whether ``path`` is a SEED-IV folder (has ``eeg_feature_smooth/``, possibly one level down)."""
    try:
        path = Path(path)
        return path.is_dir() and _root(path) is not None
    except (OSError, TypeError, ValueError):
        return False


def load(
    path: str | Path,
    *,
    modalities: Iterable[str] | None = None,
    subjects: Iterable[str | int] | None = None,
    include_raw: bool = False,
    **options,
) -> EmotionDataset:
    """Read SEED-IV as per-trial feature sequences.

    Parameters
    ----------
    path : str | Path
        The SEED-IV folder (holding ``eeg_feature_smooth/``, or a folder one level above it).
    modalities : list of str | None
        ``'eeg'`` and/or ``'eye'``; None loads both (EEG only, with a warning, if there is no
        ``eye_feature_smooth/``).
    subjects : list of str or int | None
        Subject ids to load; None loads all.
    include_raw : bool
        Attach ``eeg_raw_data`` ``(62, n)`` to each trial, at 200 Hz (what every public loader assumes;
        no official statement) in uV.
    **options
        feature : {'de_LDS', 'de_movingAve'}
            Which released DE to read (default ``'de_LDS'``).

    Returns
    -------
    dataset : EmotionDataset
        ``eeg`` ``(W, 310)`` channel-major and ``eye`` ``(W, 31)`` per trial, 4 s apart; labels
        0 neutral, 1 sad, 2 fear, 3 happy.

    Raises
    ------
    DatasetError
        Not a SEED-IV folder (naming the dataset it looks like), missing files or keys, unexpected shapes,
        or EEG and eye window counts that differ.
    """
    return _LOADER.load(path, modalities=modalities, subjects=subjects, include_raw=include_raw, **options)


class _SeedIV(Loader):
    """SEED-IV's folders: one per feature kind, one session folder each, one .mat per subject and date."""

    name = NAME
    title = "SEED-IV"
    options = {"feature": ("de_LDS", ("de_LDS", "de_movingAve"))}

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        root = _root(path) if path.is_dir() else None
        if root is None:
            raise _wrong_folder(path, "SEED-IV", _EXPECTED)
        eeg_dir, eye_dir, raw_dir = (
            root / "eeg_feature_smooth",
            root / "eye_feature_smooth",
            root / "eeg_raw_data",
        )
        files: dict[str, dict[int, Path]] = {}
        expected = "session folders 1, 2, 3 with '{subject}_{YYYYMMDD}.mat' files"
        for match in find_files(eeg_dir, _FILE, expected, glob="*/*.mat"):
            files.setdefault(match.group(2), {})[int(match.group(1))] = eeg_dir / match.string
        has_eye = eye_dir.is_dir()
        return Source(
            root=root,
            subjects={s: dict(sorted(files[s].items())) for s in sorted(files, key=_natural)},
            modalities=("eeg", "eye") if has_eye else ("eeg",),
            absent={} if has_eye else {"eye": f"{eye_dir} is missing; it holds the SEED-IV eye features"},
            no_raw=None
            if raw_dir.is_dir()
            else f"include_raw=True but {raw_dir} does not exist; it holds the SEED-IV raw EEG.",
            class_names=SEED_IV_CLASS_NAMES,
            context=(eye_dir, raw_dir),
        )

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        feature = options["feature"]
        eye_dir, raw_dir = source.context
        eeg_keys = [f"{feature}{t}" for t in range(1, SEED_IV_N_TRIALS + 1)]
        eye_keys = [f"eye_{t}" for t in range(1, SEED_IV_N_TRIALS + 1)]
        trials = []
        for session, f in source.subjects[subject].items():
            eeg_mat = _loadmat(f, eeg_keys) if "eeg" in modalities else None
            eye_file = eye_dir / str(session) / f.name
            if "eye" in modalities:
                require_file(eye_file, f"it holds the eye features paired with {f}")
            eye_mat = _loadmat(eye_file, eye_keys) if "eye" in modalities else None
            raw = _raw_trials(raw_dir / str(session) / f.name, SEED_IV_N_TRIALS) if include_raw else {}
            for t in range(1, SEED_IV_N_TRIALS + 1):
                feats = {}
                if eeg_mat is not None:
                    feats["eeg"] = _channel_band_to_vectors(eeg_mat[f"{feature}{t}"], f"{f} '{feature}{t}'")
                if eye_mat is not None:
                    eye = np.asarray(eye_mat[f"eye_{t}"], dtype=np.float64)
                    if eye.ndim != 2 or eye.shape[0] != SEED_IV_EYE_DIM:
                        raise DatasetError(
                            f"{eye_file} 'eye_{t}' has shape {eye.shape}; expected ({SEED_IV_EYE_DIM}, n_windows)."
                        )
                    feats["eye"] = np.ascontiguousarray(eye.T)
                if "eeg" in feats and "eye" in feats and feats["eeg"].shape[0] != feats["eye"].shape[0]:
                    raise DatasetError(
                        f"subject {subject} session {session} trial {t}: EEG {f} '{feature}{t}' has "
                        f"{feats['eeg'].shape[0]} windows but eye {eye_file} 'eye_{t}' has "
                        f"{feats['eye'].shape[0]}; they must pair 1:1."
                    )
                trials.append(
                    Trial(
                        subject=subject,
                        session=session,
                        trial=t,
                        label=SEED_IV_SESSION_LABELS[session][t - 1],
                        ratings={},
                        features=feats,
                        raw={"eeg": raw[t]} if include_raw else {},
                    )
                )
        return trials

    def infos(self, source, modalities, specs, options) -> dict[str, ModalityInfo]:
        feature = options["feature"]
        return {
            "eeg": _de_modality(
                _SPACING_S,
                _smoothing_of(feature),
                f"released {feature} (SEED-IV eeg_feature_smooth), 4-s windows, 62 channels x 5 bands "
                "(delta..gamma), channel-major: index = channel*5 + band",
            ),
            "eye": ModalityInfo(
                dim=SEED_IV_EYE_DIM,
                spacing_s=_SPACING_S,
                description="released eye-movement features (SEED-IV eye_feature_smooth, eye_{t}), 31-d, 4-s "
                "windows; per-index meaning undocumented",
            ),
        }


_LOADER = _SeedIV()
