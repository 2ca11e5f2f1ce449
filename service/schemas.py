"""Request and response bodies of the HTTP/WebSocket API (pydantic), split by direction as in the FastAPI template.

``*Create`` are inputs, ``*Public`` outputs, ``*sPublic`` list wrappers (``data`` + ``count``). The
:class:`EmotionState` is shared by ``POST /predict`` and the WebSocket stream. Field constraints live on the
fields so that they appear in the OpenAPI schema that ``clients/`` is generated against.

No torch, no onnxruntime here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, WithJsonSchema, field_validator, model_validator

from service.config import AttachRequest, StreamSelector, non_empty_text

#: Participant ids of calibrations (and of the calibrated models' names).
PARTICIPANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RECORDING_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: A JSON number of a request: integers are taken, booleans and numeric strings are refused (lax pydantic would
#: read ``true`` as 1.0 and ``"3"`` as 3.0, hiding a client's bug in a signal).
Number = Annotated[float, Strict()]
#: A JSON boolean of a request: ``0``, ``1``, ``"yes"`` and ``"false"`` are refused (lax pydantic takes them).
Flag = Annotated[bool, Strict()]

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

    sfreq: Number = Field(gt=0, description="Sampling rate in Hz; must equal the model's.", examples=[200.0])
    channels: list[str] = Field(
        min_length=1, description="Channel label of each row of data (matched to the model's, case ignored)."
    )
    data: list[list[Number]] = Field(
        min_length=1, description="Samples, shape (n_channels, n_samples), time last."
    )
    timestamps: list[Number] | None = Field(
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
        description="'name' (latest version) or 'name:version'; leave it out for the service's default model.",
        examples=["m2s-synthetic-demo:1"],
    )
    features: list[Annotated[list[Number], Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        description="Already-extracted, NOT normalised features, shape (T, D) = (seq_len, dim) of the model, "
        "oldest vector first, spaced spacing_s apart as in training.",
    )
    signal: SignalIn | None = None

    @field_validator("model")
    @classmethod
    def _model_given(cls, model: str | None) -> str | None:
        return non_empty_text(model, "model")  # "" is an error here as on POST /streams, not the default

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
    follows_latest: bool = Field(
        False,
        description="The stream moves to each newer version of its model as the service loads it (attached or "
        "switched with 'name' or 'name:latest'); false: pinned to this version ('name:3').",
    )
    selector: dict[str, Any] = Field(description="LSL selector: type / name / source_id that are set.")
    health: Literal["connecting", "ok", "stale", "unusable", "failing"] = Field(
        description="'connecting': no source yet (last_error says why); 'ok': connected, data flowing; "
        "'stale': connected, no data for stale_after_s; 'unusable': connected but the stream cannot feed the "
        "model (sampling rate, channels or units: last_error says which), so it produces NO states; "
        "'failing': processing its latest chunk failed and no state came since (last_error says why)."
    )
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


class WorkerPublic(BaseModel):
    """One worker process holding attached streams (``M2S_WORKERS >= 2``)."""

    index: int
    pid: int | None = Field(description="Its process id.")
    alive: bool = Field(description="It serves its streams now (false while it is being restarted).")
    streams: list[str] = Field(description="Ids of the streams it holds.")
    restarts: int = Field(description="Times it was restarted after its process ended unexpectedly.")
    last_exit_code: int | None = Field(
        None,
        description="Exit code of its last unexpected end (negative: killed by that signal); null if none.",
    )


class HealthReady(BaseModel):
    """``GET /v2/health/ready``: the default model is loaded and warmed up (HTTP 503 while not)."""

    ready: bool
    models: list[str] = Field(description="Loaded models, 'name:version'.")
    providers: dict[str, dict[str, str]] = Field(
        description="Execution provider actually in use, per loaded model and modality."
    )
    workers: list[WorkerPublic] = Field(
        [],
        description="The worker processes holding the streams (M2S_WORKERS >= 2); empty when the streams run in "
        "the API process.",
    )
    degraded: str | None = Field(
        None,
        description="Why some attached streams are not served now although the service is ready: worker "
        "processes (M2S_WORKERS >= 2) being restarted, with their indexes; null when every worker serves. The "
        "status stays 200 (REST and /predict work; a restart does not need the traffic moved elsewhere).",
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


class ModelReady(BaseModel):
    """``GET /v2/models/{name}[/versions/{v}]/ready``: the version is loaded and warmed up (HTTP 503 while not)."""

    name: str
    version: int | None = Field(description="The version asked about (null while the service is not ready).")
    ready: bool


class CalibrationLabels(BaseModel):
    """Where a calibration's labels come from: an LSL marker stream or ``POST /calibrations/{id}/label``."""

    model_config = ConfigDict(extra="forbid")

    markers: StreamSelector | None = Field(
        None,
        description="The experiment's marker stream (type / name / source_id): JSON onsets "
        '{"trial": k, "label": "<class>"} or trial_start:<label> / trial_end strings.',
        examples=[{"type": "Markers"}],
    )
    rest: Flag = Field(False, description="Labels come from POST /calibrations/{id}/label.")
    trial_s: Number | None = Field(
        None,
        gt=0,
        le=3600,
        description="Markers only: a JSON-onset trial ends after this many seconds if no later marker ends it "
        "sooner (default: at the next onset).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationLabels:
        if (self.markers is not None) == bool(self.rest):
            raise ValueError(
                'give exactly one label source: {"markers": {"type": "Markers"}} or {"rest": true}'
            )
        return self


class CalibrationCreate(BaseModel):
    """``POST /calibrations``: start collecting a new participant's labelled windows on attached streams."""

    model_config = ConfigDict(extra="forbid")

    participant: str = Field(
        pattern=PARTICIPANT_PATTERN,
        description="Participant id: letters, digits, '_' and '-', at most 64, starting with a letter or digit.",
        examples=["p-013"],
    )
    model: str | None = Field(
        None,
        min_length=1,
        description="Base model 'name[:version]'; default: the model the first stream runs.",
        examples=["m2s-synthetic-demo"],
    )
    streams: list[str] = Field(
        min_length=1, max_length=16, description="Ids of attached streams, at most one per modality."
    )
    labels: CalibrationLabels
    record: Flag = Field(
        False,
        description="Record the session to XDF in M2S_RECORDINGS_DIR (the streams, and the marker stream or the "
        "REST labels as markers) until the calibration ends; its id is recording_id.",
    )


class CalibrationLabel(BaseModel):
    """``POST /calibrations/{id}/label``: ``{"label": "<class>"}`` starts a labelled trial now, ``null`` ends it."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(description="A class name of the base model, or null to end the trial.")


class CalibrationFit(BaseModel):
    """``POST /calibrations/{id}/fit``: fit the participant's head and save it as a new model version."""

    model_config = ConfigDict(extra="forbid")

    train_modality: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Fit one head on this modality's embeddings and serve every modality with it (cross-modal); "
        "default: each modality its own head.",
        examples=["eeg"],
    )
    activate: Flag = Field(False, description="Switch the calibration's streams to the new model (hot swap).")


class ModalityValidation(BaseModel):
    """Leave-one-trial-out balanced accuracy of one served modality."""

    balanced_accuracy: float | None = Field(
        description="None: no labelled window of this modality to hold out."
    )
    head: str = Field(description="The modality whose windows fitted the head serving this one.")
    n_windows: int = Field(description="Labelled windows of this modality.")
    own_head_balanced_accuracy: float | None = Field(
        None, description="With a head fitted on this modality's own windows (beside a cross-modal head)."
    )


class CalibrationValidation(BaseModel):
    """Leave-one-trial-out validation within the calibration trials (no other data involved)."""

    balanced_accuracy: float | None = Field(
        description="Of the train modality, or the mean over own-modality heads."
    )
    per_modality: dict[str, ModalityValidation]
    n_trials: dict[str, int] = Field(description="Labelled trials per class.")
    c: dict[str, float] = Field(
        description="Inverse regularisation chosen per head (by the modality fitted on)."
    )
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Modalities left out of the new model, and why (too few trials)."
    )


class CalibrationResult(BaseModel):
    """The answer of a fit: the new model, its validation and the streams switched to it."""

    model: ModelRef
    validation: CalibrationValidation
    activated: list[str] = Field(description="Streams now served by the new model.")
    fit_s: float = Field(
        description="Seconds the fit took (embedding, regularisation choice, heads, bundle)."
    )


class MarkerEvent(BaseModel):
    """A labelled trial seen by the calibration (for timelines): LSL times of its start and end."""

    label: str | None
    start: float
    end: float | None = Field(description="None while the trial is open.")
    phase: str | None = None
    used: bool = Field(
        description="The trial's windows are calibration data (test-phase or unknown labels are not)."
    )


class CalibrationPublic(BaseModel):
    """A calibration and its progress."""

    id: str
    participant: str
    state: str = Field(description="collecting | fitting | done | failed | cancelled")
    model: ModelRef = Field(description="The base model.")
    streams: list[str]
    modalities: dict[str, str] = Field(description="Stream id -> modality.")
    labels: str = Field(description="'markers' or 'rest'.")
    markers_connected: bool | None = Field(None, description="The marker stream is connected (markers only).")
    counts: dict[str, dict[str, int]] = Field(description="Labelled windows per modality and class so far.")
    trials: dict[str, int] = Field(description="Completed labelled trials per class.")
    open_label: str | None = Field(None, description="The label of the trial open now.")
    class_names: list[str] = Field(description="The base model's classes: the valid labels.")
    lsl_now: float = Field(description="The service's LSL clock when this answer was made (events use it).")
    events: list[MarkerEvent] = Field(description="The latest trials seen (at most 200), oldest first.")
    notes: list[str] = Field(description="Markers or labels that were not used, and why (latest 20).")
    error: str | None = None
    result: CalibrationResult | None = None
    created: float = Field(description="time.time() at creation.")
    recording_id: str | None = Field(
        None, description='The recording of this session ("record": true; GET /recordings/{id}).'
    )


class CalibrationsPublic(BaseModel):
    """``GET /calibrations``."""

    data: list[CalibrationPublic]
    count: int


class RepositoryLoad(BaseModel):
    """``POST /v2/repository/models/{name}/load`` (Triton's repository extension); the body may be absent."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(
        {},
        description="Triton's load parameters; none is supported (the service loads bundles as they are in the "
        "repository), so only an empty object is accepted.",
    )

    @field_validator("parameters")
    @classmethod
    def _no_parameters(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        if parameters:
            names = ", ".join(f"'{k}'" for k in sorted(parameters))
            raise ValueError(
                f"unsupported load parameter(s) {names}; the service loads a bundle as it is in the repository "
                "(Triton's 'config' and 'file:' overrides do not exist here): send no body or {}"
            )
        return parameters


class RepositoryLoadResult(BaseModel):
    """The version loaded and the streams following its name that now serve it."""

    model: ModelRef = Field(description="The latest version of the model, loaded and warmed up.")
    switched: list[str] = Field(
        description="Ids of the streams following the model that were switched to it."
    )
    not_switched: dict[str, str] = Field(
        {}, description="Stream id -> why that following stream stays on its version."
    )


class RepositoryIndex(BaseModel):
    """``POST /v2/repository/index``: an optional filter, as Triton's."""

    model_config = ConfigDict(extra="forbid")

    ready: Flag = Field(False, description="List only the versions that are loaded (state READY).")


class RepositoryIndexEntry(BaseModel):
    """One version of one model of the repository, Triton-style."""

    name: str
    version: str = Field(description="The version, as text (Triton's index spells versions as strings).")
    state: str = Field(description="'READY' (loaded, serving) or 'UNAVAILABLE' (see reason).")
    reason: str = Field("", description="Why a version is unavailable: 'not loaded' or why its load failed.")


class RecordingCreate(BaseModel):
    """``POST /recordings``: record attached streams (and a marker stream) to one XDF file."""

    model_config = ConfigDict(extra="forbid")

    streams: list[str] = Field(
        min_length=1, max_length=16, description="Ids of attached streams, e.g. the EEG and the eye tracker."
    )
    markers: StreamSelector | None = Field(
        None,
        description="The marker stream to record with them (type / name / source_id), e.g. the experiment's.",
    )
    name: str | None = Field(
        None,
        pattern=RECORDING_NAME_PATTERN,
        description="File name without '.xdf' (letters, digits, '_', '.', '-'; at most 64); "
        "default: session-<UTC time>-<id>.",
        examples=["p-013-calibration"],
    )


class RecordedStream(BaseModel):
    """One stream of a recording."""

    stream_id: str = Field(description="The attached stream's id.")
    modality: str | None
    name: str | None = Field(description="The LSL stream's name (None before its first chunk).")
    n_samples: int = Field(description="Samples written.")
    n_chunks: int
    xdf_stream_ids: list[int] = Field(
        description="Its stream ids in the file (a reconnection to a differently described outlet adds one)."
    )


class RecordedMarkers(BaseModel):
    """The marker stream of a recording."""

    selector: dict[str, str]
    name: str | None
    n_markers: int
    connected: bool


class RecordingPublic(BaseModel):
    """A recording: its file, what it holds so far and its state."""

    id: str
    name: str
    file: str = Field(description="File name in M2S_RECORDINGS_DIR.")
    state: Literal["recording", "closing", "closed", "failed"]
    error: str | None = Field(description="Why a failed recording stopped (its file keeps what came before).")
    started: str
    ended: str | None
    duration_s: float
    bytes: int = Field(description="Bytes written so far.")
    streams: list[RecordedStream]
    markers: RecordedMarkers | None
    calibration_id: str | None = Field(
        description='The calibration that started it ("record": true), if any.'
    )


class StoredRecording(BaseModel):
    """An XDF file in M2S_RECORDINGS_DIR that no recording of this run is writing."""

    file: str
    bytes: int
    complete: bool = Field(
        description="False: it ends with a half-written chunk (m2s-live repairs it at start)."
    )


class RecordingsPublic(BaseModel):
    """``GET /recordings``."""

    recordings: list[RecordingPublic] = Field(description="This run's recordings, oldest first.")
    stored: list[StoredRecording] = Field(description="Other XDF files in M2S_RECORDINGS_DIR.")


class ErrorPublic(BaseModel):
    """Every 4xx/5xx answer: one sentence saying what was wrong and what to do."""

    detail: str


class InferenceErrorPublic(ErrorPublic):
    """An error of ``POST /v2/models/{name}/infer``: the same sentence as ``detail`` and as ``error``.

    ``error`` is the key the Open Inference Protocol (KServe v2) defines and its clients read (tritonclient
    raises it as the exception's message); ``detail`` is the key every other error of this service has.
    """

    error: str


# -- Open Inference Protocol (KServe v2) inference, POST /v2/models/{name}[/versions/{v}]/infer ----------------

#: A v2 ``$parameter`` value: a JSON string, number or boolean.
ParameterValue = Annotated[bool, Strict()] | Annotated[int, Strict()] | Annotated[float, Strict()] | str
#: A v2 ``$parameters`` object.
Parameters = dict[str, ParameterValue]
#: Tensor data: parsed as any JSON array (the route checks the numbers itself, in one pass); documented as the
#: two forms the protocol allows for a [batch, T, D] tensor, flat (row-major) or nested.
TensorData = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "number"},
                    {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                ]
            },
        }
    ),
]


class InferenceRequestInput(BaseModel):
    """One input tensor of an inference request (here: ``window``, FP32, shape ``[batch, T, D]``)."""

    name: str = Field(description="The input's name; these models have one, 'window'.", examples=["window"])
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        description="[batch, T, D]: T and D of the modality's graph (GET /v2/models/{name}).",
        examples=[[1, 5, 310]],
    )
    datatype: str = Field(description="'FP32'.", examples=["FP32"])
    parameters: Parameters | None = Field(
        None,
        description="binary_data_size: the tensor is sent as binary (little-endian float32, row-major) after the "
        "JSON, whose length the header Inference-Header-Content-Length gives (binary tensor data extension).",
    )
    data: TensorData | None = Field(
        None,
        description="The values, NOT normalised (as /predict's features): a flat row-major list of batch*T*D "
        "numbers, or nested [batch][T][D] lists. Leave it out when the tensor is sent as binary.",
    )


class InferenceRequestOutput(BaseModel):
    """An output the request asks for (here only ``probabilities`` exists)."""

    name: str = Field(examples=["probabilities"])
    parameters: Parameters | None = Field(
        None,
        description="binary_data: true to receive the tensor as binary after the JSON (little-endian float32).",
    )


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer``: an Open Inference Protocol (KServe v2) inference request."""

    id: str | None = Field(None, description="Echoed in the response.")
    parameters: Parameters | None = Field(
        None,
        description="modality: which of the bundle's modalities to run, e.g. 'eeg' (needed when the bundle has "
        "more than one); binary_data_output: true to receive every output as binary.",
        examples=[{"modality": "eeg"}],
    )
    inputs: list[InferenceRequestInput] = Field(min_length=1)
    outputs: list[InferenceRequestOutput] | None = Field(
        None, description="Outputs to return; all (probabilities) when left out."
    )


class InferenceResponseOutput(BaseModel):
    """An output tensor of an inference response."""

    name: str = Field(examples=["probabilities"])
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="[batch, n_classes], classes in the model's class_names order.")
    parameters: Parameters | None = Field(
        None, description="binary_data_size when the tensor follows the JSON as binary."
    )
    data: list[float] | None = Field(None, description="Row-major values (absent when sent as binary).")


class InferenceResponse(BaseModel):
    """The answer to an inference request (Open Inference Protocol, KServe v2)."""

    model_name: str
    model_version: str
    id: str | None = Field(None, description="The request's id, when it had one.")
    parameters: Parameters | None = Field(None, description="modality: the modality that ran.")
    outputs: list[InferenceResponseOutput]


__all__ = [
    "PARTICIPANT_PATTERN",
    "RECORDING_NAME_PATTERN",
    "CalibrationCreate",
    "CalibrationFit",
    "CalibrationLabel",
    "CalibrationLabels",
    "CalibrationPublic",
    "CalibrationResult",
    "CalibrationValidation",
    "CalibrationsPublic",
    "MarkerEvent",
    "ModalityValidation",
    "EmotionState",
    "ErrorPublic",
    "InferenceErrorPublic",
    "InferenceRequest",
    "InferenceRequestInput",
    "InferenceRequestOutput",
    "InferenceResponse",
    "InferenceResponseOutput",
    "FeatureSpecSummary",
    "HealthLive",
    "HealthReady",
    "WorkerPublic",
    "ModalityMetadata",
    "ModelMetadata",
    "ModelReady",
    "ModelRef",
    "ModelSummary",
    "ModelsPublic",
    "PredictRequest",
    "RepositoryIndex",
    "RepositoryIndexEntry",
    "RepositoryLoad",
    "RepositoryLoadResult",
    "RecordedMarkers",
    "RecordedStream",
    "RecordingCreate",
    "RecordingPublic",
    "RecordingsPublic",
    "StoredRecording",
    "SignalIn",
    "StreamCreate",
    "StreamPublic",
    "StreamsPublic",
    "Timing",
    "TensorMetadata",
]
