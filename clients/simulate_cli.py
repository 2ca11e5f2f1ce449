"""``m2s simulate``: synthetic EEG, gaze and ECG as LSL streams, with a ground-truth emotion marker stream.

See :mod:`clients.simulator` for the streams, their timestamps and the injected faults.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from synthetic import MODALITIES, SyntheticConfig

from .outlets import run_until_done
from .simulator import _MAX_CHUNK_S, _MAX_SPEED, _MIN_CHUNK_S, DEFAULT_MODALITIES, Fault, Simulator

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``simulate`` command."""
    p = subparsers.add_parser(
        "simulate",
        help="stream synthetic EEG, gaze and ECG over LSL with ground-truth emotion markers",
        description="Play trials of one synthetic subject (synthetic.generate_trial) back to back as LSL outlets in real "
        'time, plus a marker stream (type Markers) carrying {"trial": k, "label": "<class>"} at every '
        "trial onset. By default the subject is 0, whom the default demo bundle never saw (it was trained on "
        "subjects 3-14), and the trials are those after the config's n_trials. Timestamps are sample-accurate pylsl.local_clock() times; source_ids are stable "
        "({prefix}-{modality}-s{subject}-seed{seed}). Fault times AT:SECONDS are playback seconds from the "
        "start (wall seconds at --speed 1).",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="playback seconds to stream, 0 = until Ctrl-C (default: 0)",
    )
    p.add_argument(
        "--subject",
        type=int,
        default=0,
        help="synthetic subject (default: 0, a subject the demo bundle never saw; so are 1 and 2)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="dataset seed (default: the config's, 0 by default)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="JSON file of SyntheticConfig fields (default: the default config, the demo bundle's)",
    )
    p.add_argument(
        "--modalities",
        default=",".join(DEFAULT_MODALITIES),
        help=f"comma-separated data streams among {','.join(MODALITIES)} (default: {','.join(DEFAULT_MODALITIES)})",
    )
    p.add_argument(
        "--first-trial",
        type=int,
        default=None,
        help="first trial index to play (default: the config's n_trials, i.e. trials unseen in training)",
    )
    p.add_argument(
        "--calibration-trials",
        type=int,
        default=0,
        metavar="K",
        help="start with a calibration phase of K trials per class (the shortest run of trials holding K of each), "
        'then test trials; every marker then carries "phase": "calibration" or "test" (default: 0, no phases)',
    )
    p.add_argument(
        "--wait-for-consumers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds before the first trial until every stream (markers included) has an inlet, as an "
        "experiment waits for its recorder (default: 0, start at once)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help=f"playback speed, 1 = real time, up to {_MAX_SPEED:g} (default: 1)",
    )
    p.add_argument(
        "--chunk-s",
        type=float,
        default=0.05,
        help=f"playback seconds per push, {_MIN_CHUNK_S:g}-{_MAX_CHUNK_S:g} (default: 0.05)",
    )
    for kind, what in (
        ("pause", "stop pushing data (samples due meanwhile are lost: a timestamp gap)"),
        ("dropout", "destroy the data outlets and recreate them with the same source_ids"),
        ("nan", "NaN burst in EEG, ECG and PPS"),
    ):
        p.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar="AT:SECONDS",
            help=f"at AT s, for SECONDS s: {what}; repeatable",
        )
    p.add_argument(
        "--name-prefix", default="M2S-Sim", help="stream names are PREFIX-EEG, ... (default: M2S-Sim)"
    )
    p.add_argument(
        "--source-id-prefix", default="m2s-sim", help="source_ids start with this (default: m2s-sim)"
    )
    p.add_argument(
        "--print-attach",
        action="store_true",
        help="print the m2s-serve --attach arguments for these streams and exit (nothing is streamed), e.g. "
        "m2s-serve $(m2s simulate --subject 2 --print-attach)",
    )
    p.set_defaults(handler=_simulate)


def _build(args: argparse.Namespace) -> Simulator:
    """The Simulator the arguments describe; ValueError/FileNotFoundError with a message naming the option."""
    config = SyntheticConfig.from_json(args.config) if args.config is not None else SyntheticConfig()
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}.")
        config = config.model_copy(update={"seed": args.seed})
    if not 0 <= args.subject < config.n_subjects:
        raise ValueError(
            f"--subject must be in [0, {config.n_subjects}) (the config's n_subjects), got {args.subject}."
        )
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(
            f"--modalities {args.modalities!r}: give a comma-separated subset of {','.join(MODALITIES)}, "
            f"e.g. --modalities eeg,ecg"
            + (f" ({', '.join(map(repr, unknown))} unknown)." if unknown else ".")
        )
    if args.first_trial is not None and args.first_trial < 0:
        raise ValueError(f"--first-trial must be >= 0, got {args.first_trial}.")
    if args.calibration_trials < 0:
        raise ValueError(
            f"--calibration-trials must be >= 0 (trials per class), got {args.calibration_trials}."
        )
    if not 0 <= args.wait_for_consumers <= 3600:
        raise ValueError(
            f"--wait-for-consumers must be a number of seconds in [0, 3600], got {args.wait_for_consumers:g}."
        )
    if not 0 < args.speed <= _MAX_SPEED:
        raise ValueError(f"--speed must be in (0, {_MAX_SPEED:g}] (1 = real time), got {args.speed:g}.")
    if not _MIN_CHUNK_S <= args.chunk_s <= _MAX_CHUNK_S:
        raise ValueError(
            f"--chunk-s must be in [{_MIN_CHUNK_S:g}, {_MAX_CHUNK_S:g}] s, got {args.chunk_s:g}."
        )
    if not 0 <= args.duration < float("inf"):
        raise ValueError(
            f"--duration must be a number of seconds >= 0 (0 = until Ctrl-C), got {args.duration:g}."
        )
    faults = [Fault.parse(kind, text) for kind in ("pause", "dropout", "nan") for text in getattr(args, kind)]
    try:
        return Simulator(
            config,
            subject=args.subject,
            modalities=modalities,
            first_trial=args.first_trial,
            calibration_trials=args.calibration_trials,
            wait_for_consumers_s=args.wait_for_consumers,
            speed=args.speed,
            chunk_s=args.chunk_s,
            duration_s=args.duration,
            faults=faults,
            name_prefix=args.name_prefix,
            source_id_prefix=args.source_id_prefix,
        )
    except TypeError as err:  # only reachable through odd prefixes; report as an input error
        raise ValueError(str(err)) from None


def _summary(sim: Simulator) -> str:
    config = sim.config
    unseen = (
        " (beyond the config's trials: unseen by the demo bundle)"
        if sim.first_trial >= config.n_trials
        else ""
    )
    lines = [
        f"m2s simulate: subject {sim.subject}, seed {sim.seed}, trials {sim.first_trial}, {sim.first_trial + 1}, ..."
        f"{unseen}; {config.trial_duration_s:g}-s trials of {', '.join(config.class_names)}; speed x{sim.speed:g}",
    ]
    if sim.calibration_trials:
        last = sim.first_trial + sim.n_calibration_played - 1
        lines.append(
            f"  calibration: trials {sim.first_trial}-{last} ({sim.calibration_trials} per class, "
            f"{sim.n_calibration_played * config.trial_duration_s:g} s), then test trials; markers carry their phase"
        )
    for m in sim.modalities:
        spec = sim.streams[m]
        lines.append(
            f"  {m:<7} {spec.name:<18} {len(spec.channels):>3} ch @ {spec.sfreq:g} Hz "
            f"({', '.join(dict.fromkeys(spec.units))})  source_id={spec.source_id}"
        )
    lines.append(
        f"  {'markers':<7} {sim.stream_names['markers']:<18} ground-truth label at each trial onset  "
        f"source_id={sim.source_ids['markers']}"
    )
    for f in sim.faults:
        lines.append(f"  fault: {f.kind} at {f.at_s:g} s for {f.duration_s:g} s")
    lines.append(f"Attach with: m2s-serve {attach_arguments(sim)}")
    until = f"for {sim.duration_s:g} s" if sim.duration_s else "until Ctrl-C"
    lines.append(f"Streaming {until}.")
    return "\n".join(lines) + "\n"


def attach_arguments(sim: Simulator) -> str:
    """``--attach modality=<m>,source_id=<id>`` for every data stream of ``sim``, space-separated."""
    return " ".join(f"--attach modality={m},source_id={sim.source_ids[m]}" for m in sim.modalities)


def _simulate(args: argparse.Namespace) -> int:
    sim = _build(args)
    if args.print_attach:
        sys.stdout.write(attach_arguments(sim) + "\n")
        return 0
    return run_until_done(sim, what="simulator", summary=_summary(sim))
