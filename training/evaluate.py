"""Cross-modal evaluation: the A→B matrix of balanced accuracy, Cohen's kappa and F1.

For a training modality A (its classifier fitted on A's frozen embedding) and a test modality B,
modality B's test windows go through **B's** frozen ER encoder + projection and then **A's**
classifier (M2S-SPEC §5): the shared 32-d embedding space is what lets a classifier trained on one
modality read another. A→A is the unimodal setting.

Results of one split are ``{"A->B": {"balanced_accuracy", "kappa", "f1", "confusion"}}``;
:func:`summarise_matrices` turns the splits (subjects) into mean/std per pair and metric.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from signals._checks import check_type, ensure_int
from training.finetune import embed
from training.metrics import METRIC_NAMES, classification_metrics, confusion_matrix, mean_std

logger = logging.getLogger(__name__)


def pair_key(a: str, b: str) -> str:
    """The matrix key of training modality ``a`` tested on ``b``: ``"a->b"``."""
    return f"{a}->{b}"


def parse_pair(key: str) -> tuple[str, str]:
    """Inverse of :func:`pair_key`."""
    a, sep, b = key.partition("->")
    if not sep or not a or not b:
        raise ValueError(f"a matrix key looks like 'eeg->eye', got {key!r}.")
    return a, b


class EmbeddingClassifier(nn.Module):
    """Windows of one modality → that modality's frozen embedder → a classifier → logits.

    ``EmbeddingClassifier(model.embedder("eye"), classifiers["eeg"])`` is the EEG→EYE predictor.
    """

    def __init__(self, embedder: nn.Module, classifier: nn.Module):
        super().__init__()
        self.embedder = embedder
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> logits (B, n_classes)."""
        return self.classifier(self.embedder(x))


@torch.no_grad()
def predict_embedded(
    model: nn.Module, modality: str, classifier: nn.Module, x: np.ndarray, *, batch_size: int = 1024
) -> np.ndarray:
    """Class predictions of ``classifier`` on modality ``modality``'s windows through ``model``'s embedder.

    Parameters
    ----------
    model : M2S
    modality : str
        Test modality B (its embedder is used).
    classifier : nn.Module
        Classifier on the shared embedding (trained on any modality A).
    x : array, shape (N, T, D_B)

    Returns
    -------
    y_pred : array of int64, shape (N,)
    """
    embedder = model.embedder(modality)
    device = next(embedder.parameters()).device
    z = embed(embedder, x, batch_size=batch_size, device=device)
    was = classifier.training
    classifier.eval()
    logits = classifier.to(device)(z)
    classifier.train(was)
    return logits.argmax(1).cpu().numpy().astype(np.int64)


@torch.no_grad()
def predict_direct(net: nn.Module, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Class predictions of a windows-to-logits network (e.g. the supervised baseline), shape (N,)."""
    device = next(net.parameters()).device
    was = net.training
    net.eval()
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    out = [net(xt[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, xt.shape[0], batch_size)]
    net.train(was)
    return torch.cat(out).numpy().astype(np.int64)


def _pair_result(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    out: dict[str, Any] = classification_metrics(y_true, y_pred, n_classes)
    out["confusion"] = confusion_matrix(y_true, y_pred, n_classes).tolist()
    out["n_windows"] = int(y_true.size)
    return out


def evaluate_matrix(
    model: nn.Module,
    classifiers: Mapping[str, nn.Module],
    x_test: Mapping[str, np.ndarray],
    y_test: np.ndarray,
    n_classes: int,
    *,
    test_modalities: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate every training modality's classifier on every test modality of one split.

    Parameters
    ----------
    model : M2S
        Pretrained network whose embedders encode the test windows.
    classifiers : dict of str to nn.Module
        Training modality A -> its fine-tuned classifier.
    x_test : dict of str to array, shape (N, T, D_B)
        Paired test windows per modality (``Windows.x``).
    y_test : array of int, shape (N,)
    n_classes : int
    test_modalities : sequence of str | None
        Modalities B to test on (None = every modality of ``x_test``).

    Returns
    -------
    matrix : dict
        ``{"A->B": {"balanced_accuracy": float, "kappa": float, "f1": float,
        "confusion": list of lists (n_classes, n_classes), "n_windows": int}}`` in (A, B) order.
    """
    check_type(classifiers, Mapping, "classifiers")
    check_type(x_test, Mapping, "x_test")
    n_classes = ensure_int(n_classes, "n_classes")
    y_test = np.asarray(y_test)
    if not classifiers:
        raise ValueError("classifiers is empty; fine-tune at least one training modality first.")
    test_modalities = list(x_test) if test_modalities is None else list(test_modalities)
    missing = [b for b in test_modalities if b not in x_test]
    if missing:
        raise ValueError(f"no test windows for modalities {missing}; x_test has {sorted(x_test)}.")
    for b in test_modalities:
        if np.asarray(x_test[b]).shape[0] != y_test.shape[0]:
            raise ValueError(
                f"x_test[{b!r}] has {np.asarray(x_test[b]).shape[0]} windows but y_test has {y_test.shape[0]}."
            )
    if y_test.shape[0] == 0:
        raise ValueError("the test split has no windows; check seq_len and the trial lengths.")
    matrix = {}
    for a, clf in classifiers.items():
        for b in test_modalities:
            y_pred = predict_embedded(model, b, clf, x_test[b])
            matrix[pair_key(a, b)] = _pair_result(y_test, y_pred, n_classes)
    return matrix


def evaluate_direct(
    nets: Mapping[str, nn.Module], x_test: Mapping[str, np.ndarray], y_test: np.ndarray, n_classes: int
) -> dict[str, dict[str, Any]]:
    """A→A results of per-modality end-to-end networks (the supervised baseline); same layout as
    :func:`evaluate_matrix`."""
    y_test = np.asarray(y_test)
    return {
        pair_key(a, a): _pair_result(y_test, predict_direct(net, x_test[a]), n_classes)
        for a, net in nets.items()
    }


def summarise_matrices(per_split: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean and std over splits (subjects) of each pair's metrics.

    Parameters
    ----------
    per_split : sequence of dict
        One :func:`evaluate_matrix` result per split, all with the same pairs.

    Returns
    -------
    summary : dict
        ``{"A->B": {"balanced_accuracy": {"mean", "std", "n"}, "kappa": {...}, "f1": {...},
        "confusion": summed confusion matrix}}``.
    """
    if not per_split:
        raise ValueError("no split results to summarise.")
    pairs = list(per_split[0])
    out: dict[str, dict[str, Any]] = {}
    for p in pairs:
        rows = []
        for i, m in enumerate(per_split):
            if p not in m:
                raise ValueError(
                    f"split {i} has no result for {p!r}; every split must evaluate the same pairs."
                )
            rows.append({k: m[p][k] for k in METRIC_NAMES})
        out[p] = dict(mean_std(rows))
        out[p]["confusion"] = np.sum([np.asarray(m[p]["confusion"]) for m in per_split], axis=0).tolist()
    return out
