"""Classification metrics of the paper's tables: balanced accuracy, Cohen's kappa, macro F1, confusion matrix.

Pure numpy, with scikit-learn's definitions (so numbers compare with TorchEEG and the authors' code):

- balanced accuracy: mean recall over the classes present in ``y_true``;
- Cohen's kappa: ``(p_o - p_e) / (1 - p_e)`` from the confusion matrix (1.0 when ``p_e == 1`` and the
  predictions agree perfectly, as when a test set holds a single class predicted right);
- macro F1: mean over the classes present in ``y_true`` or ``y_pred`` of the per-class F1, a class with
  no true and no predicted sample never counted, an undefined F1 (0 / 0) counted as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from signals._checks import ensure_int

METRIC_NAMES: tuple[str, ...] = ("balanced_accuracy", "kappa", "f1")


def _check_labels(y_true, y_pred, n_classes) -> tuple[np.ndarray, np.ndarray, int]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of class indices, got shape {y.shape}.")
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}.")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}.")
    if y_true.size == 0:
        raise ValueError("y_true is empty; metrics need at least one sample.")
    top = int(max(y_true.max(), y_pred.max())) + 1
    if n_classes is None:
        n_classes = top
    n_classes = ensure_int(n_classes, "n_classes")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}.")
    if min(y_true.min(), y_pred.min()) < 0 or top > n_classes:
        raise ValueError(
            f"class indices must lie in [0, {n_classes}); got values from "
            f"{int(min(y_true.min(), y_pred.min()))} to {top - 1}. Pass the right n_classes."
        )
    return y_true.astype(np.int64), y_pred.astype(np.int64), n_classes


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class).

    Parameters
    ----------
    y_true, y_pred : array of int, shape (n_samples,)
        Class indices in ``[0, n_classes)``.
    n_classes : int | None
        Number of classes; None = the largest index seen plus one.

    Returns
    -------
    cm : array of int64, shape (n_classes, n_classes)
        ``cm[i, j]`` = number of samples of true class i predicted as j.
    """
    y_true, y_pred, n_classes = _check_labels(y_true, y_pred, n_classes)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _balanced_accuracy(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _kappa(cm: np.ndarray) -> float:
    n = cm.sum()
    p_o = np.trace(cm) / n
    p_e = float(np.sum(cm.sum(axis=0) * cm.sum(axis=1))) / n**2
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return float((p_o - p_e) / (1.0 - p_e))


def _macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2·TP + FP + FN
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    return float(np.mean(f1[present]))


def balanced_accuracy(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in ``y_true`` (in [0, 1]; chance = 1 / n_classes)."""
    return _balanced_accuracy(confusion_matrix(y_true, y_pred, n_classes))


def cohen_kappa(y_true, y_pred, n_classes: int | None = None) -> float:
    """Cohen's kappa: agreement corrected for chance (1 perfect, 0 chance level, < 0 worse)."""
    return _kappa(confusion_matrix(y_true, y_pred, n_classes))


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Unweighted mean of the per-class F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    return _macro_f1(confusion_matrix(y_true, y_pred, n_classes))


def classification_metrics(y_true, y_pred, n_classes: int | None = None) -> dict[str, float]:
    """The three table metrics at once.

    Returns
    -------
    metrics : dict
        ``{"balanced_accuracy": float, "kappa": float, "f1": float}`` (fractions, not percent).
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {"balanced_accuracy": _balanced_accuracy(cm), "kappa": _kappa(cm), "f1": _macro_f1(cm)}


def mean_std(values: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and population std (``ddof=0``, as the paper's tables) of each metric over splits.

    Parameters
    ----------
    values : sequence of dict
        One ``{metric: value}`` per split (subject); every dict must have the same keys.

    Returns
    -------
    summary : dict
        ``{metric: {"mean": float, "std": float, "n": int}}``.
    """
    if len(values) == 0:
        raise ValueError("mean_std needs the metrics of at least one split, got none.")
    keys = list(values[0])
    for v in values:
        if list(v) != keys:
            raise ValueError(f"every split must report the same metrics {keys}, got {list(v)}.")
    out = {}
    for k in keys:
        arr = np.array([v[k] for v in values], dtype=np.float64)
        out[k] = {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}
    return out
