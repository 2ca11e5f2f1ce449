"""Python SDK of the M2S-live service: :class:`Client` (sync, httpx), :class:`AsyncClient` (asyncio).

The result models mirror the service's JSON (``service/schemas.py``) but are declared here, so that a
client installs neither FastAPI nor onnxruntime. Unknown fields are kept (``extra="allow"``): a newer
service does not break an older SDK.

Every error answer of the service (``{"detail": "..."}``) raises :class:`M2SError` with the HTTP status
and the service's sentence; a refused WebSocket raises it with the close code (4401 wrong token, 4404
unknown stream). An unreachable service raises :class:`M2SError` with ``status=None``.

Live calibration of a new participant (``/calibrations``, see ``service/api/routes/calibrations.py``):
:meth:`Client.calibrate` runs a whole session (create, wait for enough labelled trials, fit, activate);
:meth:`Client.create_calibration`, :meth:`Client.calibration`, :meth:`Client.label`,
:meth:`Client.fit_calibration` and :meth:`Client.cancel_calibration` are the single steps; ``record=True``
records the session too.

Session recordings (``/recordings``, see ``service/api/routes/recordings.py``): attached streams and a
marker stream written as received to one XDF file in the service's ``M2S_RECORDINGS_DIR``:
:meth:`Client.start_recording`, :meth:`Client.recording`, :meth:`Client.recordings` and
:meth:`Client.stop_recording`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

# WebSocket close codes after which reconnecting cannot help (see service/api/routes/ws.py).
_FATAL_CLOSE_CODES = {4401: "not authenticated", 4404: "unknown stream"}


class M2SError(Exception):
    """An error answer of the service, or the service could not be reached.

    Parameters
    ----------
    status : int or None
        HTTP status (4xx/5xx), WebSocket close code (4401, 4404), or None when no answer came.
    detail : str
        The service's one-sentence explanation (its ``detail`` field), or what went wrong locally.
    """

    def __init__(self, status: int | None, detail: str):
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail


class _Result(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ModelRef(_Result):
    """A model of the repository: name and integer version."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class Timing(_Result):
    """Where the time of one prediction went, in milliseconds."""

    features_ms: float | None = None
    inference_ms: float
    total_ms: float


class EmotionState(_Result):
    """One recognised emotional state (``POST /predict`` answer, WebSocket ``state`` message).

    ``probabilities`` maps each class name to its probability (they sum to 1); ``lsl_time`` (s) is the
    window end on the LSL clock (None for a REST request without timestamps); ``wall_time`` is Unix time
    (s) at emission; ``data_age_s`` the age of the newest sample then; ``stale`` says the stream stalled.
    """

    label: str
    probabilities: dict[str, float]
    modality: str
    model: ModelRef
    stream_id: str | None = None
    lsl_time: float | None = None
    wall_time: float
    data_age_s: float | None = None
    stale: bool = False
    latency_ms: float | None = None
    timing: Timing | None = None


class StreamInfo(_Result):
    """An attached LSL stream and its health (``GET /streams`` item, ``POST /streams`` answer)."""

    id: str
    modality: str
    model: ModelRef
    selector: dict[str, Any]
    connected: bool
    stale: bool
    #: 'connecting', 'ok', 'stale', 'unusable' (connected, but cannot feed the model: no states) or 'failing' (its
    #: latest chunk failed, no state since); last_error says why.
    health: str = "ok"
    data_age_s: float | None = None
    effective_srate: float | None = None
    n_reconnects: int = 0
    n_states: int = 0
    last_error: str | None = None
    channels: list[str] | None = None
    sfreq: float | None = None
    follows_latest: bool = False


#: A load warms up every session and may wait for a scan in progress (the service gives up after 60 s).
_LOAD_TIMEOUT_S = 90.0


class ModelLoad(_Result):
    """``POST /v2/repository/models/{name}/load``: the version now loaded and the streams switched to it."""

    model: ModelRef
    switched: list[str]
    not_switched: dict[str, str]


class ModelSummary(_Result):
    """One model name of the repository (``GET /v2/models`` item)."""

    name: str
    versions: list[int]
    loaded: list[int]
    modalities: list[str]


class ModelMetadata(_Result):
    """Metadata of one model version (``GET /v2/models/{name}``); ``modalities`` as the service sends it.

    ``modalities[m]`` holds ``seq_len`` (T), ``dim`` (D), ``spacing_s`` and ``feature_spec`` (``sfreq``
    in Hz, ``channels``, ``unit``, ``min_signal_s``): what a ``features`` or ``signal`` request needs.
    """

    name: str
    version: int
    versions: list[int]
    ready: bool
    class_names: list[str]
    modalities: dict[str, dict[str, Any]]
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class Readiness(_Result):
    """``GET /v2/health/ready``: ``ready`` (False while starting or stopping), loaded models, providers."""

    ready: bool
    models: list[str]
    providers: dict[str, dict[str, str]]


class ModalityValidation(_Result):
    """Leave-one-trial-out validation of one served modality of a calibrated model.

    ``balanced_accuracy`` is None where the service could not score the modality (no held-out window);
    ``head`` names the modality whose windows fitted the head serving this one (another one for a
    cross-modal head); ``own_head_balanced_accuracy`` scores this modality's own head beside it.
    """

    balanced_accuracy: float | None = None
    head: str | None = None
    n_windows: int = 0
    own_head_balanced_accuracy: float | None = None


class CalibrationValidation(_Result):
    """Validation of a fit within the calibration trials: overall, per modality, trials per class, chosen C."""

    balanced_accuracy: float | None = None
    per_modality: dict[str, ModalityValidation] = Field(default_factory=dict)
    n_trials: dict[str, int] = Field(default_factory=dict)
    c: dict[str, float] = Field(default_factory=dict)


class CalibrationResult(_Result):
    """The answer of a fit (``POST /calibrations/{id}/fit``): the new model ``<base>-<participant>:<n>``,
    its validation, the streams switched to it and the seconds the fit took."""

    model: ModelRef
    validation: CalibrationValidation
    activated: list[str] = Field(default_factory=list)
    fit_s: float | None = None


class MarkerEvent(_Result):
    """A labelled trial a calibration saw: LSL times (s) of its start and end (None while open).

    ``used`` says its windows are calibration data (test-phase trials and unknown labels are not).
    """

    label: str | None = None
    start: float
    end: float | None = None
    phase: str | None = None
    used: bool = False


class CalibrationInfo(_Result):
    """A calibration and its progress (``GET /calibrations/{id}``).

    ``state`` is ``collecting``, ``fitting``, ``done``, ``failed`` or ``cancelled``; ``model`` the base
    model; ``counts[modality][class]`` the labelled windows so far; ``trials[class]`` the completed,
    used trials (its keys are the base model's classes); ``notes`` the markers or labels that were not
    used, and why; ``result`` the fit's answer once done.
    """

    id: str
    participant: str
    state: str
    model: ModelRef
    streams: list[str]
    modalities: dict[str, str] = Field(default_factory=dict)
    labels: str
    markers_connected: bool | None = None
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    trials: dict[str, int] = Field(default_factory=dict)
    open_label: str | None = None
    events: list[MarkerEvent] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    result: CalibrationResult | None = None
    created: float | None = None

    recording_id: str | None = None

    def missing_trials(self, trials_per_class: int) -> dict[str, int]:
        """Trials still missing per class to reach ``trials_per_class`` (classes already there left out)."""
        return {label: trials_per_class - n for label, n in self.trials.items() if n < trials_per_class}


class RecordedStream(_Result):
    """One stream of a recording: ``n_samples`` and ``n_chunks`` written so far; ``name`` is the LSL
    stream's (None before its first chunk); ``xdf_stream_ids`` its stream ids in the file."""

    stream_id: str
    modality: str | None = None
    name: str | None = None
    n_samples: int = 0
    n_chunks: int = 0
    xdf_stream_ids: list[int] = Field(default_factory=list)


class RecordedMarkers(_Result):
    """The marker stream of a recording: its selector, LSL name, markers written, connection."""

    selector: dict[str, str]
    name: str | None = None
    n_markers: int = 0
    connected: bool = False


class RecordingInfo(_Result):
    """A session recording (``GET /recordings/{id}``).

    ``state`` is ``recording``, ``closing``, ``closed`` or ``failed`` (``error`` says why; the file keeps
    what came before); ``file`` the XDF file's name in the service's ``M2S_RECORDINGS_DIR``; ``bytes``
    written so far; ``started`` / ``ended`` ISO times; ``calibration_id`` the calibration that started
    it (``record=True``), if any.
    """

    id: str
    name: str
    file: str
    state: str
    error: str | None = None
    started: str
    ended: str | None = None
    duration_s: float = 0.0
    bytes: int = 0
    streams: list[RecordedStream] = Field(default_factory=list)
    markers: RecordedMarkers | None = None
    calibration_id: str | None = None


class StoredRecording(_Result):
    """An XDF file of the recordings folder that no recording of this run writes; ``complete`` is False
    while it ends with a half-written chunk (the service repairs it at start)."""

    file: str
    bytes: int
    complete: bool = True


class Recordings(_Result):
    """``GET /recordings``: this run's recordings (oldest first) and the other files of the folder."""

    recordings: list[RecordingInfo] = Field(default_factory=list)
    stored: list[StoredRecording] = Field(default_factory=list)


# -- request building and answer parsing, shared by the sync and async clients -------------------------


def _as_matrix(values: Any, what: str) -> list[list[float]]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{what} must be a rectangular array of numbers; {_SHAPES[what]}.") from None
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array, got shape {array.shape}; {_SHAPES[what]}.")
    return array.tolist()


_SHAPES = {
    "features": "send (T, D) = (seq_len, dim) feature vectors, oldest first",
    "signal['data']": "send (n_channels, n_samples), time last",
}


def _predict_body(
    modality: str, features: Any, signal: Mapping[str, Any] | None, model: str | None
) -> dict[str, Any]:
    if not isinstance(modality, str) or not modality:
        raise TypeError(f"modality must be a non-empty str such as 'eeg', got {modality!r}.")
    if (features is None) == (signal is None):
        raise ValueError("give exactly one of features= (T x D) or signal= (raw channels x samples).")
    body: dict[str, Any] = {"modality": modality}
    if model is not None:
        body["model"] = model
    if features is not None:
        body["features"] = _as_matrix(features, "features")
    else:
        if not isinstance(signal, Mapping):
            raise TypeError(
                "signal must be a mapping with 'sfreq', 'channels', 'data' (and optionally 'timestamps', "
                f"'unit'), got {type(signal).__name__}."
            )
        out = dict(signal)
        if "data" in out:
            out["data"] = _as_matrix(out["data"], "signal['data']")
        if out.get("timestamps") is not None:
            out["timestamps"] = np.asarray(out["timestamps"], dtype=np.float64).ravel().tolist()
        if out.get("channels") is not None:
            out["channels"] = [str(c) for c in out["channels"]]
        if out.get("sfreq") is not None:
            out["sfreq"] = float(out["sfreq"])
        body["signal"] = out
    return body


def _attach_body(modality: str, type: str | None, name: str | None, source_id: str | None, model: str | None):
    body = {"modality": modality, "type": type, "name": name, "source_id": source_id, "model": model}
    return {k: v for k, v in body.items() if v is not None}


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        detail = response.text or response.reason_phrase
    raise M2SError(response.status_code, str(detail))


def _unreachable(base_url: str, err: Exception) -> M2SError:
    return M2SError(None, f"cannot reach the service at {base_url}: {err}")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _ws_url(base_url: str, stream_id: str | None) -> str:
    url = httpx.URL(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    params = {"stream": stream_id} if stream_id is not None else {}
    return str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + "/ws", params=params))


def _check_timeout(timeout: float) -> float:
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    return float(timeout)


# -- calibration: request bodies, argument checks and the wait of calibrate() ----------------------------

#: Seconds to wait for the answer of a fit: it embeds every labelled window and validates by
#: leave-one-trial-out before it answers, which takes longer than an ordinary request.
FIT_TIMEOUT_S = 300.0

#: Trials per class the service needs at least (one trial of each class is held out for validation).
MIN_TRIALS_PER_CLASS = 2

_SELECTOR_KEYS = ("type", "name", "source_id")
_LABEL_SOURCE = (
    'give exactly one label source: markers={"type": "Markers"} (an LSL marker stream of the experiment) '
    "or rest=True (you label trials with label())"
)


def _text(value: Any, what: str, example: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str such as {example}, got {type(value).__name__}.")
    if not value.strip():
        raise ValueError(f"{what} must be a non-empty str such as {example}, got {value!r}.")
    return value


def _stream_list(streams: Sequence[str], purpose: str) -> list[str]:
    """The attached stream ids of a calibration or recording, checked (``purpose``: 'calibrate', 'record')."""
    if isinstance(streams, str) or not isinstance(streams, Sequence):
        raise TypeError(
            f"streams must be a list of attached stream ids such as ['eeg-1a2b'], got {streams!r}"
            + (f"; wrap one id in a list: [{streams!r}]." if isinstance(streams, str) else ".")
        )
    if not streams:
        raise ValueError(
            f"streams is empty; give the ids of the attached streams to {purpose} (see streams())."
        )
    for sid in streams:
        _text(sid, "each stream id", "'eeg-1a2b'")
    return list(streams)


def _marker_selector(markers: Mapping[str, str]) -> dict[str, str]:
    """An LSL marker stream selector (type / name / source_id, at least one), checked."""
    if not isinstance(markers, Mapping):
        raise TypeError(
            f"markers must be a mapping of type / name / source_id, e.g. {{'type': 'Markers'}}, got {markers!r}."
        )
    unknown = sorted(set(markers) - set(_SELECTOR_KEYS))
    if unknown or not markers:
        raise ValueError(
            f"markers picks the LSL marker stream by {', '.join(_SELECTOR_KEYS)} (at least one), "
            f"e.g. {{'type': 'Markers'}}; got {dict(markers)!r}."
        )
    for key, value in markers.items():
        _text(value, f"markers[{key!r}]", "'Markers'")
    return dict(markers)


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {value!r}.")
    return value


def _calibration_body(
    participant: str,
    streams: Sequence[str],
    markers: Mapping[str, str] | None,
    rest: bool,
    model: str | None,
    record: bool = False,
) -> dict[str, Any]:
    _text(participant, "participant", "'p-013'")
    stream_ids = _stream_list(streams, "calibrate")
    _flag(rest, "rest")
    _flag(record, "record")
    if (markers is None) == (not rest):
        raise ValueError(_LABEL_SOURCE + f"; got markers={markers!r}, rest={rest!r}.")
    labels: dict[str, Any] = {"markers": _marker_selector(markers)} if markers is not None else {"rest": True}
    body: dict[str, Any] = {"participant": participant, "streams": stream_ids, "labels": labels}
    if model is not None:
        body["model"] = _text(model, "model", "'m2s-synthetic-demo' or 'm2s-synthetic-demo:1'")
    if record:
        body["record"] = True
    return body


def _recording_body(
    streams: Sequence[str], markers: Mapping[str, str] | None, name: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"streams": _stream_list(streams, "record")}
    if markers is not None:
        body["markers"] = _marker_selector(markers)
    if name is not None:
        body["name"] = _text(name, "name", "'p-013-session1' (the file name without .xdf)")
    return body


def _fit_body(train_modality: str | None, activate: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"activate": _flag(activate, "activate")}
    if train_modality is not None:
        body["train_modality"] = _text(train_modality, "train_modality", "'eeg'")
    return body


def _label_body(label: str | None) -> dict[str, Any]:
    if label is not None:
        _text(label, "label", "'positive' (a class of the base model; None ends the trial)")
    return {"label": label}


def _check_calibrate(trials_per_class: int, timeout_s: float, poll_s: float, on_progress) -> None:
    if isinstance(trials_per_class, bool) or not isinstance(trials_per_class, int):
        raise TypeError(f"trials_per_class must be an int, got {trials_per_class!r}.")
    if trials_per_class < MIN_TRIALS_PER_CLASS:
        raise ValueError(
            f"trials_per_class must be >= {MIN_TRIALS_PER_CLASS} (the fit holds one trial of each class out "
            f"for validation), got {trials_per_class}."
        )
    for value, what in ((timeout_s, "timeout_s"), (poll_s, "poll_s")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{what} must be a positive number of seconds, got {value!r}.")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable (it gets each CalibrationInfo), got {on_progress!r}.")


def _collected(info: CalibrationInfo, trials_per_class: int) -> bool:
    """True once every class has ``trials_per_class`` trials; RuntimeError when it stopped collecting."""
    if info.state != "collecting":
        why = f": {info.error}" if info.error else ""
        raise RuntimeError(
            f"calibration {info.id} is {info.state}{why} before it had {trials_per_class} trials of each class "
            f"(trials {_describe_trials(info)}); start a new one."
        )
    return not info.missing_trials(trials_per_class)


def _describe_trials(info: CalibrationInfo) -> str:
    return ", ".join(f"{label} {n}" for label, n in info.trials.items()) or "none"


def _timeout_error(
    info: CalibrationInfo, trials_per_class: int, timeout_s: float, cancelled: bool
) -> TimeoutError:
    windows = "; ".join(
        f"{m} " + ", ".join(f"{label} {n}" for label, n in counts.items())
        for m, counts in info.counts.items()
    )
    if info.labels == "markers" and not info.markers_connected:
        hint = "the marker stream is not connected: check the markers selector (type / name / source_id)"
    elif not any(info.trials.values()) and not any(n for c in info.counts.values() for n in c.values()):
        hint = "no labelled window arrived: are the streams and the markers (or label() calls) running?"
    else:
        hint = "run more trials per class, or give a longer timeout_s"
    last = f"; last note: {info.notes[-1].rstrip('.')}" if info.notes else ""
    fate = "was cancelled (nothing saved)" if cancelled else "could not be cancelled (see the log)"
    return TimeoutError(
        f"calibration {info.id} (participant {info.participant}) did not reach {trials_per_class} trials of each "
        f"class within {timeout_s:g} s and {fate}; trials so far: {_describe_trials(info)} (windows: "
        f"{windows or 'none'}); {hint}{last}."
    )


# -- sync client -------------------------------------------------------------------------------------


class Client:
    """Synchronous client of one M2S-live service.

    Parameters
    ----------
    base_url : str
        The service root, e.g. ``"http://127.0.0.1:8000"``.
    token : str, optional
        The service's API token (``M2S_API_TOKEN``), sent as ``Authorization: Bearer``.
    timeout : float
        Seconds to wait for each HTTP answer (default 10).

    Examples
    --------
    >>> with Client("http://127.0.0.1:8000") as m2s:  # doctest: +SKIP
    ...     state = m2s.predict("eeg", features=window)  # window: (T, D) array
    ...     print(state.label, state.probabilities)
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(token), timeout=_check_timeout(timeout)
        )

    def _call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        ok_statuses=(),
        timeout=httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json_body, timeout=timeout)
        except httpx.TransportError as err:
            raise _unreachable(self.base_url, err) from err
        if response.status_code not in ok_statuses:
            _raise_for_status(response)
        return response

    def predict(
        self,
        modality: str,
        *,
        features: Any = None,
        signal: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> EmotionState:
        """Recognise the emotional state of one window of features or of a raw signal's last window.

        Parameters
        ----------
        modality : str
            ``'eeg'``, ``'eye'``, ``'ecg'``, ... (one the model serves).
        features : array-like, shape (T, D), optional
            NOT normalised feature vectors, oldest first (T = seq_len, D = dim of the model).
        signal : mapping, optional
            ``{"sfreq": Hz, "channels": [...], "data": (n_channels, n_samples), "timestamps": (n_samples,)
            s (optional), "unit": "uV" (optional)}``; numpy arrays are accepted.
        model : str, optional
            ``'name'`` or ``'name:version'``; default: the service's default model.

        Returns
        -------
        EmotionState
        """
        body = _predict_body(modality, features, signal, model)
        return EmotionState.model_validate(self._call("POST", "/predict", body).json())

    def models(self) -> list[ModelSummary]:
        """The models of the repository (``GET /v2/models``)."""
        return [ModelSummary.model_validate(m) for m in self._call("GET", "/v2/models").json()["data"]]

    def model(self, name: str) -> ModelMetadata:
        """Metadata of a model: ``'name'`` (latest version) or ``'name:version'``."""
        return ModelMetadata.model_validate(self._call("GET", _model_path(name)).json())

    def load_model(self, name: str) -> ModelLoad:
        """Load the latest version of ``name`` now and switch the streams following it (hot reload without
        waiting for the poller, e.g. right after ``m2s-train adapt``); a broken version is an M2SError (409)."""
        path = f"/v2/repository/models/{_segment(name)}/load"
        return ModelLoad.model_validate(self._call("POST", path, timeout=_LOAD_TIMEOUT_S).json())

    def streams(self) -> list[StreamInfo]:
        """The attached streams and their health (``GET /streams``)."""
        return [StreamInfo.model_validate(s) for s in self._call("GET", "/streams").json()["data"]]

    def attach(
        self,
        modality: str,
        *,
        type: str | None = None,  # noqa: A002 - the LSL field's name
        name: str | None = None,
        source_id: str | None = None,
        model: str | None = None,
    ) -> StreamInfo:
        """Attach the LSL stream picked by ``type`` / ``name`` / ``source_id`` (at least one) to ``modality``."""
        body = _attach_body(modality, type, name, source_id, model)
        return StreamInfo.model_validate(self._call("POST", "/streams", body).json())

    def detach(self, stream_id: str) -> None:
        """Detach an attached stream (``DELETE /streams/{id}``)."""
        self._call("DELETE", f"/streams/{_segment(stream_id)}")

    # -- calibration -------------------------------------------------------------------------------

    def create_calibration(
        self,
        participant: str,
        streams: Sequence[str],
        *,
        markers: Mapping[str, str] | None = None,
        rest: bool = False,
        model: str | None = None,
        record: bool = False,
    ) -> CalibrationInfo:
        """Start calibrating ``participant`` on attached streams (``POST /calibrations``).

        Parameters
        ----------
        participant : str
            Participant id: letters, digits, ``_`` and ``-``, at most 64, starting with a letter or digit
            (the service checks it: 422). The calibrated model is named ``<base>-<participant>``.
        streams : list of str
            Ids of attached streams (:meth:`streams`), at most one per modality.
        markers : mapping, optional
            The experiment's LSL marker stream, by ``type`` / ``name`` / ``source_id``, e.g.
            ``{"type": "Markers"}``: JSON onsets ``{"trial": k, "label": "<class>"}`` or
            ``trial_start:<label>`` / ``trial_end`` strings label the trials.
        rest : bool
            Label the trials with :meth:`label` instead (give exactly one of ``markers`` and ``rest``).
        model : str, optional
            Base model ``'name'`` or ``'name:version'``; default: the model the first stream runs.
        record : bool
            Also record the session to an XDF file (the streams, and the marker stream or the REST
            labels as markers) until the calibration ends; :meth:`recording` of its ``recording_id``.

        Returns
        -------
        CalibrationInfo
            State ``collecting``; its ``id`` names the calibration in the other calls.
        """
        body = _calibration_body(participant, streams, markers, rest, model, record)
        return CalibrationInfo.model_validate(self._call("POST", "/calibrations", body).json())

    def calibration(self, calibration_id: str) -> CalibrationInfo:
        """A calibration and its progress: state, windows and trials per class, events, notes, result."""
        return CalibrationInfo.model_validate(
            self._call("GET", f"/calibrations/{_segment(calibration_id)}").json()
        )

    def calibrations(self) -> list[CalibrationInfo]:
        """Every calibration of the running service, oldest first (``GET /calibrations``)."""
        return [CalibrationInfo.model_validate(c) for c in self._call("GET", "/calibrations").json()["data"]]

    def label(self, calibration_id: str, label: str | None) -> CalibrationInfo:
        """REST labelling: start a trial of class ``label`` now (ending an open one), or end it (None).

        Only for a calibration created with ``rest=True`` (409 otherwise); an unknown class is a 422
        whose message lists the base model's classes.
        """
        body = _label_body(label)
        return CalibrationInfo.model_validate(
            self._call("POST", f"/calibrations/{_segment(calibration_id)}/label", body).json()
        )

    def fit_calibration(
        self,
        calibration_id: str,
        *,
        train_modality: str | None = None,
        activate: bool = False,
        timeout: float = FIT_TIMEOUT_S,
    ) -> CalibrationResult:
        """Fit the participant's head, save it as a new model version and optionally activate it.

        Parameters
        ----------
        calibration_id : str
        train_modality : str, optional
            Fit one head on this modality's windows and serve every modality with it (cross-modal);
            default: each modality with enough trials its own head.
        activate : bool
            Switch the calibration's streams to the new model (hot swap, between two states).
        timeout : float
            Seconds to wait for the answer (default :data:`FIT_TIMEOUT_S`).

        Returns
        -------
        CalibrationResult
            The new model ``<base>-<participant>:<n>``, its leave-one-trial-out validation and the
            streams switched to it. Too few trials of some class is a 422; the calibration then keeps
            collecting.
        """
        body = _fit_body(train_modality, activate)
        response = self._call(
            "POST",
            f"/calibrations/{_segment(calibration_id)}/fit",
            body,
            timeout=_check_timeout(timeout),
        )
        return CalibrationResult.model_validate(response.json())

    def cancel_calibration(self, calibration_id: str) -> CalibrationInfo:
        """Cancel a collecting calibration (nothing is saved) or forget a finished one (``DELETE``)."""
        return CalibrationInfo.model_validate(
            self._call("DELETE", f"/calibrations/{_segment(calibration_id)}").json()
        )

    def calibrate(
        self,
        participant: str,
        streams: Sequence[str],
        *,
        markers: Mapping[str, str] | None = None,
        rest: bool = False,
        model: str | None = None,
        record: bool = False,
        trials_per_class: int = MIN_TRIALS_PER_CLASS,
        train_modality: str | None = None,
        activate: bool = True,
        timeout_s: float = 1800.0,
        poll_s: float = 1.0,
        on_progress: Callable[[CalibrationInfo], Any] | None = None,
    ) -> CalibrationResult:
        """Calibrate a participant end to end: create, wait for labelled trials, fit, activate.

        Parameters
        ----------
        participant, streams, markers, rest, model, record
            As in :meth:`create_calibration`.
        trials_per_class : int
            Fit once every class of the base model has this many completed, used trials (at least
            :data:`MIN_TRIALS_PER_CLASS`; more trials give a better head and a steadier validation).
        train_modality, activate
            As in :meth:`fit_calibration`; ``activate`` defaults to True here.
        timeout_s : float
            Longest wait for the trials, s (the fit's own time not included).
        poll_s : float
            Seconds between two progress requests.
        on_progress : callable, optional
            Called with each :class:`CalibrationInfo` polled, the first one right after creation.

        Returns
        -------
        CalibrationResult

        Raises
        ------
        TimeoutError
            The trials did not come within ``timeout_s``; the calibration is cancelled and the message
            gives the trials and windows per class so far.
        RuntimeError
            The calibration stopped collecting meanwhile (cancelled elsewhere, the service stopping).
        M2SError
            An error answer of the service (e.g. 404 unknown stream, 409 stream busy, 422 bad
            participant id).

        Notes
        -----
        Whatever interrupts the wait or the fit (an error, Ctrl-C) cancels the calibration while it is
        still collecting, so that its streams are free for the next one.
        """
        _check_calibrate(trials_per_class, timeout_s, poll_s, on_progress)
        fit = _fit_body(train_modality, activate)
        deadline = time.monotonic() + timeout_s
        info = self.create_calibration(
            participant, streams, markers=markers, rest=rest, model=model, record=record
        )
        cancelled = None
        try:
            while True:
                if on_progress is not None:
                    on_progress(info)
                if _collected(info, trials_per_class):
                    try:
                        return self.fit_calibration(info.id, **fit)
                    except M2SError as err:
                        if err.status != 422:  # 422: some modality still short of trials; keep collecting
                            raise
                        logger.info("calibration %s: not ready to fit yet (%s)", info.id, err.detail)
                left = deadline - time.monotonic()
                if left <= 0:
                    cancelled = self._abandon(info.id)
                    raise _timeout_error(info, trials_per_class, timeout_s, cancelled)
                time.sleep(min(poll_s, left))
                info = self.calibration(info.id)
        except BaseException:
            if cancelled is None:
                self._abandon(info.id)
            raise

    def _abandon(self, calibration_id: str) -> bool:
        """Cancel the calibration if it is still collecting; True when it no longer collects."""
        try:
            if self.calibration(calibration_id).state == "collecting":
                self.cancel_calibration(calibration_id)
            return True
        except M2SError as err:
            logger.warning("calibration %s could not be cancelled: %s", calibration_id, err)
            return False

    # -- session recordings ------------------------------------------------------------------------

    def start_recording(
        self,
        streams: Sequence[str],
        markers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> RecordingInfo:
        """Start recording attached streams (and a marker stream) to one XDF file (``POST /recordings``).

        Parameters
        ----------
        streams : list of str
            Ids of attached streams (:meth:`streams`); each is written as received (outlet timestamps,
            clock offsets, the outlet's channel description). A stream that is not connected yet is
            recorded from when it connects.
        markers : mapping, optional
            An LSL marker stream to record with them, by ``type`` / ``name`` / ``source_id``, e.g.
            ``{"type": "Markers"}``.
        name : str, optional
            The file name without ``.xdf`` (letters, digits, ``_``, ``.``, ``-``; at most 64; the service
            checks it: 422); default ``session-<UTC time>-<id>``.

        Returns
        -------
        RecordingInfo
            State ``recording``; its ``id`` names it in :meth:`recording` and :meth:`stop_recording`.
            An unknown stream is a 404; a stream already recorded, a taken name or a folder the service
            cannot write a 409.
        """
        body = _recording_body(streams, markers, name)
        return RecordingInfo.model_validate(self._call("POST", "/recordings", body).json())

    def recording(self, recording_id: str) -> RecordingInfo:
        """A recording and what it holds so far: state, samples per stream, markers, bytes, error."""
        return RecordingInfo.model_validate(self._call("GET", f"/recordings/{_segment(recording_id)}").json())

    def recordings(self) -> Recordings:
        """This run's recordings (oldest first) and the other XDF files of the folder (``GET /recordings``)."""
        return Recordings.model_validate(self._call("GET", "/recordings").json())

    def stop_recording(self, recording_id: str) -> RecordingInfo:
        """Close a recording (``DELETE``): what is queued and the stream footers are written, the file
        stays. Stopping an ended recording returns it as it is."""
        return RecordingInfo.model_validate(
            self._call("DELETE", f"/recordings/{_segment(recording_id)}").json()
        )

    def ready(self) -> Readiness:
        """Readiness of the service; ``ready`` is False (no error) while it starts or stops."""
        return Readiness.model_validate(self._call("GET", "/v2/health/ready", ok_statuses=(503,)).json())

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty id, got {value!r}.")
    return quote(value, safe="")


def _model_path(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be 'name' or 'name:version', got {name!r}.")
    base, sep, version = name.partition(":")
    if sep:
        if not version.isdigit():
            raise ValueError(f"model version must be an integer, as in 'name:1', got {name!r}.")
        return f"/v2/models/{_segment(base)}/versions/{version}"
    return f"/v2/models/{_segment(base)}"


# -- async client ------------------------------------------------------------------------------------


class AsyncClient:
    """Asynchronous client: the calls of :class:`Client` as coroutines, plus :meth:`stream`.

    Parameters are those of :class:`Client`.

    Examples
    --------
    >>> async with AsyncClient("http://127.0.0.1:8000") as m2s:  # doctest: +SKIP
    ...     async for state in m2s.stream():
    ...         print(state.stream_id, state.label)
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = _check_timeout(timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(token), timeout=self.timeout)

    async def _call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        ok_statuses=(),
        timeout=httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body, timeout=timeout)
        except httpx.TransportError as err:
            raise _unreachable(self.base_url, err) from err
        if response.status_code not in ok_statuses:
            _raise_for_status(response)
        return response

    async def predict(
        self,
        modality: str,
        *,
        features: Any = None,
        signal: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> EmotionState:
        """See :meth:`Client.predict`."""
        body = _predict_body(modality, features, signal, model)
        return EmotionState.model_validate((await self._call("POST", "/predict", body)).json())

    async def models(self) -> list[ModelSummary]:
        """See :meth:`Client.models`."""
        return [
            ModelSummary.model_validate(m) for m in (await self._call("GET", "/v2/models")).json()["data"]
        ]

    async def load_model(self, name: str) -> ModelLoad:
        """See :meth:`Client.load_model`."""
        path = f"/v2/repository/models/{_segment(name)}/load"
        return ModelLoad.model_validate((await self._call("POST", path, timeout=_LOAD_TIMEOUT_S)).json())

    async def model(self, name: str) -> ModelMetadata:
        """See :meth:`Client.model`."""
        return ModelMetadata.model_validate((await self._call("GET", _model_path(name))).json())

    async def streams(self) -> list[StreamInfo]:
        """See :meth:`Client.streams`."""
        return [StreamInfo.model_validate(s) for s in (await self._call("GET", "/streams")).json()["data"]]

    async def attach(
        self,
        modality: str,
        *,
        type: str | None = None,  # noqa: A002 - the LSL field's name
        name: str | None = None,
        source_id: str | None = None,
        model: str | None = None,
    ) -> StreamInfo:
        """See :meth:`Client.attach`."""
        body = _attach_body(modality, type, name, source_id, model)
        return StreamInfo.model_validate((await self._call("POST", "/streams", body)).json())

    async def detach(self, stream_id: str) -> None:
        """See :meth:`Client.detach`."""
        await self._call("DELETE", f"/streams/{_segment(stream_id)}")

    async def create_calibration(
        self,
        participant: str,
        streams: Sequence[str],
        *,
        markers: Mapping[str, str] | None = None,
        rest: bool = False,
        model: str | None = None,
        record: bool = False,
    ) -> CalibrationInfo:
        """See :meth:`Client.create_calibration`."""
        body = _calibration_body(participant, streams, markers, rest, model, record)
        return CalibrationInfo.model_validate((await self._call("POST", "/calibrations", body)).json())

    async def calibration(self, calibration_id: str) -> CalibrationInfo:
        """See :meth:`Client.calibration`."""
        response = await self._call("GET", f"/calibrations/{_segment(calibration_id)}")
        return CalibrationInfo.model_validate(response.json())

    async def calibrations(self) -> list[CalibrationInfo]:
        """See :meth:`Client.calibrations`."""
        data = (await self._call("GET", "/calibrations")).json()["data"]
        return [CalibrationInfo.model_validate(c) for c in data]

    async def label(self, calibration_id: str, label: str | None) -> CalibrationInfo:
        """See :meth:`Client.label`."""
        body = _label_body(label)
        response = await self._call("POST", f"/calibrations/{_segment(calibration_id)}/label", body)
        return CalibrationInfo.model_validate(response.json())

    async def fit_calibration(
        self,
        calibration_id: str,
        *,
        train_modality: str | None = None,
        activate: bool = False,
        timeout: float = FIT_TIMEOUT_S,
    ) -> CalibrationResult:
        """See :meth:`Client.fit_calibration`."""
        body = _fit_body(train_modality, activate)
        response = await self._call(
            "POST",
            f"/calibrations/{_segment(calibration_id)}/fit",
            body,
            timeout=_check_timeout(timeout),
        )
        return CalibrationResult.model_validate(response.json())

    async def cancel_calibration(self, calibration_id: str) -> CalibrationInfo:
        """See :meth:`Client.cancel_calibration`."""
        response = await self._call("DELETE", f"/calibrations/{_segment(calibration_id)}")
        return CalibrationInfo.model_validate(response.json())

    async def calibrate(
        self,
        participant: str,
        streams: Sequence[str],
        *,
        markers: Mapping[str, str] | None = None,
        rest: bool = False,
        model: str | None = None,
        record: bool = False,
        trials_per_class: int = MIN_TRIALS_PER_CLASS,
        train_modality: str | None = None,
        activate: bool = True,
        timeout_s: float = 1800.0,
        poll_s: float = 1.0,
        on_progress: Callable[[CalibrationInfo], Any] | None = None,
    ) -> CalibrationResult:
        """See :meth:`Client.calibrate`; ``on_progress`` may also be a coroutine function."""
        _check_calibrate(trials_per_class, timeout_s, poll_s, on_progress)
        fit = _fit_body(train_modality, activate)
        deadline = time.monotonic() + timeout_s
        info = await self.create_calibration(
            participant, streams, markers=markers, rest=rest, model=model, record=record
        )
        cancelled = None
        try:
            while True:
                if on_progress is not None:
                    outcome = on_progress(info)
                    if inspect.isawaitable(outcome):
                        await outcome
                if _collected(info, trials_per_class):
                    try:
                        return await self.fit_calibration(info.id, **fit)
                    except M2SError as err:
                        if err.status != 422:  # 422: some modality still short of trials; keep collecting
                            raise
                        logger.info("calibration %s: not ready to fit yet (%s)", info.id, err.detail)
                left = deadline - time.monotonic()
                if left <= 0:
                    cancelled = await self._abandon(info.id)
                    raise _timeout_error(info, trials_per_class, timeout_s, cancelled)
                await asyncio.sleep(min(poll_s, left))
                info = await self.calibration(info.id)
        except BaseException:
            if cancelled is None:
                await asyncio.shield(self._abandon(info.id))
            raise

    async def _abandon(self, calibration_id: str) -> bool:
        """See :meth:`Client._abandon`."""
        try:
            if (await self.calibration(calibration_id)).state == "collecting":
                await self.cancel_calibration(calibration_id)
            return True
        except M2SError as err:
            logger.warning("calibration %s could not be cancelled: %s", calibration_id, err)
            return False

    async def start_recording(
        self,
        streams: Sequence[str],
        markers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> RecordingInfo:
        """See :meth:`Client.start_recording`."""
        body = _recording_body(streams, markers, name)
        return RecordingInfo.model_validate((await self._call("POST", "/recordings", body)).json())

    async def recording(self, recording_id: str) -> RecordingInfo:
        """See :meth:`Client.recording`."""
        response = await self._call("GET", f"/recordings/{_segment(recording_id)}")
        return RecordingInfo.model_validate(response.json())

    async def recordings(self) -> Recordings:
        """See :meth:`Client.recordings`."""
        return Recordings.model_validate((await self._call("GET", "/recordings")).json())

    async def stop_recording(self, recording_id: str) -> RecordingInfo:
        """See :meth:`Client.stop_recording`."""
        response = await self._call("DELETE", f"/recordings/{_segment(recording_id)}")
        return RecordingInfo.model_validate(response.json())

    async def ready(self) -> Readiness:
        """See :meth:`Client.ready`."""
        response = await self._call("GET", "/v2/health/ready", ok_statuses=(503,))
        return Readiness.model_validate(response.json())

    def stream(
        self,
        stream_id: str | None = None,
        *,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        max_attempts: int | None = None,
    ) -> StateStream:
        """Live EmotionStates over the WebSocket ``/ws``: of every attached stream, or of ``stream_id``.

        Parameters
        ----------
        stream_id : str, optional
            Only this attached stream's states (the service closes with 4404 if it is unknown).
        initial_backoff_s, max_backoff_s : float
            Reconnection delays: the first wait, doubled after each failed attempt up to the cap, each
            multiplied by a random factor in [0.5, 1) (jitter, so that many clients do not reconnect in
            step).
        max_attempts : int, optional
            Give up (:class:`M2SError`) after this many failed connection attempts in a row; default: never.

        Returns
        -------
        StateStream
            An async iterator of :class:`EmotionState` (also an async context manager that closes it).
        """
        return StateStream(
            _ws_url(self.base_url, stream_id),
            self.token,
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
            max_attempts=max_attempts,
            open_timeout=self.timeout,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class StateStream:
    """Async iterator of live :class:`EmotionState` from ``/ws``, reconnecting when the connection drops.

    Attributes
    ----------
    dropped : int
        Messages the service dropped for this client because it read too slowly (sum of its
        ``{"type": "dropped"}`` notices).
    n_reconnects : int
        Connections re-established after a drop.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        initial_backoff_s: float,
        max_backoff_s: float,
        max_attempts: int | None,
        open_timeout: float,
    ):
        if not initial_backoff_s > 0 or not max_backoff_s >= initial_backoff_s:
            raise ValueError(
                f"need 0 < initial_backoff_s <= max_backoff_s, got {initial_backoff_s!r} and {max_backoff_s!r}."
            )
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {max_attempts!r}.")
        self.url = url
        self._token = token
        self._initial = float(initial_backoff_s)
        self._max = float(max_backoff_s)
        self._max_attempts = max_attempts
        self._open_timeout = open_timeout
        self._ws = None
        self._closed = False
        self._connected_once = False
        self._silent = False
        self._delay = self._initial  # next backoff; reset once a connection delivers a message
        self.dropped = 0
        self.n_reconnects = 0

    async def _connect(self) -> None:
        # Imported lazily: only streaming needs websockets.
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        attempt = 0
        while True:
            attempt += 1
            try:
                self._ws = await connect(
                    self.url, additional_headers=_headers(self._token), open_timeout=self._open_timeout
                )
            except (OSError, TimeoutError, InvalidHandshake) as err:  # refused, HTTP error, timed out
                if self._max_attempts is not None and attempt >= self._max_attempts:
                    raise M2SError(
                        None, f"cannot connect to {self.url} after {attempt} attempt(s): {err}"
                    ) from err
                logger.info("WebSocket %s unavailable (%s)", self.url, err)
                await self._back_off()
                continue
            if self._connected_once:
                self.n_reconnects += 1
                logger.info("WebSocket %s reconnected", self.url)
            self._connected_once = True
            self._silent = True  # until this connection delivers a message
            return

    async def _back_off(self) -> None:
        wait = self._delay * random.uniform(0.5, 1.0)  # jitter: clients of a restarted service spread out
        logger.debug("WebSocket %s: next attempt in %.2f s", self.url, wait)
        await asyncio.sleep(wait)
        self._delay = min(self._delay * 2, self._max)

    def __aiter__(self) -> StateStream:
        return self

    async def __anext__(self) -> EmotionState:
        from websockets.exceptions import ConnectionClosed

        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._ws is None:
                await self._connect()
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as err:
                self._ws = None
                code = err.rcvd.code if err.rcvd is not None else None
                if code in _FATAL_CLOSE_CODES:
                    self._closed = True
                    raise M2SError(code, err.rcvd.reason or _FATAL_CLOSE_CODES[code]) from None
                if self._closed:
                    raise StopAsyncIteration from None
                logger.info("WebSocket %s closed (%s); reconnecting", self.url, code)
                if self._silent or code == 1013:
                    # Closed again before any message (or 'try again later'): wait, so as not to spin.
                    await self._back_off()
                continue
            self._delay, self._silent = self._initial, False
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "state":
                return EmotionState.model_validate(message["state"])
            if kind == "dropped":
                self.dropped += int(message.get("count", 0))
                logger.warning("the service dropped %s message(s) for this slow client", message.get("count"))

    async def aclose(self) -> None:
        """Close the connection; iteration stops."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def __aenter__(self) -> StateStream:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


__all__ = [
    "FIT_TIMEOUT_S",
    "MIN_TRIALS_PER_CLASS",
    "AsyncClient",
    "CalibrationInfo",
    "CalibrationResult",
    "CalibrationValidation",
    "Client",
    "EmotionState",
    "M2SError",
    "MarkerEvent",
    "ModalityValidation",
    "ModelLoad",
    "ModelMetadata",
    "ModelRef",
    "ModelSummary",
    "Readiness",
    "RecordedMarkers",
    "RecordedStream",
    "RecordingInfo",
    "Recordings",
    "StateStream",
    "StoredRecording",
    "StreamInfo",
    "Timing",
]
