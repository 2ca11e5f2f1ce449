"""Session recordings (``docs/design/CALIBRATION.md`` §4): ``POST /recordings``, ``GET /recordings[/{id}]``,
``DELETE /recordings/{id}``.

A recording writes attached streams (as received) and a marker stream to one XDF file in
``M2S_RECORDINGS_DIR`` (:mod:`service.recordings`). Errors: 404 unknown recording or stream; 409 when
the folder is not writable, the name is taken or a stream is already recorded; 422 for a wrong
request. A recording that fails while writing (full disk) keeps its file and says why in ``error``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from service.api.deps import NOT_READY, Authenticated, JsonBody, RecordingsDep, error_responses
from service.api.errors import sentence
from service.recordings import RecordingConflict, RecordingNotFound, SessionRecording
from service.schemas import RecordingCreate, RecordingPublic, RecordingsPublic

router = APIRouter(prefix="/recordings", tags=["recordings"], dependencies=[Authenticated])


def _public(recording: SessionRecording) -> RecordingPublic:
    return RecordingPublic.model_validate(recording.snapshot())


@router.post(
    "",
    response_model=RecordingPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    summary="Start recording attached streams (and a marker stream) to an XDF file",
)
def create_recording(body: RecordingCreate, recordings: RecordingsDep) -> RecordingPublic:
    """Every chosen stream's samples as received (outlet timestamps, clock offsets, the outlet's channel
    description) and the marker stream go to ``<M2S_RECORDINGS_DIR>/<name>.xdf`` until ``DELETE``."""
    try:
        return _public(recordings.start(body.streams, body.markers, body.name))
    except KeyError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None
    except RecordingConflict as err:
        raise HTTPException(status.HTTP_409_CONFLICT, sentence(err)) from None
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, sentence(err)) from None
    except RuntimeError:  # the manager closed: shutting down
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NOT_READY) from None


@router.get(
    "", response_model=RecordingsPublic, responses=error_responses(401, 503), summary="List recordings"
)
def list_recordings(recordings: RecordingsDep) -> RecordingsPublic:
    """This run's recordings (the last 50 ended ones) and the other XDF files of the folder."""
    return RecordingsPublic(recordings=[_public(r) for r in recordings.list()], stored=recordings.stored())


@router.get(
    "/{recording_id}",
    response_model=RecordingPublic,
    responses=error_responses(401, 404, 503),
    summary="One recording and what it holds so far",
)
def get_recording(recording_id: str, recordings: RecordingsDep) -> RecordingPublic:
    """State, samples and chunks per stream, markers, bytes, and the error of a failed recording."""
    try:
        return _public(recordings.get(recording_id))
    except RecordingNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None


@router.delete(
    "/{recording_id}",
    response_model=RecordingPublic,
    responses=error_responses(401, 404, 503),
    summary="Close a recording (the file stays)",
)
def close_recording(recording_id: str, recordings: RecordingsDep) -> RecordingPublic:
    """Writes what is queued and the stream footers, then closes the file; the file is never deleted
    (health data is the lab's to manage). Closing a closed recording returns it as it is."""
    try:
        return _public(recordings.stop(recording_id))
    except RecordingNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, sentence(err)) from None
