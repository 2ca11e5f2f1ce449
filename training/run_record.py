"""The run record: what a training run was trained on, written once and read, never re-derived.

``m2s-train pretrain`` writes ``RUN/run.json`` (and the same record into ``pretrain.pt``) before it
trains; ``finetune``, ``evaluate`` and ``export`` read it. It holds, per training modality, the
resolved :class:`~signals.spec.FeatureSpec` (None plus a description for released features no spec
reproduces), the spacing of the feature vectors and the feature dimension; T (``seq_len``); the
normalisation statistics fitted on the training trials; the split (name, protocol, the train,
validation and test trial keys); the task; the dataset (kind, path, fingerprint) and the loader
options (modalities, subjects, whole specs, spec overrides) that produced the data.

A reader (:func:`load_run_data`) loads the dataset with the recorded loader options, then refuses
(:class:`RunRecordMismatch`, a ValueError naming what differs and what to do) when the data do not
match the record: another dataset kind, a modality whose spec, dimension or spacing differs, a
trial whose features differ (fingerprint), or normalisation statistics recomputed from the
recorded training trials that differ from the recorded ones beyond float tolerance. It rebuilds the
split from the recorded trial keys and windows every part with the *recorded* normalisation.

Fingerprint (:data:`FINGERPRINT_METHOD`): a SHA-256 per trial over what the loader produced from
the files (trial key, label, ratings, and every feature array of the recorded modalities as
little-endian float64), over the trials of the run's subject. It is not a hash of the files:
hashing every byte of a multi-GB SEED folder (raw EEG included, which the features never read) on
each command would take minutes, while the feature arrays are already in memory after loading and
hash in well under a second. It ignores what cannot change the model's inputs (file times, a copy
to another folder, unrelated files or a run folder inside the dataset folder) and catches what
can (edited or replaced files, a loader that now computes other numbers). Features computed from
raw signals on another machine could differ in the last bits (other BLAS/FFT code paths); that
is refused too, and the message says so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from training.datasets.base import EmotionDataset, Trial
from training.protocols import Normaliser, Split, Task, Windows

logger = logging.getLogger(__name__)

RUN_RECORD_NAME = "run.json"
RUN_RECORD_FORMAT = "m2s-run-record"
RUN_RECORD_VERSION = 1
FINGERPRINT_METHOD = "features-sha256-v1"
#: Tolerance of a recomputed normaliser against the recorded one (``np.allclose``).
NORMALISER_RTOL = 1e-9
NORMALISER_ATOL = 1e-12
_SPACING_TOL = 1e-9

_Spec = Annotated[DESpec | EyeSpec | HrvSpec | PpsSpec, Field(discriminator="kind")]
TrialKey = tuple[str, int, int]


class RunRecordMismatch(ValueError):
    """The data handed to a command differ from what the run was trained on; the message says how."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModalityRecord(_Model):
    """One training modality: how its feature vectors were made.

    Attributes
    ----------
    spec : FeatureSpec | None
        The resolved spec; None for released features no spec reproduces (``description`` says
        what they are).
    description : str
        The loader's description of the features.
    dim : int
        D, the feature dimension.
    spacing_s : float
        Seconds between consecutive feature vectors (the spacing of the T vectors of a window).
    reproducible_online : bool
        Whether the live service can compute exactly these features.
    """

    spec: _Spec | None
    description: str
    dim: int = Field(ge=1)
    spacing_s: float = Field(gt=0)
    reproducible_online: bool


class Fingerprint(_Model):
    """What the loader produced from the dataset files, hashed (see the module notes).

    Attributes
    ----------
    method : str
        :data:`FINGERPRINT_METHOD`.
    digest : str
        SHA-256 over the per-trial digests, in key order.
    trials : dict of str to str
        ``'subject/session/trial'`` -> SHA-256 of that trial.
    """

    method: Literal["features-sha256-v1"] = FINGERPRINT_METHOD
    digest: str
    trials: dict[str, str]


class DatasetRecord(_Model):
    """Where the data came from: kind, resolved path and fingerprint."""

    kind: str
    path: str
    fingerprint: Fingerprint


class LoaderOptions(_Model):
    """The options :func:`training.datasets.load_dataset` was called with.

    Attributes
    ----------
    modalities : tuple of str | None
        Modalities asked for (None: all the dataset has).
    subjects : tuple of str
        Subjects loaded (the run's subject).
    specs : dict of str to FeatureSpec
        Whole specs given by the user (``--spec``).
    spec_overrides : dict of str to dict
        Spec fields given by the user (``--window-s``, ``--hop-s``).
    """

    modalities: tuple[str, ...] | None = None
    subjects: tuple[str, ...]
    specs: dict[str, _Spec] = Field(default_factory=dict)
    spec_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~training.datasets.load_dataset` (besides path and kind)."""
        out: dict[str, Any] = {"subjects": list(self.subjects)}
        if self.modalities is not None:
            out["modalities"] = list(self.modalities)
        if self.specs:
            out["specs"] = dict(self.specs)
        if self.spec_overrides:
            out["spec_overrides"] = {m: dict(u) for m, u in self.spec_overrides.items()}
        return out


class SplitRecord(_Model):
    """The split, by trial keys ``(subject, session, trial)``."""

    name: str
    subject: str
    protocol: str
    train: tuple[tuple[str, int, int], ...]
    val: tuple[tuple[str, int, int], ...]
    test: tuple[tuple[str, int, int], ...]
    notes: tuple[str, ...] = ()
    val_per_class: int
    seed: int


class RunRecord(_Model):
    """Everything a run's later commands need about its data (see the module docstring).

    Attributes
    ----------
    format, version : str, int
        :data:`RUN_RECORD_FORMAT`, :data:`RUN_RECORD_VERSION`.
    dataset : DatasetRecord
    loader : LoaderOptions
    task : dict
        :meth:`training.protocols.Task.to_dict`.
    seq_len : int
        T, feature vectors per window.
    modalities : dict of str to ModalityRecord
        The training modalities, in model order.
    normaliser : dict
        :meth:`training.protocols.Normaliser.to_dict` of the statistics fitted on the training
        trials; what every later command and the bundle use.
    split : SplitRecord
    created : str
        UTC time the record was written (ISO 8601).
    """

    format: Literal["m2s-run-record"] = RUN_RECORD_FORMAT
    version: Literal[1] = RUN_RECORD_VERSION
    dataset: DatasetRecord
    loader: LoaderOptions
    task: dict[str, Any]
    seq_len: int = Field(ge=1)
    modalities: dict[str, ModalityRecord] = Field(min_length=1)
    normaliser: dict[str, Any]
    split: SplitRecord
    created: str = ""

    @field_validator("task")
    @classmethod
    def _task(cls, value: dict[str, Any]) -> dict[str, Any]:
        Task.from_dict(value)
        return value

    @field_validator("normaliser")
    @classmethod
    def _normaliser(cls, value: dict[str, Any]) -> dict[str, Any]:
        Normaliser.from_dict(value)
        return value

    # ------------------------------------------------------------------------------ views

    def task_obj(self) -> Task:
        """The recorded task."""
        return Task.from_dict(self.task)

    def normaliser_obj(self) -> Normaliser:
        """The recorded normalisation statistics."""
        return Normaliser.from_dict(self.normaliser)

    @property
    def modality_names(self) -> list[str]:
        """The training modalities, in model order."""
        return list(self.modalities)

    def same_run(self, other: RunRecord) -> bool:
        """Whether ``other`` records the same run (everything but ``created``)."""
        return self.model_dump(exclude={"created"}) == other.model_dump(exclude={"created"})

    # ------------------------------------------------------------------------------ I/O

    def to_json(self) -> str:
        """JSON text (indented)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "run record") -> RunRecord:
        """Parse a record; errors name the source and every invalid field."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(
                f"{source} is not a valid run record ({problems}); it was edited or written by another "
                "version of m2s-live. Re-run 'm2s-train pretrain' to write a new one."
            ) from None

    def write(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/run.json`` atomically; returns its path."""
        path = Path(run_dir) / RUN_RECORD_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, run_dir: str | Path) -> RunRecord:
        """Read ``run_dir/run.json``.

        Raises
        ------
        FileNotFoundError
            No record there (the message says to run ``m2s-train pretrain``).
        ValueError
            An invalid record.
        """
        path = Path(run_dir) / RUN_RECORD_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: {run_dir} is not a run folder written by this version of "
                f"'m2s-train pretrain'. Pretrain into it: m2s-train pretrain DATA --out {run_dir}."
            )
        return cls.from_json(path.read_bytes(), str(path))


# ---------------------------------------------------------------------------------- fingerprint


def _key_text(key: TrialKey) -> str:
    return f"{key[0]}/{key[1]}/{key[2]}"


def trial_digest(trial: Trial, modalities: Sequence[str]) -> str:
    """SHA-256 of one trial: key, label, ratings, the features of ``modalities`` (float64 LE) and the
    segments (where the trial's gaps are: they decide which windows exist)."""
    h = hashlib.sha256()
    label = None if trial.label is None else int(trial.label)  # plain types: repr is version-independent
    ratings = sorted((str(k), float(v)) for k, v in trial.ratings.items())
    h.update(repr(((str(trial.key[0]), int(trial.key[1]), int(trial.key[2])), label, ratings)).encode())
    for m in modalities:
        x = np.ascontiguousarray(trial.features[m], dtype="<f8")
        h.update(f"|{m}:{x.shape}|".encode())
        h.update(x.tobytes())
    h.update(b"|segments|" + np.ascontiguousarray(trial.segment_ids, dtype="<i8").tobytes())
    return h.hexdigest()


def fingerprint(trials: Iterable[Trial], modalities: Sequence[str]) -> Fingerprint:
    """The :class:`Fingerprint` of ``trials`` over ``modalities``."""
    per_trial = {_key_text(t.key): trial_digest(t, modalities) for t in sorted(trials, key=lambda t: t.key)}
    h = hashlib.sha256(FINGERPRINT_METHOD.encode())
    for k, d in per_trial.items():
        h.update(f"{k}={d};".encode())
    return Fingerprint(digest=h.hexdigest(), trials=per_trial)


# ---------------------------------------------------------------------------------- building


def build_run_record(
    dataset: EmotionDataset,
    *,
    path: str | Path,
    loader: LoaderOptions,
    split: Split,
    modalities: Sequence[str],
    seq_len: int,
    val_per_class: int,
    seed: int,
) -> RunRecord:
    """The record of a run about to train on ``split`` of ``dataset``.

    Parameters
    ----------
    dataset : EmotionDataset
        As loaded with ``loader``.
    path : str | Path
        The dataset path given to the loader (recorded resolved).
    loader : LoaderOptions
    split : Split
        The split trained on; its training normaliser is recorded.
    modalities : sequence of str
        The training modalities, in model order.
    seq_len : int
        T.
    val_per_class, seed : int
        How the validation trials were carved (for the reader's information; the split is
        rebuilt from its keys).

    Returns
    -------
    RunRecord
    """
    modalities = list(modalities)
    infos = {
        m: ModalityRecord(
            spec=dataset.modalities[m].spec,
            description=dataset.modalities[m].description,
            dim=dataset.modalities[m].dim,
            spacing_s=float(dataset.modalities[m].spacing_s),
            reproducible_online=bool(dataset.modalities[m].reproducible_online),
        )
        for m in modalities
    }
    norm = split.normaliser.to_dict()
    norm["modalities"] = {m: norm["modalities"][m] for m in modalities}
    return RunRecord(
        dataset=DatasetRecord(
            kind=dataset.name,
            path=str(Path(path).expanduser().resolve()),
            fingerprint=fingerprint(dataset.select(subjects=[split.subject]), modalities),
        ),
        loader=loader,
        task=split.task.to_dict(),
        seq_len=int(seq_len),
        modalities=infos,
        normaliser=norm,
        split=SplitRecord(
            name=split.name,
            subject=split.subject,
            protocol=split.protocol,
            train=tuple(t.key for t in split.train),
            val=tuple(t.key for t in split.val),
            test=tuple(t.key for t in split.test),
            notes=tuple(split.notes),
            val_per_class=int(val_per_class),
            seed=int(seed),
        ),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


# ---------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunData:
    """A run's data, loaded with the recorded options and checked against the record.

    Attributes
    ----------
    record : RunRecord
    dataset : EmotionDataset
    task : Task
        The recorded task.
    split : Split
        Rebuilt from the recorded trial keys.
    normaliser : Normaliser
        The recorded statistics (checked against those recomputed from the training trials).
    """

    record: RunRecord
    dataset: EmotionDataset
    task: Task
    split: Split
    normaliser: Normaliser

    def windows(self, part: str, modalities: Sequence[str] | None = None) -> Windows:
        """Windows of one split part ('train', 'val', 'test'), T from the record, recorded normalisation."""
        return self.split.windows(
            part,
            self.record.seq_len,
            modalities=list(modalities or self.record.modality_names),
            normaliser=self.normaliser,
        )


def _mismatch(record_source: str, data: str, problems: list[str], advice: str) -> RunRecordMismatch:
    listed = "; ".join(problems)
    return RunRecordMismatch(
        f"the data at {data} do not match the run record {record_source}: {listed}. {advice}"
    )


def check_dataset(record: RunRecord, dataset: EmotionDataset, *, data: str, source: str) -> None:
    """Refuse a dataset whose kind, modalities (spec, D, spacing) or trials differ from the record.

    Parameters
    ----------
    record : RunRecord
    dataset : EmotionDataset
        Loaded with ``record.loader``.
    data : str
        Where the dataset came from (for the message).
    source : str
        Where the record came from (for the message).

    Raises
    ------
    RunRecordMismatch
        Naming each difference and what to do.
    """
    retrain = (
        "Pass the dataset the run was trained on (--data PATH), or pretrain a new run on these data "
        "(m2s-train pretrain)."
    )
    if dataset.name != record.dataset.kind:
        raise _mismatch(
            source,
            data,
            [f"it is a {dataset.name!r} dataset, the run trained on {record.dataset.kind!r}"],
            retrain,
        )
    problems = []
    for m, rec in record.modalities.items():
        info = dataset.modalities.get(m)
        if info is None:
            problems.append(f"modality {m!r} is missing (the data have {sorted(dataset.modalities)})")
            continue
        if info.spec != rec.spec:
            problems.append(f"the {m!r} feature spec differs ({_spec_diff(rec.spec, info.spec)})")
        if info.dim != rec.dim:
            problems.append(f"{m!r} has D={info.dim}, the run was trained on D={rec.dim}")
        if abs(info.spacing_s - rec.spacing_s) > _SPACING_TOL:
            problems.append(
                f"{m!r} vectors are {info.spacing_s:g} s apart, the run's were {rec.spacing_s:g} s apart"
            )
    if problems:
        raise _mismatch(source, data, problems, retrain)
    got = fingerprint(dataset.select(subjects=[record.split.subject]), record.modality_names)
    if got.digest != record.dataset.fingerprint.digest:
        want = record.dataset.fingerprint.trials
        missing = sorted(set(want) - set(got.trials))
        extra = sorted(set(got.trials) - set(want))
        changed = sorted(k for k in set(want) & set(got.trials) if want[k] != got.trials[k])
        for label, keys in (
            ("missing", missing),
            ("not in the record", extra),
            ("with other features", changed),
        ):
            if keys:
                more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
                problems.append(f"trials {label}: {', '.join(keys[:5])}{more}")
        raise _mismatch(
            source,
            data,
            [
                f"fingerprint {got.digest[:12]} != recorded {record.dataset.fingerprint.digest[:12]}",
                *problems,
            ],
            "The dataset files changed since pretraining (or features computed from raw signals differ "
            "on this machine). " + retrain,
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _spec_diff(recorded, got) -> str:
    """What differs between two specs, field by field (None: released features without a spec)."""
    if recorded is None or got is None:

        def text(spec):
            return "none (released features)" if spec is None else f"a {spec.kind} spec"

        return f"recorded {text(recorded)}, the data {text(got)}"
    a, b = recorded.model_dump(mode="json"), got.model_dump(mode="json")
    fields = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return "; ".join(f"{k}: recorded {_short(a.get(k))}, the data {_short(b.get(k))}" for k in fields)


def rebuild_split(record: RunRecord, dataset: EmotionDataset) -> Split:
    """The recorded split, from its trial keys (the dataset must hold them; see :func:`check_dataset`)."""
    by_key = {t.key: t for t in dataset.trials}
    s = record.split
    missing = [k for k in (*s.train, *s.val, *s.test) if tuple(k) not in by_key]
    if missing:
        raise RunRecordMismatch(
            f"the data lack trials {missing[:5]} of the recorded split {s.name!r}; pass the dataset the run "
            "was trained on (--data PATH)."
        )
    return Split(
        name=s.name,
        subject=s.subject,
        train=tuple(by_key[tuple(k)] for k in s.train),
        val=tuple(by_key[tuple(k)] for k in s.val),
        test=tuple(by_key[tuple(k)] for k in s.test),
        task=record.task_obj(),
        protocol=s.protocol,
        notes=tuple(s.notes),
    )


def check_normaliser(record: RunRecord, recomputed: Normaliser, *, source: str) -> Normaliser:
    """The recorded normaliser, after checking it against ``recomputed`` (from the training trials).

    Raises
    ------
    RunRecordMismatch
        A statistic differs beyond ``rtol`` :data:`NORMALISER_RTOL`, ``atol`` :data:`NORMALISER_ATOL`.
    """
    recorded = record.normaliser_obj()
    problems = []
    for m in record.modality_names:
        if m not in recorded.mean:
            problems.append(f"the record has no statistics for {m!r}")
            continue
        for stat in ("mean", "std"):
            a, b = getattr(recorded, stat)[m], getattr(recomputed, stat)[m]
            if a.shape != b.shape or not np.allclose(a, b, rtol=NORMALISER_RTOL, atol=NORMALISER_ATOL):
                worst = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
                problems.append(f"{m!r} {stat} differs (max abs difference {worst:.3g})")
    if problems:
        raise RunRecordMismatch(
            f"the normalisation recomputed from the recorded training trials differs from the one in {source}: "
            f"{'; '.join(problems)}. The record was edited or the training trials changed; pretrain a new run."
        )
    return recorded


def load_run_data(
    record: RunRecord, data: str | Path | None = None, *, source: str = RUN_RECORD_NAME
) -> RunData:
    """Load a run's dataset with the recorded options and check it against the record.

    Parameters
    ----------
    record : RunRecord
    data : str | Path | None
        Dataset path; None: the recorded one.
    source : str
        Where the record came from (for messages).

    Returns
    -------
    RunData

    Raises
    ------
    RunRecordMismatch
        The data differ from the record (kind, a modality's spec, D or spacing, trial
        features, or the normalisation of the training trials).
    """
    from training.datasets import load_dataset

    path = str(data) if data is not None else record.dataset.path
    if data is None and not Path(path).exists():
        raise FileNotFoundError(
            f"the run's dataset {path} (recorded in {source}) does not exist any more; pass where it is now "
            "with --data PATH."
        )
    dataset = load_dataset(path, record.dataset.kind, **record.loader.kwargs())
    check_dataset(record, dataset, data=path, source=source)
    split = rebuild_split(record, dataset)
    normaliser = check_normaliser(record, split.normaliser, source=source)
    logger.info("run data: %s, split %s checked against %s", path, split.name, source)
    return RunData(record=record, dataset=dataset, task=split.task, split=split, normaliser=normaliser)


def record_from_mapping(obj: Mapping[str, Any], source: str) -> RunRecord:
    """A record from its dict form (as stored in a checkpoint)."""
    try:
        return RunRecord.model_validate(dict(obj))
    except ValidationError as err:
        raise ValueError(f"{source} holds an invalid run record: {err.errors()[0]['msg']}.") from None


__all__ = [
    "FINGERPRINT_METHOD",
    "RUN_RECORD_NAME",
    "DatasetRecord",
    "Fingerprint",
    "LoaderOptions",
    "ModalityRecord",
    "RunData",
    "RunRecord",
    "RunRecordMismatch",
    "SplitRecord",
    "build_run_record",
    "check_dataset",
    "check_normaliser",
    "fingerprint",
    "load_run_data",
    "rebuild_split",
    "trial_digest",
]
