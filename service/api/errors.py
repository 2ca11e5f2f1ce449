"""Exception handlers: every error answer is ``{"detail": "<one actionable sentence>"}``.

FastAPI's default validation answer is a list of pydantic errors; here it becomes one sentence
naming each offending field (``features[0][3]: Input should be a valid number``), malformed JSON
becomes a 400, a worker process that does not answer (``M2S_WORKERS >= 2``) a 503 with ``Retry-After``,
and any other unexpected exception a generic 500 (its traceback goes to the server log,
never to the client). No handler lets an exception escape to the server as a crash.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.deps import ModelLoadError
from service.workers import WorkerUnavailable

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal server error; the details are in the service log."
_MAX_ERRORS = 5  # a 62 x 2000 array of strings would otherwise give a 124 000-item message
_SECTIONS = ("body", "query", "path", "header", "cookie")


def _where(loc: tuple) -> str:
    """``('body', 'features', 0, 3)`` -> ``'features[0][3]'``; the bare section name when nothing follows."""
    parts = loc[1:] if loc and loc[0] in _SECTIONS else loc
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or (str(loc[0]) if loc else "request")


def sentence(err: Exception) -> str:
    """An exception's message as the ``detail`` sentence: capitalised, and unquoted for a KeyError (whose str()
    would quote it)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text[:1].upper() + text[1:]


def validation_detail(errors: list[dict]) -> tuple[int, str]:
    """Status and one-sentence detail for FastAPI validation errors."""
    for e in errors:
        if e.get("type") == "json_invalid":
            pos = e["loc"][-1]
            reason = (e.get("ctx") or {}).get("error", "invalid JSON")
            return (
                status.HTTP_400_BAD_REQUEST,
                f"Malformed JSON body: {reason} at character {pos}; send one JSON object.",
            )
    shown = [
        f"{_where(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ').rstrip('.')}"
        for e in errors[:_MAX_ERRORS]
    ]
    more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
    return status.HTTP_422_UNPROCESSABLE_CONTENT, f"Invalid request: {'; '.join(shown)}{more}."


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    code, detail = validation_detail(list(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=code)


async def _model_load_error(request: Request, exc: ModelLoadError) -> JSONResponse:
    logger.error("model %s could not be loaded", exc.ref, exc_info=exc.__cause__)
    return JSONResponse(
        {"detail": f"Model {exc.ref} could not be loaded; the details are in the service log."},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def _worker_unavailable(request: Request, exc: WorkerUnavailable) -> JSONResponse:
    return JSONResponse(
        {"detail": sentence(exc)},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response is sent, so the server logs the traceback once.
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ModelLoadError, _model_load_error)
    app.add_exception_handler(WorkerUnavailable, _worker_unavailable)  # M2S_WORKERS >= 2: retry later
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["INTERNAL_ERROR", "install_error_handlers", "sentence", "validation_detail"]
