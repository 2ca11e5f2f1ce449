"""Calibrated bundles (models.calibrated) and the multi-root repository that serves them beside read-only ones."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from models.bundle import BundleError, Normalisation, load_manifest
from models.calibrated import LinearHeadWeights, calibrated_name, write_calibrated_bundle
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from training.bundle_cli import describe_manifest

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def base():
    return ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)


def _head(rng, n_classes=3, dim=32):
    return LinearHeadWeights(rng.normal(size=(n_classes, dim)), rng.normal(size=n_classes))


def _provenance(**overrides):
    values = {
        "train_modality": "eeg",
        "windows": {"eeg": {"negative": 10, "neutral": 10, "positive": 10}},
        "trials": {"negative": 2, "neutral": 2, "positive": 2},
        "head": {"kind": "logistic regression", "c": {"eeg": 1.0}},
        "validation": {"balanced_accuracy": 0.9, "per_modality": {"eeg": {"balanced_accuracy": 0.9}}},
    }
    values.update(overrides)
    return values


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=CPU)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_calibrated_bundle_serves_the_head_through_every_embedding_graph(tmp_path, base):
    """Each modality's graph is its embedding graph followed by the head serving it (cross-modal: EEG's head)."""
    rng = np.random.default_rng(0)
    head = _head(rng)
    eeg_norm = Normalisation(mean=tuple(rng.normal(size=310)), std=tuple(rng.uniform(0.5, 2, size=310)))
    bundle = write_calibrated_bundle(
        ModelRepository(tmp_path),
        base,
        participant="p-013",
        heads={"eeg": head},
        serve={"eeg": "eeg", "eye": "eeg"},
        normalisations={"eeg": eeg_norm},
        provenance=_provenance(),
    )
    assert bundle.ref == "m2s-synthetic-demo-p-013:1"
    manifest = load_manifest(bundle.path)  # the ordinary loader, checksums verified
    assert sorted(manifest.graphs) == ["eeg", "eye"]
    assert manifest.graphs["eeg"].normalisation.model_dump() == eeg_norm.model_dump()
    eye_base = base.manifest.graphs["eye"].normalisation
    assert manifest.graphs["eye"].normalisation.model_dump() == eye_base.model_dump()
    assert manifest.graphs["eye"].feature_spec == base.manifest.graphs["eye"].feature_spec
    cal = manifest.calibration
    assert cal.participant == "p-013" and cal.base == "m2s-synthetic-demo:1"
    assert cal.heads == {"eeg": "eeg", "eye": "eeg"}
    assert cal.normalisation == {"eeg": "participant", "eye": "base"}
    assert set(manifest.sha256) == {
        "eeg.onnx",
        "eeg.embedding.onnx",
        "eye.onnx",
        "eye.embedding.onnx",
        "head.eeg.onnx",
    }
    for modality, d in (("eeg", 310), ("eye", 33)):
        x = rng.normal(size=(6, 5, d)).astype(np.float32)
        z = _run(bundle.graph_path(modality, embedding=True), x)
        np.testing.assert_allclose(z, _run(base.graph_path(modality, embedding=True), x), rtol=0, atol=0)
        probs = _run(bundle.graph_path(modality), x)
        np.testing.assert_allclose(probs, head.probabilities(z), atol=1e-5)
        np.testing.assert_allclose(_run(bundle.path / "head.eeg.onnx", z), probs, atol=1e-5)
    text = describe_manifest(manifest)
    assert "calibration: participant p-013, base m2s-synthetic-demo:1" in text
    assert "heads: eeg <- eeg, eye <- eeg" in text
    # The next fit is the next version; the folder of each version is owner-only.
    second = write_calibrated_bundle(
        ModelRepository(tmp_path), base, participant="p-013", heads={"eeg": head}, serve={"eeg": "eeg"},
        normalisations={}, provenance=_provenance(),
    )  # fmt: skip
    assert second.ref == "m2s-synthetic-demo-p-013:2"
    assert (second.path.stat().st_mode & 0o077) == 0


def test_a_failed_write_leaves_nothing(tmp_path, base):
    """A head of the wrong shape (or any failure) leaves no version and no temporary folder behind."""
    rng = np.random.default_rng(1)
    with pytest.raises(
        ValueError, match=r"the eeg head has weights \(3, 16\); m2s-synthetic-demo:1 needs \(3, 32\)"
    ):
        write_calibrated_bundle(
            ModelRepository(tmp_path), base, participant="p1", heads={"eeg": _head(rng, dim=16)},
            serve={"eeg": "eeg"}, normalisations={}, provenance=_provenance(),
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"has no modality \['pps'\]"):
        write_calibrated_bundle(
            ModelRepository(tmp_path), base, participant="p1", heads={"eeg": _head(rng)},
            serve={"pps": "eeg"}, normalisations={}, provenance=_provenance(),
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    assert ModelRepository(tmp_path).names() == []


def test_calibrated_name_length_and_head_checks():
    assert calibrated_name("m2s", "p-1") == "m2s-p-1"
    with pytest.raises(ValueError, match="at most 64"):
        calibrated_name("m" * 40, "p" * 30)
    with pytest.raises(ValueError, match="must be finite"):
        LinearHeadWeights(np.full((3, 2), np.nan), np.zeros(3))
    with pytest.raises(ValueError, match=r"coef \(n_classes, E\) and intercept \(n_classes,\)"):
        LinearHeadWeights(np.zeros((3, 2)), np.zeros(2))


def test_repository_searches_its_roots_in_order(tmp_path, base):
    """Names come from every root; a name lives in the first root that has it; new versions go to the first root."""
    rng = np.random.default_rng(2)
    writable = tmp_path / "calibrated"
    write_calibrated_bundle(
        ModelRepository(writable), base, participant="p2", heads={"eeg": _head(rng)}, serve={"eeg": "eeg"},
        normalisations={}, provenance=_provenance(),
    )  # fmt: skip
    both = ModelRepository(DEFAULT_REPOSITORY, writable)
    assert both.names() == [DEMO_BUNDLE, "m2s-synthetic-demo-p2"]
    assert both.load("m2s-synthetic-demo-p2").path == writable / "m2s-synthetic-demo-p2" / "1"
    assert both.load(DEMO_BUNDLE).path == DEFAULT_REPOSITORY / DEMO_BUNDLE / "1"
    assert [b.ref for b in both.list()] == ["m2s-synthetic-demo:1", "m2s-synthetic-demo-p2:1"]
    with pytest.raises(
        BundleError, match=r"no model named 'nope' in repository .* \+ .*calibrated'; models there: "
    ):
        both.resolve("nope")
    version, path = ModelRepository(writable).new_version_dir("m2s-synthetic-demo-p2")
    assert (version, path) == (2, writable / "m2s-synthetic-demo-p2" / "2")
    manifest = json.loads((writable / "m2s-synthetic-demo-p2" / "1" / "manifest.json").read_text())
    assert manifest["calibration"]["participant"] == "p2"


def test_concurrent_writers_and_leftover_folders_get_their_own_versions(tmp_path, base):
    """Two fits of one participant at once, or a numbered folder left by a crash, never collide: each write
    takes the next free version."""
    import threading

    rng = np.random.default_rng(3)
    (tmp_path / "m2s-synthetic-demo-p3" / "1").mkdir(parents=True)  # a crash left it without a manifest
    results, errors = [], []

    def write():
        try:
            results.append(write_calibrated_bundle(
                ModelRepository(tmp_path), base, participant="p3", heads={"eeg": _head(rng)}, serve={"eeg": "eeg"},
                normalisations={}, provenance=_provenance(),
            ).ref)  # fmt: skip
        except Exception as err:  # noqa: BLE001 (collected for the assertion)
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == [f"m2s-synthetic-demo-p3:{v}" for v in (2, 3, 4, 5)]
