"""The one dejitter rule (signals.timing): regular within segments, gaps exactly where the feature spec's rule puts them."""

from __future__ import annotations

import numpy as np
import pytest

from signals.timing import SegmentDejitter, dejitter
from signals.windowing import segment_breaks

FS = 200.0


def _chunked(dj: SegmentDejitter, ts: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([dj(ts[i : i + size]) for i in range(0, ts.size, size)])


def test_smooths_jitter_and_keeps_gaps():
    """Strict rule (jitter_s=0): ±1 ms jitter comes out regular; a 1-s pause and one lost sample stay gaps."""
    rng = np.random.default_rng(0)
    true = 100.0 + np.arange(4000) / FS
    true[1200:] += 1.0  # a 1-s pause before sample 1200
    true[3000:] += 1 / FS  # one lost sample before sample 3000
    jittered = true + rng.uniform(-1e-3, 1e-3, true.size)
    dj = SegmentDejitter(FS, jitter_s=0)
    out = _chunked(dj, jittered, 37)
    steps = np.diff(out)
    inside = np.delete(steps, [1199, 2999])
    np.testing.assert_allclose(inside, 1 / FS, rtol=0, atol=2e-4)  # anchor nudges move a step by << 1 sample
    assert steps[1199] > 0.9 and steps[2999] > 1.5 / FS
    assert np.max(np.abs(out - true)) < 2e-3
    assert dj.n_segments_ == 3
    assert dj(np.array([50.0]))[0] == 50.0 and dj.n_segments_ == 4  # time going back re-anchors


@pytest.mark.parametrize("jitter_s", [0.0, 0.1])
def test_breaks_are_the_feature_specs_breaks(jitter_s):
    """Whatever the input, segment_breaks on the output marks exactly the dejitter's segment starts."""
    rng = np.random.default_rng(1)
    for gap_factor in (1.5, 3.0, 20.0):
        steps = np.full(6000, 1 / FS) + rng.uniform(-0.3, 0.3, 6000) * (gap_factor - 1) / FS
        lost = rng.choice(6000, 30, replace=False)
        steps[lost] += rng.integers(1, 40, 30) / FS
        steps[rng.choice(6000, 5, replace=False)] = -0.5  # clock going backwards
        ts = 10.0 + np.cumsum(steps)
        starts = []
        dj = SegmentDejitter(FS, gap_factor=gap_factor, jitter_s=jitter_s)
        out = []
        for i in range(0, ts.size, 53):
            before = dj.n_segments_
            out.append(dj(ts[i : i + 53]))
            starts.append(dj.n_segments_ - before)
        out = np.concatenate(out)
        breaks = segment_breaks(out, FS, gap_factor)
        assert breaks.sum() == dj.n_segments_ == sum(starts)
        within = np.diff(out)[~breaks[1:]]
        assert np.all(within > 0) and np.all(within <= gap_factor / FS)


def test_gap_factor_decides_what_a_lost_sample_is():
    """Strict rule: one lost sample is a gap at gap_factor 1.5 and bridged at 3 (offline and live)."""
    ts = np.concatenate([np.arange(100), np.arange(101, 200)]) / FS
    assert dejitter(ts, FS, gap_factor=1.5, jitter_s=0)[100] == ts[100]  # a new segment starts at its raw time
    bridged = dejitter(ts, FS, gap_factor=3.0, jitter_s=0)
    assert segment_breaks(bridged, FS, 3.0).sum() == 1
    assert segment_breaks(dejitter(ts, FS, gap_factor=1.5, jitter_s=0), FS, 1.5).sum() == 2


def test_jitter_tolerance():
    """±20 ms per-chunk push jitter at 200 Hz: one segment by default (jitter_s 0.1 s), a gap every few
    chunks with the strict rule; the default still sees a 0.3-s pause, and bridges a 50-ms loss."""
    rng = np.random.default_rng(2)
    true = np.arange(2000) / FS
    jittered = true + np.repeat(rng.uniform(-0.02, 0.02, 100), 20)  # per-chunk push jitter
    strict = SegmentDejitter(FS, jitter_s=0)
    _chunked(strict, jittered, 20)
    assert strict.n_segments_ > 20
    default = SegmentDejitter(FS)
    out = _chunked(default, jittered, 20)
    assert default.n_segments_ == 1 and np.max(np.abs(out - true)) < 0.03
    assert np.all(np.diff(out) > 0) and np.all(np.diff(out) <= 1.5 / FS)
    paused = true.copy()
    paused[1000:] += 0.3
    assert segment_breaks(dejitter(paused, FS), FS, 1.5).sum() == 2
    lost = true.copy()
    lost[1000:] += 0.05
    assert segment_breaks(dejitter(lost, FS), FS, 1.5).sum() == 1


@pytest.mark.parametrize("chunk", [20, 400])
def test_tracks_drift(chunk):
    """A device running 0.05 % fast stays one segment over ten minutes, within a sample of its stamps."""
    true = np.arange(FS * 600) / (FS * 1.0005)
    dj = SegmentDejitter(FS)
    out = _chunked(dj, true, chunk)
    assert dj.n_segments_ == 1
    assert np.max(np.abs(out - true)) < 0.5 / FS


def test_dejitter_is_the_chunked_class_and_keeps_regular_stamps():
    """dejitter() feeds the same class in 0.1-s chunks; regular stamps come back unchanged."""
    rng = np.random.default_rng(3)
    ts = 5.0 + np.arange(1000) / FS + rng.uniform(-1e-3, 1e-3, 1000)
    np.testing.assert_array_equal(dejitter(ts, FS), _chunked(SegmentDejitter(FS), ts, 20))
    regular = 1000.0 + np.arange(1000) / FS
    np.testing.assert_allclose(dejitter(regular, FS), regular, rtol=0, atol=1e-9)
    assert dejitter(np.array([]), FS).shape == (0,)


def test_errors():
    """gap_factor <= 1, a bad rate and non-finite recorded stamps are refused with the rule in the message."""
    with pytest.raises(ValueError, match="gap_factor must be > 1"):
        SegmentDejitter(FS, gap_factor=1.0)
    with pytest.raises(ValueError, match="sfreq must be > 0"):
        SegmentDejitter(0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        dejitter(np.array([0.0, np.nan]), FS)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        SegmentDejitter(FS)(np.zeros((2, 2)))
