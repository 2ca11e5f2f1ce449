"""Request and response bodies of the HTTP/WebSocket API (pydantic), split by direction as in the FastAPI template.

``*Create`` are inputs, ``*Public`` outputs, ``*sPublic`` list wrappers (``data`` + ``count``). The
:class:`EmotionState` is shared by ``POST /predict`` and the WebSocket stream. Field constraints live on the
fields so that they appear in the OpenAPI schema that ``clients/`` is generated against.

No torch, no onnxruntime here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.config import AttachRequest

_MODALITY = Field(
    min_length=1,
    max_length=64,
    description="Modality of the input, e.g. 'eeg', 'eye', 'ecg'.",
    examples=["eeg"],
)


class ModelRef(BaseModel):
    """A model of the repository: name and integer version."""

    name: str
    version: int = Field(ge=1)


class Timing(BaseModel):
    """Where the time of one prediction went, in milliseconds."""

    features_ms: float | None = Field(
        None, description="Feature extraction and windowing (raw-signal requests and live streams only)."
    )
    inference_ms: float = Field(description="Waiting for and running the ONNX Runtime session.")
    total_ms: float = Field(description="From the validated input to the emitted state.")


class EmotionState(BaseModel):
    """One recognised emotional state: the answer of ``POST /predict`` and the WebSocket message payload."""

    label: str = Field(description="Most probable class.")
    probabilities: dict[str, float] = Field(description="Probability per class name; they sum to 1.")
    modality: str
    model: ModelRef
    stream_id: str | None = Field(
        None, description="Attached stream that produced it; None for REST /predict."
    )
    lsl_time: float | None = Field(
        None,
        description="Timestamp (s) of the window end, the last sample of its last feature vector: the LSL clock "
        "for streams, the request's own timestamps for /predict (None when it sent none).",
    )
    wall_time: float = Field(description="time.time() when emitted (s since the Unix epoch).")
    data_age_s: float | None = Field(None, description="pylsl.local_clock() - lsl_time at emission (s).")
    stale: bool = Field(False, description="The stream had no new sample for longer than stale_after_s.")
    latency_ms: float | None = Field(
        None, description="From the arrival of the window's last sample (chunk receipt) to emission."
    )
    timing: Timing | None = None


class SignalIn(BaseModel):
    """A raw multichannel signal, channels × samples, in the model's unit unless ``unit`` says otherwise."""

    model_config = ConfigDict(extra="forbid")

    sfreq: float = Field(gt=0, description="Sampling rate in Hz; must equal the model's.", examples=[200.0])
    channels: list[str] = Field(
        min_length=1, description="Channel label of each row of data (matched to the model's, case ignored)."
    )
    data: list[list[float]] = Field(
        min_length=1, description="Samples, shape (n_channels, n_samples), time last."
    )
    timestamps: list[float] | None = Field(
        None,
        description="Sample times in s, shape (n_samples,), increasing; gaps split the signal as live. "
        "Default: n / sfreq.",
    )
    unit: str | None = Field(
        None, description="Unit of data, e.g. 'uV', 'mV', 'V' (voltages are converted); default: the model's."
    )


class PredictRequest(BaseModel):
    """``POST /predict``: one window of features, or a raw signal whose last complete window is predicted."""

    model_config = ConfigDict(extra="forbid")

    modality: str = _MODALITY
    model: str | None = Field(
        None,
        description="'name' (latest version) or 'name:version'; default: the service's default model.",
        examples=["m2s-synthetic-demo:1"],
    )
    features: list[list[float]] | None = Field(
        None,
        description="Already-extracted, NOT normalised features, shape (T, D) = (seq_len, dim) of the model, "
        "oldest vector first, spaced spacing_s apart as in training.",
    )
    signal: SignalIn | None = None

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        if (self.features is None) == (self.signal is None):
            raise ValueError("give exactly one of 'features' (T x D) or 'signal' (raw channels x samples)")
        return self


class StreamCreate(AttachRequest):
    """``POST /streams``: attach an LSL stream (same fields and checks as ``--attach`` / ``M2S_ATTACH``)."""


class StreamUpdate(BaseModel):
    """``PATCH /streams/{id}``: serve an attached stream with another model (hot swap, no reconnect)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        description="'name' (latest version) or 'name:version' of a model with the stream's modality.",
        examples=["m2s-synthetic-demo:1"],
    )


class StreamPublic(BaseModel):
    """An attached stream and its health."""

    id: str
    modality: str
    model: ModelRef
    selector: dict[str, Any] = Field(description="LSL selector: type / name / source_id that are set.")
    connected: bool
    stale: bool
    data_age_s: float | None = None
    effective_srate: float | None = Field(None, description="Measured sampling rate in Hz.")
    n_reconnects: int = 0
    n_gaps: int = Field(
        0,
        description="Gaps (timestamp gaps by the model's gap rule, NaN bursts) since the last (re)connection.",
    )
    n_incomplete_segments: int = Field(
        0,
        description="Gap-free stretches since the last (re)connection that ended before a window completed: "
        "many means no states (check the stream's timestamp jitter against the model spec's jitter_s).",
    )
    n_states: int = Field(0, description="EmotionStates emitted so far.")
    last_error: str | None = None
    channels: list[str] | None = Field(None, description="The stream's channel labels, once connected.")
    sfreq: float | None = Field(
        None, description="Nominal sampling rate of the stream in Hz, once connected."
    )


class StreamsPublic(BaseModel):
    """Attached streams."""

    data: list[StreamPublic]
    count: int


class HealthLive(BaseModel):
    """``GET /v2/health/live``: the process serves HTTP."""

    live: bool


class HealthReady(BaseModel):
    """``GET /v2/health/ready``: the default model is loaded and warmed up (HTTP 503 while not)."""

    ready: bool
    models: list[str] = Field(description="Loaded models, 'name:version'.")
    providers: dict[str, dict[str, str]] = Field(
        description="Execution provider actually in use, per loaded model and modality."
    )


class ModelSummary(BaseModel):
    """One model name of the repository."""

    name: str
    versions: list[int] = Field(description="Versions in the repository, ascending.")
    loaded: list[int] = Field(description="Versions loaded in the engine.")
    modalities: list[str] = Field(description="Modalities of the latest version.")


class ModelsPublic(BaseModel):
    """``GET /v2/models``: the model repository."""

    data: list[ModelSummary]
    count: int


class TensorMetadata(BaseModel):
    """A graph input or output, KServe-v2 style (``-1`` = any size)."""

    name: str
    datatype: str
    shape: list[int]


class FeatureSpecSummary(BaseModel):
    """What a raw signal must look like for a modality, and how features are computed from it."""

    kind: str
    sfreq: float = Field(description="Hz.")
    channels: list[str]
    unit: str
    window_s: float
    hop_s: float
    n_features: int
    min_signal_s: float = Field(
        description="Shortest raw signal (s) that yields one model window: window_s + (T - 1) * spacing_s."
    )


class ModalityMetadata(BaseModel):
    """One modality's graph of a model."""

    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    seq_len: int = Field(description="T, feature vectors per window.")
    dim: int = Field(description="D, values per feature vector.")
    spacing_s: float = Field(description="Seconds between the T vectors, as in training.")
    reproducible_online: bool
    feature_spec: FeatureSpecSummary
    provider: str | None = Field(
        description="Execution provider in use; None when this version is not loaded."
    )


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}``: KServe-v2-style metadata of one model version."""

    name: str
    version: int
    versions: list[int]
    platform: str = "onnxruntime_onnx"
    ready: bool = Field(description="This version is loaded and warmed up.")
    class_names: list[str]
    modalities: dict[str, ModalityMetadata]
    training: dict[str, Any] = Field(description="Provenance: dataset, protocol, split, recipe.")
    metrics: dict[str, Any] = Field(description="Evaluation reported at export, e.g. the A->B matrix.")


class ErrorPublic(BaseModel):
    """Every 4xx/5xx answer: one sentence saying what was wrong and what to do."""

    detail: str


__all__ = [
    "EmotionState",
    "ErrorPublic",
    "FeatureSpecSummary",
    "HealthLive",
    "HealthReady",
    "ModalityMetadata",
    "ModelMetadata",
    "ModelRef",
    "ModelSummary",
    "ModelsPublic",
    "PredictRequest",
    "SignalIn",
    "StreamCreate",
    "StreamPublic",
    "StreamsPublic",
    "Timing",
    "TensorMetadata",
]
