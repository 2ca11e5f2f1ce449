"""SEED loader (classic and SEED_Multimodal layouts) on native-format fixtures."""

from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest
import scipy.io

from signals.spec import DESpec
from tests.fixtures.seed import write_seed, write_seed_iv, write_seed_v
from training.datasets import seed, seed_iv, seed_v
from training.datasets.base import DatasetError
from training.datasets.constants import SEED_CHANNELS
from training.datasets.safe_pickle import UnsafePickleError

# label.mat + 1, written out by hand from docs/design/datasets.md §1.2
SEED_LABELS = [2, 1, 0, 0, 1, 2, 0, 1, 2, 2, 1, 0, 1, 2, 0]


def _expected_vectors(array_62_w_5):
    """(62, W, 5) -> (W, 310) by explicit loops: column ch*5 + band."""
    n_ch, n_w, n_b = array_62_w_5.shape
    out = np.empty((n_w, n_ch * n_b))
    for ch in range(n_ch):
        for b in range(n_b):
            out[:, ch * n_b + b] = array_62_w_5[ch, :, b]
    return out


@pytest.fixture
def classic(tmp_path):
    return write_seed(tmp_path / "SEED", n_subjects=2, n_sessions=2, rng=0)


@pytest.fixture
def multimodal(tmp_path):
    return write_seed(tmp_path / "Chinese", n_subjects=2, n_sessions=1, layout="multimodal", rng=0)


def _classic_file(fx, subject, session):
    return sorted(k for k in fx.arrays if k.startswith(f"ExtractedFeatures/{subject}_"))[session - 1]


def test_classic_values_channel_major(classic):
    """Each trial's eeg equals the written de_LDS{t} flattened channel-major."""
    ds = seed.load(classic.root)
    for trial in ds.trials:
        written = classic.arrays[_classic_file(classic, trial.subject, trial.session)][f"de_LDS{trial.trial}"]
        np.testing.assert_array_equal(trial.features["eeg"], _expected_vectors(written))
        assert trial.n_windows == classic.n_windows[trial.key]


def test_classic_hand_placed_value(tmp_path):
    """A value at channel F3 (7), window 1, band beta (3) lands at column 38, named 'F3:beta'."""
    fx = write_seed(tmp_path, n_subjects=1, n_sessions=1, include_raw=False, rng=0)
    rel = "ExtractedFeatures/1_20140401.mat"
    variables = dict(fx.arrays[rel])
    variables["de_LDS1"] = np.zeros_like(variables["de_LDS1"])
    variables["de_LDS1"][7, 1, 3] = 999.0
    scipy.io.savemat(tmp_path / rel, variables)
    ds = seed.load(tmp_path)
    eeg = ds.trials[0].features["eeg"]
    assert eeg[1, 38] == 999.0 and np.count_nonzero(eeg) == 1
    assert ds.modalities["eeg"].feature_names[38] == "F3:beta"


def test_classic_structure_and_labels(classic):
    """Subjects, 1-based sessions and trials in order, labels label.mat + 1."""
    ds = seed.load(classic.root)
    assert ds.name == "seed" and ds.class_names == ("negative", "neutral", "positive")
    assert [t.key for t in ds.trials] == [(s, ses, t) for s in "12" for ses in (1, 2) for t in range(1, 16)]
    assert [t.label for t in ds.trials[:15]] == SEED_LABELS
    assert ds.trials[0].raw == {}


def test_classic_modality_info(classic):
    """de_LDS is described as a 1-s BCMI DE with offline LDS smoothing, not reproducible online."""
    info = seed.load(classic.root).modalities["eeg"]
    assert info.dim == 310 and info.spacing_s == 1.0
    assert "de_LDS" in info.description and "ExtractedFeatures" in info.description
    assert isinstance(info.spec, DESpec)
    assert info.spec.sfreq == 200 and info.spec.window_s == 1 and info.spec.formula == "bcmi"
    assert info.spec.smoothing.method == "lds" and not info.reproducible_online
    assert info.spec.channels == SEED_CHANNELS
    assert info.feature_names[:6] == (
        "FP1:delta",
        "FP1:theta",
        "FP1:alpha",
        "FP1:beta",
        "FP1:gamma",
        "FPZ:delta",
    )


def test_classic_moving_average_feature(classic):
    """feature='de_movingAve' reads the de_movingAve{t} keys."""
    ds = seed.load(classic.root, feature="de_movingAve")
    written = classic.arrays[_classic_file(classic, "2", 2)]["de_movingAve15"]
    np.testing.assert_array_equal(ds.trials[-1].features["eeg"], _expected_vectors(written))
    assert ds.modalities["eeg"].spec.smoothing.method == "moving_average"


def test_classic_include_raw(classic):
    """include_raw attaches Preprocessed_EEG trials as (62, n) at 200 Hz in uV."""
    ds = seed.load(classic.root, include_raw=True)
    trial = ds.trials[15 + 4]  # subject 1, session 2, trial 5
    assert trial.key == ("1", 2, 5)
    raw = trial.raw["eeg"]
    written = classic.arrays["Preprocessed_EEG/1_20140501.mat"]["djc_eeg5"]
    np.testing.assert_array_equal(raw.data, written)
    assert raw.sfreq == 200 and raw.unit == "uV" and raw.channels == SEED_CHANNELS


def test_subjects_filter(classic):
    """subjects=[2] loads subject '2' only; an absent subject is an error listing those present."""
    ds = seed.load(classic.root, subjects=[2])
    assert ds.subjects == ["2"]
    with pytest.raises(DatasetError, match=r"subject\(s\) \['7'\] not in .*\['1', '2'\]"):
        seed.load(classic.root, subjects=["7"])


def _multimodal_eeg(fx, subject, session, window="4s"):
    stored = fx.arrays[f"02-EEG-DE-feature/eeg_used_{window}/{subject}_{session}.npz"]
    bands = ("delta", "theta", "alpha", "beta", "gamma")
    out = {}
    for block in ("train", "test"):
        data = stored[f"{block}_data"]
        n = data["delta"].shape[0]
        vec = np.empty((n, 310))
        for ch in range(62):
            for b, name in enumerate(bands):
                vec[:, ch * 5 + b] = data[name][:, ch]
        out[block] = vec
    return out


def test_multimodal_values_and_trials(multimodal, caplog):
    """EEG (channel-major) and eye rows are cut into trials; trials 3 and 4 share a label and merge."""
    with caplog.at_level(logging.WARNING, logger="training.datasets.seed"):
        ds = seed.load(multimodal.root)
    assert "(3, 4)" in caplog.text
    assert ds.subjects == ["1", "2"]
    trials = [t for t in ds.trials if t.subject == "2"]
    assert [t.trial for t in trials] == [1, 2, 3, *range(5, 16)]
    assert [t.label for t in trials] == [SEED_LABELS[n - 1] for n in [1, 2, 3, *range(5, 16)]]
    eeg = _multimodal_eeg(multimodal, "2", 1)
    eye = multimodal.arrays["04-Eye-tracking-feature/eye_tracking_feature/2_1"]
    w = {t: multimodal.n_windows[("2", 1, t)] for t in range(1, 16)}
    train_start = w[1] + w[2]  # trial 3 (+4) starts after trials 1 and 2
    t3 = trials[2]
    assert t3.n_windows == w[3] + w[4]
    np.testing.assert_array_equal(t3.features["eeg"], eeg["train"][train_start : train_start + w[3] + w[4]])
    np.testing.assert_array_equal(
        t3.features["eye"], eye["train_data_eye"][train_start : train_start + w[3] + w[4]]
    )
    t10 = trials[8]  # first test-block trial
    assert t10.trial == 10
    np.testing.assert_array_equal(t10.features["eeg"], eeg["test"][: w[10]])
    np.testing.assert_array_equal(t10.features["eye"], eye["test_data_eye"][: w[10]])


def test_multimodal_modality_info(multimodal):
    """Multimodal eeg is a 4-s DE (310, channel-major), eye the 33-d released features with no spec."""
    ds = seed.load(multimodal.root)
    eeg, eye = ds.modalities["eeg"], ds.modalities["eye"]
    assert (eeg.dim, eeg.spacing_s, eeg.spec.window_s) == (310, 4.0, 4.0)
    assert "eeg_used_4s" in eeg.description and not eeg.reproducible_online
    assert (eye.dim, eye.spacing_s, eye.spec, eye.feature_names) == (33, 4.0, None, None)
    assert "eye_tracking_feature" in eye.description


def test_multimodal_1s_window(multimodal):
    """window='1s' reads eeg_used_1s (EEG only: eye pairs with 4-s windows)."""
    ds = seed.load(multimodal.root, window="1s", modalities=["eeg"])
    assert ds.modalities["eeg"].spacing_s == 1.0
    assert ds.trials[0].n_windows == 4 * multimodal.n_windows[("1", 1, 1)]
    with pytest.raises(DatasetError, match=r"eeg_used_1s/1_1\.npz has \d+ windows .* eye .*1_1 has \d+"):
        seed.load(multimodal.root, window="1s")


def test_detect(classic, multimodal, tmp_path):
    """detect is true on both SEED layouts, false on SEED-IV/SEED-V folders, files and missing paths."""
    assert seed.detect(classic.root) and seed.detect(multimodal.root)
    assert not seed.detect(write_seed_iv(tmp_path / "iv", n_subjects=1, n_sessions=1).root)
    assert not seed.detect(write_seed_v(tmp_path / "v", n_subjects=1).root)
    assert not seed.detect(tmp_path / "missing")
    assert not seed.detect(classic.root / "ExtractedFeatures" / "label.mat")
    for root in (classic.root, multimodal.root):
        assert not seed_iv.detect(root) and not seed_v.detect(root)


def test_wrong_paths(tmp_path, classic):
    """Missing paths, files and other datasets' folders are refused with what was expected."""
    with pytest.raises(DatasetError, match="does not exist"):
        seed.load(tmp_path / "missing")
    with pytest.raises(DatasetError, match="is not a folder"):
        seed.load(classic.root / "ExtractedFeatures" / "label.mat")
    iv = write_seed_iv(tmp_path / "iv", n_subjects=1, n_sessions=1)
    with pytest.raises(DatasetError, match=r"not a SEED folder.*looks like a SEED-IV folder.*'seed_iv'"):
        seed.load(iv.root)


def test_missing_label_mat(classic):
    """A classic folder without label.mat names the file."""
    (classic.root / "ExtractedFeatures" / "label.mat").unlink()
    with pytest.raises(DatasetError, match=r"ExtractedFeatures/label\.mat is missing"):
        seed.load(classic.root)


def test_missing_trial_keys(tmp_path):
    """A feature file with 14 trials lacks de_LDS15."""
    write_seed(tmp_path, n_subjects=1, n_sessions=1, n_trials=14, include_raw=False)
    with pytest.raises(DatasetError, match=r"1_20140401\.mat lacks key\(s\) \['de_LDS15'\]"):
        seed.load(tmp_path)


def test_wrong_feature_shape(tmp_path):
    """A (61, W, 5) de_LDS array is reported with the file, key and expected shape."""
    fx = write_seed(tmp_path, n_subjects=1, n_sessions=1, include_raw=False)
    rel = "ExtractedFeatures/1_20140401.mat"
    variables = dict(fx.arrays[rel])
    variables["de_LDS2"] = variables["de_LDS2"][:61]
    scipy.io.savemat(tmp_path / rel, variables)
    with pytest.raises(
        DatasetError, match=r"'de_LDS2' has shape \(61, 3, 5\); expected \(62, n_windows, 5\)"
    ):
        seed.load(tmp_path)


def test_include_raw_without_preprocessed(tmp_path):
    """include_raw on a folder without Preprocessed_EEG says which folder is missing."""
    write_seed(tmp_path, n_subjects=1, n_sessions=1, include_raw=False)
    with pytest.raises(DatasetError, match="Preprocessed_EEG does not exist"):
        seed.load(tmp_path, include_raw=True)


def test_modality_and_option_errors(classic, multimodal):
    """Eye on the classic release, raw on SEED_Multimodal, unknown options and values are refused."""
    with pytest.raises(DatasetError, match=r"has modalities \['eeg'\]; cannot load \['eye'\]"):
        seed.load(classic.root, modalities=["eye"])
    with pytest.raises(DatasetError, match="not available for SEED_Multimodal"):
        seed.load(multimodal.root, include_raw=True)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['smooth'\]"):
        seed.load(classic.root, smooth=True)
    with pytest.raises(ValueError, match="'feature' parameter"):
        seed.load(classic.root, feature="psd_LDS")


def test_multimodal_eye_count_mismatch(multimodal):
    """EEG and eye window counts that differ name both files and both counts."""
    rel = "04-Eye-tracking-feature/eye_tracking_feature/1_1"
    eye = dict(multimodal.arrays[rel])
    n = eye["test_data_eye"].shape[0]
    eye["test_data_eye"] = eye["test_data_eye"][:-1]
    (multimodal.root / rel).write_bytes(pickle.dumps(eye))
    with pytest.raises(
        DatasetError, match=rf"trials 10-15.*eeg_used_4s/1_1\.npz has {n} windows.*1_1 has {n - 1}"
    ):
        seed.load(multimodal.root)


def test_multimodal_missing_eye_file(multimodal):
    """A missing eye pickle is named with the EEG file it pairs with."""
    (multimodal.root / "04-Eye-tracking-feature/eye_tracking_feature/2_1").unlink()
    with pytest.raises(DatasetError, match=r"eye_tracking_feature/2_1 is missing.*2_1\.npz"):
        seed.load(multimodal.root)


def test_multimodal_bad_npz_contents(multimodal):
    """Unexpected npz keys, band-dict keys and label sequences are reported."""
    path = multimodal.root / "02-EEG-DE-feature/eeg_used_4s/1_1.npz"
    stored = multimodal.arrays["02-EEG-DE-feature/eeg_used_4s/1_1.npz"]
    np.savez(path, data=np.ones(3))
    with pytest.raises(DatasetError, match=r"has keys \['data'\]; expected 'train_data'"):
        seed.load(multimodal.root)
    bad_bands = {k: v for k, v in stored["train_data"].items() if k != "gamma"}
    np.savez(
        path,
        train_data=pickle.dumps(bad_bands),
        test_data=pickle.dumps(stored["test_data"]),
        train_label=stored["train_label"],
        test_label=stored["test_label"],
    )
    with pytest.raises(DatasetError, match=r"train_data'\] should be a dict with keys \['delta'"):
        seed.load(multimodal.root)
    np.savez(
        path,
        train_data=pickle.dumps(stored["train_data"]),
        test_data=pickle.dumps(stored["test_data"]),
        train_label=np.zeros_like(stored["train_label"]),
        test_label=stored["test_label"],
    )
    with pytest.raises(DatasetError, match=r"label sequence \[0\] .* does not match SEED trials 1-9"):
        seed.load(multimodal.root)


def test_multimodal_malicious_eye_pickle(multimodal, tmp_path):
    """An eye pickle calling os.system is refused and the command never runs."""

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'marker'}",)

    rel = "04-Eye-tracking-feature/eye_tracking_feature/1_1"
    (multimodal.root / rel).write_bytes(pickle.dumps({"train_data_eye": Evil()}))
    with pytest.raises(UnsafePickleError, match=r"system.*not allowed"):
        seed.load(multimodal.root)
    assert not (tmp_path / "marker").exists()


def test_classic_fixture_native_key_order(classic):
    """ExtractedFeatures files hold 180 keys in GLAE's per-trial order with the documented shapes."""
    listing = scipy.io.whosmat(classic.root / "ExtractedFeatures" / "1_20140401.mat")
    names = [name for name, _, _ in listing]
    assert len(names) == 180
    assert names[:5] == ["de_movingAve1", "de_LDS1", "psd_movingAve1", "psd_LDS1", "dasm_movingAve1"]
    assert names[12] == "de_movingAve2" and names[-1] == "dcau_LDS15"
    shapes = {name: shape for name, shape, _ in listing}
    assert shapes["asm_LDS1"] == (54, 2, 5) and shapes["dcau_movingAve2"] == (23, 3, 5)
    label = scipy.io.loadmat(classic.root / "ExtractedFeatures" / "label.mat")["label"]
    assert label.shape == (1, 15) and (label[0] + 1).tolist() == SEED_LABELS


def test_multimodal_fixture_reads_like_m2s(multimodal):
    """The multimodal fixture reads the way M2S's data.py does: pickle.loads(npz[key]), pickle.load(eye)."""
    npz = np.load(multimodal.root / "02-EEG-DE-feature/eeg_used_4s/1_1.npz")
    assert npz["train_data"].dtype.kind == "S"
    bands = pickle.loads(npz["train_data"])
    assert list(bands) == ["delta", "theta", "alpha", "beta", "gamma"]
    assert bands["gamma"].shape == (npz["train_label"].size, 62)
    eye_path = multimodal.root / "04-Eye-tracking-feature/eye_tracking_feature/1_1"
    assert eye_path.suffix == ""
    with eye_path.open("rb") as f:
        eye = pickle.load(f)
    assert eye["train_data_eye"].shape == (npz["train_label"].size, 33)


def test_fixture_writer_validation(tmp_path):
    """The fixture writer refuses unknown layouts and a multimodal file without 15 trials."""
    with pytest.raises(ValueError, match="layout must be"):
        write_seed(tmp_path, layout="other")
    with pytest.raises(ValueError, match=r"n_trials must be an int in \[15, 15\]"):
        write_seed(tmp_path, layout="multimodal", n_trials=14)
    with pytest.raises(ValueError, match=r"n_windows must be an int"):
        write_seed_v(tmp_path, n_windows=0)
