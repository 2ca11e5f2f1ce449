"""DEAP loader: native sXX.dat fixtures -> EEG DE (4 bands) + PPS statistics, ratings, baseline modes, safe reading."""

import os
import pickle

import numpy as np
import pytest

from signals.bands import DEAP_BANDS
from signals.spec import DESpec
from tests.fixtures.deap import make_subject, write_dat, write_deap
from tests.fixtures.dreamer import write_dreamer
from training.datasets import deap
from training.datasets.base import DatasetError
from training.datasets.safe_pickle import UnsafePickleError

N_TRIALS, STIM_S = 3, 4.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_deap(tmp_path_factory.mktemp("deap"), n_subjects=2, n_trials=N_TRIALS, stimulus_s=STIM_S)


def _read(path):
    """Independent reader: plain pickle, the way DEAP's documentation loads the files."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _bcmi_de(x, sfreq, low, high):
    """SEED's STFT.m DE of one window, written out with numpy (docs/design/features.md §1.2)."""
    n = x.size
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1, n + 1) / (n + 1))
    mag = np.abs(np.fft.fft(x * w, n))[: n // 2]
    a, b = int(low / sfreq * n), int(high / sfreq * n)
    return np.log2(100 * np.mean(mag[a - 1 : b] ** 2))


def test_detect(folder, tmp_path):
    """The data folder and its parent are detected; a DREAMER folder and a missing path are not."""
    write_dreamer(tmp_path / "dreamer")
    assert deap.detect(folder) and deap.detect(folder.parent)
    assert not deap.detect(tmp_path / "dreamer")
    assert not deap.detect(tmp_path / "missing")


def test_features_equal_spec_compute_of_the_stimulus(folder):
    """EEG and PPS features are spec.compute of the written signals after the 3-s baseline."""
    ds = deap.load(folder)
    raw = _read(folder / "s02.dat")["data"]
    specs = deap.default_specs()
    trial = ds.select(subjects=["s02"])[1]
    np.testing.assert_array_equal(trial.features["eeg"], specs["eeg"].compute(raw[1, :32, 384:]).features)
    np.testing.assert_array_equal(trial.features["pps"], specs["pps"].compute(raw[1, 32:, 384:]).features)
    assert trial.features["eeg"].shape == (int(STIM_S), 128)
    assert trial.features["pps"].shape == (int(STIM_S), 48)


def test_sinusoid_lands_in_alpha(folder):
    """FP1's 10-Hz sinusoid gives its largest DE in alpha, equal to a hand-written BCMI DE."""
    ds = deap.load(folder)
    x = _read(folder / "s01.dat")["data"][0, 0, 384 : 384 + 128]
    fp1 = ds.trials[0].features["eeg"][0, :4]  # theta, alpha, beta, gamma of FP1
    assert np.argmax(fp1) == 1
    assert fp1[1] == pytest.approx(_bcmi_de(x, 128.0, 8, 14), abs=1e-9)


def test_ratings_ids_and_modality_info(folder):
    """Ratings are the labels columns, subjects sXX, trials 1-based, specs recorded in ModalityInfo."""
    ds = deap.load(folder)
    labels = _read(folder / "s01.dat")["labels"]
    assert ds.subjects == ["s01", "s02"]
    assert [t.trial for t in ds.select(subjects=["s01"])] == [1, 2, 3]
    assert {t.session for t in ds.trials} == {1} and all(t.label is None for t in ds.trials)
    assert ds.trials[2].ratings == dict(zip(deap.RATINGS, labels[2].tolist(), strict=True))
    assert ds.rating_scales == {r: (1.0, 9.0) for r in deap.RATINGS}
    info = ds.modalities["eeg"]
    assert (info.dim, info.spacing_s, info.reproducible_online) == (128, 1.0, True)
    assert info.spec == deap.default_specs()["eeg"] and ds.modalities["pps"].dim == 48


def test_include_raw_holds_the_stimulus(folder):
    """include_raw keeps EEG (µV) and PPS rows of the stimulus at 128 Hz."""
    ds = deap.load(folder, include_raw=True, subjects=[1])
    raw = _read(folder / "s01.dat")["data"]
    r = ds.trials[0].raw
    np.testing.assert_array_equal(r["eeg"].data, raw[0, :32, 384:])
    np.testing.assert_array_equal(r["pps"].data, raw[0, 32:, 384:])
    assert (r["eeg"].sfreq, r["eeg"].unit, r["eeg"].channels) == (128.0, "uV", deap.EEG_CHANNELS)


def test_keep_baseline_prepends_three_vectors(folder):
    """baseline='keep' adds the 3 baseline seconds in front of the 'drop' vectors."""
    drop = deap.load(folder, subjects=["s01"])
    keep = deap.load(folder, subjects=["s01"], baseline="keep")
    assert keep.trials[0].n_windows == drop.trials[0].n_windows + 3
    np.testing.assert_allclose(keep.trials[0].features["pps"][3:], drop.trials[0].features["pps"])


def test_subtract_mean_removes_the_baseline_level(folder):
    """baseline='subtract_mean' shifts each channel by its baseline mean (PPS mean drops by it, std unchanged)."""
    raw = _read(folder / "s01.dat")["data"][0, 32:]
    drop = deap.load(folder, subjects=["s01"], modalities=["pps"]).trials[0].features["pps"]
    ds = deap.load(folder, subjects=["s01"], modalities=["pps"], baseline="subtract_mean")
    sub = ds.trials[0]
    # The live service has no trial baseline to subtract: the features are marked offline-only.
    assert not ds.modalities["pps"].reproducible_online
    assert "offline only" in ds.modalities["pps"].description
    assert deap.load(folder, subjects=["s01"], modalities=["pps"]).modalities["pps"].reproducible_online
    shift = raw[:, :384].mean(axis=1)
    np.testing.assert_allclose(sub.features["pps"][:, 0::6], drop[:, 0::6] - shift, atol=1e-9)
    np.testing.assert_allclose(sub.features["pps"][:, 1::6], drop[:, 1::6], atol=1e-9)


def test_window_options_and_modalities(folder):
    """window_s/hop_s set both specs; modalities restricts what is computed."""
    ds = deap.load(folder, window_s=2.0, hop_s=1.0, modalities=["eeg"])
    assert set(ds.modalities) == {"eeg"} and ds.trials[0].n_windows == 3
    assert ds.modalities["eeg"].spec.window_s == 2.0


def test_spec_override_picks_channels(folder):
    """A spec override selects its channels and formula."""
    spec = DESpec(modality="eeg", sfreq=128, channels=("FP1", "O2"), bands=DEAP_BANDS, formula="gaussian")
    ds = deap.load(folder, specs={"eeg": spec}, subjects=["s01"])
    raw = _read(folder / "s01.dat")["data"][0]
    expected = spec.compute(raw[[0, 31], 384:]).features
    np.testing.assert_array_equal(ds.trials[0].features["eeg"], expected)


def test_missing_folder_raises(tmp_path):
    """A missing folder is a DatasetError."""
    with pytest.raises(DatasetError, match="does not exist"):
        deap.load(tmp_path / "nope")


def test_other_dataset_folder_raises(tmp_path):
    """A DREAMER folder is refused with the expected DEAP layout named."""
    write_dreamer(tmp_path)
    with pytest.raises(DatasetError, match=r"no DEAP files s01\.dat"):
        deap.load(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ([1, 2], "holds a list"),
        ({"data": np.zeros((1, 40, 600))}, r"lacks the key\(s\) \['labels'\]"),
        ({"data": np.zeros((1, 32, 600)), "labels": np.ones((1, 4))}, r"'data' must be \(n_trials, 40"),
        ({"data": np.zeros((1, 40, 400)), "labels": np.ones((1, 4))}, "need at least 512"),
        ({"data": np.zeros((2, 40, 600)), "labels": np.ones((2, 3))}, r"'labels' must be \(n_trials=2, 4\)"),
    ],
)
def test_wrong_content_raises(tmp_path, content, match):
    """Wrong types, keys and shapes name the file and the problem."""
    write_dat(tmp_path / "s01.dat", content)
    with pytest.raises(DatasetError, match=match):
        deap.load(tmp_path)


def test_unknown_subject_and_options_raise(folder):
    """Unknown subjects, modalities and baseline modes are refused."""
    with pytest.raises(DatasetError, match=r"subject\(s\) \['s07'\] not in .*it has \['s01', 's02'\]"):
        deap.load(folder, subjects=[7])
    with pytest.raises(DatasetError, match="modalities"):
        deap.load(folder, modalities=["ecg"])
    with pytest.raises(ValueError, match="'baseline'"):
        deap.load(folder, baseline="zscore")
    with pytest.raises(TypeError, match="FeatureSpec"):
        deap.load(folder, specs={"eeg": "de"})
    with pytest.raises(DatasetError, match="sfreq=128"):
        deap.load(folder, specs={"eeg": DESpec(modality="eeg", sfreq=256, channels=("FP1",))})


class _Payload:
    """Pickles as a call to os.system: what a doctored .dat would do."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_malicious_dat_is_refused_without_running(tmp_path):
    """A .dat whose pickle calls os.system raises UnsafePickleError and runs nothing."""
    sentinel = tmp_path / "pwned"
    content = make_subject(n_trials=1)
    content["labels"] = _Payload(sentinel)
    write_dat(tmp_path / "s01.dat", content)
    with pytest.raises(UnsafePickleError, match="not allowed"):
        deap.load(tmp_path)
    assert not sentinel.exists()
