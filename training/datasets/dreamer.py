"""DREAMER (23 subjects × 18 clips): EEG and ECG differential entropy from ``DREAMER.mat``.

Layout read (docs/design/datasets.md §5): one MATLAB v5 file with a 1×1 struct ``DREAMER``; ``DREAMER.Data``
is a 1×23 cell of subject structs with ``EEG`` and ``ECG`` (structs of ``baseline`` and
``stimuli``, 18×1 cells of time-major ``(n_samples, 14)`` EEG at 128 Hz and ``(n_samples, 2)`` ECG
at 256 Hz) and ``ScoreValence/ScoreArousal/ScoreDominance`` (18×1, integers 1-5). The sampling
rates and the electrode names are read from the file (``EEG_SamplingRate``, ``ECG_SamplingRate``,
``EEG_Electrodes``).

Features (M2S-SPEC §1, §6): EEG = DE of 14 channels × 5 SEED bands (70-d); ECG = DE of each of
the 2 leads in the same 5 bands (10-d; our documented convention for the unconfirmed 10-d ECG
input, docs/design/features.md §3 (a)). Both use ``spec.compute`` with the same window length and hop (default
1 s / 1 s), so vector k of both covers the same second; when the two recordings of a clip round to
window counts that differ by one the extra trailing vector is dropped, a larger difference is an
error.

Units: the EEG is taken as µV (Emotiv EPOC data, which carries a DC level of several thousand µV;
with the 'bcmi' formula the delta band includes the DC bin, so consider ``baseline='subtract_mean'``
or ``formula='gaussian'``). The ECG unit is not documented by the dataset; it is kept as stored
(``'native'``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from signals.bands import SEED_BANDS
from signals.spec import DESpec

from .base import DatasetError, EmotionDataset, Trial
from .skeleton import Loader, Source, featurise, raw_signals

logger = logging.getLogger(__name__)

NAME = "dreamer"
FILE = "DREAMER.mat"
EEG_CHANNELS: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
ECG_CHANNELS: tuple[str, ...] = ("ECG1", "ECG2")
RATINGS: dict[str, str] = {
    "valence": "ScoreValence",
    "arousal": "ScoreArousal",
    "dominance": "ScoreDominance",
}
RATING_SCALE: tuple[float, float] = (1.0, 5.0)
MODALITIES: tuple[str, ...] = ("eeg", "ecg")
BASELINE_MODES: tuple[str, ...] = ("drop", "subtract_mean", "keep")
_SUBJECT_FIELDS = ("EEG", "ECG", *RATINGS.values())


def _file(path: Path) -> Path:
    return path / FILE if path.is_dir() else path


def detect(path: Path) -> bool:
    """Whether ``path`` is ``DREAMER.mat`` (or a folder holding it) with a MATLAB 5 header (reads 10 bytes)."""
    try:
        f = _file(Path(path))
        if f.name != FILE or not f.is_file():
            return False
        with f.open("rb") as fh:
            return fh.read(10) == b"MATLAB 5.0"
    except (OSError, TypeError, ValueError):
        return False


def _field(struct: np.ndarray, name: str, where: str):
    names = struct.dtype.names or ()
    if name not in names:
        raise DatasetError(
            f"{where} has no field '{name}'; its fields are {list(names)}. Is this DREAMER.mat?"
        )
    return struct[name]


def _scalar(struct, name, where, default):
    if name not in (struct.dtype.names or ()):
        return default
    return float(np.asarray(struct[name].flat[0]).ravel()[0])


def _read(path: Path) -> np.ndarray:
    try:
        variables = [v[0] for v in scipy.io.whosmat(path)]
    except Exception as err:  # scipy raises several types for non-MAT files
        raise DatasetError(f"{path} is not a readable MATLAB file ({err}).") from err
    if "DREAMER" not in variables:
        raise DatasetError(f"{path} has no variable 'DREAMER' (it has {variables}); pass DREAMER.mat.")
    try:
        return scipy.io.loadmat(path, variable_names=["DREAMER"])["DREAMER"][0, 0]
    except Exception as err:
        raise DatasetError(f"{path} could not be read: {err}") from err


def _electrodes(root: np.ndarray) -> tuple[str, ...]:
    if "EEG_Electrodes" not in (root.dtype.names or ()):
        return EEG_CHANNELS
    cells = np.asarray(root["EEG_Electrodes"]).ravel()
    names = tuple(str(np.asarray(c).ravel()[0]) for c in cells if np.asarray(c).size)
    return names or EEG_CHANNELS


def _clips(sub: np.ndarray, modality: str, part: str, where: str) -> list[np.ndarray]:
    rec = _field(sub, modality, where).flat[0]
    cells = _field(rec, part, f"{where}.{modality}").flat[0]
    return [np.asarray(c, dtype=np.float64) for c in np.asarray(cells).ravel()]


def default_specs(
    *, eeg_sfreq: float = 128.0, ecg_sfreq: float = 256.0, channels=EEG_CHANNELS, window_s=1.0, hop_s=1.0,
    formula="bcmi",
) -> dict[str, DESpec]:  # fmt: skip
    """EEG (14 × 5 DE) and ECG (2 × 5 DE) specs sharing one window length and hop."""
    common = {"window_s": window_s, "hop_s": hop_s, "bands": SEED_BANDS, "formula": formula}
    return {
        "eeg": DESpec(modality="eeg", sfreq=eeg_sfreq, channels=tuple(channels), unit="uV", **common),
        "ecg": DESpec(modality="ecg", sfreq=ecg_sfreq, channels=ECG_CHANNELS, unit="native", **common),
    }


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
    """Load DREAMER.mat as paired EEG + ECG feature sequences with ratings.

    Parameters
    ----------
    path : str | Path
        ``DREAMER.mat`` or the folder holding it.
    modalities : sequence of {'eeg', 'ecg'} | None
        Modalities to compute (None: both).
    subjects : sequence of str | int | None
        Subjects ``'1'``..``'23'`` (or ints); None: all.
    include_raw : bool
        Keep each clip's raw signals (channels × samples; EEG µV at 128 Hz, ECG native at 256 Hz),
        after baseline handling. With ``baseline='keep'`` they are ``[baseline | stimulus]``
        joined along time.
    window_s, hop_s : float
        Window length and hop in seconds, the same for EEG and ECG (default 1 s / 1 s).
    formula : 'bcmi' | 'gaussian'
        DE formula of both modalities.
    baseline : 'drop' | 'subtract_mean' | 'keep'
        DREAMER records a separate 61-s baseline before each clip. ``'drop'`` ignores it;
        ``'subtract_mean'`` subtracts each channel's baseline mean from the clip before
        featurising; ``'keep'`` featurises the baseline recording and the clip separately (no
        window spans the join) and puts the baseline vectors first.
    specs : dict of str to FeatureSpec | None
        Override the spec of a modality (its sfreq must be the file's; its channels, a subset of
        the modality's, pick the rows). EEG and ECG must share one ``hop_s`` to be paired.
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec (the one in ``specs``, else the default), e.g.
        ``{'eeg': {'window_s': 4.0}}`` (:func:`training.datasets.spec_options.override_spec`).

    Returns
    -------
    dataset : EmotionDataset
        ``name='dreamer'``; subjects '1'…, session 1, trials 1-18; ratings valence, arousal,
        dominance on 1-5; ``label`` None (the protocol binarises with threshold 3).

    Raises
    ------
    DatasetError
        Missing or non-MATLAB file, no ``DREAMER`` variable, missing fields, wrong shapes, or EEG
        and ECG of a clip that cannot be paired.
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


class _Dreamer(Loader):
    """DREAMER.mat: one struct per subject, EEG and ECG clips (baseline and stimulus) and scores."""

    name = NAME
    title = "DREAMER"
    computed = True
    options = {
        "window_s": (1.0, None),
        "hop_s": (1.0, None),
        "formula": ("bcmi", None),
        "baseline": ("drop", BASELINE_MODES),
    }

    def check_path(self, path: Any) -> Path:
        return _file(super().check_path(path))

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        if not path.is_file():
            raise DatasetError(f"{path} does not exist; pass DREAMER.mat or the folder that holds it.")
        root = _read(path)
        entries = np.asarray(_field(root, "Data", "DREAMER")).ravel()
        return Source(
            root=path,
            subjects={str(k): entries[k - 1] for k in range(1, entries.size + 1)},
            modalities=MODALITIES,
            rating_scales={r: RATING_SCALE for r in RATINGS},
            sfreqs={
                "eeg": _scalar(root, "EEG_SamplingRate", "DREAMER", 128.0),
                "ecg": _scalar(root, "ECG_SamplingRate", "DREAMER", 256.0),
            },
            channels={"eeg": _electrodes(root), "ecg": ECG_CHANNELS},
        )

    def subject_id(self, subject: Any) -> str:
        try:
            return str(int(subject))  # '01' and 1 both name subject '1'
        except (TypeError, ValueError):
            return str(subject)

    def default_specs(self, source: Source, options: dict[str, Any]) -> dict:
        return default_specs(
            eeg_sfreq=source.sfreqs["eeg"], ecg_sfreq=source.sfreqs["ecg"], channels=source.channels["eeg"],
            window_s=options["window_s"], hop_s=options["hop_s"], formula=options["formula"],
        )  # fmt: skip

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        channels, sfreqs, baseline = source.channels, source.sfreqs, options["baseline"]
        rows = {m: [list(channels[m]).index(c) for c in specs[m].channels] for m in modalities}
        where = f"{source.root} DREAMER.Data{{{subject}}}"
        sub = np.asarray(source.subjects[subject])
        if sub.dtype.names is None:
            raise DatasetError(
                f"{where} is not a struct (got {sub.dtype}); expected fields {list(_SUBJECT_FIELDS)}."
            )
        sub = sub.reshape(-1)[0:1]
        stim = {m: _clips(sub, m.upper(), "stimuli", where) for m in modalities}
        base = {m: _clips(sub, m.upper(), "baseline", where) for m in modalities}
        scores = {r: np.asarray(_field(sub, key, where).flat[0], float).ravel() for r, key in RATINGS.items()}
        n_clips = len(next(iter(stim.values())))
        for m in modalities:
            for part, clips in (("stimuli", stim[m]), ("baseline", base[m])):
                if len(clips) != n_clips:
                    raise DatasetError(
                        f"{where}.{m.upper()}.{part} has {len(clips)} clips, expected {n_clips}."
                    )
                for t, c in enumerate(clips, start=1):
                    if c.ndim != 2 or c.shape[1] != len(channels[m]):
                        raise DatasetError(
                            f"{where}.{m.upper()}.{part}{{{t}}} must be (n_samples, {len(channels[m])}) "
                            f"time-major, got {c.shape}."
                        )
        for r, v in scores.items():
            if v.size != n_clips:
                raise DatasetError(f"{where}.{RATINGS[r]} has {v.size} scores for {n_clips} clips.")
        trials = []
        for t in range(n_clips):
            clip_where = f"subject {subject} clip {t + 1}"
            x = {m: stim[m][t].T[rows[m]] for m in modalities}  # (n_channels, n_times), the spec's rows
            b = {m: base[m][t].T[rows[m]] for m in modalities}
            if baseline == "subtract_mean":
                x = {m: x[m] - b[m].mean(axis=1, keepdims=True) for m in modalities}
            feats, segments = featurise(specs, x, sfreqs, where=clip_where, max_count_gap=1)
            if baseline == "keep":
                # Two recordings back to back: the stimulus starts a new segment (no window spans both).
                bfeats, bsegments = featurise(
                    specs, b, sfreqs, where=f"{clip_where} baseline", max_count_gap=1
                )
                feats = {m: np.concatenate([bfeats[m], feats[m]]) for m in modalities}
                segments = np.concatenate([bsegments, segments + (bsegments.max() if bsegments.size else 0)])
                x = {m: np.concatenate([b[m], x[m]], axis=1) for m in modalities}
            raw = raw_signals(specs, x, sfreqs) if include_raw else {}
            ratings = {r: float(v[t]) for r, v in scores.items()}
            trials.append(Trial(subject, 1, t + 1, None, ratings, feats, raw, segments))
        return trials

    def offline_only(self, options) -> str | None:
        if options["baseline"] == "subtract_mean":
            return "each trial's baseline mean is subtracted, which a live stream has no baseline for"
        return None

    def describe(self, source, modality, spec, options) -> str:
        descriptions = {
            "eeg": f"DE of DREAMER EEG (µV), {len(spec.channels)} channels x 5 bands",
            "ecg": "DE of DREAMER ECG (native units), 2 leads x 5 bands (our 10-d convention)",
        }
        return f"{descriptions[modality]}; baseline={options['baseline']}"


_LOADER = _Dreamer()
