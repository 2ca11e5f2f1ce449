"""Tests for models/attention.py: STS attention, channel MHA, time MHA, the builder."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from einops import rearrange  # noqa: E402

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


def _einsum_channel_attention(att: ChannelAttention, x):
    """The previous formulation of ``ChannelAttention.forward`` (einsums on activations), kept verbatim."""
    h, (t, c, f) = att.n_heads, x.shape[1:]
    y = att.keys_values_source(x)
    w_q, w_k, w_v = (rearrange(m.weight, "(h e) f -> h e f", h=h) for m in (att.to_q, att.to_k, att.to_v))
    b_q, b_v = (rearrange(m.bias, "(h e) -> h e", h=h) for m in (att.to_q, att.to_v))
    w_o = rearrange(att.to_out.weight, "g (h e) -> h g e", h=h)
    score_map = torch.einsum("hef,heg->hfg", w_q, w_k)  # A per head: (h, f, f)
    score_bias = torch.einsum("he,heg->hg", b_q, w_k)  # u per head: (h, f)
    queries = torch.einsum("btcf,hfg->bthcg", x, score_map) + score_bias[:, None, :]  # (b, t, h, c, f)
    mixed = torch.nn.functional.scaled_dot_product_attention(
        queries.reshape(-1, 1, h * c, f), y.reshape(-1, 1, c, f), y.reshape(-1, 1, c, f), scale=att.scale
    ).reshape(-1, t, h, c, f)  # P_h y per head
    value_out = torch.einsum("hge,hef->hgf", w_o, w_v)  # W_o,h W_v,h: (h, f, f)
    bias = att.to_out.bias + torch.einsum("hge,he->g", w_o, b_v)  # (f,)
    return att.dropout(torch.einsum("bthcf,hgf->btcg", mixed, value_out) + bias)


def _random_channel_attention(
    temporal_sparse: bool, *, f: int, heads: int, head_dim: int
) -> ChannelAttention:
    """Dropout-free attention with seeded N(0, s^2) parameters: peaked softmax, non-zero biases, outputs O(1)."""
    torch.manual_seed(0)
    att = ChannelAttention(
        n_bands=f, n_heads=heads, head_dim=head_dim, dropout=0.0, temporal_sparse=temporal_sparse
    )
    with torch.no_grad():
        for name, p in att.named_parameters():
            # s = 0.6 on W_q, W_k gives scores of a few units (max prob 3-10x uniform), 0.2 elsewhere
            p.normal_(0.0, 0.6 if name.startswith(("to_q", "to_k")) else 0.2)
    return att


# (batch, T, channels, bands, heads, head_dim): the reference dims (62 x 5, 4 x 64) and small ones
_SHAPES = [
    (1, 1, 62, 5, 4, 64),
    (1, 5, 62, 5, 4, 64),
    (6, 5, 62, 5, 4, 64),
    (3, 1, 6, 3, 2, 4),
    (4, 3, 9, 4, 3, 8),
]
_SHAPE_IDS = ["ref-b1-t1", "ref-b1-t5", "ref-b6-t5", "small-b3-t1", "small-b4-t3"]


@pytest.mark.parametrize("temporal_sparse", [True, False], ids=["sts", "mha"])
@pytest.mark.parametrize("shape", _SHAPES, ids=_SHAPE_IDS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_channel_attention_matches_einsum_formulation(shape, temporal_sparse, mode):
    """The matmul forward equals the previous einsum formulation (eval, and train mode without dropout)."""
    b, t, c, f, heads, head_dim = shape
    att = _random_channel_attention(temporal_sparse, f=f, heads=heads, head_dim=head_dim)
    att.train(mode == "train")
    x = torch.randn(b, t, c, f, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        got, expected = att(x), _einsum_channel_attention(att, x)
    assert expected.abs().max() > 0.1  # a non-trivial output, not a near-zero one that any code matches
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("temporal_sparse", [True, False], ids=["sts", "mha"])
@pytest.mark.parametrize("shape", [_SHAPES[2], _SHAPES[4]], ids=[_SHAPE_IDS[2], _SHAPE_IDS[4]])
def test_channel_attention_gradients_match_einsum_formulation(shape, temporal_sparse):
    """Gradients of a random loss w.r.t. every parameter and the input equal the einsum formulation's."""
    b, t, c, f, heads, head_dim = shape
    att = _random_channel_attention(temporal_sparse, f=f, heads=heads, head_dim=head_dim).train()
    x = torch.randn(b, t, c, f, generator=torch.Generator().manual_seed(12), requires_grad=True)
    weights = torch.randn(b, t, c, f, generator=torch.Generator().manual_seed(13))
    grads = {}
    for name, forward in (("matmul", att), ("einsum", lambda v: _einsum_channel_attention(att, v))):
        att.zero_grad()
        x.grad = None
        (forward(x) * weights).sum().backward()
        grads[name] = {"x": x.grad.clone()} | {n: p.grad.clone() for n, p in att.named_parameters()}
    for key, expected in grads["einsum"].items():
        assert expected.abs().max() > 0, key
        torch.testing.assert_close(grads["matmul"][key], expected, atol=1e-5, rtol=1e-4, msg=key)


def test_channel_attention_parameters_keep_names_and_shapes():
    """The parameters (names, shapes) are those of the 4 x 64 projections, so old checkpoints still load."""
    att = ChannelAttention(n_bands=5, n_heads=4, head_dim=64, dropout=0.1, temporal_sparse=True)
    shapes = {name: tuple(p.shape) for name, p in att.state_dict().items()}
    assert shapes == {
        "to_q.weight": (256, 5),
        "to_q.bias": (256,),
        "to_k.weight": (256, 5),
        "to_v.weight": (256, 5),
        "to_v.bias": (256,),
        "to_out.weight": (5, 256),
        "to_out.bias": (5,),
    }


def test_low_rank_maps_are_the_per_head_products():
    """score_map, score_bias, value_out and bias are the documented per-head products, heads side by side."""
    att = _random_channel_attention(True, f=3, heads=2, head_dim=4)
    score_map, score_bias, value_out, bias = att.low_rank_maps()
    assert (score_map.shape, score_bias.shape, value_out.shape, bias.shape) == ((3, 6), (6,), (6, 3), (3,))
    for i in range(2):
        rows, cols = slice(4 * i, 4 * (i + 1)), slice(3 * i, 3 * (i + 1))
        w_q, w_k, w_v = (m.weight[rows] for m in (att.to_q, att.to_k, att.to_v))
        w_o = att.to_out.weight[:, rows]
        torch.testing.assert_close(score_map[:, cols], w_q.T @ w_k)
        torch.testing.assert_close(score_bias[cols], w_k.T @ att.to_q.bias[rows])
        torch.testing.assert_close(value_out[cols], (w_o @ w_v).T)
    torch.testing.assert_close(bias, att.to_out.weight @ att.to_v.bias + att.to_out.bias)


@pytest.mark.parametrize("attention", ["sts", "mha"])
def test_exported_eeg_graphs_have_no_einsum(tmp_path, attention):
    """The exported M2S EEG graphs use no Einsum node and still pass the export's ONNX Runtime parity check."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")

    from models.config import M2SConfig, ModalityConfig
    from models.m2s import M2S, EmotionClassifier
    from signals.normalisation import Normalisation
    from signals.spec import DESpec
    from training.export import PARITY_TOLERANCE, ModalityExport, export_bundle

    channels = ("F3", "Fz", "F4", "C3", "Cz", "C4")
    spec = DESpec(modality="eeg", sfreq=200, channels=channels, window_s=2, hop_s=2)
    config = M2SConfig(
        modalities=(
            ModalityConfig(name="eeg", dim=spec.n_features, n_channels=6),
            ModalityConfig(name="eye", dim=4),
        ),
        seq_len=5,
        d_model=16,
        n_blocks=2,
        d_ff=32,
        n_heads=4,
        head_dim=8,
        attention=attention,
    )
    torch.manual_seed(0)
    model = M2S(config).eval()
    item = ModalityExport(
        embedder=model.embedder("eeg"),
        classifier=EmotionClassifier(config.proj_dim, 3).eval(),
        feature_spec=spec,
        normalisation=Normalisation.identity(spec.n_features),
        spacing_s=2.0,
    )
    bundle, parity = export_bundle(tmp_path, "m2s", {"eeg": item}, class_names=("a", "b", "c"), seq_len=5)
    assert set(parity) == {"eeg", "eeg.embedding"} and max(parity.values()) <= PARITY_TOLERANCE
    for embedding in (False, True):
        ops = [node.op_type for node in onnx.load(bundle.graph_path("eeg", embedding=embedding)).graph.node]
        assert "Einsum" not in ops, f"embedding={embedding}"
        assert ops.count("Softmax") >= config.n_blocks  # the channel attention really is in the graph


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
