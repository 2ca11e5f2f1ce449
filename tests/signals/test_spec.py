"""FeatureSpec: complete, JSON round-trippable, and the one path from spec to features for training and live use."""

import json

import numpy as np
import pytest

from signals.bands import DEAP_BANDS
from signals.de import differential_entropy
from signals.smoothing import kalman_filter, lds_smooth
from signals.spec import (
    DESpec,
    EyeSpec,
    HrvSpec,
    PpsSpec,
    feature_spec_from_dict,
    feature_spec_from_json,
    feature_spec_json_schema,
)
from signals.windowing import sliding_windows

EEG_CHANNELS = tuple(f"ch{i}" for i in range(4))


def _eeg_spec(**kwargs):
    return DESpec(modality="eeg", sfreq=200, channels=EEG_CHANNELS, **({"window_s": 2, "hop_s": 1} | kwargs))


def _specs():
    return [
        _eeg_spec(smoothing={"method": "kalman"}),
        DESpec(
            modality="ecg",
            sfreq=256,
            channels=("ECG1", "ECG2"),
            unit="mV",
            window_s=4,
            hop_s=1,
            formula="gaussian",
        ),
        EyeSpec(sfreq=120, window_s=10, hop_s=2),
        HrvSpec(sfreq=256, channels=("ECG1",), window_s=10, hop_s=5),
        PpsSpec(
            sfreq=128,
            channels=("GSR", "Respiration"),
            window_s=4,
            hop_s=1,
            smoothing={"method": "moving_average", "n_steps": 3},
        ),
    ]


def _signal_for(spec, seconds, rng):
    n = int(seconds * spec.sfreq)
    if spec.kind == "eye":
        t = np.arange(n) / spec.sfreq
        x = np.vstack([np.sin(t), np.cos(t), 3 + 0.1 * np.sin(t), 3 + 0.1 * np.cos(t), np.ones(n)])
        return x + rng.normal(0, 0.01, x.shape) * np.array([[1], [1], [1], [1], [0]])
    if spec.kind == "hrv":
        t = np.arange(n) / spec.sfreq
        return np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2))[np.newaxis] + rng.normal(0, 0.01, (1, n))
    return rng.normal(0, 10, (len(spec.channels), n))


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.kind)
def test_json_round_trip_rebuilds_identical_extractor(spec):
    """A spec rebuilt from its JSON alone computes exactly the same features, batch and live."""
    rng = np.random.default_rng(0)
    x = _signal_for(spec, 25, rng)
    ts = 50.0 + np.arange(x.shape[1]) / spec.sfreq
    rebuilt = feature_spec_from_json(spec.model_dump_json())
    assert rebuilt == spec
    batch = spec.compute(x, ts)
    live = rebuilt.build_extractor()
    parts = [live.push(x[:, i : i + 97], ts[i : i + 97]) for i in range(0, x.shape[1], 97)]
    live_feats = np.concatenate([p.features for p in parts])
    assert batch.features.shape == (len(batch), spec.n_features) and len(batch) > 0
    np.testing.assert_allclose(live_feats, batch.features, atol=1e-9, equal_nan=True)
    assert len(spec.feature_names()) == spec.n_features


def test_de_spec_compute_equals_direct_functions():
    """spec.compute equals DE over sliding windows, flattened channel-major, then the causal Kalman filter."""
    spec = _eeg_spec(smoothing={"method": "kalman"}, bands=DEAP_BANDS)
    x = np.random.default_rng(0).normal(0, 10, (4, 200 * 12))
    direct = differential_entropy(sliding_windows(x, 400, 200), 200, DEAP_BANDS).reshape(-1, 16)
    np.testing.assert_allclose(spec.compute(x).features, kalman_filter(direct), atol=1e-12)
    assert spec.feature_names()[:5] == ["ch0:theta", "ch0:alpha", "ch0:beta", "ch0:gamma", "ch1:theta"]


def test_lds_is_offline_only():
    """'lds' smoothing works offline per continuous segment, is flagged, and refuses to run live."""
    spec = _eeg_spec(smoothing={"method": "lds"})
    assert not spec.reproducible_online
    x = np.random.default_rng(0).normal(0, 10, (4, 200 * 20))
    ts = np.arange(x.shape[1]) / 200
    ts[2000:] += 60  # a gap: two segments, smoothed separately
    frames = spec.compute(x, ts)
    raw = _eeg_spec().compute(x, ts)
    for seg in (1, 2):
        sel = raw.segments == seg
        np.testing.assert_allclose(frames.features[sel], lds_smooth(raw.features[sel]), atol=1e-12)
    with pytest.raises(ValueError, match="cannot run live"):
        spec.build_extractor()


def test_json_schema_names_every_kind():
    """The published JSON schema covers all four kinds."""
    text = json.dumps(feature_spec_json_schema())
    for kind in ("DESpec", "EyeSpec", "HrvSpec", "PpsSpec"):
        assert kind in text


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"kind": "fft"}, "does not match any of the expected tags"),
        (
            {"kind": "de", "modality": "eeg", "sfreq": 200, "channels": ["a"], "window_s": 0.333},
            "whole, positive",
        ),
        ({"kind": "de", "modality": "eeg", "sfreq": 80, "channels": ["a"]}, "above the Nyquist"),
        ({"kind": "de", "modality": "eeg", "sfreq": 200, "channels": ["a", "a"]}, "repeated"),
        ({"kind": "de", "modality": "EEG!", "sfreq": 200, "channels": ["a"]}, "modality"),
        ({"kind": "de", "modality": "eeg", "sfreq": 200, "channels": ["a"], "extra": 1}, "extra"),
        (
            {"kind": "de", "modality": "eeg", "sfreq": 200, "channels": ["a"], "schema_version": 9},
            "upgrade m2s-live",
        ),
        ({"kind": "eye", "sfreq": 120, "window_s": 4}, "must be >= 10 s"),
        ({"kind": "eye", "sfreq": 120, "channels": ["x", "y"]}, "eye channels must be exactly"),
        (
            {"kind": "pps", "sfreq": 128, "channels": ["GSR"], "statistics": ["kurtosis"]},
            "unknown statistics",
        ),
    ],
)
def test_invalid_specs_are_explained(obj, match):
    """Invalid specs raise one ValueError naming the field and the problem."""
    with pytest.raises(ValueError, match=match):
        feature_spec_from_dict(obj)
