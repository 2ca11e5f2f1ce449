"""405 Method Not Allowed with the full ``Allow`` list of a path (pure ASGI middleware).

Starlette answers a request whose path matches routes but whose method matches none of them from the
FIRST route matching the path, so its ``Allow`` lists only that route's methods (``OPTIONS
/streams/x`` said ``GET`` and omitted ``PATCH`` and ``DELETE``); and here the dashboard, mounted at
``/``, matches every path whatever the method, so an API path with a wrong method got the static
files' answer instead (``GET /predict``: 404; ``DELETE /metrics``: 405 "GET, HEAD").

:class:`MethodNotAllowedMiddleware` answers such a request itself: 405, ``Allow`` listing every method
of every HTTP route of the app matching the path (exactly the path's operations in the OpenAPI
schema, plus ``HEAD`` where a route serves it), and the usual ``{"detail": "<sentence>"}`` body.
Requests whose method some route of the path has, and paths no route matches (the dashboard's files,
404s), go on unchanged. WebSocket and lifespan messages pass through. It is the innermost middleware:
the request metrics count its answers (labelled by the path's route template), and the auth and
body-limit middleware have had their say first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

#: Order of the methods in ``Allow`` (the usual one; any other method sorts after these, alphabetically).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allow_header(methods: set[str] | frozenset[str]) -> str:
    """``{"DELETE", "GET", "PATCH"}`` -> ``"GET, PATCH, DELETE"``."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return ", ".join(sorted(methods, key=lambda m: (rank.get(m, len(rank)), m)))


def method_not_allowed(method: str, template: str, methods: set[str] | frozenset[str]) -> str:
    """The ``detail`` of a 405 answer."""
    return f"Method {method} is not allowed on {template}; allowed: {allow_header(methods)}."


def _route_path(scope: Scope) -> str:
    """The path the routes match: ``scope["path"]`` without the ``root_path`` (as Starlette's router)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class MethodNotAllowedMiddleware:
    """405 with every method the path's routes have in ``Allow``, when the request's method is none of them.

    Parameters
    ----------
    app : ASGI app
        The wrapped application (its routes are read from ``scope["app"]`` on the first request).
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        self._key: tuple[int, ...] | None = None
        self._table: list[tuple[re.Pattern[str], frozenset[str], Any, str]] = []

    def _routes(self, application: Any) -> list[tuple[re.Pattern[str], frozenset[str], Any, str]]:
        """``(path regex, methods, route, path template)`` of every HTTP route (rebuilt if the routes change)."""
        key = tuple(map(id, application.routes))
        if key != self._key:
            table = []
            for context in iter_route_contexts(application.routes):
                if not context.methods or context.path is None:  # mounts, WebSocket routes
                    continue
                regex, template, _ = compile_path(context.path)
                table.append((regex, frozenset(context.methods), context.original_route, template))
            self._table, self._key = table, key
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        application = scope.get("app")
        if scope["type"] != "http" or application is None:
            await self.app(scope, receive, send)
            return
        path, method = _route_path(scope), scope["method"]
        allowed: set[str] = set()
        first = None
        for regex, methods, route, template in self._routes(application):
            if regex.match(path):
                if method in methods:
                    await self.app(scope, receive, send)
                    return
                allowed |= methods
                first = first or (route, template)
        if first is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = first[0]  # labels the request metrics by the path's route template
        body = json.dumps({"detail": method_not_allowed(method, first[1], allowed)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    (b"allow", allow_header(allowed).encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["METHOD_ORDER", "MethodNotAllowedMiddleware", "allow_header", "method_not_allowed"]
