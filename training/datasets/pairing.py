"""What every loader that computes features from raw signals shares: ModalityInfo and pairing in time.

A trial's modalities are featurised separately (each at its own sampling rate and window), then
paired in time by :func:`pair_frames` so that vector ``i`` of every modality covers the same moment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from signals.streaming import FeatureFrames

from .base import ModalityInfo

logger = logging.getLogger(__name__)

AnySpec = DESpec | EyeSpec | HrvSpec | PpsSpec


def pair_frames(
    frames: Mapping[str, FeatureFrames],
    sfreqs: Mapping[str, float],
    *,
    where: str,
    tolerance_s: float | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Keep the feature vectors whose windows end at the same time in every modality.

    A vector is stamped with the time of its window's last sample, so its window ends at
    ``timestamp + 1 / sfreq``. Vectors of two modalities are paired when those end times agree
    within one sample period of the slowest modality. Vectors without a partner in every modality
    are dropped: the leading vectors of short-window modalities (a 10-s eye buffer starts later
    than a 2-s EEG window) and a trailing vector when recording lengths differ.

    Parameters
    ----------
    frames : dict of str to FeatureFrames
        Feature frames per modality, on one clock.
    sfreqs : dict of str to float
        Sampling frequency (Hz) of each modality's input.
    where : str
        What is being paired (named in errors), e.g. "subject s01 trial 3".
    tolerance_s : float | None
        Largest difference of window end times that still pairs two vectors; None: one sample
        period of the slowest modality. Loaders pass half the common hop: after a gap or NaN burst
        in one modality only, that modality's hop grid restarts at its own first sample, and a
        tolerance of one sample would drop every later vector of the trial.

    Returns
    -------
    features : dict of str to array, shape (W, D_m)
        The paired vectors, the same W for every modality, in time order.
    segments : array of int64, shape (W,)
        Continuous segment of each paired vector (``Trial.segments``): a new one starts wherever a
        modality starts a new segment (a gap or NaN burst in its signal) or a vector in between
        had no partner, so neighbours in a segment are always neighbours in time.
    """
    names = list(frames)
    if len(names) == 1:
        only = frames[names[0]]
        return {names[0]: only.features}, np.asarray(only.segments, dtype=np.int64)
    ends = {m: np.asarray(frames[m].timestamps) + 1.0 / sfreqs[m] for m in names}
    tol = (max(1.0 / sfreqs[m] for m in names) if tolerance_s is None else float(tolerance_s)) * (1 + 1e-6)
    ref = min(names, key=lambda m: len(frames[m]))
    keep = np.ones(len(frames[ref]), dtype=bool)
    index = {ref: np.arange(len(frames[ref]), dtype=np.int64)}
    for m in names:
        if m == ref:
            continue
        e = ends[m]
        if e.size == 0:
            keep[:] = False
            index[m] = np.zeros(len(keep), dtype=np.int64)
            continue
        pos = np.clip(np.searchsorted(e, ends[ref]), 1, max(e.size - 1, 1))
        left = np.clip(pos - 1, 0, e.size - 1)
        right = np.clip(pos, 0, e.size - 1)
        nearest = np.where(np.abs(e[left] - ends[ref]) <= np.abs(e[right] - ends[ref]), left, right)
        keep &= np.abs(e[nearest] - ends[ref]) <= tol
        index[m] = nearest
    out = {m: frames[m].features[index[m][keep]] for m in names}
    breaks = np.zeros(int(keep.sum()), dtype=bool)
    for m in names:
        idx = index[m][keep]
        seg = np.asarray(frames[m].segments)[idx]
        breaks[1:] |= (np.diff(idx) != 1) | (np.diff(seg) != 0)
    segments = 1 + np.cumsum(breaks, dtype=np.int64)
    lost = {m: len(frames[m]) - int(keep.sum()) for m in names}
    logger.debug("%s: paired %d vectors; dropped per modality %s", where, int(keep.sum()), lost)
    inner = {}  # vectors dropped between the first and the last pair: not a leading/trailing trim
    for m in names:
        used = index[m][keep]
        if used.size:
            inner[m] = int(used[-1] - used[0] + 1 - np.unique(used).size)
    if any(inner.values()):
        logger.warning(
            "%s: %s vector(s) inside the trial found no partner in every modality and were dropped "
            "(their windows end more than %.3g s apart); the modalities' timestamps disagree there.",
            where,
            {m: n for m, n in inner.items() if n},
            tol,
        )
    return out, segments


def modality_info(spec: AnySpec, description: str) -> ModalityInfo:
    """The :class:`ModalityInfo` of features computed with ``spec`` (spacing = the spec's hop)."""
    return ModalityInfo(
        dim=spec.n_features,
        spacing_s=float(spec.hop_s),
        description=description,
        spec=spec,
        reproducible_online=spec.reproducible_online,
        feature_names=tuple(spec.feature_names()),
    )


__all__ = ["AnySpec", "modality_info", "pair_frames"]
