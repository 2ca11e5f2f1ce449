"""``m2s-serve``: run the live service (FastAPI under uvicorn).

Every :class:`~service.config.Settings` field has a flag, generated from the field (see
:func:`build_parser`), which overrides its ``M2S_*`` environment variable; what no flag sets comes
from the environment, then the defaults. Invalid
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
import json
import logging
import signal
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode

from models.repository import DEMO_BUNDLE
from service.address import env_name
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


@dataclass(frozen=True)
class _Style:
    """Where a setting's flag departs from the generated form (:func:`_add_setting`)."""

    flag: str | None = None  # default: --field-name, a trailing unit "_s" dropped
    metavar: str | None = None  # default: N for int, S for float seconds, the field name otherwise
    default: str | None = None  # the default in words; default: the field's default value
    env_note: str | None = None  # said after the variable's name


# Settings whose flags keep the names, metavars and wording they had before being generated. A field
# not named here or in _EXPLICIT gets its flag from its name, type, description and default alone.
_STYLES: dict[str, _Style] = {
    "model_repository": _Style("--repository", "DIR", default="the repository shipped with m2s-live"),
    "calibrated_repository": _Style(metavar="DIR", default="'calibrated' beside the model repository"),
    "recordings_dir": _Style(metavar="DIR", default="'recordings' beside the model repository"),
    "default_model": _Style("--model", "NAME[:VERSION]", default=f"{DEMO_BUNDLE}, latest version"),
    "port": _Style(metavar="PORT"),
    "api_token": _Style(
        "--token",
        "TOKEN",
        default="no authentication",
        env_note="preferred: command lines are visible to other users",
    ),
    "providers": _Style(metavar="EP[,EP...]", default="CUDA if available, else CPU"),
}


def _attach(text: str) -> AttachRequest:
    try:
        return AttachRequest.parse_cli(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_attach(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attach",
        dest="attach",
        action="append",
        type=_attach,
        metavar="SPEC",
        help="attach an LSL stream at start: modality=eeg,type=EEG[,name=..][,source_id=..][,model=name:version]; "
        f"repeatable; replaces {env_name('attach')} (a JSON list) when given",
    )


# Settings whose flags are written by hand: --attach is repeated, one stream each, parsed as it is given.
_EXPLICIT: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "attach": ("--attach", _add_attach),
}


def setting_flags(settings_cls: type[Settings] = Settings) -> dict[str, str]:
    """The flag of each field of ``settings_cls``, in field order: ``{"port": "--port", ...}``."""
    flags = {}
    for name in settings_cls.model_fields:
        if name in _EXPLICIT:
            flags[name] = _EXPLICIT[name][0]
        else:
            flags[name] = _STYLES.get(name, _Style()).flag or "--" + name.removesuffix("_s").replace("_", "-")
    return flags


def _value_type(field: FieldInfo) -> Any:
    """The field's annotation without ``None`` (``int | None`` -> ``int``)."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _json_value(text: str) -> Any:
    """A list/dict/model flag's value is JSON, as its ``M2S_*`` variable is."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({err})") from None


def _add_setting(parser: argparse.ArgumentParser, name: str, field: FieldInfo, flag: str) -> None:
    """Add the flag of setting ``name``, generated from the field and :data:`_STYLES`.

    Help is ``<description> (M2S_<NAME>; default <value>)``. Numbers are parsed by argparse (a typo is
    a usage error naming the flag); other values go to the settings as text, as the environment
    variable would, and are validated there; lists, dicts and models are JSON unless the field reads
    text itself (``NoDecode``, as ``providers``); a bool becomes ``--flag/--no-flag``.
    """
    style = _STYLES.get(name, _Style())
    kind = _value_type(field)
    kwargs: dict[str, Any] = {"dest": name, "default": None}
    metavar = style.metavar
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind is int:
        kwargs["type"], metavar = int, metavar or "N"
    elif kind is float:
        kwargs["type"], metavar = float, metavar or ("S" if name.endswith("_s") else "X")
    elif NoDecode not in field.metadata and (
        get_origin(kind) in (list, tuple, set, frozenset, dict)
        or (isinstance(kind, type) and issubclass(kind, (BaseModel, list, tuple, set, frozenset, dict)))
    ):
        kwargs["type"], metavar = _json_value, metavar or "JSON"
    if metavar is not None and kind is not bool:
        kwargs["metavar"] = metavar
    if style.default is not None:
        default = f"default: {style.default}"
    else:
        value = field.get_default(call_default_factory=True)
        if value is None or value == [] or value == {}:
            default = "default: unset"
        elif isinstance(value, bool):
            default = f"default {'on' if value else 'off'}"
        elif isinstance(value, float):
            default = f"default {value:g}"
        else:
            default = f"default {value}"
    env = env_name(name) + (f", {style.env_note}" if style.env_note else "")
    description = field.description or name.replace("_", " ")
    parser.add_argument(flag, help=f"{description} ({env}; {default})", **kwargs)


def build_parser(settings_cls: type[Settings] = Settings) -> argparse.ArgumentParser:
    """The ``m2s-serve`` parser: one flag per field of ``settings_cls``, then ``--log-level``.

    Flags default to None so that unset ones fall back to ``M2S_*``. Each is generated from its field
    (:func:`_add_setting`), styled by :data:`_STYLES`, or written by hand (:data:`_EXPLICIT`).
    """
    parser = _Parser(
        prog="m2s-serve",
        description=(
            "Serve M2S emotion recognition: REST /predict, KServe-v2 /v2/health and /v2/models, live LSL "
            "streams (/streams), WebSocket /ws, Prometheus /metrics, the dashboard at / and the API docs "
            "at /docs. Each flag overrides the environment variable named in its help."
        ),
        epilog="Example: m2s-serve --attach modality=eeg,type=EEG --port 8000",
    )
    for name, flag in setting_flags(settings_cls).items():
        if name in _EXPLICIT:
            _EXPLICIT[name][1](parser)
        else:
            _add_setting(parser, name, settings_cls.model_fields[name], flag)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="logging level (default info)",
    )
    return parser


def settings_from_args(args: argparse.Namespace, settings_cls: type[Settings] = Settings) -> Settings:
    """Settings from the parsed flags (those given) over the ``M2S_*`` environment.

    Raises
    ------
    ValueError
        A value is invalid; the message is one line naming the flag or variable and the fix.
    """
    flags = setting_flags(settings_cls)
    overrides: dict[str, Any] = {
        field: getattr(args, field) for field in flags if getattr(args, field, None) is not None
    }
    try:
        return settings_cls(**overrides)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            where = flags[field] if field in overrides else env_name(field) if field else ""
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
