"""``/recordings`` (CALIBRATION.md §4) on the real app: bad input, a simulated session recorded from real LSL
outlets and read back by pyxdf and the project's reader, a calibration that records its REST labels, and a
service process killed mid-recording or short of disk space."""

from __future__ import annotations

import os
import resource
import signal
import stat
import threading
import time

import httpx
import numpy as np
import pytest

from clients.service_process import ServiceProcess
from clients.simulator import Simulator
from service.app import create_app
from service.config import AttachRequest
from service.recordings import RecordingManager, SessionRecording
from signals.recording import read_recording, repair_xdf, xdf_complete_length, xdf_stream_header
from synthetic import SyntheticConfig
from tests.service.conftest import make_settings, run_server

pyxdf = pytest.importorskip("pyxdf")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    attach = [AttachRequest(modality=m, source_id=f"never-rec-{os.getpid()}-{m}") for m in ("eeg", "eye")]
    app = create_app(make_settings(attach=attach, recordings_dir=folder))
    with run_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        ids = {s["modality"]: s["id"] for s in http.get("/streams").json()["data"]}
        yield http, ids, folder


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (
            {"streams": []},
            422,
            "Invalid request: streams: List should have at least 1 item after validation, not 0.",
        ),
        (
            {"streams": ["x"], "name": "../etc"},
            422,
            "Invalid request: name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'.",
        ),
        ({"streams": ["eeg-nope"]}, 404, "No attached stream 'eeg-nope'; attached streams: "),
        ({"streams": ["x"], "extra": 1}, 422, "Invalid request: extra: Extra inputs are not permitted."),
    ],
)
def test_bad_requests_say_what_is_wrong(server, body, code, detail):
    http, _, folder = server
    r = http.post("/recordings", json=body)
    assert r.status_code == code, r.text
    assert r.json()["detail"].startswith(detail)
    assert not list(folder.glob("*.xdf"))  # nothing written


def test_unknown_recording_twice_the_same_stream_and_a_taken_name(server):
    http, ids, folder = server
    r = http.get("/recordings/rec-nope")
    assert r.status_code == 404 and r.json()["detail"].startswith("No recording 'rec-nope'; recordings: ")
    assert http.delete("/recordings/rec-nope").status_code == 404
    r = http.post("/recordings", json={"streams": [ids["eeg"], ids["eeg"]]})
    assert r.status_code == 422
    assert (
        r.json()["detail"]
        == f"Streams lists a stream more than once (['{ids['eeg']}', '{ids['eeg']}']); give each once."
    )
    first = http.post("/recordings", json={"streams": [ids["eeg"]], "name": "taken"})
    assert first.status_code == 201, first.text
    r = http.post("/recordings", json={"streams": [ids["eye"]], "name": "taken"})
    assert r.status_code == 409
    assert (
        r.json()["detail"]
        == "A recording named 'taken' already exists in M2S_RECORDINGS_DIR; choose another name."
    )
    r = http.post("/recordings", json={"streams": [ids["eye"], ids["eeg"]]})
    assert r.status_code == 409
    assert r.json()["detail"].startswith(
        f"Stream(s) ['{ids['eeg']}'] are already being recorded; close that recording"
    )
    closed = http.delete(f"/recordings/{first.json()['id']}").json()
    assert closed["state"] == "closed" and closed["file"] == "taken.xdf"
    assert stat.S_IMODE((folder / "taken.xdf").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    listed = http.get("/recordings").json()
    assert [r["id"] for r in listed["recordings"]] == [first.json()["id"]] and listed["stored"] == []


def test_a_calibration_records_its_session_with_the_rest_labels(server):
    """ "record": true: the calibration's streams and its REST labels (as trial markers) go to one file, closed
    when the calibration ends."""
    http, ids, folder = server
    body = {"participant": "p-rec", "streams": [ids["eeg"]], "labels": {"rest": True}, "record": True}
    cal = http.post("/calibrations", json=body)
    assert cal.status_code == 201, cal.text
    rid = cal.json()["recording_id"]
    rec = http.get(f"/recordings/{rid}").json()
    assert rec["state"] == "recording" and rec["calibration_id"] == cal.json()["id"]
    cid = cal.json()["id"]
    assert http.post(f"/calibrations/{cid}/label", json={"label": "positive"}).status_code == 200
    assert http.post(f"/calibrations/{cid}/label", json={"label": None}).status_code == 200
    assert http.delete(f"/calibrations/{cid}").status_code == 200
    rec = http.get(f"/recordings/{rid}").json()
    assert rec["state"] == "closed" and rec["markers"] is None
    markers = read_recording(folder / rec["file"]).marker_stream()
    assert markers.texts == ("trial_start:positive", "trial_end")
    assert rec["file"] == f"calibration-p-rec-{cid[4:]}.xdf"
    long_id = (
        "p" * 45
    )  # the longest id whose calibrated name (m2s-synthetic-demo-<id>) keeps to 64 characters
    body = {"participant": long_id, "streams": [ids["eeg"]], "labels": {"rest": True}, "record": True}
    cal = http.post("/calibrations", json=body)
    assert cal.status_code == 201, cal.text
    rec = http.get(f"/recordings/{cal.json()['recording_id']}").json()
    assert rec["file"] == f"calibration-{'p' * 41}-{cal.json()['id'][4:]}.xdf"
    assert http.delete(f"/calibrations/{cal.json()['id']}").status_code == 200
    # A refused recording leaves no calibration behind: the stream is free for the next one.
    taken = http.post("/recordings", json={"streams": [ids["eeg"]]}).json()
    r = http.post("/calibrations", json={"participant": "p-2", "streams": [ids["eeg"]], "labels": {"rest": True},
                                         "record": True})  # fmt: skip
    assert r.status_code == 409 and r.json()["detail"].startswith(
        f"Stream(s) ['{ids['eeg']}'] are already being recorded"
    )
    http.delete(f"/recordings/{taken['id']}")
    r = http.post(
        "/calibrations", json={"participant": "p-2", "streams": [ids["eeg"]], "labels": {"rest": True}}
    )
    assert r.status_code == 201, r.text
    assert http.delete(f"/calibrations/{r.json()['id']}").status_code == 200


def test_finishing_twice_or_concurrently_is_harmless(tmp_path):
    """A calibration's end, a DELETE and the service's shutdown may all finish one recording."""
    recording = SessionRecording("rec-1", "x", tmp_path / "x.xdf", {}, None)
    recording.on_marker(1.0, "trial_start:positive")
    threads = [threading.Thread(target=recording.finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    recording.finish()
    assert recording.snapshot()["state"] == "closed"
    assert read_recording(tmp_path / "x.xdf").marker_stream().texts == ("trial_start:positive",)


def test_outlet_clocks_are_undone_as_labrecorder_does(tmp_path):
    """An outlet on another machine: its clock 5.8 days behind this host's and drifting 1 ppm. The file carries
    its own timestamps and the offsets at times on its clock, so a reader synchronising clocks gets this host's
    times back (written with this host's times instead, pyxdf's fit is off by drift x offset = 0.5 s)."""
    recording = SessionRecording("rec-1", "x", tmp_path / "x.xdf", {"eeg-1": "eeg"}, None)
    tap = recording.tap("eeg-1")
    header = xdf_stream_header("EEG", "EEG", 2, 100.0, "float32", channels=("Cz", "Pz"))
    host = 1000.0 + np.arange(60_000) / 100.0  # 10 minutes at 100 Hz, on this host's clock

    def offset(t):  # what liblsl adds to the outlet's timestamps
        return 5e5 + 1e-6 * (t - 1000.0)

    for lo in range(0, len(host), 500):
        ts = host[lo : lo + 500]
        tap(header, np.zeros((len(ts), 2), np.float32), ts, offset(ts[-1]))
    recording.finish()
    back = read_recording(tmp_path / "x.xdf", gap_factor=None).streams[0].timestamps
    assert np.max(np.abs(back - host)) < 2e-3
    (raw,), _ = pyxdf.load_xdf(str(tmp_path / "x.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    own = raw["time_stamps"]  # the outlet's clock
    np.testing.assert_allclose(own, host - offset(host), atol=1e-3)
    times = np.asarray(raw["clock_times"])  # measured at times on the outlet's clock, like its samples
    assert own[0] - 5.0 <= times.min() and times.max() <= own[-1] + 1e-6


def test_a_restarted_outlet_continues_its_stream_unless_its_layout_changed(tmp_path):
    recording = SessionRecording("rec-1", "x", tmp_path / "x.xdf", {"eeg-1": "eeg"}, None)
    tap = recording.tap("eeg-1")
    first = xdf_stream_header(
        "EEG", "EEG", 2, 100.0, "float32", "amp", channels=("Cz", "Pz"), extra={"uid": "a"}
    )
    restarted = first.replace("<uid>a</uid>", "<uid>b</uid>")  # a new outlet instance, same samples
    rewired = xdf_stream_header("EEG", "EEG", 3, 100.0, "float32", "amp", channels=("Cz", "Pz", "Oz"))
    for k, (header, n) in enumerate(((first, 2), (restarted, 2), (rewired, 3))):
        tap(header, np.full((10, n), k, np.float32), 10.0 * k + np.arange(10) / 100.0, 0.0)
    recording.finish()
    assert recording.snapshot()["streams"][0]["xdf_stream_ids"] == [1, 2]
    streams = read_recording(tmp_path / "x.xdf", gap_factor=None).streams
    assert [s.n_channels for s in streams] == [2, 3] and streams[0].n_times == 20


def test_interrupted_recordings_are_repaired_at_start(tmp_path):
    """What a killed service leaves (a half-written last chunk) is cut off when the next one starts; complete files
    are left alone and listed as stored."""
    for name in ("good", "cut"):
        recording = SessionRecording("rec-1", name, tmp_path / f"{name}.xdf", {"eeg-1": "eeg"}, None)
        tap = recording.tap("eeg-1")
        header = xdf_stream_header("EEG", "EEG", 2, 100.0, "float32")
        for k in range(3):
            tap(header, np.zeros((50, 2), np.float32), k + np.arange(50) / 100.0, 0.0)
        recording.finish()
    cut = tmp_path / "cut.xdf"
    size = cut.stat().st_size
    os.truncate(cut, size - 7)
    good_bytes = (tmp_path / "good.xdf").read_bytes()
    manager = RecordingManager(None, make_settings(recordings_dir=tmp_path))
    assert manager.stored()[0] == {"file": "cut.xdf", "bytes": size - 7, "complete": False}
    removed = manager.repair_interrupted()
    assert len(removed) == 1 and removed[0][0] == "cut.xdf" and removed[0][1] > 0
    assert (tmp_path / "good.xdf").read_bytes() == good_bytes
    assert [s["complete"] for s in manager.stored()] == [True, True]
    assert pyxdf.load_xdf(str(cut))[0][0]["time_series"].shape[1] == 2


def test_a_simulated_session_is_recorded_as_received(tmp_path):
    """EEG + eye + markers from real LSL outlets: the file holds the outlets' samples in their format, channel
    labels and units, the markers, and timestamps on the clock the live states use; predictions go on."""
    speed = 8.0
    sim = Simulator(
        SyntheticConfig(trial_duration_s=20.0),
        subject=0,
        modalities=("eeg", "eye"),
        speed=speed,
        source_id_prefix=f"rec{os.getpid()}",
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in sim.modalities]
    settings = make_settings(attach=attach, recordings_dir=tmp_path, stale_after_s=30.0)
    with run_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http, sim:
        ids = {s["modality"]: s["id"] for s in http.get("/streams").json()["data"]}
        deadline = time.monotonic() + 30
        while not all(s["connected"] for s in http.get("/streams").json()["data"]):
            assert time.monotonic() < deadline, "the streams did not connect"
            time.sleep(0.1)
        body = {"streams": [ids["eeg"], ids["eye"]], "markers": {"source_id": sim.source_ids["markers"]}}
        r = http.post("/recordings", json=body)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        before = {s["id"]: s["n_states"] for s in http.get("/streams").json()["data"]}
        time.sleep(50.0 / speed)  # 50 s of session: two trial onsets or more
        rec = http.get(f"/recordings/{rid}").json()
        assert rec["state"] == "recording" and rec["bytes"] > 0
        rec = http.delete(f"/recordings/{rid}").json()
        after = {s["id"]: s["n_states"] for s in http.get("/streams").json()["data"]}
    assert sim.error is None
    assert rec["state"] == "closed", rec
    assert all(after[sid] > before[sid] for sid in ids.values())  # live states went on while recording
    path = tmp_path / rec["file"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    counts = {s["stream_id"]: s["n_samples"] for s in rec["streams"]}

    streams, _ = pyxdf.load_xdf(str(path))
    by_type = {s["info"]["type"][0]: s for s in streams}
    eeg = by_type["EEG"]
    assert eeg["info"]["channel_format"] == ["float32"] and eeg["time_series"].dtype == np.float32
    assert eeg["info"]["desc"][0]["m2s_recording"][0]["modality"] == ["eeg"]
    assert len(eeg["time_stamps"]) == counts[ids["eeg"]] > 40 * 200 / speed * 0.8
    assert eeg["footer"]["info"]["sample_count"] == [str(counts[ids["eeg"]])]
    assert len(eeg["clock_times"]) >= 2  # offsets at the start, every 5 s and at the end
    assert np.all(np.diff(eeg["time_stamps"]) > 0)

    rec_read = read_recording(path)
    eeg_stream = next(s for s in rec_read.streams if s.type == "EEG")
    assert eeg_stream.channels[:3] == ("FP1", "FPZ", "FP2") and eeg_stream.units[0] == "uV"
    assert eeg_stream.sfreq == 200.0
    texts = rec_read.marker_stream().texts
    assert len(texts) >= 2 and all(t.startswith('{"trial": ') for t in texts)
    # Markers and samples share the service's clock: each onset falls inside the EEG samples' span.
    t_markers = rec_read.marker_stream().times
    assert eeg_stream.timestamps[0] - 1 < t_markers[0] < eeg_stream.timestamps[-1]


@pytest.mark.slow
def test_a_killed_or_full_service_keeps_what_it_wrote(tmp_path):
    """m2s-serve as a process with a 1 MB file-size limit (as a full disk): the first recording stops with
    the reason while states go on; a second one is cut by SIGKILL. Both files read up to their last chunk."""
    speed = 4.0
    sim = Simulator(
        SyntheticConfig(trial_duration_s=20.0), subject=0, modalities=("eeg",), speed=speed,
        source_id_prefix=f"kill{os.getpid()}",
    )  # fmt: skip
    folder = tmp_path / "recordings"
    limit = 1_000_000

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    options = [
        "--log-level", "info", "--recordings-dir", str(folder), "--calibrated-repository", str(tmp_path / "cal"),
        "--stale-after", "30", "--attach", f"modality=eeg,source_id={sim.source_ids['eeg']}",
    ]  # fmt: skip
    server = ServiceProcess(options, preexec_fn=limit_file_size)
    with server, httpx.Client(base_url=server.url, timeout=30) as http, sim:
        (sid,) = [s["id"] for s in http.get("/streams").json()["data"]]
        full = http.post("/recordings", json={"streams": [sid], "name": "full"}).json()
        deadline = time.monotonic() + 30
        while (rec := http.get(f"/recordings/{full['id']}").json())["state"] == "recording":
            assert time.monotonic() < deadline, "the size limit was never reached"
            time.sleep(0.2)
        assert rec["state"] == "failed"
        assert (
            rec["error"]
            == "full.xdf reached the largest file size allowed (File too large); start a new recording"
        )
        n_states = http.get(f"/streams/{sid}").json()["n_states"]
        cut = http.post("/recordings", json={"streams": [sid], "name": "cut"}).json()
        time.sleep(1.0)  # two or three chunks (the worker pulls a hop of EEG at a time: ~100 kB)
        assert http.get(f"/streams/{sid}").json()["n_states"] > n_states  # live states never stopped
        assert http.get(f"/recordings/{cut['id']}").json()["state"] == "recording"
        server.kill(signal.SIGKILL)
    text = server.log()
    assert f"recording {full['id']} stopped: full.xdf reached the largest file size allowed" in text
    for name in ("full", "cut"):
        path = folder / f"{name}.xdf"
        complete, size = xdf_complete_length(path)
        assert size <= limit
        eeg = read_recording(path).streams[0]  # up to the last complete chunk
        assert eeg.n_times > 0 and eeg.data.shape == (62, eeg.n_times)
        assert np.all(np.isfinite(eeg.data))
        repair_xdf(path)
        assert xdf_complete_length(path)[0] == path.stat().st_size
        streams, _ = pyxdf.load_xdf(str(path))  # pyxdf reads the repaired file
        assert len(streams[0]["time_stamps"]) == eeg.n_times
