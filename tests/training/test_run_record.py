"""The run record: pretrain writes it, finetune/evaluate/export read it and refuse data that differ."""

import json

import numpy as np
import pytest

from models.repository import ModelRepository
from synthetic import SyntheticConfig
from training.cli import main
from training.protocols import Normaliser
from training.run_record import RUN_RECORD_NAME, RunRecord, RunRecordMismatch, load_run_data

TINY_MODEL = '{"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}'
COMMON = ["--no-progress", "--device", "cpu"]


def _config(**update) -> SyntheticConfig:
    """One subject, 9 short trials (3 per class), 4 EEG channels: seconds to generate."""
    base = {
        "n_subjects": 1,
        "n_trials": 9,
        "trial_duration_s": 24,
        "eeg": {"channel_names": ["FP1", "FPZ", "FP2", "FZ"]},
    }
    return SyntheticConfig.model_validate({**base, **update})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A synthetic EEG+ECG run pretrained with a 4-s EEG window (default 2 s), then fine-tuned."""
    root = tmp_path_factory.mktemp("record")
    data = root / "synthetic.json"
    data.write_text(_config().model_dump_json())
    run = root / "run"
    argv = ["pretrain", str(data), "--out", str(run), "--modalities", "eeg,ecg", "--window-s", "eeg=4",
            "--seq-len", "3", "--model", TINY_MODEL, "--epochs", "2", "--min-steps", "0", "--warmup-steps", "0", "--batch-size", "16", *COMMON]  # fmt: skip
    assert main(argv) == 0
    assert main(["finetune", str(run), "--finetune-epochs", "2", *COMMON]) == 0
    return run


def test_record_holds_resolved_specs_split_and_normaliser(run):
    """run.json has the 4-s EEG spec, spacing, T, the loader options and the split by trial keys."""
    record = RunRecord.read(run)
    eeg = record.modalities["eeg"]
    assert (eeg.spec.window_s, eeg.spec.hop_s, eeg.spacing_s) == (4.0, 2.0, 2.0)
    assert record.modalities["ecg"].spec.window_s == 4.0  # the synthetic default, untouched
    assert record.seq_len == 3 and record.loader.spec_overrides == {"eeg": {"window_s": 4.0}}
    assert record.loader.modalities == ("eeg", "ecg") and record.loader.subjects == ("0",)
    keys = [*record.split.train, *record.split.val, *record.split.test]
    assert len(keys) == len(set(keys)) == 9
    assert sorted(record.dataset.fingerprint.trials) == sorted(f"0/1/{k}" for k in range(1, 10))
    assert RunRecord.from_json(record.to_json()) == record


def test_export_writes_the_recorded_window_spacing_and_normaliser(run, tmp_path):
    """The bundle's FeatureSpec has the run's 4-s window and its normalisation is the recorded one."""
    repo = tmp_path / "repo"
    assert main(["export", str(run), "--name", "win4", "--repository", str(repo)]) == 0
    manifest = ModelRepository(repo).load("win4").manifest
    record = RunRecord.read(run)
    recorded = record.normaliser_obj()
    for m in ("eeg", "ecg"):
        graph = manifest.graph(m)
        assert graph.feature_spec == record.modalities[m].spec
        assert (graph.seq_len, graph.spacing_s) == (3, 2.0)
        np.testing.assert_allclose(graph.normalisation.mean, recorded.mean[m], rtol=0, atol=1e-12)
        np.testing.assert_allclose(graph.normalisation.std, recorded.std[m], rtol=0, atol=1e-12)
    assert manifest.graph("eeg").feature_spec.window_s == 4.0
    # ... and the recorded normaliser is the one of the recorded training trials
    data = load_run_data(record)
    refit = Normaliser.fit(data.split.train)
    np.testing.assert_allclose(refit.mean["eeg"], recorded.mean["eeg"], rtol=0, atol=1e-12)
    assert manifest.training["fingerprint"].endswith(record.dataset.fingerprint.digest)


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"seed": 1}, "trials with other features"),  # same shapes, other signals
        (
            {"eeg": {"channel_names": ["FP1", "FPZ", "FP2", "FZ"], "sfreq": 250.0}},
            "the 'eeg' feature spec differs (sfreq: recorded 200.0, the data 250.0)",
        ),
    ],
)
def test_commands_refuse_data_that_differ_from_the_record(run, tmp_path, capsys, update, expected):
    """finetune, evaluate and export with --data that are not the run's data exit 2 and say why."""
    other = tmp_path / "other.json"
    other.write_text(_config(**update).model_dump_json())
    for argv in (
        ["finetune", str(run), "--data", str(other), "--finetune-epochs", "1", *COMMON],
        ["evaluate", str(run), "--data", str(other), "--device", "cpu"],
        ["export", str(run), "--data", str(other), "--name", "x", "--repository", str(tmp_path / "repo")],
    ):
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert "do not match the run record" in err and expected in err, err
        assert "--data PATH" in err
    assert not (tmp_path / "repo" / "x").exists()


def test_tampered_normaliser_is_refused(run):
    """A recorded normaliser that the training trials do not reproduce (beyond 1e-9 relative) is refused."""
    record = RunRecord.read(run)
    norm = json.loads(json.dumps(record.normaliser))
    norm["modalities"]["eeg"]["mean"][0] += 1e-6
    tampered = record.model_copy(update={"normaliser": norm})
    with pytest.raises(RunRecordMismatch, match=r"'eeg' mean differs"):
        load_run_data(tampered)


def test_edited_run_json_is_refused(run, tmp_path, capsys):
    """run.json that no longer matches the record inside pretrain.pt is refused with the fix."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    text = json.loads((copy / RUN_RECORD_NAME).read_text())
    text["seq_len"] = 4
    (copy / RUN_RECORD_NAME).write_text(json.dumps(text))
    assert main(["evaluate", str(copy), "--device", "cpu"]) == 2
    assert "differs from the record stored in" in capsys.readouterr().err
    (copy / RUN_RECORD_NAME).unlink()
    assert main(["evaluate", str(copy), "--device", "cpu"]) == 2
    assert "m2s-train pretrain DATA --out" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory):
    from tests.fixtures.seed import write_seed

    root = tmp_path_factory.mktemp("seed")
    write_seed(root, n_subjects=1, n_sessions=1, layout="multimodal", n_windows=6)
    return root


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--spec", "eeg"], "--spec 'eeg': expected MODALITY=VALUE, e.g. --spec eeg=eeg.json"),
        (["--spec", "eeg=nowhere.json"], "--spec eeg=nowhere.json: nowhere.json does not exist"),
        (["--window-s", "eeg=four"], "--window-s eeg=four: expected a positive number of seconds"),
        (["--hop-s", "eeg=-1"], "--hop-s eeg=-1: expected a positive number of seconds"),
        (["--window-s", "eeg=4", "--window-s", "eeg=2"], "--window-s gives modality 'eeg' twice"),
    ],
)
def test_feature_option_errors_are_actionable(tmp_path, capsys, options, expected):
    """Malformed --spec/--window-s/--hop-s exit 2 before any loading, with an example of the right form."""
    assert main(["pretrain", str(tmp_path), "--out", str(tmp_path / "run"), *options]) == 2
    assert expected in capsys.readouterr().err


def test_spec_file_errors_are_actionable(tmp_path, capsys):
    """A spec file that is not a FeatureSpec, or is another modality's, is named with the fix."""
    (tmp_path / "bad.json").write_text('{"kind": "de", "modality": "eeg"}')
    assert main(["datasets", "inspect", str(tmp_path), "--spec", f"eeg={tmp_path / 'bad.json'}"]) == 2
    assert "Invalid feature spec" in capsys.readouterr().err
    spec = SyntheticConfig().model_dump()  # any valid spec will do: take the synthetic ECG default
    from training.datasets.synthetic import default_specs

    (tmp_path / "ecg.json").write_text(
        default_specs(SyntheticConfig.model_validate(spec))["ecg"].model_dump_json()
    )
    assert main(["datasets", "inspect", str(tmp_path), "--spec", f"eeg={tmp_path / 'ecg.json'}"]) == 2
    assert f"pass it as --spec ecg={tmp_path / 'ecg.json'}" in capsys.readouterr().err


def test_released_features_refuse_specs(seed_folder, tmp_path, capsys):
    """SEED's features are read, not computed: a window option is refused, saying why."""
    argv = [
        "pretrain",
        str(seed_folder),
        "--kind",
        "seed",
        "--out",
        str(tmp_path / "r"),
        "--window-s",
        "eeg=2",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "seed features are released features" in err and "without --spec/--window-s/--hop-s" in err


def test_window_not_whole_samples_is_refused(tmp_path, capsys):
    """A window that is not a whole number of samples names the spec, the value and the sample period."""
    data = tmp_path / "synthetic.json"
    data.write_text(_config().model_dump_json())
    assert main(["datasets", "inspect", str(data), "--window-s", "eeg=1.0001"]) == 2
    err = capsys.readouterr().err
    assert "the 'eeg' spec with window_s=1.0001 is not a valid feature spec" in err and "1/sfreq" in err


def test_reproduce_takes_a_window_and_reports_it(tmp_path):
    """reproduce featurises with --window-s and the report states the windows used."""
    data = tmp_path / "synthetic.json"
    data.write_text(_config().model_dump_json())
    argv = ["reproduce", "synthetic", str(data), "--out", str(tmp_path / "rep"), "--modalities", "eeg,ecg",
            "--window-s", "eeg=4", "--seq-len", "3", "--model", TINY_MODEL, "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0", "--batch-size", "16",
            "--finetune-epochs", "1", *COMMON]  # fmt: skip
    assert main(argv) == 0
    assert (
        "eeg 4-s windows every 2 s, ecg 4-s windows every 2 s" in (tmp_path / "rep" / "report.md").read_text()
    )


def test_benchmark_config_takes_specs_and_overrides(tmp_path, capsys):
    """BenchmarkConfig holds specs and overrides (JSON round trip); a bad --hop-s is an input error."""
    from training.datasets.synthetic import default_specs
    from training.experiment import BenchmarkConfig

    ecg = default_specs(SyntheticConfig())["ecg"]
    config = BenchmarkConfig.model_validate(
        {"specs": {"ecg": ecg.model_dump(mode="json")}, "spec_overrides": {"eeg": {"window_s": 4.0}}}
    )
    assert BenchmarkConfig.model_validate_json(config.model_dump_json()) == config
    assert config.specs["ecg"] == ecg
    assert main(["benchmark", "--out", str(tmp_path), "--hop-s", "eeg"]) == 2
    assert "--hop-s 'eeg': expected MODALITY=VALUE" in capsys.readouterr().err
