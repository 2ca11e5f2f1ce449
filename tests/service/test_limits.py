"""The service's limits (issue 18), on the real app under uvicorn: auth before the body, body size / time /
in-flight bytes, attached streams, WebSocket clients; each refusal's status or close code, detail and metric."""

import asyncio
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from service.api.deps import NOT_AUTHENTICATED
from service.api.middleware import SERVER_BUSY, RequestBodyLimits, body_timeout, body_too_large
from service.api.routes.ws import too_many_clients_reason
from service.app import create_app
from tests.service.conftest import make_settings, run_server

TOKEN = "limits-token"
BODY_LIMIT = 4096
READ_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def limited_url(serve_module):
    """A real app with small limits: 4 KiB bodies, 8 KiB in flight, 0.5 s to send a body, 1 stream, 1 WS client."""
    settings = make_settings(
        max_body_bytes=BODY_LIMIT,
        max_inflight_body_bytes=2 * BODY_LIMIT,
        body_read_timeout_s=READ_TIMEOUT_S,
        max_streams=1,
        max_ws_clients=1,
    )
    return serve_module(create_app(settings))


@pytest.fixture(scope="module")
def secured_url(serve_module):
    """A real app with a token."""
    return serve_module(create_app(make_settings(api_token=TOKEN)))


def _raw(url: str, head: str, body: bytes = b"") -> socket.socket:
    """Open a connection and send ``head`` (request line and headers, no blank line needed) and ``body``."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read the whole answer (the server closes the connection after a refusal): status, headers, JSON body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def _refusals(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("m2s_limit_refusals_total{"):
            label = line.split('limit="', 1)[1].split('"', 1)[0]
            out[label] = float(line.rsplit(" ", 1)[1])
    return out


# -- auth comes before the body -----------------------------------------------------------------------


def test_malformed_body_without_token_is_401_not_400(secured_url):
    """The outside probe got 400 here: the body was parsed before the token was looked at."""
    r = httpx.post(
        f"{secured_url}/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (
        401,
        {"detail": NOT_AUTHENTICATED},
        "Bearer",
    )


def test_401_comes_before_a_single_body_byte_is_read(secured_url):
    """A request declaring 1 MB and sending none of it is answered 401 at once: nothing waits for the body."""
    t0 = time.perf_counter()
    sock = _raw(
        secured_url,
        "POST /streams HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 1000000",
    )
    status, headers, body = _answer(sock)
    assert (status, body, headers["connection"]) == (401, {"detail": NOT_AUTHENTICATED}, "close")
    assert time.perf_counter() - t0 < 5  # far less than any read timeout: the body was never awaited


def test_401_before_the_body_behind_a_root_path():
    """Behind a proxy (uvicorn --root-path /api) the routes are matched without the prefix, as the router does:
    the review found the middleware matched the raw path there, so the body was awaited (408) before the 401."""
    with run_server(create_app(make_settings(api_token=TOKEN)), root_path="/api") as url:
        # The proxy strips /api; uvicorn puts it back into the scope's path, the router takes it off again.
        t0 = time.perf_counter()
        sock = _raw(
            url, "POST /predict HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 100"
        )
        status, _, body = _answer(sock)
        assert (status, body) == (401, {"detail": NOT_AUTHENTICATED})
        assert time.perf_counter() - t0 < 5
        assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_public_routes_stay_public_with_a_token(secured_url):
    """Health probes and the dashboard need no token; with the token a protected route answers."""
    assert httpx.get(f"{secured_url}/v2/health/live").status_code == 200
    assert httpx.get(f"{secured_url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{secured_url}/").status_code == 200
    assert httpx.get(f"{secured_url}/streams").status_code == 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{secured_url}/streams", headers=auth).json() == {"data": [], "count": 0}


# -- request bodies ---------------------------------------------------------------------------------------


def test_body_that_never_arrives_gets_408_after_the_read_timeout(limited_url):
    """A client that declares a body and stalls holds the connection no longer than the timeout."""
    before = _refusals(limited_url)["body_timeout"]
    t0 = time.perf_counter()
    sock = _raw(
        limited_url,
        "POST /predict HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 100",
        b'{"modality"',
    )
    status, _, body = _answer(sock)
    elapsed = time.perf_counter() - t0
    assert (status, body) == (408, {"detail": body_timeout(READ_TIMEOUT_S)})
    assert READ_TIMEOUT_S <= elapsed < READ_TIMEOUT_S + 5
    assert _refusals(limited_url)["body_timeout"] == before + 1


def test_in_flight_body_bytes_are_bounded_with_429_then_freed(limited_url):
    """Two slow requests that sent most of their bodies hold the in-flight budget: a third is refused at once
    with 429 and Retry-After; when they go, a request is served again."""
    before = _refusals(limited_url)["inflight_bytes"]
    head = f"POST /predict HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {BODY_LIMIT}"
    sent = BODY_LIMIT - 10  # of each body: together they leave the third request (~290 bytes) too little
    stalled = [_raw(limited_url, head, b" " * sent) for _ in range(2)]
    try:
        time.sleep(0.1)  # both reservations made
        r = httpx.post(f"{limited_url}/predict", json={"modality": "ecg", "features": [[1.0] * 10] * 5})
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (429, {"detail": SERVER_BUSY}, "1")
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.2)  # the server notices the disconnects and releases what they held
    r = httpx.post(f"{limited_url}/predict", json={"modality": "ecg", "features": [[1.0] * 10] * 5})
    assert r.status_code == 200, r.text
    assert _refusals(limited_url)["inflight_bytes"] == before + 1
    metrics = httpx.get(f"{limited_url}/metrics").text
    assert "m2s_inflight_body_bytes 0.0" in metrics


def test_declared_but_unsent_bodies_hold_no_budget(limited_url):
    """Idle connections that only declare bodies (the review's probe: a few of them, without a token, blocked
    every request with a body) reserve nothing: a request is served while they wait."""
    head = f"POST /v2/health/live HTTP/1.1\nHost: x\nContent-Length: {BODY_LIMIT}"
    idle = [_raw(limited_url, head) for _ in range(4)]
    try:
        time.sleep(0.1)
        r = httpx.post(f"{limited_url}/predict", json={"modality": "ecg", "features": [[1.0] * 10] * 5})
        assert r.status_code == 200, r.text
    finally:
        for sock in idle:
            sock.close()


def test_content_length_of_5000_digits_is_413_not_500():
    """int() of such a header would raise (Python's digit limit): the length of the text decides first.
    (uvicorn's httptools parser refuses it before the app, so the middleware is called directly here.)"""
    sent, called = [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    limits = RequestBodyLimits(app, max_bytes=BODY_LIMIT)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-length", b"9" * 5000)],
    }
    asyncio.run(limits(scope, receive, send))
    assert not called and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"detail": body_too_large(BODY_LIMIT)}


# -- streams and WebSocket clients --------------------------------------------------------------------


def test_stream_limit_gives_409_with_what_to_do(limited_url):
    """With M2S_MAX_STREAMS=1 a second attach is refused; detaching makes room again."""
    before = _refusals(limited_url)["streams"]
    first = httpx.post(f"{limited_url}/streams", json={"modality": "eeg", "source_id": "limits-absent-1"})
    assert first.status_code == 201, first.text
    try:
        r = httpx.post(f"{limited_url}/streams", json={"modality": "eeg", "source_id": "limits-absent-2"})
        assert (r.status_code, r.json()) == (
            409,
            {
                "detail": "The service already serves 1 streams, its limit (M2S_MAX_STREAMS); detach one "
                "(DELETE /streams/{id}) or raise the limit."
            },
        )
        assert _refusals(limited_url)["streams"] == before + 1
        assert "m2s_streams_attached 1.0" in httpx.get(f"{limited_url}/metrics").text
    finally:
        assert httpx.delete(f"{limited_url}/streams/{first.json()['id']}").status_code == 204
    again = httpx.post(f"{limited_url}/streams", json={"modality": "eeg", "source_id": "limits-absent-3"})
    assert again.status_code == 201
    assert httpx.delete(f"{limited_url}/streams/{again.json()['id']}").status_code == 204


def test_selector_with_both_quote_kinds_is_422_at_attach(limited_url):
    """Accepted before (201) though it could never connect."""
    r = httpx.post(f"{limited_url}/streams", json={"modality": "eeg", "name": 'it\'s "x"'})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "Invalid request: name: name 'it\\'s \"x\"' contains both ' and \"; LSL selectors cannot match such a "
        "value: select the stream by another field (e.g. source_id) or rename it."
    )


def test_websocket_client_limit_closes_with_1013_and_the_reason(limited_url):
    """With M2S_MAX_WS_CLIENTS=1 a second client is closed with 1013; once the first leaves, one may join."""
    ws_url = limited_url.replace("http://", "ws://") + "/ws"

    async def scenario():
        async with connect(ws_url) as first:
            await first.ping()
            async with connect(ws_url) as second:
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(second.recv(), 5)
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1013, too_many_clients_reason(1))
            assert "m2s_ws_clients 1.0" in httpx.get(f"{limited_url}/metrics").text
        for _ in range(50):  # the server unsubscribes the first client when it notices it left
            if "m2s_ws_clients 0.0" in httpx.get(f"{limited_url}/metrics").text:
                break
            await asyncio.sleep(0.05)
        async with connect(ws_url) as third:
            await third.ping()  # accepted and kept open
            await asyncio.sleep(0.2)
            assert third.close_code is None

    asyncio.run(scenario())
    assert _refusals(limited_url)["ws_clients"] >= 1
