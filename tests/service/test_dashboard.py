"""The dashboard (service/static) in headless Chromium while EmotionStates flow over a real WebSocket.

Chromium is driven over the Chrome DevTools protocol (CDP): it is launched with ``--remote-debugging-port=0``,
the port is read from ``DevToolsActivePort`` in its profile folder, and the page target is controlled over a
websocket (``websockets`` sync client): navigate, evaluate JavaScript against the live DOM, capture a PNG.

Servers:

- the real app (``service.app.create_app``) under uvicorn with a real pylsl outlet attached (synthetic EEG
  with channel labels and units in ``desc``): the live path end to end, including ``stale`` appearing and
  clearing when the outlet stops and resumes;
- a small stand-in FastAPI app (``_standin_app``) that serves the same ``service/static`` files and emits
  synthetic EmotionStates at 10 Hz with the contract's message shapes: fast and deterministic, and it
  requires a bearer token, so it also proves that ``?token=`` reaches REST and WS and that the page backs
  off and retries when the WebSocket is refused;
- the real app again for the calibration panel (``/calibrations``): on a stream whose outlet does not exist
  (the controls, errors, REST labels and their marks on the timeline) and on a real outlet (live window
  counts, a used trial placed by the states' LSL clock). Calibrated models go under tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.staticfiles import StaticFiles
from PIL import Image
from websockets.sync.client import connect as ws_connect

from tests.system_tools import require_tool

STATIC = Path(__file__).resolve().parents[2] / "service" / "static"
CLASSES = ("negative", "neutral", "positive")
TOKEN = "s3cret-token"
STREAM_ID = "eeg-1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,800",
    "--force-device-scale-factor=1",
)

pytestmark = pytest.mark.slow


def _chromium() -> str:
    return require_tool(
        "chromium", "chromium-browser", install_hint="apt-get install chromium; CI installs it via .ci/run"
    )


# --------------------------------------------------------------------------- stand-in server


@dataclass
class _Control:
    """What the stand-in server emits; the test flips ``stale`` and reads the counters."""

    stale: bool = False
    n_states: int = 0
    ws_tokens: list[str | None] = field(default_factory=list)
    rest_auth: list[str | None] = field(default_factory=list)
    model_requests: list[str] = field(default_factory=list)


def _standin_app(control: _Control):
    """FastAPI app: real static files, synthetic EmotionStates at 10 Hz on /ws, contract-shaped REST."""
    app = FastAPI()

    def check(request: Request) -> None:
        auth = request.headers.get("authorization")
        control.rest_auth.append(auth)
        if auth != f"Bearer {TOKEN}":
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.get("/streams")
    def streams(request: Request) -> dict:
        check(request)
        public = {
            "id": STREAM_ID,
            "modality": "eeg",
            "model": {"name": "m2s-synthetic-demo", "version": 1},
            "selector": {"type": "EEG", "name": None, "source_id": "synthetic-eeg"},
            "connected": True,
            "stale": control.stale,
            "data_age_s": 3.5 if control.stale else 0.05,
            "effective_srate": 200.0,
            "n_reconnects": 1,
            "n_states": control.n_states,
            "last_error": "stream lost; re-resolved" if control.stale else None,
            "channels": ["Fp1", "Fp2", "C3", "C4"],
            "sfreq": 200.0,
        }
        return {"data": [public], "count": 1}

    @app.get("/v2/health/ready")
    def ready(request: Request) -> dict:
        check(request)
        return {
            "ready": True,
            "models": ["m2s-synthetic-demo:1"],
            "providers": {
                "m2s-synthetic-demo:1": {"eeg": "CPUExecutionProvider", "ecg": "CUDAExecutionProvider"}
            },
        }

    @app.get("/v2/models/{name}/versions/{version}")
    def model(name: str, version: int, request: Request) -> dict:
        check(request)
        control.model_requests.append(f"{name}:{version}")
        return {"name": name, "version": version, "class_names": list(CLASSES), "modalities": {}}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        token = websocket.query_params.get("token")
        control.ws_tokens.append(token)
        if token != TOKEN:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        rng = np.random.default_rng(0)
        try:
            await websocket.send_json({"type": "dropped", "count": 3})
            while True:
                logits = rng.normal(size=len(CLASSES))
                p = np.exp(logits) / np.exp(logits).sum()
                now = time.time()
                state = {
                    "label": CLASSES[int(np.argmax(p))],
                    "probabilities": dict(zip(CLASSES, map(float, p), strict=True)),
                    "modality": "eeg",
                    "model": {"name": "m2s-synthetic-demo", "version": 1},
                    "stream_id": STREAM_ID,
                    "lsl_time": now - 0.05,
                    "wall_time": now,
                    "data_age_s": 3.5 if control.stale else 0.05,
                    "stale": control.stale,
                    "latency_ms": 12.0,
                }
                await websocket.send_json({"type": "state", "state": state})
                control.n_states += 1
                await asyncio.sleep(0.1)
        except (WebSocketDisconnect, RuntimeError):
            return

    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app


@pytest.fixture
def standin_server() -> Iterator[tuple[str, _Control]]:
    """The stand-in app under uvicorn on a free loopback port; yields (base URL, control)."""
    control = _Control()
    with _serve(_standin_app(control)) as base:
        yield base, control


class _SyntheticEegOutlet:
    """A real pylsl outlet looping one synthetic trial (the demo bundle's EEG montage, µV) at 200 Hz.

    ``pushing`` paced 0.1-s chunks from a thread; clear it to starve the service (the outlet stays alive).
    """

    CHUNK_S = 0.1

    def __init__(self, source_id: str):
        import pylsl

        from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
        from synthetic import SyntheticConfig, generate_trial

        manifest = json.loads((DEFAULT_REPOSITORY / DEMO_BUNDLE / "1" / "manifest.json").read_text())
        config = SyntheticConfig(**manifest["training"]["synthetic_config"])
        trial = generate_trial(config, 0, 0, 0, modalities=["eeg"])
        self.data = np.ascontiguousarray(trial.signals["eeg"].T, dtype=np.float32)  # (n_times, n_channels) µV
        self.sfreq = trial.sfreq["eeg"]
        info = pylsl.StreamInfo(
            "m2s-dashboard-eeg", "EEG", self.data.shape[1], self.sfreq, "float32", source_id
        )
        channels = info.desc().append_child("channels")
        for label, unit in zip(trial.channel_names["eeg"], trial.units["eeg"], strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", "microvolts" if unit == "uV" else unit)
        self.outlet = pylsl.StreamOutlet(info)
        self.pushing = threading.Event()
        self.pushing.set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        chunk = round(self.CHUNK_S * self.sfreq)
        start = 0
        target = time.perf_counter()
        while not self._closed.is_set():
            target += self.CHUNK_S
            self._closed.wait(max(0.0, target - time.perf_counter()))
            if not self.pushing.is_set():
                continue
            if start + chunk > len(self.data):
                start = 0
            self.outlet.push_chunk(self.data[start : start + chunk])
            start += chunk

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        del self.outlet


@contextlib.contextmanager
def _serve(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # the real app loads and warms its model first
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.fixture
def real_server() -> Iterator[tuple[str, _SyntheticEegOutlet]]:
    """The real app (``service.app.create_app``) attached to a real synthetic-EEG outlet; (base URL, outlet)."""
    from service.app import create_app
    from service.config import AttachRequest, Settings

    source_id = f"m2s-dashboard-{uuid.uuid4().hex[:12]}"
    outlet = _SyntheticEegOutlet(source_id)
    settings = Settings(
        port=0,
        api_token=TOKEN,
        stale_after_s=1.0,
        attach=[AttachRequest(modality="eeg", source_id=source_id)],
    )
    try:
        with _serve(create_app(settings)) as base:
            yield base, outlet
    finally:
        outlet.close()


# --------------------------------------------------------------------------- Chromium over CDP


class _Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen(
            [
                _chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port: {self._stderr()}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        self._exit = contextlib.ExitStack()
        self.cdp = self._exit.enter_context(
            ws_connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        )
        self._id = 0
        self.console: list[str] = []
        self.send("Runtime.enable")
        self.send("Page.enable")
        # --window-size includes the (invisible) window frame in new headless mode: pin the viewport itself.
        self.send(
            "Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False
        )

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return (self.process.stderr.read() or b"").decode(errors="replace")[-2000:]

    def send(self, method: str, timeout: float = 30.0, **params) -> dict:
        """Send one CDP command and return its result (events that arrive meanwhile are skimmed)."""
        self._id += 1
        self.cdp.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.cdp.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(message["params"]["exceptionDetails"])[:500])
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method} failed: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0):
        """Poll ``expression`` until it is truthy; return its value or fail with the last one."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{expression!r} still {value!r} after {timeout} s; page errors: {self.console}")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        if getattr(self, "_exit", None) is not None:
            self._exit.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[_Chromium]:
    chromium = _Chromium(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


# --------------------------------------------------------------------------- tests

CARD = f"document.querySelector('[data-stream-id=\"{STREAM_ID}\"]')"


def test_dashboard_shows_live_stream(standin_server, browser, tmp_path):
    """Card, label from the class names, plotted points, health, model info, stale toggle and a real PNG."""
    base, control = standin_server
    browser.navigate(f"{base}/?token={TOKEN}")

    assert browser.wait_for("document.body.dataset.ws === 'open' && document.body.dataset.ws")
    browser.wait_for(f"{CARD} && Number({CARD}.querySelector('canvas.plot').dataset.points) >= 30")
    # The token went to the WebSocket as ?token= and to every REST call as a bearer header.
    assert control.ws_tokens and set(control.ws_tokens) == {TOKEN}
    assert control.rest_auth and set(control.rest_auth) == {f"Bearer {TOKEN}"}

    label = browser.evaluate(f"{CARD}.querySelector('.label').textContent")
    assert label in CLASSES
    assert browser.evaluate(f"{CARD}.querySelector('.label').getAttribute('aria-live')") == "polite"
    legend = browser.evaluate(f"[...{CARD}.querySelectorAll('.legend li')].map(li => li.textContent)")
    assert legend == list(CLASSES)
    assert browser.evaluate(f"Number({CARD}.querySelector('canvas.plot').dataset.series)") == len(CLASSES)
    # The probability bars are the state's numbers: they sum to 100 % (up to per-bar rounding).
    shown = browser.evaluate(
        f"[...{CARD}.querySelectorAll('.probs .prob-value')].map(v => parseFloat(v.textContent))"
    )
    assert len(shown) == len(CLASSES) and abs(sum(shown) - 100) <= 2

    # Health and model info from GET /streams and /v2/....
    browser.wait_for(f"{CARD}.querySelector('.srate').textContent === '200.0 Hz'")
    text = browser.evaluate(
        f"Object.fromEntries([...{CARD}.querySelectorAll('dd')].map(d => [d.className, d.textContent]))"
    )
    assert text["connected"] == "yes"
    assert text["reconnects"] == "1"
    assert text["last-error"] == "none"
    assert text["model-ref"] == "m2s-synthetic-demo:1"
    assert text["modality"] == "eeg"
    assert text["provider"] == "CPU"  # this model's EEG provider, not the service-wide "CPU, CUDA"
    assert browser.evaluate("document.getElementById('service-providers').textContent") == "CPU, CUDA"
    assert control.model_requests == ["m2s-synthetic-demo:1"]  # fetched once, for the version in use
    assert text["channels"] == "4 @ 200 Hz"
    assert browser.evaluate("document.getElementById('dropped-count').dataset.count") == "3"
    assert browser.evaluate(f"{CARD}.querySelector('.stale').hidden") is True
    # This stand-in has no /calibrations (404): no calibration panel.
    assert browser.evaluate("document.getElementById('calibration').hidden") is True

    # Stale appears, then clears.
    control.stale = True
    browser.wait_for(f"!{CARD}.querySelector('.stale').hidden && {CARD}.dataset.stale === 'true'", timeout=10)
    browser.wait_for(f"{CARD}.querySelector('.last-error').textContent.includes('re-resolved')", timeout=10)
    png_stale = browser.screenshot()
    (tmp_path / "dashboard_stale.png").write_bytes(png_stale)
    control.stale = False
    browser.wait_for(f"{CARD}.querySelector('.stale').hidden && {CARD}.dataset.stale === 'false'", timeout=10)

    png = browser.screenshot()
    (tmp_path / "dashboard.png").write_bytes(png)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.size == (1280, 800)
    pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, plot lines, badges: not a blank page
    # The plot's class colours (Okabe-Ito blue / vermillion / green) are on screen.
    for colour in ((0x00, 0x72, 0xB2), (0xD5, 0x5E, 0x00), (0x00, 0x9E, 0x73)):
        assert np.all(pixels == colour, axis=-1).sum() > 50, colour
    assert browser.console == []


def test_dashboard_reconnects_websocket(standin_server, browser):
    """Without the token the WebSocket is refused; the page shows it offline and keeps retrying with backoff."""
    base, control = standin_server
    browser.navigate(f"{base}/")
    browser.wait_for("document.getElementById('ws-status').dataset.state === 'closed'")
    browser.wait_for("Number(document.getElementById('ws-status').dataset.attempts) >= 2", timeout=10)
    assert len(control.ws_tokens) >= 2 and set(control.ws_tokens) == {None}
    status = browser.evaluate("document.querySelector('#ws-status .ws-text').textContent")
    assert status.startswith("offline, retry in")
    error = browser.wait_for(
        "!document.getElementById('service-error').hidden && "
        "document.getElementById('service-error').textContent"
    )
    assert "?token=" in error


def test_dashboard_with_real_service(real_server, browser, tmp_path):
    """Real app + real LSL outlet: the card fills from the real pipeline, stale appears when data stops and clears."""
    base, outlet = real_server
    browser.navigate(f"{base}/?token={TOKEN}")
    browser.wait_for("document.body.dataset.ws === 'open'", timeout=20)
    stream_id = browser.wait_for("document.querySelector('[data-stream-id]')?.dataset.streamId", timeout=20)
    assert stream_id.startswith("eeg")
    card = f"document.querySelector('[data-stream-id=\"{stream_id}\"]')"
    # The demo EEG model needs 5 feature vectors 2 s apart: the first state comes after about 10 s of data.
    browser.wait_for(f"Number({card}.querySelector('canvas.plot').dataset.points) >= 2 * 3", timeout=45)
    assert browser.evaluate(f"{card}.querySelector('.label').textContent") in CLASSES
    browser.wait_for(f"{card}.querySelector('.connected').textContent === 'yes'")
    text = browser.evaluate(
        f"Object.fromEntries([...{card}.querySelectorAll('dd')].map(d => [d.className, d.textContent]))"
    )
    assert text["model-ref"] == "m2s-synthetic-demo:1"
    assert text["modality"] == "eeg"
    assert text["provider"] in {"CPU", "CUDA"}
    assert text["channels"] == "62 @ 200 Hz"
    srate = float(text["srate"].removesuffix(" Hz"))
    assert 150 < srate < 250  # paced at 200 Hz
    assert browser.evaluate(f"{card}.querySelector('.stale').hidden") is True

    outlet.pushing.clear()
    browser.wait_for(f"!{card}.querySelector('.stale').hidden", timeout=15)
    outlet.pushing.set()
    browser.wait_for(f"{card}.querySelector('.stale').hidden", timeout=15)

    png = browser.screenshot()
    (tmp_path / "dashboard_real.png").write_bytes(png)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert browser.console == []


# --------------------------------------------------------------------------- calibration panel

CAL = "document.getElementById"


def _api(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    """One REST call to the real app with the bearer token; (status, JSON answer)."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _open_panel(browser: _Chromium, stream_id: str) -> None:
    browser.wait_for(f"!{CAL}('calibration').hidden", timeout=20)
    browser.evaluate(f"{CAL}('calibration').open = true")
    # The attached stream is offered as a checkbox with a label; exactly it is ticked.
    browser.wait_for(f"!!document.querySelector('#cal-stream-list input[value=\"{stream_id}\"]')")
    browser.evaluate(
        "[...document.querySelectorAll('#cal-stream-list input')].forEach(i => { i.checked = "
        f"i.value === '{stream_id}'; }})"
    )


def _start(browser: _Chromium, participant: str) -> None:
    browser.evaluate(f"{CAL}('cal-participant').value = {json.dumps(participant)}")
    browser.evaluate(f"{CAL}('cal-start-button').click()")


def _click_label(browser: _Chromium, label: str) -> None:
    selector = "#cal-end-trial" if label == "" else f'.cal-label[data-label="{label}"]'
    browser.wait_for(f"!document.querySelector('{selector}').disabled")
    browser.evaluate(f"document.querySelector('{selector}').click()")


def _markers(browser: _Chromium, stream_id: str) -> list[dict]:
    return browser.evaluate(
        f"[...document.querySelectorAll('[data-stream-id=\"{stream_id}\"] .markers li.marker')]"
        ".map(m => ({...m.dataset, text: m.textContent, width: parseFloat(m.style.width)}))"
    )


@pytest.fixture
def calibration_server(tmp_path: Path) -> Iterator[str]:
    """The real app with a token, calibrated models written under tmp_path (never into the source tree)."""
    from service.app import create_app
    from tests.service.conftest import make_settings

    settings = make_settings(api_token=TOKEN, calibrated_repository=tmp_path / "calibrated")
    with _serve(create_app(settings)) as base:
        yield base
    assert not any((tmp_path / "calibrated").rglob("manifest.json"))  # nothing was fitted for real


def test_dashboard_calibration_panel(calibration_server, browser, tmp_path):
    """Panel on the real app, on an attached stream whose outlet does not exist: bad participant id shows the
    service's detail; a REST-labelled calibration starts, shows its counts table, label buttons set and end the
    open trial (seen by GET /calibrations/{id}) and mark it on the stream's timeline; fit errors show their
    detail; a fit answer (the schema's shape) shows accuracy per modality and the new model; cancel cancels;
    a marker-labelled calibration shows no label buttons."""
    from service.schemas import CalibrationResult

    base = calibration_server
    status, stream = _api(
        base, "POST", "/streams", {"modality": "eeg", "source_id": f"absent-{uuid.uuid4().hex}"}
    )
    assert status == 201, stream
    sid = stream["id"]
    card = f"document.querySelector('[data-stream-id=\"{sid}\"]')"
    browser.navigate(f"{base}/?token={TOKEN}")
    _open_panel(browser, sid)
    assert browser.evaluate(f"{CAL}('cal-participant').labels[0].textContent") == "Participant id"

    # Invalid participant id: the service's own detail sentence is shown, no calibration is made.
    _, answer = _api(
        base, "POST", "/calibrations", {"participant": "bad id!", "streams": [sid], "labels": {"rest": True}}
    )
    _start(browser, "bad id!")
    error = browser.wait_for(f"!{CAL}('cal-error').hidden && {CAL}('cal-error').textContent")
    assert answer["detail"] in error and "participant" in error
    assert _api(base, "GET", "/calibrations")[1]["count"] == 0

    # A REST-labelled calibration: counts table (modality x class, zeros), trials, one button per class.
    _start(browser, "p-013")
    cid = browser.wait_for(f"!{CAL}('cal-active').hidden && {CAL}('cal-id').textContent")
    assert browser.evaluate(f"{CAL}('cal-error').hidden") is True
    assert browser.evaluate(f"{CAL}('cal-state').textContent") == "collecting"
    status, snapshot = _api(base, "GET", f"/calibrations/{cid}")
    assert status == 200 and snapshot["participant"] == "p-013" and snapshot["streams"] == [sid]
    assert snapshot["labels"] == "rest"
    table = browser.evaluate(
        "[...document.querySelectorAll('#cal-counts tr')].map(r => [...r.cells].map(c => c.textContent))"
    )
    assert table[0] == ["Class", "eeg windows", "Trials"]
    assert table[1:] == [[name, "0", "0"] for name in CLASSES]
    buttons = browser.evaluate(
        "[...document.querySelectorAll('#cal-label-buttons button')].map(b => b.textContent)"
    )
    assert buttons == [*CLASSES, "End trial"]
    assert browser.evaluate(f"{CAL}('cal-end-trial').disabled") is True

    # A label button opens a trial now; the service sees it, and the stream's timeline marks it.
    _click_label(browser, "neutral")
    browser.wait_for(f"{CAL}('cal-open-label').dataset.label === 'neutral'")
    assert _api(base, "GET", f"/calibrations/{cid}")[1]["open_label"] == "neutral"
    assert (
        browser.evaluate(
            "document.querySelector('.cal-label[data-label=\"neutral\"]').getAttribute('aria-pressed')"
        )
        == "true"
    )
    browser.wait_for(f"!!{card}.querySelector('.markers li.marker[data-label=\"neutral\"]')")
    (marker,) = _markers(browser, sid)
    assert marker["open"] == "true" and marker["calibration"] == cid and marker["text"] == "neutral"
    assert marker["placement"] == "estimated"  # no state on this stream: placed by the REST label clock
    browser.evaluate(f"{CAL}('calibration').open = true")

    # End trial: closed; with no data it has no window, so it is not used (drawn differently) and noted.
    _click_label(browser, "")
    browser.wait_for(f"{CAL}('cal-open-label').dataset.label === ''")
    snapshot = _api(base, "GET", f"/calibrations/{cid}")[1]
    assert snapshot["open_label"] is None and snapshot["events"][-1]["end"] is not None
    browser.wait_for(f"!!{card}.querySelector('.markers li.marker[data-open=\"false\"]')")
    (marker,) = _markers(browser, sid)
    assert marker["used"] == "false" and marker["width"] >= 2
    browser.wait_for(f"!{CAL}('cal-notes-box').hidden")

    # Fit with too few trials: the service's detail is shown.
    browser.evaluate(f"{CAL}('cal-fit-button').click()")
    error = browser.wait_for(f"!{CAL}('cal-error').hidden && {CAL}('cal-error').textContent")
    assert "label at least" in error
    assert _api(base, "POST", f"/calibrations/{cid}/fit", {})[1]["detail"] in error

    # A fit answer (CalibrationResult's shape, checked against the schema) is rendered: the real fit needs
    # minutes of labelled data, so the browser's fetch answers this one request itself.
    result = {
        "model": {"name": "m2s-synthetic-demo-p-013", "version": 1},
        "validation": {
            "balanced_accuracy": 0.8125,
            "per_modality": {
                "eeg": {
                    "balanced_accuracy": 0.8125,
                    "head": "eeg",
                    "n_windows": 42,
                    "own_head_balanced_accuracy": None,
                }
            },
            "n_trials": {name: 3 for name in CLASSES},
            "c": {"eeg": 1.0},
        },
        "activated": [sid],
        "fit_s": 1.25,
    }
    CalibrationResult.model_validate(result)
    browser.evaluate(
        "(() => { const real = window.fetch; window.__realFetch = real; window.fetch = (input, init) => "
        "String(input).endsWith('/fit') ? Promise.resolve(new Response("
        f"{json.dumps(json.dumps(result))}, {{status: 200, headers: {{'Content-Type': 'application/json'}}}}))"
        " : real(input, init); })()"
    )
    browser.evaluate(f"{CAL}('cal-activate').checked = true; {CAL}('cal-fit-button').click()")
    browser.wait_for(f"!{CAL}('cal-result').hidden")
    browser.evaluate("window.fetch = window.__realFetch")
    assert browser.evaluate(f"{CAL}('cal-result-model').textContent") == "m2s-synthetic-demo-p-013:1"
    assert browser.evaluate(f"{CAL}('cal-result-accuracy').textContent").startswith("81.3 %")
    assert (
        browser.evaluate(
            "document.querySelector('#cal-result-table tr[data-modality=\"eeg\"] .accuracy').textContent"
        )
        == "81.3 %"
    )
    assert browser.evaluate(f"{CAL}('cal-result-activated').textContent") == sid
    assert browser.evaluate(f"{CAL}('cal-error').hidden") is True
    (tmp_path / "dashboard_calibration.png").write_bytes(browser.screenshot())

    # Cancel: the service has it cancelled; the panel shows it and offers no more labels.
    browser.evaluate(f"{CAL}('cal-cancel').click()")
    browser.wait_for(f"{CAL}('cal-state').textContent === 'cancelled'")
    assert _api(base, "GET", f"/calibrations/{cid}")[1]["state"] == "cancelled"
    assert browser.evaluate(f"{CAL}('cal-label-buttons').hidden && {CAL}('cal-fit').hidden") is True
    assert browser.evaluate(f"{CAL}('cal-cancel').textContent") == "Forget calibration"

    # A new calibration with labels from a marker stream: no label buttons; the marker stream is not found.
    browser.evaluate(
        f"{CAL}('cal-select').value = ''; {CAL}('cal-select').dispatchEvent(new Event('change'))"
    )
    browser.wait_for(f"!{CAL}('cal-start').hidden")
    browser.evaluate('document.querySelector(\'input[name="cal-label-source"][value="markers"]\').click()')
    assert browser.evaluate(f"{CAL}('cal-marker-selector').disabled") is False
    browser.evaluate(f"{CAL}('cal-marker-source-id').value = 'absent-markers-{uuid.uuid4().hex}'")
    _start(browser, "p-014")
    cid2 = browser.wait_for(
        f"{CAL}('cal-id').textContent !== {json.dumps(cid)} && {CAL}('cal-id').textContent"
    )
    snapshot = _api(base, "GET", f"/calibrations/{cid2}")[1]
    assert snapshot["labels"] == "markers" and snapshot["participant"] == "p-014"
    assert browser.evaluate(f"{CAL}('cal-label-buttons').hidden") is True
    assert browser.evaluate(f"{CAL}('cal-labels').textContent").startswith("marker stream")
    browser.evaluate(f"{CAL}('cal-cancel').click()")
    browser.wait_for(f"{CAL}('cal-state').textContent === 'cancelled'")
    assert browser.console == []


@pytest.fixture
def calibration_real_server(tmp_path: Path) -> Iterator[tuple[str, _SyntheticEegOutlet]]:
    """The real app with a token, attached to a real synthetic-EEG outlet; calibrated models under tmp_path."""
    from service.app import create_app
    from service.config import AttachRequest
    from tests.service.conftest import make_settings

    source_id = f"m2s-dashboard-cal-{uuid.uuid4().hex[:12]}"
    outlet = _SyntheticEegOutlet(source_id)
    settings = make_settings(
        api_token=TOKEN,
        calibrated_repository=tmp_path / "calibrated",
        attach=[AttachRequest(modality="eeg", source_id=source_id)],
    )
    try:
        with _serve(create_app(settings)) as base:
            yield base
    finally:
        outlet.close()


def test_dashboard_calibration_counts_live_windows(calibration_real_server, browser, tmp_path):
    """Real LSL data: the counts table fills with the windows of the open REST-labelled trial, the ended trial
    counts as one used trial and its span on the stream's timeline is placed by the states' LSL clock, as wide
    as the trial lasted."""
    base = calibration_real_server
    browser.navigate(f"{base}/?token={TOKEN}")
    sid = browser.wait_for("document.querySelector('[data-stream-id]')?.dataset.streamId", timeout=20)
    card = f"document.querySelector('[data-stream-id=\"{sid}\"]')"
    _open_panel(browser, sid)
    _start(browser, "p-live-1")
    cid = browser.wait_for(f"!{CAL}('cal-active').hidden && {CAL}('cal-id').textContent")

    _click_label(browser, "positive")
    cell = 'document.querySelector(\'#cal-counts tr[data-class="positive"] td[data-modality="eeg"]\')'
    # The demo EEG window spans about 10 s of data: the first one inside the trial completes after that.
    browser.wait_for(f"Number({cell}.textContent) >= 1", timeout=45)
    assert _api(base, "GET", f"/calibrations/{cid}")[1]["counts"]["eeg"]["positive"] >= 1
    browser.wait_for(f"Number({card}.querySelector('canvas.plot').dataset.points) >= 1", timeout=30)
    _click_label(browser, "")
    browser.wait_for(
        "document.querySelector('#cal-counts tr[data-class=\"positive\"] td.trials').textContent === '1'"
    )
    event = _api(base, "GET", f"/calibrations/{cid}")[1]["events"][-1]
    assert event["used"] is True and event["label"] == "positive"
    browser.wait_for(f"{card}.querySelector('.markers li.marker')?.dataset.used === 'true'")
    (marker,) = _markers(browser, sid)
    assert marker["placement"] == "states" and marker["open"] == "false" and marker["calibration"] == cid
    plot_width = browser.evaluate(f"{card}.querySelector('canvas.plot').clientWidth") - 40 - 12
    expected = (event["end"] - event["start"]) * plot_width / 120
    assert abs(marker["width"] - expected) < 3, (marker, expected)

    browser.evaluate(f"{card}.scrollIntoView()")
    (tmp_path / "dashboard_calibration_timeline.png").write_bytes(browser.screenshot())
    browser.evaluate(f"{CAL}('cal-cancel').click()")
    browser.wait_for(f"{CAL}('cal-state').textContent === 'cancelled'")
    # A cancelled calibration's data is dropped: its trial is no longer drawn as used.
    browser.wait_for(f"{card}.querySelector('.markers li.marker')?.dataset.used === 'false'")
    assert browser.console == []


# --------------------------------------------------------------------------- recordings panel

REC_ROW = "document.querySelector('#rec-table tr[data-recording-id=\"{}\"]')"


def _rec_cells(browser: _Chromium, rid: str) -> list[str]:
    return browser.evaluate(f"[...{REC_ROW.format(rid)}.cells].map(c => c.textContent)")


def test_dashboard_recordings_panel(calibration_server, browser, tmp_path):
    """Recordings panel on the real app, on an attached stream whose outlet does not exist: a bad file name
    shows the service's detail; a recording with the calibration panel's marker selector starts, is listed
    (state, file, size, samples per stream, markers) and stops from its Stop button (closed, the file stays);
    a failed recording shows its error; a calibration started with "record this session" shows its
    recording's state and size, closed when the calibration is cancelled."""
    from service.schemas import RecordingPublic

    base = calibration_server
    status, stream = _api(
        base, "POST", "/streams", {"modality": "eeg", "source_id": f"absent-{uuid.uuid4().hex}"}
    )
    assert status == 201, stream
    sid = stream["id"]
    browser.navigate(f"{base}/?token={TOKEN}")
    browser.wait_for(f"!{CAL}('recordings').hidden", timeout=20)
    browser.evaluate(f"{CAL}('recordings').open = true")
    browser.wait_for(f"document.querySelector('#rec-stream-list input[value=\"{sid}\"]')?.checked")
    assert browser.evaluate(f"{CAL}('rec-none').hidden") is False
    assert browser.evaluate(f"{CAL}('rec-marker-selector').textContent") == "type=Markers"

    # A file name the service refuses: its detail sentence is shown, nothing is recorded.
    _, answer = _api(base, "POST", "/recordings", {"streams": [sid], "name": "bad/name"})
    browser.evaluate(f"{CAL}('rec-name').value = 'bad/name'; {CAL}('rec-start-button').click()")
    error = browser.wait_for(f"!{CAL}('rec-error').hidden && {CAL}('rec-error').textContent")
    assert error == answer["detail"]
    assert _api(base, "GET", "/recordings")[1]["recordings"] == []

    # Start with the marker stream chosen in the calibration panel; the service records both.
    name = f"dash-{uuid.uuid4().hex[:8]}"
    browser.evaluate(
        f"{CAL}('rec-name').value = {json.dumps(name)}; {CAL}('rec-with-markers').checked = true; "
        f"{CAL}('rec-start-button').click()"
    )
    rid = browser.wait_for("document.querySelector('#rec-table tr[data-recording-id]')?.dataset.recordingId")
    assert browser.evaluate(f"{CAL}('rec-error').hidden") is True
    snapshot = _api(base, "GET", f"/recordings/{rid}")[1]
    assert snapshot["state"] == "recording" and snapshot["file"] == f"{name}.xdf"
    assert [s["stream_id"] for s in snapshot["streams"]] == [sid]
    assert snapshot["markers"]["selector"] == {"type": "Markers"}
    cells = _rec_cells(browser, rid)
    assert cells[:2] == [f"{name}.xdf", "recording"] and cells[4:6] == [f"{sid} 0", "0 (not connected)"]
    assert re.fullmatch(r"\d+ B", cells[2]) and cells[3].endswith(" s")
    assert browser.evaluate(f"{CAL}('rec-summary').textContent") == "1 recording"
    # The stream list says which recording writes a stream.
    browser.wait_for(f"{CAL}('rec-stream-list').textContent.includes('recorded in {rid}')")

    # Stop: the service closes it (the file stays); the row says closed and offers no Stop.
    browser.evaluate(f"{REC_ROW.format(rid)}.querySelector('button.rec-stop').click()")
    browser.wait_for(f"{REC_ROW.format(rid)}.dataset.state === 'closed'")
    assert _api(base, "GET", f"/recordings/{rid}")[1]["state"] == "closed"
    assert _rec_cells(browser, rid)[1] == "closed"
    assert browser.evaluate(f"{REC_ROW.format(rid)}.querySelector('button')") is None
    assert browser.evaluate(f"{CAL}('rec-name').value") == ""

    # A recording that failed while writing (a full disk cannot be made here: the browser's fetch adds one
    # of the schema's shape to the list) shows its error under its row.
    failed = {
        **snapshot,
        "id": "rec-f4f4f4f4",
        "name": "full",
        "file": "full.xdf",
        "state": "failed",
        "error": "No space left on device: the recording stopped; its file keeps what came before.",
        "ended": snapshot["started"],
        "markers": None,
    }
    RecordingPublic.model_validate(failed)
    browser.evaluate(
        "(() => { const real = window.fetch; window.__realFetch = real; window.fetch = async (input, init) => {"
        " const response = await real(input, init);"
        " if (!/\\/recordings$/.test(new URL(String(input)).pathname)) return response;"
        " const body = await response.json();"
        f" body.recordings.push({json.dumps(failed)});"
        " return new Response(JSON.stringify(body), {status: 200, headers: {'Content-Type': 'application/json'}});"
        " }; })()"
    )
    browser.wait_for(
        "!!document.querySelector('#rec-table tr.rec-error-row[data-recording-id=\"rec-f4f4f4f4\"]')"
    )
    browser.evaluate("window.fetch = window.__realFetch")
    assert _rec_cells(browser, "rec-f4f4f4f4")[1] == "failed"
    assert (
        browser.evaluate("document.querySelector('#rec-table tr.rec-error-row').textContent")
        == f"Failed: {failed['error']}"
    )
    (tmp_path / "dashboard_recordings.png").write_bytes(browser.screenshot())

    # A calibration with "record this session": the panel shows its recording while it records, and closed
    # once the calibration is cancelled.
    _open_panel(browser, sid)
    browser.evaluate(f"{CAL}('cal-record').checked = true")
    _start(browser, "p-rec")
    cid = browser.wait_for(f"!{CAL}('cal-active').hidden && {CAL}('cal-id').textContent")
    calibration = _api(base, "GET", f"/calibrations/{cid}")[1]
    crid = calibration["recording_id"]
    assert crid and _api(base, "GET", f"/recordings/{crid}")[1]["calibration_id"] == cid
    browser.wait_for(f"{CAL}('cal-recording').dataset.state === 'recording'")
    text = browser.evaluate(f"{CAL}('cal-recording').textContent")
    assert re.fullmatch(rf"{crid} · recording · \d+ B · calibration-p-rec-\w+\.xdf", text), text
    browser.wait_for(f"!!{REC_ROW.format(crid)}")
    browser.evaluate(f"{CAL}('cal-cancel').click()")
    browser.wait_for(f"{CAL}('cal-state').textContent === 'cancelled'")
    browser.wait_for(f"{CAL}('cal-recording').dataset.state === 'closed'")
    assert _api(base, "GET", f"/recordings/{crid}")[1]["state"] == "closed"
    browser.wait_for(f"{REC_ROW.format(crid)}.dataset.state === 'closed'")
    assert browser.console == []
