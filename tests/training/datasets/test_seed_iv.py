"""SEED-IV loader on native-format fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from tests.fixtures.seed import write_seed, write_seed_iv, write_seed_v
from training.datasets import seed, seed_iv, seed_v
from training.datasets.base import DatasetError
from training.datasets.constants import SEED_CHANNELS


@pytest.fixture
def fx(tmp_path):
    return write_seed_iv(tmp_path / "SEED_IV", n_subjects=2, n_sessions=3, rng=0)


def _name(subject, session):
    return f"{subject}_2016{session + 3:02d}{subject:02d}.mat"


def test_values_channel_major_and_eye(fx):
    """eeg is de_LDS{t} (62, W, 5) flattened channel-major; eye is eye_{t} (31, W) transposed."""
    ds = seed_iv.load(fx.root)
    for trial in ds.trials:
        name = _name(int(trial.subject), trial.session)
        eeg = fx.arrays[f"eeg_feature_smooth/{trial.session}/{name}"][f"de_LDS{trial.trial}"]
        eye = fx.arrays[f"eye_feature_smooth/{trial.session}/{name}"][f"eye_{trial.trial}"]
        for ch in (0, 7, 61):
            for b in range(5):
                np.testing.assert_array_equal(trial.features["eeg"][:, ch * 5 + b], eeg[ch, :, b])
        np.testing.assert_array_equal(trial.features["eye"], eye.T)
        assert trial.n_windows == fx.n_windows[trial.key]


def test_hand_placed_value(tmp_path):
    """A value at channel CB2 (61), window 0, band gamma (4) lands at column 309."""
    fx = write_seed_iv(tmp_path, n_subjects=1, n_sessions=1, include_raw=False)
    rel = f"eeg_feature_smooth/1/{_name(1, 1)}"
    variables = dict(fx.arrays[rel])
    variables["de_LDS24"] = np.zeros_like(variables["de_LDS24"])
    variables["de_LDS24"][61, 0, 4] = -5.0
    scipy.io.savemat(tmp_path / rel, variables)
    ds = seed_iv.load(tmp_path)
    eeg = ds.trials[-1].features["eeg"]
    assert ds.trials[-1].key == ("1", 1, 24)
    assert eeg[0, 309] == -5.0 and np.count_nonzero(eeg) == 1
    assert ds.modalities["eeg"].feature_names[309] == "CB2:gamma"


def test_structure_and_session_labels(fx):
    """Sessions from folder names, trials 1..24, labels fixed per session (ReadMe.txt)."""
    ds = seed_iv.load(fx.root)
    assert ds.class_names == ("neutral", "sad", "fear", "happy")
    assert [t.key for t in ds.trials] == [
        (s, ses, t) for s in "12" for ses in (1, 2, 3) for t in range(1, 25)
    ]
    by_key = {t.key: t.label for t in ds.trials}
    # first four trials of each session, copied from the SEED-IV ReadMe
    assert [by_key[("1", 1, t)] for t in range(1, 5)] == [1, 2, 3, 0]
    assert [by_key[("2", 2, t)] for t in range(1, 5)] == [2, 1, 3, 0]
    assert [by_key[("2", 3, t)] for t in range(1, 5)] == [1, 2, 2, 1]
    assert sum(1 for t in ds.trials if t.label == 0) == 6 * 3 * 2


def test_modality_info(fx):
    """EEG is a 4-s BCMI DE with LDS smoothing; eye is 31-d with no spec."""
    ds = seed_iv.load(fx.root)
    eeg, eye = ds.modalities["eeg"], ds.modalities["eye"]
    assert (eeg.dim, eeg.spacing_s) == (310, 4.0)
    assert eeg.spec.window_s == 4.0 and eeg.spec.hop_s == 4.0 and eeg.spec.smoothing.method == "lds"
    assert "de_LDS" in eeg.description and "eeg_feature_smooth" in eeg.description
    assert not eeg.reproducible_online
    assert (eye.dim, eye.spacing_s, eye.spec) == (31, 4.0, None)
    assert "eye_feature_smooth" in eye.description


def test_moving_average_and_modalities(fx):
    """feature='de_movingAve' reads those keys; modalities=['eye'] loads eye only."""
    ds = seed_iv.load(fx.root, feature="de_movingAve", subjects=["1"])
    written = fx.arrays[f"eeg_feature_smooth/1/{_name(1, 1)}"]["de_movingAve1"]
    np.testing.assert_array_equal(ds.trials[0].features["eeg"][:, 2], written[0, :, 2])
    eye_only = seed_iv.load(fx.root, modalities=["eye"])
    assert list(eye_only.modalities) == ["eye"] and set(eye_only.trials[0].features) == {"eye"}


def test_include_raw(fx):
    """include_raw attaches eeg_raw_data trials (62, n) at 200 Hz."""
    ds = seed_iv.load(fx.root, include_raw=True, subjects=[2])
    trial = next(t for t in ds.trials if t.key == ("2", 3, 10))
    written = fx.arrays[f"eeg_raw_data/3/{_name(2, 3)}"]["ha_eeg10"]
    np.testing.assert_array_equal(trial.raw["eeg"].data, written)
    assert trial.raw["eeg"].sfreq == 200 and trial.raw["eeg"].channels == SEED_CHANNELS


def test_detect(fx, tmp_path):
    """detect is true on SEED-IV (also from its parent), false on SEED and SEED-V folders."""
    assert seed_iv.detect(fx.root) and seed_iv.detect(fx.root.parent)
    assert not seed_iv.detect(write_seed(tmp_path / "s", n_subjects=1, n_sessions=1, include_raw=False).root)
    assert not seed_iv.detect(write_seed_v(tmp_path / "v", n_subjects=1).root)
    assert not seed_iv.detect(tmp_path / "missing")
    assert not seed.detect(fx.root) and not seed_v.detect(fx.root)


def test_wrong_paths(tmp_path):
    """A missing path and a SEED-V folder are refused, naming what the folder looks like."""
    with pytest.raises(DatasetError, match="does not exist"):
        seed_iv.load(tmp_path / "missing")
    v = write_seed_v(tmp_path / "v", n_subjects=1)
    with pytest.raises(DatasetError, match=r"not a SEED-IV folder.*looks like a SEED-V folder"):
        seed_iv.load(v.root)


def test_eye_window_mismatch(fx):
    """EEG and eye window counts that differ name both files and both counts."""
    rel = f"eye_feature_smooth/2/{_name(1, 2)}"
    variables = dict(fx.arrays[rel])
    w = variables["eye_3"].shape[1]
    variables["eye_3"] = np.zeros((31, w + 1))
    scipy.io.savemat(fx.root / rel, variables)
    with pytest.raises(
        DatasetError,
        match=rf"trial 3: EEG .*eeg_feature_smooth/2/1_\d+\.mat 'de_LDS3' has {w} windows but eye "
        rf".*eye_feature_smooth/2/1_\d+\.mat 'eye_3' has {w + 1}",
    ):
        seed_iv.load(fx.root)


def test_wrong_eye_shape(fx):
    """A (30, W) eye array is refused with the expected (31, n_windows)."""
    rel = f"eye_feature_smooth/1/{_name(2, 1)}"
    variables = dict(fx.arrays[rel])
    variables["eye_1"] = variables["eye_1"][:30]
    scipy.io.savemat(fx.root / rel, variables)
    with pytest.raises(DatasetError, match=r"'eye_1' has shape \(30, 2\); expected \(31, n_windows\)"):
        seed_iv.load(fx.root)


def test_missing_files_and_keys(tmp_path):
    """A missing eye file, missing trial keys and a missing raw folder are each named."""
    fx = write_seed_iv(tmp_path / "a", n_subjects=1, n_sessions=1, include_raw=False)
    with pytest.raises(DatasetError, match=r"eeg_raw_data does not exist"):
        seed_iv.load(fx.root, include_raw=True)
    (fx.root / f"eye_feature_smooth/1/{_name(1, 1)}").unlink()
    with pytest.raises(DatasetError, match=r"eye_feature_smooth/1/1_\d+\.mat is missing"):
        seed_iv.load(fx.root)
    short = write_seed_iv(tmp_path / "b", n_subjects=1, n_sessions=1, n_trials=20, include_raw=False)
    with pytest.raises(DatasetError, match=r"lacks key\(s\) \['de_LDS21', 'de_LDS22'"):
        seed_iv.load(short.root)


def test_missing_eye_folder(tmp_path):
    """Without eye_feature_smooth, None loads EEG only and 'eye' is an error."""
    fx = write_seed_iv(tmp_path, n_subjects=1, n_sessions=1, include_raw=False)
    for f in (fx.root / "eye_feature_smooth" / "1").iterdir():
        f.unlink()
    (fx.root / "eye_feature_smooth" / "1").rmdir()
    (fx.root / "eye_feature_smooth").rmdir()
    assert list(seed_iv.load(fx.root).modalities) == ["eeg"]
    with pytest.raises(DatasetError, match="eye_feature_smooth is missing"):
        seed_iv.load(fx.root, modalities=["eeg", "eye"])
