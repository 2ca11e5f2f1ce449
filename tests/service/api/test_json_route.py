"""service.api.json_route: pydantic-core JSON decoding with ``json.loads`` semantics, and its route class."""

import json
import math
import re

import numpy as np
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.api.json_route import FastJsonRequest, FastJsonRoute, decode_json

MALFORMED = [b"{", b"[1,]", b"[1] x", b"{'a': 1}", b'{"a": "x\ny"}', b"01", b"nan", b"   ", b'{"a" 1}']


def test_decodes_a_predict_body_bit_identically():
    """A nested list of random floats decodes to exactly the floats json.loads gives."""
    rng = np.random.default_rng(0)
    values = rng.normal(0, 20, (62, 500)) * 10.0 ** rng.integers(-300, 300, (62, 500))
    body = json.dumps({"modality": "eeg", "features": values.tolist()}).encode()
    decoded = decode_json(body)
    assert decoded == json.loads(body)
    np.testing.assert_array_equal(np.array(decoded["features"]), values)


def test_decodes_what_only_python_json_writes():
    """NaN / Infinity literals, big integers and duplicate keys decode as json.loads decodes them."""
    body = b'{"a": NaN, "b": [Infinity, -Infinity], "c": 123456789012345678901234567890, "d": 1, "d": 2}'
    decoded = decode_json(body)
    assert math.isnan(decoded["a"])
    assert decoded["b"] == [math.inf, -math.inf]
    assert decoded["c"] == 123456789012345678901234567890
    assert decoded["d"] == 2


def test_valid_json_takes_the_fast_parser(monkeypatch):
    """A valid body is parsed without json.loads (the point of the module)."""

    def refuse(*args, **kwargs):
        raise AssertionError("json.loads was called")

    monkeypatch.setattr(json, "loads", refuse)
    assert decode_json(b'{"features": [[1.5, 2.0]]}') == {"features": [[1.5, 2.0]]}


@pytest.mark.parametrize(
    "body",
    [b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), b'["\\ud800"]', b"[" * 300 + b"]" * 300],
    ids=["utf8-bom", "utf16", "lone-surrogate", "deep-nesting"],
)
def test_bodies_only_the_stdlib_accepts_still_decode(body):
    """Bodies pydantic-core refuses but json.loads accepts decode to json.loads' value."""
    assert decode_json(body) == json.loads(body)


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_json_raises_the_stdlib_error(body):
    """Malformed JSON raises json.loads' JSONDecodeError, same message and position."""
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(body)
    with pytest.raises(json.JSONDecodeError, match=re.escape(expected.value.msg)) as got:
        decode_json(body)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_invalid_utf8_raises_the_stdlib_error():
    """A body that is not UTF-8 raises json.loads' UnicodeDecodeError."""
    with pytest.raises(UnicodeDecodeError, match="can't decode byte 0xff"):
        decode_json(b'"\xff"')


class _Body(BaseModel):
    values: list[float]


def _app() -> FastAPI:
    """The same endpoint behind a plain APIRoute (/plain) and a FastJsonRoute (/fast)."""
    app = FastAPI()
    for prefix, route_class in (("/plain", None), ("/fast", FastJsonRoute)):
        router = APIRouter(prefix=prefix, **({"route_class": route_class} if route_class else {}))

        @router.post("")
        async def echo(body: _Body, request: Request) -> dict:
            return {"sum": sum(body.values), "request": type(request).__name__}

        app.include_router(router)
    return app


def test_route_hands_the_endpoint_a_fast_json_request():
    """Behind FastJsonRoute the endpoint sees a FastJsonRequest and the validated body."""
    with TestClient(_app()) as client:
        r = client.post("/fast", json={"values": [1.5, 2.5]})
    assert r.status_code == 200
    assert r.json() == {"sum": 4.0, "request": FastJsonRequest.__name__}


@pytest.mark.parametrize(
    "content",
    [*MALFORMED, b'{"values": [1, "x"]}', b'{"values": 3}', b"[]", b'"\xff"', b""],
)
def test_route_answers_bad_bodies_exactly_like_a_plain_route(content):
    """Malformed or invalid bodies get the same status and body from FastJsonRoute as from APIRoute."""
    headers = {"content-type": "application/json"}
    with TestClient(_app()) as client:
        plain = client.post("/plain", content=content, headers=headers)
        fast = client.post("/fast", content=content, headers=headers)
    assert plain.status_code in (400, 422)
    assert (fast.status_code, fast.json()) == (plain.status_code, plain.json())
