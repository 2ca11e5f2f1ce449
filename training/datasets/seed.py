"""SEED loader: the classic release (ExtractedFeatures, Preprocessed_EEG) and SEED_Multimodal (EEG + eye).

Two releases exist (docs/design/datasets.md §1.1):

classic::

    SEED/ExtractedFeatures/label.mat, {subj}_{YYYYMMDD}.mat    keys de_LDS{t} ... (62, W, 5), 1-s windows
    SEED/Preprocessed_EEG/{subj}_{YYYYMMDD}.mat                keys {initials}_eeg{t} (62, n) @ 200 Hz, uV

(the re-packaged release ``SEED_EEG/ExtractedFeatures_1s`` / ``ExtractedFeatures_4s`` is read the same way,
assuming the same keys), giving modality ``eeg`` only;

SEED_Multimodal (what M2S uses)::

    .../02-EEG-DE-feature/eeg_used_{1s,4s}/{subj}_{sess}.npz         pickled per-band dicts, 9:6 split
    .../04-Eye-tracking-feature/eye_tracking_feature/{subj}_{sess}   extension-less pickle, (N, 33)

giving modalities ``eeg`` and ``eye``. The EEG vector is returned channel-major (index = channel*5 + band)
in both layouts, the layout of :class:`signals.spec.DESpec` and of M2S's attention layer (§7.2 quirk).

Sessions and trials are 1-based; classic sessions are numbered by date order of a subject's files.
Labels are ``label.mat`` + 1: 0 negative, 1 neutral, 2 positive.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from signals.bands import SEED_BANDS
from signals.spec import DESpec, SmoothingSpec

from .base import DatasetError, EmotionDataset, ModalityInfo, RawSignal, Trial
from .constants import (
    DATASET_MARKERS,
    SEED_BAND_NAMES,
    SEED_CHANNELS,
    SEED_CLASS_NAMES,
    SEED_EYE_DIM,
    SEED_MULTIMODAL_TEST_TRIALS,
    SEED_MULTIMODAL_TRAIN_TRIALS,
    SEED_N_TRIALS,
    SEED_SFREQ,
    SEED_TRIAL_LABELS_RAW,
)
from .safe_pickle import npz_keys, safe_load, safe_load_npz, safe_loads
from .skeleton import Loader, Source, find_files, require_file

logger = logging.getLogger(__name__)

NAME = "seed"

_FEATURES = ("de_LDS", "de_movingAve")
_WINDOWS = {"1s": 1.0, "4s": 4.0}
_LAYOUTS = ("classic", "multimodal")
_CLASSIC_FILE = r"(\d+)_(\d+)\.mat"
_MULTIMODAL_FILE = r"(\d+)_(\d+)\.npz"
_RAW_KEY = re.compile(r"^(?:.*_)?eeg(\d+)$")


# --------------------------------------------------------------------------------------------------------
# Helpers shared by the SEED-family loaders (seed_iv.py and seed_v.py import them).


def _guess_dataset(path: Path) -> str | None:
    """Which dataset a folder looks like from its top-level names (None if no marker is found)."""
    try:
        names = {p.name for p in path.iterdir()} if path.is_dir() else set()
        names |= {p.name for child in path.iterdir() if child.is_dir() for p in child.iterdir()}
    except OSError:
        return None
    for dataset, markers in DATASET_MARKERS.items():
        if names & set(markers):
            return dataset
    return None


def _wrong_folder(path: Path, loader: str, expected: str) -> DatasetError:
    """The error for a folder that is not a ``loader`` dataset root, saying what it looks like instead."""
    if not path.exists():
        return DatasetError(f"{path} does not exist; pass the {loader} dataset folder ({expected}).")
    if not path.is_dir():
        return DatasetError(f"{path} is not a folder; pass the {loader} dataset folder ({expected}).")
    guess = _guess_dataset(path)
    hint = ""
    if guess is not None and guess != loader:
        kind = guess.lower().replace("-", "_")
        hint = f" It looks like a {guess} folder; load it with the '{kind}' loader (kind='{kind}')."
    return DatasetError(f"{path} is not a {loader} folder: expected {expected}.{hint}")


def _find_dir(root: Path, name: str, max_depth: int = 3) -> Path | None:
    """The first folder called ``name`` at ``root`` or up to ``max_depth`` levels below it (sorted order)."""
    for depth in range(max_depth + 1):
        pattern = "/".join(["*"] * depth + [name])
        hits = sorted(p for p in root.glob(pattern) if p.is_dir())
        if hits:
            return hits[0]
    return None


def _natural(s: str):
    return (0, int(s)) if s.isdigit() else (1, s)


def _loadmat(path: Path, keys: list[str] | None = None) -> dict:
    """``scipy.io.loadmat`` of ``keys`` (None: all); missing keys or unreadable files raise DatasetError."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing.")
    try:
        mat = scipy.io.loadmat(path, variable_names=keys)
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on a bad file
        raise DatasetError(
            f"{path} is not a readable MATLAB .mat file ({type(err).__name__}: {err})."
        ) from err
    if keys is not None:
        missing = [k for k in keys if k not in mat]
        if missing:
            present = [k for k in mat if not k.startswith("__")]
            raise DatasetError(
                f"{path} lacks key(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                f"found {len(present)} of the {len(keys)} expected."
            )
    return mat


def _channel_band_to_vectors(array: np.ndarray, source: str, n_bands: int = 5) -> np.ndarray:
    """Released ``(62, W, n_bands)`` DE -> ``(W, 62 * n_bands)``, channel-major (index = ch*n_bands + band)."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[0] != len(SEED_CHANNELS) or array.shape[2] != n_bands:
        raise DatasetError(f"{source} has shape {array.shape}; expected (62, n_windows, {n_bands}).")
    return np.ascontiguousarray(array.transpose(1, 0, 2).reshape(array.shape[1], -1), dtype=np.float64)


def _de_modality(spacing_s: float, smoothing: SmoothingSpec, description: str) -> ModalityInfo:
    """ModalityInfo of released SEED-family DE features (310-d, channel-major)."""
    spec = DESpec(
        modality="eeg",
        sfreq=SEED_SFREQ,
        channels=SEED_CHANNELS,
        window_s=spacing_s,
        hop_s=spacing_s,
        bands=SEED_BANDS,
        formula="bcmi",
        smoothing=smoothing,
    )
    return ModalityInfo(
        dim=spec.n_features,
        spacing_s=spacing_s,
        description=description,
        spec=spec,
        # released values: offline smoothing and/or unknown BCMI parameters; not matched live
        reproducible_online=False,
        feature_names=tuple(spec.feature_names()),
    )


def _smoothing_of(feature: str) -> SmoothingSpec:
    if feature.endswith("LDS"):
        return SmoothingSpec(method="lds")
    # BCMI's moving-average length is not published (docs/design/features.md §1.3); 5 is our assumption
    return SmoothingSpec(method="moving_average", n_steps=5)


def _raw_trials(path: Path, n_trials: int) -> dict[int, RawSignal]:
    """Raw ``{prefix}_eeg{t}`` arrays of a SEED/SEED-IV .mat, by trial number (keys parsed by regex)."""
    mat = _loadmat(path)
    by_trial: dict[int, np.ndarray] = {}
    for key, value in mat.items():
        match = _RAW_KEY.match(key)
        if match and not key.startswith("__"):
            by_trial[int(match.group(1))] = value
    missing = [t for t in range(1, n_trials + 1) if t not in by_trial]
    if missing:
        raise DatasetError(
            f"{path} has no raw EEG for trial(s) {missing} (keys like 'xx_eeg{missing[0]}'); "
            f"found keys {sorted(k for k in mat if not k.startswith('__'))[:6]}."
        )
    out = {}
    for t in range(1, n_trials + 1):
        data = np.asarray(by_trial[t], dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != len(SEED_CHANNELS):
            raise DatasetError(f"{path} trial {t} raw EEG has shape {data.shape}; expected (62, n_samples).")
        out[t] = RawSignal(data=data, sfreq=SEED_SFREQ, channels=SEED_CHANNELS, unit="uV")
    return out


# --------------------------------------------------------------------------------------------------------
# Layout detection


def _classic_dir(root: Path, window: str | None) -> Path | None:
    """The ExtractedFeatures folder of a classic SEED root (or of its SEED_EEG subfolder)."""
    for base in (root, root / "SEED_EEG"):
        names = ["ExtractedFeatures", "ExtractedFeatures_1s"] if window in (None, "1s") else []
        names += ["ExtractedFeatures_4s"] if window in (None, "4s") else []
        for name in names:
            if (base / name).is_dir():
                return base / name
    return None


def _multimodal_dirs(root: Path, window: str) -> tuple[Path, Path | None] | None:
    """(eeg_used_{window} folder, eye_tracking_feature folder or None), searched up to 4 levels down."""
    eeg = _find_dir(root, f"eeg_used_{window}", max_depth=4)
    if eeg is None:
        return None
    eye = _find_dir(root, "eye_tracking_feature", max_depth=4)
    return eeg, eye


def detect(path: Path) -> bool:
    """Whether ``path`` is a SEED folder (classic or SEED_Multimodal); cheap, never raises."""
    try:
        path = Path(path)
        if not path.is_dir():
            return False
        return _classic_dir(path, None) is not None or any(
            _find_dir(path, f"eeg_used_{w}", max_depth=4) is not None for w in _WINDOWS
        )
    except (OSError, TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------------
# Loading


def load(
    path: str | Path,
    *,
    modalities: Iterable[str] | None = None,
    subjects: Iterable[str | int] | None = None,
    include_raw: bool = False,
    **options,
) -> EmotionDataset:
    """Read SEED as per-trial feature sequences.

    Parameters
    ----------
    path : str | Path
        The SEED folder: one holding ``ExtractedFeatures/`` (classic; or ``SEED_EEG/ExtractedFeatures_1s``),
        or one with ``eeg_used_4s/`` (and ``eye_tracking_feature/``) up to 4 levels below it
        (SEED_Multimodal, e.g. ``SEED_Multimodal/Chinese``).
    modalities : list of str | None
        ``'eeg'`` (both layouts) and ``'eye'`` (multimodal only); None loads all the layout has.
    subjects : list of str or int | None
        Subject ids to load (e.g. ``[1, '2']``); None loads all.
    include_raw : bool
        Attach ``Preprocessed_EEG`` raw EEG ``(62, n)`` at 200 Hz in uV to each trial (classic layout
        only; SEED_Multimodal's raw EEG is Neuroscan .cnt, which is not read).
    **options
        layout : {'classic', 'multimodal'} | None
            Which release to read when the folder holds both; None picks the one present, and
            ``'multimodal'`` (the one M2S uses) when both are.
        feature : {'de_LDS', 'de_movingAve'}
            Classic layout: which released DE to read (default ``'de_LDS'``).
        window : {'4s', '1s'} | None
            Window length: SEED_Multimodal ``eeg_used_4s`` (default, what M2S uses) or ``eeg_used_1s``;
            classic ``ExtractedFeatures`` is 1 s (``'4s'`` reads ``ExtractedFeatures_4s``).

    Returns
    -------
    dataset : EmotionDataset
        ``eeg`` features ``(W, 310)`` channel-major (index = channel*5 + band), ``eye`` ``(W, 33)``;
        labels 0 negative, 1 neutral, 2 positive.

    Raises
    ------
    DatasetError
        The folder is not SEED (naming the dataset it looks like), a file is missing (e.g. label.mat) or
        has unexpected keys or shapes, or EEG and eye window counts differ.
    """
    return _LOADER.load(path, modalities=modalities, subjects=subjects, include_raw=include_raw, **options)


_EXPECTED = "'ExtractedFeatures/' (classic) or 'eeg_used_4s/' + 'eye_tracking_feature/' (SEED_Multimodal)"


class _Seed(Loader):
    """SEED's two releases: where each keeps its files, and how a subject's trials are read."""

    name = NAME
    title = "SEED"
    options = {
        "layout": (None, (None, *_LAYOUTS)),
        "feature": ("de_LDS", _FEATURES),
        "window": (None, (None, *_WINDOWS)),
    }

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        if not path.is_dir():
            raise _wrong_folder(path, "SEED", _EXPECTED)
        layout, window = options["layout"], options["window"]
        classic = _classic_dir(path, window) if layout != "multimodal" else None
        multimodal = _multimodal_dirs(path, window or "4s") if layout != "classic" else None
        # both releases present and no layout given: the multimodal one, which M2S uses
        if multimodal is not None:
            return _locate_multimodal(path, *multimodal, window or "4s")
        if classic is not None:
            return _locate_classic(path, classic, options["feature"])
        expected = _EXPECTED
        if layout is not None or window is not None:
            expected = f"layout={layout!r}, window={window!r}: " + expected
        raise _wrong_folder(path, "SEED", expected)

    def where(self, source: Source) -> str:
        layout = source.context
        if isinstance(layout, _Classic):
            return f"the classic SEED release ({layout.feat_dir})"
        return f"SEED_Multimodal ({source.root})"

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        return source.context.read_subject(source, subject, modalities, include_raw)

    def read(self, source, subjects, modalities, specs, include_raw, options) -> list[Trial]:
        trials = super().read(source, subjects, modalities, specs, include_raw, options)
        merged = _merged_trials() if isinstance(source.context, _Multimodal) and trials else []
        if merged:
            logger.warning(
                "SEED_Multimodal stores no trial boundaries; adjacent same-label trials %s cannot be "
                "separated and are returned as one trial numbered by the first.",
                merged,
            )
        return trials

    def infos(self, source, modalities, specs, options) -> dict[str, ModalityInfo]:
        return source.context.infos()


_LOADER = _Seed()


@dataclass(frozen=True)
class _Classic:
    """The classic release: ``ExtractedFeatures`` (label.mat + one .mat per subject and date)."""

    feat_dir: Path
    raw_dir: Path
    labels: np.ndarray
    feature: str

    @property
    def spacing(self) -> float:
        return 4.0 if self.feat_dir.name.endswith("_4s") else 1.0

    def read_subject(self, source: Source, subject: str, modalities, include_raw: bool) -> list[Trial]:
        feature = self.feature
        keys = [f"{feature}{t}" for t in range(1, SEED_N_TRIALS + 1)]
        trials = []
        for session, (_, f) in enumerate(sorted(source.subjects[subject]), start=1):
            mat = _loadmat(f, keys)
            raw = _raw_trials(self.raw_dir / f.name, SEED_N_TRIALS) if include_raw else {}
            for t in range(1, SEED_N_TRIALS + 1):
                eeg = _channel_band_to_vectors(mat[f"{feature}{t}"], f"{f} '{feature}{t}'")
                trials.append(
                    Trial(
                        subject=subject,
                        session=session,
                        trial=t,
                        label=int(self.labels[t - 1]),
                        ratings={},
                        features={"eeg": eeg},
                        raw={"eeg": raw[t]} if include_raw else {},
                    )
                )
        return trials

    def infos(self) -> dict[str, ModalityInfo]:
        spacing = self.spacing
        description = (
            f"released {self.feature} (SEED {self.feat_dir.name}), {spacing:g}-s windows, 62 channels x 5 "
            "bands (delta..gamma), channel-major: index = channel*5 + band"
        )
        return {"eeg": _de_modality(spacing, _smoothing_of(self.feature), description)}


def _locate_classic(root: Path, feat_dir: Path, feature: str) -> Source:
    label_file = feat_dir / "label.mat"
    if not label_file.is_file():
        raise DatasetError(
            f"{label_file} is missing; the classic SEED release ships label.mat next to the feature files "
            "(key 'label', shape (1, 15), values -1/0/1)."
        )
    raw_labels = np.asarray(_loadmat(label_file, ["label"])["label"])
    if raw_labels.size != SEED_N_TRIALS or not set(np.unique(raw_labels)) <= {-1, 0, 1}:
        raise DatasetError(
            f"{label_file} 'label' has shape {raw_labels.shape} and values {np.unique(raw_labels).tolist()}; "
            f"expected (1, {SEED_N_TRIALS}) with values -1/0/1."
        )
    files: dict[str, list[tuple[str, Path]]] = {}
    for match in find_files(feat_dir, _CLASSIC_FILE, "'{subject}_{YYYYMMDD}.mat' feature files"):
        files.setdefault(match.group(1), []).append((match.group(2), feat_dir / match.string))
    raw_dir = feat_dir.parent / "Preprocessed_EEG"
    layout = _Classic(feat_dir, raw_dir, raw_labels.ravel().astype(int) + 1, feature)
    return Source(
        root=root,
        subjects={s: files[s] for s in sorted(files, key=_natural)},
        modalities=("eeg",),
        no_raw=None
        if raw_dir.is_dir()
        else f"include_raw=True but {raw_dir} does not exist; it holds the classic raw EEG.",
        class_names=SEED_CLASS_NAMES,
        context=layout,
    )


def _band_dict_to_vectors(obj, source: str) -> np.ndarray:
    """SEED_Multimodal ``{'delta': (N, 62), ..., 'gamma': (N, 62)}`` -> ``(N, 310)`` channel-major."""
    if not isinstance(obj, dict) or set(obj) != set(SEED_BAND_NAMES):
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DatasetError(f"{source} should be a dict with keys {list(SEED_BAND_NAMES)}; got {got}.")
    bands = [np.asarray(obj[b], dtype=np.float64) for b in SEED_BAND_NAMES]
    shapes = {b.shape for b in bands}
    if len(shapes) != 1 or bands[0].ndim != 2 or bands[0].shape[1] != len(SEED_CHANNELS):
        raise DatasetError(
            f"{source} band arrays have shapes {[b.shape for b in bands]}; expected (N, 62) each."
        )
    # (N, 62, 5): channel-major flattening, unlike M2S's band-major (5, N, 62) stacking (docs/design/datasets.md §7.2)
    return np.ascontiguousarray(np.stack(bands, axis=-1).reshape(bands[0].shape[0], -1))


def _expected_runs(trials: tuple[int, ...]) -> list[tuple[list[int], int]]:
    """Runs of equal labels in SEED's trial order: [(trial numbers, class index)]."""
    expected: list[tuple[list[int], int]] = []
    for t in trials:
        label = SEED_TRIAL_LABELS_RAW[t - 1] + 1
        if expected and expected[-1][1] == label:
            expected[-1][0].append(t)
        else:
            expected.append(([t], label))
    return expected


def _trial_runs(labels: np.ndarray, trials: tuple[int, ...], source: str) -> list[tuple[list[int], int, int]]:
    """Split a block's per-window labels into trials: [(trial numbers, start, stop)].

    Trial boundaries are not stored; they are where the label changes. Adjacent trials with the same
    label (SEED trials 3 and 4, both negative) cannot be separated and come back as one run.
    """
    expected = _expected_runs(trials)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change]).astype(int)
    stops = np.concatenate([change, [labels.size]]).astype(int)
    found = [int(labels[s]) for s in starts] if labels.size else []
    if found != [lab for _, lab in expected]:
        raise DatasetError(
            f"{source}: the label sequence {found} (one entry per run of equal labels) does not match SEED "
            f"trials {trials[0]}-{trials[-1]}, which give {[lab for _, lab in expected]}."
        )
    return [(group, int(s), int(e)) for (group, _), s, e in zip(expected, starts, stops, strict=True)]


def _integral_labels(values, source: str) -> np.ndarray:
    values = np.asarray(values).ravel()
    if (
        values.dtype.kind not in "iuf"
        or not np.all(np.isfinite(values))
        or np.any(values != np.round(values))
    ):
        raise DatasetError(f"{source} must hold integer class labels, got dtype {values.dtype}.")
    return values.astype(int)


@dataclass(frozen=True)
class _Multimodal:
    """SEED_Multimodal: ``eeg_used_{window}/{subj}_{sess}.npz`` (+ ``eye_tracking_feature/{subj}_{sess}``)."""

    eeg_dir: Path
    eye_dir: Path | None
    window: str

    def read_subject(self, source: Source, subject: str, modalities, include_raw: bool) -> list[Trial]:
        trials: list[Trial] = []
        for session, f in source.subjects[subject]:
            trials.extend(self._read_file(subject, session, f, modalities))
        return trials

    def _read_file(self, subject: str, session: int, f: Path, modalities) -> list[Trial]:
        keys = npz_keys(f)
        if not {"train_data", "test_data", "train_label", "test_label"} <= set(keys):
            raise DatasetError(
                f"{f} has keys {keys}; expected 'train_data', 'test_data', 'train_label', 'test_label'."
            )
        eye = None
        if "eye" in modalities:
            eye_file = require_file(
                self.eye_dir / f"{subject}_{session}", f"it holds the eye features paired with {f}"
            )
            eye = safe_load(eye_file, encoding="latin1")
            if not isinstance(eye, dict) or not {"train_data_eye", "test_data_eye"} <= set(eye):
                got = sorted(eye) if isinstance(eye, dict) else type(eye).__name__
                raise DatasetError(
                    f"{eye_file} should be a dict with 'train_data_eye', 'test_data_eye'; got {got}."
                )
        trials = []
        for block, block_trials in (
            ("train", SEED_MULTIMODAL_TRAIN_TRIALS),
            ("test", SEED_MULTIMODAL_TEST_TRIALS),
        ):
            source = f"{f}['{block}_data']"
            eeg = _band_dict_to_vectors(
                safe_loads(safe_load_npz(f, f"{block}_data").item(), source=source), source
            )
            labels = _integral_labels(safe_load_npz(f, f"{block}_label"), f"{f}['{block}_label']")
            if labels.size != eeg.shape[0]:
                raise DatasetError(
                    f"{f}: '{block}_label' has {labels.size} entries but '{block}_data' has {eeg.shape[0]} windows."
                )
            feats = {"eeg": eeg}
            if eye is not None:
                eye_block = np.asarray(eye[f"{block}_data_eye"], dtype=np.float64)
                if eye_block.ndim != 2 or eye_block.shape[1] != SEED_EYE_DIM:
                    raise DatasetError(
                        f"{eye_file} '{block}_data_eye' has shape {eye_block.shape}; expected (N, {SEED_EYE_DIM})."
                    )
                if eye_block.shape[0] != eeg.shape[0]:
                    raise DatasetError(
                        f"trials {block_trials[0]}-{block_trials[-1]} ({block} block) of subject {subject} "
                        f"session {session}: EEG {f} has {eeg.shape[0]} windows ({self.eeg_dir.name}) but eye "
                        f"{eye_file} has {eye_block.shape[0]}; they must pair 1:1"
                        + (
                            " (eye features pair with eeg_used_4s; use window='4s' or modalities=['eeg'])."
                            if self.window != "4s"
                            else "."
                        )
                    )
                feats["eye"] = eye_block
            for group, start, stop in _trial_runs(labels, block_trials, f"{f}['{block}_label']"):
                trials.append(
                    Trial(
                        subject=subject,
                        session=session,
                        trial=group[0],
                        label=SEED_TRIAL_LABELS_RAW[group[0] - 1] + 1,
                        ratings={},
                        features={m: feats[m][start:stop] for m in modalities},
                    )
                )
        return trials

    def infos(self) -> dict[str, ModalityInfo]:
        spacing = _WINDOWS[self.window]
        return {
            "eeg": _de_modality(
                spacing,
                SmoothingSpec(
                    method="none"
                ),  # the smoothing of eeg_used_* is not documented (datasets.md §1.5)
                f"released DE (SEED_Multimodal 02-EEG-DE-feature/{self.eeg_dir.name}), {spacing:g}-s windows, "
                "smoothing unknown; 62 channels x 5 bands (delta..gamma), channel-major: index = channel*5 + band",
            ),
            "eye": ModalityInfo(
                dim=SEED_EYE_DIM,
                spacing_s=spacing,
                description="released eye-movement features (SEED_Multimodal 04-Eye-tracking-feature/"
                "eye_tracking_feature, train_data_eye/test_data_eye), 33-d; per-index meaning undocumented",
            ),
        }


def _locate_multimodal(root: Path, eeg_dir: Path, eye_dir: Path | None, window: str) -> Source:
    files: dict[str, list[tuple[int, Path]]] = {}
    for match in find_files(eeg_dir, _MULTIMODAL_FILE, "'{subject}_{session}.npz' files"):
        files.setdefault(match.group(1), []).append((int(match.group(2)), eeg_dir / match.string))
    return Source(
        root=root,
        subjects={s: sorted(files[s]) for s in sorted(files, key=_natural)},
        modalities=("eeg", "eye") if eye_dir is not None else ("eeg",),
        absent={} if eye_dir is not None else {"eye": f"no 'eye_tracking_feature' folder under {root}"},
        no_raw=f"include_raw=True is not available for SEED_Multimodal ({eeg_dir}): its raw EEG is "
        "Neuroscan .cnt without trial markers. Use the classic release's Preprocessed_EEG folder "
        "(layout='classic') or include_raw=False.",
        class_names=SEED_CLASS_NAMES,
        context=_Multimodal(eeg_dir, eye_dir, window),
    )


def _merged_trials() -> list[tuple[int, ...]]:
    """SEED trials no label change separates in a SEED_Multimodal block (they come back as one trial)."""
    runs = _expected_runs(SEED_MULTIMODAL_TRAIN_TRIALS) + _expected_runs(SEED_MULTIMODAL_TEST_TRIALS)
    return sorted(tuple(group) for group, _ in runs if len(group) > 1)
