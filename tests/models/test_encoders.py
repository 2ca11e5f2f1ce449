"""Tests for models/encoders.py: ER encoders (electrode and sequence), EI encoder, decoder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.config import M2SConfig, ModalityConfig  # noqa: E402
from models.encoders import (  # noqa: E402
    Decoder,
    EIEncoder,
    ElectrodeEREncoder,
    OverChannels,
    PostNormBlock,
    SequenceEREncoder,
    build_er_encoder,
)


def _config(*modalities: ModalityConfig, **overrides) -> M2SConfig:
    small = dict(d_model=16, n_blocks=2, d_ff=32, n_heads=2, head_dim=4, d_ei=8, proj_dim=4, seq_len=4)
    small.update(overrides)
    return M2SConfig(modalities=modalities, **small)


class _BandMean(torch.nn.Module):
    """Replaces each channel token by its mean over bands."""

    def forward(self, tokens):
        return tokens.mean(dim=-1, keepdim=True).expand_as(tokens)


def test_over_channels_uses_channel_major_layout():
    """OverChannels groups index channel * B + band into one token per channel."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4 * 5)).astype(np.float32)  # C = 4 channels, B = 5 bands
    out = OverChannels(_BandMean(), n_channels=4)(torch.from_numpy(x)).numpy()
    expected = np.repeat(x.reshape(2, 3, 4, 5).mean(axis=-1), 5, axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("c", "b", "t", "attention"),
    [(62, 5, 5, "sts"), (14, 5, 3, "mha"), (2, 5, 6, "none"), (8, 6, 2, "sts"), (1, 3, 1, "sts")],
)
def test_electrode_encoder_shapes(c, b, t, attention):
    """The electrode ER encoder maps (batch, T, C*B) to (batch, T, d_model) for any C, B, T."""
    modality = ModalityConfig(name="eeg", dim=c * b, n_channels=c)
    config = _config(modality, ModalityConfig(name="eye", dim=3), attention=attention, seq_len=max(t, 3))
    encoder = build_er_encoder(modality, config)
    assert isinstance(encoder, ElectrodeEREncoder)
    z = encoder(torch.randn(3, t, c * b))
    assert z.shape == (3, t, 16)
    z.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_electrode_encoder_without_attention_has_no_attention_parameters():
    """attention='none' builds blocks with only the feed-forward sub-layer."""
    modality = ModalityConfig(name="eeg", dim=10, n_channels=2)
    encoder = ElectrodeEREncoder(modality, _config(modality, attention="none"))
    assert all(block.attention is None for block in encoder.blocks)
    assert not any("attention" in name for name, _ in encoder.named_parameters())


def test_sequence_encoder_shapes_and_mixes_time():
    """The sequence ER encoder maps (batch, T, D_m) to (batch, T, d_model) and attends over time."""
    modality = ModalityConfig(name="eye", dim=33)
    encoder = build_er_encoder(modality, _config(modality)).eval()
    assert isinstance(encoder, SequenceEREncoder)
    x = torch.randn(2, 4, 33)
    z = encoder(x)
    assert z.shape == (2, 4, 16)
    y = x.clone()
    y[:, 3] += 1.0
    assert not torch.allclose(encoder(y)[:, 0], z[:, 0])  # step 4 influences step 1


def test_post_norm_block_output_is_layer_normalised():
    """A post-norm block ends with LayerNorm: zero mean, unit variance per token (default affine)."""
    block = PostNormBlock(dim=12, attention=None, d_ff=24, dropout=0.0)
    out = block(torch.randn(3, 4, 12) * 5 + 2)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(3, 4), atol=1e-3, rtol=0)


def test_ei_encoder_is_linear_relu_per_step():
    """The EI encoder is ReLU(W x + b) applied to every time step."""
    torch.manual_seed(0)
    ei = EIEncoder(in_dim=6, d_ei=8)
    x = torch.randn(2, 3, 6)
    linear = ei[0]
    torch.testing.assert_close(ei(x), torch.relu(x @ linear.weight.T + linear.bias))


def test_decoder_formula():
    """Decoder = Linear(2*d_ei -> in)([Linear(d -> d_ei)(z_er), z_ei])."""
    torch.manual_seed(0)
    dec = Decoder(d_model=16, d_ei=8, out_dim=10)
    z_er, z_ei = torch.randn(2, 3, 16), torch.randn(2, 3, 8)
    hidden = z_er @ dec.from_er.weight.T + dec.from_er.bias
    expected = torch.cat((hidden, z_ei), dim=-1) @ dec.to_input.weight.T + dec.to_input.bias
    out = dec(z_er, z_ei)
    assert out.shape == (2, 3, 10)
    torch.testing.assert_close(out, expected)
