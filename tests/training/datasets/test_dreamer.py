"""DREAMER loader: native DREAMER.mat fixtures -> paired EEG (14x5) and ECG (2x5) DE, ratings, baseline modes."""

import numpy as np
import pytest
import scipy.io

from tests.fixtures.deap import write_deap
from tests.fixtures.dreamer import make_subject, write_dreamer
from training.datasets import dreamer
from training.datasets.base import DatasetError

STIM_S, BASE_S = 5.0, 3.0


@pytest.fixture(scope="module")
def mat(tmp_path_factory):
    return write_dreamer(tmp_path_factory.mktemp("dreamer"), n_subjects=2, n_clips=3, stimulus_s=STIM_S,
                         baseline_s=BASE_S)  # fmt: skip


def _subject(path, s):
    """Independent reader: the struct_as_record=False access path of docs/design/datasets.md §5.2."""
    return scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["DREAMER"].Data[s - 1]


def test_detect(mat, tmp_path):
    """DREAMER.mat and its folder are detected; a DEAP folder is not."""
    write_deap(tmp_path)
    assert dreamer.detect(mat) and dreamer.detect(mat.parent)
    assert not dreamer.detect(tmp_path) and not dreamer.detect(tmp_path / "DREAMER.mat")


def test_features_equal_spec_compute(mat):
    """EEG and ECG features are spec.compute of the written (time-major, transposed) clips."""
    ds = dreamer.load(mat)
    sub = _subject(mat, 2)
    specs = dreamer.default_specs()
    trial = ds.select(subjects=["2"])[2]
    eeg = specs["eeg"].compute(sub.EEG.stimuli[2].T).features
    ecg = specs["ecg"].compute(sub.ECG.stimuli[2].T).features
    np.testing.assert_array_equal(trial.features["eeg"], eeg)
    np.testing.assert_array_equal(trial.features["ecg"], ecg)
    assert eeg.shape == (5, 70) and ecg.shape == (5, 10)


def test_sinusoids_land_in_their_bands(mat):
    """AF3's 10-Hz and ECG1's 20-Hz sinusoids (20 µV) give Gaussian DE ≈ ½ln(2πe·A²/2) in alpha and beta."""
    ds = dreamer.load(mat, formula="gaussian")
    feats = ds.trials[0].features
    af3, ecg1 = feats["eeg"][0, :5], feats["ecg"][0, :5]
    assert np.argmax(af3) == 2 and np.argmax(ecg1) == 3
    expected = 0.5 * np.log(2 * np.pi * np.e * 20.0**2 / 2)
    assert af3[2] == pytest.approx(expected, abs=0.05)
    assert ecg1[3] == pytest.approx(expected, abs=0.05)


def test_ratings_ids_and_info(mat):
    """Scores become valence/arousal/dominance ratings on 1-5; ids '1'.., trials 1..18-style."""
    ds = dreamer.load(mat)
    sub = _subject(mat, 1)
    assert ds.subjects == ["1", "2"] and [t.trial for t in ds.select(subjects=["1"])] == [1, 2, 3]
    assert ds.trials[1].ratings == {
        "valence": sub.ScoreValence[1], "arousal": sub.ScoreArousal[1], "dominance": sub.ScoreDominance[1],
    }  # fmt: skip
    assert ds.rating_scales == {r: (1.0, 5.0) for r in dreamer.RATINGS}
    assert ds.modalities["eeg"].spec.channels == dreamer.EEG_CHANNELS
    assert (ds.modalities["ecg"].dim, ds.modalities["ecg"].spacing_s) == (10, 1.0)


def test_keep_baseline_prepends_baseline_vectors(mat):
    """baseline='keep' puts the separate baseline recording's vectors (computed alone) first."""
    keep = dreamer.load(mat, baseline="keep", include_raw=True, subjects=[1])
    drop = dreamer.load(mat, subjects=[1])
    sub = _subject(mat, 1)
    base = dreamer.default_specs()["eeg"].compute(sub.EEG.baseline[0].T).features
    f = keep.trials[0].features["eeg"]
    assert f.shape[0] == int(BASE_S) + int(STIM_S)
    np.testing.assert_array_equal(f[:3], base)
    np.testing.assert_array_equal(f[3:], drop.trials[0].features["eeg"])
    assert keep.trials[0].raw["eeg"].data.shape == (14, int((BASE_S + STIM_S) * 128))


def test_subtract_mean_uses_the_baseline_recording(mat):
    """baseline='subtract_mean' subtracts each channel's baseline mean from the clip before features."""
    ds = dreamer.load(mat, baseline="subtract_mean", include_raw=True, subjects=["1"])
    sub = _subject(mat, 1)
    expected = sub.ECG.stimuli[1].T - sub.ECG.baseline[1].T.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(ds.trials[1].raw["ecg"].data, expected)
    spec = dreamer.default_specs()["ecg"]
    np.testing.assert_allclose(ds.trials[1].features["ecg"], spec.compute(expected).features)


def test_one_window_difference_is_trimmed(tmp_path):
    """An ECG clip one window longer than the EEG clip is paired by dropping its last vector."""
    path = write_dreamer(tmp_path, n_subjects=1, n_clips=1, stimulus_s=5.0, ecg_stimulus_s=6.0)
    ds = dreamer.load(path)
    ecg = dreamer.default_specs()["ecg"].compute(_subject_one(path).ECG.stimuli.T).features
    np.testing.assert_array_equal(ds.trials[0].features["ecg"], ecg[:5])
    assert ds.trials[0].n_windows == 5


def _subject_one(path):
    return scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["DREAMER"].Data


def test_larger_difference_raises(tmp_path):
    """EEG and ECG clips more than one window apart are refused."""
    path = write_dreamer(tmp_path, n_subjects=1, n_clips=2, stimulus_s=5.0, ecg_stimulus_s=[5.0, 8.0])
    with pytest.raises(DatasetError, match="subject 1 clip 2.*differ by more than one window"):
        dreamer.load(path)


def test_missing_file_and_other_dataset_raise(tmp_path):
    """A missing file and a DEAP folder are refused."""
    with pytest.raises(DatasetError, match="does not exist"):
        dreamer.load(tmp_path / "DREAMER.mat")
    write_deap(tmp_path)
    with pytest.raises(DatasetError, match=r"DREAMER\.mat does not exist"):
        dreamer.load(tmp_path)


def test_not_matlab_and_wrong_variable_raise(tmp_path):
    """A non-MAT file and a MAT file without the DREAMER variable are refused."""
    bad = tmp_path / "DREAMER.mat"
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DatasetError, match="not a readable MATLAB file"):
        dreamer.load(bad)
    scipy.io.savemat(bad, {"data": np.zeros(3)})
    with pytest.raises(DatasetError, match=r"no variable 'DREAMER' \(it has \['data'\]\)"):
        dreamer.load(bad)


def test_missing_field_raises(tmp_path):
    """A subject struct without ECG is refused with its fields listed."""
    sub = make_subject(np.random.default_rng(0), n_clips=2)
    del sub["ECG"]
    path = write_dreamer(tmp_path, subjects=[sub], n_clips=2)
    with pytest.raises(DatasetError, match="has no field 'ECG'"):
        dreamer.load(path)
    ds = dreamer.load(path, modalities=["eeg"])
    assert set(ds.modalities) == {"eeg"} and len(ds.trials) == 2


def test_wrong_shape_raises(tmp_path):
    """EEG clips that are not (n_samples, 14) are refused."""
    sub = make_subject(np.random.default_rng(0), n_clips=2)
    sub["EEG"]["stimuli"][1, 0] = sub["EEG"]["stimuli"][1, 0][:, :13]
    path = write_dreamer(tmp_path, subjects=[sub], n_clips=2)
    with pytest.raises(DatasetError, match=r"EEG\.stimuli\{2\} must be \(n_samples, 14\)"):
        dreamer.load(path)


def test_bad_options_raise(mat):
    """Unknown subjects, modalities and baseline modes are refused."""
    with pytest.raises(DatasetError, match=r"subject\(s\) \['5'\] not in .*it has \['1', '2'\]"):
        dreamer.load(mat, subjects=[5])
    with pytest.raises(DatasetError, match="modalities"):
        dreamer.load(mat, modalities=["pps"])
    with pytest.raises(ValueError, match="'baseline'"):
        dreamer.load(mat, baseline="none")
