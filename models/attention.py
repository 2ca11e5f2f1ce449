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

    def low_rank_maps(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The per-head ``f x f`` maps of the token-space evaluation, heads side by side (weights only).

        Returns
        -------
        score_map : Tensor, shape (f, h*f)
            ``A_h = W_q,h^T W_k,h`` of every head; ``x_i @ score_map`` holds the query rows of all heads.
        score_bias : Tensor, shape (h*f,)
            ``u_h = W_k,h^T b_q,h`` of every head.
        value_out : Tensor, shape (h*f, f)
            ``(W_o,h W_v,h)^T`` stacked over the heads: ``concat_h (P_h y) @ value_out`` sums them.
        bias : Tensor, shape (f,)
            ``W_o b_v + b_o``.

        Notes
        -----
        Products of parameters only: ONNX Runtime folds them into constants of the exported graph.
        """
        h = self.n_heads
        w_q, w_v = (rearrange(m.weight, "(h e) f -> h f e", h=h) for m in (self.to_q, self.to_v))
        w_k = rearrange(self.to_k.weight, "(h e) g -> h e g", h=h)
        b_q = rearrange(self.to_q.bias, "(h e) -> h 1 e", h=h)
        w_o = rearrange(self.to_out.weight, "g (h e) -> h e g", h=h)
        score_map = rearrange(w_q @ w_k, "h f g -> f (h g)")
        score_bias = rearrange(b_q @ w_k, "h 1 g -> (h g)")
        value_out = rearrange(w_v @ w_o, "h f g -> (h f) g")
        return score_map, score_bias, value_out, self.to_out(self.to_v.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Attend across channels of every step: (b, t, c, f) -> (b, t, c, f)."""
        h, f = self.n_heads, self.to_q.in_features  # Python ints: constants, not Shape ops, in ONNX
        t, c = x.shape[1:3]
        score_map, score_bias, value_out, bias = self.low_rank_maps()
        # all heads share the keys/values y, so the heads are stacked as extra query rows of one
        # attention per (b, t): (b, t, c, h*f) is a view of queries (b*t, 1, c*h, f), rows (c h);
        # the singleton head axis keeps torch on its fused 4-D CPU kernel (3-D takes a slower path)
        queries = (x @ score_map + score_bias).reshape(-1, 1, c * h, f)
        kv = self.keys_values_source(x).reshape(-1, 1, c, f)  # keys = values: (b*t, 1, c, f)
        mixed = F.scaled_dot_product_attention(queries, kv, kv, scale=self.scale)  # P_h y, rows (c h)
        # back to (b, t, c, h*f) = concat_h P_h y (a view), then one matmul sums the heads' outputs
        return self.dropout(mixed.reshape(-1, t, c, h * f) @ value_out + bias)


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
