"""Tests for ``m2s calibrate`` (clients.calibrate_cli through clients.cli.main) against the REAL service."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from clients.calibrate_cli import format_result, parse_selector
from clients.cli import main
from clients.sdk import CalibrationInfo, CalibrationResult, Client
from clients.simulator import Simulator
from models.repository import DEMO_BUNDLE
from service.app import create_app
from service.config import AttachRequest
from synthetic import SyntheticConfig
from tests.service.conftest import make_settings, run_server

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["--participant", "p-1", "--markers", "type=Markers", "--fit-after", "2"]


@pytest.fixture(scope="module")
def calibration_server(tmp_path_factory):
    """A real app with a writable calibrated repository and one attached EEG stream that never resolves."""
    settings = make_settings(
        calibrated_repository=tmp_path_factory.mktemp("calibrated"), resolve_timeout_s=0.2
    )
    with run_server(create_app(settings)) as url, Client(url) as client:
        stream = client.attach("eeg", source_id=f"m2s-cli-never-{uuid.uuid4().hex[:12]}")
        yield url, stream.id


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--fit-after", "1"], r"--fit-after must be >= 2 \(one trial of each class is held out"),
        (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
        (["--poll", "nan"], "--poll must be a positive number of seconds"),
        (
            ["--markers", "Markers"],
            r"--markers 'Markers': 'Markers' is not key=value; .* e.g. --markers type=Markers",
        ),
        (["--markers", "kind=Markers"], "unknown key 'kind'; the keys are type, name, source_id"),
        (["--markers", "type=A,type=B"], "key 'type' is given twice"),
        (["--markers", "type="], "type= has no value"),
        (["--markers", " "], "--markers ' ' is empty"),
        (["--streams", ","], "--streams ',' names no stream"),
        (["--participant", " "], "--participant is empty"),
    ],
)
def test_bad_options_exit_2_before_any_request(args, match, capsys):
    """Each invalid option is refused with exit status 2 and one line on stderr; nothing listens on the URL."""
    assert main(["calibrate", *REQUIRED, *args, "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("m2s calibrate: error: ") and err.count("\n") == 1
    assert re.search(match, err), err


def test_missing_markers_is_an_argparse_error(capsys):
    """Without --markers argparse exits with status 2 and names the option."""
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--participant", "p-1", "--fit-after", "2"])
    assert exc.value.code == 2 and "--markers" in capsys.readouterr().err


def test_parse_selector():
    """key=value pairs become the selector mapping; whitespace is ignored."""
    assert parse_selector(" type = Markers , source_id=m2s-sim-markers-s0-seed0") == {
        "type": "Markers",
        "source_id": "m2s-sim-markers-s0-seed0",
    }


def test_no_attached_stream_exits_1(server_url, capsys):
    """Without --streams and with no stream attached, the error says how to attach one (status 1)."""
    assert main(["calibrate", *REQUIRED, "--url", server_url]) == 1
    err = capsys.readouterr().err
    assert f"no stream is attached to the service at {server_url}; attach" in err


def test_service_errors_exit_1_with_the_detail(calibration_server, capsys):
    """An unknown stream (404) and an invalid participant id (422): the service's sentence, status 1."""
    url, sid = calibration_server
    assert main(["calibrate", *REQUIRED, "--streams", "eeg-nope", "--url", url]) == 1
    assert re.search(r"^m2s calibrate: error: 404: .*eeg-nope", capsys.readouterr().err)
    body = {"participant": "p 1!", "streams": [sid], "labels": {"markers": {"type": "Markers"}}}
    detail = httpx.post(f"{url}/calibrations", json=body).json()["detail"]
    args = ["--participant", "p 1!", "--markers", "type=Markers", "--fit-after", "2"]
    assert main(["calibrate", *args, "--streams", sid, "--url", url]) == 1
    assert capsys.readouterr().err == f"m2s calibrate: error: 422: {detail}\n"


def test_timeout_cancels_and_exits_1(calibration_server, capsys):
    """No marker stream: progress says so, --timeout ends it with the counts, the calibration is cancelled."""
    url, sid = calibration_server
    markers = f"source_id=m2s-cli-no-markers-{uuid.uuid4().hex[:8]}"
    args = [
        "--participant",
        "p-late",
        "--markers",
        markers,
        "--fit-after",
        "3",
        "--timeout",
        "1",
        "--poll",
        "0.2",
    ]
    assert main(["calibrate", *args, "--url", url]) == 1  # default --streams: the one attached stream
    out, err = capsys.readouterr()
    cal_id = re.search(r"^calibration (cal-\w+): participant p-late, base (\S+), streams (\S+) \(eeg\)", out)
    assert cal_id and cal_id[2] == f"{DEMO_BUNDLE}:1" and cal_id[3] == sid, out
    assert (
        "negative 0/3 (eeg 0)  neutral 0/3 (eeg 0)  positive 0/3 (eeg 0)  | marker stream not connected"
        in out
    )
    assert (
        f"calibration {cal_id[1]} (participant p-late) did not reach 3 trials of each class within 1 s" in err
    )
    assert "the marker stream is not connected" in err and "Traceback" not in err
    assert httpx.get(f"{url}/calibrations/{cal_id[1]}").json()["state"] == "cancelled"


def test_unreachable_service_exits_1_without_traceback():
    """As a process (python -m clients.cli): one error line on stderr, status 1, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", "calibrate", *REQUIRED, "--url", "http://127.0.0.1:9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "m2s calibrate: error: cannot reach the service at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def _result(activated: list[str]) -> CalibrationResult:
    return CalibrationResult.model_validate(
        {
            "model": {"name": f"{DEMO_BUNDLE}-p-1", "version": 2},
            "validation": {
                "balanced_accuracy": 0.75,
                "per_modality": {
                    "eeg": {"balanced_accuracy": 0.75, "head": "eeg", "n_windows": 80},
                    "eye": {
                        "balanced_accuracy": None,
                        "head": "eeg",
                        "n_windows": 0,
                        "own_head_balanced_accuracy": 0.5,
                    },
                },
                "n_trials": {"negative": 2, "neutral": 3, "positive": 2},
                "c": {"eeg": 1.0},
                "skipped": {"ecg": "too few labelled trials per class"},
            },
            "activated": activated,
            "fit_s": 1.25,
        }
    )


def test_format_result():
    """The model, the overall and per-modality scores (n/a when unscored, the cross-modal head, a modality
    left out) and the swap."""
    text = format_result(_result(["eeg-1", "eye-2"]), activate=True)
    assert text.splitlines() == [
        f"calibrated model {DEMO_BUNDLE}-p-1:2 (fit 1.2 s)",
        "  validation, leave-one-trial-out balanced accuracy, chance 0.33: 0.750",
        "    eeg    0.750  (80 windows)",
        "    eye    n/a  (0 windows, head fitted on eeg, own head 0.500)",
        "    ecg    not fitted: too few labelled trials per class",
        "  trials: negative 2, neutral 3, positive 2",
        "  activated on: eeg-1, eye-2",
    ]
    idle = format_result(_result([]), activate=False).splitlines()[-1]
    assert (
        idle
        == f'  not activated (--no-activate); switch a stream with PATCH /streams/<id> {{"model": "{DEMO_BUNDLE}-p-1:2"}}'
    )


def test_json_output_goes_to_stdout_and_progress_to_stderr(monkeypatch, capsys):
    """--json: stdout holds only the fit's answer; the progress lines go to stderr."""
    info = CalibrationInfo.model_validate(
        {
            "id": "cal-1",
            "participant": "p-1",
            "state": "collecting",
            "model": {"name": DEMO_BUNDLE, "version": 1},
            "streams": ["eeg-1"],
            "modalities": {"eeg-1": "eeg"},
            "labels": "markers",
            "markers_connected": True,
            "counts": {"eeg": {"negative": 4, "neutral": 0, "positive": 0}},
            "trials": {"negative": 1, "neutral": 0, "positive": 0},
            "open_label": "neutral",
        }
    )
    result = _result(["eeg-1"])

    def calibrate(self, participant, streams, **kwargs):
        assert (participant, streams, kwargs["markers"]) == ("p-1", ["eeg-1"], {"type": "Markers"})
        assert kwargs["trials_per_class"] == 2 and kwargs["activate"] is True
        kwargs["on_progress"](info)
        kwargs["on_progress"](info)  # unchanged: no second line
        return result

    monkeypatch.setattr(Client, "calibrate", calibrate)
    assert main(["calibrate", *REQUIRED, "--streams", "eeg-1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == result.model_dump(mode="json")
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("calibration cal-1: participant p-1")
    assert lines[1].endswith(
        "negative 1/2 (eeg 4)  neutral 0/2 (eeg 0)  positive 0/2 (eeg 0)  | open: neutral"
    )


@pytest.mark.slow
def test_calibrate_end_to_end(tmp_path, capsys):
    """m2s calibrate on every attached stream, labelled by the simulator's markers: progress, model, swap.

    The simulator starts once the calibration exists (3 calibration trials per class played, 2 asked:
    the first onset may pass before the marker inlet connects).
    """
    sim = Simulator(
        SyntheticConfig(trial_duration_s=30.0),
        subject=0,
        modalities=("eeg", "eye"),
        speed=8.0,
        calibration_trials=3,
        source_id_prefix=f"m2s-cli-cal-{uuid.uuid4().hex[:12]}",
    )
    attach = [AttachRequest(modality=m, source_id=sim.source_ids[m]) for m in ("eeg", "eye")]
    settings = make_settings(attach=attach, stale_after_s=30.0, calibrated_repository=tmp_path)
    with run_server(create_app(settings)) as url:
        stop = threading.Event()

        def start_when_collecting():
            while not stop.wait(0.05):
                if httpx.get(f"{url}/calibrations").json()["count"]:
                    sim.start()
                    return

        starter = threading.Thread(target=start_when_collecting, daemon=True)
        starter.start()
        args = [
            "--participant",
            "p-cli",
            "--markers",
            f"source_id={sim.source_ids['markers']}",
            "--fit-after",
            "2",
        ]
        try:
            status = main(["calibrate", *args, "--url", url, "--timeout", "150", "--poll", "0.5"])
        finally:
            stop.set()
            sim.stop()
        streams = httpx.get(f"{url}/streams").json()["data"]
    out, err = capsys.readouterr()
    name = f"{DEMO_BUNDLE}-p-cli"
    assert status == 0, err
    ids = sorted(s["id"] for s in streams)
    assert all(s["model"] == {"name": name, "version": 1} for s in streams)
    lines = out.splitlines()
    assert lines[0].startswith("calibration cal-") and "participant p-cli" in lines[0]
    progress = [line for line in lines if line.startswith("[")]
    assert re.search(
        r"negative [2-9]/2 \(eeg \d+, eye \d+\)  neutral [2-9]/2 .*positive [2-9]/2", progress[-1]
    )
    assert f"calibrated model {name}:1 (fit " in out
    assert re.search(r"^    eeg    \d\.\d{3}  \(\d+ windows\)$", out, re.MULTILINE)
    assert f"  activated on: {', '.join(ids)}" in out or f"  activated on: {', '.join(reversed(ids))}" in out
