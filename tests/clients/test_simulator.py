"""Tests for clients.simulator with real LSL outlets and inlets on loopback (unique source_ids per test)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
from pylsl.util import LostError

from clients.simulator import Fault, Simulator, StreamSpec, TrialMarker, source_id
from synthetic import SyntheticConfig, generate_trial
from tests.clock import FakeClock

CONFIG = SyntheticConfig(n_subjects=3, n_trials=3, trial_duration_s=2.0)
SUBJECT = 1


def _sim(**kwargs) -> Simulator:
    tag = uuid.uuid4().hex[:12]
    kwargs.setdefault("subject", SUBJECT)
    return Simulator(
        kwargs.pop("config", CONFIG),
        name_prefix=f"M2S-Test-{tag}",
        source_id_prefix=f"m2s-test-{tag}",
        **kwargs,
    )


def _inlet(sim: Simulator, stream: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", sim.source_ids[stream], timeout=3.0)
    assert found, f"the {stream} outlet was not discovered"
    inlet = pylsl.StreamInlet(found[0], max_buflen=30, recover=False)
    inlet.open_stream(timeout=3.0)
    return inlet


def _pull_all(inlets: dict[str, pylsl.StreamInlet], seconds: float) -> dict[str, tuple]:
    """Everything each inlet receives during the same ``seconds`` of wall time.

    Returns, per stream, data (n, n_channels), timestamps (n,) and the local clock at the last
    non-empty pull.
    """
    got: dict[str, tuple[list, list, list]] = {m: ([], [], [0.0]) for m in inlets}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m, inlet in inlets.items():
            chunk, ts = inlet.pull_chunk(timeout=0.0, max_samples=4096)
            if ts:
                got[m][0].append(np.asarray(chunk, dtype=np.float64))
                got[m][1].append(np.asarray(ts))
                got[m][2][0] = pylsl.local_clock()
        time.sleep(0.01)
    for m, (_, stamps, _) in got.items():
        assert stamps, f"no {m} sample arrived"
    return {m: (np.concatenate(d), np.concatenate(t), r[0]) for m, (d, t, r) in got.items()}


def _pull(inlet: pylsl.StreamInlet, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Everything one inlet receives during ``seconds``: data (n, n_channels), timestamps (n,)."""
    data, stamps, _ = _pull_all({"stream": inlet}, seconds)["stream"]
    return data, stamps


def _expected(modality: str, indices: np.ndarray, first_trial: int = CONFIG.n_trials) -> np.ndarray:
    """Independent reference: samples ``indices`` of the concatenated trials, (n, n_channels) as float32."""
    config = CONFIG.model_copy(update={"n_trials": first_trial + 10})
    n = int(round(CONFIG.trial_duration_s * getattr(CONFIG, modality).sfreq))
    trials = {}
    rows = []
    for i in indices:
        k, offset = divmod(int(i), n)
        if k not in trials:
            trials[k] = generate_trial(config, SUBJECT, 0, first_trial + k, modalities=[modality])
        rows.append(trials[k].signals[modality][:, offset])
    return np.asarray(rows).astype(np.float32).astype(np.float64)


def _indices(sim: Simulator, timestamps: np.ndarray, sfreq: float) -> np.ndarray:
    """Sample indices from timestamps; asserts they are exactly ``start_time + i / sfreq`` (any speed)."""
    position = (timestamps - sim.start_time) * sfreq
    indices = np.round(position).astype(np.int64)
    np.testing.assert_allclose(position, indices, atol=1e-6)
    return indices


def test_source_id_format():
    """Source ids are stable strings built from the modality, subject and seed."""
    assert source_id("eeg", subject=3, seed=7) == "m2s-sim-eeg-s3-seed7"
    assert source_id("markers", subject=0, seed=0, prefix="lab") == "lab-markers-s0-seed0"


def test_stream_specs_match_the_generator():
    """The advertised channels, units and rates are the generator's for every modality."""
    sim = _sim(modalities=["eeg", "eye", "ecg", "pps"])
    trial = generate_trial(CONFIG, SUBJECT, 0, 0)
    for m in ("eeg", "eye", "ecg", "pps"):
        spec = sim.streams[m]
        assert spec.channels == trial.channel_names[m]
        assert spec.units == trial.units[m]
        assert spec.sfreq == trial.sfreq[m]
        assert spec.source_id == f"{sim.source_id_prefix}-{m}-s{SUBJECT}-seed0"
    assert sim.streams["markers"] == StreamSpec(
        f"{sim.name_prefix}-Markers",
        "Markers",
        sim.source_ids["markers"],
        0.0,
        ("emotion",),
        ("",),
        ("Marker",),
    )


def test_streams_are_resolvable_with_their_metadata():
    """Every outlet is found by source_id and carries name, type, rate, format and channel metadata."""
    with _sim(modalities=["eeg", "eye", "ecg", "pps"]) as sim:
        for stream, spec in sim.streams.items():
            info = _inlet(sim, stream).info(timeout=3.0)
            assert (info.name(), info.type(), info.source_id()) == (spec.name, spec.type, spec.source_id)
            assert info.nominal_srate() == spec.sfreq
            assert info.channel_count() == len(spec.channels)
            fmt = pylsl.cf_string if stream == "markers" else pylsl.cf_float32
            assert info.channel_format() == fmt
            channel = info.desc().child("channels").child("channel")
            labels, units, types = [], [], []
            while not channel.empty():
                labels.append(channel.child_value("label"))
                units.append(channel.child_value("unit"))
                types.append(channel.child_value("type"))
                channel = channel.next_sibling()
            assert (tuple(labels), tuple(units), tuple(types)) == (
                spec.channels,
                spec.units,
                spec.channel_types,
            )
            node = info.desc().child("m2s_simulator")
            assert node.child_value("subject") == str(SUBJECT)
            assert node.child_value("first_trial") == str(CONFIG.n_trials)


@pytest.mark.slow
def test_data_and_timestamps_equal_the_generator_across_a_trial_boundary():
    """Samples arrive complete, exactly timestamped, near the local clock, equal to the unseen trials' signals."""
    with _sim(modalities=["eeg", "eye", "ecg"]) as sim:
        inlets = {m: _inlet(sim, m) for m in sim.modalities}
        received = _pull_all(inlets, 2.6)
    for m, (data, stamps, received_at) in received.items():
        sfreq = sim.streams[m].sfreq
        indices = _indices(sim, stamps, sfreq)
        assert np.all(np.diff(indices) == 1), f"{m}: samples dropped or reordered"
        assert indices[0] < sfreq * 0.5 and indices[-1] >= 2 * sfreq, (
            f"{m}: the trial boundary was not crossed"
        )
        assert 0 <= received_at - stamps[-1] < 0.5, f"{m}: timestamps are not on the local clock"
        np.testing.assert_array_equal(data, _expected(m, indices))


@pytest.mark.slow
def test_markers_carry_the_true_label_at_each_trial_onset():
    """One JSON marker per trial onset, stamped at the trial's first sample, with the trial's true class."""
    speed = 4.0  # 2-s trials every 0.5 s of wall time
    with _sim(modalities=["ecg"], speed=speed) as sim:
        inlet = _inlet(sim, "markers")
        markers = []
        deadline = time.monotonic() + 2.4
        while time.monotonic() < deadline:
            sample, ts = inlet.pull_sample(timeout=0.1)
            if sample is not None:
                markers.append(TrialMarker.from_json(sample[0], ts))
        timeline = sim.labels_timeline
    assert len(markers) >= 3
    config = CONFIG.model_copy(update={"n_trials": 50})
    for marker in markers:
        played = marker.trial - CONFIG.n_trials
        assert played >= 0
        assert marker.lsl_time == pytest.approx(sim.start_time + played * 2.0, abs=1e-9)
        assert marker.label == generate_trial(config, SUBJECT, 0, marker.trial, modalities=["ecg"]).class_name
        assert marker in timeline
    assert [m.trial for m in timeline] == list(range(CONFIG.n_trials, CONFIG.n_trials + len(timeline)))
    assert len({m.label for m in timeline}) >= 2, "labels never changed"
    second = timeline[1]
    assert sim.label_at(second.lsl_time) == second.label
    assert sim.label_at(second.lsl_time - 1e-3) == timeline[0].label
    assert sim.label_at(timeline[0].lsl_time - 1.0) is None


def test_speed_keeps_the_nominal_spacing_and_runs_ahead_of_the_clock():
    """At speed 4, sample i is still stamped start_time + i / sfreq, pushed 4x faster than real time."""
    with _sim(modalities=["ecg"], speed=4.0) as sim:
        inlet = _inlet(sim, "ecg")
        assert inlet.info(timeout=3.0).nominal_srate() == 256.0
        data, stamps = _pull(inlet, 0.5)
        pulled_at = pylsl.local_clock()
    indices = _indices(sim, stamps, 256.0)  # asserts the nominal spacing exactly
    assert np.all(np.diff(indices) == 1)
    # Pushed at 4x: more playback than wall time has passed (timestamps ahead of the clock).
    assert stamps[-1] - sim.start_time > 1.5 * (pulled_at - sim.start_time)
    np.testing.assert_array_equal(data, _expected("ecg", indices))


@pytest.mark.slow
def test_pause_fault_leaves_a_timestamp_gap():
    """During a pause nothing is sent: the inlet sees a gap in sample times, then the timeline goes on."""
    with _sim(modalities=["eeg"], faults=[Fault("pause", 0.8, 0.5)]) as sim:
        data, stamps = _pull(_inlet(sim, "eeg"), 1.8)
    indices = _indices(sim, stamps, 200.0)
    assert not np.any((indices >= 160) & (indices < 260))
    steps = np.diff(indices)
    assert steps.max() == 101 and np.sum(steps != 1) == 1, "exactly one gap of 0.5 s"
    assert indices[0] < 160 and indices[-1] > 280
    np.testing.assert_array_equal(data, _expected("eeg", indices))


@pytest.mark.slow
def test_dropout_fault_recreates_the_outlet_with_the_same_source_id():
    """A drop-out ends the inlet's stream; a new outlet with the same source_id (new uid) then resumes."""
    with _sim(modalities=["ecg"], faults=[Fault("dropout", 0.8, 0.6)]) as sim:
        inlet = _inlet(sim, "ecg")
        uid = inlet.info().uid()
        before = []
        with pytest.raises(LostError):
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                _, ts = inlet.pull_chunk(timeout=0.05)
                before.extend(ts)
        deadline, found = time.monotonic() + 3.0, []
        while time.monotonic() < deadline and not found:
            found = [
                s
                for s in pylsl.resolve_byprop("source_id", sim.source_ids["ecg"], timeout=0.3)
                if s.uid() != uid
            ]
        assert found, "no new outlet with the same source_id"
        inlet = pylsl.StreamInlet(found[0], recover=False)
        inlet.open_stream(timeout=3.0)
        data, stamps = _pull(inlet, 0.5)
    assert before and _indices(sim, np.asarray(before), 256.0).max() < 0.8 * 256
    indices = _indices(sim, stamps, 256.0)
    assert indices.min() >= 1.4 * 256 and np.all(np.diff(indices) == 1)
    np.testing.assert_array_equal(data, _expected("ecg", indices))


@pytest.mark.slow
def test_nan_fault_blanks_eeg_and_ecg_but_not_gaze():
    """A NaN burst makes every EEG and ECG sample in it NaN and leaves the rest (and gaze) untouched."""
    with _sim(faults=[Fault("nan", 0.8, 0.3)]) as sim:
        inlets = {m: _inlet(sim, m) for m in sim.modalities}
        received = _pull_all(inlets, 1.5)
    for m, (data, stamps, _) in received.items():
        sfreq = sim.streams[m].sfreq
        indices = _indices(sim, stamps, sfreq)
        burst = (indices / sfreq >= 0.8) & (indices / sfreq < 1.1)
        assert burst.sum() >= 0.3 * sfreq - 1
        expected = _expected(m, indices)
        if m in ("eeg", "ecg"):
            assert np.isnan(data[burst]).all()
            expected[burst] = np.nan
        if m in ("eeg", "ecg"):
            assert np.isfinite(data[~burst]).all()
        np.testing.assert_array_equal(data, expected)


def test_duration_stops_playback_after_exactly_that_many_samples():
    """With duration_s the simulator ends by itself after floor(duration · sfreq) samples per stream."""
    clock = FakeClock()
    sim = _sim(duration_s=0.5, speed=2.0, clock=clock, sleep=clock.sleep).start()
    try:
        assert sim.wait(5.0)
        assert not sim.running and sim.error is None
        assert sim.n_pushed == {"eeg": 100, "eye": 60, "ecg": 128}
        assert [m.trial for m in sim.labels_timeline] == [CONFIG.n_trials]
        assert clock() - sim.start_time == pytest.approx(0.25)  # 0.5 playback s at x2
    finally:
        sim.stop()


def test_chunks_are_pushed_at_their_due_times_and_a_late_wake_up_is_caught_up(caplog):
    """Chunk k is due at start + k · chunk_s / speed; after a late wake-up the overdue chunks go at once.

    Fake time: the third wait oversleeps by 0.1 s (four chunks' worth); those chunks do not wait,
    the schedule ends exactly duration / speed after the start, and every sample is sent.
    """
    clock = FakeClock()
    clock.late_s = [0.0, 0.0, 0.1]
    sim = _sim(modalities=["ecg"], duration_s=1.0, speed=2.0, chunk_s=0.05, clock=clock, sleep=clock.sleep)
    with sim:
        assert sim.wait(5.0) and sim.error is None
    waits = [s for s in clock.sleeps if s > 1e-9]
    assert waits == pytest.approx([0.025] * 16)  # 20 chunks, 4 of them overdue after the late wake-up
    assert clock() - sim.start_time == pytest.approx(0.5)  # the delay did not accumulate
    assert sim.n_pushed == {"ecg": 256}
    assert sim.labels_timeline[0].lsl_time == sim.start_time
    assert "behind schedule" not in caplog.text


def test_falling_far_behind_is_logged_once_and_caught_up(caplog):
    """A wake-up more than 1 s late logs one warning; the chunks then catch up and no sample is lost."""
    clock = FakeClock()
    clock.late_s = [1.5]
    sim = _sim(modalities=["ecg"], duration_s=2.0, chunk_s=0.05, clock=clock, sleep=clock.sleep)
    with sim:
        assert sim.wait(5.0) and sim.error is None
    assert caplog.text.count("behind schedule") == 1
    assert clock() - sim.start_time == pytest.approx(2.0)
    assert sim.n_pushed == {"ecg": 512}


def test_first_trial_can_be_chosen():
    """first_trial picks where playback starts (default: the config's n_trials, unseen in training)."""
    assert _sim().first_trial == CONFIG.n_trials
    clock = FakeClock()
    sim = _sim(first_trial=1, duration_s=0.1, clock=clock, sleep=clock.sleep).start()
    assert sim.wait(5.0)
    sim.stop()
    expected = generate_trial(CONFIG, SUBJECT, 0, 1, modalities=["eeg"]).class_name
    assert sim.labels_timeline[0].trial == 1 and sim.labels_timeline[0].label == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"config": "x"}, TypeError, "config must be an instance of SyntheticConfig"),
        ({"subject": 3}, ValueError, r"subject must be in \[0, 3\)"),
        ({"subject": 1.5}, TypeError, "subject must be an int"),
        ({"modalities": []}, ValueError, "modalities is empty"),
        ({"modalities": ["eeg", "emg"]}, ValueError, "Invalid value for the 'modalities' parameter"),
        ({"first_trial": -1}, ValueError, "first_trial must be >= 0"),
        ({"speed": 0}, ValueError, "speed must be > 0"),
        ({"speed": 5000}, ValueError, "speed must be <= 1000"),
        ({"chunk_s": 0.001}, ValueError, "chunk_s must be >= 0.005"),
        ({"duration_s": -1}, ValueError, "duration_s must be >= 0"),
        ({"faults": Fault("pause", 1, 1)}, TypeError, "faults must be an instance of list, tuple"),
        ({"faults": ["pause"]}, TypeError, "each fault must be an instance of Fault"),
        ({"faults": [Fault("nan", 5, 1)], "duration_s": 5}, ValueError, "nan fault at 5 s never happens"),
        ({"faults": [Fault("dropout", 1, 0.01)]}, ValueError, "a dropout must last at least one chunk"),
        ({"name_prefix": "M2S Sim"}, ValueError, "name_prefix must be a non-empty string without spaces"),
    ],
)
def test_constructor_validates_arguments(kwargs, error, match):
    """Every bad argument raises with a message naming it."""
    with pytest.raises(error, match=match):
        Simulator(kwargs.pop("config", CONFIG), **kwargs)


@pytest.mark.parametrize(
    ("kind", "text", "match"),
    [
        ("pause", "30", r"--pause '30' is not AT:SECONDS; .* e\.g\. --pause 30:5"),
        ("nan", "a:b", "--nan 'a:b' is not AT:SECONDS"),
        ("dropout", "-1:2", "dropout fault start must be >= 0"),
        ("pause", "3:0", "pause fault duration must be > 0"),
        ("pause", "3:inf", "pause fault duration must be finite"),
        ("crash", "3:1", "Invalid value for the 'kind' parameter"),
    ],
)
def test_fault_parse_rejects_bad_values(kind, text, match):
    """AT:SECONDS must be two numbers in range, for a known fault kind."""
    with pytest.raises(ValueError, match=match):
        Fault.parse(kind, text)


def test_fault_parse_reads_start_and_length():
    """'30:5.5' is a fault at 30 s for 5.5 s."""
    fault = Fault.parse("dropout", "30:5.5")
    assert fault == Fault("dropout", 30.0, 5.5) and fault.end_s == 35.5


def test_calibration_phase_holds_k_trials_per_class_then_test_trials():
    """calibration_trials=K: the first trials (the shortest run with K of each class) are marked
    'calibration', the rest 'test'; the markers on the stream say so; without K no phase is sent."""
    from synthetic import trial_labels

    config = CONFIG.model_copy(update={"n_trials": 40})
    for first_trial, k in ((CONFIG.n_trials, 1), (CONFIG.n_trials, 2), (4, 2)):
        sim = _sim(first_trial=first_trial, calibration_trials=k)
        labels = trial_labels(config, SUBJECT, 0)[first_trial : first_trial + sim.n_calibration_played]
        counts = np.bincount(labels, minlength=CONFIG.n_classes)
        assert counts.min() == k  # K of each class ...
        assert np.bincount(labels[:-1], minlength=CONFIG.n_classes).min() == k - 1  # ... and no trial more
        assert [sim.phase_of(i) for i in range(sim.n_calibration_played + 2)] == ["calibration"] * len(
            labels
        ) + ["test"] * 2
    sim = _sim(modalities=["ecg"], calibration_trials=1, duration_s=6 * CONFIG.trial_duration_s, speed=6.0)
    with sim:
        inlet = _inlet(sim, "markers")  # 2-s trials every 1/3 s of wall time: the first may pass before
        received = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(received) < 6:
            sample, ts = inlet.pull_sample(timeout=0.1)
            if sample is not None:
                received.append(TrialMarker.from_json(sample[0], ts))
    phases = [m.phase for m in sim.labels_timeline]
    n_cal = sim.n_calibration_played
    assert phases == ["calibration"] * n_cal + ["test"] * (6 - n_cal)
    assert len(received) >= 4 and received == list(sim.labels_timeline[-len(received) :])
    assert _sim().phase_of(0) is None and TrialMarker(0.0, 1, "x").to_json() == '{"trial": 1, "label": "x"}'
    with pytest.raises(ValueError, match="calibration_trials must be >= 0"):
        _sim(calibration_trials=-1)


def test_trial_marker_round_trips_and_rejects_other_strings():
    """Markers are JSON {"trial", "label"} with an optional phase; anything else is refused with the expected
    format."""
    marker = TrialMarker(12.5, 17, "positive")
    assert TrialMarker.from_json(marker.to_json(), 12.5) == marker
    calibration = TrialMarker(1.0, 2, "neutral", "calibration")
    assert TrialMarker.from_json(calibration.to_json(), 1.0) == calibration
    for text in ("positive", '{"trial": "1", "label": "x"}', '{"trial": 1}', '{"trial": true, "label": "x"}',
                 '{"trial": 1, "label": "x", "phase": "warm-up"}', "[1, 2]"):  # fmt: skip
        with pytest.raises(ValueError, match="is not a simulator marker"):
            TrialMarker.from_json(text, 0.0)


def test_wrong_state_errors():
    """wait() before start() and a second start() raise RuntimeError saying what to do."""
    sim = _sim(duration_s=0.05)
    with pytest.raises(RuntimeError, match="call start"):
        sim.wait(0)
    sim.start()
    try:
        with pytest.raises(RuntimeError, match="create a new Simulator"):
            sim.start()
    finally:
        sim.stop()
    sim.stop()  # idempotent
    assert not sim.running


def test_wait_for_consumers_lets_a_late_inlet_see_the_first_onset(caplog):
    """With wait_for_consumers_s, playback waits for an inlet on every outlet, so the first trial's marker
    reaches an inlet opened after start(); with nobody listening it starts after the wait, with a warning."""
    sim = _sim(modalities=["ecg"], calibration_trials=1, duration_s=2 * CONFIG.trial_duration_s, speed=6.0,
               wait_for_consumers_s=20.0)  # fmt: skip
    starter = threading.Thread(target=sim.start)
    starter.start()  # blocks until the inlets below connect
    try:
        deadline = time.monotonic() + 10
        while sim._marker_outlet is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # later than a sim without the wait would have pushed its first marker
        inlets = {name: _inlet(sim, name) for name in ("markers", "ecg")}
        sample, ts = inlets["markers"].pull_sample(timeout=5.0)
        assert sample is not None
        assert TrialMarker.from_json(sample[0], ts) == sim.labels_timeline[0]
    finally:
        starter.join(10)
        sim.stop()
    lone = _sim(modalities=["ecg"], duration_s=0.1, wait_for_consumers_s=0.2)
    with caplog.at_level(logging.WARNING, logger="clients.simulator"):
        lone.start()
        lone.stop()
    assert "no inlet on ecg, markers after 0.2 s; starting anyway" in caplog.text
    with pytest.raises(ValueError, match="wait_for_consumers_s"):
        _sim(wait_for_consumers_s=-1)
