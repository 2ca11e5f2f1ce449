"""`m2s-serve`: flags generated from the settings, their errors, a real start and stop, and the missing-runtime case.

The runtime is an extra (`cpu` or `gpu`), so its absence is explained.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import Field

from service import cli
from service.cli import EXIT_STARTUP_FAILED, NO_ONNXRUNTIME, check_onnxruntime
from service.config import Settings
from tests.no_torch import run_without

CPU = "CPUExecutionProvider"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SERVE = """
import sys
from service.cli import main
sys.exit(main(["--port", "0", "--log-level", "warning"]))
"""


def test_check_passes_with_onnxruntime_installed():
    """With the `cpu` extra installed (this environment) the check lets the service start."""
    assert check_onnxruntime() is None


def test_serve_without_onnxruntime_exits_3_with_the_install_command():
    """Without onnxruntime, m2s-serve exits 3 before serving and says which extra to install."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}
    done = run_without(_SERVE, blocked=("onnxruntime",), timeout=120, env=env)
    assert done.returncode == EXIT_STARTUP_FAILED, done.stderr
    assert done.stderr.startswith(f"m2s-serve: error: {NO_ONNXRUNTIME}")
    assert "pip install 'm2s-live[cpu]' (or 'm2s-live[gpu]' on a CUDA machine)" in done.stderr
    assert "Uvicorn running" not in done.stderr


# -- flags generated from Settings ---------------------------------------------------------------------


def _setting_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest in Settings.model_fields}


def test_every_setting_has_a_flag_whose_help_names_its_variable():
    """Each Settings field has a described flag that names its M2S_* variable and states the default."""
    actions = _setting_actions(cli.build_parser())
    assert set(actions) == set(Settings.model_fields)
    assert set(cli._STYLES) | set(cli._EXPLICIT) <= set(Settings.model_fields), "a style for a gone field"
    flags = cli.setting_flags()
    for name, field in Settings.model_fields.items():
        action = actions[name]
        assert field.description, f"Settings.{name} needs a description: it is the help of {flags[name]}"
        assert action.option_strings == [flags[name]]
        assert action.default is None, "an unset flag must leave the M2S_* variable in charge"
        assert f"M2S_{name.upper()}" in action.help
        assert "default" in action.help or name == "attach"


def test_flags_keep_their_documented_names_and_metavars():
    """The flags and metavars that README, images and users rely on survive the generation."""
    actions = _setting_actions(cli.build_parser())
    assert {n: (a.option_strings[0], a.metavar) for n, a in actions.items()} == {
        "host": ("--host", None),
        "port": ("--port", "PORT"),
        "model_repository": ("--repository", "DIR"),
        "calibrated_repository": ("--calibrated-repository", "DIR"),
        "recordings_dir": ("--recordings-dir", "DIR"),
        "default_model": ("--model", "NAME[:VERSION]"),
        "attach": ("--attach", "SPEC"),
        "api_token": ("--token", "TOKEN"),
        "max_body_bytes": ("--max-body-bytes", "N"),
        "max_inflight_body_bytes": ("--max-inflight-body-bytes", "N"),
        "body_read_timeout_s": ("--body-read-timeout", "S"),
        "max_streams": ("--max-streams", "N"),
        "max_ws_clients": ("--max-ws-clients", "N"),
        "providers": ("--providers", "EP[,EP...]"),
        "stale_after_s": ("--stale-after", "S"),
        "resolve_timeout_s": ("--resolve-timeout", "S"),
        "ws_queue_size": ("--ws-queue-size", "N"),
        "batch_max_wait_s": ("--batch-max-wait", "S"),
        "batch_max_windows": ("--batch-max-windows", "N"),
        "model_poll_interval_s": ("--model-poll-interval", "S"),
        "workers": ("--workers", "N"),
    }
    assert actions["port"].help == "TCP port, 0 = any free one (M2S_PORT; default 8000)"
    assert actions["stale_after_s"].help.endswith("(M2S_STALE_AFTER_S; default 2)")
    assert "(M2S_API_TOKEN, preferred: command lines are visible" in actions["api_token"].help


class _Extended(Settings):
    """Settings with fields the CLI has never heard of."""

    drain_timeout_s: float = Field(5.0, description="how long shutdown waits for streams, s")
    spool_size: int = Field(3, gt=0, description="windows kept per stream")
    json_logs: bool = Field(False, description="log one JSON object per line")
    tags: list[str] = Field([], description="labels for the metrics")


def test_a_new_setting_gets_a_flag_without_touching_the_cli(monkeypatch):
    """A field added to Settings gets a flag from its name, type, description and default; it overrides
    its M2S_* variable like the others, and a bad value names the flag."""
    for name in [k for k in os.environ if k.startswith("M2S_")]:
        monkeypatch.delenv(name)
    parser = cli.build_parser(_Extended)
    help_text = " ".join(parser.format_help().split())
    assert (
        "--drain-timeout S how long shutdown waits for streams, s (M2S_DRAIN_TIMEOUT_S; default 5)"
        in help_text
    )
    assert "--spool-size N windows kept per stream (M2S_SPOOL_SIZE; default 3)" in help_text
    assert (
        "--json-logs, --no-json-logs log one JSON object per line (M2S_JSON_LOGS; default off)" in help_text
    )
    assert "--tags JSON labels for the metrics (M2S_TAGS; default: unset)" in help_text

    monkeypatch.setenv("M2S_SPOOL_SIZE", "7")
    monkeypatch.setenv("M2S_JSON_LOGS", "true")
    args = parser.parse_args(["--drain-timeout", "0.5", "--no-json-logs", "--tags", '["lab-a"]'])
    settings = cli.settings_from_args(args, _Extended)
    assert (settings.drain_timeout_s, settings.spool_size, settings.json_logs) == (0.5, 7, False)
    assert settings.tags == ["lab-a"]
    with pytest.raises(ValueError) as bad:
        cli.settings_from_args(parser.parse_args(["--spool-size", "0"]), _Extended)
    assert str(bad.value) == "--spool-size: Input should be greater than 0."


def test_serve_help_lists_every_flag(capsys):
    """m2s-serve --help documents every setting flag with its environment variable."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in cli.setting_flags().values():
        assert flag in text
    for env in (
        "M2S_MODEL_REPOSITORY",
        "M2S_DEFAULT_MODEL",
        "M2S_PORT",
        "M2S_ATTACH",
        "M2S_API_TOKEN",
        "M2S_PROVIDERS",
    ):
        assert env in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--attach", "modality=eeg"],
            "m2s-serve: error: argument --attach: --attach 'modality=eeg' does not say which LSL stream to use; "
            "add type=, name= or source_id=, e.g. --attach modality=eeg,type=EEG. See m2s-serve --help.",
        ),
        (
            ["--port", "70000"],
            "m2s-serve: error: --port: M2S_PORT must be 1-65535 (or 0 to let the OS pick a free port), got 70000. "
            "See m2s-serve --help.",
        ),
        (["--port", "x"], "m2s-serve: error: argument --port: invalid int value: 'x' See m2s-serve --help."),
        (
            ["--max-body-bytes", "10"],
            "m2s-serve: error: --max-body-bytes: M2S_MAX_BODY_BYTES must be at least 1024 bytes, got 10. "
            "See m2s-serve --help.",
        ),
    ],
)
def test_serve_bad_input_exits_2_with_one_line(capsys, argv, message):
    """Invalid flags exit with status 2 and one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_flags_override_environment(monkeypatch):
    """A flag wins over its M2S_* variable; unset flags fall back to the environment."""
    monkeypatch.setenv("M2S_PORT", "1234")
    monkeypatch.setenv("M2S_HOST", "0.0.0.0")
    monkeypatch.setenv("M2S_ATTACH", '[{"modality": "ecg", "type": "ECG"}]')
    args = cli.build_parser().parse_args(
        ["--port", "4321", "--attach", "modality=eeg,source_id=amp-1,model=m2s-synthetic-demo:1"]
    )
    settings = cli.settings_from_args(args)
    assert (settings.port, settings.host) == (4321, "0.0.0.0")
    assert [(a.modality, a.source_id, a.model) for a in settings.attach] == [
        ("eeg", "amp-1", "m2s-synthetic-demo:1")
    ]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_and_stops_cleanly_on_sigint():
    """A real m2s-serve process becomes ready, then exits 0 on SIGINT after a graceful shutdown."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "--port", str(port), "--providers", CPU, "--log-level", "info"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "m2s-serve did not become ready within 60 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "shut down" in output
