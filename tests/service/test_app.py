"""The FastAPI app under real uvicorn on loopback, with the committed demo bundle: /predict against independent
onnxruntime runs, every bad input's exact answer, auth, body limit, health, models, streams, OpenAPI.
(m2s-serve, the command that starts it, is tested in test_cli.py.)"""

import json
import os
import subprocess
import sys
import textwrap

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE, ModelRepository
from service.api.deps import INVALID_TOKEN, NOT_AUTHENTICATED, UNSUPPORTED_MEDIA_TYPE, get_engine
from service.api.errors import INTERNAL_ERROR
from service.app import create_app
from synthetic import SyntheticConfig, generate_trial

CPU = "CPUExecutionProvider"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = "m2s-synthetic-demo:1"


@pytest.fixture(scope="module")
def bundle():
    return ModelRepository(DEFAULT_REPOSITORY).load(DEMO_BUNDLE)


@pytest.fixture(scope="module")
def direct(bundle):
    """Independent reference: plain ORT sessions on manifest-normalised windows, no service code involved."""
    sessions = {
        m: ort.InferenceSession(str(bundle.graph_path(m)), providers=[CPU]) for m in bundle.manifest.graphs
    }

    def run(modality, normalised_window):
        window = np.asarray(normalised_window, dtype=np.float32)[np.newaxis]
        return sessions[modality].run(None, {"window": window})[0][0]

    return run


def _normalise(bundle, modality, features):
    norm = bundle.manifest.graph(modality).normalisation
    return (np.asarray(features, dtype=np.float64) - np.asarray(norm.mean)) / np.asarray(norm.std)


def _raw_features(bundle, modality, rng):
    """Plausible un-normalised features: manifest mean + std * N(0, 1)."""
    graph = bundle.manifest.graph(modality)
    z = rng.standard_normal((graph.seq_len, graph.dim))
    return np.asarray(graph.normalisation.mean) + np.asarray(graph.normalisation.std) * z


def _synthetic_signal(modality, seconds):
    """The first ``seconds`` of a synthetic trial (subject 0, trial 0) and its sampling rate."""
    trial = generate_trial(SyntheticConfig(trial_duration_s=30.0), 0, 0, 0, modalities=(modality,))
    sfreq = trial.sfreq[modality]
    return trial.signals[modality][:, : int(round(seconds * sfreq))], sfreq


# -- /predict ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["eeg", "eye", "ecg"])
def test_predict_features_equals_direct_onnxruntime(http, bundle, direct, modality):
    """/predict with raw features returns the ORT output of the manifest-normalised window."""
    features = _raw_features(bundle, modality, np.random.default_rng(0))
    r = http.post("/predict", json={"modality": modality, "model": REF, "features": features.tolist()})
    assert r.status_code == 200, r.text
    state = r.json()
    expected = direct(modality, _normalise(bundle, modality, features))
    classes = list(bundle.manifest.class_names)
    np.testing.assert_allclose([state["probabilities"][c] for c in classes], expected, rtol=1e-5, atol=1e-6)
    assert state["label"] == classes[int(np.argmax(expected))]
    assert state["model"] == {"name": "m2s-synthetic-demo", "version": 1}
    assert state["modality"] == modality and state["stream_id"] is None and state["lsl_time"] is None
    assert (
        state["timing"]["features_ms"] is None
        and state["timing"]["total_ms"] >= state["timing"]["inference_ms"]
    )


def test_predict_defaults_to_the_default_model(http, bundle, direct):
    """Without 'model' the service's default model (the demo bundle) answers."""
    features = _raw_features(bundle, "ecg", np.random.default_rng(1))
    state = http.post("/predict", json={"modality": "ecg", "features": features.tolist()}).json()
    expected = direct("ecg", _normalise(bundle, "ecg", features))
    np.testing.assert_allclose(list(state["probabilities"].values()), expected, rtol=1e-5, atol=1e-6)


def _offline_last_window(bundle, modality, data):
    """The offline path: spec.compute on the whole signal -> normalise -> last T vectors spaced as in training."""
    graph = bundle.manifest.graph(modality)
    spec = graph.feature_spec
    frames = spec.compute(data)
    step = round(graph.spacing_s / spec.hop_s)
    span = (graph.seq_len - 1) * step + 1
    last = frames.features[len(frames) - span :: step]
    assert last.shape == (graph.seq_len, graph.dim)
    return _normalise(bundle, modality, last), frames.timestamps[-1]


@pytest.mark.parametrize(("modality", "seconds"), [("eeg", 10.7), ("ecg", 15.3), ("eye", 19.9)])
def test_predict_signal_equals_offline_path(http, bundle, direct, modality, seconds):
    """A raw synthetic signal gives the prediction of the offline features' last complete spaced window."""
    data, sfreq = _synthetic_signal(modality, seconds)
    channels = list(bundle.manifest.graph(modality).feature_spec.channels)
    window, _ = _offline_last_window(bundle, modality, data)
    expected = direct(modality, window)
    body = {"modality": modality, "signal": {"sfreq": sfreq, "channels": channels, "data": data.tolist()}}
    r = http.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    got = [r.json()["probabilities"][c] for c in bundle.manifest.class_names]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert r.json()["timing"]["features_ms"] > 0


def test_predict_signal_maps_channels_by_name_and_converts_units(http, bundle, direct):
    """Shuffled, lower-case, extra channels in mV give the same answer as spec-ordered channels in uV."""
    data, sfreq = _synthetic_signal("eeg", 10.0)
    channels = list(bundle.manifest.graph("eeg").feature_spec.channels)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(channels))
    shuffled = np.vstack([data[order] / 1000.0, rng.standard_normal((1, data.shape[1]))])
    names = [channels[i].lower() for i in order] + ["EXTRA"]
    body = {"sfreq": sfreq, "channels": names, "data": shuffled.tolist(), "unit": "mV"}
    r = http.post("/predict", json={"modality": "eeg", "signal": body})
    assert r.status_code == 200, r.text
    expected = direct("eeg", _offline_last_window(bundle, "eeg", data)[0])
    np.testing.assert_allclose(list(r.json()["probabilities"].values()), expected, rtol=1e-4, atol=1e-5)


def test_predict_signal_reports_window_end_on_given_timestamps(http, bundle):
    """With timestamps, lsl_time is the end of the last window's last vector on the request's clock."""
    data, sfreq = _synthetic_signal("ecg", 13.0)
    t0 = 1000.0
    timestamps = t0 + np.arange(data.shape[1]) / sfreq
    channels = list(bundle.manifest.graph("ecg").feature_spec.channels)
    body = {"sfreq": sfreq, "channels": channels, "data": data.tolist(), "timestamps": timestamps.tolist()}
    r = http.post("/predict", json={"modality": "ecg", "signal": body})
    _, end = _offline_last_window(bundle, "ecg", data)
    assert r.status_code == 200, r.text
    assert r.json()["lsl_time"] == pytest.approx(t0 + end, abs=1e-9)


def test_predict_signal_dejitters_timestamps_like_a_live_stream(http, bundle, direct):
    """Per-chunk jitter of ±1.5 ms (steps up to 1.8 sample periods at 256 Hz) is smoothed, not a gap."""
    data, sfreq = _synthetic_signal("ecg", 13.0)
    n = data.shape[1]
    jitter = np.repeat(np.random.default_rng(3).uniform(-1.5e-3, 1.5e-3, -(-n // 32)), 32)[:n]
    timestamps = 1000.0 + np.arange(n) / sfreq + jitter
    channels = list(bundle.manifest.graph("ecg").feature_spec.channels)
    body = {"sfreq": sfreq, "channels": channels, "data": data.tolist(), "timestamps": timestamps.tolist()}
    r = http.post("/predict", json={"modality": "ecg", "signal": body})
    assert r.status_code == 200, r.text
    expected = direct("ecg", _offline_last_window(bundle, "ecg", data)[0])
    np.testing.assert_allclose(list(r.json()["probabilities"].values()), expected, rtol=1e-4, atol=1e-5)


# -- the bad-input table -----------------------------------------------------------------------------

ECG_CH = ["ECG1", "ECG2"]
ECG_N = 3072  # 4 s window + 4 * 2 s spacing = 12 s at 256 Hz


def _ecg_signal(n=ECG_N, **overrides):
    rng = np.random.default_rng(0)
    sig = {"sfreq": 256.0, "channels": ECG_CH, "data": (0.1 * rng.standard_normal((2, n))).round(4).tolist()}
    sig.update(overrides)
    return {"modality": "ecg", "signal": sig}


def _features(t=5, d=10, value=1.0):
    return [[value] * d for _ in range(t)]


BAD_INPUTS = [
    (
        "unknown-modality",
        {"json": {"modality": "emg", "features": _features()}},
        422,
        "Model m2s-synthetic-demo:1 has no 'emg' modality; its modalities: ecg, eeg, eye.",
    ),
    (
        "unknown-model",
        {"json": {"modality": "ecg", "model": "nope", "features": _features()}},
        404,
        "Model 'nope' not found; models in the repository: 'm2s-synthetic-demo'.",
    ),
    (
        "unknown-version",
        {"json": {"modality": "ecg", "model": "m2s-synthetic-demo:9", "features": _features()}},
        404,
        "Model 'm2s-synthetic-demo' has no version 9; versions: 1.",
    ),
    (
        "bad-model-ref",
        {"json": {"modality": "ecg", "model": "../etc", "features": _features()}},
        422,
        "Invalid model reference '../etc'; use 'name' or 'name:<version>', e.g. 'm2s-synthetic-demo:1'.",
    ),
    (
        "features-wrong-shape",
        {"json": {"modality": "ecg", "features": _features(t=4)}},
        422,
        "features must be 5 x 10 for the 'ecg' model of m2s-synthetic-demo:1 (5 feature vectors of 10 values, "
        "oldest first), got 4 x 10.",
    ),
    (
        "features-ragged",
        {"json": {"modality": "ecg", "features": [*_features(t=4), [1.0] * 9]}},
        422,
        "features rows have different lengths (9 to 10 values); send a 5 x 10 array.",
    ),
    (
        "features-nan",
        {
            "content": '{"modality": "ecg", "features": [[NaN, 1, 1, 1, 1, 1, 1, 1, 1, Infinity]'
            + ", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]" * 4
            + "]}",
            "headers": {"content-type": "application/json"},
        },
        422,
        "features contain 2 NaN or infinite value(s); send finite numbers.",
    ),
    (
        "features-overflow",
        {"json": {"modality": "ecg", "features": _features(value=1e300)}},
        422,
        "features are too large: normalised values overflow float32; check their scale.",
    ),
    (
        "features-not-numbers",
        {"json": {"modality": "ecg", "features": [["x", 1.0], [2.0, "y"]]}},
        422,
        "Invalid request: features[0][0]: Input should be a valid number; features[1][1]: Input should be a valid "
        "number.",
    ),
    (
        "both-inputs",
        {"json": {**_ecg_signal(), "features": _features()}},
        422,
        "Invalid request: body: give exactly one of 'features' (T x D) or 'signal' (raw channels x samples).",
    ),
    (
        "no-input",
        {"json": {"modality": "ecg"}},
        422,
        "Invalid request: body: give exactly one of 'features' (T x D) or 'signal' (raw channels x samples).",
    ),
    (
        "no-modality",
        {"json": {"features": _features()}},
        422,
        "Invalid request: modality: Field required.",
    ),
    (
        "unknown-field",
        {"json": {"modality": "ecg", "features": _features(), "window": 1}},
        422,
        "Invalid request: window: Extra inputs are not permitted.",
    ),
    (
        "body-not-object",
        {"json": [1, 2]},
        422,
        "Invalid request: body: Input should be a valid dictionary or object to extract fields from.",
    ),
    (
        "malformed-json",
        {
            "content": '{"modality": "ecg", "features": [[1, 2]',
            "headers": {"content-type": "application/json"},
        },
        400,
        "Malformed JSON body: Expecting ',' delimiter at character 39; send one JSON object.",
    ),
    (
        "empty-body",
        {"content": "", "headers": {"content-type": "application/json"}},
        422,
        "Invalid request: body: Field required.",
    ),
    (
        "text-content-type",
        {"content": '{"modality": "ecg"}', "headers": {"content-type": "text/plain"}},
        415,
        UNSUPPORTED_MEDIA_TYPE,
    ),
    ("no-content-type", {"content": '{"modality": "ecg"}'}, 415, UNSUPPORTED_MEDIA_TYPE),
    (
        "form-content-type",
        {"data": {"modality": "ecg"}},
        415,
        UNSUPPORTED_MEDIA_TYPE,
    ),
    (
        "signal-wrong-sfreq",
        {"json": _ecg_signal(sfreq=250.0)},
        422,
        "signal.sfreq is 250 Hz but the 'ecg' model of m2s-synthetic-demo:1 needs 256 Hz; resample the signal.",
    ),
    (
        "signal-rows-vs-channels",
        {"json": _ecg_signal(channels=["ECG1", "ECG2", "ECG3"])},
        422,
        "signal.data has 2 row(s) but signal.channels names 3; send one row per channel (channels x samples).",
    ),
    (
        "signal-missing-channel",
        {"json": _ecg_signal(channels=["ECG1", "Fz"])},
        422,
        "signal: the stream lacks 1 channel(s) the model needs: ['ECG2']. The stream has ['ECG1', 'Fz']. "
        "Attach a stream with these channel labels (case is ignored) or a model trained on the stream's channels.",
    ),
    (
        "signal-ragged",
        {"json": _ecg_signal(data=[[0.0] * 3072, [0.0] * 3071])},
        422,
        "signal.data rows have different lengths (3071 to 3072 samples); every channel needs the same number "
        "of samples.",
    ),
    (
        "signal-too-short",
        {"json": _ecg_signal(n=ECG_N - 1)},
        422,
        "signal is too short: 3071 samples (11.9961 s) but the 'ecg' model of m2s-synthetic-demo:1 needs at "
        "least 3072 samples (12 s at 256 Hz): 5 feature vectors 2 s apart, each from a 4 s window.",
    ),
    (
        "signal-nan",
        {
            "content": json.dumps(
                _ecg_signal(data=[[float("nan")] + [0.0] * 3071, [0.0] * 3071 + [float("inf")]])
            ),
            "headers": {"content-type": "application/json"},
        },
        422,
        "signal.data contains 2 NaN or infinite sample(s) in the model's channels; send finite samples "
        "(mark gaps with timestamps instead).",
    ),
    (
        "signal-timestamps-length",
        {"json": _ecg_signal(timestamps=[0.0, 1.0])},
        422,
        "signal.timestamps has 2 value(s) but signal.data has 3072 samples per channel; send one timestamp "
        "per sample.",
    ),
    (
        "signal-timestamps-not-increasing",
        {"json": _ecg_signal(timestamps=[0.0] * ECG_N)},
        422,
        "signal.timestamps must be finite and strictly increasing (seconds).",
    ),
    (
        "signal-gap",
        {
            "json": _ecg_signal(
                timestamps=(np.arange(ECG_N) / 256 + 5.0 * (np.arange(ECG_N) >= 1500)).tolist()
            )
        },
        422,
        "signal has no gap-free stretch of 12 s with finite features for the 'ecg' model of m2s-synthetic-demo:1; "
        "check the timestamps for gaps and the channels for flat or missing data.",
    ),
    (
        "signal-bad-unit",
        {"json": _ecg_signal(unit="deg")},
        422,
        "signal: channel 'ECG1': cannot convert the stream's unit 'deg' to the model's unit 'mV': voltages convert between V, mV, "
        "uV/µV and nV (any common spelling); other units must match exactly. Send the signal in the model's unit.",
    ),
    (
        "signal-no-channels",
        {"json": _ecg_signal(channels=[])},
        422,
        "Invalid request: signal.channels: List should have at least 1 item after validation, not 0.",
    ),
    # Issue 18's outside probe: these answered 500 or were taken.
    (
        "features-empty",
        {"json": {"modality": "ecg", "features": []}},
        422,
        "Invalid request: features: List should have at least 1 item after validation, not 0.",
    ),
    (
        "features-empty-row",
        {"json": {"modality": "ecg", "features": [[]]}},
        422,
        "Invalid request: features[0]: List should have at least 1 item after validation, not 0.",
    ),
    (
        "features-boolean",
        {"json": {"modality": "ecg", "features": [[True] * 10] * 5}},
        422,
        "Invalid request: features[0][0]: Input should be a valid number; features[0][1]: Input should be a valid "
        "number; features[0][2]: Input should be a valid number; features[0][3]: Input should be a valid number; "
        "features[0][4]: Input should be a valid number; and 45 more.",
    ),
    (
        "signal-numeric-string",
        {"json": _ecg_signal(sfreq="256")},
        422,
        "Invalid request: signal.sfreq: Input should be a valid number.",
    ),
    (
        "model-empty",
        {"json": {"modality": "ecg", "model": "", "features": _features()}},
        422,
        "Invalid request: model: model is empty; give a value or leave it out.",
    ),
    (
        "model-version-4301-digits",
        {"json": {"modality": "ecg", "model": "m2s-synthetic-demo:" + "9" * 4301, "features": _features()}},
        422,
        "Invalid model reference 'm2s-synthetic-demo:" + "9" * 4301 + "'; use 'name' or 'name:<version>', "
        "e.g. 'm2s-synthetic-demo:1'.",
    ),
    (
        "signal-negative-sfreq",
        {"json": _ecg_signal(sfreq=-1)},
        422,
        "Invalid request: signal.sfreq: Input should be greater than 0.",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "code", "detail"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_gets_fixed_detail(http, kwargs, code, detail):
    """Each bad /predict input gets its status and exact, actionable detail."""
    r = http.post("/predict", **kwargs)
    assert (r.status_code, r.json()) == (code, {"detail": detail})


def test_server_survives_the_bad_inputs(http):
    """After the whole bad-input table the process still answers and predicts."""
    assert http.get("/v2/health/ready").status_code == 200
    assert http.post("/predict", json={"modality": "ecg", "features": _features()}).status_code == 200


def test_unexpected_error_is_generic_500_and_server_lives(serve, settings_factory):
    """An exception inside a route answers 500 with a generic detail; the next request is served."""
    app = create_app(settings_factory())
    calls = []

    def broken_engine():
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("boom: internal detail that must not leak")
        return app.state.engine

    app.dependency_overrides[get_engine] = broken_engine
    url = serve(app)
    r = httpx.post(f"{url}/predict", json={"modality": "ecg", "features": _features()})
    assert (r.status_code, r.json()) == (500, {"detail": INTERNAL_ERROR})
    assert httpx.post(f"{url}/predict", json={"modality": "ecg", "features": _features()}).status_code == 200


# -- auth and body limit ------------------------------------------------------------------------------

TOKEN = "s3cret-token"
SMALL_LIMIT = 4096
TOO_LARGE = (
    f"Request body too large: the limit is {SMALL_LIMIT} bytes (M2S_MAX_BODY_BYTES / --max-body-bytes); "
    "send a shorter signal or raise the limit."
)


@pytest.fixture(scope="module")
def secured_url(serve_module):
    """A second real app with a token and a 4 KiB body limit."""
    from service.config import Settings

    settings = Settings(providers=[CPU], api_token=TOKEN, max_body_bytes=SMALL_LIMIT, attach=[])
    return serve_module(create_app(settings))


AUTH_CASES = [
    ("no-header", {}, NOT_AUTHENTICATED, "Bearer"),
    ("wrong-token", {"authorization": "Bearer nope"}, INVALID_TOKEN, 'Bearer error="invalid_token"'),
    ("basic-scheme", {"authorization": f"Basic {TOKEN}"}, NOT_AUTHENTICATED, "Bearer"),
    ("scheme-only", {"authorization": "Bearer"}, NOT_AUTHENTICATED, "Bearer"),
]


@pytest.mark.parametrize("path", ["/v2/models", "/streams", "/metrics", "/v2/models/m2s-synthetic-demo"])
@pytest.mark.parametrize(
    ("headers", "detail", "challenge"), [c[1:] for c in AUTH_CASES], ids=[c[0] for c in AUTH_CASES]
)
def test_protected_routes_need_the_token(secured_url, path, headers, detail, challenge):
    """REST routes answer 401 with WWW-Authenticate and a fixed detail without the right bearer token."""
    r = httpx.get(secured_url + path, headers=headers)
    assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (401, {"detail": detail}, challenge)


def test_predict_needs_the_token(secured_url):
    """/predict without a token is refused before the body is looked at."""
    r = httpx.post(f"{secured_url}/predict", json={"modality": "ecg", "features": _features()})
    assert (r.status_code, r.json()) == (401, {"detail": NOT_AUTHENTICATED})


def test_repository_routes_need_the_token(secured_url):
    """The hot-reload routes are protected like the others; with the token, a load of an up-to-date model
    answers the loaded version and no switched stream."""
    for path in ("/v2/repository/index", "/v2/repository/models/m2s-synthetic-demo/load"):
        r = httpx.post(secured_url + path)
        assert (r.status_code, r.json()) == (401, {"detail": NOT_AUTHENTICATED})
    auth = {"authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{secured_url}/v2/repository/models/m2s-synthetic-demo/load", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "model": {"name": "m2s-synthetic-demo", "version": 1},
        "switched": [],
        "not_switched": {},
    }


def test_right_token_is_accepted_and_probes_need_none(secured_url):
    """The right token opens the API; health probes and the dashboard need none."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{secured_url}/predict", json={"modality": "ecg", "features": _features()}, headers=auth)
    assert r.status_code == 200
    assert httpx.get(f"{secured_url}/metrics", headers=auth).status_code == 200
    assert httpx.get(f"{secured_url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{secured_url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{secured_url}/").status_code == 200


def test_body_over_limit_with_content_length_is_413(secured_url):
    """A declared Content-Length over the limit is refused with 413 before the body is read."""
    body = json.dumps({"modality": "ecg", "features": _features(t=200, d=10)})
    assert len(body) > SMALL_LIMIT
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{secured_url}/predict", content=body, headers=headers)
    assert (r.status_code, r.json()) == (413, {"detail": TOO_LARGE})
    # Without the token the same request is refused first, as unauthenticated (nothing of it is read).
    r = httpx.post(f"{secured_url}/predict", content=body, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (401, {"detail": NOT_AUTHENTICATED})


def test_chunked_body_over_limit_is_413(secured_url):
    """A chunked body (no Content-Length) is counted as it arrives and refused once over the limit."""

    def chunks():
        yield b'{"modality": "ecg", "features": ['
        for _ in range(200):
            yield b"[1, 1, 1, 1, 1, 1, 1, 1, 1, 1],"
        yield b"[1]]}"

    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{secured_url}/predict", content=chunks(), headers=headers)
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert (r.status_code, r.json()) == (413, {"detail": TOO_LARGE})


def test_chunked_body_under_limit_is_served(secured_url, bundle, direct):
    """A small chunked body is reassembled and predicted like any other."""
    features = _raw_features(bundle, "ecg", np.random.default_rng(2))
    body = json.dumps({"modality": "ecg", "features": features.tolist()}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{secured_url}/predict", content=iter([body[:100], body[100:]]), headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        list(r.json()["probabilities"].values()),
        direct("ecg", _normalise(bundle, "ecg", features)),
        atol=1e-6,
    )


# -- health, models, streams, metrics, OpenAPI --------------------------------------------------------


def test_ready_reports_models_and_providers(http):
    """/v2/health/ready is 200 with the warmed-up default model and the provider of each modality."""
    r = http.get("/v2/health/ready")
    assert r.status_code == 200
    assert r.json() == {
        "ready": True,
        "models": [REF],
        "providers": {REF: {"eeg": CPU, "eye": CPU, "ecg": CPU}},
        "workers": [],  # the streams run in the API process (M2S_WORKERS=1)
        "degraded": None,
    }


def test_not_ready_before_startup(settings_factory):
    """Before the lifespan ran (no warm-up yet) ready is false with 503, live is true."""
    client = TestClient(create_app(settings_factory()))  # no `with`: the lifespan does not run
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (
        503,
        {"ready": False, "models": [], "providers": {}, "workers": [], "degraded": None},
    )
    assert client.get("/v2/health/live").json() == {"live": True}


def test_batching_settings_reach_the_engine(settings_factory):
    """M2S_BATCH_MAX_WAIT_S / M2S_BATCH_MAX_WINDOWS configure the engine the app builds."""
    app = create_app(settings_factory(batch_max_wait_s=0.003, batch_max_windows=32))
    with TestClient(app):
        engine = app.state.engine
        assert (engine.max_wait_s, engine.max_batch) == (0.003, 32)


def test_models_lists_the_repository(http):
    """/v2/models lists the demo model with its versions, loaded versions and modalities."""
    assert http.get("/v2/models").json() == {
        "data": [
            {
                "name": "m2s-synthetic-demo",
                "versions": [1],
                "loaded": [1],
                "modalities": ["ecg", "eeg", "eye"],
            }
        ],
        "count": 1,
    }


def test_model_metadata_matches_manifest(http, bundle):
    """/v2/models/{name} gives KServe-style inputs/outputs, classes, feature spec and provider per modality."""
    meta = http.get("/v2/models/m2s-synthetic-demo").json()
    assert meta == http.get("/v2/models/m2s-synthetic-demo/versions/1").json()
    assert (meta["name"], meta["version"], meta["versions"], meta["ready"]) == (
        "m2s-synthetic-demo",
        1,
        [1],
        True,
    )
    assert meta["class_names"] == ["negative", "neutral", "positive"]
    for modality, graph in bundle.manifest.graphs.items():
        m = meta["modalities"][modality]
        assert m["inputs"] == [
            {"name": "window", "datatype": "FP32", "shape": [-1, graph.seq_len, graph.dim]}
        ]
        assert m["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
        assert m["provider"] == CPU
        spec = graph.feature_spec
        assert (
            m["feature_spec"]["channels"] == list(spec.channels) and m["feature_spec"]["sfreq"] == spec.sfreq
        )
        assert m["feature_spec"]["min_signal_s"] == spec.window_s + (graph.seq_len - 1) * graph.spacing_s
    assert meta["modalities"]["ecg"]["feature_spec"]["min_signal_s"] == 12.0


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v2/models/nope", "Model 'nope' not found; models in the repository: 'm2s-synthetic-demo'."),
        (
            "/v2/models/m2s-synthetic-demo/versions/7",
            "Model 'm2s-synthetic-demo' has no version 7; versions: 1.",
        ),
        ("/v2/models/.hidden", "Model '.hidden' not found; models in the repository: 'm2s-synthetic-demo'."),
    ],
)
def test_unknown_model_metadata_is_404(http, path, detail):
    """Unknown model names and versions are 404 naming what exists."""
    r = http.get(path)
    assert (r.status_code, r.json()) == (404, {"detail": detail})


def test_streams_attach_list_detach(http):
    """POST /streams attaches (201, not yet connected), GET lists it, DELETE detaches it (204, then 404)."""
    assert http.get("/streams").json() == {"data": [], "count": 0}
    r = http.post("/streams", json={"modality": "ecg", "source_id": "m2s-test-no-such-outlet"})
    assert r.status_code == 201, r.text
    stream = r.json()
    assert stream["modality"] == "ecg" and stream["model"] == {"name": "m2s-synthetic-demo", "version": 1}
    assert stream["selector"]["source_id"] == "m2s-test-no-such-outlet" and stream["connected"] is False
    listed = http.get("/streams").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == stream["id"]
    assert http.get(f"/streams/{stream['id']}").json()["id"] == stream["id"]
    assert http.delete(f"/streams/{stream['id']}").status_code == 204
    r = http.delete(f"/streams/{stream['id']}")
    assert (r.status_code, r.json()) == (
        404,
        {"detail": f"Stream '{stream['id']}' not found; attached streams: none."},
    )


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (
            {"modality": "emg", "type": "EMG"},
            422,
            "Model m2s-synthetic-demo:1 has no 'emg' modality; its modalities: ecg, eeg, eye.",
        ),
        (
            {"modality": "eeg", "type": "EEG", "model": "nope:1"},
            404,
            "Model 'nope' not found; models in the repository: 'm2s-synthetic-demo'.",
        ),
        (
            {"modality": "eeg"},
            422,
            "Invalid request: body: the 'eeg' stream needs at least one of type, name, source_id to pick the LSL "
            "stream, e.g. type='EEG' or source_id='my-amp-1234'.",
        ),
    ],
)
def test_bad_stream_attach(http, body, code, detail):
    """Bad attach requests get a fixed detail and attach nothing."""
    r = http.post("/streams", json=body)
    assert (r.status_code, r.json()) == (code, {"detail": detail})
    assert http.get("/streams").json()["count"] == 0


def test_stream_model_switch_answers(http):
    """PATCH /streams/{id} swaps the model of an attached stream (200 with the stream); bad requests get a
    fixed detail and leave the stream as it was. (The live swap itself: tests/service/test_streams.py.)"""
    sid = http.post("/streams", json={"modality": "ecg", "source_id": "m2s-test-no-such-outlet"}).json()["id"]
    try:
        r = http.patch(f"/streams/{sid}", json={"model": "m2s-synthetic-demo"})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == sid and r.json()["model"] == {"name": "m2s-synthetic-demo", "version": 1}
        for body, code, detail in (
            (
                {"model": "nope:1"},
                404,
                "Model 'nope' not found; models in the repository: 'm2s-synthetic-demo'.",
            ),
            (
                {"model": "m2s-synthetic-demo:7"},
                404,
                "Model 'm2s-synthetic-demo' has no version 7; versions: 1.",
            ),
            (
                {"model": "bad ref:x"},
                422,
                "Invalid model reference 'bad ref:x'; use 'name' or 'name:<version>', e.g. 'm2s-synthetic-demo:1'.",
            ),
            ({}, 422, "Invalid request: model: Field required."),
            ({"model": ""}, 422, "Invalid request: model: String should have at least 1 character."),
            (
                {"model": "m2s-synthetic-demo", "modality": "eeg"},
                422,
                "Invalid request: modality: Extra inputs are not permitted.",
            ),
        ):
            r = http.patch(f"/streams/{sid}", json=body)
            assert (r.status_code, r.json()) == (code, {"detail": detail}), body
        r = http.patch("/streams/not-a-stream", json={"model": "m2s-synthetic-demo"})
        assert (r.status_code, r.json()["detail"]) == (
            404,
            f"Stream 'not-a-stream' not found; attached streams: {sid}.",
        )
        assert http.get(f"/streams/{sid}").json()["model"] == {"name": "m2s-synthetic-demo", "version": 1}
    finally:
        http.delete(f"/streams/{sid}")


def test_metrics_count_requests_by_route_template(http):
    """/metrics counts requests by route template and status, and observes inference latency."""
    http.post("/predict", json={"modality": "ecg", "features": _features()})
    http.get("/streams/not-a-stream")
    text = http.get("/metrics").text
    assert 'm2s_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'm2s_http_requests_total{method="GET",route="/streams/{stream_id}",status="404"}' in text
    count = [line for line in text.splitlines() if line.startswith("m2s_inference_duration_seconds_count")]
    assert count and float(count[0].split()[-1]) >= 1
    assert (
        'm2s_execution_provider_info{modality="eeg",model="m2s-synthetic-demo:1",provider="CPUExecutionProvider"} 1.0'
        in text
    )


EXPECTED_OPERATIONS = {
    ("post", "/predict"): "predict-predict",
    ("get", "/v2/health/live"): "health-live",
    ("get", "/v2/health/ready"): "health-ready",
    ("get", "/v2/models"): "models-list_models",
    ("get", "/v2/models/{name}"): "models-model_metadata",
    ("get", "/v2/models/{name}/versions/{version}"): "models-model_version_metadata",
    ("get", "/v2/models/{name}/ready"): "models-model_ready",
    ("get", "/v2/models/{name}/versions/{version}/ready"): "models-model_version_ready",
    ("post", "/v2/models/{name}/infer"): "inference-infer",
    ("post", "/v2/models/{name}/versions/{version}/infer"): "inference-infer_version",
    ("post", "/v2/repository/index"): "repository-repository_index",
    ("post", "/v2/repository/models/{name}/load"): "repository-load_model",
    ("get", "/streams"): "streams-list_streams",
    ("post", "/streams"): "streams-attach_stream",
    ("get", "/streams/{stream_id}"): "streams-get_stream",
    ("patch", "/streams/{stream_id}"): "streams-update_stream",
    ("delete", "/streams/{stream_id}"): "streams-detach_stream",
    ("get", "/calibrations"): "calibrations-list_calibrations",
    ("post", "/calibrations"): "calibrations-create_calibration",
    ("get", "/calibrations/{calibration_id}"): "calibrations-get_calibration",
    ("delete", "/calibrations/{calibration_id}"): "calibrations-delete_calibration",
    ("post", "/calibrations/{calibration_id}/label"): "calibrations-label_calibration",
    ("post", "/calibrations/{calibration_id}/fit"): "calibrations-fit_calibration",
    ("get", "/recordings"): "recordings-list_recordings",
    ("post", "/recordings"): "recordings-create_recording",
    ("get", "/recordings/{recording_id}"): "recordings-get_recording",
    ("delete", "/recordings/{recording_id}"): "recordings-close_recording",
    ("get", "/metrics"): "metrics-metrics",
}


def test_openapi_has_stable_operation_ids_and_schemas(http):
    """/openapi.json names every operation <tag>-<function> and documents its JSON answers; /docs serves."""
    spec = http.get("/openapi.json").json()
    ops = {(m, p): op for p, item in spec["paths"].items() for m, op in item.items()}
    assert {k: op["operationId"] for k, op in ops.items()} == EXPECTED_OPERATIONS
    answer = ops[("post", "/predict")]["responses"]
    assert answer["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EmotionState"
    }
    assert answer["415"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorPublic"
    }
    # No token configured here: no security scheme (with one, every route but the probes declares bearer:
    # test_openapi.py).
    assert "securitySchemes" not in spec["components"]
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_dashboard_is_served_at_root(http):
    """GET / serves the dashboard's index.html."""
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "M2S-live" in r.text


# -- no torch -----------------------------------------------------------------------------------------


def test_service_never_imports_torch():
    """The app starts and predicts in a process where importing torch fails."""
    code = textwrap.dedent(
        """
        import sys
        class RefuseTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is refused in this test")
                return None
        sys.meta_path.insert(0, RefuseTorch())
        from fastapi.testclient import TestClient
        import service.cli
        from service.app import create_app
        from service.config import Settings
        with TestClient(create_app(Settings(providers=["CPUExecutionProvider"], api_token=None))) as c:
            r = c.post("/predict", json={"modality": "ecg", "features": [[1.0] * 10] * 5})
            assert r.status_code == 200, r.text
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2S_")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
