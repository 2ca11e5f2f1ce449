"""Tests for clients.replay and `m2s replay`: recordings played back over real LSL outlets."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pylsl
import pytest

from clients.cli import main
from clients.replay import Replayer, load_recording
from tests.clock import FakeClock
from tests.fixtures.recordings import make_recording, write_edf, write_fif, write_xdf

SPEED = 20.0


def _inlet(source_id: str) -> pylsl.StreamInlet:
    """An open inlet on the stream with ``source_id``."""
    found = pylsl.resolve_byprop("source_id", source_id, timeout=5)
    assert found, f"stream {source_id} not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=5)
    return inlet


def _drain(inlet: pylsl.StreamInlet) -> tuple[list, np.ndarray]:
    """Everything the inlet holds, until a pull comes back empty."""
    data, stamps = [], []
    while True:
        chunk, ts = inlet.pull_chunk(timeout=0.3)
        if not ts:
            return data, np.asarray(stamps)
        data += chunk
        stamps += ts


def test_xdf_round_trip(tmp_path):
    """An XDF file comes back over LSL with its samples, labels, units, rates and the recording's own spacing.

    Pushed SPEED times faster than real time, the samples keep their recorded relative times (the
    stamps run ahead of the wall clock), so a consumer's gap rule sees the file's sample spacing.
    """
    rec = make_recording(duration_s=6.0, trials=((1.0, 3.0, "happy"),))
    path = write_xdf(tmp_path / "rec.xdf", rec, t0=500.0)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    streams = load_recording(path, source_id_prefix=prefix)
    assert [s.name for s in streams] == ["EEG", "ECG", "Markers"]
    assert [s.sfreq for s in streams] == [rec.sfreq, 2 * rec.sfreq, 0.0]
    player = Replayer(streams, speed=SPEED, chunk_s=0.02)
    with player:
        inlets = {k: _inlet(f"{prefix}-{k}") for k in ("eeg", "ecg", "markers")}
        assert player.wait(10)
        eeg, t_eeg = _drain(inlets["eeg"])
        ecg, t_ecg = _drain(inlets["ecg"])
        marks, t_marks = _drain(inlets["markers"])
        desc = inlets["eeg"].info().desc().child("channels").child("channel")
        label, unit = desc.child_value("label"), desc.child_value("unit")
        rate = inlets["ecg"].info().nominal_srate()
    start = player.start_time
    # Samples pushed before an inlet connected are missed: locate each received one by its timestamp.
    idx = np.round((t_eeg - start) * rec.sfreq).astype(int)
    assert len(idx) > 0.75 * rec.eeg.shape[1] and idx[-1] == rec.eeg.shape[1] - 1
    np.testing.assert_allclose(t_eeg, start + idx / rec.sfreq, atol=1e-6)
    assert t_eeg[-1] - start > 5.9 > 6.0 / SPEED + 2  # 6 s of stamps, pushed in about 0.3 s
    np.testing.assert_allclose(np.asarray(eeg), rec.eeg.T[idx], rtol=1e-6, atol=1e-5)
    assert np.all(np.diff(idx) == 1)
    jdx = np.round((t_ecg - start) * 2 * rec.sfreq).astype(int)
    np.testing.assert_allclose(np.asarray(ecg)[:, 0], np.repeat(rec.ecg[0], 2)[jdx], rtol=1e-6, atol=1e-6)
    assert [x[0] for x in marks] == [t for _, t in rec.markers]
    expected = start + np.array([t for t, _ in rec.markers]) + 0.5 / rec.sfreq
    np.testing.assert_allclose(t_marks, expected, atol=1e-6)
    assert (label, unit, rate) == ("Fz", "microvolts", 2 * rec.sfreq)


def test_edf_and_fif_units(tmp_path):
    """EDF sends each channel in its header unit (µV, mV); FIF volts go as µV (EEG) and mV (ECG); annotations are markers.

    Changed with signals.recording: the EDF's mV ECG lead, typed EEG by MNE, was sent in µV (x1000).
    """
    rec = make_recording(duration_s=4.0, trials=((1.0, 2.0, "sad"),))
    cases = (
        (write_edf(tmp_path / "r.edf", rec), "EEG", ("µV",) * 3 + ("mV",), "m2s-replay-r-eeg"),
        (
            write_fif(tmp_path / "r_raw.fif", rec),
            "Mixed",
            ("microvolts",) * 3 + ("millivolts",),
            "m2s-replay-r-raw-mixed",
        ),
    )
    ecg_factor = 1.0
    for path, stype, units, sid in cases:
        streams = load_recording(path)
        data = streams[0]
        assert (data.type, data.source_id, data.sfreq) == (stype, sid, rec.sfreq)
        assert data.channels == ("Fz", "Cz", "Pz", "ECG")
        assert data.units == units
        np.testing.assert_allclose(data.data[:, :3], rec.eeg.T, atol=0.02)  # 16-bit EDF quantisation
        np.testing.assert_allclose(data.data[:, 3], rec.ecg[0] * ecg_factor, atol=2e-4 * ecg_factor)
        assert streams[-1].is_string and streams[-1].data == ["trial_start:sad", "trial_end"]
        np.testing.assert_allclose(streams[-1].timestamps, [1.0, 2.0], atol=1 / rec.sfreq)


def test_channels_and_names(tmp_path):
    """--channels keeps the named channels; names get the prefix; source ids are stable per file."""
    path = write_xdf(tmp_path / "My Rec.xdf", make_recording(duration_s=2.0))
    streams = load_recording(path, name_prefix="P-", channels=["Cz"])
    assert [s.name for s in streams] == ["P-EEG", "P-Markers"]
    assert streams[0].channels == ("Cz",) and streams[0].data.shape[1] == 1
    assert streams[0].source_id == "m2s-replay-my-rec-eeg"
    assert load_recording(path)[0].source_id == streams[0].source_id


def test_loop_continues_timestamps(tmp_path):
    """With loop=True the file starts over one sample period after its end, and keeps going until stopped."""
    rec = make_recording(duration_s=1.0, trials=())
    streams = load_recording(write_xdf(tmp_path / "r.xdf", rec), channels=["Fz"])
    clock = FakeClock()
    clock.stop_at = clock() + 0.1  # 0.1 s at x50: 5 passes of the 1-s file, in fake time
    player = Replayer(streams, speed=50.0, loop=True, chunk_s=0.01, clock=clock, sleep=clock.sleep)
    with player:
        assert player.wait(5)
    assert player.period_s == pytest.approx(1.0)
    assert 4 * rec.eeg.shape[1] < player.n_pushed["EEG"] <= 5 * rec.eeg.shape[1]
    assert player.error is None


def test_pushes_are_paced_by_due_times_and_a_late_wake_up_is_caught_up(tmp_path):
    """Each push waits until start + position / speed; after a late wake-up the overdue pushes go at once.

    Fake time: the third wait oversleeps by 0.1 s (four pushes' worth at 0.05 s per push, x2); the
    next pushes do not wait, and playback still ends exactly period / speed after the start.
    """
    rec = make_recording(duration_s=1.0, trials=())
    streams = load_recording(write_xdf(tmp_path / "r.xdf", rec), channels=["Fz"])
    clock = FakeClock()
    clock.late_s = [0.0, 0.0, 0.1]
    player = Replayer(streams, speed=2.0, chunk_s=0.05, clock=clock, sleep=clock.sleep)
    with player:
        assert player.wait(5)
    waits = [s for s in clock.sleeps if s > 1e-9]
    assert waits == pytest.approx([0.025] * 16)  # 20 pushes, 4 of them overdue after the late wake-up
    assert clock() - player.start_time == pytest.approx(player.period_s / 2.0)  # no accumulated delay
    assert player.n_pushed["EEG"] == rec.eeg.shape[1] and player.error is None


def test_errors(tmp_path):
    """Unknown extension, missing file, unreadable file, unknown channel and bad speed are clear errors."""
    with pytest.raises(ValueError, match="cannot replay files with extension '.txt'"):
        load_recording(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recording(tmp_path / "missing.edf")
    (tmp_path / "bad.edf").write_bytes(b"not an edf")
    with pytest.raises(ValueError, match="could not be read as EDF by MNE"):
        load_recording(tmp_path / "bad.edf")
    (tmp_path / "bad.xdf").write_bytes(b"nope")
    with pytest.raises(ValueError, match="could not be read as XDF"):
        load_recording(tmp_path / "bad.xdf")
    path = write_xdf(tmp_path / "r.xdf", make_recording(duration_s=2.0))
    with pytest.raises(ValueError, match="does not have"):
        load_recording(path, channels=["Oz"])
    with pytest.raises(ValueError, match="speed must be <= 1000"):
        Replayer(load_recording(path), speed=5000)
    with pytest.raises(TypeError, match="non-empty sequence of ReplayStream"):
        Replayer([])


def test_cli_errors_exit_2(tmp_path, capsys):
    """`m2s replay` reports bad files and options on stderr with exit status 2."""
    assert main(["replay", str(tmp_path / "a.txt")]) == 2
    assert "cannot replay files with extension" in capsys.readouterr().err
    path = write_xdf(tmp_path / "r.xdf", make_recording(duration_s=2.0))
    assert main(["replay", str(path), "--speed", "0"]) == 2
    assert "--speed must be in" in capsys.readouterr().err


def test_cli_plays_file(tmp_path, capsys):
    """`m2s replay` plays a short file to the end and lists its streams."""
    path = write_xdf(tmp_path / "r.xdf", make_recording(duration_s=2.0))
    assert main(["replay", str(path), "--speed", "100", "--source-id", f"t-{uuid.uuid4().hex[:6]}"]) == 0
    out = capsys.readouterr().out
    assert "EEG" in out and "ECG" in out and "Markers" in out and "irregular" in out


@pytest.mark.slow
def test_replay_faster_than_real_time_feeds_the_service(tmp_path):
    """A mixed-rate EDF replayed at x4 into the real service yields EEG and ECG states.

    The file has 62 EEG channels at 200 Hz (labels ``Fp1``-style, the bundle says ``FP1``) and two
    ECG leads at 256 Hz, the demo bundle's inputs, in one EDF: the service accepts both outlets
    (rate, channels, units) at the header rates the loader trains at. Before, the replay stamped
    samples 1 / (4 sfreq) apart and the service's dejitter saw gaps everywhere: no state at x4.
    """
    import asyncio

    from service.app import create_app
    from service.config import AttachRequest
    from tests.fixtures.recordings import write_synthetic_edf
    from tests.service.conftest import collect_states, make_settings, run_server

    speed, duration_s = 4.0, 30.0
    path = write_synthetic_edf(tmp_path / "session.edf", duration_s=duration_s)
    prefix = f"test-speed-{uuid.uuid4().hex[:8]}"
    streams = load_recording(path, source_id_prefix=prefix)
    sids = {"eeg": f"{prefix}-eeg-200hz", "ecg": f"{prefix}-eeg-256hz"}
    assert {s.source_id: s.sfreq for s in streams} == {sids["eeg"]: 200.0, sids["ecg"]: 256.0}
    attach = [AttachRequest(modality=m, source_id=sid) for m, sid in sids.items()]
    states: list[dict] = []
    app = create_app(make_settings(attach=attach, stale_after_s=5.0, resolve_timeout_s=1.0))
    with run_server(app) as base:
        player = Replayer(streams, speed=speed, chunk_s=0.02)
        with player:
            asyncio.run(collect_states(base, states, lambda: player.wait(0)))
            listed = {s["modality"]: s for s in httpx.get(f"{base}/streams", timeout=10).json()["data"]}
    assert player.error is None
    counts = {m: sum(s["modality"] == m for s in states) for m in sids}
    print(f"states from a x{speed:g} replay of {duration_s:g} s: {counts}")  # noqa: T201
    assert counts["eeg"] >= 3 and counts["ecg"] >= 3, counts
    assert {m: (listed[m]["sfreq"], listed[m]["last_error"]) for m in sids} == {
        "eeg": (200.0, None),
        "ecg": (256.0, None),
    }
    for s in states:  # window ends map back onto the file's sample grid; stamps run ahead of the clock
        rec_t = s["lsl_time"] - player.start_time
        sfreq = 200.0 if s["modality"] == "eeg" else 256.0
        assert 0 < rec_t <= duration_s and abs(rec_t * sfreq - round(rec_t * sfreq)) < 0.05
    assert min(s["data_age_s"] for s in states) < 0
