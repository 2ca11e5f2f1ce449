"""An ``APIRoute`` whose JSON request bodies are parsed by pydantic-core instead of the stdlib ``json``.

FastAPI reads a JSON body with ``await request.json()`` (Starlette: ``json.loads``) on the event loop
and only then validates the Python object against the body model. For ``POST /predict``, whose body
is a nested list of floats, that parse is most of the server's own cost. Measured on 2 cores
(``benchmarks/predict_load.py`` payloads): ``json.loads`` takes 0.27 ms for a 30 kB features window
(5 x 310) and 22 ms for a 2.5 MB raw signal (10 s of 62-channel EEG); ``pydantic_core.from_json``
takes 0.05 ms and 4.9 ms and returns equal objects (floats bit-identical). The event loop is blocked
while it parses, so the saving is also latency for every other request and WebSocket.

The result is exactly what ``json.loads`` gives: a body that ``from_json`` refuses goes to
``json.loads``, which returns the same value or raises the same ``JSONDecodeError`` (message and
position) as before. That covers malformed JSON, so error answers do not change, and the inputs
only the stdlib accepts (UTF-16/32, a UTF-8 byte-order mark, lone surrogates, nesting deeper than
pydantic-core's limit). Validation against the body model is still FastAPI's, so its error
messages do not change either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json


def decode_json(body: bytes) -> Any:
    """``json.loads(body)``, computed by pydantic-core's parser whenever that parser accepts the body.

    Parameters
    ----------
    body : bytes
        A request body.

    Returns
    -------
    object
        The decoded JSON value, equal to ``json.loads(body)``.

    Raises
    ------
    json.JSONDecodeError
        The body is not JSON (raised by ``json.loads``, same message and position as without this function).
    UnicodeDecodeError
        The body is not valid text (as ``json.loads`` raises it).
    """
    try:
        return from_json(body)
    except ValueError:  # pydantic-core refused it: the stdlib decides (same value, or the same error)
        return json.loads(body)


class FastJsonRequest(Request):
    """A Starlette request whose :meth:`json` uses :func:`decode_json` (cached, as Starlette's)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


class FastJsonRoute(APIRoute):
    """An ``APIRoute`` that hands its handler a :class:`FastJsonRequest` (``APIRouter(route_class=...)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fast_json_handler(request: Request) -> Response:
            return await handler(FastJsonRequest(request.scope, request.receive))

        return fast_json_handler


__all__ = ["FastJsonRequest", "FastJsonRoute", "decode_json"]
