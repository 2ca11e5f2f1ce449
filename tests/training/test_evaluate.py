"""Tests for training.evaluate: the A->B matrix uses B's embedder and A's classifier; summaries."""

import numpy as np
import pytest
import torch
from torch import nn

from training.evaluate import (
    EmbeddingClassifier,
    evaluate_direct,
    evaluate_matrix,
    pair_key,
    parse_pair,
    summarise_matrices,
)
from training.metrics import classification_metrics


class _Model(nn.Module):
    """Stub with one linear 'embedder' per modality, mapping (b, t, d) -> (b, 2)."""

    def __init__(self):
        super().__init__()
        self.embedders = nn.ModuleDict({"a": _Mean(3, sign=1.0), "b": _Mean(2, sign=-1.0)})

    def embedder(self, m):
        return self.embedders[m]


class _Mean(nn.Module):
    def __init__(self, d, sign):
        super().__init__()
        self.w = nn.Parameter(sign * torch.ones(d, 2) * torch.tensor([1.0, -1.0]))

    def forward(self, x):
        return x.mean(1) @ self.w


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=(n, 4, 3)).astype(np.float32),
        "b": rng.normal(size=(n, 4, 2)).astype(np.float32),
    }


def test_pair_keys_round_trip():
    """'a->b' keys parse back; malformed keys raise."""
    assert pair_key("eeg", "eye") == "eeg->eye" and parse_pair("eeg->eye") == ("eeg", "eye")
    with pytest.raises(ValueError, match="looks like 'eeg->eye'"):
        parse_pair("eeg-eye")


def test_matrix_uses_test_modality_embedder_and_training_classifier():
    """A->B predictions equal classifier_A(embedder_B(x_B)).argmax, metrics computed on them."""
    model = _Model()
    torch.manual_seed(0)
    clf_a, clf_b = nn.Linear(2, 2), nn.Linear(2, 2)
    x = _data()
    y = (np.arange(20) % 2).astype(np.int64)
    matrix = evaluate_matrix(model, {"a": clf_a, "b": clf_b}, x, y, 2)
    assert list(matrix) == ["a->a", "a->b", "b->a", "b->b"]
    for a, clf in (("a", clf_a), ("b", clf_b)):
        for b in ("a", "b"):
            with torch.no_grad():
                expected = clf(model.embedder(b)(torch.as_tensor(x[b]))).argmax(1).numpy()
            got = matrix[f"{a}->{b}"]
            for k, v in classification_metrics(y, expected, 2).items():
                assert got[k] == pytest.approx(v)
            assert np.sum(got["confusion"]) == 20 and got["n_windows"] == 20


def test_embedding_classifier_composes():
    """EmbeddingClassifier(embedder, classifier)(x) == classifier(embedder(x))."""
    model = _Model()
    clf = nn.Linear(2, 3)
    x = torch.as_tensor(_data()["b"])
    torch.testing.assert_close(EmbeddingClassifier(model.embedder("b"), clf)(x), clf(model.embedder("b")(x)))


def test_matrix_input_errors():
    """Empty classifiers, missing modalities, mismatched lengths and empty tests raise."""
    model, x = _Model(), _data()
    y = np.zeros(20, dtype=np.int64)
    with pytest.raises(ValueError, match="classifiers is empty"):
        evaluate_matrix(model, {}, x, y, 2)
    with pytest.raises(ValueError, match="no test windows for modalities"):
        evaluate_matrix(model, {"a": nn.Linear(2, 2)}, x, y, 2, test_modalities=["c"])
    with pytest.raises(ValueError, match="has 20 windows but y_test has 3"):
        evaluate_matrix(model, {"a": nn.Linear(2, 2)}, x, y[:3], 2)
    with pytest.raises(ValueError, match="no windows"):
        evaluate_matrix(model, {"a": nn.Linear(2, 2)}, {k: v[:0] for k, v in x.items()}, y[:0], 2)


def test_direct_evaluation_is_a_to_a_only():
    """Supervised networks give only A->A entries."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x.mean(1))

    x = _data()
    y = (np.arange(20) % 2).astype(np.int64)
    out = evaluate_direct({"a": Net()}, x, y, 2)
    assert list(out) == ["a->a"]


def test_summarise_matrices_mean_std_and_summed_confusion():
    """Mean/std (ddof 0) over splits and confusion summed."""
    m1 = {"a->b": {"balanced_accuracy": 0.5, "kappa": 0.0, "f1": 0.4, "confusion": [[1, 1], [1, 1]]}}
    m2 = {"a->b": {"balanced_accuracy": 1.0, "kappa": 1.0, "f1": 1.0, "confusion": [[2, 0], [0, 2]]}}
    s = summarise_matrices([m1, m2])["a->b"]
    assert s["balanced_accuracy"] == {"mean": 0.75, "std": 0.25, "n": 2}
    assert s["confusion"] == [[3, 1], [1, 3]]
    with pytest.raises(ValueError, match="no split results"):
        summarise_matrices([])
    with pytest.raises(ValueError, match="has no result for 'a->b'"):
        summarise_matrices([m1, {}])
