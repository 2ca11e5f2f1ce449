"""Attention layers of the ER encoders: STS attention, plain multi-head attention, none.

Axes (einops): b batch, t time step, c channel token (electrode), f values per channel token (bands),
n tokens in general, h heads, e per-head width, g a second ``f``-sized axis.

STS (spatial and temporal-sparse) attention is paper eqs. 4-7 / Fig. 1c: attention runs across the C
channel tokens of one time step (spatial); keys and values are the mean of the projections at t, t-1 and
the window's first step (temporal-sparse). Everything is vectorised over b, t and c; the t-1 and
first-step terms are built by shifting and broadcasting, so the modules trace and export to ONNX with
a dynamic batch axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from models.config import ATTENTION_KINDS


class MultiHeadSelfAttention(nn.Module):
    """Standard multi-head self-attention across the token axis (second to last) of ``x``.

    Used across the time steps of sequence modalities. ``dim`` is the token width (input and output),
    scores are scaled by ``1 / sqrt(head_dim)``, dropout follows the output projection.
    """

    def __init__(self, *, dim: int, n_heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        inner = n_heads * head_dim
        self.n_heads = n_heads
        self.scale = head_dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * inner)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        """(..., n, dim) -> (..., n, dim)."""
        qkv = rearrange(self.to_qkv(x), "... n (three h e) -> three ... h n e", three=3, h=self.n_heads)
        q, k, v = qkv.unbind(0)
        weights = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)  # (..., h, n, n)
        return self.to_out(rearrange(weights @ v, "... h n e -> ... n (h e)"))


class ChannelAttention(nn.Module):
    """Multi-head self-attention across the C channel tokens of each time step; STS if ``temporal_sparse``.

    Parameters
    ----------
    n_bands : int
        Values per channel token ``f`` (input and output width).
    n_heads, head_dim : int
        Heads and per-head width (4 x 64 in the reference); scores are scaled by ``1 / sqrt(head_dim)``.
    dropout : float
        Dropout after the output projection.
    temporal_sparse : bool
        STS attention: ``Q = W_q x_t`` and ``K, V`` from the mean of the projections of ``x_t``,
        ``x_{t-1}`` and ``x_1`` (``t-1`` clamped to the first step at ``t = 1``). False gives plain
        multi-head attention over the channels of each step.

    Notes
    -----
    The maths is that of ordinary heads (``to_q``, ``to_k``, ``to_v``, ``to_out`` hold the 4 x 64-wide
    projections), but it is evaluated in the ``f``-dimensional token space, because a token has far
    fewer values (5 bands) than a head (64):

    - the mean of projections equals the projection of the mean (the maps are affine), so the keys and
      values are taken from ``y = mean(x_t, x_{t-1}, x_1)``;
    - per head, ``q_i . k_j = x_i A y_j + u . y_j + (terms constant in j)`` with
      ``A = W_q^T W_k`` (f x f) and ``u = W_k^T b_q``; softmax over j ignores the constant terms, which
      is also why ``to_k`` has no bias (it would only add such terms and never get a gradient);
    - softmax rows sum to 1, so ``to_out(concat_h P_h V_h) = sum_h (P_h y) (W_o,h W_v,h)^T + b``.

    This is exact (up to float rounding) and cuts the attention cost by ``head_dim / f``.
    """

    def __init__(
        self, *, n_bands: int, n_heads: int, head_dim: int, dropout: float, temporal_sparse: bool
    ) -> None:
        super().__init__()
        inner = n_heads * head_dim
        self.n_heads = n_heads
        self.scale = head_dim**-0.5
        self.temporal_sparse = temporal_sparse
        self.to_q = nn.Linear(n_bands, inner)
        self.to_k = nn.Linear(n_bands, inner, bias=False)  # a key bias only adds row constants
        self.to_v = nn.Linear(n_bands, inner)
        self.to_out = nn.Linear(inner, n_bands)
        self.dropout = nn.Dropout(dropout)

    def keys_values_source(self, x: Tensor) -> Tensor:
        """Tokens the keys/values are projected from: (b, t, c, f) -> (b, t, c, f)."""
        if not self.temporal_sparse:
            return x
        previous = torch.cat((x[:, :1], x[:, :-1]), dim=1)  # x_{t-1}; step 1 is its own predecessor
        return (x + previous + x[:, :1]) / 3.0  # x[:, :1] broadcasts the first step over t

    def forward(self, x: Tensor) -> Tensor:
        """Attend across channels of every step: (b, t, c, f) -> (b, t, c, f)."""
        h, (t, c, f) = self.n_heads, x.shape[1:]
        y = self.keys_values_source(x)
        w_q, w_k, w_v = (
            rearrange(m.weight, "(h e) f -> h e f", h=h) for m in (self.to_q, self.to_k, self.to_v)
        )
        b_q, b_v = (rearrange(m.bias, "(h e) -> h e", h=h) for m in (self.to_q, self.to_v))
        w_o = rearrange(self.to_out.weight, "g (h e) -> h g e", h=h)
        score_map = torch.einsum("hef,heg->hfg", w_q, w_k)  # A per head: (h, f, f)
        score_bias = torch.einsum("he,heg->hg", b_q, w_k)  # u per head: (h, f)
        queries = torch.einsum("btcf,hfg->bthcg", x, score_map) + score_bias[:, None, :]  # (b, t, h, c, f)
        # all heads share the keys/values y, so the heads are stacked as extra query rows of one
        # attention per (b, t): queries (b*t, 1, h*c, f), keys = values (b*t, 1, c, f)
        mixed = F.scaled_dot_product_attention(
            queries.reshape(-1, 1, h * c, f), y.reshape(-1, 1, c, f), y.reshape(-1, 1, c, f), scale=self.scale
        ).reshape(-1, t, h, c, f)  # P_h y per head
        value_out = torch.einsum("hge,hef->hgf", w_o, w_v)  # W_o,h W_v,h: (h, f, f)
        bias = self.to_out.bias + torch.einsum("hge,he->g", w_o, b_v)  # (f,)
        return self.dropout(torch.einsum("bthcf,hgf->btcg", mixed, value_out) + bias)


def build_channel_attention(
    kind: str, *, n_bands: int, n_heads: int, head_dim: int, dropout: float
) -> nn.Module | None:
    """Attention over the channel tokens of an electrode modality.

    Parameters
    ----------
    kind : {"sts", "mha", "none"}
        STS attention, plain multi-head attention over channels (no temporal mixing), or no attention
        (the block then has only its feed-forward part; paper Fig. 3 ablation).
    n_bands : int
        Values per channel token (``f``).
    n_heads, head_dim : int
        Heads and per-head width.
    dropout : float
        Dropout after the output projection.

    Returns
    -------
    nn.Module | None
        A module mapping (b, t, c, f) to (b, t, c, f), or None for ``"none"``.
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(
            f"Invalid value for the 'kind' parameter. Allowed values are {ATTENTION_KINDS}, "
            f"but got {kind!r} instead."
        )
    if kind == "none":
        return None
    return ChannelAttention(
        n_bands=n_bands, n_heads=n_heads, head_dim=head_dim, dropout=dropout, temporal_sparse=kind == "sts"
    )
