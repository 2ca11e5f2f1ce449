"""Attached LSL streams: ``GET /streams``, ``POST /streams``, ``GET /streams/{id}``, ``PATCH /streams/{id}``,
``DELETE /streams/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from service.api.deps import (
    Authenticated,
    CalibrationsDep,
    EngineDep,
    JsonBody,
    ManagerDep,
    SettingsDep,
    error_responses,
    resolve_model,
)
from service.schemas import StreamCreate, StreamPublic, StreamsPublic, StreamUpdate
from service.streams import StreamLimitError, follows_latest

router = APIRouter(prefix="/streams", tags=["streams"], dependencies=[Authenticated])


def _not_found(manager, stream_id: str) -> HTTPException:
    attached = ", ".join(sorted(s.id for s in manager.list())) or "none"
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"Stream '{stream_id}' not found; attached streams: {attached}."
    )


@router.get("", response_model=StreamsPublic, responses=error_responses(401), summary="List attached streams")
def list_streams(manager: ManagerDep) -> StreamsPublic:
    """Every attached stream with its health (connected, stale, data age, effective rate)."""
    data = manager.list()
    return StreamsPublic(data=data, count=len(data))


@router.post(
    "",
    response_model=StreamPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    summary="Attach an LSL stream",
)
def attach_stream(
    body: StreamCreate, manager: ManagerDep, engine: EngineDep, settings: SettingsDep
) -> StreamPublic:
    """Resolve the stream in the background and predict on it; the model is loaded now (blocking). With
    ``name`` or ``name:latest`` (or no model and a default model without version) the stream follows the
    model's latest version (hot reload, ``follows_latest``); with ``name:<version>`` it is pinned."""
    requested = body.model or settings.default_model
    loaded = resolve_model(engine, requested)  # 404 / 422 with what exists
    modalities = loaded.bundle.manifest.graphs
    if body.modality not in modalities:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Model {loaded.ref} has no '{body.modality}' modality; its modalities: {', '.join(sorted(modalities))}.",
        )
    try:
        return manager.attach(body.model_copy(update={"model": loaded.ref}), follow=follows_latest(requested))
    except ValueError as err:  # e.g. features that cannot be computed live
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    except StreamLimitError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None


@router.get(
    "/{stream_id}",
    response_model=StreamPublic,
    responses=error_responses(401, 404),
    summary="One attached stream",
)
def get_stream(stream_id: str, manager: ManagerDep) -> StreamPublic:
    """The stream's model, selector and health."""
    try:
        return manager.get(stream_id)
    except KeyError:
        raise _not_found(manager, stream_id) from None


@router.patch(
    "/{stream_id}",
    response_model=StreamPublic,
    dependencies=[JsonBody],
    responses=error_responses(401, 404, 409, 413, 415, 422),
    summary="Switch a stream's model (hot swap)",
)
def update_stream(
    stream_id: str, body: StreamUpdate, manager: ManagerDep, engine: EngineDep, calibrations: CalibrationsDep
) -> StreamPublic:
    """Serve the stream with another model from its next chunk on: the LSL inlet stays connected, and
    with the same feature spec the feature state is kept, so no state is missed. ``name`` or
    ``name:latest`` makes the stream follow the model's latest version, ``name:<version>`` pins it."""
    try:
        modality = manager.get(stream_id).modality
    except KeyError:
        raise _not_found(manager, stream_id) from None
    loaded = resolve_model(engine, body.model)  # 404 / 422 with what exists
    if modality not in loaded.bundle.manifest.graphs:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Model {loaded.ref} has no '{modality}' modality (the stream's); its modalities: "
            f"{', '.join(sorted(loaded.bundle.manifest.graphs))}.",
        )
    calibration = calibrations.collecting_on(stream_id)
    if calibration is not None:
        new, old = loaded.bundle.manifest.graphs[modality], calibration.collectors[stream_id].graph
        if (new.feature_spec, new.seq_len, new.spacing_s) != (old.feature_spec, old.seq_len, old.spacing_s):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Stream {stream_id} is in calibration {calibration.id}, which collects its '{modality}' features "
                f"as {calibration.base.ref} computes them; {loaded.ref} computes others. Fit or cancel the "
                "calibration first.",
            )
    try:
        return manager.swap(stream_id, loaded.ref, follow=follows_latest(body.model))
    except KeyError:  # detached meanwhile
        raise _not_found(manager, stream_id) from None
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None


@router.delete(
    "/{stream_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404),
    summary="Detach a stream",
)
def detach_stream(stream_id: str, manager: ManagerDep) -> None:
    """Stop the stream's worker and forget it."""
    try:
        manager.detach(stream_id)
    except KeyError:
        raise _not_found(manager, stream_id) from None
