"""End-to-end: simulator/recording -> LSL -> the real service (or the live feature path) -> results.

1. ``test_live_accuracy_follows_ground_truth``: the LSL simulator (subject 0, trials unseen in
   training) streams EEG, gaze and ECG; the real app (``create_app`` under uvicorn, demo bundle)
   attaches them by source_id; a real ``websockets`` client on ``/ws`` collects the states; each
   state's label is compared with the simulator's ground truth and balanced accuracy is computed per
   modality.
2. ``test_replayed_edf_sinusoids_land_in_their_bands``: pyedflib's ``test_generator.edf`` (a real EDF
   shipped on PyPI) is played by ``clients.replay`` over LSL, pulled back with an inlet, and run
   through ``DESpec`` (the streaming extractor the service uses): each sinusoid's DE peaks in its band.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

import numpy as np
import pylsl
import pytest
from websockets.asyncio.client import connect

from clients.replay import Replayer, load_recording
from clients.simulator import Simulator
from service.app import create_app
from service.config import AttachRequest
from signals.spec import DESpec
from synthetic import SyntheticConfig
from tests.service.conftest import make_settings, run_server

logger = logging.getLogger(__name__)

# The simulator keeps the nominal sample spacing at any speed (clients.simulator, "Timing"), so the
# service computes the same windows at 4x as in real time; the real-time run is kept as a slow test.
SPEEDS = [4.0, pytest.param(1.0, marks=pytest.mark.slow)]
PLAYBACK_S = 120.0  # four 30-s trials
TRIAL_S = 30.0
# Context a state may depend on, in playback (= LSL) seconds: the longest feature window (eye: 10 s) plus
# the model's context; states whose span straddles a trial change are skipped (conservative).
CONTEXT_S = 12.0
# Chance is 1/3 (three balanced classes). Measured on 2026-11-24 (2 cores): EEG 0.759 (36 states),
# EYE 0.704 (33), ECG 1.000 (36). 0.5 keeps a wide margin below those for run-to-run timing noise
# while a chain that ignores the signal stays near 1/3.
MIN_BALANCED_ACCURACY = 0.5


def _balanced_accuracy(truth: list[str], pred: list[str]) -> float:
    """Mean per-class recall over the classes present in ``truth``."""
    truth_a, pred_a = np.asarray(truth), np.asarray(pred)
    return float(np.mean([np.mean(pred_a[truth_a == c] == c) for c in np.unique(truth_a)]))


@pytest.mark.parametrize("speed", SPEEDS)
def test_live_accuracy_follows_ground_truth(speed):
    """Live states of every modality follow the simulator's ground truth well above chance (1/3)."""
    config = SyntheticConfig(trial_duration_s=TRIAL_S)
    sim = Simulator(
        config, subject=0, speed=speed, duration_s=PLAYBACK_S, source_id_prefix=f"e2e{os.getpid()}x{speed:g}"
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in sim.modalities]
    states: list[dict] = []
    with sim:
        with run_server(create_app(make_settings(attach=attach, stale_after_s=30.0))) as base:
            url = base.replace("http://", "ws://") + "/ws"

            async def collect():
                async with connect(url) as ws:
                    while not sim.wait(0):
                        try:
                            msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        except asyncio.TimeoutError:
                            continue
                        if msg.get("type") == "state":
                            states.append(msg["state"])

            asyncio.run(collect())
    assert sim.error is None
    print(  # noqa: T201
        f"collected {len(states)} states: "
        + str({m: sum(s["modality"] == m for s in states) for m in sim.modalities})
    )
    results = {}
    for m in sim.modalities:
        truth, pred = [], []
        for s in states:
            if s["modality"] != m or s["lsl_time"] is None:
                continue
            end = s["lsl_time"]
            label = sim.label_at(end)
            if label is None or sim.label_at(end - CONTEXT_S) != label:
                continue
            truth.append(label)
            pred.append(s["label"])
        assert len(truth) >= 10, f"{m}: only {len(truth)} usable states"
        results[m] = (_balanced_accuracy(truth, pred), len(truth), len(set(truth)))
    report = ", ".join(f"{m}: {b:.3f} over {n} states, {k} classes" for m, (b, n, k) in results.items())
    print(f"live balanced accuracy (speed x{speed:g}, {PLAYBACK_S:g} s): {report}")  # noqa: T201 (the measured numbers go into the closing note)
    for m, (bacc, _, _) in results.items():
        assert bacc > MIN_BALANCED_ACCURACY, f"{m}: balanced accuracy {bacc:.3f} <= {MIN_BALANCED_ACCURACY}"


def _test_generator_edf() -> str:
    import pyedflib

    return os.path.join(os.path.dirname(pyedflib.__file__), "data", "test_generator.edf")


@pytest.mark.slow
def test_replayed_edf_sinusoids_land_in_their_bands():
    """Replayed over LSL, test_generator.edf's sines have their DE maximal in the expected SEED band."""
    expected = {"sine 1 Hz": "delta", "sine 8.5 Hz": "alpha", "sine 17 Hz": "beta", "sine 50 Hz": "gamma"}
    streams = load_recording(
        _test_generator_edf(), source_id_prefix=f"e2e-edf{os.getpid()}", channels=list(expected)
    )
    (eeg,) = [s for s in streams if not s.is_string]
    assert eeg.sfreq == 200.0 and eeg.units == ("µV",) * len(expected)  # the EDF header's unit
    speed, want_s = 10.0, 12.0
    player = Replayer(streams, speed=speed, chunk_s=0.02)
    with player:
        found = pylsl.resolve_byprop("source_id", eeg.source_id, timeout=5)
        inlet = pylsl.StreamInlet(found[0], max_buflen=60)
        inlet.open_stream(timeout=5)
        chunks, stamps = [], []
        deadline = time.monotonic() + 30
        while len(stamps) < want_s * eeg.sfreq and time.monotonic() < deadline:
            c, t = inlet.pull_chunk(timeout=0.2)
            chunks += c
            stamps += t
        info = inlet.info()
        labels = []
        ch = info.desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
    data = np.asarray(chunks, dtype=float).T
    # Back on the recording's clock (the replay keeps the recording's spacing at any speed).
    rec_t = np.asarray(stamps) - player.start_time
    spec = DESpec(modality="eeg", sfreq=info.nominal_srate(), channels=tuple(labels), window_s=4.0, hop_s=1.0)
    frames = spec.compute(data, rec_t)
    band_names = [b.name for b in spec.bands]
    de = frames.features.reshape(len(frames.features), len(labels), len(band_names)).mean(axis=0)
    got = {c: band_names[int(np.argmax(de[i]))] for i, c in enumerate(labels)}
    print(f"test_generator.edf DE argmax band per channel: {got}")  # noqa: T201 (the measured numbers go into the closing note)
    assert got == expected
