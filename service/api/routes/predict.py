"""``POST /predict``: one EmotionState from a window of features or from a raw signal.

Both inputs go through exactly what a live stream goes through: a raw signal through the bundle's
:class:`~signals.pipeline.FeaturePipeline` (the streaming extractor, ``T`` vectors at the training
spacing, manifest normalisation), features through the same pipeline's normalisation.

The route is ``async`` and hands all blocking work (model resolution, feature extraction, the
engine's wait) to the threadpool in ONE call, never running it on the event loop. (A plain ``def``
route would cost a second hand-off: FastAPI validates a sync route's return value in the threadpool
too.) Its JSON body is parsed by pydantic-core (:mod:`service.api.json_route`); both measured with
``benchmarks/predict_load.py``.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from models.bundle import ModalityGraph
from service.api.deps import (
    Authenticated,
    EngineDep,
    JsonBody,
    MetricsDep,
    SettingsDep,
    error_responses,
    resolve_model,
)
from service.api.json_route import FastJsonRoute
from service.engine import InferenceEngine, LoadedModel
from service.metrics import ServiceMetrics
from service.schemas import EmotionState, ModelRef, PredictRequest, SignalIn, Timing
from signals.channels import map_channels
from signals.units import channel_factors

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/predict", tags=["predict"], dependencies=[Authenticated], route_class=FastJsonRoute
)

_422 = status.HTTP_422_UNPROCESSABLE_CONTENT


def _invalid(detail: str) -> HTTPException:
    return HTTPException(_422, detail)


@router.post(
    "",
    response_model=EmotionState,
    dependencies=[JsonBody],
    responses=error_responses(400, 401, 404, 413, 415, 422, 503),
    summary="Recognise the emotional state of one window (features) or of a raw signal's last window",
)
async def predict(
    body: PredictRequest, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep
) -> EmotionState:
    """Predict from ``features`` (T × D, not normalised) or ``signal`` (channels × samples, raw).

    With a signal, features are computed by the bundle's feature spec (channels matched by name,
    ``sfreq`` must equal the model's) and the LAST complete window of ``T`` vectors, spaced as in
    training, is predicted; ``lsl_time`` is that window's end on the request's ``timestamps``.
    """
    return await run_in_threadpool(_predict, body, engine, body.model or settings.default_model, metrics)


def _predict(
    body: PredictRequest, engine: InferenceEngine, ref: str, metrics: ServiceMetrics
) -> EmotionState:
    """The blocking part of :func:`predict`, run in the threadpool."""
    start = time.perf_counter()
    loaded = resolve_model(engine, ref)
    manifest = loaded.bundle.manifest
    graph = modality_graph(loaded, body.modality)
    label = f"the '{body.modality}' model of {loaded.ref}"
    features_ms = lsl_time = None
    if body.features is not None:
        window = _features_window(body.features, graph, label)
    else:
        window, lsl_time = _signal_window(body.signal, graph, label)
        features_ms = (time.perf_counter() - start) * 1e3
    infer_start = time.perf_counter()
    probs = run_engine(engine, loaded, body.modality, window[np.newaxis], metrics)[0]
    end = time.perf_counter()
    classes = manifest.class_names
    return EmotionState(
        label=classes[int(np.argmax(probs))],
        probabilities={c: float(p) for c, p in zip(classes, probs, strict=True)},
        modality=body.modality,
        model=ModelRef(name=manifest.name, version=manifest.version),
        lsl_time=lsl_time,
        wall_time=time.time(),
        timing=Timing(
            features_ms=features_ms, inference_ms=(end - infer_start) * 1e3, total_ms=(end - start) * 1e3
        ),
    )


def _features_window(features: list[list[float]], graph: ModalityGraph, label: str) -> np.ndarray:
    """Validate a (T, D) feature window and normalise it with the manifest statistics -> float32 (T, D)."""
    t, d = graph.seq_len, graph.dim
    lengths = {len(row) for row in features}
    if len(lengths) > 1:
        raise _invalid(
            f"features rows have different lengths ({min(lengths)} to {max(lengths)} values); "
            f"send a {t} x {d} array."
        )
    shape = (len(features), lengths.pop())
    if shape != (t, d):
        raise _invalid(
            f"features must be {t} x {d} for {label} ({t} feature vectors of {d} values, oldest first), "
            f"got {shape[0]} x {shape[1]}."
        )
    return normalised_windows(np.asarray(features, dtype=np.float64), graph, "features")


def modality_graph(loaded: LoadedModel, modality: str) -> ModalityGraph:
    """The graph of ``modality`` in a loaded bundle; 422 naming the bundle's modalities if it has none.

    Shared by ``/predict`` and ``/v2/models/{name}/infer``.
    """
    graphs = loaded.bundle.manifest.graphs
    graph = graphs.get(modality)
    if graph is None:
        raise _invalid(
            f"Model {loaded.ref} has no '{modality}' modality; its modalities: {', '.join(sorted(graphs))}."
        )
    return graph


def normalised_windows(raw: np.ndarray, graph: ModalityGraph, what: str) -> np.ndarray:
    """Check raw (not normalised) feature values and normalise them with the manifest statistics.

    Parameters
    ----------
    raw : array, shape (..., D)
        Feature vectors as a client sent them (float64, or float32 that is upcast: the same arithmetic
        as for float64 values equal to them).
    graph : ModalityGraph
        The modality's graph (its normalisation).
    what : str
        The plural noun the error messages start with, e.g. ``"features"``.

    Returns
    -------
    array of float32, shape (..., D)
        What the engine takes.

    Raises
    ------
    HTTPException
        422 for NaN or infinite values, or values whose normalisation overflows float32.
    """
    n_bad = int(np.size(raw) - np.count_nonzero(np.isfinite(raw)))
    if n_bad:
        raise _invalid(f"{what} contain {n_bad} NaN or infinite value(s); send finite numbers.")
    with np.errstate(over="ignore"):  # an overflow is reported below, in words
        window = graph.normalisation.apply(raw)
    if not np.isfinite(window).all():
        raise _invalid(f"{what} are too large: normalised values overflow float32; check their scale.")
    return window


def run_engine(
    engine: InferenceEngine, loaded: LoadedModel, modality: str, windows: np.ndarray, metrics: ServiceMetrics
) -> np.ndarray:
    """``engine.predict`` of normalised ``windows`` (n, T, D), counted in the metrics; 503 if shutting down."""
    start = time.perf_counter()
    try:
        probs = engine.predict(loaded.ref, modality, windows)
    except RuntimeError:
        if engine.closed:  # shutting down between the dependency and the run
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "The service is shutting down."
            ) from None
        raise
    metrics.observe_inference(time.perf_counter() - start, len(windows))
    return probs


def _signal_window(signal: SignalIn, graph: ModalityGraph, label: str) -> tuple[np.ndarray, float | None]:
    """Features of a raw signal through the live pipeline; the last complete window and its end time."""
    spec = graph.feature_spec
    if not math.isclose(signal.sfreq, spec.sfreq, rel_tol=1e-9):
        raise _invalid(
            f"signal.sfreq is {signal.sfreq:g} Hz but {label} needs {spec.sfreq:g} Hz; resample the signal."
        )
    n_rows, n_channels = len(signal.data), len(signal.channels)
    if n_rows != n_channels:
        raise _invalid(
            f"signal.data has {n_rows} row(s) but signal.channels names {n_channels}; "
            "send one row per channel (channels x samples)."
        )
    lengths = {len(row) for row in signal.data}
    if len(lengths) > 1:
        raise _invalid(
            f"signal.data rows have different lengths ({min(lengths)} to {max(lengths)} samples); "
            "every channel needs the same number of samples."
        )
    n_samples = lengths.pop()
    try:
        rows = map_channels(signal.channels, spec.channels)
        # The live rule, per channel (signals.units); no unit means the model's units.
        factors = None if signal.unit is None else channel_factors([signal.unit] * len(rows), spec)
    except ValueError as err:
        raise _invalid(f"signal: {err}") from None
    timestamps = None  # the nominal rate, one segment (the pipeline's default)
    if signal.timestamps is not None:
        timestamps = np.asarray(signal.timestamps, dtype=np.float64)
        if timestamps.shape != (n_samples,):
            raise _invalid(
                f"signal.timestamps has {timestamps.size} value(s) but signal.data has {n_samples} samples "
                "per channel; send one timestamp per sample."
            )
        if not np.isfinite(timestamps).all() or np.any(np.diff(timestamps) <= 0):
            raise _invalid("signal.timestamps must be finite and strictly increasing (seconds).")
    data = np.asarray(signal.data, dtype=np.float64)[rows]
    if factors is not None:
        data = data * factors[:, np.newaxis]
    # NaN/inf samples are gaps for every spec but the eye spec (NaN gaze = blink), read from the spec itself.
    if spec._nonfinite == "gap" and not np.isfinite(data).all():
        n_bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise _invalid(
            f"signal.data contains {n_bad} NaN or infinite sample(s) in the model's channels; "
            "send finite samples (mark gaps with timestamps instead)."
        )
    try:
        pipeline = graph.feature_pipeline(live=True)
    except ValueError as err:
        raise _invalid(str(err)) from None
    n_needed, needed_s = pipeline.samples_needed, pipeline.seconds_needed
    if n_samples < n_needed:
        raise _invalid(
            f"signal is too short: {n_samples} samples ({n_samples / spec.sfreq:g} s) but {label} needs at "
            f"least {n_needed} samples ({needed_s:g} s at {spec.sfreq:g} Hz): {graph.seq_len} feature vectors "
            f"{graph.spacing_s:g} s apart, each from a {spec.window_s:g} s window."
        )
    try:
        windows = pipeline.windows(data, timestamps)
    except ValueError as err:
        raise _invalid(f"signal: {err}") from None
    if not len(windows):
        raise _invalid(
            f"signal has no gap-free stretch of {needed_s:g} s with finite features for {label}; "
            "check the timestamps for gaps and the channels for flat or missing data."
        )
    return windows.x[-1], (float(windows.timestamps[-1]) if signal.timestamps is not None else None)
