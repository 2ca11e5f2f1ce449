"""Tests for signals.eye: I-VT events and the 33 eye features on hand-made gaze traces."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from signals.eye import (
    EYE_CHANNELS,
    EYE_FEATURE_NAMES,
    EyeEvents,
    EyeParams,
    detect_events,
    eye_feature_names,
    eye_features,
    fill_gaps,
)

SFREQ = 120.0
N_TIMES = 1440  # 12 s
PUPIL_HZ = 0.5  # pupil oscillation, inside the 0.4-0.6 Hz band
NOISE_DEG = 0.005

# (kind, n_samples, target position in deg). "sac" ramps linearly from the previous fixation to
# the next one; "blink" (<= 0.5 s) and "loss" (> 0.5 s) are invalid runs with NaN gaze and pupil.
SEGMENTS = [
    ("fix", 60, (0.0, 0.0)),  # touches sample 0: incomplete, dropped
    ("sac", 4, None),  # amplitude 5
    ("fix", 120, (5.0, 0.0)),  # x drifts 0 -> 0.3 -> 0 deg; 50-ms dropout inside
    ("sac", 4, None),  # amplitude 4
    ("fix", 72, (5.0, 4.0)),
    ("blink", 18, None),  # 150 ms
    ("fix", 84, (5.0, 4.0)),
    ("sac", 6, None),  # amplitude 10
    ("fix", 96, (-1.0, -4.0)),
    ("loss", 96, None),  # 800 ms track loss: not a blink
    ("fix", 60, (-1.0, -4.0)),
    ("sac", 3, None),  # amplitude 3
    ("fix", 100, (2.0, -4.0)),
    ("blink", 36, None),  # 300 ms
    ("fix", 90, (2.0, -4.0)),
    ("sac", 4, None),  # amplitude hypot(2, 4)
    ("fix", 587, (0.0, 0.0)),  # touches the last sample: dropped
]
DRIFT_DEG = 0.3
DROPOUT = (64 + 20, 64 + 26)  # 6 samples = 50 ms inside the drifting fixation
# Ground truth of the complete events, read off SEGMENTS by hand.
FIXATION_SAMPLES = [120, 72, 84, 96, 60, 100, 90]
SACCADE_SAMPLES = [4, 4, 6, 3, 4]  # ramp samples; the movement lasts ramp + 1 sample intervals
SACCADE_AMPLITUDES = [5.0, 4.0, 10.0, 3.0, np.hypot(2.0, 4.0)]
BLINK_DURATIONS = [0.15, 0.30]


def _make_trace(seed: int = 0) -> np.ndarray:
    """Gaze of SEGMENTS at 120 Hz, shape (5, 1440), with noise and a 0.5-Hz pupil oscillation."""
    rng = np.random.default_rng(seed)
    xy = np.empty((2, N_TIMES))
    valid = np.ones(N_TIMES)
    fixations = [pos for kind, _, pos in SEGMENTS if kind == "fix"]
    start, k_fix = 0, 0
    for kind, n, pos in SEGMENTS:
        sl = slice(start, start + n)
        if kind == "fix":
            xy[:, sl] = np.array(pos)[:, None]
            if start == 64:  # the drifting fixation: triangle in x, peak in the middle
                xy[0, sl] += DRIFT_DEG * (1 - np.abs(np.linspace(-1, 1, n)))
            k_fix += 1
        elif kind == "sac":
            a, b = np.array(fixations[k_fix - 1]), np.array(fixations[k_fix])
            frac = np.arange(1, n + 1) / (n + 1)
            xy[:, sl] = a[:, None] + frac * (b - a)[:, None]
        else:
            valid[sl] = 0
        start += n
    assert start == N_TIMES
    xy += rng.normal(0, NOISE_DEG, xy.shape)
    t = np.arange(N_TIMES) / SFREQ
    osc = np.sin(2 * np.pi * PUPIL_HZ * t)
    pupil = np.stack([3.5 + 0.3 * osc, 3.8 + 0.2 * osc]) + rng.normal(0, 0.005, (2, N_TIMES))
    valid[DROPOUT[0] : DROPOUT[1]] = 0
    gaze = np.vstack([xy, pupil, valid])
    gaze[:4, valid == 0] = np.nan
    return gaze


def _feature(features: np.ndarray, name: str) -> float:
    return float(features[..., EYE_FEATURE_NAMES.index(name)])


@pytest.fixture(scope="module")
def trace() -> np.ndarray:
    """The hand-made 12-s gaze trace."""
    return _make_trace()


@pytest.fixture(scope="module")
def events(trace) -> EyeEvents:
    """Events detected with the default parameters."""
    return detect_events(trace, SFREQ)


def test_names_and_channels():
    """The feature names are 33 unique entries in the documented order."""
    assert EYE_CHANNELS == ("gaze_x", "gaze_y", "pupil_left", "pupil_right", "validity")
    assert len(EYE_FEATURE_NAMES) == 33 == len(set(EYE_FEATURE_NAMES))
    assert EYE_FEATURE_NAMES[:6] == (
        "pupil_left_mean", "pupil_left_std", "pupil_left_de_0.0-0.2", "pupil_left_de_0.2-0.4",
        "pupil_left_de_0.4-0.6", "pupil_left_de_0.6-1.0",
    )  # fmt: skip
    assert EYE_FEATURE_NAMES[6] == "pupil_right_mean"
    assert EYE_FEATURE_NAMES[12:16] == (
        "dispersion_x_mean",
        "dispersion_x_std",
        "dispersion_y_mean",
        "dispersion_y_std",
    )
    assert EYE_FEATURE_NAMES[-1] == "saccade_latency_average"
    assert eye_feature_names(EyeParams()) == EYE_FEATURE_NAMES
    with pytest.raises(TypeError, match="params must be an instance of EyeParams"):
        eye_feature_names("seed")


def test_fill_gaps_interpolates_short_dropout(trace):
    """The 50-ms dropout is linearly interpolated and marked valid; blinks are left invalid."""
    filled = fill_gaps(trace, SFREQ)
    a, b = DROPOUT
    assert np.all(filled[4, a:b] == 1)
    for row in range(4):
        expected = np.linspace(trace[row, a - 1], trace[row, b], b - a + 2)[1:-1]
        np.testing.assert_allclose(filled[row, a:b], expected)
    assert np.all(filled[4, 260:278] == 0) and np.isnan(filled[0, 260:278]).all()
    assert np.array_equal(filled[:, :a], trace[:, :a], equal_nan=True)


def test_blinks_and_track_loss(events):
    """Two blinks with exact durations are found; the 0.8-s track loss is not a blink."""
    np.testing.assert_allclose(events.blink_duration, BLINK_DURATIONS)
    np.testing.assert_array_equal(events.blink_onset, [260, 723])
    np.testing.assert_array_equal(events.blink_offset, [278, 759])


def test_fixations(events):
    """The seven complete fixations are found with their durations and positions."""
    assert events.fixation_onset.size == len(FIXATION_SAMPLES)
    np.testing.assert_allclose(
        events.fixation_duration, np.array(FIXATION_SAMPLES) / SFREQ, atol=2 / SFREQ + 1e-9
    )
    np.testing.assert_allclose(events.fixation_x[1:], [5, 5, -1, -1, 2, 2], atol=0.02)
    np.testing.assert_allclose(events.fixation_y, [0, 4, 4, -4, -4, -4, -4], atol=0.02)


def test_fixation_dispersion(events):
    """The drifting fixation spans 0.3 deg in x; the others only the noise."""
    np.testing.assert_allclose(events.fixation_dispersion_x[0], DRIFT_DEG, atol=0.03)
    assert np.all(events.fixation_dispersion_x[1:] < 0.05)
    assert np.all(events.fixation_dispersion_y < 0.05)


def test_saccades(events):
    """The five saccades have the ramp amplitudes and durations and exceed the threshold."""
    np.testing.assert_allclose(events.saccade_amplitude, SACCADE_AMPLITUDES, atol=0.05)
    expected = (np.array(SACCADE_SAMPLES) + 1) / SFREQ
    np.testing.assert_allclose(events.saccade_duration, expected, atol=1 / SFREQ + 1e-9)
    assert np.all(events.saccade_peak_velocity > 30.0)
    assert isinstance(events, EyeEvents)
    with pytest.raises(ValueError, match="read-only"):
        events.saccade_amplitude[0] = 0.0


def test_norm_units_match_degrees(trace, events):
    """Gaze in screen fractions converted with the geometry gives the same events as degrees."""
    params = EyeParams(gaze_unit="norm", screen_width_cm=50.0, screen_height_cm=28.0, distance_cm=65.0)
    norm = trace.copy()
    norm[0] = 0.5 + 65.0 * np.tan(np.radians(trace[0])) / 50.0
    norm[1] = 0.5 + 65.0 * np.tan(np.radians(trace[1])) / 28.0
    got = detect_events(norm, SFREQ, params)
    np.testing.assert_array_equal(got.saccade_onset, events.saccade_onset)
    np.testing.assert_array_equal(got.fixation_offset, events.fixation_offset)
    np.testing.assert_allclose(got.saccade_amplitude, events.saccade_amplitude, rtol=1e-9)


def test_feature_vector_named_entries(trace):
    """The 33-vector holds the known counts, durations, amplitudes and frequencies."""
    f = eye_features(trace, SFREQ)
    assert f.shape == (33,) and np.all(np.isfinite(f))
    assert _feature(f, "blink_frequency") == pytest.approx(2 / 12)
    assert _feature(f, "fixation_frequency") == pytest.approx(7 / 12)
    assert _feature(f, "saccade_frequency") == pytest.approx(5 / 12)
    assert _feature(f, "blink_duration_mean") == pytest.approx(225.0)
    assert _feature(f, "blink_duration_std") == pytest.approx(75.0)
    sac_ms = (np.array(SACCADE_SAMPLES) + 1) / SFREQ * 1e3
    assert _feature(f, "saccade_duration_mean") == pytest.approx(sac_ms.mean(), abs=1e3 / SFREQ + 1e-6)
    assert _feature(f, "saccade_duration_average") == _feature(f, "saccade_duration_mean")
    assert _feature(f, "saccade_amplitude_mean") == pytest.approx(np.mean(SACCADE_AMPLITUDES), abs=0.05)
    assert _feature(f, "saccade_amplitude_std") == pytest.approx(np.std(SACCADE_AMPLITUDES), abs=0.05)
    assert _feature(f, "saccade_amplitude_average") == _feature(f, "saccade_amplitude_mean")
    fix_ms = np.array(FIXATION_SAMPLES) / SFREQ * 1e3
    assert _feature(f, "fixation_duration_mean") == pytest.approx(fix_ms.mean(), abs=2e3 / SFREQ + 1e-6)
    assert _feature(f, "fixation_duration_max") == pytest.approx(fix_ms.max(), abs=2e3 / SFREQ + 1e-6)
    assert _feature(f, "fixation_dispersion_max") == pytest.approx(DRIFT_DEG, abs=0.05)
    assert 0.3 < _feature(f, "fixation_dispersion_total") < 0.3 + 7 * 0.1
    assert _feature(f, "dispersion_x_mean") == pytest.approx((DRIFT_DEG + 6 * 0.02) / 7, abs=0.02)


def test_saccade_latency(trace):
    """Latency is the mean time from one saccade's end to the next one's start."""
    starts = np.cumsum([0] + [n for _, n, _ in SEGMENTS])[:-1]
    ramps = [(s, s + n) for (kind, n, _), s in zip(SEGMENTS, starts, strict=True) if kind == "sac"]
    # Detected saccades include the fixation sample on each side of the ramp.
    gaps = [(b0 - 1) - (a1 + 1) for (a0, a1), (b0, b1) in zip(ramps[:-1], ramps[1:], strict=True)]
    f = eye_features(trace, SFREQ)
    assert _feature(f, "saccade_latency_average") == pytest.approx(
        np.mean(gaps) / SFREQ * 1e3, abs=1e3 / SFREQ
    )


def test_pupil_stats_and_de(trace):
    """Pupil mean/std match the oscillation; DE peaks in the band holding 0.5 Hz."""
    f = eye_features(trace, SFREQ)
    assert _feature(f, "pupil_left_mean") == pytest.approx(3.5, abs=1e-3)
    assert _feature(f, "pupil_left_std") == pytest.approx(0.3 / np.sqrt(2), abs=1e-3)
    assert _feature(f, "pupil_right_mean") == pytest.approx(3.8, abs=1e-3)
    assert _feature(f, "pupil_right_std") == pytest.approx(0.2 / np.sqrt(2), abs=1e-3)
    for eye in ("left", "right"):
        de = [_feature(f, f"pupil_{eye}_de_{b}") for b in ("0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-1.0")]
        assert int(np.argmax(de)) == 2
        assert de[2] > max(de[:2] + de[3:]) + 2.0


def test_pupil_de_bcmi_formula(trace):
    """The 'bcmi' pupil DE works with bands that start above 0 Hz."""
    bands = [("b1", 0.1, 0.2), ("b2", 0.2, 0.4), ("b3", 0.4, 0.6), ("b4", 0.6, 1.0)]
    params = EyeParams(pupil_de_formula="bcmi", pupil_bands=bands)
    f = eye_features(trace, SFREQ, params)
    names = eye_feature_names(params)
    assert f.shape == (33,) and names[2] == "pupil_left_de_b1"
    de = f[2:6]
    assert np.all(np.isfinite(de)) and int(np.argmax(de)) == 2


def test_leading_axes(trace):
    """Windows of shape (n_windows, 5, n_times) and deeper keep their leading axes."""
    other = _make_trace(seed=1)
    windows = np.stack([trace, other])
    f = eye_features(windows, SFREQ)
    assert f.shape == (2, 33)
    np.testing.assert_allclose(f[0], eye_features(trace, SFREQ))
    np.testing.assert_allclose(f[1], eye_features(other, SFREQ))
    assert eye_features(windows[:, None], SFREQ).shape == (2, 1, 33)


def test_input_not_mutated(trace):
    """No public function modifies its input."""
    before = trace.copy()
    fill_gaps(trace, SFREQ)
    detect_events(trace, SFREQ)
    eye_features(trace, SFREQ)
    eye_features(trace, SFREQ, EyeParams(gaze_unit="norm"))
    assert np.array_equal(trace, before, equal_nan=True)


def test_no_events_gives_zeros():
    """A steady fixation has no saccade or blink: those statistics are 0, not NaN."""
    rng = np.random.default_rng(0)
    gaze = np.zeros((5, N_TIMES))
    gaze[:2] = rng.normal(0, NOISE_DEG, (2, N_TIMES))
    gaze[2:4] = 3.5 + rng.normal(0, 0.01, (2, N_TIMES))
    gaze[4] = 1
    f = eye_features(gaze, SFREQ)
    assert np.all(np.isfinite(f))
    for name in EYE_FEATURE_NAMES[12:]:  # the only fixation touches both ends: dropped too
        assert _feature(f, name) == 0.0, name


def test_all_invalid_window_gives_nan_pupil():
    """A window without any valid sample has NaN pupil features and zero event statistics."""
    gaze = np.full((5, N_TIMES), np.nan)
    gaze[4] = 0
    f = eye_features(gaze, SFREQ)
    assert np.all(np.isnan(f[:12]))
    np.testing.assert_array_equal(f[12:], 0.0)


def test_invalid_flag_with_finite_values_counts_as_invalid(trace):
    """Validity 0 marks a sample invalid even when its values are finite."""
    gaze = np.nan_to_num(trace, nan=0.0)
    np.testing.assert_array_equal(detect_events(gaze, SFREQ).blink_onset, [260, 723])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"median_filter_samples": 4}, "must be odd"),
        ({"median_filter_samples": 0}, "greater than or equal to 1"),
        ({"blink_max_s": 0.05}, "must be > gap_fill_max_s"),
        ({"pupil_de_formula": "bcmi"}, "cannot handle bands starting at 0 Hz"),
        ({"gaze_unit": "px"}, "'deg' or 'norm'"),
        ({"velocity_threshold_deg_s": 0}, "greater than 0"),
        ({"distance_cm": -1}, "greater than 0"),
        ({"pupil_bands": []}, "bands is empty"),
        ({"speed": 1}, "Extra inputs are not permitted"),
    ],
)
def test_params_validation(kwargs, match):
    """Bad EyeParams values raise ValueError with the reason."""
    with pytest.raises(ValueError, match=match):
        EyeParams(**kwargs)


def test_params_frozen():
    """EyeParams cannot be modified after construction."""
    with pytest.raises(ValidationError, match="frozen"):
        EyeParams().blink_max_s = 1.0


@pytest.mark.parametrize("func", [fill_gaps, detect_events])
def test_gaze_shape_validation(func, trace):
    """fill_gaps and detect_events need exactly (5, n_times)."""
    with pytest.raises(ValueError, match=r"shape \(5, n_times\) \(2-D\)"):
        func(trace[None], SFREQ)
    with pytest.raises(ValueError, match=r"must have 5 rows"):
        func(trace[:4], SFREQ)
    with pytest.raises(TypeError, match="must be an array of numbers"):
        func("gaze", SFREQ)
    with pytest.raises(ValueError, match="sfreq must be > 0"):
        func(trace, 0.0)
    with pytest.raises(TypeError, match="sfreq must be a number"):
        func(trace, "120")
    with pytest.raises(TypeError, match="params must be an instance of EyeParams"):
        func(trace, SFREQ, {"gaze_unit": "deg"})


def test_detect_events_too_short():
    """detect_events refuses fewer than three samples."""
    with pytest.raises(ValueError, match="needs at least 3"):
        detect_events(np.ones((5, 2)), SFREQ)


def test_eye_features_validation(trace):
    """eye_features checks shape, channel count, sfreq, params and the window length."""
    with pytest.raises(ValueError, match=r"at least 2-D"):
        eye_features(trace[0], SFREQ)
    with pytest.raises(ValueError, match=r"must have 5 rows"):
        eye_features(trace[:, None, :], SFREQ)
    with pytest.raises(ValueError, match="sfreq must be > 0"):
        eye_features(trace, -120.0)
    with pytest.raises(TypeError, match="params must be an instance of EyeParams"):
        eye_features(trace, SFREQ, "defaults")
    with pytest.raises(ValueError, match="at least 10 s"):
        eye_features(trace[:, : int(9.5 * SFREQ)], SFREQ)
    with pytest.raises(ValueError, match="stat_window_s=12.5 s"):
        eye_features(trace, SFREQ, EyeParams(stat_window_s=12.5))


def _clean_gaze(xy: np.ndarray) -> np.ndarray:
    """Valid (5, n_times) gaze around the given gaze positions, with constant pupils."""
    return np.vstack([xy, np.full((2, xy.shape[1]), 3.5), np.ones((1, xy.shape[1]))])


def test_merge_and_min_fixation():
    """Fixations split by a brief small excursion merge; a 50-ms fixation is discarded."""
    rng = np.random.default_rng(0)
    xy = np.zeros((2, N_TIMES))
    xy[0, 300:] = 5.0  # jump to (5, 0); the step itself is a saccade
    xy[0, 500:502] = 5.8  # 2-sample excursion: fast (48 deg/s), same place before and after
    xy[0, 800:] = 10.0
    xy[0, 806:] = 15.0  # 6-sample (50 ms) stop at (10, 0) between two saccades
    xy += rng.normal(0, NOISE_DEG, xy.shape)
    merged = detect_events(_clean_gaze(xy), SFREQ)
    assert merged.fixation_onset.size == 1
    np.testing.assert_allclose(merged.fixation_duration, 500 / SFREQ, atol=2 / SFREQ + 1e-9)
    np.testing.assert_allclose(merged.fixation_x, 5.0, atol=0.02)
    split = detect_events(_clean_gaze(xy), SFREQ, EyeParams(merge_max_gap_s=0.0))
    assert split.fixation_onset.size == 2
    short = detect_events(_clean_gaze(xy), SFREQ, EyeParams(min_fixation_s=0.03))
    np.testing.assert_allclose(short.fixation_x, [5.0, 10.0], atol=0.02)


def test_norm_infinite_gaze_is_invalid(trace):
    """Infinite gaze is invalid in 'norm' units too (arctan must not make it finite)."""
    norm = trace.copy()
    norm[:2] = 0.5 + trace[:2] / 100
    norm[:2, 723:759] = np.inf
    norm[4, 723:759] = 1
    got = detect_events(norm, SFREQ, EyeParams(gaze_unit="norm"))
    np.testing.assert_array_equal(got.blink_onset, [260, 723])
