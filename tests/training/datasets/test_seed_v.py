"""SEED-V loader on native-format fixtures (pickled dicts inside .npz)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from tests.fixtures.seed import write_seed, write_seed_iv, write_seed_v
from training.datasets import seed, seed_iv, seed_v
from training.datasets.base import DatasetError
from training.datasets.safe_pickle import UnsafePickleError


@pytest.fixture
def fx(tmp_path):
    return write_seed_v(tmp_path / "SEED-V", n_subjects=2, rng=0)


def _rewrite(path, data, label):
    np.savez(path, data=pickle.dumps(data), label=pickle.dumps(label))


def test_values_and_key_mapping(fx):
    """Trial (session s, trial t) is data key (s-1)*15 + t-1, for EEG and eye."""
    ds = seed_v.load(fx.root)
    eeg = fx.arrays["EEG_DE_features/2_123.npz"]["data"]
    eye = fx.arrays["Eye_movement_features/2_123.npz"]["data"]
    trial = next(t for t in ds.trials if t.key == ("2", 2, 3))
    np.testing.assert_array_equal(trial.features["eeg"], eeg[17])
    np.testing.assert_array_equal(trial.features["eye"], eye[17])
    assert [t.key for t in ds.trials] == [
        (s, ses, t) for s in "12" for ses in (1, 2, 3) for t in range(1, 16)
    ]
    assert all(t.n_windows == fx.n_windows[t.key] for t in ds.trials)


def test_labels(fx):
    """Labels come from the files: session 1 starts happy(4), fear(1), neutral(3), sad(2), disgust(0)."""
    ds = seed_v.load(fx.root)
    assert ds.class_names == ("disgust", "fear", "sad", "neutral", "happy")
    assert [t.label for t in ds.trials[:5]] == [4, 1, 3, 2, 0]
    assert [t.label for t in ds.trials[15:20]] == [2, 1, 3, 0, 4]


def test_labels_taken_from_file(fx, caplog):
    """A label differing from the published list is taken from the file, with a warning."""
    path = fx.root / "EEG_DE_features/1_123.npz"
    stored = fx.arrays["EEG_DE_features/1_123.npz"]
    labels = dict(stored["label"])
    labels[0] = np.zeros_like(labels[0])
    _rewrite(path, stored["data"], labels)
    ds = seed_v.load(fx.root, modalities=["eeg"], subjects=[1])
    assert ds.trials[0].label == 0
    assert "differ from the published session lists" in caplog.text


def test_modality_info(fx):
    """EEG is a 310-d 4-s DE spec'd channel-major; eye is 33-d with no spec."""
    ds = seed_v.load(fx.root)
    eeg, eye = ds.modalities["eeg"], ds.modalities["eye"]
    assert (eeg.dim, eeg.spacing_s, eeg.spec.window_s, eeg.spec.sfreq) == (310, 4.0, 4.0, 200)
    assert eeg.feature_names[5] == "FPZ:delta" and "EEG_DE_features" in eeg.description
    assert (eye.dim, eye.spacing_s, eye.spec) == (33, 4.0, None)


def test_subjects_and_modalities(fx):
    """subjects and modalities select what is loaded."""
    ds = seed_v.load(fx.root, subjects=["2"], modalities=["eye"])
    assert ds.subjects == ["2"] and list(ds.modalities) == ["eye"]
    with pytest.raises(DatasetError, match=r"subject\(s\) \['9'\] not in"):
        seed_v.load(fx.root, subjects=[9])


def test_detect(fx, tmp_path):
    """detect is true on SEED-V, false on SEED and SEED-IV folders."""
    assert seed_v.detect(fx.root) and seed_v.detect(fx.root.parent)
    assert not seed_v.detect(write_seed(tmp_path / "s", n_subjects=1, n_sessions=1, include_raw=False).root)
    assert not seed_v.detect(write_seed_iv(tmp_path / "iv", n_subjects=1, n_sessions=1).root)
    assert not seed.detect(fx.root) and not seed_iv.detect(fx.root)
    assert not seed_v.detect(tmp_path / "missing")


def test_wrong_paths_and_raw(fx, tmp_path):
    """A SEED folder, a missing path and include_raw are refused with the reason."""
    s = write_seed(tmp_path / "s", n_subjects=1, n_sessions=1, include_raw=False)
    with pytest.raises(DatasetError, match=r"not a SEED-V folder.*looks like a SEED folder"):
        seed_v.load(s.root)
    with pytest.raises(DatasetError, match="does not exist"):
        seed_v.load(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"include_raw=True is not supported.*\.cnt"):
        seed_v.load(fx.root, include_raw=True)
    with pytest.raises(TypeError, match="unknown option"):
        seed_v.load(fx.root, feature="de_LDS")


def test_window_mismatch(fx):
    """EEG and eye window counts that differ name both files and both counts."""
    stored = fx.arrays["Eye_movement_features/1_123.npz"]
    data, labels = dict(stored["data"]), dict(stored["label"])
    w = data[20].shape[0]
    data[20], labels[20] = data[20][:-1], labels[20][:-1]
    _rewrite(fx.root / "Eye_movement_features/1_123.npz", data, labels)
    with pytest.raises(
        DatasetError,
        match=rf"session 2 trial 6: EEG .*EEG_DE_features/1_123\.npz \['data'\]\[20\] has {w} windows but eye "
        rf".*Eye_movement_features/1_123\.npz \['data'\]\[20\] has {w - 1}",
    ):
        seed_v.load(fx.root)


def test_truncated_and_malformed_files(tmp_path):
    """Too few trial keys, a wrong column count and mixed labels in a trial are reported."""
    short = write_seed_v(tmp_path / "a", n_subjects=1, n_sessions=2)
    with pytest.raises(DatasetError, match=r"int keys 0\.\.44 .*got 30 keys"):
        seed_v.load(short.root)
    fx = write_seed_v(tmp_path / "b", n_subjects=1)
    stored = fx.arrays["EEG_DE_features/1_123.npz"]
    data, labels = dict(stored["data"]), dict(stored["label"])
    data[3] = data[3][:, :300]
    _rewrite(fx.root / "EEG_DE_features/1_123.npz", data, labels)
    with pytest.raises(
        DatasetError, match=r"\['data'\]\[3\] has shape \(\d+, 300\); expected \(n_windows, 310\)"
    ):
        seed_v.load(fx.root)
    data = dict(stored["data"])
    labels[4] = np.arange(labels[4].size, dtype=float)
    _rewrite(fx.root / "EEG_DE_features/1_123.npz", data, labels)
    with pytest.raises(DatasetError, match=r"\['label'\]\[4\] holds several classes"):
        seed_v.load(fx.root)
    np.savez(fx.root / "EEG_DE_features/1_123.npz", features=np.ones(2))
    with pytest.raises(DatasetError, match=r"keys \['features'\]; expected 'data' and 'label'"):
        seed_v.load(fx.root)


def test_missing_eye_file(fx):
    """A missing eye npz is named with its EEG partner."""
    (fx.root / "Eye_movement_features/2_123.npz").unlink()
    with pytest.raises(DatasetError, match=r"Eye_movement_features/2_123\.npz is missing.*EEG_DE_features"):
        seed_v.load(fx.root)


def test_malicious_pickle_in_npz(fx, tmp_path):
    """A 'data' pickle calling os.system is refused and the command never runs."""

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'marker'}",)

    np.savez(fx.root / "EEG_DE_features/1_123.npz", data=pickle.dumps({0: Evil()}), label=pickle.dumps({}))
    with pytest.raises(UnsafePickleError, match=r"1_123\.npz\['data'\].*system"):
        seed_v.load(fx.root)
    assert not (tmp_path / "marker").exists()
