"""Tests for training.finetune: frozen embedder, validation-only selection, optimistic flag, baseline S."""

import numpy as np
import pytest
import torch

from models.config import M2SConfig, ModalityConfig
from models.m2s import M2S, EmotionClassifier, SupervisedModel
from training.finetune import (
    SELECTED_ON_LAST,
    SELECTED_ON_TEST,
    SELECTED_ON_VALIDATION,
    FinetuneConfig,
    embed,
    finetune,
    freeze_embedder,
    train_supervised,
)

MODEL = M2SConfig(
    modalities=(ModalityConfig(name="eeg", dim=20, n_channels=4), ModalityConfig(name="eye", dim=6)),
    d_model=16,
    n_blocks=1,
    d_ff=32,
    n_heads=2,
    head_dim=8,
    d_ei=16,
)


def _data(n=90, seed=0, shift=1.5):
    """Windows whose mean depends on the class (3 classes), for both modalities."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = {
        "eeg": (rng.normal(size=(n, 5, 20)) + shift * y[:, None, None]).astype(np.float32),
        "eye": (rng.normal(size=(n, 5, 6)) + shift * y[:, None, None]).astype(np.float32),
    }
    return x, y


def _model():
    torch.manual_seed(0)
    return M2S(MODEL)


def _cfg(**kw):
    return FinetuneConfig(**{"epochs": 15, "batch_size": 32, "device": "cpu", "progress": False, **kw})


def test_config_validation():
    """Invalid settings raise."""
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        FinetuneConfig(epochs=0)
    with pytest.raises(ValueError, match="patience and seed"):
        FinetuneConfig(patience=-1)
    with pytest.raises(TypeError, match="optimistic_test_selection must be an instance of bool"):
        FinetuneConfig(optimistic_test_selection=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        FinetuneConfig(lr=0.0)


def test_no_gradient_reaches_frozen_embedder_and_weights_unchanged():
    """After fine-tuning on EEG, the whole M2S is bit-identical, its EEG embedder has no grads, is
    in eval mode and has requires_grad False."""
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data()
    finetune(model, "eeg", (x["eeg"], y), (x["eeg"][:30], y[:30]), 3, _cfg())
    emb = model.embedder("eeg")
    assert not emb.training
    assert all(not p.requires_grad and p.grad is None for p in emb.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_freeze_embedder_blocks_backprop():
    """A loss through a frozen embedder leaves its parameters without gradient."""
    model = _model()
    emb = freeze_embedder(model, "eye")
    clf = EmotionClassifier(MODEL.proj_dim, 3)
    x, y = _data(n=12)
    loss = torch.nn.functional.cross_entropy(clf(emb(torch.as_tensor(x["eye"]))), torch.as_tensor(y))
    loss.backward()
    assert all(p.grad is None for p in emb.parameters())
    assert all(p.grad is not None for p in clf.parameters())


def test_embed_matches_embedder_in_batches():
    """Batched embedding equals one call of the embedder in eval mode."""
    model = _model().eval()
    x, _ = _data(n=10)
    z = embed(model.embedder("eye"), x["eye"], batch_size=3)
    torch.testing.assert_close(z, model.embed("eye", torch.as_tensor(x["eye"])))


def test_selects_best_validation_epoch():
    """The kept epoch is the best validation balanced accuracy (ties: lower validation loss)."""
    model = _model()
    x, y = _data()
    xv, yv = _data(n=30, seed=1)
    r = finetune(model, "eeg", (x["eeg"], y), (xv["eeg"], yv), 3, _cfg(patience=0))
    assert r.selected_on == SELECTED_ON_VALIDATION and not r.optimistic
    keys = [(h["val_balanced_accuracy"], -h["val_loss"]) for h in r.history]
    assert r.best_epoch == 1 + max(range(len(keys)), key=lambda i: (keys[i], -i))
    assert all("test_balanced_accuracy" not in h for h in r.history)


def test_test_windows_ignored_without_optimistic_flag():
    """Passing test windows without the flag changes nothing (selection never reads them)."""
    x, y = _data()
    xv, yv = _data(n=30, seed=1)
    xt, yt = _data(n=30, seed=2)
    a = finetune(_model(), "eeg", (x["eeg"], y), (xv["eeg"], yv), 3, _cfg())
    b = finetune(_model(), "eeg", (x["eeg"], y), (xv["eeg"], yv), 3, _cfg(), test=(xt["eeg"], 2 - yt))
    assert a.best_epoch == b.best_epoch
    for k, v in a.classifier.state_dict().items():
        assert torch.equal(v, b.classifier.state_dict()[k])


def test_optimistic_flag_selects_on_test_and_is_labelled():
    """The reference protocol reads the test windows and says so."""
    x, y = _data()
    xt, yt = _data(n=30, seed=2)
    r = finetune(
        _model(), "eeg", (x["eeg"], y), None, 3, _cfg(optimistic_test_selection=True), test=(xt["eeg"], yt)
    )
    assert r.optimistic and r.selected_on == SELECTED_ON_TEST
    assert "TEST" in r.selected_on and "test_balanced_accuracy" in r.history[0]
    with pytest.raises(ValueError, match="needs the test windows"):
        finetune(_model(), "eeg", (x["eeg"], y), None, 3, _cfg(optimistic_test_selection=True))


def test_without_validation_keeps_last_epoch():
    """No validation windows: the last epoch is kept and labelled so."""
    x, y = _data()
    r = finetune(_model(), "eye", (x["eye"], y), None, 3, _cfg(epochs=4))
    assert r.best_epoch == 4 and r.selected_on == SELECTED_ON_LAST


def test_early_stopping_stops_after_patience():
    """Training stops `patience` epochs after the best validation score."""
    x, y = _data()
    xv, yv = _data(n=30, seed=1)
    r = finetune(_model(), "eeg", (x["eeg"], y), (xv["eeg"], yv), 3, _cfg(epochs=200, patience=3))
    assert len(r.history) == r.best_epoch + 3 < 200


def test_classifier_learns_separable_classes():
    """On class-shifted windows the classifier beats chance (1/3) by far on new windows, even on the
    frozen embedding of an UNTRAINED model (a random projection keeps part of the class shift)."""
    from training.evaluate import predict_embedded
    from training.metrics import balanced_accuracy

    model = _model()
    x, y = _data(n=150)
    xv, yv = _data(n=30, seed=1)
    r = finetune(model, "eeg", (x["eeg"], y), (xv["eeg"], yv), 3, _cfg(epochs=40, lr=3e-3))
    xt, yt = _data(n=60, seed=3)
    assert balanced_accuracy(yt, predict_embedded(model, "eeg", r.classifier, xt["eeg"])) > 0.6


def test_finetune_input_validation():
    """Bad shapes, empty training data and n_classes < 2 are refused."""
    x, y = _data()
    with pytest.raises(ValueError, match="must be x \\(N, T, D\\)"):
        finetune(_model(), "eeg", (x["eeg"][0], y), None, 3, _cfg())
    with pytest.raises(ValueError, match="has no windows"):
        finetune(_model(), "eeg", (x["eeg"][:0], y[:0]), None, 3, _cfg())
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        finetune(_model(), "eeg", (x["eeg"], y), None, 1, _cfg())


def test_supervised_baseline_learns_end_to_end():
    """Baseline S trains encoder and classifier from labels and beats chance clearly."""
    from training.evaluate import predict_direct
    from training.metrics import balanced_accuracy

    x, y = _data(n=150)
    xv, yv = _data(n=30, seed=1)
    r = train_supervised(MODEL, "eye", (x["eye"], y), (xv["eye"], yv), 3, _cfg(epochs=20, lr=3e-3))
    assert isinstance(r.classifier, SupervisedModel) and r.selected_on == SELECTED_ON_VALIDATION
    xt, yt = _data(n=60, seed=3)
    assert balanced_accuracy(yt, predict_direct(r.classifier, xt["eye"])) > 0.8
    with pytest.raises(KeyError, match="unknown modality"):
        train_supervised(MODEL, "ecg", (x["eye"], y), None, 3, _cfg())
