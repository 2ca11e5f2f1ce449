"""Pure-ASGI middleware: request-body size limit and per-route request metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so that neither buffers responses nor breaks WebSockets,
and so that the body limit is enforced on the bytes as they arrive, before anything parses them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

INVALID_CONTENT_LENGTH = (
    "Invalid Content-Length header; send the body's length in bytes, or use chunked encoding."
)


def body_too_large(max_bytes: int) -> str:
    """The fixed ``detail`` of a 413 answer."""
    return (
        f"Request body too large: the limit is {max_bytes} bytes (M2S_MAX_BODY_BYTES / --max-body-bytes); "
        "send a shorter signal or raise the limit."
    )


async def _send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Refuse HTTP request bodies over ``max_bytes`` with 413, counting bytes as they arrive.

    A declared ``Content-Length`` over the limit is refused before any byte is read. Otherwise
    (no length, chunked transfer encoding, or a length that lies) the body is read and counted
    chunk by chunk, and refused as soon as the count passes the limit; an accepted body is handed
    on unchanged. The body is thus buffered (at most ``max_bytes``) before the app sees it.

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    max_bytes : int
        Largest accepted body, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative number of bytes, got {max_bytes!r}.")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _send_error(send, 400, INVALID_CONTENT_LENGTH)
                return
            if int(declared) > self.max_bytes:
                await _send_error(send, 413, body_too_large(self.max_bytes))
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nobody to answer
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await _send_error(send, 413, body_too_large(self.max_bytes))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: disconnect notifications

        await self.app(scope, replay, send)


class RequestMetricsMiddleware:
    """Count every HTTP request and time it, labelled by route template (not raw path) and status.

    Requests that match no route are labelled ``"unmatched"`` and the dashboard's static files
    ``"static"``, so that scanners cannot create unbounded label sets.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}  # unless a response starts

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            if route is None:
                label = "unmatched"
            elif isinstance(route, Mount):
                label = "static"
            else:
                label = getattr(route, "path", "unmatched")
            self.metrics.observe_request(label, scope["method"], status["code"], time.perf_counter() - start)
