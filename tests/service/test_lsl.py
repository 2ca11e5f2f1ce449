"""Tests for service.lsl with real pylsl outlets on loopback (unique name and uuid4 source_id per test)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from service.config import StreamSelector
from service.lsl import (
    LslStream,
    StreamResolutionError,
    read_stream_info,
    resolve_stream,
    selector_predicate,
)

SFREQ = 100.0
CHUNK = 10  # samples per push: one push every 0.1 s


def _unique(prefix: str = "m2s-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _make_info(name, stype, source_id, *, n_channels=2, sfreq=SFREQ, fmt="double64", labels=None, units=None):
    info = pylsl.StreamInfo(name, stype, n_channels, sfreq, fmt, source_id)
    if labels is not None:
        channels = info.desc().append_child("channels")
        for label, unit in zip(labels, units, strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            if unit is not None:
                channel.append_child_value("unit", unit)
    return info


class _Source:
    """A real outlet pushing [sample index, 2 * index] in paced chunks from a thread (pause/resume/close)."""

    def __init__(self, name, stype, source_id, *, first_index=0, **info_kwargs):
        self.outlet = pylsl.StreamOutlet(_make_info(name, stype, source_id, **info_kwargs))
        self.next_index = first_index
        self.pushing = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        target = time.perf_counter()
        while not self._closed.is_set():
            target += CHUNK / SFREQ
            self._closed.wait(max(0.0, target - time.perf_counter()))
            if self.pushing.is_set() and not self._closed.is_set():
                index = np.arange(self.next_index, self.next_index + CHUNK, dtype=np.float64)
                self.outlet.push_chunk(np.column_stack([index, 2 * index]))
                self.next_index += CHUNK
            elif not self.pushing.is_set():
                target = time.perf_counter()  # no catch-up burst after a pause

    def close(self):
        self._closed.set()
        self._thread.join(5)
        self.outlet = None  # the last reference: liblsl destroys the outlet


class _Collector:
    """on_chunk target that keeps every chunk (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data: list[np.ndarray] = []
        self.timestamps: list[np.ndarray] = []

    def __call__(self, data, timestamps):
        with self.lock:
            self.data.append(data)
            self.timestamps.append(timestamps)

    def arrays(self):
        with self.lock:
            if not self.data:
                return np.empty((2, 0)), np.empty(0)
            return np.concatenate(self.data, axis=1), np.concatenate(self.timestamps)


def _wait_until(condition, timeout, what):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def streams():
    """Stop every LslStream and close every _Source a test created, even when it fails."""
    made = []
    yield made
    for item in reversed(made):
        item.stop() if isinstance(item, LslStream) else item.close()


def _attach(streams, selector, on_chunk, **kwargs):
    stream = LslStream(selector, on_chunk, **kwargs)
    streams.append(stream)
    stream.start()
    return stream


def _source(streams, *args, **kwargs):
    source = _Source(*args, **kwargs)
    streams.append(source)
    return source


@pytest.mark.slow
def test_data_arrives_complete_in_order_with_sensible_timestamps(streams):
    """Every pushed sample arrives once, in order, as float64 (2, n), with dejittered LSL timestamps."""
    name, source_id = _unique(), str(uuid.uuid4())
    labels, units = ["Fp1", "Fp2"], ["microvolts", "microvolts"]
    source = _source(streams, name, "EEG", source_id, labels=labels, units=units)
    got = _Collector()
    stream = _attach(streams, StreamSelector(name=name), got, stale_after_s=0.5)
    _wait_until(lambda: stream.connected, 5, "the connection")
    assert stream.info.channels == ("Fp1", "Fp2") and stream.info.units == ("microvolts", "microvolts")
    assert (stream.info.name, stream.info.type, stream.info.source_id) == (name, "EEG", source_id)
    assert (stream.info.sfreq, stream.info.n_channels) == (SFREQ, 2)
    t_start = pylsl.local_clock()
    source.pushing.set()
    _wait_until(lambda: got.arrays()[1].size >= 200, 10, "200 samples")
    assert stream.effective_srate == pytest.approx(SFREQ, rel=0.2)
    source.pushing.clear()
    _wait_until(lambda: got.arrays()[1].size == source.next_index, 3, "the last pushed chunk")
    data, timestamps = got.arrays()
    assert all(d.dtype == np.float64 and d.shape[0] == 2 and d.flags.c_contiguous for d in got.data)
    np.testing.assert_array_equal(data[0], np.arange(source.next_index))  # none lost, none repeated
    np.testing.assert_array_equal(data[1], 2 * data[0])
    assert np.all(np.diff(timestamps) > 0)
    np.testing.assert_allclose(np.median(np.diff(timestamps)), 1 / SFREQ, rtol=0.05)
    # push_chunk stamps the chunk's last sample "now" and back-dates the others by 1/sfreq each.
    assert t_start - 0.2 < timestamps[0] < t_start + 0.5
    assert 0 <= stream.data_age_s < 1.0
    assert stream.last_error is None and stream.n_reconnects == 0


def test_samples_wanted_makes_each_pull_wait_for_that_many_samples(streams):
    """With samples_wanted() = 30 every chunk holds >= 30 samples although the outlet pushes 10 at a time."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    got = _Collector()
    stream = LslStream(StreamSelector(name=name), got, wait_s=1.0)
    stream.samples_wanted = lambda: 30
    streams.append(stream)
    stream.start()
    _wait_until(lambda: stream.connected, 5, "the connection")
    source.pushing.set()
    _wait_until(lambda: got.arrays()[1].size >= 150, 10, "150 samples")
    source.pushing.clear()
    data, _ = got.arrays()
    sizes = [d.shape[1] for d in got.data]
    assert min(sizes) >= 30, sizes
    np.testing.assert_array_equal(data[0], np.arange(data.shape[1]))  # nothing lost or repeated


def test_failing_samples_wanted_falls_back_to_waking_per_sample(streams, caplog):
    """A samples_wanted that raises is logged once and dropped; data keeps flowing in the outlet's chunks."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    got = _Collector()
    stream = LslStream(StreamSelector(name=name), got, wait_s=1.0)
    stream.samples_wanted = lambda: 1 / 0
    streams.append(stream)
    with caplog.at_level(logging.ERROR, logger="service.lsl"):
        stream.start()
        _wait_until(lambda: stream.connected, 5, "the connection")
        source.pushing.set()
        _wait_until(lambda: got.arrays()[1].size >= 50, 10, "50 samples")
    assert stream.samples_wanted is None
    assert sum("samples_wanted of" in r.getMessage() for r in caplog.records) == 1
    assert max(d.shape[1] for d in got.data) < 30  # woken per 10-sample push, not held back


def test_read_stream_info_fallbacks():
    """Labels/units come from desc(); missing ones fall back to ch<i> and the stream unit or 'unknown'."""
    full = read_stream_info(_make_info("a", "EEG", "s", labels=["Cz", "Pz"], units=["uV", "uV"]))
    assert full.channels == ("Cz", "Pz") and full.units == ("uV", "uV")
    bare = read_stream_info(_make_info("b", "EEG", "", n_channels=3))
    assert bare.channels == ("ch0", "ch1", "ch2") and bare.units == ("unknown",) * 3
    assert bare.source_id == ""
    partial_info = _make_info("c", "ECG", "s", labels=["", "II"], units=[None, "mV"])
    partial_info.desc().append_child_value("unit", "V")
    partial = read_stream_info(partial_info)
    assert partial.channels == ("ch0", "II") and partial.units == ("V", "mV")
    wrong_count = _make_info("d", "EEG", "s", n_channels=3, labels=["Cz", "Pz"], units=["uV", "uV"])
    assert read_stream_info(wrong_count).channels == ("ch0", "ch1", "ch2")


def test_read_stream_info_refuses_markers_and_strings():
    """Irregular-rate and string streams are refused with a message naming the stream."""
    with pytest.raises(ValueError, match=r"name='mk' .*irregular rate.*marker"):
        read_stream_info(_make_info("mk", "Markers", "s", n_channels=1, sfreq=pylsl.IRREGULAR_RATE))
    with pytest.raises(ValueError, match=r"name='txt' .*carries strings"):
        read_stream_info(_make_info("txt", "Text", "s", n_channels=1, fmt="string"))
    with pytest.raises(TypeError, match="info must be an instance of StreamInfo"):
        read_stream_info("EEG")


def test_selector_predicate():
    """The XPath predicate ANDs the set fields, quotes safely and adds a re-resolution source_id once."""
    assert selector_predicate(StreamSelector(type="EEG")) == "type='EEG'"
    assert selector_predicate(StreamSelector(type="EEG", name="a'b"), source_id="x") == (
        "type='EEG' and name=\"a'b\" and source_id='x'"
    )
    assert selector_predicate(StreamSelector(source_id="x"), source_id="x") == "source_id='x'"
    with pytest.raises(ValueError, match="contains both ' and \""):
        selector_predicate(StreamSelector(name="a'\"b"))
    with pytest.raises(TypeError, match="selector must be an instance of StreamSelector"):
        selector_predicate({"type": "EEG"})


def test_constructor_validates_arguments():
    """Every constructor argument is checked with a message naming it; start twice is refused."""
    sel = StreamSelector(type="EEG")
    with pytest.raises(TypeError, match="selector must be an instance of StreamSelector"):
        LslStream({"type": "EEG"}, print)
    with pytest.raises(TypeError, match="on_chunk must be callable"):
        LslStream(sel, None)
    with pytest.raises(ValueError, match="resolve_timeout_s must be > 0"):
        LslStream(sel, print, resolve_timeout_s=0)
    with pytest.raises(ValueError, match="stale_after_s must be > 0"):
        LslStream(sel, print, stale_after_s=-1)
    with pytest.raises(ValueError, match="wait_s must be <= 1"):
        LslStream(sel, print, wait_s=2)
    with pytest.raises(ValueError, match="max_buffer_s must be >= 1"):
        LslStream(sel, print, max_buffer_s=0.5)
    with pytest.raises(ValueError, match="reresolve_after_s must be > 0"):
        LslStream(sel, print, reresolve_after_s=0)
    with pytest.raises(TypeError, match="stale_after_s must be a number"):
        LslStream(sel, print, stale_after_s="2")


def test_no_match_keeps_retrying_and_stop_is_prompt_and_idempotent():
    """With no matching outlet the worker reports it and retries; stop() returns fast, twice."""
    stream = LslStream(StreamSelector(type=_unique("absent")), lambda d, t: None, resolve_timeout_s=0.3)
    stream.stop()  # before start: a no-op
    stream.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            stream.start()
        _wait_until(lambda: stream.last_error is not None, 3, "last_error")
        assert stream.last_error.startswith("no stream matching type='absent-")
        assert not stream.connected and stream.stale and stream.data_age_s is None
        assert stream.effective_srate is None and stream.info is None
    finally:
        t0 = time.perf_counter()
        stream.stop()
        elapsed = time.perf_counter() - t0
        stream.stop()
    assert elapsed < 1.0
    assert not stream._thread.is_alive()


def test_stop_interrupts_a_long_resolve():
    """stop() does not wait for a long resolve timeout to expire."""
    stream = LslStream(StreamSelector(type=_unique("absent")), lambda d, t: None, resolve_timeout_s=30)
    stream.start()
    time.sleep(0.3)  # let the worker enter its resolve loop
    t0 = time.perf_counter()
    stream.stop()
    assert time.perf_counter() - t0 < 1.0 and not stream._thread.is_alive()


def test_two_matching_streams_give_a_clear_error(streams):
    """Two outlets matching the selector: no connection, and the error lists both candidates."""
    stype, ids = _unique("type"), sorted(str(uuid.uuid4()) for _ in range(2))
    for i, source_id in enumerate(ids):
        _source(streams, f"amp{i}", stype, source_id)
    with pytest.raises(StreamResolutionError, match="2 streams match") as excinfo:
        resolve_stream(StreamSelector(type=stype), timeout=2.0)
    assert excinfo.value.candidates == (("amp0", stype, ids[0]), ("amp1", stype, ids[1]))
    stream = _attach(streams, StreamSelector(type=stype), lambda d, t: None)
    _wait_until(lambda: stream.last_error is not None, 5, "last_error")
    for i, source_id in enumerate(ids):
        assert f"name='amp{i}' type='{stype}' source_id='{source_id}'" in stream.last_error
    assert "add" in stream.last_error and not stream.connected


def test_marker_stream_is_refused(streams):
    """An irregular-rate stream never connects; last_error says why."""
    name = _unique()
    outlet = pylsl.StreamOutlet(_make_info(name, "Markers", str(uuid.uuid4()), n_channels=1, sfreq=0.0))
    stream = _attach(streams, StreamSelector(name=name), lambda d, t: None)
    _wait_until(lambda: stream.last_error is not None, 5, "last_error")
    assert "irregular rate" in stream.last_error and not stream.connected
    del outlet


@pytest.mark.slow
def test_stale_appears_when_the_outlet_pauses_and_clears_when_it_resumes(streams):
    """stale flips on after stale_after_s without samples and off when samples come back; on_status sees both."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    source.pushing.set()
    flips = []
    stream = LslStream(StreamSelector(name=name), lambda d, t: None, stale_after_s=0.4, reresolve_after_s=30)
    stream.on_status = lambda status: flips.append(status["stale"])
    streams.append(stream)
    stream.start()
    _wait_until(lambda: stream.connected and not stream.stale, 5, "fresh data")
    source.pushing.clear()
    _wait_until(lambda: stream.stale, 3, "stale")
    assert stream.data_age_s > 0.4 and stream.connected
    source.pushing.set()
    _wait_until(lambda: not stream.stale, 3, "fresh data again")
    assert stream.data_age_s < 0.4
    changes = [stale for i, stale in enumerate(flips) if i == 0 or stale != flips[i - 1]]
    assert changes[-3:] == [False, True, False]


def test_stale_flip_is_reported_when_it_happens_not_a_whole_wait_later(streams):
    """With wait_s 1 s and stale_after_s 0.3 s, on_status hears of the stale flip ~0.3 s after the last sample."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    source.pushing.set()
    reported = []
    stream = LslStream(StreamSelector(name=name), lambda d, t: None, wait_s=1.0, stale_after_s=0.3)
    stream.on_status = lambda status: reported.append((status["stale"], pylsl.local_clock()))
    streams.append(stream)
    stream.start()
    _wait_until(lambda: stream.connected and not stream.stale, 5, "fresh data")
    source.pushing.clear()
    _wait_until(lambda: reported[-1][0], 3, "the stale flip")
    last_sample = pylsl.local_clock() - stream.data_age_s
    assert 0.3 <= reported[-1][1] - last_sample < 0.5  # an uncapped 1-s pull would report it ~1 s late


@pytest.mark.slow
def test_silence_with_a_live_outlet_keeps_the_inlet_and_loses_nothing(streams, caplog):
    """After reresolve_after_s of silence the still-present outlet is kept: no reconnect, no lost sample."""
    caplog.set_level(logging.INFO, logger="service.lsl")
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    got = _Collector()
    stream = _attach(streams, StreamSelector(name=name), got, stale_after_s=0.2, reresolve_after_s=0.5)
    _wait_until(lambda: stream.connected, 5, "the connection")
    source.pushing.set()
    _wait_until(lambda: got.arrays()[1].size >= 30, 3, "first samples")
    source.pushing.clear()
    time.sleep(1.5)  # the behaviour under test is what happens during a silence longer than 0.5 s
    assert stream.connected and stream.n_reconnects == 0
    assert any("still there; keeping the inlet" in r.getMessage() for r in caplog.records)
    resumed_at = source.next_index
    source.pushing.set()
    _wait_until(lambda: got.arrays()[1].size >= resumed_at + 30, 3, "samples after the pause")
    source.pushing.clear()
    _wait_until(lambda: got.arrays()[1].size == source.next_index, 3, "the last pushed chunk")
    np.testing.assert_array_equal(got.arrays()[0][0], np.arange(source.next_index))


@pytest.mark.slow
def test_outlet_recreated_with_same_source_id_is_picked_up_again(streams):
    """A destroyed outlet recreated with the same source_id reconnects within seconds; timestamps jump over the gap."""
    name, source_id = _unique(), str(uuid.uuid4())
    first = _Source(name, "EEG", source_id)
    got = _Collector()
    stream = _attach(streams, StreamSelector(type="EEG", name=name), got, stale_after_s=0.3)
    _wait_until(lambda: stream.connected, 5, "the connection")
    first.pushing.set()
    _wait_until(lambda: got.arrays()[1].size >= 50, 3, "data from the first outlet")
    first.close()
    t_closed = pylsl.local_clock()
    _wait_until(lambda: not stream.connected, 3, "the loss to be noticed")
    assert "lost" in stream.last_error
    _, before = got.arrays()
    # Another outlet that matches the selector but is a different source must not be taken.
    impostor = _source(streams, name, "EEG", str(uuid.uuid4()))
    impostor.pushing.set()
    _wait_until(lambda: "no stream matching" in (stream.last_error or ""), 5, "a failed re-resolve")
    assert f"source_id='{source_id}'" in stream.last_error and not stream.connected
    impostor.close()
    second = _source(streams, name, "EEG", source_id, first_index=10_000)
    second.pushing.set()
    t_back = time.perf_counter()
    _wait_until(lambda: stream.n_reconnects == 1 and got.arrays()[0][0, -1] >= 10_050, 5, "the reconnection")
    assert time.perf_counter() - t_back < 3.0
    assert stream.connected and stream.last_error is None and not stream.stale
    data, timestamps = got.arrays()
    new = data[0] >= 10_000
    np.testing.assert_array_equal(data[0][~new], np.arange(before.size))
    # Samples pushed before the new inlet subscribed are gone (LSL semantics); the rest is contiguous.
    assert data[0][new][0] < 10_000 + 3 * SFREQ
    np.testing.assert_array_equal(np.diff(data[0][new]), 1)
    gap = timestamps[new][0] - timestamps[~new][-1]
    assert gap > 0.5 and timestamps[new][0] > t_closed
    np.testing.assert_allclose(np.median(np.diff(timestamps[new])), 1 / SFREQ, rtol=0.05)


@pytest.mark.slow
def test_raising_on_chunk_does_not_kill_the_worker(streams, caplog):
    """An on_chunk that always raises is logged and counted, and chunks keep coming."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    calls = []

    def explode(data, timestamps):
        calls.append(data.shape[1])
        raise ZeroDivisionError("boom")

    stream = _attach(streams, StreamSelector(name=name), explode)
    _wait_until(lambda: stream.connected, 5, "the connection")
    source.pushing.set()
    _wait_until(lambda: sum(calls) >= 100, 5, "100 samples through the raising callback")
    assert stream._thread.is_alive() and stream.connected
    assert stream.n_callback_errors == len(calls)
    assert any("on_chunk of LSL stream" in r.message and r.exc_info for r in caplog.records)


@pytest.mark.slow
def test_unexpected_pull_error_reconnects_instead_of_killing_the_worker(streams, monkeypatch):
    """A non-LSL exception inside the worker is logged, the inlet re-opened and data flows again."""
    name = _unique()
    source = _source(streams, name, "EEG", str(uuid.uuid4()))
    source.pushing.set()
    got = _Collector()
    stream = LslStream(StreamSelector(name=name), got)
    real_pull, failures = stream._pull, []

    def flaky_pull():
        if not failures:
            failures.append(1)
            raise OSError("simulated driver hiccup")
        return real_pull()

    monkeypatch.setattr(stream, "_pull", flaky_pull)
    streams.append(stream)
    stream.start()
    _wait_until(lambda: stream.n_reconnects == 1 and got.arrays()[1].size >= 20, 6, "data after the failure")
    assert stream._thread.is_alive() and stream.last_error is None
