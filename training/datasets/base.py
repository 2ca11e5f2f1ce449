"""The common structure every dataset loader produces: trials of paired per-modality feature sequences.

A loader turns one dataset folder (SEED, SEED-IV, SEED-V, DEAP, DREAMER, a raw recording, the
synthetic generator) into an :class:`EmotionDataset`: a list of :class:`Trial` objects, each
holding, per modality, a feature sequence ``(W, D)`` (time first, one vector every
``ModalityInfo.spacing_s`` seconds; the W vectors of every modality of a trial are paired in time)
and, where raw signals exist, the raw arrays, so features can be recomputed with the ``signals``
causal path (the one the live service uses).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec


class DatasetError(ValueError):
    """A dataset folder or file is not what its loader expects; the message names the file and the fix."""


@dataclass(frozen=True)
class RawSignal:
    """A raw multichannel recording of one trial.

    Attributes
    ----------
    data : array, shape (n_channels, n_times)
        Samples, time last, in ``unit``.
    sfreq : float
        Sampling frequency in Hz.
    channels : tuple of str
        Channel names in row order.
    unit : str
        Unit of the samples (e.g. 'uV').
    """

    data: np.ndarray
    sfreq: float
    channels: tuple[str, ...]
    unit: str


@dataclass(frozen=True)
class ModalityInfo:
    """What a modality's feature vectors are.

    Attributes
    ----------
    dim : int
        Feature dimension D.
    spacing_s : float
        Seconds between consecutive feature vectors (the T-spacing a model is trained on).
    description : str
        Human-readable origin, e.g. "released de_LDS (SEED ExtractedFeatures), 62 channels x 5 bands".
    spec : FeatureSpec | None
        The ``signals`` spec that computes these features from raw signals, or None when they are
        released features no spec reproduces (e.g. SEED-IV's eye features).
    reproducible_online : bool
        Whether the live service can compute exactly these features (False for offline-smoothed
        ``de_LDS`` or unknown released features).
    feature_names : tuple of str | None
        Name of each of the D entries, when known.
    """

    dim: int
    spacing_s: float
    description: str
    spec: DESpec | EyeSpec | HrvSpec | PpsSpec | None = None
    reproducible_online: bool = False
    feature_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Trial:
    """One trial (one stimulus clip) of one subject and session.

    Attributes
    ----------
    subject : str
        Subject id as the dataset names it (e.g. '1', 's01').
    session : int
        Session number, 1-based (1 for datasets without sessions).
    trial : int
        Trial number within the session, 1-based, in presentation order.
    label : int | None
        Class index into ``EmotionDataset.class_names`` (categorical datasets), else None.
    ratings : dict of str to float
        Self-assessment scores (e.g. DEAP valence/arousal/dominance/liking on 1-9), else empty.
    features : dict of str to array, shape (W, D)
        Feature sequence per modality, time first; the same W for every modality of the trial.
    raw : dict of str to RawSignal
        Raw signals per modality where the dataset has them.
    segments : array of int, shape (W,) | None
        Continuous segment of each feature vector (a change between neighbours is a gap in the
        recording: no window spans it); None means one segment.
    """

    subject: str
    session: int
    trial: int
    label: int | None
    ratings: dict[str, float]
    features: dict[str, np.ndarray]
    raw: dict[str, RawSignal] = field(default_factory=dict)
    segments: np.ndarray | None = None

    def __post_init__(self):
        lengths = {m: f.shape[0] for m, f in self.features.items()}
        if len(set(lengths.values())) > 1:
            raise DatasetError(
                f"subject {self.subject} session {self.session} trial {self.trial}: modalities have "
                f"different numbers of feature vectors {lengths}; paired modalities must align in time."
            )
        for m, f in self.features.items():
            if f.ndim != 2:
                raise DatasetError(
                    f"subject {self.subject} session {self.session} trial {self.trial}: features of "
                    f"'{m}' must be (W, D), got shape {f.shape}."
                )

        if self.segments is not None:
            segments = np.asarray(self.segments, dtype=np.int64)
            if segments.shape != (self.n_windows,):
                raise DatasetError(
                    f"subject {self.subject} session {self.session} trial {self.trial}: segments must "
                    f"have one entry per feature vector ({self.n_windows}), got shape {segments.shape}."
                )
            object.__setattr__(self, "segments", segments)

    @property
    def segment_ids(self) -> np.ndarray:
        """Segment of each feature vector, array of int64, shape (W,) (zeros when there is one)."""
        if self.segments is None:
            return np.zeros(self.n_windows, dtype=np.int64)
        return self.segments

    @property
    def n_windows(self) -> int:
        """Number of feature vectors W (0 when the trial has no features)."""
        return next(iter(self.features.values())).shape[0] if self.features else 0

    @property
    def key(self) -> tuple[str, int, int]:
        """(subject, session, trial): unique within a dataset."""
        return (self.subject, self.session, self.trial)


@dataclass
class EmotionDataset:
    """Trials of one dataset plus what their modalities and labels mean.

    Attributes
    ----------
    name : str
        Dataset kind: 'seed', 'seed_iv', 'seed_v', 'deap', 'dreamer', 'synthetic' or 'recording'.
    trials : list of Trial
        In (subject, session, trial) order.
    modalities : dict of str to ModalityInfo
    class_names : tuple of str | None
        Names of ``Trial.label`` values (categorical datasets).
    rating_scales : dict of str to (float, float)
        Range of each rating (e.g. ``{'valence': (1, 9)}``).
    source : str
        Folder or file the dataset was read from.
    """

    name: str
    trials: list[Trial]
    modalities: dict[str, ModalityInfo]
    class_names: tuple[str, ...] | None = None
    rating_scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        keys = [t.key for t in self.trials]
        if len(set(keys)) != len(keys):
            dupes = sorted(k for k, c in Counter(keys).items() if c > 1)
            raise DatasetError(f"dataset {self.name!r} has duplicate trials {dupes[:5]}.")
        for t in self.trials:
            if set(t.features) != set(self.modalities):
                raise DatasetError(
                    f"subject {t.subject} session {t.session} trial {t.trial} has modalities "
                    f"{sorted(t.features)}, the dataset declares {sorted(self.modalities)}."
                )
            for m, f in t.features.items():
                if f.shape[1] != self.modalities[m].dim:
                    raise DatasetError(
                        f"subject {t.subject} session {t.session} trial {t.trial}: '{m}' features have "
                        f"D={f.shape[1]}, the dataset declares D={self.modalities[m].dim}."
                    )

    @property
    def subjects(self) -> list[str]:
        """Subject ids in first-appearance order."""
        return list(dict.fromkeys(t.subject for t in self.trials))

    def sessions(self, subject: str) -> list[int]:
        """Session numbers of one subject, in order."""
        return sorted({t.session for t in self.trials if t.subject == subject})

    def select(self, *, subjects=None, sessions=None) -> list[Trial]:
        """Trials of the given subjects and/or sessions (None = all), in dataset order."""
        return [
            t
            for t in self.trials
            if (subjects is None or t.subject in subjects) and (sessions is None or t.session in sessions)
        ]

    def summary(self) -> dict[str, Any]:
        """JSON-ready overview: subjects, sessions, trials, modalities with shapes, class balance."""
        out: dict[str, Any] = {
            "dataset": self.name,
            "source": self.source,
            "n_subjects": len(self.subjects),
            "subjects": self.subjects,
            "sessions_per_subject": {s: self.sessions(s) for s in self.subjects},
            "n_trials": len(self.trials),
            "n_windows": int(sum(t.n_windows for t in self.trials)),
            "modalities": {
                m: {
                    "dim": info.dim,
                    "spacing_s": info.spacing_s,
                    "description": info.description,
                    "reproducible_online": info.reproducible_online,
                    "raw": any(m in t.raw for t in self.trials),
                }
                for m, info in self.modalities.items()
            },
        }
        if self.class_names is not None:
            counts = Counter(t.label for t in self.trials)
            out["class_balance"] = {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}
        if self.rating_scales:
            out["ratings"] = {
                r: {
                    "scale": list(scale),
                    "mean": float(np.mean([t.ratings[r] for t in self.trials if r in t.ratings] or [np.nan])),
                }
                for r, scale in self.rating_scales.items()
            }
        return out
