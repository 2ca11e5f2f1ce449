"""Triton's model-repository extension: ``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load``.

The load route is the explicit form of the model poller (:mod:`service.reload`): it loads the
latest version of a model now (checksums verified, sessions warmed up) and switches the streams
following the model to it, polling or not. Bodies are optional, as Triton's; a body that is sent
must be JSON.

Errors: 404 unknown model (the message lists the models); 409 when the latest version is in the
repository but cannot be loaded (the reason is in the answer: the bundle must be fixed or replaced,
then loaded again; the following streams stay on their version); 503 while the service is not ready
or another load keeps the repository busy, or a worker process (``M2S_WORKERS >= 2``) did not answer (its
own message: the service is ready; a worker that fails to switch its streams is in ``not_switched`` instead).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status

from models.bundle import BundleError
from models.repository import parse_model_ref
from service.api.deps import (
    NOT_READY,
    Authenticated,
    EngineDep,
    PollerDep,
    error_responses,
    model_not_found,
    require_json,
)
from service.api.errors import sentence
from service.reload import LoadFailed, RefreshBusy
from service.schemas import (
    ModelRef,
    RepositoryIndex,
    RepositoryIndexEntry,
    RepositoryLoad,
    RepositoryLoadResult,
)
from service.workers import WorkerUnavailable


async def json_if_any(request: Request) -> None:
    """415 unless an empty body, or a body declared as JSON (Triton's clients may send none)."""
    if await request.body():
        await require_json(request)


router = APIRouter(prefix="/v2/repository", tags=["repository"], dependencies=[Authenticated])


@router.post(
    "/index",
    response_model=list[RepositoryIndexEntry],
    dependencies=[Depends(json_if_any)],
    responses=error_responses(400, 401, 413, 415, 422, 503),
    summary="Every version of every model and its state",
)
def repository_index(
    engine: EngineDep, poller: PollerDep, body: Annotated[RepositoryIndex | None, Body()] = None
) -> list[RepositoryIndexEntry]:
    """Triton's index: one entry per model version, ``READY`` when loaded, else ``UNAVAILABLE`` with the reason
    (``not loaded``, or why its load failed). ``{"ready": true}`` lists the loaded ones only."""
    repository = engine.repository
    loaded, failed = engine.models, poller.failures()
    entries = []
    for name in repository.names():
        for version in repository.versions(name):
            ref = f"{name}:{version}"
            if ref in loaded:
                entry = RepositoryIndexEntry(name=name, version=str(version), state="READY")
            else:
                entry = RepositoryIndexEntry(
                    name=name, version=str(version), state="UNAVAILABLE", reason=failed.get(ref, "not loaded")
                )
            if entry.state == "READY" or not (body is not None and body.ready):
                entries.append(entry)
    return entries


@router.post(
    "/models/{name}/load",
    response_model=RepositoryLoadResult,
    dependencies=[Depends(json_if_any)],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    summary="Load the latest version of a model and switch the streams following it",
)
def load_model(
    name: str, engine: EngineDep, poller: PollerDep, body: Annotated[RepositoryLoad | None, Body()] = None
) -> RepositoryLoadResult:
    """Look at the repository now: load the latest version of ``name`` (verified, warmed up) and switch every
    stream following ``name`` (attached with ``name`` or ``name:latest``) to it between two states. Streams
    pinned to a version are left alone."""
    try:
        parse_model_ref(name)
        versions = engine.repository.versions(name)
    except BundleError:
        versions = []  # not a valid name (e.g. '..'): never touch the file system with it
    if not versions:
        raise model_not_found(engine, name, None)
    try:
        refresh = poller.load(name)
    except BundleError:  # the name's versions vanished meanwhile
        raise model_not_found(engine, name, None) from None
    except LoadFailed as err:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Model {err.ref} could not be loaded: {err.reason.rstrip('.')}. The streams following '{name}' stay "
            "on their version; fix or replace the bundle, then load again.",
        ) from None
    except RefreshBusy as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, sentence(err)) from None
    except WorkerUnavailable as err:  # a RuntimeError, but not shutting down: a worker process did not answer
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"A worker process did not answer while the streams following '{name}' were switched: {err}",
        ) from None
    except RuntimeError:  # the engine closed: shutting down
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_READY) from None
    if refresh.loaded is None:  # every version vanished meanwhile
        raise model_not_found(engine, name, None)
    manifest = refresh.loaded.bundle.manifest
    return RepositoryLoadResult(
        model=ModelRef(name=manifest.name, version=manifest.version),
        switched=refresh.switched,
        not_switched=refresh.not_switched,
    )
