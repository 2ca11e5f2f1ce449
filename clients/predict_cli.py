"""``m2s predict FILE``: one ``POST /predict`` request from a file; prints the label and probabilities.

Accepted files
--------------
``.json``
    A request body as ``POST /predict`` takes it: ``{"modality": ..., "features": [[...]]}`` or
    ``{"modality": ..., "signal": {"sfreq": ..., "channels": [...], "data": [[...]]}}``.
    ``--modality`` / ``--model`` override the file's values (``modality`` is required in one of them).
``.npy``
    Without ``--sfreq``: features, shape (T, D), not normalised. With ``--sfreq`` (Hz) and
    ``--channels A,B,...``: a raw signal, shape (n_channels, n_samples), time last.
``.csv``
    Without ``--sfreq``: features, one feature vector per row (T rows of D numbers), no header.
    With ``--sfreq``: a raw signal, one sample per row and one channel per column; the channel names
    come from a header row or from ``--channels``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .sdk import Client, EmotionState, M2SError

DEFAULT_URL = "http://127.0.0.1:8000"
_BAR_WIDTH = 20


def register(subparsers) -> None:
    """Add the ``predict`` command."""
    p = subparsers.add_parser(
        "predict",
        help="send one prediction request from a .json, .npy or .csv file",
        description="POST /predict with features (T x D) or a raw signal read from FILE. .json: the request "
        "body. .npy: features (T x D), or with --sfreq and --channels a signal (channels x samples). .csv: "
        "features (one vector per row, no header), or with --sfreq a signal (one sample per row, channels "
        "named by a header row or --channels). Exit status 2 for bad input (the service's reason is printed).",
    )
    p.add_argument("file", type=Path, metavar="FILE", help=".json request body, or .npy / .csv array")
    p.add_argument(
        "--modality", default=None, help="modality of the input, e.g. eeg (required unless in the .json)"
    )
    p.add_argument("--model", default=None, metavar="NAME[:V]", help="model (default: the service's default)")
    p.add_argument("--sfreq", type=float, default=None, help="the array is a raw signal sampled at SFREQ Hz")
    p.add_argument(
        "--channels", default=None, help="comma-separated channel names of a raw signal's rows/columns"
    )
    p.add_argument("--unit", default=None, help="unit of a raw signal, e.g. uV, mV, V (default: the model's)")
    p.add_argument("--url", default=DEFAULT_URL, help=f"service root (default: {DEFAULT_URL})")
    p.add_argument("--token", default=None, help="API token of the service (M2S_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the EmotionState as JSON")
    p.set_defaults(handler=run)


def read_request(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /predict`` body described by the command's arguments (ValueError when it cannot be built)."""
    path: Path = args.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            body = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise ValueError(
                f"{path} must hold a JSON object (the POST /predict body), got {type(body).__name__}."
            )
    elif suffix in (".npy", ".csv"):
        body = {"signal": _signal(path, args)} if args.sfreq is not None else {"features": _features(path)}
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; give a .json, .npy or .csv file.")
    if args.modality is not None:
        body["modality"] = args.modality
    if args.model is not None:
        body["model"] = args.model
    if not body.get("modality"):
        raise ValueError(
            "no modality: pass --modality (e.g. --modality eeg) or put 'modality' in the .json file."
        )
    return body


def _load_array(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """The numbers of a .npy or .csv file, and the header row of a .csv file (None when it has none)."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path} is not a numeric .npy file: {err}") from None
        return np.asarray(array, dtype=np.float64), None
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"{path} is empty.")
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header, rows = [v.strip() for v in rows[0]], rows[1:]
    try:
        array = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: every row after the header must hold numbers only ({err}).") from None
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{path}: rows have different lengths or there are none; write a rectangular table.")
    return array, header


def _features(path: Path) -> list[list[float]]:
    array, header = _load_array(path)
    if header is not None:
        raise ValueError(
            f"{path}: a features .csv has no header row; remove it (or pass --sfreq for a signal)."
        )
    if array.ndim != 2:
        raise ValueError(f"{path}: features must be a 2-D (T x D) array, got shape {array.shape}.")
    return array.tolist()


def _signal(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    if not args.sfreq > 0:
        raise ValueError(f"--sfreq must be a positive number of Hz, got {args.sfreq:g}.")
    array, header = _load_array(path)
    if array.ndim != 2:
        raise ValueError(f"{path}: a signal must be a 2-D array, got shape {array.shape}.")
    if path.suffix.lower() == ".csv":
        array = array.T  # columns are channels in a table; the API wants channels x samples
    channels = [c.strip() for c in args.channels.split(",")] if args.channels else header
    if not channels:
        raise ValueError(
            f"{path}: name the signal's channels with --channels A,B,... (or a .csv header row)."
        )
    if len(channels) != array.shape[0]:
        raise ValueError(
            f"{path}: {len(channels)} channel name(s) for {array.shape[0]} channel(s) "
            "(.npy: rows are channels; .csv: columns are channels)."
        )
    signal = {"sfreq": args.sfreq, "channels": channels, "data": array.tolist()}
    if args.unit is not None:
        signal["unit"] = args.unit
    return signal


def format_state(state: EmotionState, width: int = _BAR_WIDTH) -> str:
    """The label, then one line per class: name, bar of ``width`` characters, probability."""
    name_width = max(len(c) for c in state.probabilities)
    lines = [f"{state.label}  ({state.modality}, {state.model})"]
    for cls, p in state.probabilities.items():
        lines.append(f"  {cls:<{name_width}} {bar(p, width)} {p:.3f}")
    return "\n".join(lines)


def bar(p: float, width: int) -> str:
    """A bar of ``width`` characters filled in proportion to ``p`` in [0, 1]."""
    filled = round(min(max(p, 0.0), 1.0) * width)
    return "█" * filled + "·" * (width - filled)


def run(args: argparse.Namespace) -> int:
    """Send the request; 0 on success, 2 for bad input (4xx), 1 when the service failed or is unreachable."""
    body = read_request(args)
    request = {k: v for k, v in body.items() if k not in ("modality", "features", "signal", "model")}
    if request:
        raise ValueError(f"{args.file}: unknown request field(s) {sorted(request)}; see POST /predict.")
    try:
        with Client(args.url, args.token) as client:
            state = client.predict(
                body["modality"],
                features=body.get("features"),
                signal=body.get("signal"),
                model=body.get("model"),
            )
    except TypeError as err:  # e.g. a .json 'signal' that is not an object
        raise ValueError(f"{args.file}: {err}") from None
    except M2SError as err:
        sys.stderr.write(f"m2s predict: error: {err}\n")
        return 2 if err.status is not None and 400 <= err.status < 500 else 1
    sys.stdout.write((state.model_dump_json(indent=2) if args.json else format_state(state)) + "\n")
    return 0
