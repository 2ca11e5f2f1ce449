"""Windows of T consecutive, normalised feature vectors inside each trial (the feature pipeline's rule)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from signals._checks import check_type, ensure_int
from signals.pipeline import cut_windows, window_ends
from training.datasets.base import Trial

from .normaliser import Normaliser
from .tasks import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Windows:
    """Samples of T consecutive, normalised feature vectors, each inside one trial.

    Attributes
    ----------
    x : dict of str to array of float32, shape (N, T, D)
        Normalised windows per modality; window ``i`` of every modality covers the same positions
        of the same trial (paired).
    y : array of int64, shape (N,)
        Class index of each window (its trial's class).
    trial_keys : list of tuple
        (subject, session, trial) of each window, N entries.
    starts : array of int64, shape (N,)
        Index of the window's first feature vector within its trial.
    seq_len : int
        T.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    trial_keys: list[tuple[str, int, int]]
    starts: np.ndarray
    seq_len: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def make_windows(
    trials: Sequence[Trial],
    task: Task,
    seq_len: int,
    *,
    normaliser: Normaliser,
    modalities: Sequence[str] | None = None,
    stride: int = 1,
) -> Windows:
    """Cut windows of ``seq_len`` consecutive feature vectors inside each trial.

    A window never crosses a trial boundary: trials are cut one at a time. Inside a trial the
    windows follow the live feature pipeline's rule (:func:`signals.pipeline.window_ends`): never
    across a segment edge (``Trial.segments``: a gap in the recording) nor over a vector with a NaN
    or inf entry in any modality. Every modality is cut at the same positions, so the windows are
    paired across modalities. A trial with no such run of ``seq_len`` vectors contributes nothing
    (logged as a warning).

    Parameters
    ----------
    trials : sequence of Trial
    task : Task
        Gives each window its class (that of its trial).
    seq_len : int
        T, the number of consecutive feature vectors per window (5 in the paper).
    normaliser : Normaliser
        Statistics fitted on the training trials (e.g. ``Split.normaliser``).
    modalities : sequence of str | None
        Modalities to cut (None = all the normaliser's).
    stride : int
        Step between window starts, in feature vectors (1 = every position, as the paper).

    Returns
    -------
    Windows
        With ``sum(max(0, (W - T) // stride + 1))`` windows over the trials' lengths W when the
        trials are gap-free and finite.
    """
    check_type(task, Task, "task")
    check_type(normaliser, Normaliser, "normaliser")
    seq_len = ensure_int(seq_len, "seq_len")
    stride = ensure_int(stride, "stride")
    if seq_len < 1 or stride < 1:
        raise ValueError(f"seq_len and stride must be >= 1, got seq_len={seq_len}, stride={stride}.")
    if isinstance(trials, Trial):
        raise TypeError("trials must be a sequence of Trial, got a single Trial; wrap it in a list.")
    trials = list(trials)
    for t in trials:
        check_type(t, Trial, "each trial")
    if modalities is None:
        modalities = normaliser.modalities
    else:
        modalities = tuple(check_type(m, str, "each modality") for m in modalities)
        unknown = [m for m in modalities if m not in normaliser.mean]
        if unknown or not modalities:
            raise ValueError(
                f"modalities {unknown or '[]'} have no normaliser statistics; choose among "
                f"{list(normaliser.modalities)}."
            )
    # First pass: check every trial and find its windows, so each output is allocated once.
    kept, short = [], []
    for t in trials:
        missing = [m for m in modalities if m not in t.features]
        if missing:
            raise ValueError(f"trial {t.key} has no features for {missing}; it has {sorted(t.features)}.")
        # The feature pipeline's rule: never across a segment edge or a non-finite vector of any modality.
        finite = np.logical_and.reduce([np.isfinite(t.features[m]).all(axis=1) for m in modalities])
        ends = window_ends(t.segment_ids, finite, seq_len, stride=stride)
        if ends.size == 0:
            short.append((t.key, t.n_windows))
        else:
            kept.append((t, ends))
    if short:
        logger.warning(
            "%d of %d trial(s) have no run of seq_len=%d finite feature vectors in one segment and give no "
            "window: %s",
            len(short),
            len(trials),
            seq_len,
            ", ".join(f"{k} (W={w})" for k, w in short[:5]),
        )
    n_total = sum(len(e) for _, e in kept)
    x = {m: np.empty((n_total, seq_len, normaliser.mean[m].shape[0]), np.float32) for m in modalities}
    y = np.empty(n_total, np.int64)
    keys: list[tuple[str, int, int]] = []
    at = 0
    for t, ends in kept:
        n = len(ends)
        y[at : at + n] = task.label(t)
        for m in modalities:
            x[m][at : at + n] = cut_windows(normaliser.apply(m, t.features[m]), ends, seq_len)
        keys += [t.key] * n
        at += n
    starts_arr = np.concatenate([e - (seq_len - 1) for _, e in kept]) if kept else np.zeros(0, np.int64)
    return Windows(x=x, y=y, trial_keys=keys, starts=starts_arr, seq_len=seq_len)
