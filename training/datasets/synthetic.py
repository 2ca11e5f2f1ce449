"""The synthetic multimodal dataset (:mod:`synthetic`) as featurised, paired trials.

Raw EEG, eye-tracker, ECG and peripheral signals come from the generator; each modality goes
through its :class:`~signals.spec.FeatureSpec` (``spec.compute``, the live service's path) with
ONE hop shared by all modalities (default 2 s) and per-modality windows:

=========  =====================================  ============
modality   default spec                           window
=========  =====================================  ============
eeg        DE (BCMI, SEED bands), µV              2 s
ecg        DE (BCMI, SEED bands) per lead, mV     4 s
pps        Picard statistics (6 per channel)      4 s
eye        the 33 eye-movement features           10 s buffer
=========  =====================================  ============

Vectors are stamped with the time of their window's last sample; the leading vectors of the
short-window modalities are dropped so that vector k of every modality ends at the same time (a
60-s trial gives 26 vectors with the defaults: the first ends at 10 s).

Labels are the generator's class (``class_names`` from the config); subjects are ``'0'``,
``'1'``, …, sessions and trials 1-based.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from synthetic import MODALITIES, PPS_CHANNELS, SyntheticConfig, SyntheticTrial, iter_trials

from .base import DatasetError, EmotionDataset, Trial
from .skeleton import Loader, Source, featurise, raw_signals

logger = logging.getLogger(__name__)

NAME = "synthetic"
DEFAULT_HOP_S = 2.0
DEFAULT_WINDOWS_S: dict[str, float] = {"eeg": 2.0, "ecg": 4.0, "pps": 4.0, "eye": 10.0}

AnySpec = DESpec | EyeSpec | HrvSpec | PpsSpec


def detect(path: Path) -> bool:
    """Whether ``path`` is a JSON file that parses as a :class:`SyntheticConfig`."""
    try:
        path = Path(path)
        if path.suffix.lower() != ".json" or not path.is_file():
            return False
        SyntheticConfig.from_json(path)
        return True
    except (OSError, TypeError, ValueError):
        return False


def default_specs(config: SyntheticConfig, *, hop_s: float = DEFAULT_HOP_S) -> dict[str, AnySpec]:
    """The spec of each modality used by :func:`load` (windows :data:`DEFAULT_WINDOWS_S`, one hop)."""
    w = DEFAULT_WINDOWS_S
    return {
        "eeg": DESpec(modality="eeg", sfreq=config.eeg.sfreq, channels=config.eeg.channel_names,
                      unit="uV", window_s=w["eeg"], hop_s=hop_s),
        "eye": EyeSpec(sfreq=config.eye.sfreq, window_s=w["eye"], hop_s=hop_s),
        "ecg": DESpec(modality="ecg", sfreq=config.ecg.sfreq, channels=config.ecg.channel_names,
                      unit="mV", window_s=w["ecg"], hop_s=hop_s),
        "pps": PpsSpec(sfreq=config.pps.sfreq, channels=PPS_CHANNELS, window_s=w["pps"], hop_s=hop_s),
    }  # fmt: skip


def _config(path_or_config) -> SyntheticConfig:
    if path_or_config is None:
        return SyntheticConfig()
    if isinstance(path_or_config, SyntheticConfig):
        return path_or_config
    if isinstance(path_or_config, (str, Path)):
        try:
            return SyntheticConfig.from_json(path_or_config)
        except FileNotFoundError as err:
            raise DatasetError(str(err)) from None
        except ValueError as err:
            raise DatasetError(str(err)) from None
    raise TypeError(
        f"path_or_config must be a SyntheticConfig, a path to its JSON file or None, "
        f"got {type(path_or_config).__name__}."
    )


def _trial(gen: SyntheticTrial, specs: dict[str, AnySpec], include_raw: bool) -> Trial:
    signals = {}
    for m, spec in specs.items():
        names = gen.channel_names[m]
        signals[m] = gen.signals[m][[names.index(c) for c in spec.channels]]
    where = f"synthetic subject {gen.subject} session {gen.session + 1} trial {gen.trial + 1}"
    feats, segments = featurise(specs, signals, gen.sfreq, where=where)
    raw = raw_signals(specs, signals, gen.sfreq) if include_raw else {}
    return Trial(str(gen.subject), gen.session + 1, gen.trial + 1, gen.label, {}, feats, raw, segments)


def _subject_trials(config: SyntheticConfig, subject: int, specs, include_raw: bool) -> list[Trial]:
    return [
        _trial(gen, specs, include_raw)
        for gen in iter_trials(config, modalities=tuple(specs), subjects=[subject])
    ]


def load(
    path_or_config=None,
    *,
    modalities=None,
    subjects=None,
    include_raw: bool = False,
    hop_s: float = DEFAULT_HOP_S,
    specs: Mapping[str, AnySpec] | None = None,
    spec_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int | None = None,
) -> EmotionDataset:
    """Generate and featurise a synthetic dataset.

    Parameters
    ----------
    path_or_config : SyntheticConfig | str | Path | None
        A config, the path of its JSON file, or None for the defaults (15 subjects × 1 session ×
        15 trials × 60 s, 3 classes).
    modalities : sequence of {'eeg', 'eye', 'ecg', 'pps'} | None
        Modalities to generate and featurise (None: all four). Leaving some out is faster and does
        not change the others.
    subjects : sequence of int | str | None
        Subject indices (``0``.. or ``'0'``..); None: all.
    include_raw : bool
        Keep each trial's raw signals (the spec's channels, in the spec's unit).
    hop_s : float
        The hop shared by every modality (default 2 s); ignored for modalities given in ``specs``.
    specs : dict of str to FeatureSpec | None
        Override the spec of a modality (sfreq must match the generator's; its channels, a subset
        of the generator's, pick the rows). Every modality must end up with the same ``hop_s``.
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec (the one in ``specs``, else the default), e.g.
        ``{'eeg': {'window_s': 4.0}}`` (:func:`training.datasets.spec_options.override_spec`).
    n_jobs : int | None
        Worker processes (one subject per task); 1 runs in this process, None uses every core
        this process may run on (at most one per subject). The result does not depend on it.

    Returns
    -------
    dataset : EmotionDataset
        ``name='synthetic'``, ``class_names`` from the config, trials in (subject, session,
        trial) order.

    Notes
    -----
    Cost, measured 2026-11-24 on the 2-core dev machine (OMP threads = 1, other jobs running, load
    average about 3): the default config with all four modalities took 20 s with ``n_jobs=2`` and
    33 s with ``n_jobs=1``. One subject (15 trials) takes about 2.3 s on an idle core, 80 % of it in
    the generator (its EEG above all) and 20 % in the features (eye 15 %).
    """
    return _LOADER.load(
        path_or_config,
        modalities=modalities,
        subjects=subjects,
        include_raw=include_raw,
        specs=specs,
        spec_overrides=spec_overrides,
        hop_s=hop_s,
        n_jobs=n_jobs,
    )


class _Synthetic(Loader):
    """The generator: a config instead of files, one process per subject."""

    name = NAME
    title = "synthetic"
    computed = True
    options = {"hop_s": (DEFAULT_HOP_S, None), "n_jobs": (None, None)}

    def check_path(self, path: Any) -> Any:
        return path  # a config, its JSON file or None: locate() tells them apart

    def locate(self, path: Any, options: dict[str, Any], specs: dict) -> Source:
        config = _config(path)
        return Source(
            root=_source(path),
            subjects={str(s): s for s in range(config.n_subjects)},
            modalities=MODALITIES,
            class_names=tuple(config.class_names),
            sfreqs={m: getattr(config, m).sfreq for m in MODALITIES},
            channels={"eeg": config.eeg.channel_names, "ecg": config.ecg.channel_names, "pps": PPS_CHANNELS},
            context=config,
        )

    def where(self, source: Source) -> str:
        return "the synthetic generator"

    def subject_id(self, subject: Any) -> str:
        try:
            return str(int(subject))  # '0' and 0 both name subject '0'
        except (TypeError, ValueError):
            return str(subject)

    def default_specs(self, source: Source, options: dict[str, Any]) -> dict[str, AnySpec]:
        return default_specs(source.context, hop_s=options["hop_s"])

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        return _subject_trials(source.context, source.subjects[subject], specs, include_raw)

    def read(self, source, subjects, modalities, specs, include_raw, options) -> list[Trial]:
        """Subjects in worker processes (``n_jobs``); the result does not depend on it."""
        n_jobs = options["n_jobs"]
        if n_jobs is None:
            n_jobs = _available_cores()
        elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"n_jobs must be an int >= 1 or None, got {n_jobs!r}.")
        n_jobs = min(n_jobs, len(subjects))
        if n_jobs == 1:
            return super().read(source, subjects, modalities, specs, include_raw, options)
        indices = [source.subjects[s] for s in subjects]
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(_subject_trials, source.context, s, specs, include_raw) for s in indices]
            return [t for f in futures for t in f.result()]

    def describe(self, source, modality, spec, options) -> str:
        return f"synthetic {modality}, {spec.kind} features"


_LOADER = _Synthetic()


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _source(path_or_config) -> str:
    if isinstance(path_or_config, (str, Path)):
        return str(path_or_config)
    return (
        "synthetic (config object)" if path_or_config is not None else "synthetic (defaults)"
    )


__all__: Sequence[str] = ("NAME", "DEFAULT_HOP_S", "DEFAULT_WINDOWS_S", "default_specs", "detect", "load")
