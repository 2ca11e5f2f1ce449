"""The XDF writer: files pyxdf and the project's reader read back exactly, crash safety, bad input."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from signals.recording import (
    XdfWriter,
    read_recording,
    repair_xdf,
    xdf_complete_length,
    xdf_stream_header,
)

pyxdf = pytest.importorskip("pyxdf")


def _write(path, n_chunks=5, chunk=20, boundary_every_s=10.0):
    """EEG float32 (3 ch, 100 Hz), an int16 stream and a marker stream; returns what was written."""
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((n_chunks * chunk, 3)).astype(np.float32)
    counts = rng.integers(-2000, 2000, (n_chunks * chunk, 2)).astype(np.int16)
    ts = 1000.0 + np.arange(n_chunks * chunk) / 100.0
    with XdfWriter(path, boundary_every_s=boundary_every_s) as xdf:
        a = xdf.add_stream(
            xdf_stream_header(
                "EEG", "EEG", 3, 100.0, "float32", "amp-1",
                channels=("Fp1", "Fp2", "Cz"), units=("microvolts",) * 3,
            )
        )  # fmt: skip
        b = xdf.add_stream(xdf_stream_header("Counts", "Misc", 2, 100.0, "int16"))
        m = xdf.add_stream(xdf_stream_header("Markers", "Markers", 1, 0.0, "string", "mk"))
        for k in range(n_chunks):
            sl = slice(k * chunk, (k + 1) * chunk)
            xdf.write_samples(a, ts[sl], eeg[sl])
            xdf.write_samples(b, ts[sl], counts[sl])
        xdf.write_samples(m, [1000.05, 1000.5], ['{"trial": 0, "label": "positive"}', "trial_end"])
        xdf.write_clock_offset(a, 1000.0, 0.0)
    return ts, eeg, counts


def test_round_trip_with_pyxdf_and_the_reader(tmp_path):
    path = tmp_path / "s.xdf"
    ts, eeg, counts = _write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # health data: owner only
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert by_name["EEG"]["time_series"].dtype == np.float32
    np.testing.assert_array_equal(by_name["EEG"]["time_series"], eeg)
    np.testing.assert_array_equal(by_name["EEG"]["time_stamps"], ts)
    np.testing.assert_array_equal(by_name["Counts"]["time_series"], counts)
    assert by_name["Markers"]["time_series"] == [['{"trial": 0, "label": "positive"}'], ["trial_end"]]
    assert by_name["EEG"]["footer"]["info"]["sample_count"] == [str(len(ts))]

    rec = read_recording(path, gap_factor=None)
    s = rec.stream("EEG")
    assert s.channels == ("Fp1", "Fp2", "Cz") and s.units == ("microvolts",) * 3 and s.source_id == "amp-1"
    assert s.sfreq == 100.0 and s.channel_format == "float32"
    np.testing.assert_array_equal(s.data, eeg.T)
    assert rec.marker_stream().texts == ('{"trial": 0, "label": "positive"}', "trial_end")


def test_a_cut_file_reads_up_to_its_last_complete_chunk(tmp_path):
    """Cut anywhere (a writer killed mid-chunk): the reader keeps the complete chunks; repair cuts the rest."""
    path = tmp_path / "s.xdf"
    ts, eeg, _ = _write(path, n_chunks=4, chunk=10)
    data = path.read_bytes()
    full = read_recording(path, gap_factor=None).stream("EEG").n_times
    seen = []
    for cut in range(len(data) - 1, len(data) // 2, -37):
        part = tmp_path / f"cut{cut}.xdf"
        part.write_bytes(data[:cut])
        complete, size = xdf_complete_length(part)
        assert complete <= size == cut
        n = read_recording(part, gap_factor=None).stream("EEG").n_times
        assert n <= full and n % 10 == 0  # whole chunks only, never a partial sample
        seen.append(n)
        assert repair_xdf(part) == cut - complete
        streams, _ = pyxdf.load_xdf(str(part), dejitter_timestamps=False)  # pyxdf itself reads it now
        eeg_back = next(s for s in streams if s["info"]["name"][0] == "EEG")["time_series"]
        np.testing.assert_array_equal(eeg_back, eeg[: len(eeg_back)])
    assert seen == sorted(seen, reverse=True) and seen[-1] < full


def test_boundary_chunks_let_pyxdf_resynchronise(tmp_path):
    """Boundary chunks are written every boundary_every_s of sample time and pyxdf skips them."""
    path = tmp_path / "s.xdf"
    ts, eeg, _ = _write(path, n_chunks=6, chunk=20, boundary_every_s=0.3)
    assert (
        path.read_bytes().count(bytes.fromhex("43a546dccbf5410fb30ed5467383cbe4")) == 2
    )  # at 0.4 s and 0.8 s
    np.testing.assert_array_equal(read_recording(path, gap_factor=None).stream("EEG").data, eeg.T)


def test_sigkill_keeps_every_written_chunk(tmp_path):
    """A process killed while writing leaves a file readable up to the chunks it had written."""
    path = tmp_path / "k.xdf"
    child = textwrap.dedent(
        f"""
        import sys, numpy as np
        from signals.recording import XdfWriter, xdf_stream_header
        w = XdfWriter({str(path)!r})
        sid = w.add_stream(xdf_stream_header("EEG", "EEG", 62, 200.0, "float32"))
        k = 0
        while True:
            w.write_samples(sid, 10.0 + (k * 40 + np.arange(40)) / 200.0, np.full((40, 62), k, np.float32))
            k += 1
            if k == 50:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == b"ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    s = read_recording(path, gap_factor=None).stream("EEG")
    assert s.n_times >= 50 * 40 and s.n_times % 40 == 0
    chunks = s.data[0].reshape(-1, 40)
    np.testing.assert_array_equal(chunks[:, 0], np.arange(len(chunks)))  # every chunk, in order, intact


def test_bad_input_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "s.xdf"
    with XdfWriter(path) as xdf:
        with pytest.raises(ValueError, match="channel_format is 'complex'"):
            xdf.add_stream(xdf_stream_header("X", "X", 1, 1.0, "float32").replace("float32", "complex"))
        with pytest.raises(ValueError, match="the stream header is not XML"):
            xdf.add_stream("<info>")
        sid = xdf.add_stream(xdf_stream_header("X", "X", 2, 10.0, "float32"))
        with pytest.raises(ValueError, match=r"expected \(n_samples, n_channels\) = \(3, 2\)"):
            xdf.write_samples(sid, [0.0, 0.1, 0.2], np.zeros((3, 3)))
        with pytest.raises(ValueError, match="no stream 7"):
            xdf.write_samples(7, [0.0], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="the XDF writer is closed"):
        xdf.write_samples(sid, [0.0], np.zeros((1, 2)))
    with pytest.raises(FileExistsError):
        XdfWriter(path)  # never clobbers a recording
    with pytest.raises(ValueError, match="channel_format 'float16' is not an XDF format"):
        xdf_stream_header("X", "X", 1, 1.0, "float16")


def test_a_write_error_cuts_the_partial_chunk_and_adds_nothing_after(tmp_path):
    """A file-size limit (as a full disk) stops a write mid-chunk; the writer cuts that part off, and closing once
    space is back writes no footers that would otherwise complete the cut chunk's declared length."""
    path = tmp_path / "full.xdf"
    child = textwrap.dedent(
        f"""
        import resource, numpy as np
        from signals.recording import XdfWriter, read_recording, xdf_complete_length, xdf_stream_header
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
        w = XdfWriter({str(path)!r})
        sid = w.add_stream(xdf_stream_header("EEG", "EEG", 62, 200.0, "float32"))
        k = 0
        try:
            while True:
                w.write_samples(sid, 10.0 + (k * 40 + np.arange(40)) / 200.0, np.full((40, 62), k, np.float32))
                k += 1
        except OSError as err:
            print("error", err.errno, flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space is back
        try:
            w.write_samples(sid, [99.0], np.zeros((1, 62), np.float32))
        except ValueError as err:
            print("refused", "stopped after a write error" in str(err), flush=True)
        w.close()
        complete, size = xdf_complete_length({str(path)!r})
        s = read_recording({str(path)!r}, gap_factor=None).streams[0]
        print("chunks", k, complete == size, s.n_times == 40 * k, float(s.data.max()) == k - 1, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, cwd=os.getcwd(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "error 27"  # EFBIG: File too large
    assert lines[1] == "refused True"
    k = int(lines[2].split()[1])
    assert k > 5 and lines[2].endswith("True True True")
