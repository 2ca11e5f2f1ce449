"""POST /v2/models/{name}[/versions/{v}]/infer (service/api/routes/infer.py) called by tritonclient's HTTP client,
a KServe v2 client nobody here wrote, against the real app under uvicorn: its answers equal /predict's for the same
windows; bad requests get the protocol's error shape with the exact sentences (httpx where tritonclient cannot send
the bad request)."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from models.repository import DEFAULT_REPOSITORY, DEMO_BUNDLE
from service.app import create_app
from signals.normalisation import Normalisation
from signals.spec import PpsSpec
from tests.bundles import write_linear_bundle
from tests.service.conftest import make_settings, run_server

ONE = "one-pps"  # a bundle with one modality (versions 1 and 2), beside the demo bundle (ecg, eeg, eye)
EEG, ECG = (5, 310), (5, 10)  # T, D of the demo's EEG and ECG graphs
MAX_BATCH = 8  # M2S_BATCH_MAX_WINDOWS of the test server


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("repository")
    shutil.copytree(DEFAULT_REPOSITORY / DEMO_BUNDLE, root / DEMO_BUNDLE)
    spec = PpsSpec(sfreq=128, channels=("GSR",))
    norm = Normalisation(mean=tuple(np.linspace(-1, 1, spec.n_features)), std=(2.0,) * spec.n_features)
    for version in (1, 2):
        write_linear_bundle(
            root, ONE, {"pps": (spec, 3, 1.0, norm)}, ("low", "high"), version=version, seed=version
        )
    settings = make_settings(model_repository=root, batch_max_windows=MAX_BATCH)
    with run_server(create_app(settings)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with triton.InferenceServerClient(url.removeprefix("http://")) as c:
        yield c


def _windows(shape, seed=0) -> np.ndarray:
    """Raw (not normalised) float32 feature windows around the features' usual scale."""
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def _infer(client, model, x, *, binary=True, version="", **kw):
    window = triton.InferInput("window", list(x.shape), "FP32")
    window.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("probabilities", binary_data=binary)
    return client.infer(model, [window], model_version=version, outputs=[out], **kw)


def _predict(url, model, modality, x) -> np.ndarray:
    """/predict's probabilities of each window of x, in class order."""
    rows = []
    for window in x:
        r = httpx.post(
            f"{url}/predict", json={"model": model, "modality": modality, "features": window.tolist()}
        )
        assert r.status_code == 200, r.text
        rows.append(list(r.json()["probabilities"].values()))
    return np.asarray(rows, dtype=np.float32)


def test_ready_and_metadata(client):
    """is_model_ready and get_model_metadata: the loaded demo is ready, the metadata gives the input's T x D and the
    class names; a version not loaded yet is not ready."""
    assert client.is_model_ready(DEMO_BUNDLE) and client.is_model_ready(DEMO_BUNDLE, "1")
    assert not client.is_model_ready(ONE, "1")
    meta = client.get_model_metadata(DEMO_BUNDLE)
    assert meta["class_names"] == ["negative", "neutral", "positive"]
    assert list(meta["modalities"]) == ["ecg", "eeg", "eye"]
    assert meta["modalities"]["eeg"]["inputs"] == [
        {"name": "window", "datatype": "FP32", "shape": [-1, *EEG]}
    ]
    assert meta["modalities"]["eeg"]["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("modality", ["eeg", "ecg"])
def test_multi_modality_bundle_equals_predict(client, url, binary, modality):
    """The demo (three modalities), modality as a request parameter, versioned and not, binary tensors and JSON:
    the probabilities /predict gives each window, exactly; id, model name and version echoed."""
    x = _windows((4, *(EEG if modality == "eeg" else ECG)))
    expected = _predict(url, DEMO_BUNDLE, modality, x)
    for version in ("", "1"):
        result = _infer(client, DEMO_BUNDLE, x, binary=binary, version=version, request_id="r-7",
                        parameters={"modality": modality})  # fmt: skip
        np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
        answer = result.get_response()
        assert (answer["id"], answer["model_name"], answer["model_version"]) == ("r-7", DEMO_BUNDLE, "1")
        assert answer["parameters"] == {"modality": modality}
        assert answer["outputs"][0]["shape"] == [4, 3] and answer["outputs"][0]["datatype"] == "FP32"


def test_multi_modality_bundle_defaults_to_its_first_modality(client, url):
    """Without the parameter the demo runs its manifest's first graph, EEG, and the answer says so."""
    x = _windows((2, *EEG), seed=2)
    result = _infer(client, DEMO_BUNDLE, x)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), _predict(url, DEMO_BUNDLE, "eeg", x))
    assert result.get_response()["parameters"] == {"modality": "eeg"}


def test_single_modality_bundle_needs_no_modality(client, url):
    """A bundle with one modality runs it without the parameter; each version is its own model (loaded on demand,
    as /predict loads it), and the unversioned route runs the latest."""
    x = _windows((3, 3, 6), seed=1)  # T = 3, D = 6 PPS features
    for version in ("1", "2"):
        got = _infer(client, ONE, x, version=version).as_numpy("probabilities")
        np.testing.assert_array_equal(got, _predict(url, f"{ONE}:{version}", "pps", x))
    latest = _infer(client, ONE, x).as_numpy("probabilities")
    np.testing.assert_array_equal(latest, _predict(url, f"{ONE}:2", "pps", x))
    assert not np.array_equal(latest, _infer(client, ONE, x, version="1").as_numpy("probabilities"))


def test_nested_data_and_default_outputs(url):
    """The protocol's nested form of the data gives the flat form's answer; without "outputs", probabilities come
    back (as JSON: binary only when asked for)."""
    x = _windows((2, *EEG), seed=2)
    flat = {"inputs": [{"name": "window", "shape": [2, *EEG], "datatype": "FP32", "data": x.ravel().tolist()}],
            "parameters": {"modality": "eeg"}}  # fmt: skip
    nested = json.loads(json.dumps(flat))
    nested["inputs"][0]["data"] = x.tolist()
    answers = [httpx.post(f"{url}/v2/models/{DEMO_BUNDLE}/infer", json=body) for body in (flat, nested)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert "id" not in answers[0].json()
    got = np.asarray(answers[0].json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(got, _predict(url, DEMO_BUNDLE, "eeg", x))


def _error(client_call) -> str:
    with pytest.raises(InferenceServerException) as info:
        client_call()
    return info.value.message()


def test_errors_through_tritonclient(client):
    """What tritonclient users get wrong, answered in the protocol's shape: tritonclient raises the sentence."""
    x = _windows((2, *EEG))
    assert _error(lambda: _infer(client, DEMO_BUNDLE, x, parameters={"modality": "emg"})) == (
        f"Model {DEMO_BUNDLE}:1 has no 'emg' modality; its modalities: ecg, eeg, eye."
    )
    assert _error(lambda: _infer(client, DEMO_BUNDLE, x, parameters={"modality": "eye"})) == (
        f"Input 'window' must have shape [batch, 5, 33] (batch >= 1) for the 'eye' model of {DEMO_BUNDLE}:1, "
        "got [2, 5, 310]."
    )
    assert _error(lambda: _infer(client, "no-such-model", x)) == (
        f"Model 'no-such-model' not found; models in the repository: '{DEMO_BUNDLE}', '{ONE}'."
    )
    assert _error(lambda: _infer(client, DEMO_BUNDLE, x, version="9", parameters={"modality": "eeg"})) == (
        f"Model '{DEMO_BUNDLE}' has no version 9; versions: 1."
    )
    big = _windows((MAX_BATCH + 1, *EEG))
    assert _error(lambda: _infer(client, DEMO_BUNDLE, big, parameters={"modality": "eeg"})) == (
        f"Input 'window' has a batch of {MAX_BATCH + 1} windows; at most {MAX_BATCH} per request "
        "(M2S_BATCH_MAX_WINDOWS): split it into several requests."
    )
    bad = x.copy()
    bad[0, 0, :3] = np.nan
    assert _error(lambda: _infer(client, DEMO_BUNDLE, bad, parameters={"modality": "eeg"})) == (
        "Input 'window' values contain 3 NaN or infinite value(s); send finite numbers."
    )
    wrong_type = triton.InferInput("window", [2, *EEG], "FP64")
    wrong_type.set_data_from_numpy(x.astype(np.float64))
    call = lambda: client.infer(DEMO_BUNDLE, [wrong_type], parameters={"modality": "eeg"})  # noqa: E731
    assert _error(call) == "Input 'window' must be FP32, got 'FP64'; send float32 values."
    wrong_name = triton.InferInput("features", [2, *EEG], "FP32")
    wrong_name.set_data_from_numpy(x)
    call = lambda: client.infer(DEMO_BUNDLE, [wrong_name], parameters={"modality": "eeg"})  # noqa: E731
    assert _error(call) == (
        f"the 'eeg' model of {DEMO_BUNDLE}:1 takes one input, 'window' (FP32, shape [batch, 5, 310]); got 'features'."
    )
    window = triton.InferInput("window", [2, *EEG], "FP32")
    window.set_data_from_numpy(x)
    call = lambda: client.infer(  # noqa: E731
        DEMO_BUNDLE, [window], outputs=[triton.InferRequestedOutput("label")], parameters={"modality": "eeg"}
    )
    assert _error(call) == "Unknown output(s) 'label'; the model has one output, 'probabilities'."


def _post(url, body, **kw) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/models/{DEMO_BUNDLE}/infer", **({"json": body} if body is not None else {}), **kw
    )


def _request(data, shape=(1, *EEG), **input_fields):
    tensor = {"name": "window", "shape": list(shape), "datatype": "FP32", "data": data, **input_fields}
    return {"inputs": [tensor], "parameters": {"modality": "eeg"}}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (_request([0.5] * 1549), 422, "Input 'window' has 1549 values but shape [1, 5, 310] needs 1550; send a flat "
         "row-major list of 1550 numbers, or nested [1, 5, 310] lists of numbers."),
        (_request(["0.5"] * 1550), 422, "Input 'window' data must be a flat row-major list of 1550 numbers, or "
         "nested [1, 5, 310] lists of numbers."),
        (_request([True] * 1550), 422, "Input 'window' data must be a flat row-major list of 1550 numbers, or "
         "nested [1, 5, 310] lists of numbers."),
        (_request([[[0.5] * 310] * 4]), 422, "Input 'window' data must be a flat row-major list of 1550 numbers, "
         "or nested [1, 5, 310] lists of numbers."),
        (_request(None), 422, "Input 'window' has no data: send \"data\" (a flat row-major list of 1550 numbers, or "
         'nested [1, 5, 310] lists), or "binary_data_size" with the tensor after the JSON '
         "(Inference-Header-Content-Length)."),
        (_request([0.5] * 1550, shape=(0, *EEG)), 422, "Input 'window' must have shape [batch, 5, 310] (batch >= 1) "
         f"for the 'eeg' model of {DEMO_BUNDLE}:1, got [0, 5, 310]."),
        (_request([1e39] * 1550), 422, "Input 'window' values are too large: normalised values overflow float32; "
         "check their scale."),
        ({"inputs": []}, 422, "Invalid request: inputs: List should have at least 1 item after validation, not 0."),
        (_request([0.5] * 1550) | {"parameters": {"modality": 3}}, 422,
         'The parameter "modality" must be a string, one of ecg, eeg, eye; got 3.'),
    ],
    ids=["count", "strings", "booleans", "ragged", "no-data", "empty-batch", "overflow", "no-inputs", "modality-int"],
)  # fmt: skip
def test_bad_json_requests(url, body, code, message):
    """Requests tritonclient would not send: exact sentences under "error" (and "detail")."""
    r = _post(url, body)
    assert (r.status_code, r.json()) == (code, {"error": message, "detail": message})


def test_bad_bodies_and_binary_framing(url):
    """Malformed JSON is a 400; so is binary framing that does not add up (header past the body, bytes left
    over, a tensor of the wrong size)."""
    r = _post(url, None, content=b"{")
    assert r.status_code == 400 and r.json()["error"] == (
        "Malformed JSON body: EOF while parsing an object at line 1 column 1; send one JSON inference request object."
    )
    header = json.dumps(_request(None, parameters={"binary_data_size": 6200})).encode()
    tensor = _windows((1, *EEG)).tobytes()
    r = _post(
        url,
        None,
        content=header + tensor,
        headers={"Inference-Header-Content-Length": str(len(header) + 9999)},
    )
    assert (r.status_code, r.json()["error"]) == (400, (
        f"Inference-Header-Content-Length is {len(header) + 9999} but the body has {len(header) + 6200} bytes; give "
        "the length of the JSON at the start of the body."))  # fmt: skip
    r = _post(
        url, None, content=header + tensor[:-4], headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert (r.status_code, r.json()["error"]) == (400, (
        "The body has 6196 bytes after the JSON (Inference-Header-Content-Length) but binary_data_size is 6200; "
        "send the JSON's length in Inference-Header-Content-Length and the tensor's bytes after it."))  # fmt: skip
    header = json.dumps(_request(None, parameters={"binary_data_size": 6196})).encode()
    r = _post(
        url, None, content=header + tensor[:-4], headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert (r.status_code, r.json()["error"]) == (422, (
        "Input 'window' binary_data_size is 6196 but shape [1, 5, 310] of FP32 takes 6200 bytes."))  # fmt: skip
    header = json.dumps(_request([0.5] * 1550)).encode()
    r = _post(
        url, None, content=header + b"\0" * 8, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert (r.status_code, r.json()["error"]) == (400, (
        "The body has 8 bytes after the JSON (Inference-Header-Content-Length) but no input has "
        '"binary_data_size"; give each binary input its size in bytes.'))  # fmt: skip
