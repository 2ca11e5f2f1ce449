"""`python -m service.healthcheck`, the container health check: its URL, its verdicts and its exit codes.

A stand-in HTTP server (the standard library's, on a free loopback port) answers what the ready route can
answer; the real service is probed in tests/test_deployment.py.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from service.address import ServiceAddress
from service.config import Settings
from service.healthcheck import main, probe, ready_url

READY = {"ready": True, "models": ["demo:1"], "providers": {"demo:1": {"eeg": "CPUExecutionProvider"}}}


@contextmanager
def _answering(status: int, body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``status`` and ``body``; yields its ready URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/health/ready"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def m2s_env(monkeypatch):
    """Set M2S_* variables on an environment cleared of the developer's; returns the setter."""
    for name in [k for k in os.environ if k.startswith("M2S_")]:
        monkeypatch.delenv(name)

    def set_env(env: dict[str, str]) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return set_env


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000/v2/health/ready"),
        ({"M2S_HOST": "0.0.0.0", "M2S_PORT": "9000"}, "http://127.0.0.1:9000/v2/health/ready"),
        ({"M2S_HOST": "::"}, "http://[::1]:8000/v2/health/ready"),
        ({"M2S_HOST": "fe80::1"}, "http://[fe80::1]:8000/v2/health/ready"),
        ({"M2S_HOST": " 10.0.0.5 ", "M2S_PORT": " 8080 "}, "http://10.0.0.5:8080/v2/health/ready"),
    ],
)
def test_ready_url_follows_the_service_settings(m2s_env, env, url):
    """The URL comes from M2S_HOST / M2S_PORT as the service reads them; wildcard hosts become loopback."""
    m2s_env(env)
    assert ready_url() == url
    assert ready_url(ServiceAddress()) == url
    settings = Settings()
    assert ready_url(settings) == url  # the service's settings are a ServiceAddress


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"M2S_PORT": "http"}, r"^M2S_PORT: Input should be a valid integer"),
        (
            {"M2S_PORT": "70000"},
            r"^M2S_PORT must be 1-65535 \(or 0 to let the OS pick a free port\), got 70000",
        ),
        ({"M2S_HOST": " "}, r"^M2S_HOST is empty"),
    ],
)
def test_ready_url_refuses_what_the_service_refuses(m2s_env, env, match):
    """Settings the service would not start with are refused with the service's own message, one line."""
    m2s_env(env)
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValueError, match=match):
        ready_url()


def test_ready_url_refuses_port_0(m2s_env):
    """Port 0 (any free port) is valid for the service but cannot be probed: ValueError naming M2S_PORT."""
    m2s_env({"M2S_PORT": "0"})
    with pytest.raises(ValueError, match=r"M2S_PORT must be 1-65535 to be probed, got 0"):
        ready_url()


def test_probe_ready_service():
    """HTTP 200 with ready=true is ready; the detail names the providers in use."""
    with _answering(200, json.dumps(READY).encode()) as url:
        ready, detail = probe(url, 5)
    assert ready is True
    assert json.loads(detail.removeprefix("ready: ")) == READY["providers"]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (503, json.dumps({**READY, "ready": False}).encode(), "answered HTTP 503"),
        (200, json.dumps({**READY, "ready": False}).encode(), "without ready=true"),
        (200, b"<html>hello</html>", "not JSON"),
        (200, b"[true]", "without ready=true"),
    ],
    ids=["warming-up", "ready-false", "not-json", "not-an-object"],
)
def test_probe_not_ready_answers(status, body, reason):
    """A 503, a 200 whose body does not say ready=true, or a non-JSON answer is not ready."""
    with _answering(status, body) as url:
        ready, detail = probe(url, 5)
    assert ready is False and reason in detail


def test_probe_nothing_listening():
    """No server on the port: not ready, 'did not answer'."""
    ready, detail = probe(f"http://127.0.0.1:{_closed_port()}/v2/health/ready", 2)
    assert ready is False and "did not answer" in detail


@pytest.mark.parametrize(
    ("url", "timeout", "error", "match"),
    [
        (8000, 5, TypeError, "url must be a string, got int"),
        ("ftp://127.0.0.1/ready", 5, ValueError, "must start with http:// or https://"),
        ("http://127.0.0.1:8000/v2/health/ready", 0, ValueError, "timeout_s must be a positive number"),
    ],
)
def test_probe_validates_its_arguments(url, timeout, error, match):
    """Wrong types and values are refused before any request."""
    with pytest.raises(error, match=match):
        probe(url, timeout)


def test_main_exit_codes(monkeypatch, capsys):
    """0 when ready, 1 when not, 2 for a bad M2S_PORT; one line on stdout or stderr says why."""
    with _answering(200, json.dumps(READY).encode()) as url:
        assert main(["--url", url]) == 0
    assert capsys.readouterr().out.startswith("healthcheck: ready: ")
    monkeypatch.setenv("M2S_HOST", "127.0.0.1")
    monkeypatch.setenv("M2S_PORT", str(_closed_port()))
    assert main(["--timeout", "2"]) == 1
    assert "did not answer" in capsys.readouterr().err
    monkeypatch.setenv("M2S_PORT", "0")
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("healthcheck: error: M2S_PORT must be 1-65535")


def test_module_runs_without_the_service_stack():
    """`python -m service.healthcheck` imports neither FastAPI, onnxruntime nor numpy (fast probe).

    It reads M2S_HOST / M2S_PORT through pydantic-settings (service.address), not service.config.
    """
    code = (
        "import sys, runpy; sys.argv = ['healthcheck', '--url', 'http://127.0.0.1:1/v2/health/ready', "
        "'--timeout', '1']\n"
        "try:\n    runpy.run_module('service.healthcheck', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "heavy = sorted(m for m in ('fastapi', 'onnxruntime', 'numpy', 'scipy', 'service.config') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1 []", done.stderr
