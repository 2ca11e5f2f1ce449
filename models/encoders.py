"""Per-modality encoders of M2S: ER (emotion-related) transformer, EI (emotion-independent) MLP, decoder.

Axes (einops): b batch, t time step, c channel token (electrode), f values per channel token (bands),
d model width (``d_model``), i input width of the modality (``D_m``).

ER encoder, electrode variant (EEG, ECG, PPS): post-norm blocks on the raw ``c * f`` vector of each
step, whose attention looks across the ``c`` channel tokens, then ``Linear(c * f -> d)``.
ER encoder, sequence variant (EYE): ``Linear(i -> d)``, then post-norm blocks of multi-head
self-attention across the ``t`` steps (docs/design/M2S-SPEC.md §2).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from models.attention import MultiHeadSelfAttention, build_channel_attention
from models.config import M2SConfig, ModalityConfig


class FeedForward(nn.Sequential):
    """``Linear(dim -> hidden) -> ReLU -> Dropout -> Linear(hidden -> dim) -> Dropout``."""

    def __init__(self, *, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class OverChannels(nn.Module):
    """Run a channel-token attention on channel-major vectors: (b, t, c * f) -> (b, t, c * f)."""

    def __init__(self, attention: nn.Module, *, n_channels: int) -> None:
        super().__init__()
        self.attention = attention
        self.n_channels = n_channels

    def forward(self, x: Tensor) -> Tensor:
        tokens = rearrange(x, "b t (c f) -> b t c f", c=self.n_channels)  # channel-major layout
        return rearrange(self.attention(tokens), "b t c f -> b t (c f)")


class PostNormBlock(nn.Module):
    """Transformer block: ``x = LN(x + attn(x)); x = LN(x + ff(x))`` (attention part skipped if None)."""

    def __init__(self, *, dim: int, attention: nn.Module | None, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.attention = attention
        self.norm_attention = nn.LayerNorm(dim) if attention is not None else None
        self.ff = FeedForward(dim=dim, hidden=d_ff, dropout=dropout)
        self.norm_ff = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.attention is not None:  # fixed at construction: no data-dependent control flow
            x = self.norm_attention(x + self.attention(x))
        return self.norm_ff(x + self.ff(x))


class ElectrodeEREncoder(nn.Module):
    """ER encoder of an electrode modality: (b, t, c * f) -> (b, t, d)."""

    def __init__(self, modality: ModalityConfig, config: M2SConfig) -> None:
        super().__init__()
        width = modality.dim  # blocks work in the raw c * f space, as the reference does
        self.blocks = nn.Sequential(
            *(
                PostNormBlock(
                    dim=width,
                    attention=self._attention(modality, config),
                    d_ff=config.d_ff,
                    dropout=config.dropout,
                )
                for _ in range(config.n_blocks)
            )
        )
        self.to_latent = nn.Linear(width, config.d_model)

    @staticmethod
    def _attention(modality: ModalityConfig, config: M2SConfig) -> nn.Module | None:
        attention = build_channel_attention(
            config.attention,
            n_bands=modality.n_bands,
            n_heads=config.n_heads,
            head_dim=config.head_dim,
            dropout=config.dropout,
        )
        return None if attention is None else OverChannels(attention, n_channels=modality.n_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_latent(self.blocks(x))


class SequenceEREncoder(nn.Module):
    """ER encoder of a sequence modality (attention over time steps): (b, t, i) -> (b, t, d)."""

    def __init__(self, modality: ModalityConfig, config: M2SConfig) -> None:
        super().__init__()
        d = config.d_model
        self.to_latent = nn.Linear(modality.dim, d)
        self.blocks = nn.Sequential(
            *(
                PostNormBlock(
                    dim=d,
                    attention=MultiHeadSelfAttention(
                        dim=d, n_heads=config.n_heads, head_dim=d // config.n_heads, dropout=config.dropout
                    ),
                    d_ff=config.d_ff,
                    dropout=config.dropout,
                )
                for _ in range(config.n_blocks)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.to_latent(x))


def build_er_encoder(modality: ModalityConfig, config: M2SConfig) -> nn.Module:
    """ER encoder for ``modality``: electrode variant if it has channels, else sequence variant."""
    cls = ElectrodeEREncoder if modality.is_electrode else SequenceEREncoder
    return cls(modality, config)


class EIEncoder(nn.Sequential):
    """EI encoder, applied per time step: ``Linear(i -> d_ei) -> ReLU``; (b, t, i) -> (b, t, d_ei)."""

    def __init__(self, *, in_dim: int, d_ei: int) -> None:
        super().__init__(nn.Linear(in_dim, d_ei), nn.ReLU())


class Decoder(nn.Module):
    """Reconstruct the input from ``(z_er, z_ei)`` (paper eq. 2).

    ``Linear(d -> d_ei)`` on ``z_er``, concatenated with ``z_ei``, then ``Linear(2 * d_ei -> i)``.
    """

    def __init__(self, *, d_model: int, d_ei: int, out_dim: int) -> None:
        super().__init__()
        self.from_er = nn.Linear(d_model, d_ei)
        self.to_input = nn.Linear(2 * d_ei, out_dim)

    def forward(self, z_er: Tensor, z_ei: Tensor) -> Tensor:
        """(b, t, d) and (b, t, d_ei) -> reconstruction (b, t, i)."""
        return self.to_input(torch.cat((self.from_er(z_er), z_ei), dim=-1))
