"""`m2s-train export` and the committed default demo bundle."""

import numpy as np
import pytest

from models.repository import ModelRepository
from tests.no_torch import run_without
from training.cli import main
from training.demo_bundle import DEMO_MODALITIES, DEMO_NAME, DEMO_REPOSITORY

TINY_MODEL = '{"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}'


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory):
    """A pretrained and fine-tuned run on a tiny SEED_Multimodal fixture (EEG + EYE)."""
    from tests.fixtures.seed import write_seed

    root = tmp_path_factory.mktemp("seed")
    write_seed(root, n_subjects=1, n_sessions=1, layout="multimodal", n_windows=6)
    run = root / "run"
    common = ["--no-progress", "--device", "cpu"]
    assert main(["pretrain", str(root), "--kind", "seed", "--out", str(run), "--seq-len", "3", "--model",
                 TINY_MODEL, "--epochs", "2", "--batch-size", "16", *common]) == 0  # fmt: skip
    assert main(["finetune", str(run), "--finetune-epochs", "2", *common]) == 0
    return run


def test_export_run_into_repository(finetuned_run, tmp_path, capsys):
    """A fine-tuned run exports as version 1, with parity reported and offline-only features flagged."""
    repo = tmp_path / "repo"
    argv = [
        "export",
        str(finetuned_run),
        "--name",
        "seed-eeg",
        "--repository",
        str(repo),
        "--modalities",
        "eeg",
    ]
    assert main(argv) == 0
    assert "exported seed-eeg:1" in capsys.readouterr().out
    bundle = ModelRepository(repo).load("seed-eeg")
    graph = bundle.manifest.graph("eeg")
    assert (graph.seq_len, graph.dim) == (3, 310)
    assert graph.reproducible_online is False  # released SEED features
    assert set(bundle.manifest.metrics["matrix"]) == {"eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"}
    assert main(["export", str(finetuned_run), "--name", "seed-eeg", "--repository", str(repo),
                 "--modalities", "eeg", "--classifier", "eye"]) == 0  # fmt: skip
    assert ModelRepository(repo).load("seed-eeg").manifest.training["classifiers"] == {"eeg": "eye"}


def test_export_refuses_features_without_spec(finetuned_run, tmp_path, capsys):
    """Released eye features have no FeatureSpec: exporting them is refused with the way out."""
    assert main(["export", str(finetuned_run), "--name", "x", "--repository", str(tmp_path)]) == 2
    assert "have no FeatureSpec" in capsys.readouterr().err
    assert main(["export", str(finetuned_run), "--name", "x", "--repository", str(tmp_path),
                 "--modalities", "eeg", "--classifier", "ecg"]) == 2  # fmt: skip
    assert "--classifier 'ecg' has no fine-tuned classifier" in capsys.readouterr().err


def test_demo_bundle_is_committed_and_verified():
    """The default demo bundle is in the repository, checksums match, EEG/EYE/ECG with online features."""
    bundle = ModelRepository(DEMO_REPOSITORY).load(DEMO_NAME)
    assert set(bundle.manifest.graphs) == set(DEMO_MODALITIES)
    assert all(g.reproducible_online for g in bundle.manifest.graphs.values())
    size = sum(f.stat().st_size for f in bundle.path.iterdir())
    assert size < 10 * 2**20


# Runs in a process where torch cannot be imported: the manifest alone tells how to compute the inputs.
_SERVE_WITHOUT_TORCH = r"""
import sys
import numpy as np, onnxruntime as ort
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from synthetic import SyntheticConfig, generate_trial

bundle = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
manifest = bundle.manifest
trained = SyntheticConfig.model_validate(manifest.training["synthetic_config"])
# More trials of the same subjects: trial k's signals depend only on (seed, subject, session, k).
config = trained.model_copy(update={"n_trials": trained.n_trials + 6})
subject = int(manifest.training["subject"])
hits = {m: [] for m in manifest.graphs}
for trial in range(trained.n_trials, config.n_trials):   # trials the bundle never saw
    data = generate_trial(config, subject, 0, trial, modalities=tuple(manifest.graphs))
    for m, graph in manifest.graphs.items():
        spec = graph.feature_spec
        frames = spec.compute(data.signals[m])
        step = round(graph.spacing_s / spec.hop_s)
        z = (frames.features - np.array(graph.normalisation.mean)) / np.array(graph.normalisation.std)
        span = (graph.seq_len - 1) * step
        windows = np.stack([z[i : i + span + 1 : step] for i in range(len(z) - span)]).astype(np.float32)
        session = ort.InferenceSession(str(bundle.graph_path(m)), providers=["CPUExecutionProvider"])
        probs = session.run(None, {"window": windows})[0]
        hits[m].extend((probs.argmax(axis=1) == data.label).tolist())
assert 'torch' not in sys.modules
print(" ".join(f"{m}={np.mean(h):.3f}" for m, h in hits.items()))
"""


def test_demo_bundle_serves_without_torch_on_unseen_trials():
    """With onnxruntime and the manifest only (no torch), the demo bundle recognises unseen synthetic trials."""
    out = run_without(_SERVE_WITHOUT_TORCH, timeout=300)
    assert out.returncode == 0, out.stderr
    accuracy = {k: float(v) for k, v in (item.split("=") for item in out.stdout.split())}
    assert set(accuracy) == set(DEMO_MODALITIES)
    # 3 classes, 6 unseen trials (2 per class): chance is 1/3. EEG and ECG carry most class information
    # in the synthetic data; the bar is well above chance but below what the manifest's test matrix shows.
    for m, acc in accuracy.items():
        assert acc > 0.5, (m, acc)


def test_demo_bundle_build_is_deterministic(tmp_path):
    """Two builds with the same seed give identical graphs' outputs and the committed bundle's recipe."""
    import onnxruntime as ort

    from training.demo_bundle import build_demo_bundle

    first, _ = build_demo_bundle(tmp_path / "a", epochs=3)
    second, _ = build_demo_bundle(tmp_path / "b", epochs=3)
    rng = np.random.default_rng(0)
    for m, graph in first.manifest.graphs.items():
        x = rng.standard_normal((32, graph.seq_len, graph.dim)).astype(np.float32)
        a = ort.InferenceSession(str(first.graph_path(m))).run(None, {"window": x})[0]
        b = ort.InferenceSession(str(second.graph_path(m))).run(None, {"window": x})[0]
        np.testing.assert_array_equal(a, b)
    committed = ModelRepository(DEMO_REPOSITORY).load(DEMO_NAME).manifest.training
    rebuilt = {**first.manifest.training, "pretrain_epochs": committed["pretrain_epochs"]}
    assert rebuilt == committed  # same data, split, model config and seed as the committed version
