"""Pretraining losses of M2S: CLUB upper bound, contrastive InfoNCE, M2M CPC (paper eqs. 1, 3, 8-13).

Axes (einops): b batch, t time step, d width of z_ER (``d_model``), e width of z_EI, s samples
(``b * t`` flattened), n future step, k modality, p projected-embedding width.

Reconstruction is a plain ``F.mse_loss`` per modality and lives in :mod:`models.m2s`.
Everything is float32; random draws (CLUB negatives, the CPC split point) take an optional
``torch.Generator`` and use the global RNG otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def _randperm(n: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = like.device if generator is None else generator.device
    return torch.randperm(n, generator=generator, device=device).to(like.device)


class CLUBEstimator(nn.Module):
    """Variational ``q_theta(y | x) = N(mu(x), diag(exp(logvar(x))))`` of CLUB (Cheng et al. 2020).

    Two heads ``Linear(x_dim -> hidden // 2) -> ReLU -> Linear(-> y_dim)``; the log-variance head ends
    in ``tanh`` (so the variance stays in ``[1/e, e]``), as in Cheng et al.'s ``CLUBSample``.
    The estimator is fitted by :meth:`learning_loss` on detached features (its own optimizer); the
    encoders minimise :meth:`upper_bound`, which sees the estimator through detached parameters.
    """

    def __init__(self, *, x_dim: int, y_dim: int, hidden: int) -> None:
        super().__init__()
        half = hidden // 2
        self.to_mean = nn.Sequential(nn.Linear(x_dim, half), nn.ReLU(), nn.Linear(half, y_dim))
        self.to_logvar = nn.Sequential(nn.Linear(x_dim, half), nn.ReLU(), nn.Linear(half, y_dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of ``q(y | x)``: (s, x_dim) -> (s, y_dim), (s, y_dim)."""
        return self.to_mean(x), self.to_logvar(x)

    def learning_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Negative log-likelihood of ``y`` under ``q(y | x)``, mean over samples, without the constant.

        ``x (..., x_dim)`` and ``y (..., y_dim)`` are flattened to samples; both are detached, so
        gradients reach only the estimator's parameters.
        """
        x, y = x.detach().flatten(0, -2), y.detach().flatten(0, -2)
        mean, logvar = self(x)
        return 0.5 * ((y - mean) ** 2 / logvar.exp() + logvar).sum(dim=-1).mean()

    def upper_bound(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Sampled CLUB upper bound of ``I(x; y)`` (Cheng et al. 2020, eq. 7, "CLUBSample").

        ``mean_i [log q(y_i | x_i) - log q(y_perm(i) | x_i)]`` with one random permutation of the
        ``s = b * t`` flattened samples as negatives (the log-variance and constant terms cancel).
        The estimator's parameters are used detached: the bound's gradient reaches ``x`` and ``y``
        (the encoders) only.
        """
        x, y = x.flatten(0, -2), y.flatten(0, -2)
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        mean, logvar = functional_call(self, frozen, (x,))
        inv_var = torch.exp(-logvar)
        shuffled = y[_randperm(y.shape[0], y, generator)]
        positive = -0.5 * ((y - mean) ** 2 * inv_var).sum(dim=-1)
        negative = -0.5 * ((shuffled - mean) ** 2 * inv_var).sum(dim=-1)
        return (positive - negative).mean()


def info_nce(predictions: Tensor, targets: Tensor) -> Tensor:
    """InfoNCE with in-batch negatives: cross-entropy of ``predictions @ targets.T`` with diagonal labels.

    Parameters
    ----------
    predictions, targets : Tensor, shape (..., b, d)
        Row ``i`` of ``predictions`` must pick row ``i`` of ``targets`` among the ``b`` rows.

    Returns
    -------
    Tensor, scalar
        Mean over rows (and leading axes) of ``-log softmax_j(pred_i . target_j)[i]``.
    """
    logits = predictions @ targets.transpose(-1, -2)  # (..., b, b)
    b = logits.shape[-1]
    labels = torch.arange(b, device=logits.device).expand(logits.shape[:-1])
    return F.cross_entropy(logits.reshape(-1, b), labels.reshape(-1))


def contrastive_loss(embeddings: Sequence[Tensor], logit_scale: Tensor) -> Tensor:
    """Symmetric CLIP loss averaged over all modality pairs (paper eq. 3, generalised to K >= 2).

    Parameters
    ----------
    embeddings : sequence of Tensor, each shape (b, p)
        L2-normalised embeddings of the same ``b`` samples, one per modality.
    logit_scale : Tensor, scalar
        Multiplier of the cosine similarities (the exponentiated learnable temperature).

    Returns
    -------
    Tensor, scalar
        ``mean over pairs (i, j) of [CE(s * e_i e_j^T, diag) + CE(s * e_j e_i^T, diag)] / 2``.
    """
    if len(embeddings) < 2:
        raise ValueError(f"contrastive_loss needs embeddings of >= 2 modalities, got {len(embeddings)}.")
    pairs = [
        (info_nce(logit_scale * a, b) + info_nce(logit_scale * b, a)) / 2
        for a, b in combinations(embeddings, 2)
    ]
    return torch.stack(pairs).mean()


class M2MCPC(nn.Module):
    """Multi-to-multi contrastive predictive coding (paper eqs. 8-13, Fig. 2), for K >= 2 modalities.

    Each modality has a 2-layer LSTM (``hidden`` units) that summarises its steps ``1..M`` of ``z``;
    the last outputs of all K LSTMs are concatenated into one context ``c`` of width ``K * hidden``.
    Predictor ``W_n^A`` of modality A maps ``c`` to a guess of step ``M + n``; term ``A -> B`` scores
    that guess against ``z^B_{M+n}`` with InfoNCE over the batch (eq. 12, averaged over n = 1..N).
    The loss is the weighted sum over all K^2 (A, B) terms: weight 1 if A != B, else
    ``same_modal_weight`` (eq. 13 with the reference's 0.1 on same-modal terms).
    """

    def __init__(
        self, *, names: Sequence[str], d_model: int, hidden: int, n_steps: int, same_modal_weight: float
    ) -> None:
        super().__init__()
        self.names = tuple(names)
        self.n_steps = n_steps
        self.same_modal_weight = same_modal_weight
        self.context = nn.ModuleDict(
            {m: nn.LSTM(d_model, hidden, num_layers=2, batch_first=True) for m in self.names}
        )
        # one Linear per source modality holds W_1..W_N stacked: (k * hidden) -> (n * d)
        self.predictors = nn.ModuleDict(
            {m: nn.Linear(len(self.names) * hidden, n_steps * d_model) for m in self.names}
        )

    def sample_observed(self, seq_len: int, generator: torch.Generator | None = None) -> int:
        """Draw the observed length ``M`` uniformly from ``[1, seq_len - n_steps - 1]``."""
        high = seq_len - self.n_steps - 1
        if high < 1:
            raise ValueError(
                f"M2M CPC with n_steps={self.n_steps} needs windows of >= {self.n_steps + 2} steps, "
                f"got {seq_len}."
            )
        device = "cpu" if generator is None else generator.device
        return int(torch.randint(1, high + 1, (1,), generator=generator, device=device).item())

    def forward(
        self,
        z: Mapping[str, Tensor],
        *,
        n_observed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """M2M CPC loss.

        Parameters
        ----------
        z : mapping of str to Tensor, each shape (b, t, d)
            ER embeddings of every modality of this module.
        n_observed : int | None
            Observed length ``M``; drawn with :meth:`sample_observed` when None.
        generator : torch.Generator | None
            RNG for drawing ``M``; the global RNG when None.

        Returns
        -------
        Tensor, scalar
        """
        seq_len = next(iter(z.values())).shape[1]
        m = self.sample_observed(seq_len, generator) if n_observed is None else n_observed
        if not 1 <= m <= seq_len - self.n_steps:
            raise ValueError(f"n_observed must be in [1, {seq_len - self.n_steps}], got {m}.")
        # last LSTM output after steps 1..M of each modality, concatenated: (b, k * hidden)
        context = torch.cat([self.context[name](z[name][:, :m])[0][:, -1] for name in self.names], dim=-1)
        future = {name: z[name][:, m : m + self.n_steps].transpose(0, 1) for name in self.names}  # (n, b, d)
        total = context.new_zeros(())
        for source in self.names:
            guess = self.predictors[source](context).unflatten(-1, (self.n_steps, -1)).transpose(0, 1)
            for target in self.names:  # guess (n, b, d) vs future[target] (n, b, d)
                weight = self.same_modal_weight if source == target else 1.0
                if weight:
                    total = total + weight * info_nce(guess, future[target])
        return total
