"""Tests for signals.ecg: beat detection and HRV features against known physiology."""

from __future__ import annotations

import heartpy
import numpy as np
import pytest
from numpy.random import default_rng
from pydantic import ValidationError

from signals.ecg import HRV_FEATURES, HrvParams, detect_beats, hrv_features

# One PQRST complex as (offset from R in s, amplitude in mV, Gaussian width in s).
PQRST = (
    (-0.20, 0.15, 0.025),  # P
    (-0.035, -0.12, 0.010),  # Q
    (0.0, 1.0, 0.012),  # R
    (0.035, -0.25, 0.010),  # S
    (0.25, 0.30, 0.040),  # T
)


def synthetic_ecg(r_times, sfreq, duration, *, rng=None, noise=0.0, wander=0.0, sign=1.0):
    """ECG in mV: a sum of Gaussian P, Q, R, S, T waves per beat, plus noise and baseline wander."""
    t = np.arange(int(round(duration * sfreq))) / sfreq
    x = np.zeros_like(t)
    for r in r_times:
        for offset, amp, width in PQRST:
            x += amp * np.exp(-0.5 * ((t - r - offset) / width) ** 2)
    if wander:
        x += wander * np.sin(2 * np.pi * 0.3 * t + 0.4) + wander * t / duration
    if noise:
        x += noise * rng.standard_normal(t.size)
    return sign * x


def jittered_r_times(bpm, duration, rng, jitter=0.02):
    """R times (s) at a nominal rate with uniform RR jitter, from 0.5 s to 0.4 s before the end."""
    rr = 60.0 / bpm + rng.uniform(-jitter, jitter, size=int(duration * bpm / 60) + 2)
    times = 0.5 + np.concatenate([[0.0], np.cumsum(rr)])
    return times[times < duration - 0.4]


def direct_hrv(rr_ms):
    """HRV of a clean RR list (ms), transcribed from the textbook definitions."""
    rr = np.asarray(rr_ms, dtype=float)
    mean = sum(rr) / len(rr)
    sdnn = np.sqrt(sum((v - mean) ** 2 for v in rr) / (len(rr) - 1))
    diffs = [b - a for a, b in zip(rr[:-1], rr[1:], strict=True)]
    rmssd = np.sqrt(sum(d**2 for d in diffs) / len(diffs))
    pnn50 = sum(abs(d) > 50 for d in diffs) / len(diffs)
    return {"hr_bpm": 60000 / mean, "mean_nn_ms": mean, "sdnn_ms": sdnn, "rmssd_ms": rmssd, "pnn50": pnn50}


def load_heartpy(index):
    """One of HeartPy's bundled PPG recordings and its sampling rate (Hz)."""
    if index == 0:
        data, _ = heartpy.load_exampledata(0)
        return np.asarray(data, dtype=float), 100.0
    data, timer = heartpy.load_exampledata(index)
    if index == 1:
        sfreq = heartpy.get_samplerate_mstimer(timer)
    else:
        sfreq = heartpy.get_samplerate_datetime(timer, timeformat="%Y-%m-%d %H:%M:%S.%f")
    return np.asarray(data, dtype=float), float(sfreq)


@pytest.mark.parametrize("bpm", [72, 110])
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["upright", "inverted"])
def test_detect_beats_synthetic_ecg_times(bpm, sign):
    """R peaks of a noisy, wandering synthetic ECG (either polarity) are found within 20 ms."""
    rng = default_rng(0)
    sfreq, duration = 256.0, 10.0
    r_times = jittered_r_times(bpm, duration, rng)
    x = synthetic_ecg(r_times, sfreq, duration, rng=rng, noise=0.05, wander=0.3, sign=sign)
    beats = detect_beats(x, sfreq) / sfreq
    assert beats.size == r_times.size
    np.testing.assert_array_less(np.abs(beats - r_times), 0.020)


@pytest.mark.parametrize("bpm", [72, 110])
def test_hr_synthetic_ecg_two_leads(bpm):
    """hr_bpm of an upright and an inverted lead is within 1 bpm of the true rate."""
    rng = default_rng(0)
    sfreq, duration = 256.0, 10.0
    r_times = jittered_r_times(bpm, duration, rng)
    leads = [
        synthetic_ecg(r_times, sfreq, duration, rng=rng, noise=0.05, wander=0.3, sign=sign)
        for sign in (1, -1)
    ]
    hr = hrv_features(np.stack(leads), sfreq)[:, HRV_FEATURES.index("hr_bpm")]
    true_hr = 60.0 / np.mean(np.diff(r_times))
    assert abs(true_hr - bpm) < 2  # the jitter keeps the truth near the nominal rate
    np.testing.assert_allclose(hr, true_hr, atol=1.0)


def test_known_rr_alternation_exact():
    """A clean ECG with RR cycling 800/900/880 ms gives the exact mean NN, SDNN, RMSSD and pNN50."""
    sfreq = 1000.0
    rr_ms = [800, 900, 880] * 4 + [800]  # successive differences: (+100, -20, -80) x 4
    r_samples = 500 + np.concatenate([[0], np.cumsum(rr_ms)])
    x = synthetic_ecg(r_samples / sfreq, sfreq, duration=12.0)
    np.testing.assert_array_equal(detect_beats(x, sfreq), r_samples)
    expected = direct_hrv(rr_ms)
    got = hrv_features(x[np.newaxis], sfreq)[0]
    np.testing.assert_allclose(got, [expected[name] for name in HRV_FEATURES], rtol=1e-12)
    assert got[HRV_FEATURES.index("pnn50")] == pytest.approx(2 / 3)
    assert got[HRV_FEATURES.index("rmssd_ms")] == pytest.approx(np.sqrt((100**2 + 20**2 + 80**2) / 3))


def test_missed_beat_interval_dropped():
    """A missed beat's double RR is dropped and no successive difference spans it."""
    sfreq = 1000.0
    rr_ms = [800, 900, 880] * 4
    r_samples = 500 + np.concatenate([[0], np.cumsum(rr_ms)])
    missing = 6  # merges RR[5] and RR[6] into one 1680 ms interval
    x = synthetic_ecg(np.delete(r_samples, missing) / sfreq, sfreq, duration=11.5)
    kept = rr_ms[:5] + rr_ms[7:]
    diffs = np.diff(rr_ms[:5]).tolist() + np.diff(rr_ms[7:]).tolist()
    got = dict(zip(HRV_FEATURES, hrv_features(x[np.newaxis], sfreq)[0], strict=True))
    assert got["mean_nn_ms"] == pytest.approx(np.mean(kept), rel=1e-12)
    assert got["sdnn_ms"] == pytest.approx(np.std(kept, ddof=1), rel=1e-12)
    assert got["rmssd_ms"] == pytest.approx(np.sqrt(np.mean(np.square(diffs))), rel=1e-12)
    assert got["pnn50"] == pytest.approx(np.mean(np.abs(diffs) > 50), rel=1e-12)


def test_rate_bounds_drop_intervals():
    """RR intervals outside [min_bpm, max_bpm] are dropped: a 60 bpm ECG with min_bpm=70 gives NaN."""
    sfreq = 250.0
    x = synthetic_ecg(np.arange(0.5, 9.6, 1.0), sfreq, duration=10.0)
    assert hrv_features(x[np.newaxis], sfreq)[0, 0] == pytest.approx(60.0)
    assert np.isnan(hrv_features(x[np.newaxis], sfreq, HrvParams(min_bpm=70.0))).all()


def test_too_few_intervals_give_nan():
    """A window with fewer than 2 RR intervals gives NaN for every feature."""
    sfreq = 250.0
    x = synthetic_ecg([1.0, 2.5], sfreq, duration=4.0)
    assert np.isnan(hrv_features(x[np.newaxis], sfreq)).all()
    assert np.isnan(hrv_features(np.zeros((1, 1000)), sfreq)).all()


def test_leading_axes_and_feature_order():
    """Leading axes are kept, each window matches its own computation and features follow params order."""
    rng = default_rng(0)
    sfreq, duration = 256.0, 10.0
    windows = np.stack(
        [
            [
                synthetic_ecg(jittered_r_times(bpm, duration, rng), sfreq, duration, rng=rng, noise=0.05)
                for _ in range(2)
            ]
            for bpm in (60, 75, 90)
        ]
    )
    before = windows.copy()
    out = hrv_features(windows, sfreq)
    np.testing.assert_array_equal(windows, before)
    assert out.shape == (3, 2, len(HRV_FEATURES))
    np.testing.assert_array_equal(out[1], hrv_features(windows[1], sfreq))
    subset = hrv_features(windows, sfreq, HrvParams(features=("rmssd_ms", "hr_bpm")))
    np.testing.assert_array_equal(subset, out[..., [HRV_FEATURES.index("rmssd_ms"), 0]])


@pytest.mark.parametrize(("index", "reference"), [(0, 58.9), (1, 62.4), (2, 97.3)])
def test_heartpy_recordings_mean_hr(index, reference):
    """Mean HR over each HeartPy PPG recording is within 2 bpm of heartpy.process."""
    data, sfreq = load_heartpy(index)
    _, measures = heartpy.process(data, sfreq)
    assert measures["bpm"] == pytest.approx(reference, abs=0.1)
    ours = hrv_features(data[np.newaxis], sfreq, HrvParams(kind="ppg"))[0, 0]
    assert abs(ours - measures["bpm"]) < 2.0


def test_heartpy_clean_recording_beats():
    """On HeartPy's clean recording 0 every beat HeartPy accepts is found within 50 ms, and no other."""
    data, sfreq = load_heartpy(0)
    working, _ = heartpy.process(data, sfreq)
    reference = np.asarray(working["peaklist"])[np.asarray(working["binary_peaklist"], dtype=bool)]
    beats = detect_beats(data, sfreq, kind="ppg")
    assert beats.size == reference.size
    np.testing.assert_array_less(np.abs(beats - reference) / sfreq, 0.050)


def test_hrv_params_defaults_and_frozen():
    """HrvParams defaults to ECG, all five features, 40-200 bpm, and cannot be changed."""
    params = HrvParams()
    assert (params.kind, params.features, params.min_bpm, params.max_bpm) == ("ecg", HRV_FEATURES, 40, 200)
    with pytest.raises(ValidationError, match="frozen"):
        params.kind = "ppg"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "eeg"}, "kind"),
        ({"features": ("hr_bpm", "lf_hf")}, "features"),
        ({"features": ()}, "features is empty"),
        ({"features": ("hr_bpm", "hr_bpm")}, "more than once"),
        ({"min_bpm": 120, "max_bpm": 100}, "max_bpm must be greater than min_bpm"),
        ({"min_bpm": 0}, "greater than 0"),
        ({"max_rr_deviation": -0.1}, "greater than 0"),
        ({"window": 10}, "Extra inputs are not permitted"),
    ],
)
def test_hrv_params_invalid(kwargs, match):
    """Invalid HrvParams raise a ValidationError that names the problem."""
    with pytest.raises(ValidationError, match=match):
        HrvParams(**kwargs)


def test_detect_beats_validation():
    """detect_beats rejects wrong shapes, NaN, short signals, bad sfreq and unknown kinds."""
    x = synthetic_ecg([0.5, 1.5, 2.5], 256.0, duration=3.0)
    with pytest.raises(ValueError, match=r"must have shape \(n_times,\)"):
        detect_beats(np.stack([x, x]), 256.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        detect_beats(np.where(np.arange(x.size) == 10, np.nan, x), 256.0)
    with pytest.raises(ValueError, match="needs at least 512"):
        detect_beats(x[:300], 256.0)
    with pytest.raises(ValueError, match="sfreq must be > 0"):
        detect_beats(x, 0)
    with pytest.raises(ValueError, match="too low for kind='ecg'"):
        detect_beats(x, 40.0)
    with pytest.raises(ValueError, match="Allowed values are 'ecg', 'ppg'"):
        detect_beats(x, 256.0, kind="eeg")
    with pytest.raises(TypeError, match="sfreq must be a number"):
        detect_beats(x, "256")


def test_hrv_features_validation():
    """hrv_features rejects wrong shapes, NaN, windows under 4 s, bad sfreq and wrong params."""
    sfreq = 256.0
    x = synthetic_ecg(np.arange(0.5, 4.5, 0.8), sfreq, duration=5.0)[np.newaxis]
    with pytest.raises(ValueError, match="at least 2-D"):
        hrv_features(x[0], sfreq)
    with pytest.raises(ValueError, match="NaN or infinite"):
        hrv_features(np.where(np.arange(x.shape[-1]) == 3, np.inf, x), sfreq)
    with pytest.raises(ValueError, match=r"4\.0 s.*needs at least 1024"):
        hrv_features(x[:, : int(3.9 * sfreq)], sfreq)
    with pytest.raises(ValueError, match="sfreq must be > 0"):
        hrv_features(x, -256.0)
    with pytest.raises(ValueError, match="too low for kind='ppg'"):
        hrv_features(x, 10.0, HrvParams(kind="ppg"))
    with pytest.raises(TypeError, match="params must be an instance of HrvParams"):
        hrv_features(x, sfreq, {"kind": "ecg"})
    with pytest.raises(TypeError, match="windows must be an array of numbers"):
        hrv_features("ecg", sfreq)
