"""The streaming extractor: identical to the batch functions, gap-aware, never emits incomplete windows."""

import numpy as np
import pytest

from signals.buffer import RingBuffer
from signals.de import differential_entropy
from signals.smoothing import KalmanFilter, kalman_filter
from signals.streaming import StreamingExtractor
from signals.windowing import seconds_to_samples, sliding_windows, window_end_indices

FS = 200


def _de_transform(windows):
    return differential_entropy(windows, FS).reshape(windows.shape[0], -1)


def _span_transform(windows):
    """Channel 0 carries the sample index: report the first and last index each window saw."""
    return np.stack([windows[:, 0, 0], windows[:, 0, -1]], axis=1)


def _de_extractor(n_channels=3, window_s=4, hop_s=1, **kwargs):
    return StreamingExtractor(
        _de_transform,
        n_channels=n_channels,
        n_features=n_channels * 5,
        sfreq=FS,
        n_window=window_s * FS,
        n_hop=hop_s * FS,
        **kwargs,
    )


def _push_in_random_chunks(ext, x, ts, rng, max_chunk):
    feats, times, i = [], [], 0
    while i < x.shape[1]:
        n = int(rng.integers(1, max_chunk))
        frames = ext.push(x[:, i : i + n], ts[i : i + n])
        feats.append(frames.features)
        times.append(frames.timestamps)
        i += n
    return np.concatenate(feats), np.concatenate(times)


@pytest.mark.parametrize(("window_s", "hop_s"), [(4, 1), (1, 1), (1, 2), (2, 1)])
@pytest.mark.parametrize("max_chunk", [2, 37, 1500])
def test_streaming_equals_batch(window_s, hop_s, max_chunk):
    """Chunks of any size give the batch DE of the same windows to 1e-6, stamped at each window's last sample."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 15, (3, FS * 23 + 11))
    ts = 1000.0 + np.arange(x.shape[1]) / FS
    feats, times = _push_in_random_chunks(_de_extractor(3, window_s, hop_s), x, ts, rng, max_chunk)
    n_win, n_hop = window_s * FS, hop_s * FS
    ref = differential_entropy(sliding_windows(x, n_win, n_hop), FS).reshape(-1, 15)
    assert feats.shape == ref.shape
    np.testing.assert_allclose(feats, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(times, ts[window_end_indices(x.shape[1], n_win, n_hop)])


def test_no_frame_from_incomplete_window():
    """The first vector appears exactly when the window's last sample arrives, then once per hop."""
    ext = _de_extractor(1, window_s=4, hop_s=1)
    x = np.random.default_rng(0).normal(size=(1, 4 * FS + FS))
    ts = np.arange(x.shape[1]) / FS
    assert len(ext.push(x[:, : 4 * FS - 1], ts[: 4 * FS - 1])) == 0
    assert ext.samples_until_next_frame == 1
    assert len(ext.push(x[:, 4 * FS - 1 : 4 * FS], ts[4 * FS - 1 : 4 * FS])) == 1
    assert ext.samples_until_next_frame == FS
    assert len(ext.push(x[:, 4 * FS : 5 * FS - 1], ts[4 * FS : 5 * FS - 1])) == 0
    assert len(ext.push(x[:, 5 * FS - 1 :], ts[5 * FS - 1 :])) == 1


def _index_extractor(**kwargs):
    return StreamingExtractor(
        _span_transform, n_channels=1, n_features=2, sfreq=FS, n_window=FS, n_hop=FS // 2, **kwargs
    )


def test_gap_restarts_instead_of_stitching():
    """After a timestamp gap no window mixes samples from both sides; a full window is awaited again."""
    n = 5 * FS
    idx = np.arange(n, dtype=float)[np.newaxis]
    ts = idx[0] / FS
    ts[600:] += 3.0  # 3 s of missing data before sample 600
    ext = _index_extractor()
    frames = ext.push(idx, ts)
    first, last = frames.features.T
    assert np.all(last - first == FS - 1)  # contiguous windows only
    assert not np.any((first < 600) & (last >= 600))
    assert first[first >= 600].min() == 600  # restarted at the gap
    assert ext.n_segments_ == 2
    np.testing.assert_array_equal(np.unique(frames.segments), [1, 2])


def test_gap_between_chunks_and_backwards_time():
    """A gap at a chunk boundary and a timestamp going backwards both restart the segment."""
    ext = _index_extractor()
    idx = np.arange(3 * FS, dtype=float)[np.newaxis]
    ext.push(idx[:, :FS], np.arange(FS) / FS)
    frames = ext.push(idx[:, FS:], 10 + np.arange(2 * FS) / FS)
    assert frames.features[0, 0] == FS
    assert ext.n_segments_ == 2
    frames = ext.push(idx[:, :FS], 5 + np.arange(FS) / FS)  # earlier than what was seen
    assert ext.n_segments_ == 3
    assert frames.features[0].tolist() == [0, FS - 1]


def test_nan_burst_is_a_gap():
    """NaN samples are dropped and end the segment: no frame ever contains them or spans them."""
    n = 6 * FS
    x = np.vstack([np.arange(n, dtype=float), np.ones(n)])
    x[1, 500:520] = np.nan
    ext = StreamingExtractor(
        lambda w: np.stack([w[:, 0, 0], w[:, 0, -1], np.isnan(w).sum(axis=(1, 2))], axis=1),
        n_channels=2,
        n_features=3,
        sfreq=FS,
        n_window=FS,
        n_hop=FS // 2,
    )
    frames = ext.push(x, np.arange(n) / FS)
    first, last, n_nan = frames.features.T
    assert np.all(n_nan == 0)
    assert not np.any((first < 520) & (last >= 500))
    assert first[first >= 500].min() == 520
    assert ext.n_segments_ == 2


def test_nan_at_chunk_end_breaks_next_chunk():
    """A chunk ending in NaN makes the next valid sample start a fresh segment."""
    ext = _index_extractor()
    ext.push(np.array([[0.0, 1.0, np.nan]]), np.arange(3) / FS)
    frames = ext.push(np.arange(3, 3 + FS, dtype=float)[np.newaxis], np.arange(3, 3 + FS) / FS)
    assert frames.features[0].tolist() == [3, FS + 2]
    assert ext.n_segments_ == 2


def test_keep_nonfinite_passes_nan_through():
    """With nonfinite='keep' NaN samples reach the feature function (eye trackers mark blinks so)."""
    ext = StreamingExtractor(
        lambda w: np.isnan(w).sum(axis=(1, 2))[:, np.newaxis],
        n_channels=1,
        n_features=1,
        sfreq=FS,
        n_window=10,
        n_hop=10,
        nonfinite="keep",
    )
    x = np.ones((1, 10))
    x[0, 3] = np.nan
    assert ext.push(x, np.arange(10) / FS).features.tolist() == [[1.0]]


def test_work_is_bounded_by_window():
    """Memory stays one window whatever was pushed, and windows are computed only when completed."""
    calls = []

    def counting(windows):
        calls.append(windows.shape[0])
        return windows[:, 0, -1:].copy()

    ext = StreamingExtractor(counting, n_channels=2, n_features=1, sfreq=FS, n_window=FS, n_hop=FS)
    x = np.random.default_rng(0).normal(size=(2, 10 * FS))
    for i in range(0, x.shape[1], 7):
        ext.push(x[:, i : i + 7], np.arange(i, min(i + 7, x.shape[1])) / FS)
    assert ext.buffer_._data.shape == (2, 2 * FS)
    assert sum(calls) == 10 and all(c == 1 for c in calls)


def test_streaming_smoother_equals_batch_filter():
    """A Kalman smoother inside the extractor equals kalman_filter over the batch DE sequence."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 10, (2, FS * 30))
    ts = np.arange(x.shape[1]) / FS
    ext = _de_extractor(2, window_s=1, hop_s=1, smoother=KalmanFilter())
    feats, _ = _push_in_random_chunks(ext, x, ts, rng, 333)
    ref = kalman_filter(differential_entropy(sliding_windows(x, FS, FS), FS).reshape(-1, 10))
    np.testing.assert_allclose(feats, ref, atol=1e-9)


def test_reset_and_empty_chunk():
    """reset() returns to the initial state; an empty chunk (an empty LSL pull) yields nothing."""
    ext = _index_extractor()
    assert len(ext.push(np.zeros((1, 0)), np.zeros(0))) == 0
    ext.push(np.zeros((1, 50)), np.arange(50) / FS)
    ext.reset()
    assert ext.segment_samples_ == 0 and ext.last_timestamp_ is None and ext.n_segments_ == 0


@pytest.mark.parametrize(
    ("data", "ts", "match"),
    [
        (np.zeros((FS, 1)), np.arange(1) / FS, r"transpose it"),
        (np.zeros((1, 5)), np.arange(4) / FS, "timestamps has 4 entries but data has 5"),
        (np.zeros((1, 3)), np.array([0, np.nan, 1.0]), "timestamps contains 1 NaN"),
        (np.zeros(5), np.arange(5) / FS, r"\(n_channels, n_times\) \(2-D\)"),
    ],
)
def test_push_validation(data, ts, match):
    """Malformed chunks are refused with a message naming the problem."""
    with pytest.raises(ValueError, match=match):
        _index_extractor().push(data, ts)


def test_constructor_validation():
    """Bad extractor parameters are refused."""
    with pytest.raises(ValueError, match="'nonfinite' parameter"):
        _index_extractor(nonfinite="drop")
    with pytest.raises(ValueError, match="gap_factor must be > 1"):
        _index_extractor(gap_factor=1)
    with pytest.raises(TypeError, match="n_window must be an int"):
        StreamingExtractor(_span_transform, n_channels=1, n_features=2, sfreq=FS, n_window=1.5, n_hop=1)


def test_ring_buffer_latest_is_contiguous():
    """The ring buffer returns the latest samples in order across wrap-arounds, as a view."""
    buf = RingBuffer(2, 10)
    data = np.vstack([np.arange(37.0), -np.arange(37.0)])
    for i in range(0, 37, 3):
        buf.append(data[:, i : i + 3])
    np.testing.assert_array_equal(buf.latest(10), data[:, -10:])
    np.testing.assert_array_equal(buf.latest(4), data[:, -4:])
    assert not buf.latest(3).flags.writeable
    buf.append(np.zeros((2, 25)))
    np.testing.assert_array_equal(buf.latest(10), 0)
    with pytest.raises(ValueError, match="holds 10"):
        buf.latest(11)
    with pytest.raises(ValueError, match="must have 2 channels"):
        buf.append(np.zeros((3, 2)))


def test_window_geometry():
    """sliding_windows drops the partial last window; durations must be whole samples."""
    x = np.arange(10.0)[np.newaxis]
    w = sliding_windows(x, 4, 3)
    assert w.shape == (3, 1, 4)
    np.testing.assert_array_equal(w[:, 0, 0], [0, 3, 6])
    assert sliding_windows(x, 11, 1).shape == (0, 1, 11)
    assert seconds_to_samples(4, 200, "window_s") == 800
    with pytest.raises(ValueError, match="whole, positive number of samples"):
        seconds_to_samples(0.333, 200, "window_s")
