"""service.lsl.markers.MarkerInlet on real LSL outlets (loopback): markers in order on the LSL clock, a lost
outlet re-resolved and announced, non-marker streams refused with a reason."""

import threading
import time
import uuid

import pylsl

from service.config import StreamSelector
from service.lsl.markers import MarkerInlet


def _marker_outlet(source_id: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(
        f"Markers-{source_id}", "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id
    )
    return pylsl.StreamOutlet(info)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_markers_arrive_in_order_and_a_lost_outlet_is_reconnected():
    source_id = f"markers-{uuid.uuid4().hex[:10]}"
    received, connections = [], []
    lock = threading.Lock()

    def on_marker(t, text):
        with lock:
            received.append((t, text))

    outlet = _marker_outlet(source_id)
    inlet = MarkerInlet(
        StreamSelector(source_id=source_id), on_marker, resolve_timeout_s=1.0, on_connect=connections.append
    ).start()
    try:
        _wait(lambda: inlet.status()["connected"], 10, "the first connection")
        assert outlet.wait_for_consumers(5)
        sent = []
        for text in ('{"trial": 0, "label": "neutral"}', "trial_end"):
            stamp = pylsl.local_clock()
            outlet.push_sample([text], stamp)
            sent.append((stamp, text))
        _wait(lambda: len(received) == 2, 5, "two markers")
        assert [text for _, text in received] == [text for _, text in sent]
        assert all(abs(t - s) < 0.05 for (t, _), (s, _) in zip(received, sent, strict=True))
        del outlet  # the experiment's marker outlet goes away ...
        _wait(lambda: not inlet.status()["connected"], 20, "the loss to be noticed")
        back = _marker_outlet(source_id)  # ... and comes back under the same source_id
        _wait(lambda: connections == [1, 2], 20, "the reconnection")
        back.push_sample(["trial_end"])
        _wait(lambda: len(received) == 3, 5, "a marker of the new outlet")
        assert inlet.status()["n_connections"] == 2 and inlet.status()["last_error"] is None
    finally:
        inlet.stop()
    assert not inlet._thread.is_alive()


def test_a_signal_stream_is_not_taken_for_markers():
    source_id = f"notmarkers-{uuid.uuid4().hex[:10]}"
    info = pylsl.StreamInfo("EEG-x", "EEG", 2, 100.0, pylsl.cf_float32, source_id)
    outlet = pylsl.StreamOutlet(info)
    inlet = MarkerInlet(
        StreamSelector(source_id=source_id), lambda t, text: None, resolve_timeout_s=1.0
    ).start()
    try:
        _wait(lambda: inlet.status()["last_error"] is not None, 10, "the refusal")
        assert (
            "is not a marker stream (it must carry strings, e.g. type='Markers')"
            in inlet.status()["last_error"]
        )
        assert not inlet.status()["connected"]
    finally:
        inlet.stop()
        del outlet
