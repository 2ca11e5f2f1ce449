"""Tests for ``m2s simulate`` (clients.simulate_cli through clients.cli.main)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pylsl
import pytest

from clients.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _prefixes() -> list[str]:
    tag = uuid.uuid4().hex[:12]
    return ["--name-prefix", f"M2S-Test-{tag}", "--source-id-prefix", f"m2s-test-{tag}"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--speed", "0"], r"--speed must be in \(0, 1000\] \(1 = real time\), got 0"),
        (["--chunk-s", "2"], r"--chunk-s must be in \[0.005, 1\] s, got 2"),
        (["--duration", "-1"], r"--duration must be a number of seconds >= 0 \(0 = until Ctrl-C\), got -1"),
        (["--duration", "nan"], "--duration must be a number of seconds >= 0"),
        (["--subject", "15"], r"--subject must be in \[0, 15\) \(the config's n_subjects\), got 15"),
        (["--seed", "-2"], "--seed must be >= 0, got -2"),
        (["--first-trial", "-1"], "--first-trial must be >= 0, got -1"),
        (["--calibration-trials", "-1"], r"--calibration-trials must be >= 0 \(trials per class\), got -1"),
        (
            ["--modalities", "eeg,emg"],
            r"--modalities 'eeg,emg': give a comma-separated subset of .*'emg' unknown",
        ),
        (["--modalities", ","], "--modalities ',': give a comma-separated subset"),
        (["--pause", "10"], "--pause '10' is not AT:SECONDS"),
        (["--dropout", "5:0.01"], "a dropout must last at least one chunk"),
        (["--nan", "5:1", "--duration", "4"], "nan fault at 5 s never happens"),
        (
            ["--config", "/nonexistent/config.json"],
            "Synthetic config file '/nonexistent/config.json' does not exist",
        ),
        (["--name-prefix", "a b"], "name_prefix must be a non-empty string without spaces"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, match, capsys):
    """Each invalid option is refused before any stream starts, with exit status 2 and a clear message."""
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("m2s simulate: error: ")
    assert re.search(match, err), err


def test_invalid_config_file_is_refused(tmp_path, capsys):
    """A config with a bad field names the file and the field."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"trial_duration_s": 1}))
    assert main(["simulate", "--config", str(path)]) == 2
    assert "field 'trial_duration_s'" in capsys.readouterr().err


def test_help_lists_every_option(capsys):
    """--help documents the options and the fault syntax."""
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--duration", "--subject", "--seed", "--config", "--modalities", "--speed", "--chunk-s",
                   "--pause", "--dropout", "--nan", "--first-trial", "--calibration-trials", "AT:SECONDS"):  # fmt: skip
        assert option in out


def test_a_short_run_streams_and_prints_a_summary(tmp_path, capsys):
    """A run with --duration streams the configured subject's streams and ends by itself with status 0."""
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"trial_duration_s": 2, "n_trials": 4, "eeg": {"channel_names": ["FP1", "OZ"]}})
    )
    prefix = _prefixes()
    assert main(["simulate", "--config", str(path), "--duration", "0.2", "--subject", "2", "--seed", "5",
                 "--modalities", "eeg,pps", "--calibration-trials", "1", *prefix]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "subject 2, seed 5, trials 4, 5, ..." in out
    assert "calibration: trials 4-7 (1 per class, 8 s), then test trials; markers carry their phase" in out
    assert "2 ch @ 200 Hz (uV)" in out and "8 ch @ 128 Hz" in out
    assert f"source_id={prefix[3]}-eeg-s2-seed5" in out
    assert f"--attach modality=eeg,source_id={prefix[3]}-eeg-s2-seed5" in out


@pytest.mark.slow
def test_ctrl_c_stops_cleanly():
    """SIGINT (Ctrl-C) stops the command: outlets go away and the exit status is 0."""
    prefix = _prefixes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "simulate", "--modalities", "ecg", *prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert pylsl.resolve_byprop("source_id", f"{prefix[3]}-ecg-s0-seed0", timeout=10.0), "no stream"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Streaming until Ctrl-C." in out
    assert "Interrupted; stopping the simulator." in err and "samples sent" in err
    assert "Traceback" not in err
