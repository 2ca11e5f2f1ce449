"""Service settings from M2S_* environment variables and the --attach CLI syntax, with actionable errors."""

import re

import pytest
from pydantic import ValidationError

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
from service.config import KNOWN_PROVIDERS, AttachRequest, Settings, StreamSelector


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Each test starts without M2S_* variables from the calling shell."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("M2S_"):
            monkeypatch.delenv(key)


def test_defaults_without_environment():
    """With no M2S_* variables the service serves the shipped demo bundle on localhost:8000, no auth."""
    s = Settings()
    assert s.model_repository == DEFAULT_REPOSITORY
    assert s.default_model == DEMO_BUNDLE
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.attach == [] and s.api_token is None and s.providers is None
    assert (s.max_body_bytes, s.stale_after_s, s.resolve_timeout_s, s.ws_queue_size) == (
        8_000_000,
        2.0,
        2.0,
        256,
    )
    assert (s.batch_max_wait_s, s.batch_max_windows) == (0.0, 256)


def test_settings_from_environment(monkeypatch, tmp_path):
    """M2S_PORT, M2S_ATTACH (JSON objects and CLI strings), M2S_API_TOKEN and others are read and typed."""
    monkeypatch.setenv("M2S_PORT", "9123")
    monkeypatch.setenv("M2S_MODEL_REPOSITORY", str(tmp_path))
    monkeypatch.setenv(
        "M2S_ATTACH",
        '[{"modality": "eeg", "type": "EEG", "model": "m2s-synthetic-demo:1"}, "modality=ecg,source_id=h10"]',
    )
    monkeypatch.setenv("M2S_API_TOKEN", "s3cret")
    monkeypatch.setenv("M2S_STALE_AFTER_S", "0.5")
    monkeypatch.setenv("M2S_BATCH_MAX_WAIT_S", "0.002")
    monkeypatch.setenv("M2S_BATCH_MAX_WINDOWS", "64")
    s = Settings()
    assert (s.batch_max_wait_s, s.batch_max_windows) == (0.002, 64)
    assert s.port == 9123
    assert s.model_repository == tmp_path
    assert s.attach == [
        AttachRequest(modality="eeg", type="EEG", model="m2s-synthetic-demo:1"),
        AttachRequest(modality="ecg", source_id="h10"),
    ]
    assert s.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.stale_after_s == 0.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CUDAExecutionProvider,CPUExecutionProvider", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ('["CPUExecutionProvider"]', ["CPUExecutionProvider"]),
        ("", None),
    ],
    ids=["comma", "json", "empty-is-auto"],
)
def test_providers_from_environment(monkeypatch, raw, expected):
    """M2S_PROVIDERS is a comma-separated or JSON list; empty means automatic choice."""
    monkeypatch.setenv("M2S_PROVIDERS", raw)
    assert Settings().providers == expected


@pytest.mark.parametrize(
    ("env", "value", "match"),
    [
        ("M2S_PORT", "70000", "M2S_PORT must be 1-65535"),
        (
            "M2S_MODEL_REPOSITORY",
            "/nonexistent/repo",
            "M2S_MODEL_REPOSITORY '/nonexistent/repo' is not a folder",
        ),
        ("M2S_DEFAULT_MODEL", "bad name!", "M2S_DEFAULT_MODEL: invalid model reference"),
        ("M2S_HOST", " ", "M2S_HOST is empty"),
        ("M2S_ATTACH", "[{", "M2S_ATTACH must be a JSON list.*not valid JSON"),
        ("M2S_ATTACH", '{"modality": "eeg", "type": "EEG"}', r"wrap a single stream in \[ \]"),
        ("M2S_ATTACH", '[{"modality": "eeg"}]', "needs at least one of type, name, source_id"),
        ("M2S_ATTACH", '["modality=eeg,typ=EEG"]', "unknown key 'typ'"),
        ("M2S_API_TOKEN", "", "M2S_API_TOKEN is set but empty; unset it"),
        ("M2S_API_TOKEN", " tok", "leading or trailing whitespace"),
        ("M2S_MAX_BODY_BYTES", "10", "M2S_MAX_BODY_BYTES must be at least 1024"),
        (
            "M2S_PROVIDERS",
            "CudaExecutionProvider",
            "not an ONNX Runtime.*Did you mean 'CUDAExecutionProvider'",
        ),
        ("M2S_PROVIDERS", "[]", "M2S_PROVIDERS is an empty list; unset it"),
        ("M2S_PROVIDERS", "CPUExecutionProvider,CPUExecutionProvider", "lists a provider twice"),
        ("M2S_PROVIDERS", "[CPU", "M2S_PROVIDERS is not a valid JSON list"),
        ("M2S_STALE_AFTER_S", "0", "M2S_STALE_AFTER_S must be a positive number"),
        ("M2S_RESOLVE_TIMEOUT_S", "nan", "M2S_RESOLVE_TIMEOUT_S must be a positive number"),
        ("M2S_WS_QUEUE_SIZE", "0", "M2S_WS_QUEUE_SIZE must be at least 1"),
        ("M2S_BATCH_MAX_WAIT_S", "-0.001", "M2S_BATCH_MAX_WAIT_S must be between 0 and 1 s"),
        ("M2S_BATCH_MAX_WAIT_S", "inf", "M2S_BATCH_MAX_WAIT_S must be between 0 and 1 s"),
        ("M2S_BATCH_MAX_WINDOWS", "0", "M2S_BATCH_MAX_WINDOWS must be at least 1 window"),
        ("M2S_WORKERS", "0", "M2S_WORKERS must be between 1 and 64 processes, got 0; 1 runs every stream"),
        ("M2S_WORKERS", "65", "M2S_WORKERS must be between 1 and 64 processes, got 65"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("M2S_") else None,
)
def test_invalid_settings_are_refused(monkeypatch, env, value, match):
    """Every bad setting is refused at startup with a message naming the variable and the fix."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=match):
        Settings()


def test_settings_are_frozen_and_accept_python_values(tmp_path):
    """Settings built in code take AttachRequest objects and cannot be changed afterwards."""
    request = AttachRequest(modality="eeg", type="EEG")
    s = Settings(attach=[request, "modality=eye,name=Tobii"], port=0, model_repository=tmp_path)
    assert s.attach == [request, AttachRequest(modality="eye", name="Tobii")]
    assert s.port == 0
    with pytest.raises(ValidationError, match="frozen"):
        s.port = 1


def test_known_providers_cover_this_onnxruntime():
    """The static provider list includes every name the installed onnxruntime knows."""
    import onnxruntime

    assert set(onnxruntime.get_all_providers()) <= set(KNOWN_PROVIDERS)


def test_parse_cli_full_and_minimal():
    """CLI attach strings parse into the same requests as keyword construction; whitespace is ignored."""
    full = AttachRequest.parse_cli("modality=eeg,type=EEG,source_id=x,model=m2s-synthetic-demo:1")
    assert full == AttachRequest(modality="eeg", type="EEG", source_id="x", model="m2s-synthetic-demo:1")
    assert full.selector == StreamSelector(type="EEG", source_id="x")
    assert AttachRequest.parse_cli(" modality = ecg , name = Polar H10 ") == AttachRequest(
        modality="ecg", name="Polar H10"
    )
    assert AttachRequest.parse_cli("modality=eeg,name=a=b").name == "a=b"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "modality=eeg,typ=EEG",
            "unknown key 'typ'; allowed keys are modality, type, name.*Did you mean 'type'",
        ),
        ("type=EEG", "has no modality; add one, e.g. --attach modality=eeg,type=EEG"),
        ("modality=eeg", "does not say which LSL stream to use; add type=, name= or source_id="),
        ("modality=eeg,EEG", "'EEG' is not key=value; write comma-separated key=value pairs"),
        ("modality=eeg,,type=EEG", "'' is not key=value"),
        ("=eeg,type=EEG", "'=eeg' is not key=value"),
        ("modality=eeg,type=EEG,type=ExG", "key 'type' is given twice"),
        ("modality=eeg,type=", "type= has no value"),
        ("  ", "is empty; write e.g. --attach modality=eeg,type=EEG"),
        ("modality=EEG,type=EEG", "modality must be a lowercase name"),
        ("modality=eeg,type=EEG,model=demo:0", "model: invalid model reference 'demo:0'"),
    ],
)
def test_parse_cli_errors(text, match):
    """Every malformed --attach value gets a ValueError quoting it and saying what to write."""
    with pytest.raises(ValueError, match=match):
        AttachRequest.parse_cli(text)


def test_parse_cli_needs_a_string():
    """A non-string --attach value is a TypeError."""
    with pytest.raises(TypeError, match="must be a string, got dict"):
        AttachRequest.parse_cli({"modality": "eeg"})


def test_attach_request_json_validation():
    """The JSON form refuses unknown keys, blank values and a request without stream selector."""
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AttachRequest.model_validate({"modality": "eeg", "type": "EEG", "stream": "x"})
    with pytest.raises(ValidationError, match="name is empty"):
        AttachRequest(modality="eeg", name="  ")
    with pytest.raises(ValidationError, match="the 'eeg' stream needs at least one of type, name, source_id"):
        AttachRequest(modality="eeg", model="m2s-synthetic-demo")
    with pytest.raises(ValidationError, match="model is empty; give a value or leave it out"):
        AttachRequest(modality="eeg", type="EEG", model="")
    with pytest.raises(ValidationError, match="at most 18 digits"):
        AttachRequest(modality="eeg", type="EEG", model="m2s-synthetic-demo:" + "9" * 4301)


@pytest.mark.parametrize("key", ["type", "name", "source_id"])
def test_selector_with_both_quote_kinds_is_refused_when_given(key):
    """LSL's XPath predicate cannot quote a value holding ' and ": refused at attach time, not retried forever."""
    value = 'it\'s "x"'
    expected = f"{key} 'it\\'s \"x\"' contains both ' and \"; LSL selectors cannot match such a value"
    with pytest.raises(ValidationError, match=re.escape(expected)):
        AttachRequest(modality="eeg", **{key: value})
    with pytest.raises(ValidationError, match="contains both ' and"):
        StreamSelector(**{key: value})
    assert AttachRequest(modality="eeg", **{key: "it's"}).selector == StreamSelector(**{key: "it's"})


def test_stream_selector_needs_one_field():
    """A selector without type, name or source_id is refused; describe() lists the fields set."""
    with pytest.raises(ValidationError, match="needs at least one of type, name, source_id"):
        StreamSelector()
    assert StreamSelector(type="EEG", source_id="amp-1").describe() == "type='EEG', source_id='amp-1'"
