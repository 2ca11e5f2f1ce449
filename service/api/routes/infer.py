"""Open Inference Protocol (KServe v2) inference: ``POST /v2/models/{name}[/versions/{version}]/infer``.

The same models, engine and checks as ``POST /predict`` (:mod:`service.api.routes.predict`), in the tensor
form standard clients (tritonclient, KServe tooling) send: one input ``window``, FP32, shape
``[batch, T, D]`` (``T``, ``D`` of the modality's graph, as ``GET /v2/models/{name}`` lists them), raw
feature values as ``/predict``'s ``features`` takes them (NOT normalised: the manifest statistics are
applied here); one output ``probabilities``, FP32, ``[batch, n_classes]`` in the model's ``class_names``
order. The modality is the request parameter ``modality``; without it, the bundle's first modality (the
first graph of its manifest: ``eeg`` for the demo, whose manifest lists ``eeg``, ``eye``, ``ecg``). The
answer's ``parameters`` say which modality ran.

The tensor may come as JSON (``data``: flat row-major or nested ``[batch][T][D]`` lists) or as binary
(Triton's binary tensor data extension, which tritonclient uses by default: ``binary_data_size`` in the
input's parameters, the JSON's length in the ``Inference-Header-Content-Length`` header, the little-endian
float32 bytes after the JSON). Outputs come back as JSON unless the request asks for binary
(``binary_data`` on an output, or ``binary_data_output``), then as float32 bytes after the JSON with the
same header, ``Content-Type: application/octet-stream``.

Errors: every error this route produces (and its dependencies: 503 not ready) is
:class:`~service.schemas.InferenceErrorPublic`, ``{"error": ..., "detail": ...}``: ``error`` is the
protocol's key (tritonclient raises it), ``detail`` the key of every other error of the service. The
middleware's answers before the route (401, 408, 413, 429, and 400 for an invalid ``Content-Length``)
are ``{"detail": ...}`` as everywhere (:class:`~service.schemas.ErrorPublic`).

Speed (``benchmarks/infer.py``): the body is read as bytes and parsed once, the envelope by pydantic-core
from the JSON text, the numbers by numpy (``np.asarray`` of the parsed list, after one strict type
check, or ``np.frombuffer`` of the binary tensor): no per-element pydantic model. All blocking work
(parsing, model resolution, normalisation, the engine's wait, encoding) runs in the threadpool in one
hand-off, as ``/predict`` does.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, StrictFloat, TypeAdapter, ValidationError

from models.bundle import BundleError
from models.repository import parse_model_ref
from service.api.deps import (
    Authenticated,
    EngineDep,
    MetricsDep,
    ModelLoadError,
    SettingsDep,
    error_responses,
    model_not_found,
    resolve_model,
)
from service.api.errors import validation_detail
from service.api.routes.predict import modality_graph, normalised_windows, run_engine
from service.engine import INPUT_NAME, OUTPUT_NAME, InferenceEngine
from service.metrics import ServiceMetrics
from service.schemas import InferenceErrorPublic, InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPE = "FP32"
_422 = status.HTTP_422_UNPROCESSABLE_CONTENT
_NUMBERS = TypeAdapter(list[StrictFloat])  # JSON numbers only: a bool or a numeric string is refused


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": message}, status_code=code, headers=headers)


class InferenceRoute(APIRoute):
    """An ``APIRoute`` answering its errors as ``{"error": ..., "detail": ...}`` (the protocol's error shape).

    Catches what the route and its dependencies raise (HTTPException, FastAPI's validation of the path and
    header parameters, a bundle that cannot be loaded); anything else goes to the app's handlers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def inference_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError as exc:
                return _error(*validation_detail(list(exc.errors())))
            except ModelLoadError as exc:
                logger.error("model %s could not be loaded", exc.ref, exc_info=exc.__cause__)
                return _error(
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    f"Model {exc.ref} could not be loaded; the details are in the service log.",
                )

        return inference_handler


router = APIRouter(
    prefix="/v2/models", tags=["inference"], dependencies=[Authenticated], route_class=InferenceRoute
)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place (an operation's request body stands alone)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_OPERATION: dict[str, Any] = {
    "response_model": InferenceResponse,
    "responses": {
        200: {
            "description": "The outputs. As JSON; or, when binary outputs were asked for, the JSON (its length "
            f"in the {HEADER_LENGTH} header) followed by the tensors' bytes.",
            "content": {"application/octet-stream": _BINARY},
        },
        **{code: {"model": InferenceErrorPublic} for code in (404, 422, 503)},
        **error_responses(400, 500),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inline_schema(InferenceRequest)},
                "application/octet-stream": {
                    **_BINARY,
                    "description": f"Binary tensor data extension: the JSON request ({HEADER_LENGTH} bytes) "
                    "followed by the binary tensors.",
                },
            },
        }
    },
}
HeaderLength = Annotated[
    int | None,
    Header(
        alias=HEADER_LENGTH,
        ge=0,
        description="Binary tensor data extension: the length in bytes of the JSON at the start of the body; "
        "the binary tensors follow it.",
    ),
]


@router.post("/{name}/infer", summary="Run the latest version of a model on a batch of windows", **_OPERATION)
async def infer(
    name: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    header_length: HeaderLength = None,
) -> Response:
    """Class probabilities of ``[batch, T, D]`` raw feature windows, as ``/predict`` computes them per window.

    Loads the model first if it is not loaded (as ``/predict`` does).
    """
    body = await request.body()
    return await run_in_threadpool(
        _infer, body, header_length, name, None, engine, settings.batch_max_windows, metrics
    )


@router.post(
    "/{name}/versions/{version}/infer",
    summary="Run one version of a model on a batch of windows",
    **_OPERATION,
)
async def infer_version(
    name: str,
    version: int,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    header_length: HeaderLength = None,
) -> Response:
    """Like ``/v2/models/{name}/infer`` for the given version."""
    body = await request.body()
    return await run_in_threadpool(
        _infer, body, header_length, name, version, engine, settings.batch_max_windows, metrics
    )


def _infer(
    body: bytes,
    header_length: int | None,
    name: str,
    version: int | None,
    engine: InferenceEngine,
    max_batch: int,
    metrics: ServiceMetrics,
) -> Response:
    """The blocking part of :func:`infer`, run in the threadpool."""
    if header_length is None:
        text, binary = body, b""
    elif header_length > len(body):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes; give the length of the "
            "JSON at the start of the body.",
        )
    else:
        text, binary = body[:header_length], body[header_length:]
    try:
        req = InferenceRequest.model_validate_json(text)
    except ValidationError as err:
        raise _request_error(err) from None
    loaded = resolve_model(engine, _model_ref(engine, name, version))
    modality = _modality(loaded.ref, loaded.bundle.manifest.graphs, req.parameters or {})
    graph = modality_graph(loaded, modality)
    raw = _window_tensor(
        req, binary, (graph.seq_len, graph.dim), max_batch, f"the '{modality}' model of {loaded.ref}"
    )
    probs = run_engine(
        engine, loaded, modality, normalised_windows(raw, graph, f"Input '{INPUT_NAME}' values"), metrics
    )
    return _response(req, loaded.bundle.manifest, modality, probs)


def _request_error(err: ValidationError) -> HTTPException:
    """400 for a body that is not JSON, 422 (one sentence naming each field) for one that is not a request."""
    errors = err.errors()
    invalid = next((e for e in errors if e["type"] == "json_invalid"), None)
    if invalid is not None:
        reason = str((invalid.get("ctx") or {}).get("error", "invalid JSON"))
        return HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"Malformed JSON body: {reason}; send one JSON inference request object.",
        )
    return HTTPException(*validation_detail(errors))


def _model_ref(engine: InferenceEngine, name: str, version: int | None) -> str:
    """``name`` or ``name:version``; 404 for a name that is not one of the repository's (e.g. ``a:1``, ``..``)."""
    try:
        valid = parse_model_ref(name) == (name, None)
    except BundleError:
        valid = False
    if not valid:
        raise model_not_found(engine, name, version)
    return name if version is None else f"{name}:{version}"


def _modality(ref: str, graphs: dict, parameters: dict[str, Any]) -> str:
    """The request parameter ``modality``; the bundle's first modality (manifest order) when none is named."""
    modality = parameters.get("modality")
    if modality is None:
        return next(iter(graphs))
    if not isinstance(modality, str):
        raise HTTPException(
            _422,
            f'The parameter "modality" must be a string, one of {", ".join(sorted(graphs))}; got {modality!r}.',
        )
    return modality


def _window_tensor(
    req: InferenceRequest, binary: bytes, window: tuple[int, int], max_batch: int, label: str
) -> np.ndarray:
    """The input ``window`` as float64 (batch, T, D), checked against the protocol and the model."""
    names = [i.name for i in req.inputs]
    t, d = window
    want = f"[batch, {t}, {d}]"
    if names != [INPUT_NAME]:
        raise HTTPException(
            _422,
            f"{label} takes one input, '{INPUT_NAME}' ({DATATYPE}, shape {want}); got "
            f"{', '.join(repr(n) for n in names)}.",
        )
    (tensor,) = req.inputs
    if tensor.datatype != DATATYPE:
        raise HTTPException(
            _422, f"Input '{INPUT_NAME}' must be {DATATYPE}, got {tensor.datatype!r}; send float32 values."
        )
    shape = tensor.shape
    if len(shape) != 3 or tuple(shape[1:]) != window or shape[0] < 1:
        raise HTTPException(
            _422,
            f"Input '{INPUT_NAME}' must have shape {want} (batch >= 1) for {label}, got {shape}.",
        )
    if shape[0] > max_batch:
        raise HTTPException(
            _422,
            f"Input '{INPUT_NAME}' has a batch of {shape[0]} windows; at most {max_batch} per request "
            "(M2S_BATCH_MAX_WINDOWS): split it into several requests.",
        )
    count = math.prod(shape)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        return _binary_tensor(tensor.data, size, binary, shape, count)
    if binary:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"The body has {len(binary)} bytes after the JSON ({HEADER_LENGTH}) but no input has "
            '"binary_data_size"; give each binary input its size in bytes.',
        )
    if tensor.data is None:
        raise HTTPException(
            _422,
            f"Input '{INPUT_NAME}' has no data: send \"data\" (a flat row-major list of {count} numbers, or "
            f'nested {shape} lists), or "binary_data_size" with the tensor after the JSON ({HEADER_LENGTH}).',
        )
    return _json_tensor(tensor.data, shape, count)


def _json_tensor(data: list[Any], shape: list[int], count: int) -> np.ndarray:
    """JSON ``data``, flat or nested as ``shape``, as float64 of ``shape``; numbers only."""
    form = f"a flat row-major list of {count} numbers, or nested {shape} lists of numbers"
    try:
        if data and isinstance(data[0], list):  # nested: numpy checks the lengths, the adapter the numbers
            values = np.asarray(data, dtype=object)
            if values.shape != tuple(shape):
                raise ValueError
            _NUMBERS.validate_python(values.ravel().tolist())
            return values.astype(np.float64)
        if len(data) != count:  # before checking every number: a wrong length is cheap to tell
            raise HTTPException(
                _422,
                f"Input '{INPUT_NAME}' has {len(data)} values but shape {shape} needs {count}; send {form}.",
            )
        _NUMBERS.validate_python(data)
    except (ValueError, ValidationError):
        raise HTTPException(_422, f"Input '{INPUT_NAME}' data must be {form}.") from None
    return np.asarray(data, dtype=np.float64).reshape(shape)


def _binary_tensor(data: Any, size: Any, binary: bytes, shape: list[int], count: int) -> np.ndarray:
    """The binary tensor (little-endian float32) after the JSON, as float64 of ``shape``."""
    need = 4 * count
    if data is not None:
        raise HTTPException(
            _422, f'Input \'{INPUT_NAME}\' has both "data" and "binary_data_size"; send the values one way.'
        )
    if isinstance(size, bool) or not isinstance(size, int) or size != need:
        raise HTTPException(
            _422,
            f"Input '{INPUT_NAME}' binary_data_size is {size!r} but shape {shape} of {DATATYPE} takes {need} bytes.",
        )
    if len(binary) != size:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"The body has {len(binary)} bytes after the JSON ({HEADER_LENGTH}) but binary_data_size is {size}; "
            f"send the JSON's length in {HEADER_LENGTH} and the tensor's bytes after it.",
        )
    return np.frombuffer(binary, dtype="<f4").reshape(shape).astype(np.float64)


def _response(req: InferenceRequest, manifest, modality: str, probs: np.ndarray) -> Response:
    """The protocol's response: ``probabilities`` as JSON, or as float32 bytes after the JSON when asked."""
    request_params = req.parameters or {}
    binary_default = request_params.get("binary_data_output") is True
    requested = req.outputs if req.outputs is not None else []
    unknown = [o.name for o in requested if o.name != OUTPUT_NAME]
    if unknown:
        raise HTTPException(
            _422,
            f"Unknown output(s) {', '.join(repr(n) for n in unknown)}; the model has one output, '{OUTPUT_NAME}'.",
        )
    binary = binary_default
    for output in requested:
        flag = (output.parameters or {}).get("binary_data")
        if flag is not None:
            binary = flag is True
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": list(probs.shape)}
    payload = b""
    if binary:
        payload = np.ascontiguousarray(probs, dtype="<f4").tobytes()
        output["parameters"] = {"binary_data_size": len(payload)}
    else:
        output["data"] = probs.ravel().tolist()
    answer: dict[str, Any] = {"model_name": manifest.name, "model_version": str(manifest.version)}
    if req.id is not None:
        answer["id"] = req.id
    answer["parameters"] = {"modality": modality}
    answer["outputs"] = [output]
    text = json.dumps(answer, separators=(",", ":")).encode()
    if not binary:
        return Response(text, media_type="application/json")
    return Response(
        text + payload, media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(text))}
    )


__all__ = ["HEADER_LENGTH", "InferenceRoute", "infer", "infer_version", "router"]
