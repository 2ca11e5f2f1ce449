"""Hyper-parameters of the M2S network (frozen dataclasses, no torch import).

The service reads configs from bundles without torch, so this module only uses the standard library.
Defaults follow the reference model (docs/design/M2S-SPEC.md §2-§4).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

ATTENTION_KINDS = ("sts", "mha", "none")


def _check_int(value: Any, name: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} instead.")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")


def _check_float(value: Any, name: str, *, low: float, high: float | None = None, low_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} instead.")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value >= high) or value != value:
        upper = f" and < {high}" if high is not None else ""
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}{upper}, got {value}.")


@dataclass(frozen=True, kw_only=True)
class ModalityConfig:
    """One input modality.

    Parameters
    ----------
    name : str
        Modality name, e.g. ``"eeg"``, ``"eye"``, ``"ecg"``, ``"pps"``.
    dim : int
        Size ``D_m`` of one feature vector.
    n_channels : int | None
        Electrode modality (EEG/ECG/PPS): number of channel tokens ``C``; each token holds
        ``dim // n_channels`` values (bands), channel-major (index = channel * B + band).
        ``None`` makes it a sequence modality (e.g. EYE), attended over time.
    """

    name: str
    dim: int
    n_channels: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f"modality name must be a non-empty identifier like 'eeg', got {self.name!r}; "
                "it keys parameter names and ONNX files."
            )
        _check_int(self.dim, f"{self.name}.dim", low=1)
        if self.n_channels is not None:
            _check_int(self.n_channels, f"{self.name}.n_channels", low=1)
            if self.dim % self.n_channels:
                raise ValueError(
                    f"{self.name}.dim ({self.dim}) must be divisible by n_channels ({self.n_channels}): "
                    "an electrode vector is n_channels x n_bands values, channel-major. Check the feature "
                    "spec, or pass n_channels=None for a sequence modality."
                )

    @property
    def is_electrode(self) -> bool:
        """Whether the modality is attended over electrode (channel) tokens."""
        return self.n_channels is not None

    @property
    def n_bands(self) -> int | None:
        """Values per channel token ``B`` (``None`` for a sequence modality)."""
        return None if self.n_channels is None else self.dim // self.n_channels


@dataclass(frozen=True, kw_only=True)
class M2SConfig:
    """Architecture and loss hyper-parameters of M2S (defaults = the reference model).

    Raises ValueError on invalid combinations; see the field comments for the meaning of each.
    """

    modalities: tuple[ModalityConfig, ...]  # K >= 2 for pretraining, 1 allowed for the supervised baseline
    seq_len: int = 5  # T, feature vectors per window
    d_model: int = 128  # D, width of the ER embeddings z
    n_blocks: int = 4  # L, transformer blocks per ER encoder
    d_ff: int = 1024  # feed-forward width inside a block
    n_heads: int = 4  # attention heads (STS/MHA over channels, and over time)
    head_dim: int = 64  # per-head width of the channel attention (time attention uses d_model // n_heads)
    dropout: float = 0.1
    d_ei: int = 128  # EI encoder width (and decoder hidden width)
    proj_dim: int = 32  # shared embedding used by the contrastive loss and the classifier
    attention: str = "sts"  # electrode-modality attention: "sts" | "mha" | "none"
    cpc_steps: int = 1  # N, future steps predicted by M2M CPC
    cpc_hidden: int = 64  # LSTM hidden size of the CPC context networks
    cpc_same_modal_weight: float = 0.1  # weight of same-modality CPC terms (cross-modal terms weigh 1)
    club_hidden: int = 64  # CLUB estimator hidden size (heads use club_hidden // 2 units, as Cheng et al.)
    w_club: float = 0.3  # alpha; 0 switches the loss off
    w_recon: float = 0.1  # beta
    w_contra: float = 1.0  # gamma
    w_cpc: float = 1.0  # lambda
    temperature_init: float = 1 / 0.07  # initial contrastive logit scale (CLIP)

    def __post_init__(self) -> None:
        modalities = self.modalities
        if isinstance(modalities, ModalityConfig) or not isinstance(modalities, (tuple, list)):
            raise TypeError(
                f"modalities must be a tuple of ModalityConfig, got {type(modalities).__name__} instead."
            )
        for m in modalities:
            if not isinstance(m, ModalityConfig):
                raise TypeError(f"modalities must hold ModalityConfig objects, got {type(m).__name__}.")
        object.__setattr__(self, "modalities", tuple(modalities))
        if not modalities:
            raise ValueError("modalities is empty; give at least one ModalityConfig (two for pretraining).")
        names = [m.name for m in modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names must be unique, got {names}.")
        for name in ("seq_len", "d_model", "n_blocks", "d_ff", "n_heads", "head_dim", "d_ei", "proj_dim"):
            _check_int(getattr(self, name), name, low=1)
        for name in ("cpc_steps", "cpc_hidden"):
            _check_int(getattr(self, name), name, low=1)
        _check_int(self.club_hidden, "club_hidden", low=2)
        _check_float(self.dropout, "dropout", low=0.0, high=1.0)
        for name in ("w_club", "w_recon", "w_contra", "w_cpc", "cpc_same_modal_weight"):
            _check_float(getattr(self, name), name, low=0.0)
        _check_float(self.temperature_init, "temperature_init", low=0.0, low_open=True)
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(
                f"Invalid value for the 'attention' parameter. Allowed values are {ATTENTION_KINDS}, "
                f"but got {self.attention!r} instead."
            )
        if self.d_model % self.n_heads and any(not m.is_electrode for m in modalities):
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}): sequence "
                "modalities split d_model across the heads of the time attention."
            )
        if self.w_cpc > 0 and self.seq_len < self.cpc_steps + 2:
            raise ValueError(
                f"M2M CPC predicting cpc_steps={self.cpc_steps} future steps needs seq_len >= "
                f"{self.cpc_steps + 2}, got seq_len={self.seq_len}; lengthen the window, lower cpc_steps, "
                "or set w_cpc=0."
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Modality names in configuration order."""
        return tuple(m.name for m in self.modalities)

    def modality(self, name: str) -> ModalityConfig:
        """Return the configuration of modality ``name`` (KeyError listing the known names)."""
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(f"unknown modality {name!r}; this model has {list(self.names)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (for checkpoints and bundles); inverse of :meth:`from_dict`."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["modalities"] = [dataclasses.asdict(m) for m in self.modalities]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> M2SConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ValueError."""
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict, got {type(d).__name__} instead.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown M2SConfig keys {unknown}; known keys are {sorted(known)}.")
        if "modalities" not in d:
            raise ValueError("the dict has no 'modalities' entry; it must come from M2SConfig.to_dict().")
        kwargs = dict(d)
        kwargs["modalities"] = tuple(ModalityConfig(**m) for m in d["modalities"])
        return cls(**kwargs)
