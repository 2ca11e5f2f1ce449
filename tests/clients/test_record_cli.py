"""Tests for ``m2s record`` (clients.record_cli through clients.cli.main) against the REAL service."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from clients.cli import main
from clients.record_cli import format_final, format_list, format_size
from clients.sdk import Client, RecordingInfo, Recordings
from service.app import create_app
from tests.service.conftest import make_settings, run_server

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = ["--url", "http://127.0.0.1:9"]


@pytest.fixture(scope="module")
def record_server(tmp_path_factory):
    """A real app recording to a temporary folder, with one attached EEG stream whose outlet never exists.

    Yields ``(url, stream_id, folder)``: a recording of it is valid and writes no samples.
    """
    folder = tmp_path_factory.mktemp("recordings")
    with run_server(create_app(make_settings(recordings_dir=folder, resolve_timeout_s=0.2))) as url:
        with Client(url) as client:
            stream = client.attach("eeg", source_id=f"m2s-rec-cli-never-{uuid.uuid4().hex[:12]}")
        yield url, stream.id, folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be a positive number of seconds, got 0."),
        (["--every", "nan"], "--every must be a positive number of seconds, got nan."),
        (
            ["--name", " "],
            "--name is empty; give the file name without .xdf, e.g. --name p-013-s1, or leave it out.",
        ),
        (
            ["--streams", ","],
            "--streams ',' names no stream; give comma-separated ids of attached streams (GET /streams), "
            "or leave --streams out to record every attached stream.",
        ),
        (
            ["--streams", "eeg-1", "--markers", "kind=Markers"],
            "--markers 'kind=Markers': unknown key 'kind'; the keys are type, name, source_id.",
        ),
        (
            ["--list", "--name", "x", "--duration", "3"],
            "--list takes no --name, --duration; list, or start a recording, not both.",
        ),
    ],
)
def test_bad_options_exit_2_before_any_request(args, message, capsys):
    """Each invalid option: status 2 and exactly one line on stderr; nothing listens on the URL."""
    assert main(["record", *args, *NOWHERE]) == 2
    assert capsys.readouterr().err == f"m2s record: error: {message}\n"


def test_refused_requests_exit_2_with_the_service_detail(record_server, capsys):
    """An unknown stream (404) and a bad file name (422): the service's sentence verbatim, status 2."""
    url, sid, folder = record_server
    detail = httpx.post(f"{url}/recordings", json={"streams": ["eeg-nope"]}).json()["detail"]
    assert main(["record", "--streams", "eeg-nope", "--url", url]) == 2
    out, err = capsys.readouterr()
    assert err == f"m2s record: error: 404: {detail}\n" and out == ""
    detail = httpx.post(f"{url}/recordings", json={"streams": [sid], "name": "a/b"}).json()["detail"]
    assert main(["record", "--streams", sid, "--name", "a/b", "--url", url]) == 2
    assert capsys.readouterr().err == f"m2s record: error: 422: {detail}\n"
    assert not list(folder.glob("a*"))


def test_unreachable_service_exits_1(capsys):
    """No service: one line naming the URL, status 1."""
    assert main(["record", "--list", *NOWHERE]) == 1
    assert capsys.readouterr().err.startswith(
        "m2s record: error: cannot reach the service at http://127.0.0.1:9: "
    )


def test_record_for_a_duration_then_list(record_server, capsys):
    """--duration: the start line, progress lines, the closed recording; --list shows it; the file exists."""
    url, sid, folder = record_server
    name = f"cli-{uuid.uuid4().hex[:8]}"
    markers = f"source_id=m2s-rec-cli-no-markers-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    args = ["--streams", sid, "--markers", markers, "--name", name, "--duration", "1", "--every", "0.4"]
    assert main(["record", *args, "--url", url]) == 0
    assert 1.0 <= time.perf_counter() - start < 5.0
    lines = capsys.readouterr().out.splitlines()
    first = re.fullmatch(
        rf"recording (rec-\w+) to {name}\.xdf: streams {sid} \(eeg\); markers 0 \(marker stream not connected\); "
        r"for 1 s",
        lines[0],
    )
    assert first, lines
    progress = rf"\[ +\d+ s\] {sid} 0 samples; markers 0 \(marker stream not connected\); \d+ B"
    assert len(lines) >= 4 and all(re.fullmatch(progress, line) for line in lines[1:-1]), lines
    assert re.fullmatch(
        rf"recording {first[1]} closed: {name}\.xdf, \d+ B, 1\.\d s; {sid} 0 samples \(0 chunks\); "
        r"markers 0 \(marker stream not connected\)",
        lines[-1],
    ), lines
    assert (folder / f"{name}.xdf").stat().st_size > 0

    assert main(["record", "--list", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recordings of this run:\n") and out.endswith("stored files: none\n")
    assert re.search(
        rf"^  {first[1]}  closed     {name}\.xdf  \d+ B  1\.\d s  samples: {sid} 0; markers 0", out, re.M
    )


def test_ctrl_c_closes_the_recording_and_exits_0(record_server):
    """As a process: SIGINT after the start line closes the recording (DELETE) and prints its final state."""
    url, sid, _ = record_server
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "record", "--streams", sid, "--every", "0.2", "--url", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        rec_id = re.match(r"recording (rec-\w+) to session-\S+\.xdf: streams .*; until Ctrl-C$", first)
        assert rec_id, first + proc.stderr.read() if proc.poll() is not None else first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted; closing the recording\n" in out and "Traceback" not in err
    assert re.search(rf"^recording {rec_id[1]} closed: session-\S+\.xdf, ", out, re.M), out
    assert httpx.get(f"{url}/recordings/{rec_id[1]}").json()["state"] == "closed"


def _recording(**overrides) -> RecordingInfo:
    values = {
        "id": "rec-1a2b3c4d",
        "name": "p-1",
        "file": "p-1.xdf",
        "state": "failed",
        "error": "No space left on device",
        "started": "2025-01-01T00:00:00Z",
        "ended": "2025-01-01T00:01:00Z",
        "duration_s": 60.04,
        "bytes": 2_345_678,
        "streams": [
            {
                "stream_id": "eeg-1",
                "modality": "eeg",
                "name": "EEG",
                "n_samples": 12000,
                "n_chunks": 600,
                "xdf_stream_ids": [1],
            },
            {
                "stream_id": "eye-2",
                "modality": "eye",
                "name": None,
                "n_samples": 0,
                "n_chunks": 0,
                "xdf_stream_ids": [],
            },
        ],
        "markers": {"selector": {"type": "Markers"}, "name": "M", "n_markers": 7, "connected": True},
        "calibration_id": None,
    }
    return RecordingInfo.model_validate({**values, **overrides})


def test_formats():
    """Sizes in powers of 1000; the final state with its error; the listing with stored files."""
    assert [format_size(n) for n in (0, 999, 1000, 12_345, 4_500_000, 1_200_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "12.3 kB",
        "4.5 MB",
        "1.2 GB",
    ]
    assert format_final(_recording()) == (
        "recording rec-1a2b3c4d failed: p-1.xdf, 2.3 MB, 60.0 s; eeg-1 12000 samples (600 chunks), "
        "eye-2 0 samples (0 chunks); markers 7\n  error: No space left on device"
    )
    listing = Recordings.model_validate(
        {
            "recordings": [_recording(state="closed", error=None, markers=None).model_dump()],
            "stored": [{"file": "old.xdf", "bytes": 1500, "complete": False}],
        }
    )
    assert format_list(listing) == (
        "recordings of this run:\n"
        "  rec-1a2b3c4d  closed     p-1.xdf  2.3 MB  60.0 s  samples: eeg-1 12000, eye-2 0\n"
        "stored files:\n"
        "  old.xdf  1.5 kB  (incomplete)"
    )
    assert format_list(Recordings()) == "recordings of this run: none\nstored files: none"
