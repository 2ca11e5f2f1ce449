"""``m2s calibrate``: calibrate a new participant on the service's live streams, end to end.

Through :meth:`clients.sdk.Client.calibrate`: ``POST /calibrations`` with the experiment's marker stream
as the label source, progress polled until every class of the base model has ``--fit-after`` completed
trials, then ``POST /calibrations/{id}/fit`` (the new model ``<base>-<participant>:<n>`` is activated on
the streams unless ``--no-activate``).

Output: a progress line when a trial opens or closes or the marker stream (dis)connects, and every 10 s
while windows arrive: ``[<elapsed> s]`` then per class ``<class> <trials>/<N>`` with the labelled windows
per modality in brackets, the open trial and a warning while the marker stream is not connected; new
service notes (markers not used, and why) on their own lines; finally the new model, its
leave-one-trial-out validation per modality and the activated streams (``--json``: the fit's answer as
JSON on stdout, progress on stderr).

Exit status: 0 done; 2 bad options (nothing was sent); 1 the service refused or failed, or the trials
did not come within ``--timeout`` (the calibration is then cancelled); 130 Ctrl-C (cancelled too).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import TextIO

from .predict_cli import DEFAULT_URL
from .sdk import MIN_TRIALS_PER_CLASS, CalibrationInfo, CalibrationResult, Client, M2SError

_SELECTOR_KEYS = ("type", "name", "source_id")
_MARKERS_EXAMPLE = "type=Markers"


def register(subparsers) -> None:
    """Add the ``calibrate`` command."""
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate a new participant on the live streams: collect labelled trials, fit, activate",
        description="Start a calibration of PARTICIPANT on attached streams, labelled by the experiment's LSL "
        'marker stream (JSON onsets {"trial": k, "label": "<class>"} or trial_start:<label> / trial_end '
        "strings), print the trials and windows per class as they come, and once every class of the base model "
        "has N completed trials fit the participant's head: a new model <base>-<participant>:<n>, validated by "
        "leave-one-trial-out and switched on the streams. Exit status: 0 done, 2 bad options, 1 the service "
        "refused or failed or --timeout passed (the calibration is cancelled), 130 Ctrl-C (cancelled).",
        epilog="Example: m2s calibrate --participant p-013 --markers type=Markers --fit-after 2",
    )
    p.add_argument(
        "--participant",
        required=True,
        metavar="ID",
        help="participant id: letters, digits, _ and -, at most 64 (no names: the id names the model)",
    )
    p.add_argument(
        "--markers",
        required=True,
        metavar="KEY=VALUE[,...]",
        help="the experiment's LSL marker stream by type / name / source_id, e.g. type=Markers or "
        "source_id=m2s-sim-markers-s0-seed0",
    )
    p.add_argument(
        "--fit-after",
        required=True,
        type=int,
        metavar="N",
        help=f"fit once every class has N completed trials (N >= {MIN_TRIALS_PER_CLASS}: one trial per class "
        "is held out for validation)",
    )
    p.add_argument(
        "--streams",
        default=None,
        metavar="ID,ID",
        help="comma-separated ids of attached streams, one per modality (default: every attached stream)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME[:V]",
        help="base model (default: the model the first stream runs)",
    )
    p.add_argument(
        "--train-modality",
        default=None,
        metavar="MODALITY",
        help="fit one head on this modality and serve every modality with it (default: each its own head)",
    )
    p.add_argument(
        "--no-activate",
        dest="activate",
        action="store_false",
        help="save the new model but leave the streams on their model",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"service root (default: {DEFAULT_URL})")
    p.add_argument("--token", default=None, help="API token of the service (M2S_API_TOKEN)")
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="longest wait for the trials, s; then the calibration is cancelled (default: 1800)",
    )
    p.add_argument("--poll", type=float, default=1.0, metavar="S", help="seconds between progress requests")
    p.add_argument("--json", action="store_true", help="print the fit's answer as JSON (progress on stderr)")
    p.set_defaults(handler=run)


def parse_selector(text: str, option: str = "--markers") -> dict[str, str]:
    """``"type=Markers[,name=..][,source_id=..]"`` -> ``{"type": "Markers", ...}`` (ValueError saying what to write).

    The syntax of ``m2s-serve --attach``'s stream selector: comma-separated ``key=value`` pairs, keys
    ``type`` / ``name`` / ``source_id`` (at least one, each once), whitespace around them ignored.
    """
    where = f"{option} {text!r}"
    if not text.strip():
        raise ValueError(f"{where} is empty; write e.g. {option} {_MARKERS_EXAMPLE}.")
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(
                f"{where}: {item.strip()!r} is not key=value; write comma-separated key=value pairs with keys "
                f"{', '.join(_SELECTOR_KEYS)}, e.g. {option} {_MARKERS_EXAMPLE}."
            )
        if key not in _SELECTOR_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; the keys are {', '.join(_SELECTOR_KEYS)}.")
        if key in fields:
            raise ValueError(f"{where}: key {key!r} is given twice; keep one.")
        if not value:
            raise ValueError(f"{where}: {key}= has no value; give one (e.g. {key}=...) or drop the key.")
        fields[key] = value
    return fields


def _stream_ids(text: str) -> list[str]:
    ids = [s.strip() for s in text.split(",") if s.strip()]
    if not ids:
        raise ValueError(
            f"--streams {text!r} names no stream; give comma-separated ids of attached streams "
            "(GET /streams), or leave --streams out to calibrate every attached stream."
        )
    return ids


def _check_options(args: argparse.Namespace) -> None:
    if args.fit_after < MIN_TRIALS_PER_CLASS:
        raise ValueError(
            f"--fit-after must be >= {MIN_TRIALS_PER_CLASS} (one trial of each class is held out for "
            f"validation), got {args.fit_after}."
        )
    for value, option in ((args.timeout, "--timeout"), (args.poll, "--poll")):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{option} must be a positive number of seconds, got {value:g}.")
    if not args.participant.strip():
        raise ValueError("--participant is empty; give the participant's id, e.g. --participant p-013.")
    if args.model is not None and not args.model.strip():
        raise ValueError("--model is empty; give NAME or NAME:VERSION, or leave --model out.")


def format_progress(info: CalibrationInfo, trials_per_class: int) -> str:
    """Per class ``<class> <trials>/<N>`` and its windows per modality; the open trial; marker warnings."""
    parts = []
    for label, n in info.trials.items():
        windows = ", ".join(f"{m} {counts.get(label, 0)}" for m, counts in info.counts.items())
        parts.append(f"{label} {n}/{trials_per_class}" + (f" ({windows})" if windows else ""))
    line = "  ".join(parts)
    if info.open_label is not None:
        line += f"  | open: {info.open_label}"
    if info.labels == "markers" and not info.markers_connected:
        line += "  | marker stream not connected yet"
    return line


def _score(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def format_result(result: CalibrationResult, activate: bool) -> str:
    """The new model, its validation overall and per modality, the trials and the activated streams."""
    v = result.validation
    fit_s = "" if result.fit_s is None else f" (fit {result.fit_s:.1f} s)"
    chance = f", chance {1 / len(v.n_trials):.2f}" if v.n_trials else ""
    lines = [
        f"calibrated model {result.model}{fit_s}",
        f"  validation, leave-one-trial-out balanced accuracy{chance}: {_score(v.balanced_accuracy)}",
    ]
    for modality, m in v.per_modality.items():
        head = "" if m.head in (None, modality) else f", head fitted on {m.head}"
        own = (
            ""
            if m.own_head_balanced_accuracy is None
            else f", own head {_score(m.own_head_balanced_accuracy)}"
        )
        lines.append(f"    {modality:<6} {_score(m.balanced_accuracy)}  ({m.n_windows} windows{head}{own})")
    skipped = (v.model_extra or {}).get("skipped") or {}  # modalities left out of the fit, and why
    for modality, why in skipped.items():
        lines.append(f"    {modality:<6} not fitted: {why}")
    lines.append("  trials: " + ", ".join(f"{label} {n}" for label, n in v.n_trials.items()))
    if result.activated:
        lines.append(f"  activated on: {', '.join(result.activated)}")
    elif activate:
        lines.append("  activated on: no stream (see the service log)")
    else:
        lines.append(
            f"  not activated (--no-activate); switch a stream with PATCH /streams/<id> "
            f'{{"model": "{result.model}"}}'
        )
    return "\n".join(lines)


class _Progress:
    """``on_progress`` of :meth:`Client.calibrate`: writes new notes, and a progress line when a trial
    opened or closed or the marker stream (dis)connected, else every ``every_s`` s while windows arrive."""

    def __init__(self, out: TextIO, trials_per_class: int, every_s: float = 10.0):
        self.out = out
        self.trials_per_class = trials_per_class
        self.every_s = every_s
        self.start = time.monotonic()
        self.last: str | None = None
        self.last_key = None
        self.last_time = -math.inf
        self.notes: set[str] = set()

    def __call__(self, info: CalibrationInfo) -> None:
        now = time.monotonic()
        if self.last is None:
            modalities = ", ".join(f"{sid} ({m})" for sid, m in info.modalities.items())
            self._write(
                f"calibration {info.id}: participant {info.participant}, base {info.model}, streams {modalities}; "
                f"fitting once every class has {self.trials_per_class} trials"
            )
        line = format_progress(info, self.trials_per_class)
        key = (info.trials, info.open_label, info.markers_connected)
        if key != self.last_key or (line != self.last and now - self.last_time >= self.every_s):
            self._write(f"[{now - self.start:5.0f} s] {line}")
            self.last, self.last_key, self.last_time = line, key, now
        for note in info.notes:
            if note not in self.notes:
                self.notes.add(note)
                self._write(f"  note: {note}")

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    """Calibrate; 0 done, 1 the service refused or failed or the timeout passed, 130 Ctrl-C (2: bad options)."""
    _check_options(args)
    markers = parse_selector(args.markers)
    streams = _stream_ids(args.streams) if args.streams is not None else None
    progress = _Progress(sys.stderr if args.json else sys.stdout, args.fit_after)
    try:
        with Client(args.url, args.token) as client:
            if streams is None:
                streams = [s.id for s in client.streams()]
                if not streams:
                    return _fail(
                        f"no stream is attached to the service at {args.url}; attach the participant's streams "
                        "first (m2s-serve --attach modality=eeg,type=EEG, or POST /streams), then run again."
                    )
            result = client.calibrate(
                args.participant,
                streams,
                markers=markers,
                model=args.model,
                trials_per_class=args.fit_after,
                train_modality=args.train_modality,
                activate=args.activate,
                timeout_s=args.timeout,
                poll_s=args.poll,
                on_progress=progress,
            )
    except KeyboardInterrupt:
        if progress.last is None:
            sys.stderr.write("m2s calibrate: interrupted before any calibration started.\n")
        else:
            sys.stderr.write(
                "m2s calibrate: interrupted; a calibration still collecting was cancelled (nothing saved).\n"
            )
        return 130
    except (M2SError, TimeoutError, RuntimeError) as err:
        return _fail(str(err))
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(format_result(result, args.activate) + "\n")
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"m2s calibrate: error: {message}\n")
    return 1
