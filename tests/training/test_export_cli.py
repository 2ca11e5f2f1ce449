"""`m2s-train export` and the committed default demo bundle."""

import numpy as np
import pytest

from models.repository import ModelRepository
from tests.no_torch import run_without
from training.cli import main
from training.demo_bundle import DEMO_MODALITIES, DEMO_NAME, DEMO_REPOSITORY, DEMO_UNSEEN_SUBJECTS, SCHEMES

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
                 TINY_MODEL, "--epochs", "2", "--min-steps", "0", "--warmup-steps", "0", "--batch-size", "16", *common]) == 0  # fmt: skip
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


def test_demo_bundle_is_a_population_model_of_other_subjects():
    """The committed bundle lists its pool and the subjects it never saw (0, 1, 2: none in the pool)."""
    manifest = ModelRepository(DEMO_REPOSITORY).load(DEMO_NAME).manifest
    training, metrics = manifest.training, manifest.metrics
    assert training["method"] == "m2s (population)"
    assert training["unseen_subjects"] == list(DEMO_UNSEEN_SUBJECTS) == [0, 1, 2]
    assert training["subjects"] == list(range(3, 15))  # the default config's 15 subjects but 0, 1, 2
    assert not set(training["subjects"]) & {0, 1, 2}
    assert (training["test_subject"], training["validation_subject"]) == (1, 2)
    assert training["synthetic_config"]["n_subjects"] == 15 and training["seed"] == 0
    assert training["steps"] >= training["recipe"]["min_steps"] == 400
    assert set(training["head_c"]) == set(DEMO_MODALITIES)
    # Both normalisation schemes were validated on subject 2; the better mean was exported.
    norm = training["normalisation"]
    assert set(norm["validation"]) == set(SCHEMES)
    assert norm["scheme"] == max(SCHEMES, key=lambda s: norm["validation"][s]["mean"])
    assert metrics["validation"]["balanced_accuracy"] == norm["validation"]
    assert metrics["validation"]["chosen"] == norm["scheme"]
    # The test matrix is measured on subject 1 with the population's statistics (no calibration).
    assert "subject 1, never seen in training" in metrics["evaluated_on"]
    assert set(metrics["matrix"]) == {f"{a}->{b}" for a in DEMO_MODALITIES for b in DEMO_MODALITIES}
    for m in DEMO_MODALITIES:  # chance is 1/3
        assert metrics["matrix"][f"{m}->{m}"]["balanced_accuracy"] > 0.6, m
        assert norm["validation"][norm["scheme"]][m] > 0.6, m


# Per modality, the bar of test_demo_bundle_serves_without_torch_on_unseen_subjects (chance: 1/3).
MIN_SERVE = {"eeg": 0.8, "eye": 0.5, "ecg": 0.7}

# Runs in a process where torch cannot be imported: the manifest alone tells how to compute the inputs.
_SERVE_WITHOUT_TORCH = r"""
import sys
import numpy as np, onnxruntime as ort
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from synthetic import SyntheticConfig, generate_trial

bundle = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
manifest = bundle.manifest
trained = SyntheticConfig.model_validate(manifest.training["synthetic_config"])
# Trial k's signals depend only on (seed, subject, session, k): trials beyond the config's of subjects the
# bundle never saw (0: the simulator's default; 1: the manifest's test subject).
config = trained.model_copy(update={"n_trials": trained.n_trials + 6})
hits = {m: [] for m in manifest.graphs}
for subject in (0, 1):
    assert subject in manifest.training["unseen_subjects"]
    for trial in range(trained.n_trials, config.n_trials):
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


def test_demo_bundle_serves_without_torch_on_unseen_subjects():
    """With onnxruntime and the manifest only (no torch), the demo bundle recognises people it never saw."""
    out = run_without(_SERVE_WITHOUT_TORCH, timeout=300)
    assert out.returncode == 0, out.stderr
    accuracy = {k: float(v) for k, v in (item.split("=") for item in out.stdout.split())}
    assert set(accuracy) == set(DEMO_MODALITIES)
    # 3 classes, 12 trials (6 of each of two unseen subjects): chance is 1/3. Measured with the committed
    # bundle: EEG 1.000, EYE 0.689, ECG 0.917 (window accuracy). EEG and ECG carry most class information
    # in the synthetic data and transfer across people; the eye transfers least (calibration's job).
    for m, acc in accuracy.items():
        assert acc > MIN_SERVE[m], (m, acc)


# A small world for builds in tests: 5 subjects (0, 1, 2 unseen; pool 3, 4), 6 short trials each.
_TINY = {"n_subjects": 5, "n_trials": 6, "trial_duration_s": 30.0}


def test_demo_bundle_build_is_deterministic_and_loads(tmp_path, capsys):
    """A tiny build runs end to end into a repository, loads with the ordinary bundle code, and repeats exactly."""
    import onnxruntime as ort

    from synthetic import SyntheticConfig
    from training.demo_bundle import build_demo_bundle

    tiny = SyntheticConfig(seed=0, **_TINY)
    first, parity = build_demo_bundle(tmp_path / "a", synthetic=tiny, steps=4)
    second, _ = build_demo_bundle(tmp_path / "b", synthetic=tiny, steps=4)
    assert max(parity.values()) < 1e-4
    loaded = ModelRepository(tmp_path / "a").load(DEMO_NAME)  # checksums and schema verified
    assert loaded.ref == f"{DEMO_NAME}:1" and set(loaded.manifest.graphs) == set(DEMO_MODALITIES)
    training = loaded.manifest.training
    assert training["subjects"] == [3, 4] and training["unseen_subjects"] == [0, 1, 2]
    assert training["steps"] >= 4 and training["synthetic_config"]["n_subjects"] == 5
    assert set(training["normalisation"]["validation"]) == set(SCHEMES)
    rng = np.random.default_rng(0)
    for m, graph in first.manifest.graphs.items():
        x = rng.standard_normal((32, graph.seq_len, graph.dim)).astype(np.float32)
        a = ort.InferenceSession(str(first.graph_path(m))).run(None, {"window": x})[0]
        b = ort.InferenceSession(str(second.graph_path(m))).run(None, {"window": x})[0]
        np.testing.assert_array_equal(a, b)
    assert first.manifest.metrics == second.manifest.metrics
    # The committed bundle was made by the same recipe: the same provenance fields, method and network.
    committed = ModelRepository(DEMO_REPOSITORY).load(DEMO_NAME).manifest.training
    assert set(training) == set(committed)
    for key in ("method", "unseen_subjects", "test_subject", "validation_subject", "model_config", "seq_len"):
        assert training[key] == committed[key], key
    steps = ("min_steps", "warmup_steps")  # a short run warms up over a tenth of its steps
    assert {k: v for k, v in training["recipe"].items() if k not in steps} == {
        k: v for k, v in committed["recipe"].items() if k not in steps
    }
    assert main(["bundle", "inspect", str(loaded.path)]) == 0
    out = capsys.readouterr().out
    assert "training.unseen_subjects: [0, 1, 2]" in out and "subject 1, never seen in training" in out


def test_demo_bundle_refuses_an_unseen_subject_in_the_pool(tmp_path):
    """Subjects 0, 1 and 2 can never be trained on; the error names them."""
    from training.demo_bundle import build_demo_bundle

    with pytest.raises(ValueError, match=r"outside \[0, 1, 2\]"):
        build_demo_bundle(tmp_path, pool_subjects=[1, 3, 4])
