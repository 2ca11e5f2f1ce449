"""Linear heads: multinomial logistic regression on fixed features, with its regularisation chosen honestly.

The head of every method of the label-efficiency benchmark (``docs/design/CALIBRATION.md`` §1-2) is
the same model, so the methods differ only in the features it reads: window means of the normalised
features (LR), their CCA projection (CCA-LR), or a frozen network's shared embedding (M2S-pop,
CLIP-pop, S-pop, M2S-subject). Logistic regression, not the paper's MLP: with one or two labelled
trials per class (tens of strongly correlated windows) a convex model with one regularisation knob is
what can be fitted and tuned reliably, it trains in milliseconds (the live service fits it off the
hot path without torch), and it exports as one matrix product (:meth:`LinearHead.to_torch`).

The inverse regularisation ``C`` is chosen on data the test never touches (:func:`choose_c`):
leave-one-group-out over whole trials or subjects; the caller decides what a group is.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from signals._checks import check_type
from training.metrics import balanced_accuracy

logger = logging.getLogger(__name__)

#: Inverse regularisation strengths tried by :func:`choose_c` (scikit-learn's ``C``).
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
#: ``C`` when nothing can choose it (one group only): scikit-learn's default.
DEFAULT_C = 1.0


def window_means(x: np.ndarray) -> np.ndarray:
    """The fixed-length feature of a window: the mean of its T normalised feature vectors.

    Parameters
    ----------
    x : array, shape (N, T, D)

    Returns
    -------
    array of float64, shape (N, D)
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"windows must have shape (N, T, D), got {x.shape}.")
    return x.mean(axis=1, dtype=np.float64)


def _check_features(z, y=None, name: str = "features") -> tuple[np.ndarray, np.ndarray | None]:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, F) with N >= 1, got {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    if y is None:
        return z, None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {y.shape}.")
    return z, y.astype(np.int64)


@dataclass
class LinearHead:
    """Multinomial logistic regression ``softmax(z @ coef.T + intercept)`` over ``n_classes`` classes.

    Attributes
    ----------
    n_classes : int
        Classes the head scores (a class absent from the training labels gets a logit of -inf
        margin: its weights are zero and its intercept very low, so it is never predicted).
    c : float
        Inverse L2 regularisation strength (scikit-learn's ``C``).
    coef : array, shape (n_classes, F)
    intercept : array, shape (n_classes,)
    """

    n_classes: int
    c: float = DEFAULT_C
    coef: np.ndarray = field(default=None, repr=False)
    intercept: np.ndarray = field(default=None, repr=False)

    def fit(self, z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> LinearHead:
        """Fit on features ``z`` (N, F) and class indices ``y`` (N,), optionally weighted; returns self."""
        from sklearn.linear_model import LogisticRegression

        z, y = _check_features(z, y)
        present = np.unique(y)
        if present.size < 2:
            raise ValueError(
                f"a head needs windows of at least two classes, got only class {present.tolist()}."
            )
        if present.min() < 0 or present.max() >= self.n_classes:
            raise ValueError(f"labels must lie in [0, {self.n_classes}), got {present.tolist()}.")
        model = LogisticRegression(C=float(self.c), max_iter=2000)
        with warnings.catch_warnings():
            # A head on a handful of near-separable windows may stop at max_iter; its weights are still usable.
            warnings.simplefilter("ignore", category=UserWarning)
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(z, y, sample_weight=sample_weight)
        coef = np.zeros((self.n_classes, z.shape[1]))
        intercept = np.full(self.n_classes, -1e4)
        if present.size == 2:  # scikit-learn's binary form: one weight vector for the second class
            coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
            intercept[present[0]] = 0.0
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        self.coef, self.intercept = coef, intercept
        return self

    def _ready(self) -> None:
        if self.coef is None:
            raise RuntimeError("the head is not fitted; call fit(z, y) first.")

    def decision(self, z: np.ndarray) -> np.ndarray:
        """Logits, shape (N, n_classes)."""
        self._ready()
        z, _ = _check_features(z)
        if z.shape[1] != self.coef.shape[1]:
            raise ValueError(f"the head takes {self.coef.shape[1]} features, got {z.shape[1]}.")
        return z @ self.coef.T + self.intercept

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Class index of each row, shape (N,)."""
        return self.decision(z).argmax(axis=1)

    def to_torch(self):
        """The head as a ``torch.nn.Linear`` (F -> n_classes) with the fitted weights, for export."""
        import torch
        from torch import nn

        self._ready()
        lin = nn.Linear(self.coef.shape[1], self.n_classes)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(self.coef, dtype=torch.float32))
            lin.bias.copy_(torch.as_tensor(self.intercept, dtype=torch.float32))
        return lin.eval()

    def to_dict(self) -> dict:
        """JSON-able form."""
        self._ready()
        return {
            "n_classes": self.n_classes,
            "c": self.c,
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }


@dataclass(frozen=True)
class CChoice:
    """What :func:`choose_c` found: the chosen ``C`` and the held-out score of each candidate."""

    c: float
    scores: dict[float, float]
    selected_on: str


def choose_c(
    z: np.ndarray,
    y: np.ndarray,
    groups: Sequence,
    n_classes: int,
    *,
    grid: Sequence[float] = C_GRID,
    selected_on: str = "leave-one-group-out",
    max_folds: int | None = None,
    fixed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    weight: float = 1.0,
) -> CChoice:
    """Choose ``C`` by leave-one-group-out balanced accuracy (ties: the stronger regularisation).

    Parameters
    ----------
    z : array, shape (N, F)
    y : array, shape (N,)
    groups : sequence, length N
        A window's group (its trial, or its subject): a fold holds out one whole group, so correlated
        windows of one trial never sit on both sides.
    n_classes : int
    grid : sequence of float
    selected_on : str
        Recorded in the result (e.g. 'leave-one-trial-out on the calibration trials').
    max_folds : int | None
        Use at most this many groups as held-out folds (evenly spaced), for speed.
    fixed : (z, y, sample_weight) | None
        Extra labelled windows in every training fold and never held out (e.g. other subjects'
        windows beside a participant's calibration trials).
    weight : float
        Sample weight of the ``z`` windows (the ``fixed`` ones carry their own).

    Returns
    -------
    CChoice
        With a single group (nothing to hold out) the choice is :data:`DEFAULT_C`, said so in
        ``selected_on``.
    """
    z, y = _check_features(z, y)
    groups = np.asarray(list(groups), dtype=object)
    if groups.shape[0] != z.shape[0]:
        raise ValueError(f"groups must have one entry per window ({z.shape[0]}), got {groups.shape[0]}.")
    check_type(n_classes, int, "n_classes")
    uniq = list(dict.fromkeys(groups.tolist()))
    if len(uniq) < 2 or len(grid) == 1:
        return CChoice(float(grid[0]) if len(grid) == 1 else DEFAULT_C, {}, "default (one group only)")
    held = uniq
    if max_folds is not None and len(uniq) > max_folds:
        held = [uniq[i] for i in np.linspace(0, len(uniq) - 1, max_folds).round().astype(int)]
    scores: dict[float, float] = {}
    for c in grid:
        per_fold = []
        for g in held:
            test = groups == g
            train = ~test
            if fixed is None and np.unique(y[train]).size < 2:
                continue
            head = fit_with(LinearHead(n_classes, c), z[train], y[train], weight, fixed)
            per_fold.append((head.predict(z[test]), y[test]))
        if not per_fold:
            continue
        # Pooled over folds: one held-out trial holds one class, so a per-fold balanced accuracy is meaningless.
        pred = np.concatenate([p for p, _ in per_fold])
        true = np.concatenate([t for _, t in per_fold])
        scores[float(c)] = balanced_accuracy(true, pred, n_classes)
    if not scores:
        return CChoice(DEFAULT_C, {}, "default (no fold had two classes to train on)")
    return CChoice(best_c(scores), scores, selected_on)


def best_c(scores: dict[float, float]) -> float:
    """The ``C`` with the best score; ties go to the smaller ``C`` (the stronger regularisation)."""
    best = max(scores.values())
    return min(c for c, s in scores.items() if s >= best - 1e-12)


def fit_with(
    head: LinearHead,
    z: np.ndarray,
    y: np.ndarray,
    weight: float = 1.0,
    fixed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> LinearHead:
    """Fit ``head`` on ``z`` (each window weighing ``weight``) plus the ``fixed`` weighted windows."""
    if fixed is None:
        return head.fit(z, y, None if weight == 1.0 else np.full(len(y), weight))
    fz, fy, fw = fixed
    return head.fit(
        np.concatenate([z, fz]), np.concatenate([y, fy]), np.concatenate([np.full(len(y), weight), fw])
    )
