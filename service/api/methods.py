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

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.middleware import send_error
from service.api.route_table import matching_routes

#: Order of the methods in ``Allow`` (the usual one; any other method sorts after these, alphabetically).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allow_header(methods: set[str] | frozenset[str]) -> str:
    """``{"DELETE", "GET", "PATCH"}`` -> ``"GET, PATCH, DELETE"``."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return ", ".join(sorted(methods, key=lambda m: (rank.get(m, len(rank)), m)))


def method_not_allowed(method: str, template: str, methods: set[str] | frozenset[str]) -> str:
    """The ``detail`` of a 405 answer."""
    return f"Method {method} is not allowed on {template}; allowed: {allow_header(methods)}."


class MethodNotAllowedMiddleware:
    """405 with every method the path's routes have in ``Allow``, when the request's method is none of them.

    Parameters
    ----------
    app : ASGI app
        The wrapped application (the routes are read from ``scope["app"]``).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        matching = matching_routes(scope) if scope["type"] == "http" else []
        if not matching or any(method in r.methods for r in matching):
            await self.app(scope, receive, send)
            return
        allowed = set().union(*(r.methods for r in matching))
        first = matching[0]
        scope["route"] = first.route  # labels the request metrics by the path's route template
        # The router would have read no body either, and a 405 leaves the connection usable (as Starlette's).
        await send_error(
            send,
            405,
            method_not_allowed(method, first.template, allowed),
            ((b"allow", allow_header(allowed).encode()),),
            close=False,
        )


__all__ = ["METHOD_ORDER", "MethodNotAllowedMiddleware", "allow_header", "method_not_allowed"]
