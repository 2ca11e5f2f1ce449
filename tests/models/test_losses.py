"""Tests for models/losses.py: InfoNCE, contrastive loss, CLUB, M2M CPC, against hand computations."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.losses import M2MCPC, CLUBEstimator, contrastive_loss, info_nce  # noqa: E402


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def _info_nce_np(pred: np.ndarray, target: np.ndarray) -> float:
    return float(-np.diag(_log_softmax(pred @ target.T)).mean())


def test_info_nce_hand_computed():
    """InfoNCE of two known 2-d vectors, written out by hand."""
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # logits = [[1, 0], [2, 2]]: row 0 picks 0 with p = e/(e+1); row 1 picks 1 with p = 1/2
    expected = -(math.log(math.e / (math.e + 1)) + math.log(0.5)) / 2
    assert info_nce(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_leading_axes_average():
    """Leading axes are averaged: (n, b, d) gives the mean of the n per-slice losses."""
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    expected = np.mean([_info_nce_np(pred[i], target[i]) for i in range(2)])
    got = info_nce(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32))
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_contrastive_loss_matches_numpy(k):
    """Symmetric CLIP loss averaged over all modality pairs, as numpy computes it."""
    rng = np.random.default_rng(1)
    emb = [rng.normal(size=(3, 4)) for _ in range(k)]
    emb = [e / np.linalg.norm(e, axis=1, keepdims=True) for e in emb]
    scale = 1 / 0.07
    pairs = [(_info_nce_np(scale * a, b) + _info_nce_np(scale * b, a)) / 2 for a, b in combinations(emb, 2)]
    got = contrastive_loss([torch.tensor(e, dtype=torch.float32) for e in emb], torch.tensor(scale))
    assert got.item() == pytest.approx(np.mean(pairs), rel=1e-5)


def test_contrastive_loss_needs_two_modalities():
    """One modality has no pair to contrast: ValueError."""
    with pytest.raises(ValueError, match=">= 2 modalities"):
        contrastive_loss([torch.randn(3, 4)], torch.tensor(1.0))


def _estimator() -> CLUBEstimator:
    torch.manual_seed(0)
    return CLUBEstimator(x_dim=3, y_dim=2, hidden=8)


def test_club_heads_shape_and_tanh_logvar():
    """The estimator uses hidden // 2 units and a tanh-bounded log-variance."""
    est = _estimator()
    assert est.to_mean[0].out_features == 4 and est.to_logvar[0].out_features == 4
    _, logvar = est(torch.randn(50, 3) * 100)
    assert logvar.abs().max() <= 1.0


def test_club_learning_loss_is_gaussian_nll():
    """learning_loss = mean negative Gaussian log-likelihood minus the constant (d/2) log(2 pi)."""
    est = _estimator()
    x, y = torch.randn(2, 3, 3), torch.randn(2, 3, 2)
    mean, logvar = est(x.reshape(6, 3))
    nll = -torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(y.reshape(6, 2)).sum(-1).mean()
    expected = nll - math.log(2 * math.pi)  # constant of 2 dims: 2 * 0.5 * log(2 pi)
    torch.testing.assert_close(est.learning_loss(x, y), expected)


def test_club_upper_bound_hand_computed():
    """Sampled bound = mean_i [log q(y_i|x_i) - log q(y_perm(i)|x_i)] with the generator's permutation."""
    est = _estimator()
    x = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [-2.0, 1.0, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]])
    perm = torch.randperm(3, generator=torch.Generator().manual_seed(7)).numpy()
    with torch.no_grad():
        mean, logvar = (a.numpy().astype(np.float64) for a in est(x))
    yn = y.numpy().astype(np.float64)
    pos = -0.5 * ((yn - mean) ** 2 / np.exp(logvar)).sum(-1)
    neg = -0.5 * ((yn[perm] - mean) ** 2 / np.exp(logvar)).sum(-1)
    got = est.upper_bound(x, y, generator=torch.Generator().manual_seed(7))
    assert got.item() == pytest.approx((pos - neg).mean(), rel=1e-5)


def test_club_upper_bound_gradient_skips_estimator():
    """The bound's gradient reaches the features but not the estimator's parameters."""
    est = _estimator()
    x, y = torch.randn(4, 3, requires_grad=True), torch.randn(4, 2, requires_grad=True)
    est.upper_bound(x, y).backward()
    assert x.grad is not None and y.grad is not None
    assert all(p.grad is None for p in est.parameters())


def test_club_learning_loss_gradient_skips_features():
    """The estimator's NLL trains the estimator only: inputs are detached."""
    est = _estimator()
    x, y = torch.randn(4, 3, requires_grad=True), torch.randn(4, 2, requires_grad=True)
    est.learning_loss(x, y).backward()
    assert x.grad is None and y.grad is None
    assert all(p.grad is not None for p in est.parameters())


def _cpc(n_steps=2, same=0.1) -> M2MCPC:
    torch.manual_seed(0)
    return M2MCPC(names=("eeg", "eye"), d_model=4, hidden=3, n_steps=n_steps, same_modal_weight=same)


def test_cpc_two_steps_hand_computed():
    """M2M CPC with N = 2 equals the weighted sum of per-pair, per-step InfoNCE computed in numpy."""
    cpc = _cpc(n_steps=2, same=0.1)
    rng = np.random.default_rng(2)
    z = {m: torch.tensor(rng.normal(size=(5, 6, 4)), dtype=torch.float32) for m in ("eeg", "eye")}
    m_obs = 3
    with torch.no_grad():
        context = np.concatenate(
            [cpc.context[m](z[m][:, :m_obs])[0][:, -1].numpy() for m in ("eeg", "eye")], axis=1
        )
    expected = 0.0
    for source in ("eeg", "eye"):
        w = cpc.predictors[source].weight.detach().numpy()
        bias = cpc.predictors[source].bias.detach().numpy()
        guess = (context @ w.T + bias).reshape(5, 2, 4)  # W_1 and W_2 stacked in the output
        for target in ("eeg", "eye"):
            steps = [_info_nce_np(guess[:, n], z[target][:, m_obs + n].numpy()) for n in range(2)]
            expected += (0.1 if source == target else 1.0) * np.mean(steps)
    got = cpc(z, n_observed=m_obs)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_cpc_same_modal_weight_zero_keeps_cross_terms_only():
    """With same_modal_weight = 0 the loss drops exactly the same-modality terms."""
    full, cross = _cpc(same=1.0), _cpc(same=0.0)
    cross.load_state_dict(full.state_dict())
    tenth = _cpc(same=0.1)
    tenth.load_state_dict(full.state_dict())
    z = {m: torch.randn(4, 5, 4) for m in ("eeg", "eye")}
    same = full(z, n_observed=2) - cross(z, n_observed=2)
    torch.testing.assert_close(tenth(z, n_observed=2), cross(z, n_observed=2) + 0.1 * same)


def test_cpc_sample_observed_covers_range_reproducibly():
    """M is drawn uniformly from [1, T - N - 1], reproducibly with a seeded generator."""
    cpc = _cpc(n_steps=2)
    draws = [cpc.sample_observed(7, torch.Generator().manual_seed(s)) for s in range(200)]
    assert set(draws) == {1, 2, 3, 4}
    again = [cpc.sample_observed(7, torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws == again


def test_cpc_rejects_short_windows():
    """Windows shorter than N + 2 steps raise ValueError."""
    with pytest.raises(ValueError, match="needs windows of >= 4 steps"):
        _cpc(n_steps=2).sample_observed(3)


def test_cpc_rejects_bad_observed_length():
    """An observed length that leaves fewer than N future steps raises ValueError."""
    z = {m: torch.randn(4, 5, 4) for m in ("eeg", "eye")}
    with pytest.raises(ValueError, match=r"n_observed must be in \[1, 3\]"):
        _cpc(n_steps=2)(z, n_observed=4)


def test_cpc_three_modalities_gradients_reach_all_lstms():
    """With K = 3 the context concatenates all LSTMs, so every context network gets a gradient."""
    torch.manual_seed(0)
    cpc = M2MCPC(names=("eeg", "eye", "ecg"), d_model=4, hidden=3, n_steps=1, same_modal_weight=0.1)
    assert cpc.predictors["eeg"].in_features == 9
    z = {m: torch.randn(4, 5, 4) for m in ("eeg", "eye", "ecg")}
    cpc(z, generator=torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is not None for p in cpc.parameters())
