"""Tests for ``m2s predict`` and ``m2s watch`` against the REAL service app under uvicorn (demo bundle).

Expected answers are plain httpx requests to the same server with bodies built here by hand.
"""

from __future__ import annotations

import json
import re
import threading

import httpx
import numpy as np
import pytest

from clients.cli import main
from clients.sdk import Client, EmotionState
from clients.watch_cli import format_line
from models.repository import DEMO_BUNDLE
from tests.clients.conftest import wait_until


@pytest.fixture(scope="module")
def features(server_url):
    """A seeded (T, D) EEG feature window of the demo bundle's shape."""
    eeg = httpx.get(f"{server_url}/v2/models/{DEMO_BUNDLE}").json()["modalities"]["eeg"]
    return np.random.default_rng(0).normal(1.0, 0.5, size=(eeg["seq_len"], eeg["dim"]))


def _rest(url: str, body: dict) -> dict:
    response = httpx.post(f"{url}/predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_json_file(server_url, features, tmp_path, capsys):
    """A .json request body prints the REST label and each class probability."""
    body = {"modality": "eeg", "features": features.tolist()}
    expected = _rest(server_url, body)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    code, out, _ = _run(capsys, "predict", str(path), "--url", server_url)
    assert code == 0
    assert out.splitlines()[0].startswith(f"{expected['label']}  (eeg, {DEMO_BUNDLE}:")
    for cls, p in expected["probabilities"].items():
        assert any(line.split()[0] == cls and line.endswith(f"{p:.3f}") for line in out.splitlines()[1:])


def test_predict_npy_features_json_output(server_url, features, tmp_path, capsys):
    """A .npy (T, D) file with --modality and --json prints the EmotionState JSON of the REST answer."""
    expected = _rest(server_url, {"modality": "eeg", "features": features.tolist()})
    path = tmp_path / "window.npy"
    np.save(path, features)
    code, out, _ = _run(capsys, "predict", str(path), "--modality", "eeg", "--url", server_url, "--json")
    assert code == 0
    state = json.loads(out)
    assert state["label"] == expected["label"]
    assert state["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_predict_signal_npy_and_csv(server_url, eeg_signal, tmp_path, capsys):
    """A raw signal as .npy (channels × samples, --channels) and as .csv (header, samples × channels) agree with REST."""
    data, labels = eeg_signal
    data = np.round(data[:, :2400], 6)  # the CSV holds 6 decimals: send REST the same numbers
    expected = _rest(
        server_url,
        {"modality": "eeg", "signal": {"sfreq": 200.0, "channels": labels, "data": data.tolist()}},
    )
    npy = tmp_path / "signal.npy"
    np.save(npy, data)
    csv_path = tmp_path / "signal.csv"
    np.savetxt(csv_path, data.T, delimiter=",", header=",".join(labels), comments="", fmt="%.6f")
    for argv in (
        ("predict", str(npy), "--sfreq", "200", "--channels", ",".join(labels)),
        ("predict", str(csv_path), "--sfreq", "200"),
    ):
        code, out, err = _run(capsys, *argv, "--modality", "eeg", "--url", server_url, "--json")
        assert code == 0, err
        assert json.loads(out)["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_predict_service_error_exits_2_with_detail(server_url, features, tmp_path, capsys):
    """A request the service refuses (422) exits 2 and prints the service's detail."""
    path = tmp_path / "short.npy"
    np.save(path, features[:-1])
    detail = httpx.post(
        f"{server_url}/predict", json={"modality": "eeg", "features": features[:-1].tolist()}
    ).json()["detail"]
    code, out, err = _run(capsys, "predict", str(path), "--modality", "eeg", "--url", server_url)
    assert code == 2 and out == ""
    assert err == f"m2s predict: error: 422: {detail}\n"


@pytest.mark.parametrize(
    ("name", "content", "extra", "message"),
    [
        ("a.json", '{"features": [[1]]}', (), "no modality: pass --modality"),
        ("a.json", "[1, 2]", (), "must hold a JSON object"),
        ("a.json", "{not json", (), "is not valid JSON"),
        (
            "a.json",
            '{"modality": "eeg", "features": [[1]], "extra": 1}',
            (),
            r"unknown request field\(s\) \['extra'\]",
        ),
        ("a.txt", "1,2", ("--modality", "eeg"), "unsupported file type '.txt'"),
        ("a.csv", "a,b\n1,2\n", ("--modality", "eeg"), "a features .csv has no header row"),
        ("a.csv", "1,2\n1,x\n", ("--modality", "eeg"), "must hold numbers only"),
        ("a.csv", "1,2\n3,4\n", ("--modality", "eeg", "--sfreq", "200"), "name the signal's channels"),
        (
            "a.csv",
            "1,2\n3,4\n",
            ("--modality", "eeg", "--sfreq", "200", "--channels", "A"),
            r"1 channel name\(s\) for 2",
        ),
        (
            "a.csv",
            "1,2\n3,4\n",
            ("--modality", "eeg", "--sfreq", "-1", "--channels", "A,B"),
            "--sfreq must be a positive",
        ),
    ],
)
def test_predict_bad_input_exits_2(tmp_path, capsys, name, content, extra, message):
    """Unreadable or incomplete input exits 2 with a message saying what to fix, before any request."""
    path = tmp_path / name
    path.write_text(content)
    code, out, err = _run(capsys, "predict", str(path), "--url", "http://127.0.0.1:9", *extra)
    assert code == 2 and out == ""
    assert err.startswith("m2s predict: error: ")
    assert re.search(message, err), err


def test_predict_missing_file_exits_2(tmp_path, capsys):
    """A missing file exits 2."""
    code, _, err = _run(capsys, "predict", str(tmp_path / "nope.json"))
    assert code == 2 and "does not exist" in err


def test_format_line():
    """One line: time, stream, label, bars with probabilities, data age and the STALE flag."""
    state = EmotionState.model_validate(
        {
            "label": "positive",
            "probabilities": {"negative": 0.0, "neutral": 0.25, "positive": 0.75},
            "modality": "eeg",
            "model": {"name": "m", "version": 1},
            "stream_id": "eeg-1",
            "wall_time": 0.0,
            "data_age_s": 0.5,
            "stale": True,
        }
    )
    line = format_line(state, width=4)
    assert "eeg-1  positive" in line
    assert "negative ···· 0.00" in line and "neutral █··· 0.25" in line and "positive ███· 0.75" in line
    assert line.endswith("age  0.50 s STALE")


def test_watch_refused_stream_exits_2(server_url, capsys):
    """--stream naming no attached stream exits 2 with the service's reason."""
    code, _, err = _run(capsys, "watch", "--url", server_url, "--stream", "ghost")
    assert code == 2 and "4404" in err and "Unknown stream 'ghost'" in err


def test_watch_negative_count_exits_2(capsys):
    """--count below 0 exits 2."""
    code, _, err = _run(capsys, "watch", "--count", "-1")
    assert code == 2 and "--count must be >= 0" in err


@pytest.mark.slow
def test_watch_count_prints_live_states(server_url, eeg_outlet, capsys):
    """``m2s watch --count 3`` prints three lines of the attached stream's states, then exits 0."""
    outlet = eeg_outlet()
    with Client(server_url) as client:
        info = client.attach("eeg", source_id=outlet.source_id)
        wait_until(
            lambda: any(s.id == info.id and s.connected for s in client.streams()),
            15,
            "the stream to connect",
        )
    pusher = threading.Timer(0.5, outlet.push, args=(16.0,))  # after watch has subscribed
    pusher.start()
    try:
        code, out, _ = _run(capsys, "watch", "--url", server_url, "--stream", info.id, "--count", "3")
    finally:
        pusher.join()
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    classes = ("negative", "neutral", "positive")
    for line in lines:
        assert f"  {info.id}  " in line and line.split()[2] in classes and all(c in line for c in classes)
    with Client(server_url) as client:
        client.detach(info.id)
