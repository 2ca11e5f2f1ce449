"""DEAP (32 subjects × 40 trials): EEG differential entropy and peripheral statistics from ``sXX.dat``.

Layout read (docs/design/datasets.md §4): ``data_preprocessed_python/s01.dat … s32.dat``, each a Python-2
pickle (latin-1) of a dict with

- ``'data'``: ``(40 trials, 40 channels, 8064 samples)`` float64 at 128 Hz: 3 s of pre-trial
  baseline (samples 0-383) then the 60-s stimulus; channels 0-31 EEG in Geneva order
  (:data:`EEG_CHANNELS`), 32-39 peripheral (:data:`PPS_CHANNELS`);
- ``'labels'``: ``(40, 4)`` float64 valence, arousal, dominance, liking on 1-9.

Trials are in video (Experiment_id) order, not presentation order (§4.2). Files are read with
the restricted unpickler of :mod:`training.datasets.safe_pickle`: a doctored ``.dat`` cannot run
code.

Features (M2S-SPEC §1, §6): EEG = DE of the 32 channels in the 4 DEAP bands (theta..gamma; no
delta, the data is band-passed 4-45 Hz), 32 × 4 = 128; PPS = the 6 Picard statistics of the 8
peripheral channels, 8 × 6 = 48. Both are computed with ``spec.compute`` (the live service's
path) over the same windows (default 1 s, hop 1 s), so vector k of both modalities covers the same
second. Ratings are kept as given; ``label`` is None (the protocol binarises with threshold 5).

Units: the EEG is taken to be in µV. docs/design/datasets.md does not state the unit of the preprocessed
files; this is our assumption (DEAP's recordings are BioSemi µV and the preprocessed values are
tens of µV). The peripheral channels keep their native units (``'native'``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from signals.bands import DEAP_BANDS
from signals.spec import DESpec, PpsSpec

from .base import DatasetError, EmotionDataset, Trial
from .safe_pickle import safe_load
from .skeleton import Loader, Source, featurise, find_files, raw_signals

logger = logging.getLogger(__name__)

NAME = "deap"
SFREQ = 128.0
BASELINE_S = 3.0
N_BASELINE = int(BASELINE_S * SFREQ)  # 384 samples
EEG_CHANNELS: tuple[str, ...] = (
    "FP1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "OZ", "PZ",
    "FP2", "AF4", "FZ", "F4", "F8", "FC6", "FC2", "CZ", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip
PPS_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
CHANNELS: tuple[str, ...] = EEG_CHANNELS + PPS_CHANNELS
RATINGS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
RATING_SCALE: tuple[float, float] = (1.0, 9.0)
MODALITIES: tuple[str, ...] = ("eeg", "pps")
BASELINE_MODES: tuple[str, ...] = ("drop", "subtract_mean", "keep")
FOLDER = "data_preprocessed_python"
_FILE_RE = re.compile(r"s(\d{2})\.dat")


def _data_folder(path: Path) -> Path:
    sub = path / FOLDER
    return sub if sub.is_dir() else path


def _subject_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and _FILE_RE.fullmatch(p.name)}


def detect(path: Path) -> bool:
    """Whether ``path`` is a DEAP ``data_preprocessed_python`` folder (or its parent) holding ``sXX.dat`` files."""
    try:
        path = Path(path)
        return path.is_dir() and bool(_subject_files(_data_folder(path)))
    except (OSError, TypeError, ValueError):
        return False


def default_specs(*, window_s: float = 1.0, hop_s: float = 1.0, formula: str = "bcmi") -> dict:
    """The EEG (DE, DEAP bands) and PPS (Picard statistics) specs :func:`load` uses by default.

    Parameters
    ----------
    window_s, hop_s : float
        Window length and hop in seconds (whole samples at 128 Hz), shared by both modalities.
    formula : 'bcmi' | 'gaussian'
        DE formula (see :mod:`signals.de`).

    Returns
    -------
    specs : dict with keys 'eeg' (DESpec, 128-d) and 'pps' (PpsSpec, 48-d)
    """
    return {
        "eeg": DESpec(
            modality="eeg",
            sfreq=SFREQ,
            channels=EEG_CHANNELS,
            unit="uV",
            window_s=window_s,
            hop_s=hop_s,
            bands=DEAP_BANDS,
            formula=formula,
        ),
        "pps": PpsSpec(sfreq=SFREQ, channels=PPS_CHANNELS, window_s=window_s, hop_s=hop_s),
    }


def _read_subject(path: Path, n_needed: int) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_load(path, encoding="latin1")
    if not isinstance(obj, dict):
        raise DatasetError(
            f"{path} holds a {type(obj).__name__}; a DEAP sXX.dat holds a dict with 'data' and 'labels'."
        )
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        raise DatasetError(
            f"{path} lacks the key(s) {missing}; it has {sorted(map(str, obj))}. Is this DEAP's preprocessed python data?"
        )
    data, labels = obj["data"], obj["labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 3 or data.shape[1] != len(CHANNELS):
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(f"{path}: 'data' must be (n_trials, 40 channels, n_samples), got {shape}.")
    if data.shape[2] < n_needed:
        raise DatasetError(
            f"{path}: 'data' has {data.shape[2]} samples per trial; the 3-s baseline plus one window "
            f"need at least {n_needed} at 128 Hz (the real files have 8064)."
        )
    if not isinstance(labels, np.ndarray) or labels.shape != (data.shape[0], len(RATINGS)):
        shape = getattr(labels, "shape", type(labels).__name__)
        raise DatasetError(f"{path}: 'labels' must be (n_trials={data.shape[0]}, 4), got {shape}.")
    return np.asarray(data, dtype=np.float64), np.asarray(labels, dtype=np.float64)


def load(
    path,
    *,
    modalities=None,
    subjects=None,
    include_raw: bool = False,
    window_s: float = 1.0,
    hop_s: float = 1.0,
    formula: str = "bcmi",
    baseline: str = "drop",
    specs: dict | None = None,
    spec_overrides: dict | None = None,
) -> EmotionDataset:
    """Load DEAP's preprocessed python data as EEG + PPS feature sequences with ratings.

    Parameters
    ----------
    path : str | Path
        The ``data_preprocessed_python`` folder or the folder containing it.
    modalities : sequence of {'eeg', 'pps'} | None
        Modalities to compute (None: both).
    subjects : sequence of str | int | None
        Subject ids (``'s01'``) or numbers (1); None: every ``sXX.dat`` present.
    include_raw : bool
        Keep each trial's raw signal per modality (after baseline handling): EEG (32, n) µV,
        PPS (8, n) native units, 128 Hz.
    window_s, hop_s : float
        Window length and hop in seconds for both modalities (default 1 s / 1 s).
    formula : 'bcmi' | 'gaussian'
        EEG DE formula (default 'bcmi', SEED's reference; :mod:`signals.de`).
    baseline : 'drop' | 'subtract_mean' | 'keep'
        The 3-s pre-trial segment (samples 0-383): ``'drop'`` discards it and featurises the
        60-s stimulus; ``'subtract_mean'`` subtracts each channel's baseline mean from the
        stimulus, then featurises the stimulus (the DE bands exclude DC, so only the PPS
        statistics that see the level, e.g. the mean, change); ``'keep'`` featurises all 63 s,
        so the first vectors (3 with 1-s windows) describe the baseline.
    specs : dict of str to FeatureSpec | None
        Override the spec of a modality (sfreq must be 128; its channels, a subset of that
        modality's DEAP channels, pick the rows). Other modalities use :func:`default_specs`.
        Overridden specs must share ``hop_s``; vectors are paired by window end time.
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec (the one in ``specs``, else the default), e.g.
        ``{'eeg': {'window_s': 4.0}}`` (:func:`training.datasets.spec_options.override_spec`).

    Returns
    -------
    dataset : EmotionDataset
        ``name='deap'``; subjects 's01'…, session 1, trials 1-40 in video order; ``ratings``
        valence/arousal/dominance/liking (1-9), ``label`` None.

    Raises
    ------
    DatasetError
        Missing folder or files, unknown subjects, wrong keys or shapes, or a pickle that asks for
        anything but arrays and builtins (``UnsafePickleError``).
    """
    return _LOADER.load(
        path,
        modalities=modalities,
        subjects=subjects,
        include_raw=include_raw,
        specs=specs,
        spec_overrides=spec_overrides,
        window_s=window_s,
        hop_s=hop_s,
        formula=formula,
        baseline=baseline,
    )


_DESCRIPTIONS = {
    "eeg": "DE of DEAP preprocessed EEG (µV assumed), 32 channels x 4 bands (theta-gamma)",
    "pps": "Picard statistics of DEAP's 8 peripheral channels (native units), 8 x 6",
}


class _Deap(Loader):
    """DEAP's ``sXX.dat`` pickles: 40 channels (32 EEG + 8 peripheral) per trial, ratings per trial."""

    name = NAME
    title = "DEAP"
    computed = True
    options = {
        "window_s": (1.0, None),
        "hop_s": (1.0, None),
        "formula": ("bcmi", None),
        "baseline": ("drop", BASELINE_MODES),
    }

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        if not path.is_dir():
            raise DatasetError(
                f"DEAP folder {path} does not exist; pass the data_preprocessed_python folder."
            )
        folder = _data_folder(path)
        expected = "DEAP files s01.dat … s32.dat; pass DEAP's data_preprocessed_python folder (or its parent)"
        files = {
            m.string.removesuffix(".dat"): folder / m.string for m in find_files(folder, _FILE_RE, expected)
        }
        return Source(
            root=folder,
            subjects=files,
            modalities=MODALITIES,
            rating_scales={r: RATING_SCALE for r in RATINGS},
            sfreqs={m: SFREQ for m in MODALITIES},
            channels={"eeg": EEG_CHANNELS, "pps": PPS_CHANNELS},
        )

    def subject_id(self, subject: Any) -> str:
        if isinstance(subject, bool) or not isinstance(subject, (str, int, np.integer)):
            raise TypeError(f"subjects must hold str ids ('s01') or ints (1), got {type(subject).__name__}.")
        return subject if isinstance(subject, str) else f"s{int(subject):02d}"

    def default_specs(self, source: Source, options: dict[str, Any]) -> dict:
        return default_specs(window_s=options["window_s"], hop_s=options["hop_s"], formula=options["formula"])

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        f, baseline = source.subjects[subject], options["baseline"]
        rows = {m: [CHANNELS.index(c) for c in specs[m].channels] for m in modalities}
        data, labels = _read_subject(f, N_BASELINE + max(s.n_window for s in specs.values()))
        trials = []
        for k in range(data.shape[0]):
            x = data[k]
            if baseline == "drop":
                x = x[:, N_BASELINE:]
            elif baseline == "subtract_mean":
                x = x[:, N_BASELINE:] - x[:, :N_BASELINE].mean(axis=1, keepdims=True)
            signals = {m: x[rows[m]] for m in modalities}
            feats, segments = featurise(specs, signals, source.sfreqs, where=f"{f} trial {k + 1}")
            raw = raw_signals(specs, signals, source.sfreqs) if include_raw else {}
            ratings = {r: float(v) for r, v in zip(RATINGS, labels[k], strict=True)}
            trials.append(Trial(subject, 1, k + 1, None, ratings, feats, raw, segments))
        return trials

    def offline_only(self, options) -> str | None:
        if options["baseline"] == "subtract_mean":
            return "each trial's baseline mean is subtracted, which a live stream has no baseline for"
        return None

    def describe(self, source, modality, spec, options) -> str:
        return f"{_DESCRIPTIONS[modality]}; baseline={options['baseline']}"


_LOADER = _Deap()
