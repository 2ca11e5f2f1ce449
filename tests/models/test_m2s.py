"""Tests for models/m2s.py and models/config.py: M2S pretraining forward, classifier, baseline S, export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from models.config import M2SConfig, ModalityConfig

torch = pytest.importorskip("torch")

from models.m2s import M2S, EmotionClassifier, PretrainOutput, SupervisedModel  # noqa: E402

EEG = ModalityConfig(name="eeg", dim=12, n_channels=4)  # 4 channels x 3 bands
EYE = ModalityConfig(name="eye", dim=5)
ECG = ModalityConfig(name="ecg", dim=4, n_channels=2)
SMALL = dict(
    d_model=8, n_blocks=1, d_ff=16, n_heads=2, head_dim=4, d_ei=6, proj_dim=4, cpc_hidden=5, club_hidden=8
)


def _config(*modalities, **overrides) -> M2SConfig:
    kwargs = {**SMALL, **overrides}
    return M2SConfig(modalities=modalities or (EEG, EYE), **kwargs)


def _batch(config: M2SConfig, b: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m.name: torch.randn(b, config.seq_len, m.dim, generator=g) for m in config.modalities}


# --- config -----------------------------------------------------------------------------------------------


def test_config_imports_without_torch():
    """`import models, models.config` works with torch blocked (the service has no torch)."""
    code = "import sys; sys.modules['torch'] = None; import models, models.config; print(models.config.M2SConfig)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "M2SConfig" in result.stdout


def test_models_package_lazy_attributes():
    """`models.M2S` resolves lazily to the torch class; unknown names raise AttributeError."""
    import models

    assert models.M2S is M2S and models.M2SConfig is M2SConfig
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        models.Nope  # noqa: B018


def test_config_round_trips_through_json():
    """to_dict -> JSON -> from_dict gives an equal config."""
    config = _config(EEG, EYE, ECG, attention="mha", cpc_steps=2, seq_len=6)
    assert M2SConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.modality("ecg").n_bands == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(modalities=(EEG, EEG)), ValueError, "must be unique"),
        (dict(modalities=()), ValueError, "is empty"),
        (dict(modalities=EEG), TypeError, "tuple of ModalityConfig"),
        (dict(modalities=(EEG, "eye")), TypeError, "hold ModalityConfig"),
        (dict(attention="gat"), ValueError, "Allowed values are"),
        (dict(seq_len=2), ValueError, "needs seq_len >= 3"),
        (dict(w_club=-0.1), ValueError, "w_club must be >= 0"),
        (dict(dropout=1.0), ValueError, "dropout must be >= 0.0 and < 1.0"),
        (dict(d_model=9), ValueError, "divisible by n_heads"),
        (dict(n_blocks=0), ValueError, "n_blocks must be >= 1"),
        (dict(d_ff=2.5), TypeError, "d_ff must be an int"),
        (dict(temperature_init=0), ValueError, "temperature_init must be > 0"),
        (dict(cpc_same_modal_weight="x"), TypeError, "must be a number"),
    ],
)
def test_config_validation(kwargs, error, match):
    """Invalid configurations raise with an actionable message."""
    base = dict(modalities=(EEG, EYE), **SMALL)
    base.update(kwargs)
    with pytest.raises(error, match=match):
        M2SConfig(**base)


def test_config_short_window_allowed_without_cpc():
    """seq_len < N + 2 is fine when CPC is switched off."""
    assert _config(seq_len=1, w_cpc=0).seq_len == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(name="eeg", dim=10, n_channels=3), "divisible by n_channels"),
        (dict(name="", dim=3), "non-empty identifier"),
        (dict(name="eye", dim=0), "eye.dim must be >= 1"),
    ],
)
def test_modality_config_validation(kwargs, match):
    """Invalid modality configurations raise ValueError."""
    with pytest.raises(ValueError, match=match):
        ModalityConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys_and_names():
    """Unknown keys in from_dict and unknown modality names raise."""
    d = _config().to_dict()
    with pytest.raises(ValueError, match="unknown M2SConfig keys"):
        M2SConfig.from_dict({**d, "lr": 1e-3})
    with pytest.raises(KeyError, match="unknown modality 'ecg'"):
        _config().modality("ecg")
    with pytest.raises(TypeError, match="positional argument"):
        M2SConfig((EEG, EYE))  # keyword-only


# --- M2S forward --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "modalities",
    [(EEG, EYE), (EEG, EYE, ECG), (ModalityConfig(name="eeg", dim=310, n_channels=62), EYE), (EEG, ECG)],
    ids=["eeg+eye", "k3", "seed-eeg", "two-electrode"],
)
@pytest.mark.parametrize("seq_len", [3, 5])
def test_forward_shapes_and_losses(modalities, seq_len):
    """One forward gives a finite scalar total, every loss and detached features of the right shapes."""
    torch.manual_seed(0)
    config = _config(*modalities, seq_len=seq_len)
    model = M2S(config)
    out = model(_batch(config), generator=torch.Generator().manual_seed(0))
    assert isinstance(out, PretrainOutput) and out.total.ndim == 0 and torch.isfinite(out.total)
    assert set(out.losses) == {"club", "recon", "contra", "cpc"}
    for m in modalities:
        z_er, z_ei = out.detached[m.name]
        assert z_er.shape == (6, seq_len, 8) and z_ei.shape == (6, seq_len, 6) and not z_er.requires_grad
        assert model.encode(m.name, _batch(config)[m.name]).shape == (6, seq_len, 8)
        emb = model.embed(m.name, _batch(config)[m.name])
        assert emb.shape == (6, 4)
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(6))


def test_total_is_weighted_sum_of_losses():
    """total = 0.3 CLUB + 0.1 Recon + Contra + CPC (reference weights) on the reported values."""
    torch.manual_seed(0)
    config = _config()
    out = M2S(config).eval()(_batch(config))
    expected = sum(getattr(config, f"w_{k}") * v for k, v in out.losses.items())
    torch.testing.assert_close(out.total.detach(), expected)


@pytest.mark.parametrize("off", ["club", "recon", "contra", "cpc"])
def test_zero_weight_switches_loss_off(off):
    """A zero weight reports 0 and the loss's own modules get no gradient (it was not computed)."""
    torch.manual_seed(0)
    config = _config(**{f"w_{off}": 0.0})
    model = M2S(config)
    out = model(_batch(config))
    assert out.losses[off].item() == 0.0
    assert all(out.losses[k].item() != 0.0 for k in out.losses if k != off)
    out.total.backward()
    owners = {"recon": model.decoders, "contra": model.embedders["eeg"].projection, "cpc": model.cpc}
    if off in owners:
        assert all(p.grad is None for p in owners[off].parameters())
    if off == "club":
        assert out.detached == {}
        model.club_estimator_loss(out.detached).backward()  # no-op, must not raise
        assert all(p.grad is None for p in model.estimator_parameters())


def test_clip_baseline_only_contrastive():
    """CLIP = contrastive only: EI encoders, decoders, CPC and estimators get no gradient."""
    torch.manual_seed(0)
    config = _config(w_club=0, w_recon=0, w_cpc=0)
    model = M2S(config)
    model(_batch(config)).total.backward()
    for module in (model.ei_encoders, model.decoders, model.cpc, model.club_estimators):
        assert all(p.grad is None for p in module.parameters())


def test_estimator_gradients_are_separated():
    """total gives no gradient to the CLUB estimators; club_estimator_loss gives gradient only to them."""
    torch.manual_seed(0)
    config = _config()
    model = M2S(config)
    out = model(_batch(config))
    out.total.backward()
    assert all(p.grad is None for p in model.estimator_parameters())
    assert all(p.grad is not None for p in model.encoder_parameters())
    model.zero_grad(set_to_none=True)
    model.club_estimator_loss(out.detached).backward()
    assert all(p.grad is not None for p in model.estimator_parameters())
    assert all(p.grad is None for p in model.encoder_parameters())


def test_parameter_groups_partition_the_model():
    """encoder_parameters and estimator_parameters are disjoint and cover every parameter."""
    model = M2S(_config())
    enc, est = {id(p) for p in model.encoder_parameters()}, {id(p) for p in model.estimator_parameters()}
    assert not enc & est and enc | est == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("attention", ["sts", "mha", "none"])
def test_attention_variants_train(attention):
    """All three attention variants run forward and backward."""
    torch.manual_seed(0)
    config = _config(attention=attention)
    model = M2S(config)
    model(_batch(config)).total.backward()
    assert all(p.grad is not None for p in model.embedders["eeg"].parameters())


def test_forward_reproducible_with_generator():
    """In eval mode, the same generator seed gives the same losses (CLUB negatives, CPC split)."""
    torch.manual_seed(0)
    config = _config(seq_len=6)
    model, batch = M2S(config).eval(), _batch(config)
    a = model(batch, generator=torch.Generator().manual_seed(3)).losses
    b = model(batch, generator=torch.Generator().manual_seed(3)).losses
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("batch_fn", "error", "match"),
    [
        (lambda b: {"eeg": b["eeg"]}, ValueError, "exactly the modalities"),
        (lambda b: [b["eeg"], b["eye"]], TypeError, "batch must be a dict"),
        (lambda b: {**b, "eye": b["eye"].double()}, TypeError, "must be float32"),
        (lambda b: {**b, "eye": b["eye"][:, :, :3]}, ValueError, r"shape \(batch, 5, 5\)"),
        (lambda b: {**b, "eye": b["eye"][:3]}, ValueError, "same batch size"),
        (lambda b: {**b, "eye": b["eye"].numpy()}, TypeError, "must be a torch.Tensor"),
    ],
)
def test_forward_validation(batch_fn, error, match):
    """Bad batches raise with a message naming the problem."""
    config = _config()
    with pytest.raises(error, match=match):
        M2S(config)(batch_fn(_batch(config)))


def test_m2s_constructor_validation():
    """M2S needs an M2SConfig, >= 2 modalities and one positive loss weight."""
    with pytest.raises(TypeError, match="M2SConfig"):
        M2S({"modalities": []})
    with pytest.raises(ValueError, match=">= 2 paired modalities"):
        M2S(_config(EEG))
    with pytest.raises(ValueError, match="all loss weights are 0"):
        M2S(_config(w_club=0, w_recon=0, w_contra=0, w_cpc=0))
    with pytest.raises(ValueError, match="unknown modalities"):
        M2S(_config()).club_estimator_loss({"ecg": (torch.zeros(1), torch.zeros(1))})


# --- classifier, baseline S -------------------------------------------------------------------------------


def test_emotion_classifier_structure_and_validation():
    """Linear -> ReLU -> BatchNorm1d(128) -> Linear, (b, p) -> (b, classes); bad sizes raise."""
    clf = EmotionClassifier(32, 3)
    assert clf(torch.randn(5, 32)).shape == (5, 3)
    assert isinstance(clf[2], torch.nn.BatchNorm1d) and clf[2].num_features == 128
    with pytest.raises(ValueError, match="n_classes >= 2"):
        EmotionClassifier(32, 1)
    with pytest.raises(TypeError, match="proj_dim must be an int"):
        EmotionClassifier(32.0, 3)


def test_supervised_model_trains_and_shares_embedder_layout():
    """Baseline S gives logits and its embedder's state dict loads into M2S.embedder(modality)."""
    torch.manual_seed(0)
    config = _config()
    model = SupervisedModel(config, "eeg", 3)
    logits = model(_batch(config)["eeg"])
    assert logits.shape == (6, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert all(p.grad is not None for p in model.parameters())
    M2S(config).embedder("eeg").load_state_dict(model.embedder.state_dict())  # strict: same keys and shapes
    with pytest.raises(KeyError, match="unknown modality"):
        SupervisedModel(config, "ecg", 3)


# --- export -------------------------------------------------------------------------------------------------


def _export_pipeline(modality: str):
    torch.manual_seed(0)
    config = _config()
    model = M2S(config)
    clf = EmotionClassifier(config.proj_dim, 3)
    pipeline = torch.nn.Sequential(model.embedder(modality), clf, torch.nn.Softmax(dim=-1)).eval()
    return config, pipeline


@pytest.mark.parametrize("modality", ["eeg", "eye"])
def test_embedder_exports_with_dynamic_batch(modality):
    """torch.export (the ONNX exporter's front end) traces embedder -> classifier with a dynamic batch."""
    config, pipeline = _export_pipeline(modality)
    dim = config.modality(modality).dim
    batch = torch.export.Dim("batch", min=2, max=1024)
    program = torch.export.export(
        pipeline, (torch.randn(4, config.seq_len, dim),), dynamic_shapes=({0: batch},), strict=False
    )
    x = torch.randn(7, config.seq_len, dim)
    torch.testing.assert_close(program.module()(x), pipeline(x), atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("modality", ["eeg", "eye"])
def test_embedder_onnx_parity(modality, dynamo, tmp_path):
    """ONNX export (opset 17/18, dynamic batch) runs in onnxruntime and matches torch within 1e-4."""
    pytest.importorskip("onnx", reason="torch.onnx.export needs the 'onnx' package")
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs 'onnxscript'")
    ort = pytest.importorskip("onnxruntime")
    config, pipeline = _export_pipeline(modality)
    dim = config.modality(modality).dim
    path = tmp_path / f"{modality}.onnx"
    example = (torch.randn(4, config.seq_len, dim),)
    names = dict(input_names=["x"], output_names=["p"])
    if dynamo:
        batch = torch.export.Dim("batch", min=2, max=1024)
        torch.onnx.export(
            pipeline, example, str(path), dynamic_shapes=({0: batch},), opset_version=18, dynamo=True, **names
        )
    else:
        axes = {"x": {0: "batch"}, "p": {0: "batch"}}
        torch.onnx.export(
            pipeline, example, str(path), dynamic_axes=axes, opset_version=17, dynamo=False, **names
        )
    x = torch.randn(9, config.seq_len, dim)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), pipeline(x).detach(), atol=1e-4, rtol=1e-4)
