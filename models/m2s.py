"""The M2S network: per-modality encoders and the four pretraining losses; classifier and baseline S.

Axes (einops): b batch, t time step, i input width of a modality, d ``d_model``, e ``d_ei``,
p ``proj_dim``, k modality.

One :meth:`M2S.forward` encodes every modality once and computes every enabled loss (paper eq. 14:
``w_club * CLUB + w_recon * Recon + w_contra * Contra + w_cpc * CPC``). The CLUB estimators are fitted
separately by :meth:`M2S.club_estimator_loss` on the detached features of that same forward, instead
of re-running the whole model as the reference does (docs/design/M2S-SPEC.md §4).
Per-modality terms (CLUB, Recon) are summed over modalities, Contra is averaged over modality pairs
and CPC sums its K^2 weighted terms: with K = 2 this is the reference's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import M2SConfig
from models.encoders import Decoder, EIEncoder, build_er_encoder
from models.losses import M2MCPC, CLUBEstimator, contrastive_loss

LOSS_NAMES = ("club", "recon", "contra", "cpc")
_MAX_LOGIT_SCALE = 100.0  # CLIP's clamp, keeps the learnable temperature from blowing up


@dataclass
class PretrainOutput:
    """Result of one pretraining forward.

    Attributes
    ----------
    total : Tensor, scalar
        Weighted sum of the enabled losses; call ``.backward()`` on it.
    losses : dict of str to Tensor
        Unweighted, detached ``"club"``, ``"recon"``, ``"contra"``, ``"cpc"`` (0 when switched off).
    detached : dict of str to (Tensor, Tensor)
        Per modality ``(z_er (b, t, d), z_ei (b, t, e))``, detached, for fitting the CLUB estimators;
        empty when ``w_club == 0``.
    """

    total: Tensor
    losses: dict[str, Tensor]
    detached: dict[str, tuple[Tensor, Tensor]]


class Embedder(nn.Module):
    """ER encoder + projection of one modality: (b, t, i) -> L2-normalised embedding (b, p)."""

    def __init__(self, encoder: nn.Module, *, d_model: int, proj_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Sequential(nn.Linear(d_model, proj_dim), nn.ReLU())

    def embed_latent(self, z: Tensor) -> Tensor:
        """Mean over time, project, L2-normalise: (b, t, d) -> (b, p)."""
        return F.normalize(self.projection(z.mean(dim=1)), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.embed_latent(self.encoder(x))


def _check_input(config: M2SConfig, modality: str, x: object) -> Tensor:
    """Validate one modality's input window batch and return it."""
    dim = config.modality(modality).dim
    if not isinstance(x, Tensor):
        raise TypeError(f"input of {modality!r} must be a torch.Tensor, got {type(x).__name__} instead.")
    if x.dtype != torch.float32:
        raise TypeError(f"input of {modality!r} must be float32, got {x.dtype}; convert with x.float().")
    if x.ndim != 3 or x.shape[1] != config.seq_len or x.shape[2] != dim:
        raise ValueError(
            f"input of {modality!r} must have shape (batch, {config.seq_len}, {dim}) = (batch, seq_len, dim), "
            f"got {tuple(x.shape)}."
        )
    return x


class M2S(nn.Module):
    """Multi-to-Single pretraining model for K >= 2 paired modalities.

    Parameters
    ----------
    config : M2SConfig
        Architecture and loss weights; at least two modalities and one positive loss weight.
    """

    def __init__(self, config: M2SConfig) -> None:
        super().__init__()
        if not isinstance(config, M2SConfig):
            raise TypeError(f"config must be an instance of M2SConfig, got {type(config).__name__} instead.")
        if len(config.modalities) < 2:
            raise ValueError(
                f"M2S pretraining needs >= 2 paired modalities, got {list(config.names)}; "
                "use SupervisedModel for a single modality."
            )
        if not any(getattr(config, f"w_{name}") > 0 for name in LOSS_NAMES):
            raise ValueError(
                "all loss weights are 0; set at least one of w_club, w_recon, w_contra, w_cpc > 0."
            )
        self.config = config
        d, e = config.d_model, config.d_ei
        self.embedders = nn.ModuleDict(
            {
                m.name: Embedder(build_er_encoder(m, config), d_model=d, proj_dim=config.proj_dim)
                for m in config.modalities
            }
        )
        self.ei_encoders = nn.ModuleDict({m.name: EIEncoder(in_dim=m.dim, d_ei=e) for m in config.modalities})
        self.decoders = nn.ModuleDict(
            {m.name: Decoder(d_model=d, d_ei=e, out_dim=m.dim) for m in config.modalities}
        )
        self.club_estimators = nn.ModuleDict(
            {m.name: CLUBEstimator(x_dim=d, y_dim=e, hidden=config.club_hidden) for m in config.modalities}
        )
        self.cpc = M2MCPC(
            names=config.names,
            d_model=d,
            hidden=config.cpc_hidden,
            n_steps=config.cpc_steps,
            same_modal_weight=config.cpc_same_modal_weight,
        )
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.temperature_init)))

    @property
    def logit_scale(self) -> Tensor:
        """Contrastive similarity multiplier ``exp(log_logit_scale)``, clamped to <= 100."""
        return self.log_logit_scale.exp().clamp(max=_MAX_LOGIT_SCALE)

    def embedder(self, modality: str) -> nn.Module:
        """The ``x (b, t, i) -> (b, p)`` module of ``modality`` (shared weights, not a copy)."""
        self.config.modality(modality)
        return self.embedders[modality]

    def encode(self, modality: str, x: Tensor) -> Tensor:
        """ER embeddings ``z_er``: (b, t, i) -> (b, t, d)."""
        return self.embedder(modality).encoder(_check_input(self.config, modality, x))

    def embed(self, modality: str, x: Tensor) -> Tensor:
        """Shared embedding: (b, t, i) -> mean over t -> Linear + ReLU -> L2-normalised (b, p)."""
        return self.embedder(modality)(_check_input(self.config, modality, x))

    def _check_batch(self, batch: object) -> dict[str, Tensor]:
        if not isinstance(batch, dict):
            raise TypeError(
                f"batch must be a dict of modality -> Tensor, got {type(batch).__name__} instead."
            )
        if set(batch) != set(self.config.names):
            raise ValueError(
                f"batch must hold exactly the modalities {sorted(self.config.names)}, got {sorted(batch)}."
            )
        for name in self.config.names:
            _check_input(self.config, name, batch[name])
        sizes = {name: x.shape[0] for name, x in batch.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all modalities must have the same batch size (paired samples), got {sizes}.")
        return batch

    def forward(
        self, batch: dict[str, Tensor], *, generator: torch.Generator | None = None
    ) -> PretrainOutput:
        """One pretraining forward: encode every modality once and compute the enabled losses.

        Parameters
        ----------
        batch : dict of str to Tensor, each shape (b, seq_len, D_m), float32
            Paired windows of every modality of the config.
        generator : torch.Generator | None
            RNG for the CLUB negatives and the CPC split point ``M``; the global RNG when None.

        Returns
        -------
        PretrainOutput
        """
        batch = self._check_batch(batch)
        cfg = self.config
        z_er = {name: self.embedders[name].encoder(x) for name, x in batch.items()}
        z_ei = {}
        if cfg.w_club > 0 or cfg.w_recon > 0:
            z_ei = {name: self.ei_encoders[name](x) for name, x in batch.items()}
        losses: dict[str, Tensor] = {}
        if cfg.w_club > 0:
            losses["club"] = sum(
                self.club_estimators[n].upper_bound(z_er[n], z_ei[n], generator=generator) for n in cfg.names
            )
        if cfg.w_recon > 0:
            losses["recon"] = sum(F.mse_loss(self.decoders[n](z_er[n], z_ei[n]), batch[n]) for n in cfg.names)
        if cfg.w_contra > 0:
            embeddings = [self.embedders[n].embed_latent(z_er[n]) for n in cfg.names]
            losses["contra"] = contrastive_loss(embeddings, self.logit_scale)
        if cfg.w_cpc > 0:
            losses["cpc"] = self.cpc(z_er, generator=generator)
        total = sum(getattr(cfg, f"w_{name}") * loss for name, loss in losses.items())
        zero = total.new_zeros(())
        reported = {name: losses[name].detach() if name in losses else zero for name in LOSS_NAMES}
        detached = {}
        if cfg.w_club > 0:
            detached = {n: (z_er[n].detach(), z_ei[n].detach()) for n in cfg.names}
        return PretrainOutput(total=total, losses=reported, detached=detached)

    def club_estimator_loss(self, detached: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
        """Negative log-likelihood of ``q_theta(z_ei | z_er)`` summed over modalities.

        Parameters
        ----------
        detached : dict of str to (Tensor, Tensor)
            ``PretrainOutput.detached``: per modality ``(z_er (b, t, d), z_ei (b, t, e))``.

        Returns
        -------
        Tensor, scalar
            Gradients reach only :meth:`estimator_parameters` (inputs are detached). With an empty
            ``detached`` (``w_club == 0``) a zero leaf is returned, so ``backward()`` is a no-op.
        """
        if not isinstance(detached, dict):
            raise TypeError(f"detached must be a dict, got {type(detached).__name__} instead.")
        unknown = sorted(set(detached) - set(self.config.names))
        if unknown:
            raise ValueError(
                f"unknown modalities {unknown} in detached; this model has {list(self.config.names)}."
            )
        if not detached:
            return torch.zeros((), requires_grad=True)
        return sum(self.club_estimators[n].learning_loss(*pair) for n, pair in detached.items())

    def estimator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the CLUB estimators (fitted by their own optimizer)."""
        return list(self.club_estimators.parameters())

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the CLUB estimators'."""
        estimator = {id(p) for p in self.estimator_parameters()}
        return [p for p in self.parameters() if id(p) not in estimator]


class EmotionClassifier(nn.Sequential):
    """``Linear(proj_dim -> 128) -> ReLU -> BatchNorm1d(128) -> Linear(128 -> n_classes)``: (b, p) -> (b, classes)."""

    def __init__(self, proj_dim: int, n_classes: int) -> None:
        for name, value in (("proj_dim", proj_dim), ("n_classes", n_classes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} instead.")
        if proj_dim < 1 or n_classes < 2:
            raise ValueError(f"need proj_dim >= 1 and n_classes >= 2, got {proj_dim} and {n_classes}.")
        super().__init__(nn.Linear(proj_dim, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Linear(128, n_classes))


class SupervisedModel(nn.Module):
    """Baseline S: one modality's ER encoder + projection + :class:`EmotionClassifier`, trained end to end.

    ``self.embedder`` has the same structure (and state-dict keys) as ``M2S.embedder(modality)``.
    """

    def __init__(self, config: M2SConfig, modality: str, n_classes: int) -> None:
        super().__init__()
        if not isinstance(config, M2SConfig):
            raise TypeError(f"config must be an instance of M2SConfig, got {type(config).__name__} instead.")
        self.config = config
        self.modality = modality
        encoder = build_er_encoder(config.modality(modality), config)
        self.embedder = Embedder(encoder, d_model=config.d_model, proj_dim=config.proj_dim)
        self.classifier = EmotionClassifier(config.proj_dim, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits: (b, seq_len, D_m) -> (b, n_classes)."""
        return self.classifier(self.embedder(_check_input(self.config, self.modality, x)))
