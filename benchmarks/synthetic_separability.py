"""How separable are the classes of the synthetic dataset, per modality? (calibration harness)

For each modality, per-window features are computed through a ``signals`` FeatureSpec, the same
path training and the live service use:

- EEG: ``DESpec`` (SEED bands, BCMI formula) on 1-s windows, flattened channel-major
  (62 × 5 = 310-d with the default montage);
- ECG: ``DESpec`` in the 5 SEED bands on 4-s windows, hop 1 s (2 leads × 5 = 10-d);
- eye: ``EyeSpec`` (the 33 eye features) on 10-s windows, hop 2 s;
- PPS: ``PpsSpec`` (Picard statistics) on 4-s windows, hop 1 s (8 × 6 = 48-d).

Then, per subject and session, a subject-dependent split by WHOLE trials (first 60 % of the
trials train, the rest test), z-scoring fitted on the training windows only, and two
classifiers written in numpy: shrinkage LDA (Ledoit-Wolf shrinkage of the pooled within-class
covariance) on all features, and a 1-D LDA on the single feature that is most discriminative on
the training windows. Balanced accuracy is reported per modality, mean ± std over subjects.

Usage::

    python benchmarks/synthetic_separability.py                     # calibration config
    python benchmarks/synthetic_separability.py --config my.json    # any SyntheticConfig JSON
    python benchmarks/synthetic_separability.py --modalities eeg ecg --subjects 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signals.spec import DESpec, EyeSpec, PpsSpec  # noqa: E402
from synthetic import MODALITIES, SyntheticConfig, SyntheticTrial, iter_trials  # noqa: E402

TRAIN_FRACTION = 0.6
CALIBRATION = {"n_subjects": 6, "n_sessions": 1, "n_trials": 15, "trial_duration_s": 60.0}

# (window s, hop s) per modality
WINDOWS = {"eeg": (1.0, 1.0), "ecg": (4.0, 1.0), "eye": (10.0, 2.0), "pps": (4.0, 1.0)}


def feature_spec(trial: SyntheticTrial, modality: str):
    """The FeatureSpec of a modality: the one feature path training and serving share."""
    win, hop = WINDOWS[modality]
    common = {"sfreq": trial.sfreq[modality], "window_s": win, "hop_s": hop}
    if modality == "eye":
        return EyeSpec(**common)
    channels = trial.channel_names[modality]
    if modality == "pps":
        return PpsSpec(channels=channels, **common)
    return DESpec(modality=modality, channels=channels, unit=trial.units[modality][0], **common)


def trial_features(trial: SyntheticTrial, modality: str) -> np.ndarray:
    """Per-window features of one trial, shape (n_windows, n_features)."""
    return feature_spec(trial, modality).compute(trial.signals[modality]).features


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    recalls = [np.mean(y_pred[y_true == k] == k) for k in range(n_classes) if np.any(y_true == k)]
    return float(np.mean(recalls))


def _lda_fit(x: np.ndarray, y: np.ndarray, n_classes: int):
    """Shrinkage LDA (Ledoit-Wolf towards a scaled identity); returns (weights, biases)."""
    means = np.stack([x[y == k].mean(axis=0) for k in range(n_classes)])
    xc = x - means[y]
    n, p = xc.shape
    cov = xc.T @ xc / n
    mu = np.trace(cov) / p
    delta = np.sum((cov - mu * np.eye(p)) ** 2) / p
    x2 = xc**2  # Ledoit-Wolf, as scikit-learn's ledoit_wolf_shrinkage
    beta = min((np.sum(x2.T @ x2) / n - np.sum(cov**2)) / (p * n), delta)
    shrink = beta / delta if delta > 0 else 1.0
    cov = (1 - shrink) * cov + shrink * mu * np.eye(p)
    w = np.linalg.solve(cov, means.T)  # (p, C)
    priors = np.bincount(y, minlength=n_classes) / n
    b = -0.5 * np.sum(means.T * w, axis=0) + np.log(np.maximum(priors, 1e-12))
    return w, b


def _lda_predict(model, x: np.ndarray) -> np.ndarray:
    w, b = model
    return np.argmax(x @ w + b, axis=1)


def _best_single_feature(xtr, ytr, xte, n_classes: int) -> np.ndarray:
    """1-D LDA on the feature with the best training balanced accuracy; predictions on xte."""
    means = np.stack([xtr[ytr == k].mean(axis=0) for k in range(n_classes)])  # (C, p)
    var = np.maximum(np.mean((xtr - means[ytr]) ** 2, axis=0), 1e-12)  # pooled, (p,)
    # Equal-variance Gaussian scores per feature: argmax_k -(x - m_k)^2 / (2 var).
    pred_tr = np.argmin((xtr[:, None, :] - means[None]) ** 2 / var, axis=1)  # (n, p)
    scores = [balanced_accuracy(ytr, pred_tr[:, j], n_classes) for j in range(xtr.shape[1])]
    j = int(np.argmax(scores))
    return np.argmin((xte[:, None, j] - means[None, :, j]) ** 2, axis=1)


def evaluate_subject(feats: list[np.ndarray], labels: list[int], n_classes: int) -> tuple[float, float]:
    """Balanced accuracy (full LDA, best single feature) of one session's trials, split 60/40 by trial."""
    n_train = int(round(TRAIN_FRACTION * len(feats)))
    y = [np.full(f.shape[0], lab) for f, lab in zip(feats, labels, strict=True)]
    xtr, ytr = np.concatenate(feats[:n_train]), np.concatenate(y[:n_train])
    xte, yte = np.concatenate(feats[n_train:]), np.concatenate(y[n_train:])
    mean = np.nanmean(xtr, axis=0)
    std = np.nanstd(xtr, axis=0)
    std[~(std > 0)] = 1.0
    xtr, xte = ((np.where(np.isfinite(a), a, mean) - mean) / std for a in (xtr, xte))
    full = balanced_accuracy(yte, _lda_predict(_lda_fit(xtr, ytr, n_classes), xte), n_classes)
    single = balanced_accuracy(yte, _best_single_feature(xtr, ytr, xte, n_classes), n_classes)
    return full, single


def run(config: SyntheticConfig, modalities: Sequence[str] = MODALITIES) -> dict[str, np.ndarray]:
    """Per-modality results, array (n_subjects * n_sessions, 2): (full LDA, best single feature)."""
    per_session: dict[tuple[int, int], dict[str, list]] = {}
    labels: dict[tuple[int, int], list[int]] = {}
    for trial in iter_trials(config, modalities=modalities):
        key = (trial.subject, trial.session)
        labels.setdefault(key, []).append(trial.label)
        for m in modalities:
            per_session.setdefault(key, {}).setdefault(m, []).append(trial_features(trial, m))
    return {
        m: np.array([evaluate_subject(per_session[k][m], labels[k], config.n_classes) for k in per_session])
        for m in modalities
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="SyntheticConfig JSON (default: calibration config)")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument("--subjects", type=int, help="override n_subjects")
    parser.add_argument("--seed", type=int, help="override seed")
    args = parser.parse_args(argv)
    config = SyntheticConfig.from_json(args.config) if args.config else SyntheticConfig(**CALIBRATION)
    overrides = {k: v for k, v in (("n_subjects", args.subjects), ("seed", args.seed)) if v is not None}
    if overrides:
        config = config.model_copy(update=overrides)
        config = SyntheticConfig.model_validate(config.model_dump())
    t0 = time.perf_counter()
    results = run(config, args.modalities)
    elapsed = time.perf_counter() - t0
    print(
        f"seed={config.seed} subjects={config.n_subjects} sessions={config.n_sessions} "
        f"trials={config.n_trials} x {config.trial_duration_s:g} s, classes={config.n_classes}, "
        f"train=first {TRAIN_FRACTION:.0%} of trials ({elapsed:.1f} s)"
    )
    print(f"{'modality':<9}{'n_feat':>7}  {'LDA bal. acc':>16}  {'best single feature':>20}")
    for m, r in results.items():
        n_feat = {"eeg": 5 * len(config.eeg.channel_names), "ecg": 5 * len(config.ecg.channel_names),
                  "eye": 33, "pps": 48}[m]  # fmt: skip
        print(
            f"{m:<9}{n_feat:>7}  {100 * r[:, 0].mean():7.1f} ± {100 * r[:, 0].std():5.1f}  "
            f"{100 * r[:, 1].mean():11.1f} ± {100 * r[:, 1].std():5.1f}"
        )
    print(f"chance = {100 / config.n_classes:.1f} %")


if __name__ == "__main__":
    main()
