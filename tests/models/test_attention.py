"""Tests for models/attention.py: STS attention, channel MHA, time MHA, the builder."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from models.attention import ChannelAttention, MultiHeadSelfAttention, build_channel_attention  # noqa: E402


def _channel_attention(temporal_sparse: bool, *, f=3, heads=2, head_dim=4) -> ChannelAttention:
    torch.manual_seed(0)
    att = ChannelAttention(
        n_bands=f, n_heads=heads, head_dim=head_dim, dropout=0.1, temporal_sparse=temporal_sparse
    )
    return att.eval()


def _naive_channel_attention(att: ChannelAttention, x, *, temporal_sparse: bool):
    """Per time step, per head, full-width heads: a direct reading of paper eqs. 4-7."""
    b, t_len, c, f = x.shape
    h, e = att.n_heads, att.to_q.out_features // att.n_heads
    out = torch.zeros_like(x)
    for t in range(t_len):
        q = att.to_q(x[:, t])  # (b, c, h*e)
        if temporal_sparse:
            steps = (x[:, t], x[:, max(t - 1, 0)], x[:, 0])
            k = sum(att.to_k(s) for s in steps) / 3  # mean of the projections
            v = sum(att.to_v(s) for s in steps) / 3
        else:
            k, v = att.to_k(x[:, t]), att.to_v(x[:, t])
        heads = []
        for i in range(h):
            sl = slice(i * e, (i + 1) * e)
            scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(e)
            heads.append(torch.softmax(scores, dim=-1) @ v[..., sl])
        out[:, t] = att.to_out(torch.cat(heads, dim=-1))
    return out


@pytest.mark.parametrize("temporal_sparse", [True, False], ids=["sts", "mha"])
def test_channel_attention_matches_naive_loop(temporal_sparse):
    """The vectorised low-rank evaluation equals a per-step, per-head full-width loop."""
    att = _channel_attention(temporal_sparse)
    x = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(1))
    expected = _naive_channel_attention(att, x, temporal_sparse=temporal_sparse)
    torch.testing.assert_close(att(x), expected, atol=1e-5, rtol=1e-5)


def test_sts_gradients_match_naive_loop():
    """Parameter gradients of the low-rank form equal those of the naive loop."""
    att = _channel_attention(True)
    x = torch.randn(3, 3, 4, 3, generator=torch.Generator().manual_seed(2))
    target = torch.randn(3, 3, 4, 3, generator=torch.Generator().manual_seed(3))
    ((att(x) - target) ** 2).sum().backward()
    fast = {n: p.grad.clone() for n, p in att.named_parameters()}
    att.zero_grad()
    ((_naive_channel_attention(att, x, temporal_sparse=True) - target) ** 2).sum().backward()
    for name, p in att.named_parameters():
        torch.testing.assert_close(fast[name], p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_sts_first_step_equals_plain_attention():
    """At t = 1, x_t, x_{t-1} and x_1 coincide, so STS equals plain channel attention."""
    sts, mha = _channel_attention(True), _channel_attention(False)
    mha.load_state_dict(sts.state_dict())
    x = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(sts(x)[:, 0], mha(x)[:, 0])
    assert not torch.allclose(sts(x)[:, 2], mha(x)[:, 2])


def test_sts_is_causal_in_time():
    """Changing step 3 leaves the outputs of steps 1-2 unchanged (only t, t-1, 1 are mixed)."""
    att = _channel_attention(True)
    x = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(5))
    y = x.clone()
    y[:, 2] += 1.0
    a, b = att(x), att(y)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_channel_attention_is_channel_equivariant():
    """Permuting the channel tokens permutes the output the same way (attention is across channels)."""
    att = _channel_attention(True)
    x = torch.randn(2, 3, 6, 3, generator=torch.Generator().manual_seed(6))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(att(x[:, :, perm]), att(x)[:, :, perm], atol=1e-6, rtol=1e-5)


def test_time_attention_matches_naive_heads():
    """MultiHeadSelfAttention equals softmax(QK^T / sqrt(e)) V per head, then the output projection."""
    torch.manual_seed(0)
    att = MultiHeadSelfAttention(dim=8, n_heads=2, head_dim=4, dropout=0.1).eval()
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(7))
    q, k, v = att.to_qkv(x).split(8, dim=-1)
    heads = [
        torch.softmax(q[..., s] @ k[..., s].transpose(-1, -2) / 2.0, dim=-1) @ v[..., s]
        for s in (slice(0, 4), slice(4, 8))
    ]
    torch.testing.assert_close(att(x), att.to_out(torch.cat(heads, dim=-1)))


def test_dropout_active_only_in_training():
    """Outputs are deterministic in eval mode and stochastic in train mode."""
    att = _channel_attention(True)
    x = torch.randn(2, 3, 4, 3)
    torch.testing.assert_close(att(x), att(x))
    att.train()
    assert not torch.equal(att(x), att(x))


@pytest.mark.parametrize("kind", ["sts", "mha", "none"])
def test_build_channel_attention_kinds(kind):
    """The builder returns STS, plain channel attention or None."""
    att = build_channel_attention(kind, n_bands=5, n_heads=4, head_dim=64, dropout=0.1)
    if kind == "none":
        assert att is None
    else:
        assert att.temporal_sparse == (kind == "sts")
        assert att.to_q.weight.shape == (256, 5) and att.to_out.weight.shape == (5, 256)


def test_build_channel_attention_rejects_unknown_kind():
    """An unknown kind raises ValueError listing the allowed ones."""
    with pytest.raises(ValueError, match="Allowed values are"):
        build_channel_attention("lstm", n_bands=5, n_heads=4, head_dim=64, dropout=0.1)
