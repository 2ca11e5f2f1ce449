"""FastAPI dependencies: the app's resources as ``Annotated`` aliases, bearer-token auth, JSON-only bodies.

Resources (settings, engine, stream manager) are created by the lifespan in :mod:`service.app` and kept on
``app.state``; routes receive them through the aliases below (``SettingsDep``, ``EngineDep``,
``ManagerDep``), which tests may replace with ``app.dependency_overrides``.

The dependencies are ``async def`` because none of them blocks (they read ``app.state`` and headers):
FastAPI runs a plain ``def`` dependency in its threadpool, one thread hand-off per dependency and
request, which under load cost more than the dependencies themselves.
"""

from __future__ import annotations

import email.message
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from models.bundle import BundleError
from models.repository import parse_model_ref
from service.calibration import CalibrationManager
from service.config import Settings
from service.engine import InferenceEngine, LoadedModel
from service.metrics import ServiceMetrics
from service.recordings import RecordingManager
from service.reload import ModelPoller
from service.streams import StreamManager

# Fixed error details (the tests assert them verbatim; clients may match on them).
NOT_AUTHENTICATED = "Not authenticated: send the header 'Authorization: Bearer <token>'."
INVALID_TOKEN = "Invalid bearer token; use the token the service was started with (M2S_API_TOKEN / --token)."
UNSUPPORTED_MEDIA_TYPE = (
    "Unsupported content type; send the body as JSON with 'Content-Type: application/json'."
)
NOT_READY = "The service is starting or shutting down; retry when GET /v2/health/ready answers 200."

_bearer = HTTPBearer(auto_error=False, description="The service's API token (M2S_API_TOKEN), if one is set.")


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


async def get_engine(request: Request) -> InferenceEngine:
    """The inference engine; 503 while the service is not ready."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None or engine.closed:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_READY)
    return engine


def _ready(attribute: str, what: str):
    """A dependency returning ``app.state.<attribute>`` (set by the lifespan); 503 while the service is not ready."""

    async def dependency(request: Request):
        value = getattr(request.app.state, attribute, None)
        if value is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_READY)
        return value

    dependency.__name__ = f"get_{attribute}"
    dependency.__doc__ = f"The {what}; 503 while the service is not ready."
    return dependency


get_manager = _ready("manager", "stream manager")
get_calibrations = _ready("calibrations", "calibration manager")
get_recordings = _ready("recordings", "recording manager")
get_poller = _ready("poller", "model poller (hot reload)")


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
ManagerDep = Annotated[StreamManager, Depends(get_manager)]
CalibrationsDep = Annotated[CalibrationManager, Depends(get_calibrations)]
RecordingsDep = Annotated[RecordingManager, Depends(get_recordings)]
PollerDep = Annotated[ModelPoller, Depends(get_poller)]


def token_matches(settings: Settings, presented: str | None) -> bool:
    """True when no token is configured, or ``presented`` equals it (constant-time comparison).

    Shared by the REST dependency :func:`require_token` and the WebSocket route (header or ``?token=``).
    """
    if settings.api_token is None:
        return True
    if presented is None:
        return False
    return secrets.compare_digest(presented.encode(), settings.api_token.get_secret_value().encode())


def token_problem(settings: Settings, authorization: str | None) -> tuple[int, str, dict[str, str]] | None:
    """Why a request with this ``Authorization`` header may not call a protected route, or None if it may.

    Returns ``(401, detail, headers)``: no bearer credentials, or the wrong token. One answer for the
    auth middleware (which asks before the body is read) and :func:`require_token` (which declares the
    scheme in OpenAPI).
    """
    if settings.api_token is None:
        return None
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.casefold() != "bearer" or not presented:  # as HTTPBearer parses it
        return status.HTTP_401_UNAUTHORIZED, NOT_AUTHENTICATED, {"WWW-Authenticate": "Bearer"}
    if not token_matches(settings, presented):
        return (
            status.HTTP_401_UNAUTHORIZED,
            INVALID_TOKEN,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 with ``WWW-Authenticate: Bearer`` unless the request carries the configured bearer token.

    The auth middleware (:class:`~service.api.middleware.BearerAuthMiddleware`) has asked the same
    before the body was read; this dependency marks the routes that need the token (the middleware
    reads it from them) and declares the scheme in OpenAPI.
    """
    header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
    problem = token_problem(settings, header)
    if problem is not None:
        code, detail, headers = problem
        raise HTTPException(code, detail, headers=headers)


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``application/*+json``).

    Runs before FastAPI validates the body, so a form or text body gets this message, not a
    confusing "Input should be a valid dictionary".
    """
    value = request.headers.get("content-type")
    if value:
        message = email.message.Message()
        message["content-type"] = value
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE)


Authenticated = Depends(require_token)
JsonBody = Depends(require_json)


class ModelLoadError(Exception):
    """A bundle of the repository could not be loaded (answered with 500 and logged by the app)."""

    def __init__(self, ref: str):
        super().__init__(ref)
        self.ref = ref


def model_not_found(engine: InferenceEngine, name: str, version: int | None) -> HTTPException:
    """404 naming what the repository does have."""
    repository = engine.repository
    versions = repository.versions(name)
    if not versions:
        names = repository.names()
        have = ", ".join(f"'{n}'" for n in names) if names else "none"
        return HTTPException(
            status.HTTP_404_NOT_FOUND, f"Model '{name}' not found; models in the repository: {have}."
        )
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"Model '{name}' has no version {version}; versions: {', '.join(map(str, versions))}.",
    )


def resolve_model(engine: InferenceEngine, ref: str, *, load: bool = True) -> LoadedModel | None:
    """The loaded model ``name[:version]``, loading it from the repository if needed (blocking).

    Parameters
    ----------
    engine : InferenceEngine
        The app's engine.
    ref : str
        ``name``, ``name:latest`` or ``name:<version>``.
    load : bool
        If False, return None instead of loading a version the engine has not loaded yet.

    Raises
    ------
    HTTPException
        422 for a malformed reference, 404 for a model or version the repository does not have,
        500 when the bundle exists but cannot be loaded (corrupt or inconsistent; logged).
    """
    try:
        name, version = parse_model_ref(ref)
    except BundleError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Invalid model reference '{ref}'; use 'name' or 'name:<version>', e.g. 'm2s-synthetic-demo:1'.",
        ) from None
    versions = engine.repository.versions(name)
    if not versions or (version is not None and version not in versions):
        raise model_not_found(engine, name, version)
    key = f"{name}:{version if version is not None else versions[-1]}"
    loaded = engine.models.get(key)
    if loaded is not None or not load:
        return loaded
    try:
        return engine.load(key)
    except BundleError as err:
        raise ModelLoadError(key) from err


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the error body of each status code in OpenAPI."""
    from service.schemas import ErrorPublic

    return {code: {"model": ErrorPublic} for code in codes}


__all__ = [
    "INVALID_TOKEN",
    "NOT_AUTHENTICATED",
    "NOT_READY",
    "UNSUPPORTED_MEDIA_TYPE",
    "Authenticated",
    "EngineDep",
    "JsonBody",
    "ManagerDep",
    "MetricsDep",
    "ModelLoadError",
    "SettingsDep",
    "error_responses",
    "get_calibrations",
    "get_engine",
    "get_manager",
    "get_metrics",
    "get_poller",
    "get_recordings",
    "get_settings",
    "model_not_found",
    "require_json",
    "require_token",
    "resolve_model",
    "token_matches",
    "token_problem",
]
