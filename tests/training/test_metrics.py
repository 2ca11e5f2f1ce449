"""Tests for training.metrics against hand-computed examples."""

import numpy as np
import pytest

from training.metrics import (
    balanced_accuracy,
    classification_metrics,
    cohen_kappa,
    confusion_matrix,
    macro_f1,
    mean_std,
)

# cm = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_confusion_matrix_counts():
    """Rows are true classes, columns predictions."""
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_confusion_matrix_pads_to_n_classes():
    """An unseen class gets an all-zero row and column."""
    cm = confusion_matrix([0, 1], [0, 1], n_classes=3)
    assert cm.shape == (3, 3) and cm[2].sum() == 0 and cm[:, 2].sum() == 0


def test_balanced_accuracy_hand_example():
    """Mean recall (2/3 + 1/2 + 1) / 3 = 13/18."""
    assert balanced_accuracy(Y_TRUE, Y_PRED) == pytest.approx(13 / 18)


def test_balanced_accuracy_ignores_classes_absent_from_truth():
    """A class never true does not count (sklearn convention): recall 1 and 1/2 -> 3/4."""
    assert balanced_accuracy([0, 1, 1], [0, 1, 2], n_classes=3) == pytest.approx(0.75)


def test_kappa_hand_example():
    """p_o = 4/6, p_e = (2*3 + 2*2 + 2*1)/36 = 1/3, kappa = (2/3 - 1/3) / (2/3) = 0.5."""
    assert cohen_kappa(Y_TRUE, Y_PRED) == pytest.approx(0.5)


def test_kappa_chance_and_perfect():
    """Constant prediction of a balanced set gives 0; perfect agreement gives 1."""
    assert cohen_kappa([0, 1, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.0)
    assert cohen_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_kappa_single_class_perfect_is_one():
    """p_e = 1 with perfect agreement is defined as 1 (not NaN)."""
    assert cohen_kappa([1, 1], [1, 1]) == 1.0


def test_macro_f1_hand_example():
    """Per-class F1 = 4/5, 2/4, 2/3 -> mean 59/90."""
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(59 / 90)


def test_macro_f1_counts_predicted_only_class_as_zero():
    """A class only predicted, never true, has F1 0 and counts: (1 + 2/3 + 0) / 3."""
    assert macro_f1([0, 1, 1], [0, 1, 2]) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_classification_metrics_keys_and_values():
    """The combined call equals the individual metrics."""
    m = classification_metrics(Y_TRUE, Y_PRED, n_classes=3)
    assert m == {
        "balanced_accuracy": pytest.approx(13 / 18),
        "kappa": pytest.approx(0.5),
        "f1": pytest.approx(59 / 90),
    }


def test_metrics_reject_bad_input():
    """Shape, dtype, range and emptiness errors say what is wrong."""
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="1-D"):
        confusion_matrix([[0]], [[0]])
    with pytest.raises(TypeError, match="integer class indices"):
        confusion_matrix([0.5], [0])
    with pytest.raises(ValueError, match="empty"):
        confusion_matrix(np.array([], dtype=int), np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        confusion_matrix([0], [0], n_classes=0)


def test_mean_std_population_std():
    """Mean and ddof=0 std over splits."""
    s = mean_std([{"a": 0.5, "b": 1.0}, {"a": 1.0, "b": 1.0}])
    assert s["a"] == {"mean": 0.75, "std": 0.25, "n": 2}
    assert s["b"]["std"] == 0.0


def test_mean_std_rejects_empty_and_mismatched():
    """Empty input and differing keys raise ValueError."""
    with pytest.raises(ValueError, match="at least one split"):
        mean_std([])
    with pytest.raises(ValueError, match="same metrics"):
        mean_std([{"a": 1.0}, {"b": 1.0}])
