"""Synthetic dataset loader: generator trials featurised through FeatureSpecs with one hop, aligned by window end."""

import numpy as np
import pytest

from signals.spec import DESpec
from synthetic import SyntheticConfig, generate_trial
from training.datasets import synthetic
from training.datasets.base import DatasetError

CONFIG = SyntheticConfig(
    n_subjects=2,
    n_trials=3,
    trial_duration_s=20.0,
    eeg={"channel_names": ("FP1", "CZ", "O1", "T7")},
)


@pytest.fixture(scope="module")
def ds():
    return synthetic.load(CONFIG, include_raw=True, n_jobs=1)


def test_vectors_end_together(ds):
    """20-s trials give 6 vectors (first ends at 10 s, the eye buffer); EEG keeps its last 6 of 10."""
    gen = generate_trial(CONFIG, 1, 0, 2)
    specs = synthetic.default_specs(CONFIG)
    trial = ds.select(subjects=["1"])[2]
    assert {m: f.shape for m, f in trial.features.items()} == {
        "eeg": (6, 20), "eye": (6, 33), "ecg": (6, 10), "pps": (6, 48),
    }  # fmt: skip
    eeg = specs["eeg"].compute(gen.signals["eeg"])
    assert len(eeg) == 10 and eeg.timestamps[4] == pytest.approx(10.0 - 1 / 200)
    np.testing.assert_array_equal(trial.features["eeg"], eeg.features[4:])
    np.testing.assert_array_equal(
        trial.features["ecg"], specs["ecg"].compute(gen.signals["ecg"]).features[3:]
    )
    np.testing.assert_array_equal(
        trial.features["pps"], specs["pps"].compute(gen.signals["pps"]).features[3:]
    )
    np.testing.assert_array_equal(trial.features["eye"], specs["eye"].compute(gen.signals["eye"]).features)


def test_labels_ids_and_info(ds):
    """Labels are the generator's classes; ids '0'.., sessions and trials 1-based; one spacing."""
    assert ds.subjects == ["0", "1"] and ds.class_names == CONFIG.class_names
    assert [(t.session, t.trial) for t in ds.select(subjects=["0"])] == [(1, 1), (1, 2), (1, 3)]
    assert [t.label for t in ds.trials] == [
        generate_trial(CONFIG, s, 0, k).label for s in (0, 1) for k in range(3)
    ]
    assert {info.spacing_s for info in ds.modalities.values()} == {2.0}
    assert ds.modalities["eye"].spec.window_s == 10.0 and ds.modalities["eeg"].reproducible_online


def test_include_raw(ds):
    """include_raw keeps the generator's signals in the spec's unit."""
    gen = generate_trial(CONFIG, 0, 0, 0)
    raw = ds.trials[0].raw
    np.testing.assert_array_equal(raw["ecg"].data, gen.signals["ecg"])
    assert (raw["eeg"].unit, raw["ecg"].unit, raw["eeg"].sfreq) == ("uV", "mV", 200.0)


def test_modalities_subjects_and_spec_override():
    """A modality subset, a subject subset and an EEG spec override (4-s window, 2 channels)."""
    spec = DESpec(modality="eeg", sfreq=200, channels=("O1", "CZ"), window_s=4, hop_s=2)
    out = synthetic.load(CONFIG, modalities=["eeg", "ecg"], subjects=[1], specs={"eeg": spec}, n_jobs=1)
    gen = generate_trial(CONFIG, 1, 0, 0)
    assert set(out.modalities) == {"eeg", "ecg"} and out.subjects == ["1"]
    np.testing.assert_array_equal(
        out.trials[0].features["eeg"], spec.compute(gen.signals["eeg"][[2, 1]]).features
    )
    assert out.trials[0].n_windows == 9  # both 4-s windows: ends at 4, 6, ..., 20 s


def test_hop_option():
    """hop_s sets the one hop of every modality."""
    out = synthetic.load(CONFIG, modalities=["eeg", "pps"], subjects=[0], hop_s=1.0, n_jobs=1)
    assert out.trials[0].n_windows == 17 and out.modalities["pps"].spacing_s == 1.0


def test_parallel_equals_serial():
    """n_jobs=2 gives the same trials as n_jobs=1."""
    a = synthetic.load(CONFIG, modalities=["ecg"], n_jobs=1)
    b = synthetic.load(CONFIG, modalities=["ecg"], n_jobs=2)
    for ta, tb in zip(a.trials, b.trials, strict=True):
        assert ta.key == tb.key and ta.label == tb.label
        np.testing.assert_array_equal(ta.features["ecg"], tb.features["ecg"])


def test_json_config_and_detect(tmp_path):
    """A SyntheticConfig JSON file loads and is detected; other JSON is not."""
    path = tmp_path / "cfg.json"
    path.write_text(CONFIG.model_copy(update={"n_subjects": 1}).model_dump_json())
    assert synthetic.detect(path)
    out = synthetic.load(path, modalities=["pps"], n_jobs=1)
    assert out.subjects == ["0"] and out.source == str(path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_subjects": -1}')
    assert not synthetic.detect(bad) and not synthetic.detect(tmp_path / "none.json")
    with pytest.raises(DatasetError, match="n_subjects"):
        synthetic.load(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        synthetic.load(tmp_path / "none.json")


def test_invalid_options_raise():
    """Mismatched hops, sfreq, channels, modalities and subjects are refused."""
    with pytest.raises(DatasetError, match="share one hop_s"):
        synthetic.load(CONFIG, specs={"eeg": DESpec(modality="eeg", sfreq=200, channels=("CZ",), hop_s=1)})
    with pytest.raises(DatasetError, match="sampled at 200.0 Hz"):
        synthetic.load(
            CONFIG, modalities=["eeg"], specs={"eeg": DESpec(modality="eeg", sfreq=100, channels=("CZ",))}
        )
    with pytest.raises(DatasetError, match=r"channels \['PZ'\]"):
        synthetic.load(
            CONFIG, modalities=["eeg"], specs={"eeg": DESpec(modality="eeg", sfreq=200, channels=("PZ",))}
        )
    with pytest.raises(DatasetError, match="modalities"):
        synthetic.load(CONFIG, modalities=["emg"])
    with pytest.raises(DatasetError, match=r"subject\(s\) \['5'\] not in the synthetic generator"):
        synthetic.load(CONFIG, subjects=[5])
    with pytest.raises(TypeError, match="path_or_config"):
        synthetic.load(3.0)
    with pytest.raises(ValueError, match="n_jobs"):
        synthetic.load(CONFIG, n_jobs=0)
