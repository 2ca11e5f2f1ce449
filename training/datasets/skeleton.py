"""The skeleton every dataset loader fills: one order of checks, one set of messages, one log line.

A loader module (``training.datasets.<kind>``) keeps only what is specific to its format, in a
:class:`Loader` subclass whose ``load`` its module-level ``load`` calls:

- :meth:`Loader.locate` finds the dataset under ``path`` (folders, files, a file header) and says
  which subjects and modalities it holds and what their labels mean (a :class:`Source`);
- :meth:`Loader.read_subject` reads the trials of one subject;
- :meth:`Loader.infos` says what each modality's feature vectors are;
- loaders that compute features from raw signals (``computed = True``) give
  :meth:`Loader.default_specs`, and :meth:`Loader.resolve_specs` checks the caller's specs against
  the data (sampling rate, channels, one hop for paired modalities).

:meth:`Loader.load` runs them in one order, the same for every dataset: options, path, source,
modalities, ``include_raw``, subjects, specs, trials, modality infos, the dataset, one log line.
So an unknown subject, an unknown modality or an unknown option gives the same error whichever
loader is asked. Helpers for the parts loaders share inside their own steps: :func:`find_files`
and :func:`require_file` (discovery and "which file is missing" errors), :func:`featurise` and
:func:`raw_signals` (``spec.compute`` + :func:`~training.datasets.pairing.pair_frames`, the live
service's feature path).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from signals.streaming import FeatureFrames

from .base import DatasetError, EmotionDataset, ModalityInfo, RawSignal, Trial
from .pairing import AnySpec, modality_info, pair_frames
from .spec_options import resolve_specs

logger = logging.getLogger(__name__)


@dataclass
class Source:
    """What a loader found at a path, before reading any trial.

    Attributes
    ----------
    root : str | Path
        What the dataset is read from (``EmotionDataset.source``, named in messages).
    subjects : dict of str to object
        Subject id -> the loader's handle on that subject's data (files, an index...), in dataset
        order (the order trials come back in).
    modalities : tuple of str
        The modalities this source holds.
    absent : dict of str to str
        Modalities of the format this source lacks -> why (e.g. a missing eye folder). Asking for
        one is an error; loading all modalities goes on without them, with a warning.
    no_raw : str | None
        Why ``include_raw=True`` cannot be honoured here (the error message), None when it can.
    class_names : tuple of str | None
        Names of ``Trial.label`` values.
    rating_scales : dict of str to (float, float)
        Range of each rating.
    sfreqs : dict of str to float
        Computed loaders: sampling rate (Hz) of each modality's raw signal (a spec must match it).
    channels : dict of str to tuple of str
        Computed loaders: the channels a modality's spec may pick from (absent: not checked).
    context : object
        Anything else the loader's own steps need (a decoded file, a layout).
    """

    root: str | Path
    subjects: dict[str, Any]
    modalities: tuple[str, ...]
    absent: dict[str, str] = field(default_factory=dict)
    no_raw: str | None = None
    class_names: tuple[str, ...] | None = None
    rating_scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    sfreqs: dict[str, float] = field(default_factory=dict)
    channels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    context: Any = None


class Loader(ABC):
    """A dataset format: the steps :meth:`load` runs, in its order, for every dataset kind.

    Class attributes
    ----------------
    name : str
        The dataset kind (``EmotionDataset.name``, the key in ``training.datasets.LOADERS``).
    title : str
        How messages name the dataset, e.g. ``'SEED-IV'``.
    options : dict of str to (default, allowed values | None)
        The loader's own keyword options; :meth:`load` fills defaults and refuses unknown names and
        values outside ``allowed`` (None: any value; the loader checks it).
    computed : bool
        Whether features are computed from raw signals (then ``specs``/``spec_overrides`` apply).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    options: ClassVar[dict[str, tuple[Any, tuple[Any, ...] | None]]] = {}
    computed: ClassVar[bool] = False

    # ------------------------------------------------------------------------------ the skeleton

    def load(
        self,
        path: Any,
        *,
        modalities: Iterable[str] | str | None = None,
        subjects: Iterable[str | int] | str | int | None = None,
        include_raw: bool = False,
        specs: Mapping[str, AnySpec] | None = None,
        spec_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> EmotionDataset:
        """Load ``path`` as an :class:`EmotionDataset` (the module docstring lists the steps)."""
        if not self.computed:  # released features: a spec is an unknown option, as any other
            given = {"specs": specs, "spec_overrides": spec_overrides}
            options.update({k: v for k, v in given.items() if v is not None})
        opts = check_options(options, self.options, self.title)
        source = self.locate(self.check_path(path), opts, dict(specs or {}))
        where = self.where(source)
        wanted = select_modalities(modalities, source.modalities, source.absent, where)
        if include_raw and source.no_raw is not None:
            raise DatasetError(source.no_raw)
        ids = select_subjects(subjects, list(source.subjects), where, self.subject_id)
        chosen = self.resolve_specs(source, wanted, specs, spec_overrides, opts) if self.computed else {}
        trials = self.read(source, ids, wanted, chosen, include_raw, opts)
        infos = self.infos(source, wanted, chosen, opts)
        dataset = EmotionDataset(
            name=self.name,
            trials=trials,
            modalities={m: infos[m] for m in wanted},
            class_names=source.class_names,
            rating_scales=dict(source.rating_scales),
            source=str(source.root),
        )
        logger.info(
            "%s: %d subjects, %d trials, modalities %s, from %s",
            self.title,
            len(ids),
            len(trials),
            list(wanted),
            source.root,
        )
        return dataset

    # ------------------------------------------------------------------------------ the format's parts

    def check_path(self, path: Any) -> Any:
        """``path`` as a Path (TypeError for anything but str or Path); override to accept more."""
        return check_path(path)

    @abstractmethod
    def locate(self, path: Any, options: dict[str, Any], specs: dict[str, AnySpec]) -> Source:
        """Find the dataset at ``path``; raise DatasetError saying what was expected when it is not there.

        ``specs`` are the caller's whole specs (a loader whose modalities are the ones it is given,
        like recordings, reads them; the others ignore them).
        """

    @abstractmethod
    def read_subject(
        self,
        source: Source,
        subject: str,
        modalities: tuple[str, ...],
        specs: dict[str, AnySpec],
        include_raw: bool,
        options: dict[str, Any],
    ) -> list[Trial]:
        """The trials of one subject, in (session, trial) order, with the ``modalities`` features."""

    def read(
        self,
        source: Source,
        subjects: list[str],
        modalities: tuple[str, ...],
        specs: dict[str, AnySpec],
        include_raw: bool,
        options: dict[str, Any],
    ) -> list[Trial]:
        """The trials of every subject in ``subjects`` order (override to read them in parallel)."""
        trials: list[Trial] = []
        for subject in subjects:
            got = self.read_subject(source, subject, modalities, specs, include_raw, options)
            logger.debug("%s subject %s: %d trials", self.title, subject, len(got))
            trials.extend(got)
        return trials

    def infos(
        self, source: Source, modalities: tuple[str, ...], specs: dict[str, AnySpec], options: dict[str, Any]
    ) -> dict[str, ModalityInfo]:
        """What each modality's vectors are; computed loaders: the spec's, described by :meth:`describe`.

        Features that depend on preprocessing the live service does not do (:meth:`offline_only`)
        are marked ``reproducible_online=False``, so a bundle says so and the service warns.
        """
        infos = {m: modality_info(specs[m], self.describe(source, m, specs[m], options)) for m in modalities}
        reason = self.offline_only(options)
        if reason is None:
            return infos
        return {
            m: replace(
                info, reproducible_online=False, description=f"{info.description}; offline only: {reason}"
            )
            for m, info in infos.items()
        }

    def offline_only(self, options: dict[str, Any]) -> str | None:
        """Why the loader's preprocessing with ``options`` cannot be reproduced live, or None."""
        return None

    def describe(self, source: Source, modality: str, spec: AnySpec, options: dict[str, Any]) -> str:
        """``ModalityInfo.description`` of a computed modality."""
        return f"{self.title} {modality}, {spec.kind} features"

    def default_specs(self, source: Source, options: dict[str, Any]) -> dict[str, AnySpec]:
        """Computed loaders: the spec of every modality of ``source`` when the caller gives none."""
        raise NotImplementedError(f"the {self.title} loader computes features but gives no default specs.")

    def resolve_specs(
        self,
        source: Source,
        modalities: tuple[str, ...],
        specs: Mapping[str, AnySpec] | None,
        spec_overrides: Mapping[str, Mapping[str, Any]] | None,
        options: dict[str, Any],
    ) -> dict[str, AnySpec]:
        """The spec of each wanted modality: default, replaced by ``specs``, overridden, checked."""
        chosen = resolve_specs(
            self.default_specs(source, options), specs, spec_overrides, modalities, self.title
        )
        check_specs(chosen, source.sfreqs, source.channels)
        return chosen

    def subject_id(self, subject: Any) -> str:
        """The dataset's id for a subject the caller names (default: ``str`` of a str or an int)."""
        if isinstance(subject, bool) or not isinstance(subject, (str, int, np.integer)):
            raise TypeError(f"subjects must hold str or int ids, got {type(subject).__name__}.")
        return str(subject)

    def where(self, source: Source) -> str:
        """How messages name the dataset being read."""
        return f"{self.title} ({source.root})"


# ---------------------------------------------------------------------------------- shared steps


def check_path(path: Any) -> Path:
    """``path`` as a Path, user folder expanded; TypeError for anything but str or Path."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be an instance of str, Path, got {type(path).__name__} instead.")
    return Path(path).expanduser()


def check_options(options: Mapping[str, Any], allowed: Mapping[str, tuple[Any, Any]], title: str) -> dict:
    """Fill defaults and validate ``**options`` against ``{name: (default, allowed values | None)}``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for the {title} loader; known options: {sorted(allowed)}."
        )
    out = {}
    for name, (default, values) in allowed.items():
        value = options.get(name, default)
        if values is not None and value not in values:
            raise ValueError(
                f"Invalid value for the '{name}' parameter. Allowed values are "
                f"{', '.join(repr(v) for v in values)}, but got {value!r} instead."
            )
        out[name] = value
    return out


def select_modalities(
    modalities: Iterable[str] | str | None,
    available: Sequence[str],
    absent: Mapping[str, str],
    where: str,
) -> tuple[str, ...]:
    """The requested modalities, in request order (None: all ``available``).

    Raises
    ------
    TypeError
        ``modalities`` is not a str or an iterable of str.
    DatasetError
        A modality the source lacks (``absent`` says why) or that the dataset does not have, or none.
    """
    if modalities is None:
        for m, why in absent.items():
            logger.warning("%s: %s; loading %s without '%s'.", where, why, list(available), m)
        return tuple(available)
    if isinstance(modalities, str):
        modalities = (modalities,)
    if not isinstance(modalities, Iterable):
        raise TypeError(f"modalities must be a list or tuple of str, got {type(modalities).__name__}.")
    modalities = tuple(dict.fromkeys(modalities))
    for m in modalities:
        if m in absent:
            raise DatasetError(f"{absent[m]}; cannot load the '{m}' modality.")
    bad = [m for m in modalities if m not in available]
    if bad or not modalities:
        raise DatasetError(
            f"{where} has modalities {list(available)}; cannot load {bad or 'none'}. Pass a non-empty "
            "subset of them (or None for all)."
        )
    return modalities


def select_subjects(
    subjects: Iterable[Any] | str | int | None,
    available: Sequence[str],
    where: str,
    subject_id=str,
) -> list[str]:
    """The requested subjects, in dataset (``available``) order (None: all).

    Parameters
    ----------
    subjects : str | int | sequence of str or int | None
    available : sequence of str
        The dataset's subject ids, in order.
    where : str
        The dataset, for the message.
    subject_id : callable
        Caller's name of a subject -> the dataset's id (e.g. ``7`` -> ``'s07'`` for DEAP).

    Raises
    ------
    TypeError
        ``subjects`` is not an id or an iterable of ids.
    DatasetError
        ``subjects`` is empty or names subjects the dataset does not have (the message lists those it has).
    """
    if subjects is None:
        return list(available)
    if isinstance(subjects, (str, int, np.integer)):
        subjects = (subjects,)
    if not isinstance(subjects, Iterable):
        raise TypeError(f"subjects must be a list of str or int, got {type(subjects).__name__} instead.")
    ids = [subject_id(s) for s in subjects]
    missing = [s for s in dict.fromkeys(ids) if s not in available]
    if missing:
        raise DatasetError(f"subject(s) {missing} not in {where}; it has {list(available)}.")
    if not ids:
        raise DatasetError(f"subjects is empty; pass some of {list(available)} (or None for all).")
    return [s for s in available if s in set(ids)]


def check_specs(
    specs: Mapping[str, AnySpec], sfreqs: Mapping[str, float], channels: Mapping[str, Sequence[str]]
) -> None:
    """Refuse specs whose sampling rate is not the data's, whose channels the data lacks, or whose hops differ.

    Raises
    ------
    DatasetError
        Naming the modality, what the spec asks for and what the data has.
    """
    for m, spec in specs.items():
        if m in sfreqs and abs(spec.sfreq - sfreqs[m]) > 1e-6 * sfreqs[m]:
            raise DatasetError(
                f"specs['{m}'].sfreq is {spec.sfreq} Hz but the data is sampled at {sfreqs[m]} Hz. Give a "
                f"spec with sfreq={sfreqs[m]}."
            )
        if m in channels and not set(spec.channels) <= set(channels[m]):
            extra = [c for c in spec.channels if c not in set(channels[m])]
            raise DatasetError(
                f"specs['{m}'] asks for channels {extra} that the data does not have; '{m}' has "
                f"{list(channels[m])}."
            )
    hops = {m: s.hop_s for m, s in specs.items()}
    if len(set(hops.values())) > 1:
        raise DatasetError(
            f"the specs of {list(specs)} must share one hop_s to be paired, got {hops}; give each the same "
            "hop (--hop-s MOD=SECONDS for every modality, or spec_overrides)."
        )


def find_files(folder: Path, pattern: str | re.Pattern, expected: str, *, glob: str = "*") -> list[re.Match]:
    """Files under ``folder`` whose path relative to it matches ``pattern``, in sorted path order.

    Parameters
    ----------
    folder : Path
    pattern : str | re.Pattern
        Full match on the posix path relative to ``folder`` (e.g. ``r'(\\d+)/(\\d+)_\\d+\\.mat'``).
    expected : str
        What the files look like, for the error (e.g. ``"'{subject}_123.npz' files"``).
    glob : str
        Candidates (``'*'``: the folder's own entries; ``'*/*.mat'``: one level down).

    Returns
    -------
    list of re.Match
        Each match's ``string`` is the relative path; ``folder / m.string`` is the file.

    Raises
    ------
    DatasetError
        No file matches; the message lists what the folder holds.
    """
    pattern = re.compile(pattern)
    hits = []
    for p in sorted(folder.glob(glob)):
        match = pattern.fullmatch(p.relative_to(folder).as_posix())
        if match and p.is_file():
            hits.append(match)
    if not hits:
        try:
            contents = sorted(p.name for p in folder.iterdir())
        except OSError:
            contents = []
        shown = contents[:10] + (["..."] if len(contents) > 10 else [])
        raise DatasetError(f"{folder} has no {expected} (it holds {shown or 'nothing'}).")
    return hits


def require_file(path: Path, why: str) -> Path:
    """``path`` if it is a file, else a DatasetError ``'<path> is missing; <why>.'``."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing; {why}.")
    return path


def featurise(
    specs: Mapping[str, AnySpec],
    signals: Mapping[str, np.ndarray],
    sfreqs: Mapping[str, float],
    *,
    where: str,
    timestamps: Mapping[str, np.ndarray] | None = None,
    max_count_gap: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of one trial: each modality through ``spec.compute`` (the live path), then paired in time.

    Parameters
    ----------
    specs : dict of str to FeatureSpec
    signals : dict of str to array, shape (n_channels, n_times)
        Each modality's raw signal, the spec's channels in the spec's unit.
    sfreqs : dict of str to float
        Sampling rate (Hz) of each signal.
    where : str
        The trial, for messages (e.g. ``"subject s01 trial 3"``).
    timestamps : dict of str to array, shape (n_times,) | None
        Sample times per modality (gaps split segments as live); None: evenly sampled. An empty
        signal gives no vector.
    max_count_gap : int | None
        Refuse modalities whose vector counts differ by more than this (their recordings do not
        cover the same time); None: pair whatever coincides.

    Returns
    -------
    features : dict of str to array, shape (W, D_m)
    segments : array of int64, shape (W,)
    """
    frames = {}
    for m, x in signals.items():
        t = None if timestamps is None else timestamps[m]
        if t is not None and t.size == 0:
            frames[m] = FeatureFrames.concatenate([], specs[m].n_features)
        else:
            frames[m] = specs[m].compute(x, t)
    counts = {m: len(f) for m, f in frames.items()}
    if max_count_gap is not None and counts and max(counts.values()) - min(counts.values()) > max_count_gap:
        lengths = {m: f"{signals[m].shape[1] / sfreqs[m]:.2f} s" for m in signals}
        raise DatasetError(
            f"{where}: the modalities give {counts} windows (recordings of {lengths}); they differ by "
            f"more than {'one window' if max_count_gap == 1 else f'{max_count_gap} windows'}, so they "
            "cannot be paired. The recordings do not cover the same time."
        )
    hop_s = min(specs[m].hop_s for m in signals)  # one shared hop (check_specs)
    return pair_frames(frames, {m: sfreqs[m] for m in signals}, where=where, tolerance_s=0.5 * hop_s)


def raw_signals(
    specs: Mapping[str, AnySpec], signals: Mapping[str, np.ndarray], sfreqs: Mapping[str, float]
) -> dict[str, RawSignal]:
    """``Trial.raw`` of a computed trial: each signal with its rate and its spec's channels and unit."""
    return {
        m: RawSignal(x, float(sfreqs[m]), tuple(specs[m].channels), specs[m].unit) for m, x in signals.items()
    }


__all__ = [
    "Loader",
    "Source",
    "check_options",
    "check_path",
    "check_specs",
    "featurise",
    "find_files",
    "raw_signals",
    "require_file",
    "select_modalities",
    "select_subjects",
]
