"""The OpenAPI schema, corrected to tell the truth about what the running app answers.

FastAPI's generated schema says three things the app does not do; :func:`install_openapi` wraps
``app.openapi`` so that ``/openapi.json`` (and ``/docs``) say what it does:

- **Error bodies.** FastAPI documents its automatic 422 as ``HTTPValidationError`` (a list of pydantic
  errors); this app answers every error with ``ErrorPublic`` (``{"detail": "<sentence>"}``,
  :mod:`service.api.errors`). Every 422 is documented as ``ErrorPublic``, and the
  ``HTTPValidationError`` / ``ValidationError`` components are gone. FastAPI's automatic 422 is kept
  only where validation can fail: a request body, or a parameter that is not a plain string (a path
  parameter typed ``str`` always validates); a route documenting 422 itself keeps it.
- **Bodies.** An operation taking a body also documents 400 (malformed JSON, or an invalid
  ``Content-Length``), 408 (the body did not arrive within ``M2S_BODY_READ_TIMEOUT_S``), 413 (over
  ``M2S_MAX_BODY_BYTES``), 429 (too many body bytes in flight, ``M2S_MAX_INFLIGHT_BODY_BYTES``; with
  ``Retry-After``) and 422. (The body limits, :mod:`service.api.middleware`, also refuse a body sent
  to an operation that takes none; that is not part of those operations' contract and is not
  documented there.)
- **Auth.** FastAPI declares the bearer scheme on every route depending on
  :func:`~service.api.deps.require_token`, token or not. Without a configured token
  (``settings.api_token`` None) the schema has no security scheme and no 401 at all; with one, every
  operation depending on ``require_token`` (all but the health probes) declares bearer auth and
  documents 401 with its ``WWW-Authenticate`` challenge, and the others declare none.
- **Not ready.** An operation depending on a resource the lifespan creates (engine, stream manager,
  calibrations, recordings, poller: :mod:`service.api.deps`) documents 503 (starting or shutting down).

Outside OpenAPI (not operations of the schema): the WebSocket ``/ws`` (:mod:`service.api.routes.ws`,
its own token check), the dashboard's static files mounted at ``/``, and FastAPI's own
``/openapi.json``, ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` (public, no token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from service.api.deps import (
    get_calibrations,
    get_engine,
    get_manager,
    get_poller,
    get_recordings,
    require_json,
    require_token,
)
from service.api.route_table import dependency_calls

ERROR_REF = "#/components/schemas/ErrorPublic"
BEARER_SCHEME = "HTTPBearer"  # the name FastAPI gives the HTTPBearer dependency's scheme
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_NEEDS_READY = (get_engine, get_manager, get_calibrations, get_recordings, get_poller)

_DESCRIPTIONS = {
    400: "Malformed JSON body, or an invalid Content-Length header.",
    401: "No bearer token, or not the service's (M2S_API_TOKEN).",
    408: "The request body did not arrive in time (M2S_BODY_READ_TIMEOUT_S).",
    413: "Request body over the limit (M2S_MAX_BODY_BYTES).",
    415: "The body is not declared as JSON (Content-Type: application/json).",
    422: "Invalid request; the detail names each invalid field.",
    429: "Too many request-body bytes in flight (M2S_MAX_INFLIGHT_BODY_BYTES); retry after Retry-After seconds.",
    503: "The service is starting or shutting down; retry when GET /v2/health/ready answers 200.",
}
_HEADERS = {  # the header that comes with an answer, always
    401: ("WWW-Authenticate", "The bearer challenge (RFC 6750)."),
    429: ("Retry-After", "Seconds to wait before retrying."),
}


def _answer(code: int) -> dict[str, Any]:
    """The documented answer ``code``: an ErrorPublic body, and its header if it has one."""
    answer: dict[str, Any] = {
        "description": _DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if code in _HEADERS:
        name, description = _HEADERS[code]
        answer["headers"] = {
            name: {"description": description, "required": True, "schema": {"type": "string"}}
        }
    return answer


def _operations(app: FastAPI) -> Iterator[tuple[str, str, set[Callable[..., Any]]]]:
    """``(method, path, dependency callables)`` of every operation of the schema."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not context.include_in_schema:
            continue
        calls = dependency_calls(route.dependant)
        for method in context.methods or ():
            yield method.lower(), context.path_format, calls


def _can_fail(parameter: dict[str, Any]) -> bool:
    """Whether FastAPI's validation of this parameter can fail (a present plain string never does)."""
    schema = {k: v for k, v in parameter.get("schema", {}).items() if k not in ("title", "description")}
    required = parameter.get("required", False) and parameter.get("in") != "path"  # a path is always there
    return required or schema != {"type": "string"}


def _correct_operation(operation: dict[str, Any], calls: set[Callable[..., Any]], *, token: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    has_body = "requestBody" in operation
    # 422: FastAPI's automatic one (a HTTPValidationError list) -> ErrorPublic, where validation can fail.
    automatic = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if automatic.get("$ref", "").endswith("/HTTPValidationError"):
        if has_body or any(_can_fail(p) for p in operation.get("parameters", [])):
            responses["422"] = _answer(422)
        else:
            del responses["422"]
    codes = []
    if has_body:
        codes += [400, 408, 413, 422, 429]
    if require_json in calls:
        codes.append(415)
    if any(dependency in calls for dependency in _NEEDS_READY):
        codes.append(503)
    for code in codes:
        responses.setdefault(str(code), _answer(code))
    if token and require_token in calls:
        operation["security"] = [{BEARER_SCHEME: []}]
        responses["401"] = _answer(401)
    else:
        operation.pop("security", None)
        responses.pop("401", None)
    operation["responses"] = dict(sorted(responses.items()))


def correct_schema(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Correct FastAPI's generated ``schema`` of ``app`` in place (idempotent) and return it."""
    token = app.state.settings.api_token is not None
    paths = schema.get("paths", {})
    for method, path, calls in _operations(app):
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            _correct_operation(operation, calls, token=token)
    components = schema.setdefault("components", {})
    schemas = components.get("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    if token:
        components.setdefault("securitySchemes", {}).setdefault(
            BEARER_SCHEME,
            {"type": "http", "scheme": "bearer"},
        )
    else:
        components.pop("securitySchemes", None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (served at ``/openapi.json``) return :func:`correct_schema` of FastAPI's schema.

    FastAPI caches its schema (and regenerates it when routes are added); each schema it generates is
    corrected once.
    """
    generate = app.openapi
    corrected: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not corrected or corrected[0] is not schema:
            corrected[:] = [correct_schema(schema, app)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["BEARER_SCHEME", "ERROR_REF", "correct_schema", "install_openapi"]
