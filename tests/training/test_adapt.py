"""``m2s-train adapt``: a base bundle adapted to an unseen synthetic subject's simulator-like XDF recording."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from clients.simulator import Simulator, TrialMarker
from models.bundle import load_manifest
from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from synthetic import SyntheticConfig, generate_trial
from tests.fixtures.recordings import XdfStream, write_xdf_streams
from training.adapt import AdaptConfig, adapt, split_trials
from training.cli import main
from training.export import WEIGHTS_FILE, load_bundle_model

T0 = 5000.0
DEMO = ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)
EEG4 = ("FP1", "FPZ", "FP2", "AF3")


def simulated_xdf(path, *, subject=0, per_class=2, n_test=3, trial_s=20.0, modalities=("eeg", "eye", "ecg"),
                  phases=True, corrupt_test=False, labels=True):  # fmt: skip
    """An XDF file as the service records the simulator: its streams (names, types, channels, units, rates)
    and JSON onset markers, ``per_class`` calibration trials per class then ``n_test`` test trials."""
    config = SyntheticConfig(trial_duration_s=trial_s)
    sim = Simulator(
        config, subject=subject, modalities=modalities, calibration_trials=per_class, first_trial=0
    )
    n = sim.n_calibration_played + n_test
    trials = [generate_trial(config, subject, 0, k, modalities=modalities) for k in range(n)]
    streams = []
    for m in modalities:
        spec = sim.streams[m]
        data = np.concatenate([t.signals[m] for t in trials], axis=1).T.astype(np.float32)
        if corrupt_test:
            per = trials[0].signals[m].shape[1]
            rng = np.random.default_rng(7)
            data[sim.n_calibration_played * per :] = rng.normal(
                0, 50, data[sim.n_calibration_played * per :].shape
            )
        times = T0 + np.arange(data.shape[0]) / spec.sfreq
        streams.append(XdfStream(spec.name, spec.type, spec.sfreq, times, data.astype(np.float64), spec.channels,
                                 spec.units, source_id=spec.source_id))  # fmt: skip
    names = config.class_names
    texts = [
        TrialMarker(0.0, k, names[t.label], sim.phase_of(k) if phases else None).to_json()
        if labels
        else json.dumps({"note": k})
        for k, t in enumerate(trials)
    ]
    onsets = (
        T0 + np.arange(n) * trial_s
    )  # the LSL time of the trial's first sample, as the simulator stamps it
    streams.append(XdfStream(sim.streams["markers"].name, "Markers", 0.0, onsets, texts))
    return write_xdf_streams(path, streams)


def tiny_base(root, *, weights=True, name="tiny"):
    """A small random M2S network over 4 EEG channels, eye and ECG (the demo's specs), exported as a bundle."""
    from models.config import M2SConfig, ModalityConfig
    from models.m2s import M2S
    from signals.normalisation import Normalisation
    from training.export import ModalityExport, export_bundle

    graphs = DEMO.manifest.graphs
    specs = {
        "eeg": graphs["eeg"].feature_spec.model_copy(update={"channels": EEG4}),
        "eye": graphs["eye"].feature_spec,
        "ecg": graphs["ecg"].feature_spec,
    }
    specs["eeg"] = type(specs["eeg"]).model_validate(specs["eeg"].model_dump())
    config = M2SConfig(
        modalities=(
            ModalityConfig(name="eeg", dim=specs["eeg"].n_features, n_channels=4),
            ModalityConfig(name="eye", dim=specs["eye"].n_features),
            ModalityConfig(name="ecg", dim=specs["ecg"].n_features, n_channels=2),
        ),
        seq_len=3, d_model=16, n_blocks=1, d_ff=32, n_heads=2, head_dim=8, d_ei=16, cpc_hidden=8, club_hidden=8,
    )  # fmt: skip
    torch.manual_seed(0)
    model = M2S(config).eval()
    items = {
        m: ModalityExport(
            embedder=model.embedder(m),
            classifier=torch.nn.Linear(config.proj_dim, 3),
            feature_spec=spec,
            normalisation=Normalisation.identity(spec.n_features),
            spacing_s=2.0,
        )
        for m, spec in specs.items()
    }
    bundle, _ = export_bundle(
        root, name, items, class_names=DEMO.manifest.class_names, seq_len=3, model=model if weights else None
    )
    return bundle, model


FAST = AdaptConfig(steps=6, batch_size=8, warmup_steps=0, device="cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    base, model = tiny_base(root / "models")
    recording = simulated_xdf(root / "p01.xdf")
    return root, base, model, recording


def test_weights_round_trip_in_export(world):
    """The bundle's m2s.pt is checksummed in the manifest and rebuilds the exported network exactly."""
    _, base, model, _ = world
    assert base.manifest.weights_file == WEIGHTS_FILE and WEIGHTS_FILE in base.manifest.sha256
    rebuilt = load_bundle_model(base)
    assert rebuilt.config == model.config
    for key, value in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value, rtol=0, atol=0)
    (base.path / WEIGHTS_FILE).write_bytes((base.path / WEIGHTS_FILE).read_bytes() + b"x")
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_manifest(base.path)
    (base.path / WEIGHTS_FILE).write_bytes((base.path / WEIGHTS_FILE).read_bytes()[:-1])


def test_split_by_marker_phase_or_last_trial_of_each_class():
    """Held out: the 'test' phase when markers have phases, else the last trial of each class."""
    labels = {1: 0, 2: 1, 3: 0, 4: 1, 5: 0, 6: 1}
    phased = split_trials(labels, {k: "calibration" if k <= 4 else "test" for k in labels})
    assert phased.adaptation == (1, 2, 3, 4) and phased.held_out == (5, 6)
    plain = split_trials(labels, dict.fromkeys(labels))
    assert plain.held_out == (5, 6) and plain.adaptation == (1, 2, 3, 4) and "last trial" in plain.rule


def test_adapt_exports_the_next_version_and_serves(world, tmp_path):
    """After a head-only version 1, adapt writes version 2 with 'adapted' provenance; it loads and serves."""
    from models.calibrated import LinearHeadWeights, write_calibrated_bundle
    from service.engine import InferenceEngine

    root, base, _, recording = world
    into = ModelRepository(tmp_path / "calibrated")
    head = LinearHeadWeights(np.zeros((3, 32)), np.zeros(3))
    write_calibrated_bundle(into, base, participant="p01", heads={"eeg": head}, serve={"eeg": "eeg"},
                            normalisations={}, provenance={"train_modality": None, "windows": {}, "trials": {},
                                                           "head": {}, "validation": {}})  # fmt: skip
    result = adapt(recording, base, "p01", into.root, config=FAST)
    bundle = result.bundle
    assert bundle.ref == "tiny-p01:2" and bundle.manifest.weights_file == WEIGHTS_FILE
    cal = bundle.manifest.calibration
    assert cal.method == "adapted" and cal.base == "tiny:1" and cal.participant == "p01"
    assert cal.adaptation["adaptation_trials"] == [1, 2, 3, 4, 5, 6]
    assert cal.adaptation["held_out_trials"] == [7, 8, 9] and cal.trials == {
        n: 2 for n in DEMO.manifest.class_names
    }
    assert set(cal.heads) == {"eeg", "eye", "ecg"} and cal.normalisation == dict.fromkeys(
        cal.heads, "participant"
    )
    ev = result.evaluation
    assert ev["held_out_trials"] == 3 and set(ev["base"]["served"]) == {"eeg", "eye", "ecg"}
    assert {"eeg->eye", "eye->eeg"} <= set(ev["adapted"]["matrix"]) and set(ev["head_only"]["served"]) == {
        "eeg",
        "eye",
        "ecg",
    }
    assert cal.adaptation["evaluation"] == json.loads(json.dumps(ev))
    loaded = ModelRepository(tmp_path / "calibrated").load("tiny-p01")  # the ordinary loader, latest version
    assert loaded.ref == "tiny-p01:2" and not any(p.name.startswith(".") for p in into.root.iterdir())
    engine = InferenceEngine(ModelRepository(tmp_path / "calibrated"))
    model = engine.load("tiny-p01:2")
    assert model.ref == "tiny-p01:2"
    x = np.random.default_rng(0).standard_normal((4, 3, bundle.manifest.graphs["eye"].dim)).astype(np.float32)
    probs = ort.InferenceSession(str(bundle.graph_path("eye"))).run(None, {"window": x})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Adapting again from the adapted bundle works: it carries its weights.
    again = adapt(recording, loaded, "p02", tmp_path / "again", config=FAST, train_modality="eeg")
    assert again.bundle.ref == "tiny-p01-p02:1" and set(again.bundle.manifest.calibration.heads.values()) == {
        "eeg"
    }


def test_held_out_trials_never_change_the_adapted_model(world, tmp_path):
    """Corrupting the test-phase trials changes nothing the adaptation fits: the same weights, heads, statistics."""
    root, base, _, recording = world
    corrupt = simulated_xdf(tmp_path / "corrupt.xdf", corrupt_test=True)
    a = adapt(recording, base, "p01", tmp_path / "a", config=FAST).bundle
    b = adapt(corrupt, base, "p01", tmp_path / "b", config=FAST).bundle
    for f in (WEIGHTS_FILE, "head.eeg.onnx", "eye.embedding.onnx"):
        assert a.manifest.sha256[f] == b.manifest.sha256[f], f
    assert a.manifest.graphs["eeg"].normalisation.mean == b.manifest.graphs["eeg"].normalisation.mean


def test_two_modalities_suffice_and_one_does_not(world, tmp_path, capsys):
    """A recording without ECG adapts EEG + eye (noted); with EEG alone it fails with exit 2 and says why."""
    root, base, _, _ = world
    two = simulated_xdf(tmp_path / "two.xdf", modalities=("eeg", "eye"))
    result = adapt(two, base, "p01", tmp_path / "cal", config=FAST)
    assert set(result.bundle.manifest.graphs) == {"eeg", "eye"} and "skipped 'ecg'" in result.notes[0]
    assert load_bundle_model(result.bundle).config.names == ("eeg", "eye")
    one = simulated_xdf(tmp_path / "one.xdf", modalities=("eeg",))
    code = main(["adapt", str(one), "--base", "tiny", "--participant", "p01", "--repository",
                 str(base.path.parents[1]), "--into", str(tmp_path / "cal"), "--steps", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert (
        code == 2
        and "needs at least 2 of the base's ['ecg', 'eeg', 'eye']; the recording gives only ['eeg']" in err
    )


def _run(tmp_path, capsys, *argv, repository):
    code = main(
        ["adapt", *argv, "--repository", str(repository), "--into", str(tmp_path / "cal"), "--steps", "2"]
    )
    return code, capsys.readouterr().err.strip()


def test_bad_input_exits_2_with_one_actionable_line(world, tmp_path, capsys):
    """Missing file, unknown base, bundle without weights, bad participant, no labels, too few trials."""
    root, base, _, recording = world
    repo = base.path.parents[1]
    tiny_base(repo, weights=False, name="noweights")
    code, err = _run(tmp_path, capsys, str(tmp_path / "nope.xdf"), "--base", "tiny", "--participant", "p01",
                     repository=repo)  # fmt: skip
    assert code == 2 and "does not exist; pass the XDF file the service recorded." in err
    code, err = _run(
        tmp_path, capsys, str(recording), "--base", "nobody", "--participant", "p01", repository=repo
    )
    assert code == 2 and "no model named 'nobody'" in err
    code, err = _run(
        tmp_path, capsys, str(recording), "--base", "noweights", "--participant", "p01", repository=repo
    )
    assert code == 2 and "bundle noweights:1 carries no network weights" in err and "re-export" in err
    code, err = _run(
        tmp_path, capsys, str(recording), "--base", "tiny", "--participant", "../x", repository=repo
    )
    assert code == 2 and "participant '../x' is not a valid id" in err
    unlabelled = simulated_xdf(tmp_path / "unlabelled.xdf", labels=False)
    code, err = _run(
        tmp_path, capsys, str(unlabelled), "--base", "tiny", "--participant", "p01", repository=repo
    )
    assert code == 2 and "no trial markers found" in err
    few = simulated_xdf(tmp_path / "few.xdf", per_class=1, n_test=1)
    code, err = _run(tmp_path, capsys, str(few), "--base", "tiny", "--participant", "p01", repository=repo)
    assert code == 2 and "adaptation needs at least 2 labelled trials of each class" in err
    code, err = _run(tmp_path, capsys, str(recording), "--base", "tiny", "--participant", "p01", "--pick",
                     "pps=X", repository=repo)  # fmt: skip
    assert code == 2 and "--pick names modalities ['pps']" in err
    assert all(len(e.splitlines()) == 1 for e in (err,))
