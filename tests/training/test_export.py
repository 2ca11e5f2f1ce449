"""ONNX export into bundles: parity with torch under ONNX Runtime, checksums, repository versions."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from models.bundle import BundleError, load_manifest
from signals.normalisation import Normalisation
from signals.spec import DESpec
from training.export import ModalityExport, export_bundle

T, CHANNELS = 4, ("Fz", "Cz")


class _MeanEmbedder(nn.Module):
    """A small real embedder: per-step MLP, mean over T, L2-normalised."""

    def __init__(self, dim, out=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, out))

    def forward(self, x):
        z = self.net(x).mean(dim=1)
        return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def _item(spec, **kw):
    torch.manual_seed(0)
    dim = spec.n_features
    return ModalityExport(
        embedder=_MeanEmbedder(dim),
        classifier=nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3)),
        feature_spec=spec,
        normalisation=Normalisation.identity(dim),
        spacing_s=2.0,
        **kw,
    )


def _spec():
    return DESpec(modality="eeg", sfreq=200, channels=CHANNELS, window_s=2, hop_s=1)


def test_export_parity_and_manifest(tmp_path):
    """Exported graphs reproduce torch within 1e-4 for any batch size, and the manifest describes them."""
    real = np.random.default_rng(1).normal(size=(5, T, 10)).astype(np.float32)
    bundle, parity = export_bundle(
        tmp_path,
        "toy",
        {"eeg": _item(_spec(), check_windows=real)},
        class_names=("a", "b", "c"),
        seq_len=T,
        training={"dataset": "unit-test"},
    )
    assert set(parity) == {"eeg", "eeg.embedding"} and max(parity.values()) <= 1e-4
    graph = bundle.manifest.graph("eeg")
    assert (graph.seq_len, graph.dim, graph.spacing_s) == (T, 10, 2.0)
    assert bundle.manifest.embedding_dim == 8
    session = ort.InferenceSession(str(bundle.graph_path("eeg")), providers=["CPUExecutionProvider"])
    for batch in (1, 7, 64):
        probs = session.run(
            None, {"window": np.random.default_rng(batch).normal(size=(batch, T, 10)).astype(np.float32)}
        )[0]
        assert probs.shape == (batch, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_versions_increase_and_tamper_detected(tmp_path):
    """A second export is version 2; editing a graph afterwards makes the bundle refuse to load."""
    export_bundle(tmp_path, "toy", {"eeg": _item(_spec())}, class_names=("a", "b", "c"), seq_len=T)
    bundle, _ = export_bundle(
        tmp_path, "toy", {"eeg": _item(_spec())}, class_names=("a", "b", "c"), seq_len=T
    )
    assert bundle.ref == "toy:2"
    path = bundle.graph_path("eeg", embedding=True)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_manifest(bundle.path)


def test_offline_features_are_flagged(tmp_path):
    """Features with offline-only smoothing export with reproducible_online false."""
    spec = DESpec(
        modality="eeg", sfreq=200, channels=CHANNELS, window_s=2, hop_s=1, smoothing={"method": "lds"}
    )
    bundle, _ = export_bundle(tmp_path, "toy", {"eeg": _item(spec)}, class_names=("a", "b", "c"), seq_len=T)
    assert bundle.manifest.graph("eeg").reproducible_online is False


def test_bad_normalisation_leaves_no_version_behind(tmp_path):
    """A failed export raises and removes its half-written version folder."""
    item = _item(_spec())
    bad = ModalityExport(**{**item.__dict__, "normalisation": Normalisation.identity(3)})
    with pytest.raises(ValueError, match=r"the normalisation has 3 values but the feature spec gives 10"):
        export_bundle(tmp_path, "toy", {"eeg": bad}, class_names=("a", "b", "c"), seq_len=T)
    assert not (tmp_path / "toy" / "1").exists()


@pytest.mark.parametrize("attention", ["sts", "mha", "none"])
def test_real_m2s_graphs_export_with_parity(tmp_path, attention):
    """The real M2S embedders (electrode with each attention variant, and sequence) export within 1e-4."""
    from models.config import M2SConfig, ModalityConfig
    from models.m2s import M2S, EmotionClassifier
    from signals.spec import EyeSpec

    eye_spec = EyeSpec(sfreq=120, window_s=10, hop_s=2)
    eeg_spec = DESpec(modality="eeg", sfreq=200, channels=CHANNELS, window_s=2, hop_s=2)
    config = M2SConfig(
        modalities=(
            ModalityConfig(name="eeg", dim=10, n_channels=2),
            ModalityConfig(name="eye", dim=eye_spec.n_features),
        ),
        seq_len=T,
        d_model=16,
        n_blocks=1,
        d_ff=32,
        n_heads=2,
        head_dim=8,
        attention=attention,
    )
    torch.manual_seed(0)
    model = M2S(config).eval()
    classifier = EmotionClassifier(config.proj_dim, 3).eval()
    items = {
        m: ModalityExport(
            embedder=model.embedder(m),
            classifier=classifier,
            feature_spec=spec,
            normalisation=Normalisation.identity(spec.n_features),
            spacing_s=2.0,
        )
        for m, spec in (("eeg", eeg_spec), ("eye", eye_spec))
    }
    bundle, parity = export_bundle(tmp_path, "m2s", items, class_names=("a", "b", "c"), seq_len=T)
    assert max(parity.values()) <= 1e-4
    assert set(bundle.manifest.graphs) == {"eeg", "eye"} and bundle.manifest.embedding_dim == config.proj_dim


_EXPORT_WITHOUT_ORT = r"""
import numpy as np
from torch import nn
from signals.normalisation import Normalisation
from signals.spec import DESpec
from training.export import ModalityExport, export_bundle
spec = DESpec(modality="eeg", sfreq=200, channels=("Fz", "Cz"), window_s=2, hop_s=1)
item = ModalityExport(
    embedder=nn.Sequential(nn.Flatten(), nn.Linear(4 * spec.n_features, 8)),
    classifier=nn.Linear(8, 3),
    feature_spec=spec,
    normalisation=Normalisation.identity(spec.n_features),
    spacing_s=2.0,
)
try:
    export_bundle({repo!r}, "demo", {{"eeg": item}}, class_names=("a", "b", "c"), seq_len=4)
except RuntimeError as err:
    print(err)
"""


def test_export_without_onnxruntime_says_what_to_install(tmp_path):
    """Without ONNX Runtime, export stops with the pip command that installs it, not a bare ImportError."""
    from pathlib import Path

    from tests.no_torch import run_without

    root = str(Path(__file__).resolve().parents[2])
    code = _EXPORT_WITHOUT_ORT.format(repo=str(tmp_path))
    done = run_without(code, blocked=("onnxruntime",), cwd=root)
    assert done.returncode == 0, done.stderr
    assert "ONNX Runtime is not installed" in done.stdout
    assert "pip install 'm2s-live[train,cpu]'" in done.stdout
