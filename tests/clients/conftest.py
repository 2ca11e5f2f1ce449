"""Fixtures for the client tests: the REAL service app under uvicorn, and a real pylsl EEG outlet.

The outlet pushes synthetic EEG (:mod:`synthetic`, 62 channels in µV, labels and units in desc())
faster than real time with explicit, regular timestamps that end near "now", as
tests/service/test_streams.py does, so that the demo bundle emits states within seconds.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from service.app import create_app
from synthetic import SyntheticConfig, generate_trial
from tests.service.conftest import make_settings, run_server

EEG_SFREQ = 200.0
CHUNK = 20  # samples per push (0.1 s)
SPEEDUP = 8.0  # signal seconds pushed per wall second


@pytest.fixture(scope="module")
def server_url():
    """Base URL of one real app (demo bundle, CPU, no token) shared by a test module."""
    with run_server(create_app(make_settings(stale_after_s=5.0, resolve_timeout_s=1.0))) as url:
        yield url


@pytest.fixture(scope="session")
def eeg_signal():
    """20 s of synthetic EEG (62 channels × 4000 samples, µV) at 200 Hz, and its channel labels."""
    trial = generate_trial(SyntheticConfig(trial_duration_s=20), 0, 0, 0, modalities=("eeg",))
    return trial.signals["eeg"], list(trial.channel_names["eeg"])


class EegOutlet:
    """A real LSL EEG outlet with a unique source_id; :meth:`push` sends signal seconds ending now."""

    def __init__(self, signal: np.ndarray, labels: list[str]):
        self.signal = signal
        self.source_id = f"m2s-sdk-test-{uuid.uuid4().hex[:12]}"
        info = pylsl.StreamInfo("m2s-sdk-test", "EEG", len(labels), EEG_SFREQ, "double64", self.source_id)
        channels = info.desc().append_child("channels")
        for label in labels:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=CHUNK)

    def push(self, seconds: float) -> None:
        """Push ``seconds`` of the signal, paced at SPEEDUP, stamped so no sample lies in the future."""
        n = min(round(seconds * EEG_SFREQ), self.signal.shape[1])
        t_first = pylsl.local_clock() - n / EEG_SFREQ * (1 - 1 / SPEEDUP)
        start = time.perf_counter()
        for k in range(0, n, CHUNK):
            idx = np.arange(k, min(k + CHUNK, n))
            self.outlet.push_chunk(
                np.ascontiguousarray(self.signal[:, idx].T), list(t_first + idx / EEG_SFREQ)
            )
            delay = start + (k + CHUNK) / EEG_SFREQ / SPEEDUP - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


@pytest.fixture
def eeg_outlet(eeg_signal):
    """Factory of :class:`EegOutlet` (each with a new source_id)."""
    return lambda: EegOutlet(*eeg_signal)


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll ``condition()`` every 20 ms; AssertionError after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
