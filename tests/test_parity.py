"""Parity: the windows training cuts from a recording are the windows the live service feeds ONNX Runtime.

One XDF recording holds the four kinds of modality the service serves (DE EEG, eye features from
raw gaze, HRV from ECG, PPS statistics), with a pause and a NaN burst inside the trial, and
timestamps jittered per chunk as outlets that stamp at arrival produce. Offline,
the dataset loader reads it, the training normaliser is fitted on it and ``make_windows`` cuts the
windows. Online, the same file is replayed over real LSL into the real service (uvicorn, attached
streams, ONNX Runtime on the CPU) serving a bundle with those specs and that normalisation; a spy
on the engine records every window the streams hand to ONNX Runtime and the probabilities it
returns. The windows must be equal (1e-6) and the probabilities equal to an offline ONNX Runtime
run on training's windows.

The replay runs at 4x (it keeps the file's sample spacing at any speed). The recording starts with
a lead-in and a pause, so the service has connected before the trial's first sample and the trial
starts a fresh segment on both sides (module notes of
:mod:`signals.pipeline`: live windows sit on the stream's grid, training's on the trial's).
"""

from __future__ import annotations

import os
import threading

import httpx
import numpy as np
import onnxruntime as ort

from clients.replay import Replayer, load_recording
from service.app import create_app
from service.config import AttachRequest
from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from synthetic import PPS_CHANNELS, SyntheticConfig, generate_trial
from tests.bundles import write_linear_bundle
from tests.clock import wait_until
from tests.fixtures.recordings import XdfStream, write_xdf_streams
from tests.service.conftest import make_settings, run_server
from training.datasets import recordings
from training.protocols import Normaliser, Task, make_windows

T_FIRST = 100.0  # the recording clock does not start at zero
SPEED = 4.0  # the replay keeps the file's sample spacing at any speed (clients.replay, "Timing")
LEAD_S, PAUSE_S, PART_S = 20.0, 2.0, 14.0  # lead-in | pause | trial part 1 | pause | trial part 2
NAN_AT_S, NAN_S = 11.0, 0.5  # NaN burst inside part 2 (seconds from its start)
SEQ_LEN = 2
STREAMS = {"eeg": ("EEG", "EEG"), "eye": ("Gaze", "Gaze"), "ecg": ("ECG", "ECG"), "pps": ("PPS", "PPS")}
UNITS = {"eeg": "microvolts", "ecg": "millivolts"}


def _specs(trial) -> dict:
    sf = trial.sfreq
    return {
        "eeg": DESpec(modality="eeg", sfreq=sf["eeg"], channels=trial.channel_names["eeg"][:6]),
        "eye": EyeSpec(sfreq=sf["eye"], window_s=10, hop_s=1),
        "ecg": HrvSpec(modality="ecg", sfreq=sf["ecg"], channels=trial.channel_names["ecg"], window_s=10),
        "pps": PpsSpec(modality="pps", sfreq=sf["pps"], channels=PPS_CHANNELS),
    }


def _write_recording(path, trial):
    """Lead-in, pause, part 1, pause, part 2 with a NaN burst; one trial over both parts; jittered stamps."""
    lead_end = T_FIRST + LEAD_S
    start = lead_end + PAUSE_S
    resume = start + PART_S + PAUSE_S
    end = resume + PART_S
    streams, rng = [], np.random.default_rng(7)
    for m, (name, kind) in STREAMS.items():
        x, sf = trial.signals[m], trial.sfreq[m]
        n_lead, n_part = round(LEAD_S * sf), round(PART_S * sf)
        data = x[:, : n_lead + 2 * n_part].T.copy()  # (n_samples, n_channels)
        times = np.concatenate(
            [
                T_FIRST + np.arange(n_lead) / sf,
                start + np.arange(n_part) / sf,
                resume + np.arange(n_part) / sf,
            ]
        )
        # Stamped at arrival, as many outlets are: ±2 ms per 16-sample chunk (the gap rule's jitter_s
        # smooths it the same way in the loader and in replay; the first sample of a part stays exact).
        jitter = np.repeat(rng.uniform(-2e-3, 2e-3, -(-times.size // 16)), 16)[: times.size]
        jitter[[0, n_lead, n_lead + n_part]] = 0.0
        times = times + jitter
        burst = n_lead + n_part + round(NAN_AT_S * sf)
        data[burst : burst + round(NAN_S * sf)] = np.nan
        units = UNITS.get(m) or tuple(trial.units[m])
        streams.append(XdfStream(name, kind, sf, times, data, tuple(trial.channel_names[m]), units))
    streams.append(
        XdfStream("Markers", "Markers", 0.0, np.array([start, end]), ["trial_start:a", "trial_end"])
    )
    write_xdf_streams(path, streams)
    return start, end


class _ServiceSpy:
    """Wraps the running engine's ``predict`` and the hub's ``publish``; records per modality.

    Each attached stream hands its windows to ``engine.predict`` and then publishes one state per
    window, in the same order, so the i-th window of a modality has the i-th state's ``lsl_time``.
    """

    def __init__(self, engine, hub):
        self._predict, self._publish = engine.predict, hub.publish
        self.windows: dict[str, list[np.ndarray]] = {}
        self.probabilities: dict[str, list[np.ndarray]] = {}
        self.times: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        engine.predict, hub.publish = self.predict, self.publish

    def predict(self, ref, modality, windows):
        probs = self._predict(ref, modality, windows)
        with self._lock:
            self.windows.setdefault(modality, []).extend(np.array(windows))
            self.probabilities.setdefault(modality, []).extend(np.array(probs))
        return probs

    def publish(self, state):
        with self._lock:
            self.times.setdefault(state.modality, []).append(state.lsl_time)
        self._publish(state)


def test_live_windows_equal_training_windows(tmp_path):
    trial = generate_trial(SyntheticConfig(), 0, 0, 0)
    specs = _specs(trial)
    path = tmp_path / "session.xdf"
    start, end = _write_recording(path, trial)

    # Offline: the dataset loader, the training normaliser, make_windows.
    offline, norms = {}, {}
    for m, spec in specs.items():
        ds = recordings.load(path, picks={m: STREAMS[m][0]}, specs={m: spec}, marker_stream="Markers")
        normaliser = Normaliser.fit(ds.trials)
        norms[m] = normaliser.normalisation(m)
        offline[m] = make_windows(ds.trials, Task("emotion", ("a", "b")), SEQ_LEN, normaliser=normaliser)
        assert len(offline[m]) >= 3, m
    root = tmp_path / "repository"
    bundle = write_linear_bundle(
        root, "parity", {m: (spec, SEQ_LEN, spec.hop_s, norms[m]) for m, spec in specs.items()}
    )

    # Online: replay the file over LSL into the service serving that bundle.
    prefix = f"parity{os.getpid()}"
    streams = load_recording(path, source_id_prefix=prefix)
    source_ids = {s.name: s.source_id for s in streams}
    attach = [AttachRequest(modality=m, source_id=source_ids[name]) for m, (name, _) in STREAMS.items()]
    app = create_app(
        make_settings(model_repository=root, default_model="parity", attach=attach, stale_after_s=30.0)
    )
    with run_server(app) as base:
        spy = _ServiceSpy(app.state.engine, app.state.hub)
        with Replayer(streams, speed=SPEED) as replayer:
            _wait_connected(base, len(STREAMS))
            assert replayer.wait(timeout=(LEAD_S + 2 * (PAUSE_S + PART_S)) / SPEED + 30)
            t0 = replayer.start_time

        def n_trial_states(m):
            times = np.array(spy.times.get(m, [])) - t0 + T_FIRST
            return int(np.count_nonzero((times > start) & (times < end)))

        # The last chunks reach the streams' workers: wait for as many states as training has windows.
        wait_until(
            lambda: all(n_trial_states(m) >= len(offline[m]) for m in specs),
            timeout=20,
            what="the service's states of the trial",
        )
    for m in specs:
        windows, probs = np.array(spy.windows.get(m, [])), np.array(spy.probabilities.get(m, []))
        times = np.array(spy.times.get(m, [])) - t0 + T_FIRST  # on the recording's clock
        assert windows.shape[0] == probs.shape[0] == times.shape[0], m
        # The service's windows of the trial (the lead-in's end before the first pause).
        in_trial = (times > start) & (times < end)
        assert in_trial.sum() + (times < start).sum() == times.size, m
        live, live_probs = windows[in_trial], probs[in_trial]
        assert live.shape == offline[m].x[m].shape, m
        np.testing.assert_allclose(live, offline[m].x[m], rtol=0, atol=1e-6, err_msg=m)
        session = ort.InferenceSession(str(bundle / f"{m}.onnx"), providers=["CPUExecutionProvider"])
        expected = session.run(["probabilities"], {"window": offline[m].x[m]})[0]
        np.testing.assert_allclose(live_probs, expected, rtol=0, atol=1e-6, err_msg=m)


def _wait_connected(base, n, timeout=20.0):
    def connected():
        streams = httpx.get(f"{base}/streams", timeout=5).json()["data"]
        return len(streams) == n and all(s["connected"] for s in streams)

    wait_until(connected, timeout, f"{n} attached streams to connect", interval=0.1)
