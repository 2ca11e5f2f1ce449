"""``m2s-serve`` as a child process on a free local port, ready when the context is entered.

For scripts that need the service as a separate process (benchmarks measuring its CPU, tests that kill
it): :class:`ServiceProcess` starts ``m2s-serve`` from this environment with the given options on a
free port of 127.0.0.1, waits until ``/v2/health/ready`` answers 200 (failing with the service's own
messages if it exits first), and stops it at exit (SIGTERM, then SIGKILL after ``stop_timeout_s``).
Its stderr goes to a temporary file, read back by :meth:`ServiceProcess.log`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """Run ``m2s-serve OPTIONS --port <free>`` until the context exits.

    Parameters
    ----------
    options : sequence of str
        ``m2s-serve`` options (not ``--port``), e.g. ``["--recordings-dir", "/tmp/r"]``.
    ready_timeout_s : float
        How long the service may take to become ready (model load and warm-up).
    stop_timeout_s : float
        How long a SIGTERM may take before SIGKILL.
    preexec_fn : callable | None
        Run in the child before ``m2s-serve`` starts (e.g. to set a resource limit).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``.
    process : subprocess.Popen | None
        The child, while running.
    """

    def __init__(
        self,
        options: Sequence[str] = (),
        *,
        ready_timeout_s: float = 90.0,
        stop_timeout_s: float = 30.0,
        preexec_fn: Callable[[], None] | None = None,
    ):
        self.options = [str(o) for o in options]
        if "--port" in self.options:
            raise ValueError("ServiceProcess chooses the port; leave --port out of the options.")
        self.ready_timeout_s = float(ready_timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+")

    def log(self) -> str:
        """Everything the service wrote to stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def __enter__(self) -> ServiceProcess:
        command = [str(Path(sys.executable).parent / "m2s-serve"), *self.options, "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._log, text=True, preexec_fn=self.preexec_fn
        )
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"m2s-serve exited with status {self.process.returncode}: {self.log()[-3000:]}"
                    )
                try:
                    if http.get("/v2/health/ready").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"m2s-serve was not ready within {self.ready_timeout_s:g} s: {self.log()[-3000:]}"
                    )
                time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and wait for the process to end; its exit status."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=self.stop_timeout_s)

    def stop(self) -> None:
        """SIGTERM (graceful: lifespan shutdown), SIGKILL if it does not end in time; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()
