"""Python SDK of the M2S-live service: :class:`Client` (sync, httpx), :class:`AsyncClient` (asyncio).

The result models mirror the service's JSON (``service/schemas.py``) but are declared here, so that a
client installs neither FastAPI nor onnxruntime. Unknown fields are kept (``extra="allow"``): a newer
service does not break an older SDK.

Every error answer of the service (``{"detail": "..."}``) raises :class:`M2SError` with the HTTP status
and the service's sentence; a refused WebSocket raises it with the close code (4401 wrong token, 4404
unknown stream). An unreachable service raises :class:`M2SError` with ``status=None``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
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
    data_age_s: float | None = None
    effective_srate: float | None = None
    n_reconnects: int = 0
    n_states: int = 0
    last_error: str | None = None
    channels: list[str] | None = None
    sfreq: float | None = None


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

    def _call(self, method: str, path: str, json_body: Any = None, *, ok_statuses=()) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json_body)
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

    async def _call(self, method: str, path: str, json_body: Any = None, *, ok_statuses=()) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body)
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
    "AsyncClient",
    "Client",
    "EmotionState",
    "M2SError",
    "ModelMetadata",
    "ModelRef",
    "ModelSummary",
    "Readiness",
    "StateStream",
    "StreamInfo",
    "Timing",
]
