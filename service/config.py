"""Settings of the live service, read from ``M2S_*`` environment variables and ``m2s-serve``'s flags.

Everything is validated when :class:`Settings` is built, so a misconfigured service refuses to start
with a message naming the variable and how to fix it, instead of failing on the first request. Each
field's description is its help in ``m2s-serve --help``, whose flags are generated from these fields
(service.cli); host and port come from :class:`service.address.ServiceAddress`, which the container
health check reads too.

Streams to attach at start come either from the CLI (``--attach modality=eeg,type=EEG``, parsed by
:meth:`AttachRequest.parse_cli`) or from ``M2S_ATTACH``, a JSON list of objects (or of CLI-style strings)::

    M2S_ATTACH='[{"modality": "eeg", "type": "EEG"}, "modality=ecg,source_id=polar-h10"]'

No torch here, and onnxruntime is only consulted (lazily) for the names of its execution providers.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, parse_model_ref
from service.address import ENV_PREFIX, ServiceAddress

# ``onnxruntime.get_all_providers()`` of onnxruntime 1.31 and 1.32: every provider name any ORT build may offer.
# Used when onnxruntime cannot be imported; otherwise the installed build's list is added to it.
KNOWN_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "NvTensorRTRTXExecutionProvider",
    "CUDAExecutionProvider",
    "MIGraphXExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "DnnlExecutionProvider",
    "VitisAIExecutionProvider",
    "QNNExecutionProvider",
    "NnapiExecutionProvider",
    "VSINPUExecutionProvider",
    "JsExecutionProvider",
    "CoreMLExecutionProvider",
    "ArmNNExecutionProvider",
    "ACLExecutionProvider",
    "DmlExecutionProvider",
    "RknpuExecutionProvider",
    "WebNNExecutionProvider",
    "WebGpuExecutionProvider",
    "XnnpackExecutionProvider",
    "CANNExecutionProvider",
    "AzureExecutionProvider",
    "CPUExecutionProvider",
)

#: Most worker processes (``M2S_WORKERS``): each holds its own ONNX Runtime sessions and LSL inlets.
MAX_WORKERS = 64

_SELECTOR_KEYS = ("type", "name", "source_id")
_ATTACH_KEYS = ("modality", *_SELECTOR_KEYS, "model")
_ATTACH_EXAMPLE = "modality=eeg,type=EEG"
_MODALITY_PATTERN = r"^[a-z][a-z0-9_]*$"


def known_providers() -> tuple[str, ...]:
    """Execution-provider names onnxruntime knows (whether or not this build can use them)."""
    try:
        import onnxruntime  # lazy: settings are often built for --help or validation only

        extra = tuple(p for p in onnxruntime.get_all_providers() if p not in KNOWN_PROVIDERS)
    except ImportError:
        extra = ()
    return KNOWN_PROVIDERS + extra


def _explain(err: ValidationError) -> str:
    """One line per problem: ``field: message`` without pydantic's URLs."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def non_empty_text(value: str | None, what: str) -> str | None:
    """``value`` stripped; ValueError when it is blank (None passes: the field was left out)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty; give a value or leave it out.")
    return value


def _selector_text(value: str | None, key: str) -> str | None:
    value = non_empty_text(value, key)
    if value is not None and "'" in value and '"' in value:
        # XPath 1.0 (LSL's resolve predicate) has no escapes: such a value can never match, refuse it now.
        raise ValueError(
            f"{key} {value!r} contains both ' and \"; LSL selectors cannot match such a value: "
            "select the stream by another field (e.g. source_id) or rename it."
        )
    return value


class StreamSelector(BaseModel):
    """Which LSL stream to attach: at least one of ``type``, ``name``, ``source_id`` (all must match).

    ``source_id`` is the most robust choice: it survives the outlet being restarted, so the
    service can re-resolve the same device after a loss.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str | None = None
    name: str | None = None
    source_id: str | None = None

    @field_validator(*_SELECTOR_KEYS)
    @classmethod
    def _selector_value(cls, value: str | None, info: Any) -> str | None:
        return _selector_text(value, info.field_name)

    @model_validator(mode="after")
    def _at_least_one(self) -> StreamSelector:
        if self.type is None and self.name is None and self.source_id is None:
            raise ValueError(
                "a stream selector needs at least one of type, name, source_id to pick the LSL stream, "
                "e.g. type='EEG' or source_id='my-amp-1234'."
            )
        return self

    def describe(self) -> str:
        """``type='EEG', source_id='x'``: the fields that are set, for logs and error messages."""
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in _SELECTOR_KEYS if getattr(self, k) is not None)


class AttachRequest(BaseModel):
    """Attach one LSL stream of ``modality`` and run ``model`` (``"name[:version]"``, None = default model) on it.

    The stream selector fields (``type``, ``name``, ``source_id``) are flattened into the request so
    that the CLI form ``modality=eeg,type=EEG`` and the JSON form ``{"modality": "eeg", "type": "EEG"}``
    have the same keys.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    modality: str
    type: str | None = None
    name: str | None = None
    source_id: str | None = None
    model: str | None = None

    @field_validator("modality")
    @classmethod
    def _modality_name(cls, modality: str) -> str:
        modality = modality.strip()
        if not modality or not re.match(_MODALITY_PATTERN, modality):
            raise ValueError(
                f"modality must be a lowercase name such as 'eeg', 'eye' or 'ecg' (letters, digits, '_'), "
                f"got {modality!r}."
            )
        return modality

    @field_validator(*_SELECTOR_KEYS)
    @classmethod
    def _selector_value(cls, value: str | None, info: Any) -> str | None:
        return _selector_text(value, info.field_name)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, model: str | None) -> str | None:
        model = non_empty_text(model, "model")
        if model is not None:
            parse_model_ref(model)  # BundleError (a ValueError) says what a reference looks like
        return model

    @model_validator(mode="after")
    def _has_selector(self) -> AttachRequest:
        if self.type is None and self.name is None and self.source_id is None:
            raise ValueError(
                f"the {self.modality!r} stream needs at least one of type, name, source_id to pick the LSL "
                "stream, e.g. type='EEG' or source_id='my-amp-1234'."
            )
        return self

    @property
    def selector(self) -> StreamSelector:
        """The LSL stream selector part of the request."""
        return StreamSelector(type=self.type, name=self.name, source_id=self.source_id)

    @classmethod
    def parse_cli(cls, text: str) -> AttachRequest:
        """Parse ``"modality=eeg,type=EEG[,name=..][,source_id=..][,model=name[:version]]"``.

        Keys are ``modality`` (required), ``type``/``name``/``source_id`` (at least one), ``model``
        (optional). Whitespace around keys and values is ignored; a value may contain ``=`` but not
        ``,`` (use JSON in ``M2S_ATTACH`` for such stream names).

        Raises
        ------
        TypeError
            ``text`` is not a string.
        ValueError
            Bad syntax, an unknown or repeated key, a missing modality or selector, or an invalid
            value; the message quotes the argument and says what to write instead.
        """
        if not isinstance(text, str):
            raise TypeError(f"an --attach value must be a string, got {type(text).__name__} instead.")
        where = f"--attach {text!r}"
        if not text.strip():
            raise ValueError(f"{where} is empty; write e.g. --attach {_ATTACH_EXAMPLE}.")
        fields: dict[str, str] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise ValueError(
                    f"{where}: {item.strip()!r} is not key=value; write comma-separated key=value pairs, "
                    f"e.g. --attach {_ATTACH_EXAMPLE},model={DEMO_BUNDLE}:1."
                )
            if key not in _ATTACH_KEYS:
                close = difflib.get_close_matches(key, _ATTACH_KEYS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{where}: unknown key {key!r}; allowed keys are {', '.join(_ATTACH_KEYS)}.{hint}"
                )
            if key in fields:
                raise ValueError(f"{where}: key {key!r} is given twice; keep one.")
            if not value:
                raise ValueError(f"{where}: {key}= has no value; give one (e.g. {key}=...) or drop the key.")
            fields[key] = value
        if "modality" not in fields:
            raise ValueError(f"{where} has no modality; add one, e.g. --attach modality=eeg,{text.strip()}.")
        if not any(k in fields for k in _SELECTOR_KEYS):
            raise ValueError(
                f"{where} does not say which LSL stream to use; add type=, name= or source_id=, "
                f"e.g. --attach {text.strip()},type=EEG."
            )
        try:
            return cls(**fields)
        except ValidationError as err:
            raise ValueError(f"{where}: {_explain(err)}") from None


def _positive_finite(value: float, env: str, unit: str = "s") -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{env} must be a positive number of {unit}, got {value}.")
    return value


class Settings(ServiceAddress):
    """Service settings; each field ``x`` is read from the environment variable ``M2S_X``.

    The fields' descriptions say what each one is (``Settings.model_fields``, ``m2s-serve --help``).
    ``host`` and ``port`` are inherited from :class:`~service.address.ServiceAddress`. Lists
    (``attach``, ``providers``) are read as text, JSON or the flag's form, by their own validators.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_repository: Path = Field(
        DEFAULT_REPOSITORY,
        description="model repository, folders <name>/<version>/manifest.json",
    )
    calibrated_repository: Path | None = Field(
        None,
        description="writable repository where calibrated models <base>-<participant>/<n>/ are saved",
    )
    recordings_dir: Path | None = Field(
        None,
        description="folder where session recordings (XDF, owner-only) are written; default: recordings/ beside "
        "the model repository",
    )
    default_model: str = Field(
        DEMO_BUNDLE,
        description="model loaded and warmed up at start, used when a request or stream names none",
    )
    attach: Annotated[list[AttachRequest], NoDecode] = Field(
        [], description="LSL streams to attach at start; a JSON list of objects or of flag-style strings"
    )
    api_token: SecretStr | None = Field(None, description="bearer token required by REST and WebSocket")
    max_body_bytes: int = Field(  # 10 s of 62-channel EEG as JSON is ~2.4 MB
        8_000_000, description="largest request body in bytes, larger ones get 413"
    )
    # Parsed JSON numbers take 8-20x their text's size in Python objects (measured: a 3.7 MB signal body peaks
    # at +28 MB): the sum of the bodies being read and handled at once is what bounds the memory they can take.
    max_inflight_body_bytes: int = Field(
        32_000_000,
        description="most request-body bytes being read and handled at once (all requests together); a "
        "request that would pass it gets 429, before its body is read",
    )
    body_read_timeout_s: float = Field(
        30.0, description="a request's whole body must arrive within S seconds, or it gets 408"
    )
    max_streams: int = Field(64, description="most attached LSL streams; more attaches get 409")
    max_ws_clients: int = Field(
        256, description="most WebSocket clients at once; more are closed with code 1013 (try again later)"
    )
    providers: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="ONNX Runtime execution providers in order of preference, e.g. "
        "CUDAExecutionProvider,CPUExecutionProvider",
    )
    stale_after_s: float = Field(2.0, description="a stream without new samples for S seconds is stale")
    resolve_timeout_s: float = Field(2.0, description="timeout of each LSL stream resolution, s")
    ws_queue_size: int = Field(
        256, description="messages queued per WebSocket client before its oldest are dropped"
    )
    # 0 (default): a caller that finds the model idle runs at once; callers arriving while a run is busy
    # are batched together. A positive wait trades that much latency for larger batches (a GPU serving
    # many streams may want a few ms).
    batch_max_wait_s: float = Field(
        0.0,
        description="how long an inference batch waits for more windows after its first, s; 0 = never wait, "
        "an idle model runs a request at once",
    )
    batch_max_windows: int = Field(256, description="most windows in one ONNX Runtime run")
    # Triton's --repository-poll-secs (its poll mode) defaults to 15 s. 5 s here: a scan costs a directory
    # listing per model that streams follow, a new version (e.g. adapted by m2s-train adapt after a calibration)
    # then reaches the streams within a few hops, and a broken version is only retried when its folder changes.
    model_poll_interval_s: float = Field(
        5.0,
        description="seconds between two looks for new versions of the models streams follow (hot reload); "
        "0 = never (POST /v2/repository/models/{name}/load still loads)",
    )
    # One process reads every stream's inlet, computes its features and runs its inference under one GIL: a
    # second core does not help. N >= 2 shards the streams across N spawned processes (service.workers).
    workers: int = Field(
        1,
        description="processes holding the attached streams (LSL inlets, features, inference); 1 = the API "
        "process itself, N >= 2 = N worker processes, a stream on the one with the fewest (live calibration "
        "and recordings need 1)",
    )

    @field_validator("model_repository")
    @classmethod
    def _repository_exists(cls, path: Path) -> Path:
        if not path.is_dir():
            raise ValueError(
                f"M2S_MODEL_REPOSITORY {str(path)!r} is not a folder; point it at a model repository "
                f"(folders <name>/<version>/manifest.json), e.g. {str(DEFAULT_REPOSITORY)!r}."
            )
        return path

    @model_validator(mode="after")
    def _calibrated_beside(self) -> Settings:
        if self.calibrated_repository is None:  # frozen model: set the derived default once, here
            object.__setattr__(
                self, "calibrated_repository", self.model_repository.resolve().parent / "calibrated"
            )
        elif self.calibrated_repository.exists() and not self.calibrated_repository.is_dir():
            raise ValueError(
                f"M2S_CALIBRATED_REPOSITORY {str(self.calibrated_repository)!r} is a file; point it at a folder."
            )
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"M2S_MAX_INFLIGHT_BODY_BYTES ({self.max_inflight_body_bytes}) is below M2S_MAX_BODY_BYTES "
                f"({self.max_body_bytes}): a body of the largest accepted size could never be read; raise it."
            )
        if len(self.attach) > self.max_streams:
            raise ValueError(
                f"{len(self.attach)} streams to attach at start but M2S_MAX_STREAMS is {self.max_streams}; "
                "raise the limit or attach fewer."
            )
        if self.recordings_dir is None:
            object.__setattr__(self, "recordings_dir", self.model_repository.resolve().parent / "recordings")
        elif self.recordings_dir.exists() and not self.recordings_dir.is_dir():
            raise ValueError(
                f"M2S_RECORDINGS_DIR {str(self.recordings_dir)!r} is a file; point it at a folder."
            )
        return self

    @field_validator("default_model")
    @classmethod
    def _default_model_ref(cls, ref: str) -> str:
        try:
            parse_model_ref(ref)
        except ValueError as err:
            raise ValueError(f"M2S_DEFAULT_MODEL: {err}") from None
        return ref

    @field_validator("attach", mode="before")
    @classmethod
    def _attach_from_env(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f'M2S_ATTACH must be a JSON list, e.g. \'[{{"modality": "eeg", "type": "EEG"}}]\'; '
                    f"it is not valid JSON ({err})."
                ) from None
        if isinstance(value, (dict, str)) or not isinstance(value, (list, tuple)):
            raise ValueError(
                'M2S_ATTACH must be a JSON list of streams, e.g. \'[{"modality": "eeg", "type": "EEG"}]\', '
                f"got a {type(value).__name__}; wrap a single stream in [ ]."
            )
        # CLI-style strings are accepted inside the list too, with the CLI's error messages.
        return [AttachRequest.parse_cli(v) if isinstance(v, str) else v for v in value]

    @field_validator("api_token")
    @classmethod
    def _token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None:
            raw = token.get_secret_value()
            if not raw.strip():
                raise ValueError(
                    "M2S_API_TOKEN is set but empty; unset it to run without authentication or set a token."
                )
            if raw != raw.strip():
                raise ValueError("M2S_API_TOKEN has leading or trailing whitespace; remove it.")
        return token

    @field_validator("max_body_bytes")
    @classmethod
    def _body_limit(cls, n: int) -> int:
        if n < 1024:
            raise ValueError(f"M2S_MAX_BODY_BYTES must be at least 1024 bytes, got {n}.")
        return n

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_from_env(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as err:
                    raise ValueError(f"M2S_PROVIDERS is not a valid JSON list ({err}).") from None
            return [p.strip() for p in text.split(",")]
        return value

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, providers: list[str] | None) -> list[str] | None:
        if providers is None:
            return None
        if not providers:
            raise ValueError(
                "M2S_PROVIDERS is an empty list; unset it for automatic choice (CUDA if available, else CPU)."
            )
        known = known_providers()
        for p in providers:
            if p not in known:
                by_lower = {k.lower(): k for k in known}
                close = difflib.get_close_matches(p.lower(), list(by_lower), n=1)
                hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
                raise ValueError(
                    f"M2S_PROVIDERS: {p!r} is not an ONNX Runtime execution provider.{hint} "
                    "Known names include CUDAExecutionProvider, TensorrtExecutionProvider, CPUExecutionProvider."
                )
        if len(set(providers)) != len(providers):
            raise ValueError(f"M2S_PROVIDERS lists a provider twice: {providers}; keep each once.")
        return providers

    @field_validator("stale_after_s")
    @classmethod
    def _stale(cls, value: float) -> float:
        return _positive_finite(value, "M2S_STALE_AFTER_S")

    @field_validator("resolve_timeout_s")
    @classmethod
    def _resolve(cls, value: float) -> float:
        return _positive_finite(value, "M2S_RESOLVE_TIMEOUT_S")

    @field_validator("ws_queue_size")
    @classmethod
    def _ws_queue(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"M2S_WS_QUEUE_SIZE must be at least 1 message, got {value}.")
        return value

    @field_validator("batch_max_wait_s")
    @classmethod
    def _batch_wait(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ValueError(
                f"M2S_BATCH_MAX_WAIT_S must be between 0 and 1 s (0 = never wait for more windows), got {value}."
            )
        return value

    @field_validator("batch_max_windows")
    @classmethod
    def _batch_windows(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"M2S_BATCH_MAX_WINDOWS must be at least 1 window, got {value}.")
        return value

    @field_validator("max_streams", "max_ws_clients")
    @classmethod
    def _at_least_one_and_sane(cls, value: int, info: Any) -> int:
        if not 1 <= value <= 100_000:
            raise ValueError(f"M2S_{info.field_name.upper()} must be between 1 and 100000, got {value}.")
        return value

    @field_validator("body_read_timeout_s")
    @classmethod
    def _body_timeout(cls, value: float) -> float:
        if not math.isfinite(value) or not 0.1 <= value <= 3600:
            raise ValueError(f"M2S_BODY_READ_TIMEOUT_S must be between 0.1 and 3600 s, got {value}.")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if not 1 <= value <= MAX_WORKERS:
            raise ValueError(
                f"M2S_WORKERS must be between 1 and {MAX_WORKERS} processes, got {value}; 1 runs every stream in "
                "the API process, N >= 2 shards them across N worker processes (about one per CPU core)."
            )
        return value

    @field_validator("model_poll_interval_s")
    @classmethod
    def _poll_interval(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0 or 0 < value < 0.1 or value > 86400:
            raise ValueError(
                "M2S_MODEL_POLL_INTERVAL_S must be 0 (no polling) or between 0.1 and 86400 s, got "
                f"{value}; 5 s is the default."
            )
        return value


__all__ = ["KNOWN_PROVIDERS", "MAX_WORKERS", "AttachRequest", "Settings", "StreamSelector", "known_providers"]
