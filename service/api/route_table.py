"""The app's HTTP routes as a table that pure-ASGI middleware match a request against, before the router.

Both :class:`~service.api.middleware.BearerAuthMiddleware` (which routes need the token) and
:class:`~service.api.methods.MethodNotAllowedMiddleware` (every method of a path) ask "which routes
match this request's path?" before Starlette's router runs; :func:`matching_routes` answers it once
per request (kept in the request's scope), the router's way: the path without the ``root_path``
(``uvicorn --root-path``), against every HTTP route's compiled path, routers included through
FastAPI's route contexts.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP route: what its path matches, its methods and its dependencies' callables."""

    regex: re.Pattern[str]
    methods: frozenset[str]
    route: Any  # the route object (the request metrics read it as scope["route"])
    template: str  # e.g. "/streams/{stream_id}"
    calls: frozenset[Callable[..., Any]]  # every dependency callable (empty for plain Starlette routes)


def route_path(scope: Scope) -> str:
    """The path the routes match: ``scope["path"]`` without the ``root_path`` (as Starlette's router)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def dependency_calls(dependant: Any | None) -> set[Callable[..., Any]]:
    """Every dependency callable of a route's ``dependant``, sub-dependencies included (empty for None)."""
    calls: set[Callable[..., Any]] = set()
    stack = [] if dependant is None else list(dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            calls.add(dependant.call)
        stack.extend(dependant.dependencies)
    return calls


class RouteTable:
    """The HTTP routes of an application (mounts and WebSocket routes left out), rebuilt when they change."""

    def __init__(self) -> None:
        self._key: tuple[int, ...] | None = None
        self._routes: list[HttpRoute] = []

    def routes(self, application: Any) -> list[HttpRoute]:
        """Every HTTP route of ``application`` (a FastAPI app)."""
        key = tuple(map(id, application.routes))
        if key != self._key:
            table = []
            for context in iter_route_contexts(application.routes):
                if not context.methods or context.path is None:  # mounts, WebSocket routes
                    continue
                regex, template, _ = compile_path(context.path)
                table.append(
                    HttpRoute(
                        regex,
                        frozenset(context.methods),
                        context.original_route,
                        template,
                        frozenset(dependency_calls(getattr(context, "dependant", None))),
                    )
                )
            self._routes, self._key = table, key
        return self._routes

    def matching(self, application: Any, scope: Scope) -> list[HttpRoute]:
        """The routes whose path matches the request's, whatever their methods."""
        path = route_path(scope)
        return [r for r in self.routes(application) if r.regex.match(path)]


_TABLES: weakref.WeakKeyDictionary[Any, RouteTable] = weakref.WeakKeyDictionary()  # one per application
_SCOPE_KEY = "m2s.matching_routes"


def matching_routes(scope: Scope) -> list[HttpRoute]:
    """The HTTP routes of ``scope["app"]`` whose path matches the request's (none without an app).

    Computed once per request and kept in ``scope``: every middleware that asks gets the same answer.
    """
    cached = scope.get(_SCOPE_KEY)
    if cached is None:
        application = scope.get("app")
        if application is None:
            cached = []
        else:
            table = _TABLES.get(application)
            if table is None:
                table = _TABLES[application] = RouteTable()
            cached = table.matching(application, scope)
        scope[_SCOPE_KEY] = cached
    return cached


__all__ = ["HttpRoute", "RouteTable", "dependency_calls", "matching_routes", "route_path"]
