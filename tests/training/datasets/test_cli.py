"""Tests for the dataset registry (training.datasets) and ``m2s-train datasets inspect``."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.fixtures.deap import make_subject as deap_subject
from tests.fixtures.deap import write_deap
from tests.fixtures.dreamer import write_dreamer
from tests.fixtures.recordings import DEFAULT_TRIALS, write_bdf, write_edf, write_fif, write_xdf
from tests.fixtures.seed import write_seed, write_seed_iv, write_seed_v
from training.cli import main
from training.datasets import EXPECTS, LOADERS, DatasetError, detect_dataset, load_dataset, loader
from training.datasets.cli import describe, format_summary
from training.datasets.constants import SEED_IV_SESSION_LABELS, SEED_TRIAL_LABELS_RAW


def inspect_json(capsys, *args) -> dict:
    """Run ``m2s-train datasets inspect ... --json`` in-process; return the parsed summary."""
    assert main(["datasets", "inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def inspect_error(capsys, *args) -> str:
    """Run an inspect that must fail with status 2; return its stderr."""
    assert main(["datasets", "inspect", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one actionable line
    return err


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, object]:
    """Each fixture writer's output, written once for the module."""
    root = tmp_path_factory.mktemp("datasets")
    synthetic = root / "synthetic.json"
    from synthetic import SyntheticConfig

    synthetic.write_text(
        SyntheticConfig(n_subjects=2, n_sessions=1, n_trials=3, trial_duration_s=12).model_dump_json()
    )
    return {
        "seed": write_seed(root / "seed", n_subjects=2, n_sessions=2, include_raw=False),
        "seed_multimodal": write_seed(root / "seed_mm", layout="multimodal", n_subjects=1, n_sessions=1),
        "seed_iv": write_seed_iv(root / "seed_iv", n_subjects=2, n_sessions=3, include_raw=False),
        "seed_v": write_seed_v(root / "seed_v", n_subjects=2, n_sessions=3),
        "deap": write_deap(root / "deap", n_subjects=2, n_trials=3),
        "dreamer": write_dreamer(root / "dreamer", n_subjects=2, n_clips=3),
        "synthetic": synthetic,
        "edf": write_edf(root / "rec.edf"),
        "bdf": write_bdf(root / "rec.bdf"),
        "fif": write_fif(root / "rec_raw.fif"),
        "xdf": write_xdf(root / "rec.xdf"),
    }


def root_of(written) -> Path:
    """The dataset path of a writer's result (FixtureFiles.root, or the Path it returned)."""
    return written if isinstance(written, Path) else written.root


# ------------------------------------------------------------------------------------------ registry


def test_every_registered_loader_imports_and_declares_its_name():
    """Each LOADERS module exists, has NAME == its key, detect and load; EXPECTS covers every kind."""
    assert set(EXPECTS) == set(LOADERS)
    for kind, module_name in LOADERS.items():
        module = importlib.import_module(module_name)
        assert module.NAME == kind
        assert callable(module.detect) and callable(module.load)
        assert loader(kind) is module


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("seed", "seed"),
        ("seed_multimodal", "seed"),
        ("seed_iv", "seed_iv"),
        ("seed_v", "seed_v"),
        ("deap", "deap"),
        ("dreamer", "dreamer"),
        ("synthetic", "synthetic"),
        ("edf", "recording"),
        ("bdf", "recording"),
        ("fif", "recording"),
        ("xdf", "recording"),
    ],
)
def test_detect_dataset_recognises_each_fixture(fixtures, fixture, kind):
    """detect_dataset names the right kind for each fixture writer's output (and only that kind)."""
    path = root_of(fixtures[fixture])
    assert detect_dataset(path) == kind
    assert [k for k in LOADERS if loader(k).detect(path)] == [kind]


def test_deap_is_detected_from_the_parent_folder_too(fixtures):
    """DEAP: the folder holding data_preprocessed_python/ is recognised as well."""
    assert detect_dataset(Path(fixtures["deap"]).parent) == "deap"


def test_load_dataset_detects_or_takes_the_kind(fixtures):
    """load_dataset with and without kind= gives the same trials."""
    path = root_of(fixtures["seed_iv"])
    a = load_dataset(path)
    b = load_dataset(path, kind="seed_iv", subjects=["1"])
    assert a.name == b.name == "seed_iv"
    assert [t.key for t in b.trials] == [t.key for t in a.trials if t.subject == "1"]


def test_registry_errors(tmp_path, fixtures):
    """Unknown kind, missing path, unrecognised and ambiguous folders raise actionable errors."""
    with pytest.raises(DatasetError, match="unknown dataset kind 'seed4'; choose one of seed, seed_iv"):
        loader("seed4")
    with pytest.raises(FileNotFoundError, match="does not exist; pass a dataset folder or file"):
        detect_dataset(tmp_path / "nope")
    with pytest.raises(TypeError, match="path must be an instance of str, Path"):
        detect_dataset(3)
    with pytest.raises(DatasetError, match="not a dataset folder or file.*seed_iv: a SEED-IV folder"):
        detect_dataset(tmp_path)
    both = tmp_path / "both"
    shutil.copytree(root_of(fixtures["seed"]), both)
    shutil.copytree(root_of(fixtures["seed_iv"]) / "eeg_feature_smooth", both / "eeg_feature_smooth")
    with pytest.raises(
        DatasetError, match="looks like several dataset kinds \\(seed, seed_iv\\); pass the kind"
    ):
        detect_dataset(both)
    assert load_dataset(both, kind="seed_iv").name == "seed_iv"


# ---------------------------------------------------------------------------------------- inspect


def test_inspect_seed_classic(fixtures, capsys):
    """SEED classic: subjects, sessions, trials, EEG 310-d, balance from label.mat, window counts."""
    written = fixtures["seed"]
    out = inspect_json(capsys, written.root)
    assert out["dataset"] == "seed" and out["subjects"] == ["1", "2"]
    assert out["sessions_per_subject"] == {"1": [1, 2], "2": [1, 2]}
    assert out["n_trials"] == 60 and out["trials_per_session"] == {"15": 4}
    assert out["n_windows"] == sum(written.n_windows.values())
    eeg = out["modalities"]["eeg"]
    assert eeg["dim"] == 310 and eeg["reproducible_online"] is False and eeg["raw"] is None
    lengths = list(written.n_windows.values())
    assert eeg["vectors_per_trial"]["min"] == min(lengths) and eeg["vectors_per_trial"]["max"] == max(lengths)
    raw_counts = Counter(SEED_TRIAL_LABELS_RAW)
    expected = {"negative": raw_counts[-1] * 4, "neutral": raw_counts[0] * 4, "positive": raw_counts[1] * 4}
    assert out["class_balance"] == expected
    assert out["default_protocol"] == "first_k:9"


def test_inspect_seed_multimodal_has_paired_eye(fixtures, capsys):
    """SEED_Multimodal: EEG 310 + eye 33 at 4-s spacing."""
    out = inspect_json(capsys, fixtures["seed_multimodal"].root)
    assert out["dataset"] == "seed"
    assert {m: v["dim"] for m, v in out["modalities"].items()} == {"eeg": 310, "eye": 33}
    assert out["modalities"]["eye"]["spacing_s"] == 4.0


def test_inspect_seed_iv_balance_matches_the_session_labels(fixtures, capsys):
    """SEED-IV: 24 trials per session, EEG 310 + eye 31, balance from the ReadMe label lists."""
    out = inspect_json(capsys, fixtures["seed_iv"].root)
    assert out["n_trials"] == 2 * 3 * 24 and out["trials_per_session"] == {"24": 6}
    assert {m: v["dim"] for m, v in out["modalities"].items()} == {"eeg": 310, "eye": 31}
    counts = Counter(label for s in (1, 2, 3) for label in SEED_IV_SESSION_LABELS[s])
    names = ("neutral", "sad", "fear", "happy")
    assert out["class_balance"] == {names[k]: 2 * counts[k] for k in range(4)}
    assert out["default_protocol"] == "first_k:16"


def test_inspect_seed_v(fixtures, capsys):
    """SEED-V: 15 trials per session, five balanced classes, EEG 310 + eye 33."""
    out = inspect_json(capsys, fixtures["seed_v"].root)
    assert out["n_trials"] == 2 * 3 * 15
    assert {m: v["dim"] for m, v in out["modalities"].items()} == {"eeg": 310, "eye": 33}
    assert sorted(out["class_balance"].values()) == [18] * 5


def test_inspect_deap_rating_summary_matches_the_written_labels(fixtures, capsys):
    """DEAP: EEG 128 + PPS 48; high/low counts at threshold 5 equal those of the written labels."""
    out = inspect_json(capsys, fixtures["deap"])
    assert out["subjects"] == ["s01", "s02"] and "class_balance" not in out
    assert {m: v["dim"] for m, v in out["modalities"].items()} == {"eeg": 128, "pps": 48}
    labels = np.concatenate([deap_subject(n_trials=3, seed=k)["labels"] for k in (1, 2)])
    for col, rating in enumerate(("valence", "arousal", "dominance", "liking")):
        entry = out["ratings"][rating]
        assert entry["threshold"] == 5.0 and entry["scale"] == [1.0, 9.0]
        assert entry["n_high"] == int((labels[:, col] > 5).sum())
        assert entry["n_low"] == int((labels[:, col] <= 5).sum())
        assert entry["mean"] == pytest.approx(labels[:, col].mean())


def test_inspect_dreamer_rating_summary_matches_the_mat_file(fixtures, capsys):
    """DREAMER: EEG 70 + ECG 10; threshold 3 on 1-5, counts equal those in DREAMER.mat."""
    out = inspect_json(capsys, fixtures["dreamer"])
    assert {m: v["dim"] for m, v in out["modalities"].items()} == {"eeg": 70, "ecg": 10}
    mat = scipy.io.loadmat(fixtures["dreamer"], struct_as_record=False, squeeze_me=True)["DREAMER"]
    valence = np.concatenate([np.atleast_1d(s.ScoreValence) for s in np.atleast_1d(mat.Data)])
    assert out["ratings"]["valence"]["threshold"] == 3.0
    assert out["ratings"]["valence"]["n_high"] == int((valence > 3).sum())
    assert out["default_protocol"] == "kfold:3"


def test_inspect_synthetic_config(fixtures, capsys):
    """A SyntheticConfig JSON inspects as the synthetic dataset with its four modalities."""
    out = inspect_json(capsys, fixtures["synthetic"])
    assert out["dataset"] == "synthetic" and out["n_subjects"] == 2 and out["n_trials"] == 6
    assert set(out["modalities"]) == {"eeg", "eye", "ecg", "pps"}
    assert all(m["reproducible_online"] for m in out["modalities"].values())


@pytest.mark.parametrize("fmt", ["edf", "bdf", "fif", "xdf"])
def test_inspect_recording(fixtures, capsys, fmt):
    """A raw recording inspects as one subject/session, trials and classes from its markers."""
    out = inspect_json(capsys, fixtures[fmt])
    assert out["dataset"] == "recording" and out["subjects"] == ["1"]
    assert out["n_trials"] == len(DEFAULT_TRIALS)
    expected = Counter(label for _, _, label in DEFAULT_TRIALS)
    assert out["class_balance"] == {name: expected[name] for name in sorted(expected)}
    eeg = out["modalities"]["eeg"]
    assert eeg["reproducible_online"] is True and eeg["spacing_s"] == 1.0
    # 4-s trials, 1-s DE windows with 1-s hop: 4 vectors each.
    assert eeg["vectors_per_trial"] == {"min": 4, "median": 4.0, "max": 4}
    if fmt in ("fif", "xdf"):  # channel types known: 3 EEG channels x 5 bands
        assert eeg["dim"] == 15
    assert out["default_protocol"] == "fraction:0.6"


def test_inspect_text_output(fixtures, capsys):
    """The text form lists the dataset, modalities with W x D and spacing, and the class balance."""
    assert main(["datasets", "inspect", str(fixtures["seed_iv"].root)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("dataset    seed_iv")
    assert "sessions   1, 2, 3 (every subject)" in text
    assert "eeg      2-4 x 310" in text and "every 4 s" in text and "online: no (offline-only)" in text
    assert "raw: not loaded (--include-raw)" in text
    assert "classes    neutral 36, sad 36, fear 36, happy 36" in text


def test_inspect_with_raw_and_subjects(fixtures, capsys):
    """--include-raw reports raw channels/rate/unit; --subjects restricts the subjects."""
    out = inspect_json(capsys, fixtures["deap"], "--include-raw", "--subjects", "s02", "--dataset", "deap")
    assert out["subjects"] == ["s02"] and out["raw_loaded"] is True
    eeg = out["modalities"]["eeg"]
    assert eeg["raw"] is True and eeg["raw_sfreq"] == [128.0] and eeg["raw_n_channels"] == [32]
    assert main(["datasets", "inspect", str(fixtures["deap"]), "--include-raw"]) == 0
    assert "32 ch @ 128 Hz" in capsys.readouterr().out


def test_inspect_errors_exit_2_with_one_line(tmp_path, fixtures, capsys):
    """Missing path, unknown kind, unrecognised folder and a wrong kind exit 2 with one line."""
    assert "does not exist" in inspect_error(capsys, tmp_path / "missing")
    assert "unknown dataset kind 'seed4'" in inspect_error(capsys, tmp_path, "--dataset", "seed4")
    assert "not a dataset folder or file" in inspect_error(capsys, tmp_path)
    err = inspect_error(capsys, fixtures["seed_iv"].root, "--dataset", "deap")
    assert err.startswith("m2s-train datasets: error:")


def test_describe_and_format_summary_agree(fixtures):
    """format_summary renders describe()'s numbers (a direct, in-process check)."""
    ds = load_dataset(fixtures["seed_v"].root)
    summary = describe(ds)
    text = format_summary(summary)
    assert f"trials     {len(ds.trials)} (6 session(s) of 15 trials)" in text
    assert summary["n_windows"] == sum(t.n_windows for t in ds.trials)


def test_inspect_runs_as_the_installed_command(fixtures):
    """`m2s-train datasets inspect PATH --json` works as a subprocess and prints JSON only on stdout."""
    exe = Path(sys.executable).with_name("m2s-train")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "training.cli"]
    proc = subprocess.run(
        [*cmd, "datasets", "inspect", str(fixtures["dreamer"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dataset"] == "dreamer" and out["n_subjects"] == 2
    missing = subprocess.run(
        [*cmd, "datasets", "inspect", "/nonexistent/dataset"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_describe_keeps_json_valid_when_a_declared_rating_is_absent():
    """A rating scale with no rated trial gives mean None (not NaN) and 'mean n/a' in text."""
    from training.datasets import EmotionDataset, ModalityInfo, Trial

    trial = Trial("1", 1, 1, None, {}, {"eeg": np.zeros((3, 2))})
    ds = EmotionDataset(
        "deap", [trial], {"eeg": ModalityInfo(2, 1.0, "x")}, rating_scales={"valence": (1, 9)}
    )
    summary = describe(ds)
    assert summary["ratings"]["valence"]["mean"] is None
    json.dumps(summary, allow_nan=False)
    assert "mean n/a; > 5 high: 0, low: 0" in format_summary(summary)
