"""Schemathesis over the live app's own OpenAPI schema, every operation, twice: without a token, and with a
token configured but never sent (every operation but the public health probes must then answer 401, whatever
the body). Fails on any 5xx, any response that does not match the schema (status code, content type, body,
headers), any schema-invalid request that is accepted, and any wrong answer to an undocumented method (405
with the path's methods in ``Allow``).

The app is the REAL one under uvicorn on loopback (``run_server``), not schemathesis' ASGI transport: the
fuzzed requests then go through the HTTP server's own parsing (Content-Length, chunking, header bytes),
which the ASGI transport would skip. Both runs together (two server starts, ~2,700 requests) take ~20 s
on 2 cores, so the test is not marked slow.

Bounded and reproducible: a fixed seed, deterministic generation (no example database), a small example
budget per operation; the examples, coverage and fuzzing phases. Left out, with the reason:

- the stateful phase (chains of requests through response links): the service has no link-declared
  workflows worth its minutes here; create/get/delete chains are covered by test_app.py and the API tests.
- the ``positive_data_acceptance`` check: a request that is valid by the schema may rightly be refused,
  e.g. a features window whose shape is not the model's (the schema cannot know the model's T x D) -> 422,
  or an unknown stream id -> 404; every such answer must still be documented (``status_code_conformance``).
- outside OpenAPI, so not fuzzed here: the WebSocket ``/ws`` (test_ws.py), ``/metrics``' text body is
  fuzzed only as an operation (its content is Prometheus text, checked in test_metrics.py), the dashboard's
  static files at ``/`` (test_dashboard.py), FastAPI's ``/openapi.json``, ``/docs``, ``/redoc``.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis

from service.api.deps import NOT_AUTHENTICATED
from service.app import create_app
from tests.service.conftest import make_settings, run_server

TOKEN = "fuzz-token"
SEED = 18
MAX_EXAMPLES = 50  # per operation and phase (fuzzing); the coverage phase's cases are enumerated, not drawn

#: schemathesis' own configuration (what a schemathesis.toml would say), so no file on disk can change the run.
CONFIG = {
    "seed": SEED,
    "request-timeout": 30,
    "generation": {
        "mode": "all",  # valid and invalid requests
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,  # derandomized: same seed, same requests
        "database": "none",  # no replay of earlier runs' failures: every run is the same run
        # Never generate an Authorization header: the token run is "configured but not sent".
        "with-security-parameters": False,
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "checks": {
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
        "missing_required_header": {"enabled": True},
        "unsupported_method": {"enabled": True},
        "allow_header_conformance": {"enabled": True},
        "ignored_auth": {"enabled": True},
        "positive_data_acceptance": {"enabled": False},
    },
}


# The apps are built at import (cheap: the model is loaded when a server starts them), so that their schemas can
# parametrize the tests; each is then served under uvicorn by a module fixture, which first checks that the
# schema it serves at /openapi.json is the one fuzzed. (schemathesis.pytest.from_fixture, which would load the
# schema from the running server, does not work with pytest 9: it sets the removed Node._nodeid.)
OPEN_APP = create_app(make_settings())
SECURED_APP = create_app(make_settings(api_token=TOKEN))
without_token = schemathesis.openapi.from_dict(
    OPEN_APP.openapi(), config=schemathesis.Config.from_dict(CONFIG)
)
token_not_sent = schemathesis.openapi.from_dict(
    SECURED_APP.openapi(), config=schemathesis.Config.from_dict(CONFIG)
)


def _serve(app):
    with run_server(app) as url:
        assert httpx.get(f"{url}/openapi.json").json() == app.openapi()
        yield url


@pytest.fixture(scope="module")
def open_url():
    """Base URL of the real app without a token."""
    yield from _serve(OPEN_APP)


@pytest.fixture(scope="module")
def secured_url():
    """Base URL of the real app with a token configured (the fuzzer never sends it)."""
    yield from _serve(SECURED_APP)


@without_token.parametrize()
def test_fuzz_without_token(case, open_url):
    """Every operation, no token configured: no 5xx, every answer as the schema says."""
    case.call_and_validate(base_url=open_url)


@token_not_sent.parametrize()
def test_fuzz_with_token_not_sent(case, secured_url):
    """Every operation, token configured and not sent: the schema's checks, and 401 wherever the schema declares
    bearer auth (every operation but the health probes), before any body or parameter is looked at."""
    response = case.call_and_validate(base_url=secured_url)
    secured = bool(case.operation.definition.raw.get("security"))
    if secured and case.method.upper() == case.operation.method.upper():  # undocumented methods: 405, checked
        assert (response.status_code, response.json()) == (401, {"detail": NOT_AUTHENTICATED}), (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
        )
