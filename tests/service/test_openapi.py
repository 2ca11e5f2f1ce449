"""The OpenAPI schema tells the truth (service/api/openapi.py) and a wrong method gets 405 with the path's every
method in Allow (service/api/methods.py): checked on two real apps under uvicorn, without and with a token.
(test_openapi_fuzz.py fuzzes every operation against this schema.)"""

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.deps import NOT_AUTHENTICATED, NOT_READY
from service.app import create_app
from tests.service.conftest import make_settings

TOKEN = "openapi-token"
ERROR = {"$ref": "#/components/schemas/ErrorPublic"}
INFERENCE_ERROR = {"$ref": "#/components/schemas/InferenceErrorPublic"}
#: The Open Inference Protocol's inference (service/api/routes/infer.py): its own errors (404, 422, 503) are
#: InferenceErrorPublic ({"error", "detail"}); no 415 (tritonclient sends no Content-Type; binary bodies too).
INFERENCE = {("post", "/v2/models/{name}/infer"), ("post", "/v2/models/{name}/versions/{version}/infer")}
#: Readiness probes whose 503 is their own body (HealthReady, ModelReady), not an error.
READY = {
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
}
PUBLIC = {("get", "/v2/health/live"), ("get", "/v2/health/ready")}  # the probes: no token, ever
#: Where FastAPI's own validation can fail (a body, or a non-string parameter) or the route refuses a request as
#: invalid itself: every other operation answers no 422.
WITH_422 = {
    ("post", "/predict"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    *INFERENCE,
    ("post", "/v2/repository/index"),
    ("post", "/v2/repository/models/{name}/load"),
    ("post", "/streams"),
    ("patch", "/streams/{stream_id}"),
    ("post", "/calibrations"),
    ("post", "/calibrations/{calibration_id}/label"),
    ("post", "/calibrations/{calibration_id}/fit"),
    ("post", "/recordings"),
}
#: Operations that need a resource the lifespan creates, and answer 503 before it exists.
WITHOUT_503 = {("get", "/metrics"), ("get", "/v2/health/live")}  # READY's 503 is their own body
OTHER_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE")


@pytest.fixture(scope="module")
def spec(http):
    """The schema served by the app without a token."""
    return http.get("/openapi.json").json()


@pytest.fixture(scope="module")
def token_url(serve_module):
    return serve_module(create_app(make_settings(api_token=TOKEN)))


@pytest.fixture(scope="module")
def token_spec(token_url):
    """The schema served by the app with a token (itself public, like /docs)."""
    r = httpx.get(f"{token_url}/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(schema):
    return {(m, p): op for p, item in schema["paths"].items() for m, op in item.items()}


def _concrete(path: str) -> str:
    """A request path for a template (an integer where a version goes)."""
    return (
        path.replace("{version}", "1")
        .replace("{name}", "m2s-synthetic-demo")
        .replace("{", "x-")
        .replace("}", "")
    )


@pytest.mark.parametrize("which", ["spec", "token_spec"])
def test_every_error_body_is_error_public(request, which):
    """Every documented 4xx/5xx body is ErrorPublic ({"detail": "<sentence>"}), as the app answers (the inference
    routes' own errors: InferenceErrorPublic, which adds "error"); FastAPI's HTTPValidationError (a list of
    pydantic errors) is nowhere, not even as a component."""
    schema = request.getfixturevalue(which)
    for key, op in _operations(schema).items():
        for code, answer in op["responses"].items():
            if int(code) < 400 or (key in READY and code == "503"):
                continue
            own = key in INFERENCE and code in ("404", "422", "503")
            assert answer["content"] == {"application/json": {"schema": INFERENCE_ERROR if own else ERROR}}, (
                key,
                code,
            )
    assert schema["components"]["schemas"]["InferenceErrorPublic"]["required"] == ["detail", "error"]
    assert "ValidationError" not in str(schema)
    assert not {"HTTPValidationError", "ValidationError"} & set(schema["components"]["schemas"])


def test_422_only_where_a_request_can_be_invalid(spec):
    """422 is documented where validation can fail (a path parameter typed str never fails); on every operation
    taking a body: 400 (malformed JSON), 408 (body too slow), 413 (too large), 415 (not JSON), 422 and 429 (too
    many body bytes in flight, with Retry-After)."""
    ops = _operations(spec)
    assert {k for k, op in ops.items() if "422" in op["responses"]} == WITH_422
    for key, op in ops.items():
        if "requestBody" in op:
            media = {"400", "408", "413", "422", "429"} if key in INFERENCE else {"415"}
            assert {"400", "408", "413", "422", "429"} | media <= set(op["responses"]), key
            assert op["responses"]["429"]["headers"]["Retry-After"]["required"] is True


def test_503_where_the_service_may_not_be_ready(spec):
    """Operations needing the engine, stream manager, calibrations, recordings or poller document 503, and answer
    it (ErrorPublic) before the lifespan created them."""
    ops = _operations(spec)
    assert {k for k, op in ops.items() if "503" not in op["responses"]} == WITHOUT_503
    client = TestClient(create_app(make_settings()))  # not entered: the lifespan never runs
    for (method, path), op in ops.items():
        if (method, path) in WITHOUT_503:
            continue
        body = {"json": {}} if "requestBody" in op else {}
        r = client.request(method, _concrete(path), **body)
        if (method, path) in READY:
            assert r.status_code == 503 and r.json()["ready"] is False, (method, path)
        elif (method, path) in INFERENCE:
            assert (r.status_code, r.json()) == (503, {"detail": NOT_READY, "error": NOT_READY}), (
                method,
                path,
            )
        else:
            assert (r.status_code, r.json()) == (503, {"detail": NOT_READY}), (method, path)


def test_without_token_no_operation_declares_auth(spec):
    """No token configured: no security scheme, no security requirement, no 401 anywhere."""
    assert "securitySchemes" not in spec["components"]
    for key, op in _operations(spec).items():
        assert "security" not in op and "401" not in op["responses"], key


def test_with_token_every_operation_but_the_probes_declares_bearer(token_spec, token_url):
    """Token configured: bearer auth and a 401 (with its WWW-Authenticate challenge) on every operation but the
    health probes, which declare none and need none."""
    assert token_spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The service's API token (M2S_API_TOKEN), if one is set.",
    }
    ops = _operations(token_spec)
    assert {k for k, op in ops.items() if "security" not in op} == PUBLIC
    for key, op in ops.items():
        if key in PUBLIC:
            assert "401" not in op["responses"]
            assert httpx.request(key[0], token_url + key[1]).status_code == 200
            continue
        assert op["security"] == [{"HTTPBearer": []}], key
        assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
        if "requestBody" not in op:  # bodies: test_openapi_fuzz.py sends every kind, and wants 401 for each
            r = httpx.request(key[0], token_url + _concrete(key[1]))
            assert (r.status_code, r.json()) == (401, {"detail": NOT_AUTHENTICATED}), key
            assert r.headers["www-authenticate"] == "Bearer"


def test_a_422_answer_is_what_the_schema_says(http, spec):
    """The 422 of a parameter that fails validation, and the 400 of malformed JSON, are ErrorPublic bodies."""
    op = spec["paths"]["/v2/models/{name}/versions/{version}"]["get"]
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == ERROR
    r = http.get("/v2/models/m2s-synthetic-demo/versions/latest")
    assert r.status_code == 422 and set(r.json()) == {"detail"} and "version" in r.json()["detail"]
    r = http.post("/predict", content=b"{", headers={"content-type": "application/json"})
    assert (
        r.status_code == 400
        and set(r.json()) == {"detail"}
        and r.json()["detail"].startswith("Malformed JSON")
    )


@pytest.mark.parametrize("which", ["no-token", "token"])
def test_405_lists_every_method_of_the_path(request, spec, which):
    """Every path of the schema, every other method: 405, Allow = exactly the path's methods in the schema (not
    only the first route's), ErrorPublic body. (With a token configured the token is sent: a request without it
    is refused first, 401, by the auth middleware.)"""
    url = (
        request.getfixturevalue("server_url") if which == "no-token" else request.getfixturevalue("token_url")
    )
    headers = {} if which == "no-token" else {"authorization": f"Bearer {TOKEN}"}
    for path, item in spec["paths"].items():
        methods = {m.upper() for m in item}
        for method in sorted(set(OTHER_METHODS) - methods):
            r = httpx.request(method, url + _concrete(path), headers=headers)
            assert r.status_code == 405, (method, path, r.status_code)
            assert {m.strip() for m in r.headers["allow"].split(",")} == methods, (method, path)
            assert r.json() == {
                "detail": f"Method {method} is not allowed on {path}; allowed: {r.headers['allow']}."
            }


def test_options_on_a_stream_lists_get_patch_delete(http):
    """The probe's case: three routes share /streams/{stream_id}; Starlette's 405 named only the first's methods."""
    r = http.options("/streams/anything")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, PATCH, DELETE")
    r = http.get("/predict")  # was the dashboard mount's 404
    assert (r.status_code, r.headers["allow"]) == (405, "POST")


def test_405_is_counted_under_the_route_template(http):
    """The 405s answered before routing are labelled by the path's route template in the request metrics."""
    http.put("/streams/some-stream")
    text = http.get("/metrics").text
    assert 'm2s_http_requests_total{method="PUT",route="/streams/{stream_id}",status="405"}' in text


def test_dashboard_keeps_its_own_answers(http):
    """Paths only the dashboard mount serves are left to it (GET 200, other methods StaticFiles' 405)."""
    assert http.get("/").status_code == 200
    r = http.post("/")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
    assert http.get("/no-such-file.js").status_code == 404
