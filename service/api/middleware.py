"""Pure-ASGI middleware: bearer auth before any body is read, request-body limits, per-route request metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so that neither buffers responses nor breaks WebSockets,
and so that the limits are enforced on the bytes as they arrive, before anything parses them.
From the outside in: :class:`RequestMetricsMiddleware` (counts every answer, refusals included),
:class:`BearerAuthMiddleware` (401 before a byte of the body is read), :class:`RequestBodyLimits`
(413 / 408 / 429), then the app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import require_token
from service.api.route_table import matching_routes
from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

INVALID_CONTENT_LENGTH = (
    "Invalid Content-Length header; send the body's length in bytes, or use chunked encoding."
)
SERVER_BUSY = (
    "The service is reading or handling too many large request bodies at once (M2S_MAX_INFLIGHT_BODY_BYTES); "
    "retry in a moment."
)


_RETRY_AFTER = ((b"retry-after", b"1"),)


def body_too_large(max_bytes: int) -> str:
    """The fixed ``detail`` of a 413 answer."""
    return (
        f"Request body too large: the limit is {max_bytes} bytes (M2S_MAX_BODY_BYTES / --max-body-bytes); "
        "send a shorter signal or raise the limit."
    )


def body_timeout(seconds: float) -> str:
    """The fixed ``detail`` of a 408 answer."""
    return (
        f"The request body did not arrive within {seconds:g} s (M2S_BODY_READ_TIMEOUT_S); send the whole body "
        "at once after the headers."
    )


async def send_error(
    send: Send,
    status: int,
    detail: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    close: bool = True,
) -> None:
    """Answer ``{"detail": detail}`` with ``status`` from middleware, before the app.

    ``close``: the request's body was not read, so the connection cannot be reused (``Connection: close``).
    """
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"connection", b"close")] if close else []),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerAuthMiddleware:
    """Answer 401 before the body is read when a route that needs the token is called without it.

    FastAPI reads and parses a request's body before it runs the route's dependencies, so the
    :func:`~service.api.deps.require_token` dependency alone let anyone without a token make the
    server read and parse a body of up to ``M2S_MAX_BODY_BYTES``. This middleware asks the same
    question first: which routes need the token is read from the routes themselves (a route whose
    dependencies include ``require_token``, matched as the router does, :mod:`service.api.route_table`), and
    the answer is the dependency's (same details and
    ``WWW-Authenticate`` headers, :func:`~service.api.deps.token_problem`). WebSockets authenticate
    in their route (header or ``?token=``), unchanged.

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    problem : callable
        ``problem(authorization_header_or_None) -> (status, detail, headers) | None``.
    """

    def __init__(self, app: ASGIApp, problem: Callable[[str | None], tuple[int, str, dict[str, str]] | None]):
        self.app = app
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        matched = next((r for r in matching_routes(scope) if require_token in r.calls), None)
        if matched is not None:
            problem = self.problem(Headers(scope=scope).get("authorization"))
            if problem is not None:
                status, detail, headers = problem
                scope["route"] = matched.route  # the request metrics label it by its route, not "unmatched"
                await send_error(
                    send, status, detail, tuple((k.encode(), v.encode()) for k, v in headers.items())
                )
                return
        await self.app(scope, receive, send)


class RequestBodyLimits:
    """Refuse request bodies that are too large (413), too slow (408), or too many at once (429).

    - **Size.** A declared ``Content-Length`` over ``max_bytes`` is refused before any byte is read.
      Otherwise (no length, chunked transfer encoding, or a length that lies) the body is counted
      chunk by chunk and refused as soon as the count passes the limit.
    - **Time.** The whole body must arrive within ``read_timeout_s`` of the first read: a client that
      declares a body and never sends it no longer holds a connection (and its reservation) forever.
    - **Memory.** Parsed JSON numbers take 8-20x their text's size, so the bytes of all bodies being
      read or handled at once are bounded by ``max_inflight_bytes``: each body's bytes are reserved as
      they arrive (429 with ``Retry-After`` once they do not fit) and held until the app has answered.

    An accepted body is handed on unchanged (buffered, at most ``max_bytes``).

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    max_bytes : int
        Largest accepted body, in bytes.
    read_timeout_s : float
        Seconds the whole body may take to arrive.
    max_inflight_bytes : int
        Most body bytes being read or handled at once, all requests together (>= ``max_bytes``).
    metrics : ServiceMetrics or None
        Counts refusals (``m2s_limit_refusals_total``) and the bytes in flight.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        read_timeout_s: float = 30.0,
        max_inflight_bytes: int | None = None,
        metrics: ServiceMetrics | None = None,
    ):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative number of bytes, got {max_bytes!r}.")
        max_inflight_bytes = max_bytes if max_inflight_bytes is None else max_inflight_bytes
        if max_inflight_bytes < max_bytes:
            raise ValueError(
                f"max_inflight_bytes ({max_inflight_bytes}) must be at least max_bytes ({max_bytes})."
            )
        if not read_timeout_s > 0:
            raise ValueError(f"read_timeout_s must be > 0 s, got {read_timeout_s!r}.")
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = float(read_timeout_s)
        self.max_inflight_bytes = max_inflight_bytes
        self.metrics = metrics
        self.inflight = 0  # one event loop: no lock needed

    def _reserve(self, n: int) -> bool:
        if self.inflight + n > self.max_inflight_bytes:
            return False
        self.inflight += n
        if self.metrics is not None:
            self.metrics.inflight_body_bytes.set(self.inflight)
        return True

    def _release(self, n: int) -> None:
        self.inflight -= n
        if self.metrics is not None:
            self.metrics.inflight_body_bytes.set(self.inflight)

    async def _refuse(self, send: Send, limit: str, status: int, detail: str, headers: tuple = ()) -> None:
        if self.metrics is not None:
            self.metrics.refused(limit)
        await send_error(send, status, detail, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not (declared.isascii() and declared.isdigit()):
                await send_error(send, 400, INVALID_CONTENT_LENGTH)
                return
            # Compare the text's length first: int() of a 5000-digit header would raise (Python's digit limit).
            declared = int(declared) if len(declared) <= 18 else self.max_bytes + 1
            if declared > self.max_bytes:
                await self._refuse(send, "body_size", 413, body_too_large(self.max_bytes))
                return
        # Bytes this request holds in the in-flight budget: those received, never the declared length, so
        # that a client declaring a body and sending nothing holds nothing (it could otherwise fill the budget
        # with a few idle connections, for free and without a token).
        self_reserved = [0]
        try:
            try:  # asyncio.wait_for, not asyncio.timeout: Python 3.10 is supported
                outcome = await asyncio.wait_for(self._read(receive, self_reserved), self.read_timeout_s)
            except asyncio.TimeoutError:
                await self._refuse(send, "body_timeout", 408, body_timeout(self.read_timeout_s))
                return
            if outcome is None:
                return  # the client left before sending its body: nobody to answer
            if isinstance(outcome, tuple):
                await self._refuse(send, *outcome)
                return
            chunks = outcome
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()  # after the body: disconnect notifications

            await self.app(scope, replay, send)
        finally:
            if self_reserved[0]:
                self._release(self_reserved[0])

    async def _read(self, receive: Receive, reserved: list[int]) -> list[bytes] | tuple | None:
        """The body's chunks; a refusal ``(limit, status, detail, headers)``; None if the client left.

        ``reserved[0]`` follows the bytes reserved in the in-flight budget (the caller releases them).
        """
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return ("body_size", 413, body_too_large(self.max_bytes), ())
            if total > reserved[0]:
                if not self._reserve(total - reserved[0]):
                    return ("inflight_bytes", 429, SERVER_BUSY, _RETRY_AFTER)
                reserved[0] = total
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks


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
