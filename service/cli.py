"""``m2s-serve``: run the live service (FastAPI under uvicorn).

Every flag mirrors a :class:`~service.config.Settings` field and overrides its ``M2S_*``
environment variable; what no flag sets comes from the environment, then the defaults. Invalid
input (a malformed ``--attach``, a port out of range, an unknown provider, a missing repository)
exits with status 2 and one line on stderr before anything starts. A missing ONNX Runtime (neither
the ``cpu`` nor the ``gpu`` extra installed) and a model or stream that fails while starting exit
with status 3 (uvicorn's startup failure). SIGINT / SIGTERM shut down gracefully: streams stop,
queued inferences finish, the process exits with status 0.

Examples
--------
::

    m2s-serve                                   # demo model, 127.0.0.1:8000, dashboard at /
    m2s-serve --attach modality=eeg,type=EEG --attach modality=ecg,source_id=polar-h10
    M2S_API_TOKEN=s3cret m2s-serve --host 0.0.0.0 --providers CUDAExecutionProvider,CPUExecutionProvider
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from service.config import AttachRequest, Settings

logger = logging.getLogger("service")

GRACEFUL_SHUTDOWN_S = 10  # uvicorn waits this long for open requests / WebSockets at shutdown
EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
NO_ONNXRUNTIME = (
    "ONNX Runtime is not installed: pip install 'm2s-live[cpu]' (or 'm2s-live[gpu]' on a CUDA machine)"
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} See {self.prog} --help.\n")


def _attach(text: str) -> AttachRequest:
    try:
        return AttachRequest.parse_cli(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``m2s-serve`` parser; flags default to None so that unset ones fall back to ``M2S_*``."""
    parser = _Parser(
        prog="m2s-serve",
        description=(
            "Serve M2S emotion recognition: REST /predict, KServe-v2 /v2/health and /v2/models, live LSL "
            "streams (/streams), WebSocket /ws, Prometheus /metrics, the dashboard at / and the API docs "
            "at /docs. Each flag overrides the environment variable named in its help."
        ),
        epilog="Example: m2s-serve --attach modality=eeg,type=EEG --port 8000",
    )
    add = parser.add_argument
    add(
        "--repository",
        dest="model_repository",
        metavar="DIR",
        help="model repository, folders <name>/<version>/manifest.json (M2S_MODEL_REPOSITORY; default: the "
        "repository shipped with m2s-live)",
    )
    add(
        "--model",
        dest="default_model",
        metavar="NAME[:VERSION]",
        help="model loaded and warmed up at start, used when a request or stream names none "
        "(M2S_DEFAULT_MODEL; default: m2s-synthetic-demo, latest version)",
    )
    add("--host", help="interface to listen on (M2S_HOST; default 127.0.0.1; 0.0.0.0 = all)")
    add("--port", type=int, help="TCP port, 0 = any free one (M2S_PORT; default 8000)")
    add(
        "--attach",
        action="append",
        type=_attach,
        metavar="SPEC",
        help="attach an LSL stream at start: modality=eeg,type=EEG[,name=..][,source_id=..][,model=name:version]; "
        "repeatable; replaces M2S_ATTACH (a JSON list) when given",
    )
    add(
        "--token",
        dest="api_token",
        metavar="TOKEN",
        help="bearer token required by REST and WebSocket (M2S_API_TOKEN, preferred: command lines are "
        "visible to other users; default: no authentication)",
    )
    add(
        "--max-body-bytes",
        dest="max_body_bytes",
        type=int,
        metavar="N",
        help="largest request body in bytes, larger ones get 413 (M2S_MAX_BODY_BYTES; default 8000000)",
    )
    add(
        "--providers",
        metavar="EP[,EP...]",
        help="ONNX Runtime execution providers in order of preference, e.g. "
        "CUDAExecutionProvider,CPUExecutionProvider (M2S_PROVIDERS; default: CUDA if available, else CPU)",
    )
    add(
        "--stale-after",
        dest="stale_after_s",
        type=float,
        metavar="S",
        help="a stream without new samples for S seconds is stale (M2S_STALE_AFTER_S; default 2)",
    )
    add(
        "--resolve-timeout",
        dest="resolve_timeout_s",
        type=float,
        metavar="S",
        help="timeout of each LSL stream resolution, s (M2S_RESOLVE_TIMEOUT_S; default 2)",
    )
    add(
        "--ws-queue-size",
        dest="ws_queue_size",
        type=int,
        metavar="N",
        help="messages queued per WebSocket client before its oldest are dropped (M2S_WS_QUEUE_SIZE; default 256)",
    )
    add(
        "--batch-max-wait",
        dest="batch_max_wait_s",
        type=float,
        metavar="S",
        help="how long an inference batch waits for more windows after its first, s; 0 = never wait, an idle "
        "model runs a request at once (M2S_BATCH_MAX_WAIT_S; default 0)",
    )
    add(
        "--batch-max-windows",
        dest="batch_max_windows",
        type=int,
        metavar="N",
        help="most windows in one ONNX Runtime run (M2S_BATCH_MAX_WINDOWS; default 256)",
    )
    add(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="logging level (default info)",
    )
    return parser


_SETTING_FLAGS = {
    "model_repository": "--repository",
    "default_model": "--model",
    "host": "--host",
    "port": "--port",
    "attach": "--attach",
    "api_token": "--token",
    "max_body_bytes": "--max-body-bytes",
    "providers": "--providers",
    "stale_after_s": "--stale-after",
    "resolve_timeout_s": "--resolve-timeout",
    "ws_queue_size": "--ws-queue-size",
    "batch_max_wait_s": "--batch-max-wait",
    "batch_max_windows": "--batch-max-windows",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed flags (those given) over the ``M2S_*`` environment.

    Raises
    ------
    ValueError
        A value is invalid; the message is one line naming the flag or variable and the fix.
    """
    overrides: dict[str, Any] = {
        field: getattr(args, field) for field in _SETTING_FLAGS if getattr(args, field, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            where = _SETTING_FLAGS[field] if field in overrides else f"M2S_{field.upper()}" if field else ""
            msg = e["msg"].removeprefix("Value error, ").rstrip(".")
            problems.append(f"{where}: {msg}" if where else msg)
        raise ValueError("; ".join(problems) + ".") from None


def check_onnxruntime() -> None:
    """Fail early, and with the fix, when no ONNX Runtime build is installed.

    The base install carries none: the CPU (``onnxruntime``) and CUDA (``onnxruntime-gpu``) builds
    provide the same module and must not meet in one environment, so the runtime is an extra.

    Raises
    ------
    RuntimeError
        ``onnxruntime`` cannot be imported; the message says what to install.
    """
    try:
        import onnxruntime  # noqa: F401  (the engine imports it; this only checks it is there)
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name == "onnxruntime"
        raise RuntimeError(NO_ONNXRUNTIME + ("." if missing else f" (importing it failed: {err}).")) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, validate, serve until SIGINT/SIGTERM; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        check_onnxruntime()
    except RuntimeError as err:
        parser.exit(EXIT_STARTUP_FAILED, f"{parser.prog}: error: {err}\n")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn  # after validation: --help and input errors stay fast

    from service.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        log_config=None,  # our basicConfig handler formats uvicorn's records too
        ws_max_size=max(settings.max_body_bytes, 65536),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in
    # place that re-raise is a no-op, so a graceful SIGINT/SIGTERM shutdown exits with status 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        logger.error("the service did not start (see the errors above)")
        return EXIT_STARTUP_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
