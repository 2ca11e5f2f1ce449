"""End-to-end: simulator/recording -> LSL -> the real service (or the live feature path) -> results.

1. ``test_live_accuracy_follows_ground_truth``: the LSL simulator (subject 0, a person the demo
   bundle never saw: it is a population model of subjects 3-14) streams EEG, gaze and ECG; the real
   app (``create_app`` under uvicorn, demo bundle, its population statistics: no calibration)
   attaches them by source_id; a real ``websockets`` client on ``/ws`` collects the states; each
   state's label is compared with the simulator's ground truth and balanced accuracy is computed per
   modality.
2. ``test_replayed_edf_sinusoids_land_in_their_bands``: pyedflib's ``test_generator.edf`` (a real EDF
   shipped on PyPI) is played by ``clients.replay`` over LSL, pulled back with an inlet, and run
   through ``DESpec`` (the streaming extractor the service uses): each sinusoid's DE peaks in its band.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import numpy as np
import pylsl
import pytest

from clients.replay import Replayer, load_recording
from clients.simulator import Simulator
from service.app import create_app
from service.config import AttachRequest
from signals.spec import DESpec
from synthetic import SyntheticConfig
from tests.service.conftest import collect_states, make_settings, run_server

logger = logging.getLogger(__name__)

# The simulator keeps the nominal sample spacing at any speed (clients.simulator, "Timing"), so the
# service computes the same windows at 8x as in real time (x4 until 2026-12-03; x8 keeps the suite within its
# 15 minutes, as the SDK and CLI calibration tests); the real-time run is kept as a slow test and plays the
# first four of the same trials.
SPEEDS = [(8.0, 240.0), pytest.param(1.0, 120.0, marks=pytest.mark.slow)]  # (speed, playback seconds)
TRIAL_S = 30.0
# Context a state may depend on, in playback (= LSL) seconds: the longest feature window (eye: 10 s) plus
# the model's context; states whose span straddles a trial change are skipped (conservative).
CONTEXT_S = 12.0
# Chance is 1/3 (three balanced classes). The demo bundle has never seen subject 0 and serves it with the
# population's statistics (no calibration). Measured on 2026-12-02 (2 shared cores), two runs each: x4, 240 s
# (8 trials) EEG 0.833 / 0.741 (72 states), EYE 0.439 / 0.415 (68), ECG 0.827 / 0.852 (71); x8, 240 s (2026-12-03,
# twice passed) EEG 0.916 (71), EYE 0.412 (67), ECG 0.815 (70); 120 s (4 trials,
# x4 and x1) EEG 0.704 / 0.815, EYE 0.452 / 0.467, ECG 1.000 / 1.000; 15 trials (450 s, x4) EEG 0.939,
# EYE 0.615, ECG 0.887 (docs/guides/reproduce-paper.md, "What to expect before calibration"). The eye transfers least across people,
# so its bar only asks for better than a constant answer (exactly 1/3); EEG, ECG and the mean over the three
# keep a wide margin for run-to-run timing noise while a chain that ignores the signal stays near 1/3.
MIN_BALANCED_ACCURACY = {"eeg": 0.55, "eye": 0.35, "ecg": 0.55}
MIN_MEAN_BALANCED_ACCURACY = 0.55  # measured means: 0.700 and 0.669 (240 s), 0.719 and 0.761 (120 s)


def _balanced_accuracy(truth: list[str], pred: list[str]) -> float:
    """Mean per-class recall over the classes present in ``truth``."""
    truth_a, pred_a = np.asarray(truth), np.asarray(pred)
    return float(np.mean([np.mean(pred_a[truth_a == c] == c) for c in np.unique(truth_a)]))


@pytest.mark.parametrize(("speed", "playback_s"), SPEEDS)
def test_live_accuracy_follows_ground_truth(speed, playback_s):
    """Live states of a person the demo bundle never saw follow the simulator's ground truth above chance (1/3)."""
    config = SyntheticConfig(trial_duration_s=TRIAL_S)
    sim = Simulator(
        config, subject=0, speed=speed, duration_s=playback_s, source_id_prefix=f"e2e{os.getpid()}x{speed:g}"
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in sim.modalities]
    states: list[dict] = []
    with sim:
        with run_server(create_app(make_settings(attach=attach, stale_after_s=30.0))) as base:
            asyncio.run(collect_states(base, states, lambda: sim.wait(0)))
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
    print(f"live balanced accuracy (speed x{speed:g}, {playback_s:g} s): {report}")  # noqa: T201 (the measured numbers go into the closing note)
    for m, (bacc, _, _) in results.items():
        bar = MIN_BALANCED_ACCURACY[m]
        assert bacc > bar, f"{m}: balanced accuracy {bacc:.3f} <= {bar}"
    # Together the modalities must be clearly better than chance, whatever one trial set favours.
    mean = float(np.mean([b for b, _, _ in results.values()]))
    assert mean > MIN_MEAN_BALANCED_ACCURACY, (
        f"mean balanced accuracy {mean:.3f} <= {MIN_MEAN_BALANCED_ACCURACY}"
    )


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
