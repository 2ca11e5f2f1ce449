"""The participant's head: logistic regression on shared embeddings, C and validation by leave-one-trial-out.

Why logistic regression (:class:`training.heads.LinearHead`, scikit-learn): with two or three
labelled trials per class (tens of strongly correlated windows) a convex model with one
regularisation knob is what can be fitted and tuned reliably; it fits in milliseconds on a CPU
without torch; it exports as one matrix product (:mod:`models.calibrated`); and it is the head the
label-efficiency benchmark measures (``training.label_efficiency``), so what the benchmark reports
is what the service fits.

Every choice is made inside the calibration trials: the served head's ``C`` by leave-one-trial-out
balanced accuracy (:func:`training.heads.choose_c`, ties to the stronger regularisation). The
reported validation is *nested* leave-one-trial-out: for each held-out trial, ``C`` is chosen again
by leave-one-trial-out on the other trials only, so the held-out trial never influences the
setting it is scored with (choosing ``C`` on the same folds that are reported would report the best
of the grid: optimistic). A cross-modal head (fitted on ``train_modality``) is validated on every
other modality's windows of the held-out trial, beside that modality's own head when it has
labelled windows.

numpy and scikit-learn only (no torch, no onnxruntime): a pure function of the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.calibrated import LinearHeadWeights
from training.heads import LinearHead, choose_c
from training.metrics import balanced_accuracy

#: Labelled trials each class needs before a fit (leave-one-trial-out keeps one to train on).
MIN_TRIALS_PER_CLASS = 2
#: Most held-out folds of the reported validation: up to this many trials each is its own fold; beyond,
#: trials are dealt round-robin (in recording order) into this many folds of whole trials.
MAX_FOLDS = 8
#: Most held-out trials of each inner choice of C (evenly spaced, :func:`training.heads.choose_c`).
MAX_INNER_FOLDS = 5


@dataclass(frozen=True)
class LabelledEmbeddings:
    """One modality's labelled calibration windows, embedded.

    Attributes
    ----------
    z : array, shape (N, E)
        Shared embeddings of the participant-normalised windows.
    y : array of int, shape (N,)
        Class index of each window.
    trials : array of int, shape (N,)
        Calibration trial of each window (the same trial index across modalities).
    """

    z: np.ndarray
    y: np.ndarray
    trials: np.ndarray


@dataclass
class HeadFit:
    """What :func:`fit_heads` returns.

    Attributes
    ----------
    heads : dict of str to LinearHeadWeights
        By the modality whose windows fitted it.
    serve : dict of str to str
        Served modality -> the head (its key in ``heads``) serving it.
    c : dict of str to float
        Chosen inverse regularisation per head.
    c_scores : dict of str to dict
        Leave-one-trial-out balanced accuracy of every candidate ``C``, per head (what chose ``C``;
        the best of them is optimistic, the nested ``per_modality`` scores are not).
    per_modality : dict of str to dict
        ``balanced_accuracy``, ``head``, ``n_windows`` and ``own_head_balanced_accuracy`` per served modality.
    balanced_accuracy : float | None
        The train modality's, or the mean over own-modality heads (None: nothing could be held out).
    """

    heads: dict[str, LinearHeadWeights]
    serve: dict[str, str]
    c: dict[str, float]
    c_scores: dict[str, dict[float, float]]
    per_modality: dict[str, dict] = field(default_factory=dict)
    balanced_accuracy: float | None = None


def trials_per_class(data: LabelledEmbeddings, n_classes: int) -> list[int]:
    """Distinct trials per class index among ``data``'s windows."""
    counts = [0] * n_classes
    for trial in np.unique(data.trials):
        counts[int(data.y[data.trials == trial][0])] += 1
    return counts


def _folds(trials: np.ndarray) -> dict[int, int]:
    """Trial -> held-out fold: each trial its own fold up to :data:`MAX_FOLDS` trials, else round-robin."""
    order = list(dict.fromkeys(np.asarray(trials).tolist()))  # recording order
    return {t: i % MAX_FOLDS for i, t in enumerate(order)}


def _loto_predictions(source: LabelledEmbeddings, n_classes: int, targets: dict[str, LabelledEmbeddings]):
    """Nested held-out predictions for each target's windows: per fold of whole trials, ``C`` chosen by
    leave-one-trial-out on ``source``'s other trials, a head fitted on them, the fold's windows predicted."""
    folds = _folds(source.trials)
    source_fold = np.array([folds[t] for t in source.trials.tolist()])
    preds = {m: np.full(len(t.y), -1, dtype=np.int64) for m, t in targets.items()}
    for fold in sorted(set(folds.values())):
        train = source_fold != fold
        if np.unique(source.y[train]).size < 2:
            continue
        c = choose_c(
            source.z[train], source.y[train], source.trials[train], n_classes, max_folds=MAX_INNER_FOLDS
        ).c
        head = LinearHead(n_classes, c).fit(source.z[train], source.y[train])
        for m, t in targets.items():
            held = np.array([folds.get(x, -1) == fold for x in t.trials.tolist()], dtype=bool)
            if held.any():
                preds[m][held] = head.predict(t.z[held])
    return preds


def _score(t: LabelledEmbeddings, pred: np.ndarray, n_classes: int) -> float | None:
    """Balanced accuracy of the held-out predictions (None when no window could be predicted)."""
    ok = pred >= 0
    return float(balanced_accuracy(t.y[ok], pred[ok], n_classes)) if ok.any() else None


def fit_head(d: LabelledEmbeddings, n_classes: int):
    """One head on ``d``: ``C`` by leave-one-trial-out over at most :data:`MAX_FOLDS` trials, then a fit on every
    window. Returns the head's weights and the choice of ``C`` (its scores)."""
    choice = choose_c(
        d.z,
        d.y,
        d.trials,
        n_classes,
        selected_on="leave-one-trial-out on the calibration trials",
        max_folds=MAX_FOLDS,
    )
    head = LinearHead(n_classes, choice.c).fit(d.z, d.y)
    return LinearHeadWeights(head.coef, head.intercept), choice


def fit_heads(
    data: dict[str, LabelledEmbeddings], n_classes: int, train_modality: str | None = None
) -> HeadFit:
    """Fit the participant's head(s) and validate them by leave-one-trial-out.

    Parameters
    ----------
    data : dict of str to LabelledEmbeddings
        Per modality with labelled windows.
    n_classes : int
    train_modality : str | None
        Fit one head on this modality and serve every modality of ``data`` with it; None: each
        modality its own head.

    Returns
    -------
    HeadFit

    Raises
    ------
    ValueError
        ``data`` is empty or ``train_modality`` is not in it. (Enough trials per class is the
        caller's check: :func:`trials_per_class`, :data:`MIN_TRIALS_PER_CLASS`.)
    """
    if not data:
        raise ValueError("no modality has labelled windows yet.")
    if train_modality is not None and train_modality not in data:
        raise ValueError(
            f"train_modality {train_modality!r} has no labelled windows in this calibration; modalities with "
            f"labelled windows: {', '.join(sorted(data))}."
        )
    sources = [train_modality] if train_modality is not None else sorted(data)
    heads, c, c_scores = {}, {}, {}
    for source in sources:
        heads[source], choice = fit_head(data[source], n_classes)
        c[source], c_scores[source] = choice.c, choice.scores
    serve = {m: (train_modality or m) for m in sorted(data)}
    served = {}  # held-out predictions of every modality by the head serving it
    for source in sources:
        targets = {m: d for m, d in data.items() if serve[m] == source}
        served.update(_loto_predictions(data[source], n_classes, targets))
    own = {}  # beside a cross-modal head: each other modality's own head, C chosen the same way
    for m, d in data.items():
        if serve[m] != m:
            own[m] = _loto_predictions(d, n_classes, {m: d})[m]
    per_modality: dict[str, dict] = {}
    for m, d in data.items():
        pred = served[m]
        per_modality[m] = {
            "balanced_accuracy": _score(d, pred, n_classes),
            "head": serve[m],
            "n_windows": int(len(d.y)),
            "own_head_balanced_accuracy": None if serve[m] == m else _score(d, own[m], n_classes),
        }
    scores = [v["balanced_accuracy"] for v in per_modality.values() if v["balanced_accuracy"] is not None]
    overall = (
        per_modality[train_modality]["balanced_accuracy"]
        if train_modality is not None
        else (float(np.mean(scores)) if scores else None)
    )
    return HeadFit(heads, serve, c, c_scores, per_modality, overall)


__all__ = ["MIN_TRIALS_PER_CLASS", "HeadFit", "LabelledEmbeddings", "fit_heads", "trials_per_class"]
