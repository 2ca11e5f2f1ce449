"""The README's main command, `scripts/demo`: simulator -> LSL -> m2s-serve -> WebSocket, end to end."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets.sync.client

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_scripts_demo_serves_live_states_for_every_modality(tmp_path):
    """scripts/demo starts the simulator and the service; /streams shows 3 streams and /ws delivers their states."""
    port = _free_port()
    # A seed of its own keeps this run's source_ids apart from any other simulator on the machine.
    env = {**os.environ, "M2S_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo"), "--seed", "0", "--subject", "0", "--source-id-prefix",
         f"m2s-readme-{port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the service did not become ready within 90 s")
        seen: dict[str, dict] = {}
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
            deadline = time.monotonic() + 60
            while len(seen) < 3 and time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=30))
                if message["type"] == "state":
                    seen[message["state"]["modality"]] = message["state"]
        assert set(seen) == {"eeg", "eye", "ecg"}
        for state in seen.values():
            assert state["label"] in ("negative", "neutral", "positive")
            assert abs(sum(state["probabilities"].values()) - 1) < 1e-4
            assert state["model"] == {"name": "m2s-synthetic-demo", "version": 1}
        streams = httpx.get(f"{base}/streams", timeout=5).json()
        assert streams["count"] == 3 and all(s["connected"] for s in streams["data"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert f"Dashboard: {base}/" in out
