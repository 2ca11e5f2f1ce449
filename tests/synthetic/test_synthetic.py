"""Tests of the synthetic package: determinism, layout, labels, config I/O, physics, calibration."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.signal import butter, find_peaks, sosfiltfilt, welch

from synthetic import (
    EYE_CHANNELS,
    MODALITIES,
    PPS_CHANNELS,
    SEED_CHANNELS,
    SyntheticConfig,
    class_patterns,
    generate_trial,
    iter_trials,
    trial_labels,
)

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_subjects": 2, "n_sessions": 2, "n_trials": 4, "trial_duration_s": 12.0}
FEW_EEG = {"channel_names": ["FP1", "FP2", "C3", "CZ", "C4", "T7", "P3", "PZ", "P4", "O1", "OZ", "O2"]}


def small_config(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{**SMALL, "eeg": FEW_EEG, **overrides})


def assert_trials_equal(a, b) -> None:
    assert (a.label, a.subject, a.session, a.trial) == (b.label, b.subject, b.session, b.trial)
    assert a.signals.keys() == b.signals.keys()
    for m in a.signals:
        np.testing.assert_array_equal(a.signals[m], b.signals[m])
    np.testing.assert_array_equal(a.intensity, b.intensity)


def r_peaks(ecg: np.ndarray, sfreq: float) -> np.ndarray:
    """Independent R-peak detector: 5-30 Hz band-pass, then peaks above 40 % of the robust maximum."""
    x = sosfiltfilt(butter(2, (5, 30), btype="bandpass", fs=sfreq, output="sos"), ecg)
    peaks, _ = find_peaks(x, height=0.4 * np.percentile(x, 99), distance=int(0.3 * sfreq))
    return peaks / sfreq


def trial_with_most_blinks(cfg: SyntheticConfig, modalities) -> object:
    """The trial of subject 0, session 0 with the most blinks (blink rate depends on emotion)."""
    trials = [generate_trial(cfg, 0, 0, t, modalities=modalities) for t in range(cfg.n_trials)]
    return max(trials, key=lambda tr: len(tr.events["blinks"]))


def test_same_seed_gives_identical_signals():
    """Two calls with the same config and indices give bit-identical arrays."""
    cfg = small_config()
    assert_trials_equal(generate_trial(cfg, 1, 1, 2), generate_trial(cfg, 1, 1, 2))


def test_different_seed_gives_different_signals():
    """Another seed changes every modality."""
    a = generate_trial(small_config(), 0, 0, 0)
    b = generate_trial(small_config(seed=1), 0, 0, 0)
    for m in MODALITIES:
        assert not np.allclose(np.nan_to_num(a.signals[m]), np.nan_to_num(b.signals[m]))


def test_trial_alone_equals_trial_from_iteration():
    """generate_trial of one trial equals the same trial yielded by iter_trials."""
    cfg = small_config()
    trials = list(iter_trials(cfg))
    assert len(trials) == 2 * 2 * 4
    index = 1 * 8 + 0 * 4 + 3  # subject 1, session 0, trial 3
    assert_trials_equal(generate_trial(cfg, 1, 0, 3), trials[index])


def test_subset_of_modalities_leaves_signals_unchanged():
    """Asking for fewer modalities does not change the ones generated (independent streams)."""
    cfg = small_config()
    full = generate_trial(cfg, 0, 1, 1)
    for m in MODALITIES:
        alone = generate_trial(cfg, 0, 1, 1, modalities=(m,))
        assert list(alone.signals) == [m]
        np.testing.assert_array_equal(alone.signals[m], full.signals[m])


def test_shapes_sfreq_units_and_channel_names():
    """Each modality has the configured shape, rate, channel names and units."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=3, trial_duration_s=10.0)
    tr = generate_trial(cfg, 0, 0, 0)
    expected = {
        "eeg": (62, 200.0, SEED_CHANNELS, {"uV"}),
        "eye": (5, 120.0, EYE_CHANNELS, {"deg", "mm", "bool"}),
        "ecg": (2, 256.0, ("ECG1", "ECG2"), {"mV"}),
        "pps": (8, 128.0, PPS_CHANNELS, {"uV", "uS", "a.u.", "degC"}),
    }
    for m, (n_ch, fs, names, units) in expected.items():
        assert tr.signals[m].shape == (n_ch, int(10 * fs))
        assert tr.signals[m].dtype == np.float64
        assert tr.sfreq[m] == fs
        assert tr.channel_names[m] == names
        assert set(tr.units[m]) == units and len(tr.units[m]) == n_ch
    assert tr.units["eye"] == ("deg", "deg", "mm", "mm", "bool")
    assert tr.units["pps"][4] == "uS" and tr.units["pps"][7] == "degC"
    assert tr.class_name == cfg.class_names[tr.label]
    assert tr.intensity.shape == tr.intensity_times.shape == (201,)
    assert tr.latent.shape == (cfg.latent.dim, 201)


def test_eeg_any_channel_count_and_plausible_amplitude():
    """A 3-channel montage works and EEG stays in the tens of µV."""
    cfg = SyntheticConfig(
        n_subjects=1, n_trials=3, trial_duration_s=10.0, eeg={"channel_names": ["C3", "CZ", "C4"]}
    )
    x = generate_trial(cfg, 0, 0, 0, modalities=("eeg",)).signals["eeg"]
    assert x.shape == (3, 2000)
    assert 3 < np.std(x) < 100


@pytest.mark.parametrize("n_classes, n_trials", [(2, 7), (3, 15), (4, 10), (5, 5)])
def test_labels_are_block_balanced(n_classes, n_trials):
    """Every block of n_classes consecutive trials holds each class once; first/last splits hold all."""
    cfg = SyntheticConfig(n_subjects=3, n_sessions=2, n_trials=n_trials, n_classes=n_classes)
    for subject in range(3):
        for session in range(2):
            labels = trial_labels(cfg, subject, session)
            assert labels.shape == (n_trials,)
            for start in range(0, n_trials - n_classes + 1, n_classes):
                assert sorted(labels[start : start + n_classes]) == list(range(n_classes))
            tail = labels[(n_trials // n_classes) * n_classes :]
            assert len(set(tail)) == len(tail)
    orders = {tuple(trial_labels(cfg, s, 0)) for s in range(3)}
    assert len(orders) > 1 or n_classes == 2


def test_trial_label_matches_trial_labels():
    """generate_trial uses the label order of trial_labels."""
    cfg = small_config()
    labels = trial_labels(cfg, 1, 0)
    assert [generate_trial(cfg, 1, 0, t, modalities=("ecg",)).label for t in range(4)] == list(labels)


def test_json_round_trip(tmp_path):
    """A config survives model_dump_json -> model_validate_json and from_json unchanged."""
    cfg = SyntheticConfig(seed=7, n_classes=4, eeg={"channel_names": ["C3", "C4"], "effect_size": 2.0})
    assert cfg.class_names == ("class_0", "class_1", "class_2", "class_3")
    assert SyntheticConfig.model_validate_json(cfg.model_dump_json()) == cfg
    path = tmp_path / "cfg.json"
    path.write_text(cfg.model_dump_json(indent=2))
    assert SyntheticConfig.from_json(path) == cfg
    path.write_text(json.dumps({"seed": 3, "n_classes": 2}))
    partial = SyntheticConfig.from_json(str(path))
    assert partial.seed == 3 and partial.class_names == ("low", "high")


def test_from_json_missing_file(tmp_path):
    """A missing file raises FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="nope.json.*does not exist"):
        SyntheticConfig.from_json(tmp_path / "nope.json")


def test_from_json_bad_field_names_file_and_field(tmp_path):
    """An invalid nested value raises ValueError naming the file and the dotted field."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"eeg": {"sfreq": 50}}))
    with pytest.raises(ValueError, match=r"bad.json.*field 'eeg\.sfreq'.*greater than 100"):
        SyntheticConfig.from_json(path)
    path.write_text(json.dumps({"ecg": {"heart_rte": 60}}))
    with pytest.raises(ValueError, match=r"field 'ecg\.heart_rte'.*[Ee]xtra"):
        SyntheticConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        SyntheticConfig.from_json(path)


def test_config_validation_is_actionable():
    """Inconsistent class names, duplicate channels and frozen fields are refused with clear messages."""
    with pytest.raises(ValidationError, match="class_names has 3 names but n_classes=4"):
        SyntheticConfig(n_classes=4, class_names=("a", "b", "c"))
    with pytest.raises(ValidationError, match=r"unique.*'C3'"):
        SyntheticConfig(eeg={"channel_names": ["C3", "C3"]})
    with pytest.raises(ValidationError, match="frozen"):
        SyntheticConfig().seed = 2


def test_public_functions_validate_their_arguments():
    """Bad indices, modalities and config types raise with what to do."""
    cfg = small_config()
    with pytest.raises(ValueError, match=r"subject \(must be < n_subjects=2\)"):
        generate_trial(cfg, 2, 0, 0)
    with pytest.raises(ValueError, match=r"trial \(must be < n_trials=4\)"):
        generate_trial(cfg, 0, 0, -1)
    with pytest.raises(TypeError, match="session must be an int"):
        trial_labels(cfg, 0, 1.5)
    with pytest.raises(ValueError, match="Invalid modality 'emg'"):
        generate_trial(cfg, 0, 0, 0, modalities=("eeg", "emg"))
    with pytest.raises(ValueError, match="modalities is empty"):
        generate_trial(cfg, 0, 0, 0, modalities=())
    with pytest.raises(TypeError, match="config must be an instance of SyntheticConfig"):
        generate_trial({"seed": 0}, 0, 0, 0)


def test_intensity_ramps_up():
    """The intensity ground truth starts near intensity_start and is higher later in the trial."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=6, trial_duration_s=40.0)
    starts, lates = [], []
    for t in range(6):
        tr = generate_trial(cfg, 0, 0, t, modalities=("ecg",))
        starts.append(tr.intensity[0])
        lates.append(tr.intensity[tr.intensity_times > 20].mean())
    assert abs(np.mean(starts) - cfg.latent.intensity_start) < 0.15
    assert np.mean(lates) > 0.7


def test_eeg_band_power_follows_class_pattern():
    """Welch log band power differs between two classes in the direction class_patterns says."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=12, trial_duration_s=20.0, eeg=FEW_EEG)
    patterns = class_patterns(cfg, 0, "eeg")  # (classes, channels, bands), log amplitude
    assert patterns.shape == (3, 12, 5)
    diff = patterns[0] - patterns[1]
    # Central/parietal/occipital channels, theta-beta: where the oscillations dominate the band
    # power (delta also holds drift and blinks, gamma the 1/f background and EMG bursts).
    usable = np.zeros(diff.shape, dtype=bool)
    usable[[2, 3, 4, 6, 7, 8, 9, 10, 11], 1:4] = True
    ch, band = np.unravel_index(np.argmax(np.where(usable, np.abs(diff), 0)), diff.shape)
    lo, hi = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 50))[band]
    logp = {0: [], 1: []}
    for tr in iter_trials(cfg, modalities=("eeg",)):
        if tr.label in logp:
            f, p = welch(tr.signals["eeg"][ch], fs=200.0, nperseg=400)
            logp[tr.label].append(np.log(p[(f >= lo) & (f < hi)].mean()))
    measured = np.mean(logp[0]) - np.mean(logp[1])
    expected = 2 * diff[ch, band]  # log power = 2 x log amplitude
    assert np.sign(measured) == np.sign(expected)
    assert abs(measured) > 0.3 * abs(expected)


def test_ecg_beats_match_heart_rate_ground_truth():
    """R peaks found independently match the generator's beats and heart rate."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=3, trial_duration_s=30.0)
    for t in range(3):
        tr = generate_trial(cfg, 0, 0, t, modalities=("ecg",))
        found = r_peaks(tr.signals["ecg"][0], tr.sfreq["ecg"])
        truth = tr.events["r_peaks"]
        assert abs(found.size - truth.size) <= 1
        nearest = np.min(np.abs(found[:, None] - truth[None, :]), axis=1)
        assert np.mean(nearest < 0.03) > 0.95
        rate_found = 60 / np.median(np.diff(found))
        assert abs(rate_found - np.median(tr.events["heart_rate_bpm"])) < 5


def test_blinks_have_validity_zero_and_nan_gaze():
    """Inside every blink validity is 0 and gaze/pupil NaN; valid samples are finite."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=3, trial_duration_s=30.0)
    tr = trial_with_most_blinks(cfg, ("eye",))
    eye, fs = tr.signals["eye"], tr.sfreq["eye"]
    blinks = tr.events["blinks"]
    assert len(blinks) >= 2
    for t0, t1 in blinks:
        inside = slice(int(np.ceil(t0 * fs)), int(t1 * fs))
        assert np.all(eye[4, inside] == 0)
        assert np.all(np.isnan(eye[:4, inside]))
    valid = eye[4] == 1
    assert set(np.unique(eye[4])) <= {0.0, 1.0}
    assert np.all(np.isfinite(eye[:4, valid]))
    assert np.all(np.isnan(eye[:4, ~valid]))
    assert 1.5 < np.nanmean(eye[2]) < 8  # pupil in mm


def test_blinks_show_in_eeg_frontal_and_veog():
    """The eye tracker's blinks are the ones that deflect FP1 and vEOG."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=3, trial_duration_s=30.0, eeg=FEW_EEG)
    tr = trial_with_most_blinks(cfg, ("eeg", "pps"))
    assert len(tr.events["blinks"]) >= 2
    for m, ch in (("eeg", 0), ("pps", 1)):
        x, fs = tr.signals[m][ch], tr.sfreq[m]
        mid = ((tr.events["blinks"].mean(axis=1) + 0.05) * fs).astype(int)
        in_blink = x[mid] - np.median(x)
        assert np.median(in_blink) > 3 * np.std(x[: int(fs)] - np.median(x)) or np.median(in_blink) > 50


def test_plethysmograph_pulses_follow_ecg_beats():
    """Each pulse peak comes 0.2-0.45 s after an independently detected R peak."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=3, trial_duration_s=30.0)
    tr = generate_trial(cfg, 0, 0, 2, modalities=("ecg", "pps"))
    beats = r_peaks(tr.signals["ecg"][0], tr.sfreq["ecg"])
    fs = tr.sfreq["pps"]
    pleth = sosfiltfilt(butter(2, (0.7, 8), btype="bandpass", fs=fs, output="sos"), tr.signals["pps"][6])
    pulses, _ = find_peaks(pleth, distance=int(0.35 * fs), prominence=0.5 * np.std(pleth))
    pulses = pulses / fs
    pulses = pulses[(pulses > 1) & (pulses < 29)]
    assert abs(pulses.size - np.sum((beats > 0.7) & (beats < 28.7))) <= 2
    delay = pulses[:, None] - beats[None, :]
    delay = np.where(delay > 0, delay, np.inf).min(axis=1)
    assert np.mean((delay > 0.2) & (delay < 0.45)) > 0.9


def test_eeg_calibration_is_learnable_but_not_trivial():
    """On a small config, EEG shrinkage-LDA accuracy lies in broad bounds and beats the best single feature."""
    spec = importlib.util.spec_from_file_location(
        "synthetic_separability", ROOT / "benchmarks/synthetic_separability.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = SyntheticConfig(n_subjects=2, n_sessions=1, n_trials=15, trial_duration_s=30.0)
    result = bench.run(cfg, ("eeg",))["eeg"]
    full, single = result.mean(axis=0)
    assert 0.55 <= full <= 0.97
    assert full > single + 0.05


@pytest.mark.parametrize("n_classes", [2, 8])
def test_any_number_of_classes(n_classes):
    """Two classes and more classes than latent dimensions both generate, with one pattern per class."""
    cfg = SyntheticConfig(n_subjects=1, n_trials=n_classes, n_classes=n_classes, trial_duration_s=5.0)
    labels = [generate_trial(cfg, 0, 0, t, modalities=("ecg",)).label for t in range(n_classes)]
    assert sorted(labels) == list(range(n_classes))
    patterns = class_patterns(cfg, 0, "ecg")
    assert patterns.shape == (n_classes, 3)
    assert np.all(np.ptp(patterns, axis=0) > 0)
