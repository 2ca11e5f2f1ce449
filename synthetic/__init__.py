"""Synthetic multimodal physiology driven by a shared emotion latent (the M2S test bed).

Raw signals (EEG, eye tracker, ECG, DEAP-style peripheral channels) for a whole synthetic
dataset of subjects × sessions × trials, deterministic and cheap. Features are computed later by
:mod:`signals`, exactly as for recorded data; this package imports :mod:`signals` (never the
other way round).

Generative model
----------------
Every trial has a class ``k`` and a latent trajectory ``z(t)`` of dimension ``latent.dim``
sampled at 20 Hz::

    z(t) = intensity(t) · μ_k + ε(t)

Each modality reads ``z`` through its own linear map to a few *drivers* that set physiological
parameters (:mod:`synthetic.latent`). Shared physiology — eye movements and blinks, breathing,
heartbeats — is simulated once per trial (:mod:`synthetic.physiology`) and rendered by one module
per modality: :mod:`synthetic.eeg`, :mod:`synthetic.eye`, :mod:`synthetic.ecg`,
:mod:`synthetic.pps`. :mod:`synthetic.config` holds the configs (:class:`SyntheticConfig`) and
channel layouts, :mod:`synthetic.trial` assembles a :class:`SyntheticTrial`.

Shared physiology (blinks and gaze: EEG/eye/PPS; beats and breathing: ECG/PPS) is coupled across
modalities as it is in a body; sensor noise, gains, drifts and artefacts are modality-specific.
Every trial uses its own random streams derived with :class:`numpy.random.SeedSequence` from
``(seed, subject, session, trial, component)``, so a trial is reproducible alone, and generating
fewer modalities never changes the ones generated.

Calibration
-----------
Measured on 2026-11-24 with ``benchmarks/synthetic_separability.py`` (default config except
6 subjects × 1 session × 15 trials × 60 s; first 9 trials train, last 6 test; shrinkage LDA on
z-scored per-window features; balanced accuracy, mean ± std over subjects):

    ====  ========  =========================  =========================  ====================
    seed  modality  features                   LDA balanced accuracy (%)  best single feature
    ====  ========  =========================  =========================  ====================
    0     EEG       DE 62×5, 1-s windows       62.1 ± 5.3                 33.1 ± 5.9
    0     eye       33 eye features, 10 s/2 s  71.4 ± 11.4                51.8 ± 6.1
    0     ECG       DE 2×5, 4 s/1 s            72.2 ± 13.0                56.9 ± 12.5
    0     PPS       Picard 8×6, 4 s/1 s        77.7 ± 7.7                 58.7 ± 10.2
    1     EEG                                  68.5 ± 8.8                 45.0 ± 7.1
    2     EEG                                  69.1 ± 9.6                 39.1 ± 5.0
    ====  ========  =========================  =========================  ====================

Chance is 33.3 %. The EEG effect size (2.5) was then set with the deep supervised baseline of
``m2s-train benchmark`` (ER encoder + classifier on T = 5 vectors of 2-s DE windows, all 15
default subjects): 85.9 % EEG→EEG at 2.5, against 90.8 % at 3, 98.0 % at 4 and 99.3 % at the
first default of 6, which left no room to compare methods; the same baseline gives 74.7 % for
the eye. Every modality's best single feature stays far below its full classifier. Most of the
remaining error is shared by all modalities (latent noise, the intensity ramp at trial onset),
the rest is modality-specific (per-trial gains and offsets, sensor noise). Re-run
``python benchmarks/synthetic_separability.py [--seed N] [--config file.json]`` after changing a
default.

Timing (measured on 2026-11-24, one core, OMP/BLAS threads = 1): one 60-s trial with all four
modalities and the default 62-channel EEG takes about 0.11 s (EEG 0.10 s, eye, ECG and PPS
about 5 ms each).
"""

from signals.eye import EYE_CHANNELS

from .config import (
    EEG_BAND_NAMES,
    EEG_BANDS_HZ,
    EYE_UNITS,
    MODALITIES,
    PPS_CHANNELS,
    PPS_UNITS,
    SEED_CHANNELS,
    EcgConfig,
    EegConfig,
    EyeConfig,
    LatentConfig,
    PpsConfig,
    SyntheticConfig,
)
from .latent import class_patterns, trial_labels
from .trial import SyntheticTrial, generate_trial, iter_trials

__all__ = [
    "EEG_BANDS_HZ",
    "EEG_BAND_NAMES",
    "EYE_CHANNELS",
    "EYE_UNITS",
    "MODALITIES",
    "PPS_CHANNELS",
    "PPS_UNITS",
    "SEED_CHANNELS",
    "EcgConfig",
    "EegConfig",
    "EyeConfig",
    "LatentConfig",
    "PpsConfig",
    "SyntheticConfig",
    "SyntheticTrial",
    "class_patterns",
    "generate_trial",
    "iter_trials",
    "trial_labels",
]
