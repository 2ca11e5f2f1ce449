"""Fixed facts of the SEED-family datasets: channel order, trial labels, class names, subject lists.

Sources are in docs/design/datasets.md (section numbers below). SEED, SEED-IV and SEED-V share
the 62-channel montage and the five DE bands (``signals.bands.SEED_BANDS``).
"""

from __future__ import annotations

# docs/design/datasets.md §6.1 (TorchEEG SEED/SEED-IV/SEED-V constants are identical): row order of raw arrays and
# axis 0 of the released (62, W, 5) DE features.
SEED_CHANNELS: tuple[str, ...] = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8",
    "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8",
    "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8",
    "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8",
    "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8",
    "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)  # fmt: skip

# Sampling rate of SEED Preprocessed_EEG and of SEED-IV eeg_raw_data (the latter "treated as", §2.3).
SEED_SFREQ = 200.0
# Band names, in the order of axis 2 of the released (62, W, 5) arrays and of SEED_Multimodal's band dicts.
SEED_BAND_NAMES: tuple[str, ...] = ("delta", "theta", "alpha", "beta", "gamma")

# --- SEED (§1) -------------------------------------------------------------------------------------------
SEED_N_TRIALS = 15
# label.mat values per trial (same for every subject and session): 1 positive, 0 neutral, -1 negative.
SEED_TRIAL_LABELS_RAW: tuple[int, ...] = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)
# Class index = label.mat value + 1 (also the SEED_Multimodal train_label/test_label code, §1.5 [I]).
SEED_CLASS_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")
# Classic ExtractedFeatures: the 12 keys stored per trial, in file order (§1.4).
SEED_FEATURE_KEYS: tuple[str, ...] = (
    "de_movingAve", "de_LDS", "psd_movingAve", "psd_LDS", "dasm_movingAve", "dasm_LDS",
    "rasm_movingAve", "rasm_LDS", "asm_movingAve", "asm_LDS", "dcau_movingAve", "dcau_LDS",
)  # fmt: skip
# Rows (channels or channel pairs) of each feature family in ExtractedFeatures.
SEED_FEATURE_ROWS: dict[str, int] = {"de": 62, "psd": 62, "dasm": 27, "rasm": 27, "asm": 54, "dcau": 23}
# Prefix of the Preprocessed_EEG keys ('{prefix}_eeg{t}') per subject 1..15 (§1.3 [I]; loaders use a regex).
SEED_SUBJECT_PREFIXES: tuple[str, ...] = (
    "djc", "jl", "jj", "lqj", "ly", "mhw", "phl", "sxy", "wk", "ww", "wsf", "wyw", "xyl", "ys", "zjy",
)  # fmt: skip
# SEED_Multimodal: subjects with eye data (§1.1) and the built-in 9:6 split of each file (§1.5).
SEED_MULTIMODAL_SUBJECTS: tuple[int, ...] = (1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14)
SEED_MULTIMODAL_TRAIN_TRIALS: tuple[int, ...] = tuple(range(1, 10))
SEED_MULTIMODAL_TEST_TRIALS: tuple[int, ...] = tuple(range(10, 16))
SEED_EYE_DIM = 33

# --- SEED-IV (§2) ----------------------------------------------------------------------------------------
SEED_IV_N_TRIALS = 24
# Trial labels per session (ReadMe.txt), the same for every subject: 0 neutral, 1 sad, 2 fear, 3 happy.
SEED_IV_SESSION_LABELS: dict[int, tuple[int, ...]] = {
    1: (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    2: (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    3: (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
}
SEED_IV_CLASS_NAMES: tuple[str, ...] = ("neutral", "sad", "fear", "happy")
# eeg_feature_smooth: the 4 keys stored per trial, in file order (§2.4).
SEED_IV_FEATURE_KEYS: tuple[str, ...] = ("de_movingAve", "de_LDS", "psd_movingAve", "psd_LDS")
# eeg_raw_data key prefixes per subject 1..15 (§2.3 [I]; loaders use a regex).
SEED_IV_SUBJECT_PREFIXES: tuple[str, ...] = (
    "cz", "ha", "hql", "ldy", "ly", "mhw", "mz", "qyt", "rx", "tyc", "whh", "wll", "wq", "zjd", "zjy",
)  # fmt: skip
SEED_IV_EYE_DIM = 31

# --- SEED-V (§3) -----------------------------------------------------------------------------------------
SEED_V_N_SESSIONS = 3
SEED_V_TRIALS_PER_SESSION = 15
# Trial labels per session (TorchEEG seed_v.py): 0 disgust, 1 fear, 2 sad, 3 neutral, 4 happy.
SEED_V_SESSION_LABELS: dict[int, tuple[int, ...]] = {
    1: (4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0),
    2: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
    3: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
}
SEED_V_CLASS_NAMES: tuple[str, ...] = ("disgust", "fear", "sad", "neutral", "happy")
SEED_V_EYE_DIM = 33

# Folder or file names that identify a dataset's root, used to tell users which dataset a folder
# looks like when they point a loader at the wrong one.
DATASET_MARKERS: dict[str, tuple[str, ...]] = {
    "SEED": ("ExtractedFeatures", "Preprocessed_EEG", "ExtractedFeatures_1s", "ExtractedFeatures_4s",
             "SEED_EEG", "eeg_used_4s", "eeg_used_1s", "02-EEG-DE-feature", "SEED_Multimodal"),
    "SEED-IV": ("eeg_feature_smooth", "eye_feature_smooth", "eeg_raw_data"),
    "SEED-V": ("EEG_DE_features", "Eye_movement_features"),
    "DEAP": ("data_preprocessed_python", "data_preprocessed_matlab", "s01.dat"),
    "DREAMER": ("DREAMER.mat",),
}  # fmt: skip
