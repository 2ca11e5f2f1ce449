"""Live feature demo: synthetic multimodal physiology streamed in real time through the live extractors.

One synthetic subject's session (EEG, gaze + pupil, ECG, peripheral signals) is played trial after
trial in small chunks with stream timestamps, the way LSL delivers it. Each modality goes through
the extractor its FeatureSpec builds (the same code training uses), and one line per second shows
the emotion the generator is expressing and a few of the live features.

Run it with ``scripts/features-demo`` (or ``m2s-features-demo``); ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from signals.streaming import StreamingExtractor
from synthetic import MODALITIES, SyntheticConfig, SyntheticTrial, generate_trial


def demo_specs(trial: SyntheticTrial) -> dict[str, DESpec | EyeSpec | HrvSpec | PpsSpec]:
    """The feature specs the demo streams through, keyed by a display name."""
    specs = {}
    if "eeg" in trial.signals:
        specs["eeg"] = DESpec(
            modality="eeg",
            sfreq=trial.sfreq["eeg"],
            channels=trial.channel_names["eeg"],
            window_s=1,
            hop_s=1,
        )
    if "eye" in trial.signals:
        specs["eye"] = EyeSpec(sfreq=trial.sfreq["eye"], window_s=10, hop_s=1)
    if "ecg" in trial.signals:
        ecg = {"sfreq": trial.sfreq["ecg"], "channels": trial.channel_names["ecg"], "unit": "mV"}
        specs["ecg"] = DESpec(modality="ecg", window_s=4, hop_s=1, **ecg)
        specs["ecg_hr"] = HrvSpec(modality="ecg", window_s=10, hop_s=1, **ecg)
    if "pps" in trial.signals:
        specs["pps"] = PpsSpec(
            sfreq=trial.sfreq["pps"], channels=trial.channel_names["pps"], window_s=4, hop_s=1
        )
    return specs


def _source(name: str) -> str:
    return name.split("_")[0]


def _pick(spec, features: np.ndarray | None, names: list[str]) -> list[float]:
    if features is None:
        return [np.nan] * len(names)
    index = {n: i for i, n in enumerate(spec.feature_names())}
    return [float(features[index[n]]) for n in names]


def _num(value: float, fmt: str) -> str:
    """Format a number, or an ellipsis of the same width while its extractor is still filling its window."""
    text = format(value, fmt)
    return text if np.isfinite(value) else "…".rjust(len(text))


def _summary(specs: dict, latest: dict) -> str:
    """One line of selected live features (mean over channels where a feature is per channel)."""
    parts = []
    if "eeg" in specs:
        de = latest.get("eeg")
        bands = [b.name for b in specs["eeg"].bands]
        means = de.reshape(-1, len(bands)).mean(axis=0) if de is not None else [np.nan] * len(bands)
        parts.append(
            "EEG DE " + " ".join(f"{b[0]}{_num(v, '5.1f')}" for b, v in zip(bands, means, strict=True))
        )
    if "eye" in specs:
        pupil, fix, blink, sac = _pick(
            specs["eye"],
            latest.get("eye"),
            ["pupil_left_mean", "fixation_frequency", "blink_frequency", "saccade_amplitude_mean"],
        )
        parts.append(
            f"EYE pupil {_num(pupil, '4.2f')} mm fix {_num(fix, '3.1f')}/s "
            f"blink {_num(blink, '4.2f')}/s sacc {_num(sac, '4.1f')}°"
        )
    if "ecg_hr" in specs:
        spec = specs["ecg_hr"]
        hr = _pick(spec, latest.get("ecg_hr"), [f"{c}:hr_bpm" for c in spec.channels])
        parts.append(f"ECG HR {_num(np.nanmean(hr) if np.isfinite(hr).any() else np.nan, '5.1f')} bpm")
    if "pps" in specs:
        gsr, resp = _pick(specs["pps"], latest.get("pps"), ["GSR:mean", "Respiration:std"])
        parts.append(f"PPS GSR {_num(gsr, '5.2f')} µS resp sd {_num(resp, '5.2f')}")
    return " | ".join(parts)


def run(
    config: SyntheticConfig,
    *,
    subject: int,
    duration_s: float,
    speed: float,
    chunk_s: float,
    modalities: tuple[str, ...],
    out=sys.stdout,
) -> dict[str, int]:
    """Stream the session and print one line per second; return the number of vectors per spec."""
    first = generate_trial(config, subject, 0, 0, modalities=modalities)
    specs = demo_specs(first)
    extractors: dict[str, StreamingExtractor] = {name: spec.build_extractor() for name, spec in specs.items()}
    print(
        f"subject {subject}, classes {list(config.class_names)}, {config.trial_duration_s:g}-s trials; "
        "features computed live (one line per second):",
        file=out,
    )
    for name, spec in specs.items():
        print(
            f"  {name:<7} {spec.kind:<4} {len(spec.channels):>3} ch @ {spec.sfreq:g} Hz -> "
            f"{spec.n_features:>3} features every {spec.hop_s:g} s (window {spec.window_s:g} s)",
            file=out,
        )
    counts = dict.fromkeys(specs, 0)
    latest: dict[str, np.ndarray] = {}
    wall0, offset, trial_index, trial = time.monotonic(), 0.0, 0, first
    while True:
        for t_a in np.arange(0.0, trial.duration_s, chunk_s):
            t_b = min(t_a + chunk_s, trial.duration_s)
            if duration_s and offset + t_a >= duration_s:
                return counts
            if speed > 0:  # real-time pacing against the wall clock
                time.sleep(max(0.0, wall0 + (offset + t_b) / speed - time.monotonic()))
            ticks = []
            for name, ext in extractors.items():
                fs = trial.sfreq[_source(name)]
                a, b = int(round(t_a * fs)), int(round(t_b * fs))
                frames = ext.push(trial.signals[_source(name)][:, a:b], offset + np.arange(a, b) / fs)
                if len(frames):
                    counts[name] += len(frames)
                    latest[name] = frames.features[-1]
                    if name == next(iter(specs)):
                        ticks = frames.timestamps
            for t in ticks:
                print(
                    f"{t:7.1f} s  truth {trial.class_name:<9} | {_summary(specs, latest)}",
                    file=out,
                    flush=True,
                )
        offset += trial.duration_s
        trial_index += 1
        trial = generate_trial(config, subject, 0, trial_index % config.n_trials, modalities=modalities)


def build_parser() -> argparse.ArgumentParser:
    """The ``m2s-features-demo`` parser."""
    parser = argparse.ArgumentParser(
        prog="m2s-features-demo",
        description="Stream synthetic EEG, gaze, ECG and peripheral signals through the live feature extractors.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds of stream to play; 0 = until Ctrl-C (default 60)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = real time, 10 = ten times faster, 0 = as fast as possible",
    )
    parser.add_argument("--subject", type=int, default=0, help="synthetic subject index (default 0)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the config's)")
    parser.add_argument(
        "--config", type=Path, default=None, help="SyntheticConfig JSON file (default: built-in)"
    )
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument(
        "--chunk", type=float, default=0.1, help="chunk length in seconds (default 0.1, like LSL pulls)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SyntheticConfig.from_json(args.config) if args.config else SyntheticConfig()
        if args.seed is not None:
            config = config.model_copy(update={"seed": args.seed})
            SyntheticConfig.model_validate(config.model_dump())
        if not 0 <= args.subject < config.n_subjects:
            raise ValueError(
                f"--subject must be in [0, {config.n_subjects - 1}] for this config, got {args.subject}."
            )
        for flag, value in (("--duration", args.duration), ("--speed", args.speed)):
            if value < 0 or not np.isfinite(value):
                raise ValueError(f"{flag} must be a finite number >= 0, got {value}.")
        if not 0 < args.chunk <= 10:
            raise ValueError(f"--chunk must be in (0, 10] seconds, got {args.chunk}.")
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    try:
        counts = run(
            config,
            subject=args.subject,
            duration_s=args.duration,
            speed=args.speed,
            chunk_s=args.chunk,
            modalities=tuple(args.modalities),
        )
    except KeyboardInterrupt:
        print("\nstopped.")
        return 0
    print("done: " + ", ".join(f"{n} {c} vectors" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
