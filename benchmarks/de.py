"""DE of one window (62 channels x 1 s @ 200 Hz x 5 bands): ours vs the common per-channel, per-band filter loop.

The baseline is what public EEG toolkits typically do (e.g. torcheeg's BandDifferentialEntropy):
for every channel and band, design a 5th-order Butterworth band-pass, ``lfilter`` the channel,
take the variance, ``0.5 * log2(2*pi*e*var)``. Both are timed in the same run, on the same data;
the script prints both medians and the ratio. Target: ours >= 200x faster.

Usage: python benchmarks/de.py [--repeats N]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy.signal import butter, lfilter

from signals.bands import SEED_BANDS
from signals.de import differential_entropy
from signals.spec import DESpec

N_CHANNELS, SFREQ = 62, 200


def naive_de(window: np.ndarray, sfreq: float) -> np.ndarray:
    """Per channel, per band: Butterworth design + lfilter + variance (the baseline)."""
    out = np.empty((window.shape[0], len(SEED_BANDS)))
    for c in range(window.shape[0]):
        for j, band in enumerate(SEED_BANDS):
            b, a = butter(5, [band.low, band.high], btype="bandpass", fs=sfreq)
            out[c, j] = 0.5 * np.log2(2 * np.pi * np.e * np.var(lfilter(b, a, window[c])))
    return out


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs of ours (baseline: repeats/10)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    window = rng.normal(0, 20, (N_CHANNELS, SFREQ))  # µV
    channels = tuple(f"ch{i}" for i in range(N_CHANNELS))
    extractor = DESpec(modality="eeg", sfreq=SFREQ, channels=channels, window_s=1, hop_s=1).build_extractor()
    stream = rng.normal(0, 20, (N_CHANNELS, SFREQ * (args.repeats + 2)))
    position = [0]

    def streaming_hop():
        # One hop of live data: push 1 s (one LSL-sized chunk) and get one DE vector.
        i = position[0]
        frames = extractor.push(stream[:, i : i + SFREQ], np.arange(i, i + SFREQ) / SFREQ)
        position[0] = i + SFREQ
        assert len(frames) == 1

    t_naive = median_time(lambda: naive_de(window, SFREQ), max(3, args.repeats // 10))
    t_bcmi = median_time(lambda: differential_entropy(window, SFREQ, formula="bcmi"), args.repeats)
    t_gauss = median_time(lambda: differential_entropy(window, SFREQ, formula="gaussian"), args.repeats)
    t_stream = median_time(streaming_hop, args.repeats)

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"window: {N_CHANNELS} channels x {SFREQ} samples (1 s @ {SFREQ} Hz), {len(SEED_BANDS)} bands")
    print(f"{'method':<44}{'median ms':>12}{'speed-up':>12}")
    print(f"{'baseline: butter(5)+lfilter+var per ch/band':<44}{t_naive * 1e3:>12.3f}{1.0:>11.1f}x")
    for name, t in [
        ("ours: differential_entropy bcmi", t_bcmi),
        ("ours: differential_entropy gaussian", t_gauss),
        ("ours: streaming extractor, one 1-s hop", t_stream),
    ]:
        print(f"{name:<44}{t * 1e3:>12.3f}{t_naive / t:>11.1f}x")
    ratio = t_naive / t_bcmi
    print(f"ratio={ratio:.0f}x target=200x {'MET' if ratio >= 200 else 'NOT MET'}")


if __name__ == "__main__":
    main()
