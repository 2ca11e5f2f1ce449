"""Live calibration of a new participant (``docs/design/CALIBRATION.md`` §3): ``POST /calibrations``,
``GET /calibrations[/{id}]``, ``POST /calibrations/{id}/label``, ``POST /calibrations/{id}/fit``,
``DELETE /calibrations/{id}``.

Errors: 404 unknown calibration, stream or model; 409 when the calibration's state (or the writable
repository) forbids the request now; 422 when the request itself is wrong. Routes that block (model
loading, the fit) are plain ``def``: FastAPI runs them in its threadpool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, HTTPException, status

from service.api.deps import (
    Authenticated,
    CalibrationsDep,
    EngineDep,
    JsonBody,
    ManagerDep,
    error_responses,
    resolve_model,
)
from service.api.errors import sentence
from service.calibration import Calibration, CalibrationConflict, CalibrationFailed, CalibrationNotFound
from service.schemas import (
    CalibrationCreate,
    CalibrationFit,
    CalibrationLabel,
    CalibrationPublic,
    CalibrationResult,
    CalibrationsPublic,
)

router = APIRouter(prefix="/calibrations", tags=["calibrations"], dependencies=[Authenticated])


# What the manager raises -> the answer's status (first match): the fit itself failing is the service's fault
# (the calibration is now 'failed', logged), the others are the request's.
_STATUS_OF = (
    (CalibrationFailed, status.HTTP_500_INTERNAL_SERVER_ERROR),
    (CalibrationNotFound, status.HTTP_404_NOT_FOUND),
    (CalibrationConflict, status.HTTP_409_CONFLICT),
    (ValueError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


@contextmanager
def _answered() -> Iterator[None]:
    """Turn the manager's exceptions into their HTTP answers (the detail is the message as a sentence)."""
    try:
        yield
    except tuple(cls for cls, _ in _STATUS_OF) as err:
        code = next(code for cls, code in _STATUS_OF if isinstance(err, cls))
        raise HTTPException(code, sentence(err)) from None


def _public(calibration: Calibration) -> CalibrationPublic:
    return CalibrationPublic.model_validate(calibration.snapshot())


def _get(calibrations, calibration_id: str) -> Calibration:
    try:
        return calibrations.get(calibration_id)
    except CalibrationNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None


@router.post(
    "",
    response_model=CalibrationPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    summary="Start calibrating a participant on attached streams",
)
def create_calibration(
    body: CalibrationCreate, calibrations: CalibrationsDep, manager: ManagerDep, engine: EngineDep
) -> CalibrationPublic:
    """Collect the participant's labelled windows (labels from a marker stream or from REST) and
    feature statistics on the given attached streams, until ``POST /calibrations/{id}/fit``."""
    if body.model is not None:
        base = resolve_model(engine, body.model)  # 404 / 422 with what exists
    else:
        try:
            first = manager.get(body.streams[0])
        except KeyError as err:
            raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None
        base = resolve_model(engine, f"{first.model.name}:{first.model.version}")
    with _answered():
        return _public(calibrations.create(body, base))


@router.get(
    "", response_model=CalibrationsPublic, responses=error_responses(401, 503), summary="List calibrations"
)
def list_calibrations(calibrations: CalibrationsDep) -> CalibrationsPublic:
    """Every calibration of this service run (the last 100 finished ones), oldest first."""
    data = [_public(c) for c in calibrations.list()]
    return CalibrationsPublic(data=data, count=len(data))


@router.get(
    "/{calibration_id}",
    response_model=CalibrationPublic,
    responses=error_responses(401, 404, 503),
    summary="One calibration and its progress",
)
def get_calibration(calibration_id: str, calibrations: CalibrationsDep) -> CalibrationPublic:
    """State, windows per modality and class, trials per class, the trials seen, and the result once fitted."""
    return _public(_get(calibrations, calibration_id))


@router.post(
    "/{calibration_id}/label",
    response_model=CalibrationPublic,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    summary="Start or end a labelled trial now (REST labelling)",
)
def label_calibration(
    calibration_id: str, body: CalibrationLabel, calibrations: CalibrationsDep
) -> CalibrationPublic:
    """``{"label": "<class>"}`` starts a trial of that class at the current LSL time (ending an open one);
    ``{"label": null}`` ends it. Windows entirely inside a trial become calibration data."""
    calibration = _get(calibrations, calibration_id)
    if calibration.labels != "rest":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Calibration {calibration_id} takes its labels from a marker stream; REST labels need a calibration "
            'created with "labels": {"rest": true}.',
        )
    try:
        calibration.label(body.label)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, sentence(err)) from None
    except RuntimeError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, sentence(err)) from None
    return _public(calibration)


@router.post(
    "/{calibration_id}/fit",
    response_model=CalibrationResult,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 500, 503),
    summary="Fit the participant's head, save it as a new model version, optionally activate it",
)
def fit_calibration(
    calibration_id: str, body: CalibrationFit, calibrations: CalibrationsDep
) -> CalibrationResult:
    """Runs off the event loop; live states keep flowing. The new model ``<base>-<participant>:<n>``
    is saved in the calibrated repository; with ``activate`` the calibration's streams switch to it
    between two states."""
    _get(calibrations, calibration_id)
    with _answered():
        result = calibrations.fit(calibration_id, body.train_modality, body.activate)
    return CalibrationResult.model_validate(result)


@router.delete(
    "/{calibration_id}",
    response_model=CalibrationPublic,
    responses=error_responses(401, 404, 409, 503),
    summary="Cancel a calibration (nothing is written) or forget a finished one",
)
def delete_calibration(calibration_id: str, calibrations: CalibrationsDep) -> CalibrationPublic:
    """A collecting calibration is cancelled (its data dropped, nothing saved); a finished one is
    forgotten (a model it saved stays in the repository)."""
    _get(calibrations, calibration_id)
    try:
        return _public(calibrations.cancel(calibration_id))
    except CalibrationNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None
    except CalibrationConflict as err:
        raise HTTPException(status.HTTP_409_CONFLICT, sentence(err)) from None
