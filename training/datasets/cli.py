"""``m2s-train datasets``: look at a dataset folder before training on it.

``m2s-train datasets inspect PATH [--dataset NAME] [--json] [--subjects S ...] [--include-raw]
[--spec MOD=FILE] [--window-s MOD=SECONDS] [--hop-s MOD=SECONDS]`` detects (or takes) the dataset
kind, loads it and prints subjects, sessions, trials, modalities with their shapes, feature
spacing, whether the live service can reproduce the features, and the class balance (or rating
summaries with the default binary threshold). :func:`add_feature_options` and
:func:`feature_options` are shared with the training commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from . import LOADERS, EmotionDataset, load_dataset


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--spec MOD=FILE``, ``--window-s MOD=SECONDS`` and ``--hop-s MOD=SECONDS`` (each repeatable).

    They apply to the loaders that compute features (deap, dreamer, synthetic, recording); the
    loaders of released features (seed, seed_iv, seed_v) refuse them. ``--window-s``/``--hop-s``
    replace the window/hop of the modality's spec: the one given with ``--spec``, else the
    loader's default. Parse them with :func:`feature_options`.
    """
    group = parser.add_argument_group(
        "features", "feature specs of loaders that compute features (deap, dreamer, synthetic, recording)"
    )
    group.add_argument(
        "--spec",
        action="append",
        default=None,
        metavar="MOD=FILE",
        help="FeatureSpec JSON file of a modality, e.g. eeg=eeg.json (repeat per modality)",
    )
    group.add_argument(
        "--window-s",
        action="append",
        default=None,
        metavar="MOD=SECONDS",
        help="window length of a modality's features, e.g. eeg=4 (repeat per modality)",
    )
    group.add_argument(
        "--hop-s",
        action="append",
        default=None,
        metavar="MOD=SECONDS",
        help="seconds between a modality's feature vectors, e.g. eeg=1; paired modalities need one hop",
    )


def _pairs(values: list[str] | None, option: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"{option} {item!r}: expected MODALITY=VALUE, e.g. {option} {example}.")
        if name in out:
            raise ValueError(
                f"{option} gives modality {name!r} twice ({out[name]!r} and {value!r}); give it once."
            )
        out[name] = value
    return out


def _seconds(option: str, modality: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(
            f"{option} {modality}={text}: expected a positive number of seconds, e.g. {option} {modality}=4."
        )
    return value


def feature_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """``(specs, spec_overrides)`` for :func:`training.datasets.load_dataset` from the parsed options.

    Raises
    ------
    ValueError
        A malformed ``MOD=VALUE``, a modality given twice, a spec file that is missing, not a valid
        FeatureSpec, or of another modality, or seconds that are not a positive number.
    """
    from signals.spec import feature_spec_from_json

    specs: dict[str, Any] = {}
    for m, file in _pairs(getattr(args, "spec", None), "--spec", "eeg=eeg.json").items():
        path = Path(file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"--spec {m}={file}: {path} does not exist; give a FeatureSpec JSON file "
                "(e.g. the feature_spec of a bundle manifest's modality)."
            )
        try:
            spec = feature_spec_from_json(path.read_bytes())
        except ValueError as err:
            raise ValueError(
                f"--spec {m}={file}: {err}. A spec file is one FeatureSpec object with its 'kind' "
                "(de, eye, hrv or pps), as in the feature_spec of a bundle manifest's modality "
                "(m2s-train bundle inspect BUNDLE_FOLDER --json)."
            ) from None
        if spec.modality != m:
            raise ValueError(
                f"--spec {m}={file}: the spec is of modality {spec.modality!r}; pass it as "
                f'--spec {spec.modality}={file}, or set its "modality" to {m!r}.'
            )
        specs[m] = spec
    overrides: dict[str, dict[str, float]] = {}
    for option, field in (("--window-s", "window_s"), ("--hop-s", "hop_s")):
        values = _pairs(getattr(args, field, None), option, "eeg=4")
        for m, text in values.items():
            overrides.setdefault(m, {})[field] = _seconds(option, m, text)
    return specs, overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` command group to the ``m2s-train`` parser."""
    parser = subparsers.add_parser(
        "datasets", help="inspect dataset folders", description=__doc__.splitlines()[0]
    )
    actions = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="summarise a dataset folder or file",
        description="Detect (or take) the dataset kind of PATH, load it and summarise it.",
    )
    inspect.add_argument("path", metavar="PATH", help="dataset folder or file")
    inspect.add_argument(
        "--dataset",
        metavar="NAME",
        default=None,
        help=f"dataset kind, one of {', '.join(LOADERS)} (detected when omitted)",
    )
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--subjects", nargs="+", metavar="S", default=None, help="load only these subjects")
    inspect.add_argument(
        "--include-raw", action="store_true", help="also load raw signals (slower) and report their shapes"
    )
    add_feature_options(inspect)
    inspect.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"include_raw": args.include_raw}
    if args.subjects is not None:
        options["subjects"] = args.subjects
    specs, overrides = feature_options(args)
    dataset = load_dataset(args.path, kind=args.dataset, specs=specs, spec_overrides=overrides, **options)
    summary = describe(dataset, raw_loaded=args.include_raw)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        sys.stdout.write(format_summary(summary) + "\n")
    return 0


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}


def describe(dataset: EmotionDataset, *, raw_loaded: bool = False) -> dict[str, Any]:
    """JSON-ready description: :meth:`EmotionDataset.summary` plus shapes, protocol and label counts.

    Parameters
    ----------
    dataset : EmotionDataset
    raw_loaded : bool
        Whether the dataset was loaded with raw signals; when False, a modality's ``raw`` entry is
        None (not checked) rather than False.

    Returns
    -------
    dict
        The summary keys plus ``trials_per_session`` (counts of trials per (subject, session), as
        {count: n_sessions}), ``default_protocol``, per modality ``shape`` ('W x D' with W the
        min-max vectors per trial), ``vectors_per_trial`` (min/median/max) and, when loaded, raw
        ``sfreq``/``n_channels``/``unit``, and per rating the low/high counts at the default threshold.
    """
    from training.protocols import DEFAULT_PROTOCOLS  # local: keeps the parser import light

    out = dataset.summary()
    out["raw_loaded"] = raw_loaded
    per_session = Counter((t.subject, t.session) for t in dataset.trials)
    out["trials_per_session"] = {str(k): v for k, v in sorted(Counter(per_session.values()).items())}
    out["default_protocol"] = DEFAULT_PROTOCOLS.get(dataset.name)
    lengths = [t.n_windows for t in dataset.trials]
    stats = _stats(lengths)
    for m, info in out["modalities"].items():
        w = f"{stats['min']}" if stats["min"] == stats["max"] else f"{stats['min']}-{stats['max']}"
        info["shape"] = f"{w} x {info['dim']}"
        info["vectors_per_trial"] = stats
        if not raw_loaded:
            info["raw"] = None
        else:
            raws = [t.raw[m] for t in dataset.trials if m in t.raw]
            if raws:
                info["raw_sfreq"] = sorted({float(r.sfreq) for r in raws})
                info["raw_n_channels"] = sorted({len(r.channels) for r in raws})
                info["raw_unit"] = sorted({r.unit for r in raws})
    for rating, entry in out.get("ratings", {}).items():
        low, high = entry["scale"]
        threshold = (low + high) / 2.0
        values = [t.ratings[rating] for t in dataset.trials if rating in t.ratings]
        entry["threshold"] = threshold
        if not np.isfinite(entry["mean"]):  # no trial carries this rating; keep the JSON valid
            entry["mean"] = None
        entry["n_high"] = int(sum(v > threshold for v in values))
        entry["n_low"] = int(len(values) - entry["n_high"])
        if values:
            entry["min"], entry["max"] = float(min(values)), float(max(values))
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`'s output."""
    subjects = summary["subjects"]
    sessions = sorted({tuple(v) for v in summary["sessions_per_subject"].values()})
    session_text = (
        ", ".join(str(s) for s in sessions[0]) + " (every subject)"
        if len(sessions) == 1
        else "; ".join(f"{s}: {v}" for s, v in summary["sessions_per_subject"].items())
    )
    per_session = ", ".join(f"{n} session(s) of {k} trials" for k, n in summary["trials_per_session"].items())
    shown = ", ".join(subjects[:20]) + (f", ... ({len(subjects) - 20} more)" if len(subjects) > 20 else "")
    lines = [
        f"dataset    {summary['dataset']}   ({summary['source']})",
        f"subjects   {summary['n_subjects']}: {shown}",
        f"sessions   {session_text}",
        f"trials     {summary['n_trials']} ({per_session}); {summary['n_windows']} feature vectors",
        f"protocol   {summary['default_protocol'] or 'none by default (pass one)'}",
        "modalities (W x D: feature vectors per trial x feature dimension)",
    ]
    for m, info in summary["modalities"].items():
        raw = info["raw"]
        raw_text = "not loaded (--include-raw)" if raw is None else ("yes" if raw else "no")
        if raw and "raw_sfreq" in info:
            raw_text += f" ({'/'.join(str(c) for c in info['raw_n_channels'])} ch @ "
            raw_text += f"{'/'.join(f'{s:g}' for s in info['raw_sfreq'])} Hz, {'/'.join(info['raw_unit'])})"
        lines.append(
            f"  {m:<8} {info['shape']:<14} every {info['spacing_s']:g} s   "
            f"online: {'yes' if info['reproducible_online'] else 'no (offline-only)'}   raw: {raw_text}"
        )
        lines.append(f"  {'':<8} {info['description']}")
    if "class_balance" in summary:
        balance = ", ".join(f"{name} {n}" for name, n in summary["class_balance"].items())
        lines.append(f"classes    {balance}")
    for rating, entry in summary.get("ratings", {}).items():
        low, high = entry["scale"]
        lines.append(
            f"rating     {rating:<9} scale {low:g}-{high:g}, mean "
            f"{'n/a' if entry['mean'] is None else format(entry['mean'], '.2f')}; "
            f"> {entry['threshold']:g} high: {entry['n_high']}, low: {entry['n_low']}"
        )
    return "\n".join(lines)
