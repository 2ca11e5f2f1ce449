"""signals.recording: XDF/EDF/BDF/FIF fixtures written in their native formats, read back as streams and markers."""

from __future__ import annotations

import numpy as np
import pytest

from signals.recording import Markers, Recording, Stream, read_recording, recording_extension
from signals.units import unit_scale
from signals.windowing import segment_breaks
from synthetic import SyntheticConfig, generate_trial
from tests.fixtures.recordings import (
    XdfStream,
    make_recording,
    write_bdf,
    write_edf,
    write_fif,
    write_synthetic_edf,
    write_xdf,
    write_xdf_streams,
)
from tests.no_torch import run_without


@pytest.fixture(scope="module")
def rec():
    return make_recording(duration_s=8.0, trials=((2.0, 6.0, "happy"),))


@pytest.mark.parametrize("kind", ["edf", "bdf"])
def test_edf_bdf_come_back_in_their_header_units(tmp_path, rec, kind):
    """EDF/BDF samples come back in the header's physical dimension (µV, mV), timestamps k / sfreq."""
    path = (write_edf if kind == "edf" else write_bdf)(tmp_path / f"r.{kind}", rec)
    r = read_recording(path)
    (s,) = r.streams
    assert (s.name, s.type, s.sfreq, s.channels) == ("EEG", "EEG", rec.sfreq, ("Fz", "Cz", "Pz", "ECG"))
    assert [unit_scale(u, "uV") for u in s.units] == pytest.approx([1.0, 1.0, 1.0, 1e3])  # µV, µV, µV, mV
    lsb = 1000 / 2 ** (16 if kind == "edf" else 24)  # ±500 µV range
    np.testing.assert_allclose(s.data[:3], rec.eeg, atol=lsb)
    np.testing.assert_allclose(s.data[3], rec.ecg[0], atol=10 / 2**15)
    np.testing.assert_array_equal(s.timestamps, np.arange(s.n_times) / rec.sfreq)
    assert r.marker_stream().sorted() == [(2.0, "trial_start:happy"), (6.0, "trial_end")]


def test_fif_volts_come_back_in_the_unit_of_their_type(tmp_path, rec):
    """FIF stores volts: EEG comes back in microvolts, ECG in millivolts (one Mixed stream)."""
    (s,) = read_recording(write_fif(tmp_path / "r_raw.fif", rec)).streams
    assert (s.type, s.units) == ("Mixed", ("microvolts",) * 3 + ("millivolts",))
    assert s.channel_types == ("EEG", "EEG", "EEG", "ECG")
    np.testing.assert_allclose(s.data[:3], rec.eeg, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s.data[3], rec.ecg[0], rtol=1e-6, atol=1e-9)


def test_xdf_streams_markers_and_header(tmp_path, rec):
    """XDF: one Stream per numeric stream with header metadata, string streams as Markers, LSL clock kept."""
    r = read_recording(write_xdf(tmp_path / "r.xdf", rec, t0=500.0))
    eeg, ecg = r.streams
    assert (eeg.name, eeg.type, eeg.source_id, eeg.channel_format) == ("EEG", "EEG", "EEG", "double64")
    assert (eeg.units, ecg.units, ecg.sfreq) == (("microvolts",) * 3, ("millivolts",), 2 * rec.sfreq)
    np.testing.assert_array_equal(eeg.data, rec.eeg)
    np.testing.assert_allclose(eeg.timestamps, 500.0 + rec.times, rtol=0, atol=1e-9)
    markers = r.marker_stream("Markers")
    np.testing.assert_allclose(markers.times, [500.0 + t + 0.5 / rec.sfreq for t, _ in rec.markers])
    assert markers.texts == ("trial_start:happy", "trial_end")


def test_mixed_rate_edf_gives_one_stream_per_header_rate(tmp_path):
    """A 200-Hz EEG + 256-Hz ECG EDF comes back as two streams at those rates, samples as written (to the LSB)."""
    path = write_synthetic_edf(tmp_path / "mixed.edf", duration_s=6.0)
    trial = generate_trial(SyntheticConfig(trial_duration_s=6.0), 0, 0, 0, modalities=("eeg", "ecg"))
    r = read_recording(path)
    assert [(s.name, s.sfreq, s.n_channels, s.n_times) for s in r.streams] == [
        ("EEG-256Hz", 256.0, 2, 6 * 256),
        ("EEG-200Hz", 200.0, 62, 6 * 200),
    ]  # MNE types every EDF signal as EEG
    ecg, eeg = r.streams
    # MNE read everything at 256 Hz; the inverse FFT resampling gives back the header's samples.
    np.testing.assert_allclose(eeg.data, trial.signals["eeg"], atol=2000 / 2**16)
    np.testing.assert_allclose(ecg.data, trial.signals["ecg"], atol=20 / 2**16)
    np.testing.assert_array_equal(eeg.timestamps, np.arange(1200) / 200.0)


def test_xdf_timestamps_follow_the_gap_rule(tmp_path):
    """Jittered XDF stamps come back regular, with exactly the gaps segment_breaks finds; None keeps them raw."""
    fs, rng = 100.0, np.random.default_rng(0)
    true = 50.0 + np.arange(1000) / fs
    true[400:] += 2 / fs  # two lost samples
    true[700:] += 3.0  # a 3-s pause
    raw = true + rng.uniform(-1e-3, 1e-3, true.size)
    x = rng.standard_normal((1000, 2))
    path = write_xdf_streams(tmp_path / "j.xdf", [XdfStream("EEG", "EEG", fs, raw, x, ("A", "B"), "uV")])
    s = read_recording(path, jitter_s=0).stream("EEG")  # the strict rule: every lost sample is a gap
    assert np.flatnonzero(segment_breaks(s.timestamps, fs, 1.5)).tolist() == [0, 400, 700]
    inside = np.delete(np.diff(s.timestamps), [399, 699])
    np.testing.assert_allclose(inside, 1 / fs, rtol=0, atol=2e-4)  # anchor moves at chunk boundaries
    assert np.max(np.abs(s.timestamps - true)) < 2e-3
    bridged = read_recording(path, gap_factor=4.0, jitter_s=0).stream("EEG")  # two lost samples are jitter at 4
    assert np.flatnonzero(segment_breaks(bridged.timestamps, fs, 4.0)).tolist() == [0, 700]
    default = read_recording(path).stream("EEG")  # 20 ms is within the default jitter_s (0.1 s)
    assert np.flatnonzero(segment_breaks(default.timestamps, fs, 1.5)).tolist() == [0, 700]
    np.testing.assert_array_equal(read_recording(path, gap_factor=None).stream("EEG").timestamps, raw)


def test_markers_are_not_snapped(tmp_path, rec):
    """A marker between two samples keeps its time in every format (EDF+ onsets, FIF onsets, XDF stamps)."""
    off = make_recording(duration_s=4.0, trials=((1.003, 2.5071, "x"),))  # not on the 128-Hz grid
    for path in (write_edf(tmp_path / "m.edf", off), write_fif(tmp_path / "m_raw.fif", off)):
        np.testing.assert_allclose(read_recording(path).marker_stream().times, [1.003, 2.5071], atol=1e-6)
    xdf = read_recording(write_xdf(tmp_path / "m.xdf", off, t0=0.0)).marker_stream()
    np.testing.assert_allclose(xdf.times, [1.003 + 0.5 / 128, 2.5071 + 0.5 / 128], atol=1e-9)


def test_pick_matches_names_like_the_live_service(tmp_path):
    """Stream.pick uses signals.channels.map_channels: case ignored, spec order, missing listed."""
    r = read_recording(write_synthetic_edf(tmp_path / "s.edf", duration_s=2.0))
    eeg = r.stream("EEG-200Hz")
    assert eeg.channels[:2] == ("Fp1", "Fpz")
    picked = eeg.pick(["FPZ", "FP1"])
    assert picked.channels == ("Fpz", "Fp1")
    np.testing.assert_array_equal(picked.data, eeg.data[[1, 0]])
    with pytest.raises(ValueError, match=r"lacks 1 channel\(s\) the model needs: \['Oz9'\]"):
        eeg.pick(["Oz9"])


def test_types_check_their_shapes():
    """Stream, Markers and Recording refuse inconsistent shapes with the expected layout in the message."""
    ts = np.arange(4.0)
    s = Stream("S", "EEG", 1.0, ("a",), ("uV",), ("EEG",), ts, np.zeros((1, 4)))
    assert (s.n_channels, s.n_times) == (1, 4) and "1 ch, 4 samples" in repr(s)
    with pytest.raises(ValueError, match=r"expected \(n_channels, n_times\) = \(1, 4\)"):
        Stream("S", "EEG", 1.0, ("a",), ("uV",), ("EEG",), ts, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="one of each per channel"):
        Stream("S", "EEG", 1.0, ("a",), (), ("EEG",), ts, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="one time per text"):
        Markers("M", np.zeros(2), ("a",))
    r = Recording((s, s), (Markers("M", np.zeros(1), ("a",)), Markers("N", np.zeros(0), ())), "here")
    with pytest.raises(ValueError, match=r"here: 2 signal stream named 'S'"):
        r.stream("S")
    with pytest.raises(ValueError, match=r"exactly one marker stream, found 2 \['M', 'N'\]"):
        r.marker_stream()
    with pytest.raises(ValueError, match="irregular rate"):
        Stream("S", "X", 0.0, ("a",), ("",), ("X",), ts, np.zeros((1, 4))).dejittered(1.5)


def test_errors(tmp_path):
    """Unknown extension, missing file and unreadable files are errors that say what to do."""
    assert recording_extension("a/B.FIF.GZ") == ".fif.gz"
    with pytest.raises(ValueError, match="cannot read recordings with extension '.txt'"):
        read_recording(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_recording(tmp_path / "missing.edf")
    (tmp_path / "bad.edf").write_bytes(b"not an edf")
    with pytest.raises(ValueError, match="could not be read as EDF by MNE"):
        read_recording(tmp_path / "bad.edf")
    (tmp_path / "bad.xdf").write_bytes(b"nope")
    with pytest.raises(ValueError, match="could not be read as XDF: it does not start with 'XDF:'"):
        read_recording(tmp_path / "bad.xdf")
    (tmp_path / "bad2.xdf").write_bytes(b"XDF:" + bytes([1, 5, 1, 0]) + b"x" * 3)  # a chunk, then garbage
    with pytest.raises(ValueError, match="could not be read as XDF by pyxdf"):
        read_recording(tmp_path / "bad2.xdf")


def test_reads_without_torch(tmp_path, rec):
    """The reader is torch-free (the service image has no torch)."""
    path = write_xdf(tmp_path / "r.xdf", rec)
    code = (
        f"from signals.recording import read_recording\nprint(read_recording({str(path)!r}).streams[0].name)"
    )
    done = run_without(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EEG"
