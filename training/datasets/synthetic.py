"""The synthetic multimodal dataset (:mod:`signals.synthetic`) as featurised, paired trials.

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

from .base import DatasetError, EmotionDataset, RawSignal, Trial
from .pairing import check_modalities, modality_info, pair_frames
from .spec_options import resolve_specs

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


def _check_specs(config: SyntheticConfig, specs: Mapping[str, AnySpec], wanted) -> None:
    channels = {"eeg": config.eeg.channel_names, "ecg": config.ecg.channel_names, "pps": PPS_CHANNELS}
    for m, spec in specs.items():
        if not isinstance(spec, (DESpec, EyeSpec, HrvSpec, PpsSpec)):
            raise TypeError(f"specs['{m}'] must be a FeatureSpec, got {type(spec).__name__}.")
        sfreq = getattr(config, m).sfreq
        if abs(spec.sfreq - sfreq) > 1e-9 * sfreq:
            raise DatasetError(
                f"specs['{m}'].sfreq is {spec.sfreq} Hz; the generator's {m} runs at {sfreq} Hz."
            )
        if m in channels and not set(spec.channels) <= set(channels[m]):
            raise DatasetError(
                f"specs['{m}'] asks for channels {sorted(set(spec.channels) - set(channels[m]))} that the "
                f"generator's {m} does not have; it has {list(channels[m])}."
            )
    hops = {m: specs[m].hop_s for m in wanted}
    if len(set(hops.values())) > 1:
        raise DatasetError(
            f"all modalities must share one hop_s to be paired; got {hops}. Give each the same hop "
            "(--hop-s MOD=SECONDS for every modality, or spec_overrides)."
        )


def _trial(gen: SyntheticTrial, specs: dict[str, AnySpec], include_raw: bool) -> Trial:
    frames, raw = {}, {}
    for m, spec in specs.items():
        names = gen.channel_names[m]
        x = gen.signals[m][[names.index(c) for c in spec.channels]]
        frames[m] = spec.compute(x)
        if include_raw:
            raw[m] = RawSignal(x, gen.sfreq[m], tuple(spec.channels), spec.unit)
    where = f"synthetic subject {gen.subject} session {gen.session + 1} trial {gen.trial + 1}"
    feats, segments = pair_frames(frames, gen.sfreq, where=where)
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
    config = _config(path_or_config)
    wanted = check_modalities(modalities, MODALITIES, "the synthetic generator")
    chosen = resolve_specs(default_specs(config, hop_s=hop_s), specs, spec_overrides, wanted, "the generator")
    _check_specs(config, chosen, wanted)
    if subjects is None:
        subject_ids = list(range(config.n_subjects))
    else:
        if isinstance(subjects, (str, int)):
            subjects = [subjects]
        try:
            subject_ids = [int(s) for s in subjects]
        except (TypeError, ValueError):
            raise DatasetError(
                f"synthetic subjects are '0'..'{config.n_subjects - 1}', got {subjects}."
            ) from None
        bad = [s for s in subject_ids if not 0 <= s < config.n_subjects]
        if bad:
            raise DatasetError(
                f"subjects {bad} do not exist; the config has subjects 0..{config.n_subjects - 1}."
            )
    if n_jobs is None:
        n_jobs = _available_cores()
    elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1 or None, got {n_jobs!r}.")
    n_jobs = min(n_jobs, len(subject_ids))
    if n_jobs == 1:
        per_subject = [_subject_trials(config, s, chosen, include_raw) for s in subject_ids]
    else:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(_subject_trials, config, s, chosen, include_raw) for s in subject_ids]
            per_subject = [f.result() for f in futures]
    trials = [t for ts in per_subject for t in ts]
    logger.info("synthetic: %d subjects, %d trials, modalities %s", len(subject_ids), len(trials), wanted)
    infos = {m: modality_info(chosen[m], f"synthetic {m}, {chosen[m].kind} features") for m in wanted}
    return EmotionDataset(
        NAME, trials, infos, class_names=tuple(config.class_names), source=_source(path_or_config)
    )


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _source(path_or_config) -> str:
    if isinstance(path_or_config, (str, Path)):
        return str(path_or_config)
    return (
        "signals.synthetic (config object)" if path_or_config is not None else "signals.synthetic (defaults)"
    )


__all__: Sequence[str] = ("NAME", "DEFAULT_HOP_S", "DEFAULT_WINDOWS_S", "default_specs", "detect", "load")
