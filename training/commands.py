"""``m2s-train pretrain | finetune | evaluate | reproduce | benchmark``: the training commands.

A run folder ties the single-step commands together::

    m2s-train pretrain DATA --out RUN [--subject S]   # RUN/run.json (the run record), RUN/pretrain.pt
    m2s-train finetune RUN                            # RUN/classifier_<A>.pt per training modality
    m2s-train evaluate RUN                            # RUN/evaluation.json: the A->B matrix
    m2s-train export RUN --name NAME                  # an ONNX bundle (training.export_cli)

``pretrain`` writes the run record (:mod:`training.run_record`): the resolved feature specs,
spacing, T, normalisation, split keys, task, loader options and a fingerprint of the data. The
later commands load the data with the recorded options, rebuild the split from the recorded keys,
use the recorded normalisation, and refuse data that do not match the record.

``reproduce DATASET PATH`` runs the paper's subject-dependent protocol for every subject and writes
the report; ``benchmark`` does the same on generated synthetic data for M2S, CLIP, S and the four
loss ablations. Both always carry the classical anchors LR and CCA-LR (:mod:`training.anchors`).
Heavy modules (torch) are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from training.datasets.cli import add_feature_options, feature_options

logger = logging.getLogger(__name__)

_CLASSIFIER = "classifier_{}.pt"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: only on a terminal)"
    )


def _add_data(p: argparse.ArgumentParser) -> None:
    add_feature_options(p)
    p.add_argument("--task", default="emotion", help="'emotion' or a rating (valence, arousal, ...)")
    p.add_argument(
        "--protocol", default=None, help="split protocol (default: the dataset's, e.g. first_k:9 for SEED)"
    )
    p.add_argument(
        "--modalities", default=None, help="comma-separated modalities (default: all the dataset has)"
    )
    p.add_argument("--seq-len", type=int, default=5, help="T, feature vectors per window (default: 5)")
    p.add_argument("--model", default=None, help="JSON object of M2SConfig fields, e.g. '{\"d_model\": 64}'")
    p.add_argument("--epochs", type=int, default=200, help="pretraining epochs (default: 200, as the paper)")
    p.add_argument("--batch-size", type=int, default=256, help="pretraining batch size (default: 256)")
    p.add_argument("--lr", type=float, default=1e-4, help="pretraining learning rate (default: 1e-4)")
    p.add_argument(
        "--min-steps",
        type=int,
        default=1000,
        help="pretraining makes at least this many optimiser steps whatever the data size (more epochs on "
        "small data; default: 1000; 0 = epochs only, the paper's recipe)",
    )
    p.add_argument(
        "--warmup-steps", type=int, default=100, help="linear learning-rate warm-up steps (default: 100)"
    )
    p.add_argument(
        "--max-batch-fraction",
        type=float,
        default=0.25,
        help="a batch holds at most this fraction of the training windows, so small data still gets several "
        "steps per epoch (default: 0.25; 1 = the paper's)",
    )


def _add_finetune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--finetune-epochs", type=int, default=100, help="classifier epochs (default: 100)")
    p.add_argument("--finetune-lr", type=float, default=1e-3, help="classifier learning rate (default: 1e-3)")
    p.add_argument(
        "--patience", type=int, default=20, help="early-stopping patience on validation (default: 20)"
    )
    p.add_argument(
        "--optimistic",
        action="store_true",
        help="select the classifier epoch on the TEST set like the authors' code (optimistic; labelled in outputs)",
    )


def register(subparsers) -> None:
    """Add the training commands to ``m2s-train``."""
    p = subparsers.add_parser("pretrain", help="pretrain M2S on one split of a dataset")
    p.add_argument("path", help="dataset folder or file")
    p.add_argument("--kind", default=None, help="dataset kind (default: detected)")
    p.add_argument("--out", required=True, help="run folder (receives pretrain.pt)")
    p.add_argument("--subject", default=None, help="subject whose split to train on (default: the first)")
    p.add_argument(
        "--split", type=int, default=0, help="index among that subject's splits (session/fold; default 0)"
    )
    p.add_argument("--resume", action="store_true", help="continue from RUN/pretrain.pt if it exists")
    _add_data(p)
    _add_common(p)
    p.set_defaults(handler=_pretrain)

    p = subparsers.add_parser(
        "finetune", help="fine-tune a classifier per training modality of a pretrained run"
    )
    p.add_argument("run", help="run folder written by 'pretrain'")
    p.add_argument("--data", default=None, help="dataset path (default: the one the run was pretrained on)")
    p.add_argument("--train-modalities", default=None, help="comma-separated modalities A (default: all)")
    p.add_argument("--batch-size", type=int, default=256, help="classifier batch size (default: 256)")
    _add_finetune(p)
    _add_common(p)
    p.set_defaults(handler=_finetune)

    p = subparsers.add_parser("evaluate", help="A->B matrix of a fine-tuned run on its test trials")
    p.add_argument("run", help="run folder written by 'pretrain' and 'finetune'")
    p.add_argument("--data", default=None, help="dataset path (default: the one the run was pretrained on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "reproduce", help="the paper's protocol on a dataset: all subjects, A->B matrix, report"
    )
    p.add_argument("dataset", help="dataset kind: seed, seed_iv, seed_v, deap, dreamer, synthetic, recording")
    p.add_argument("path", help="dataset folder or file")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--subjects", default=None, help="comma-separated subjects (default: all)")
    p.add_argument(
        "--regime",
        choices=("subject", "population"),
        default="subject",
        help="subject: the paper's per-subject splits (A->B matrix); population: leave-one-subject-out, "
        "pretraining on the other subjects, label-efficiency curves against k labelled trials per class "
        "(docs: CALIBRATION.md) (default: subject)",
    )
    p.add_argument(
        "--targets",
        default=None,
        help="population regime: comma-separated target subjects (default: all, one fold each)",
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="choose M2S's recipe among a small grid (training.tuning) before the run: subject regime on "
        "the validation trials of the first --tune-splits splits, population regime on 2 development "
        "subjects that are never targets; the choice is written to results.json",
    )
    p.add_argument(
        "--tune-splits",
        type=int,
        default=None,
        help="subject regime with --tune: splits whose validation trials score each candidate (default: 5)",
    )
    p.add_argument(
        "--in-modal-features",
        choices=("projection", "latent"),
        default="projection",
        help="features of the in-modal (A->A) linear head: the shared projection, or the mean-pooled encoder "
        "output before it (latent); subject regime with --head linear, and the population regime "
        "(default: projection)",
    )
    p.add_argument(
        "--head-data",
        choices=("target", "pool+target"),
        default=None,
        help="population regime: heads at k >= 1 fit the target's trials plus the other subjects' labelled "
        "windows (the participant weighing as much as the pool; chosen by --tune on synthetic data), or the "
        "target's trials only (default: pool+target)",
    )
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods. Subject regime: m2s, clip, supervised, m2s_no_recon, m2s_no_cpc, m2s_no_club, "
        "m2s_no_contra, m2s_attention_mha, m2s_attention_none, lr, cca_lr (default: m2s). The classical "
        "anchors lr (logistic regression on window means of the features) and cca_lr (CCA + logistic "
        "regression, cross-modal) are always added: every table carries them. Population regime: m2s_pop, "
        "clip_pop, s_subject, s_pop, lr, cca_lr, m2s_subject (default: all; lr and cca_lr always added)",
    )
    p.add_argument("--baselines", action="store_true", help="add clip and supervised")
    p.add_argument(
        "--head",
        choices=("mlp", "linear"),
        default="mlp",
        help="classifier of the pretraining methods on the frozen embedding: mlp (the paper's, fine-tuned, "
        "epoch chosen on validation) or linear (logistic regression, C chosen on validation) (default: mlp)",
    )
    p.add_argument(
        "--ablations", action="store_true", help="add the four loss ablations and the attention variants"
    )
    p.add_argument("--sweep", action="store_true", help="also run the T x N sweep (paper Fig. 5)")
    p.add_argument("--val-per-class", type=int, default=1, help="validation trials per class (default: 1)")
    _add_data(p)
    _add_finetune(p)
    _add_common(p)
    p.set_defaults(handler=_reproduce)

    p = subparsers.add_parser(
        "benchmark",
        help="synthetic end-to-end benchmark of M2S, CLIP, S, the ablations and the classical anchors",
    )
    p.add_argument(
        "--config", default=None, help="benchmark config JSON (training.experiment.BenchmarkConfig)"
    )
    p.add_argument("--out", required=True, help="output folder (results.json, report.md, figures)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--regime",
        choices=("subject", "population"),
        default="subject",
        help="subject: per-subject splits, every method's A->B matrix (config: BenchmarkConfig); population: "
        "the label-efficiency benchmark (config: training.label_efficiency.PopulationBenchmarkConfig) "
        "(default: subject)",
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="choose M2S's recipe among a small grid first (subject regime: on validation trials; population "
        "regime: on development subjects)",
    )
    p.add_argument(
        "--tune-splits",
        type=int,
        default=None,
        help="subject regime with --tune: splits whose validation trials score each candidate (default: the "
        "config's tune_splits, 5)",
    )
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's, auto)")
    add_feature_options(p)
    p.set_defaults(handler=_benchmark)


# ---------------------------------------------------------------------------------------------- helpers


def _say(text: str) -> None:
    """Command output (results for the user, not log messages)."""
    sys.stdout.write(text + "\n")


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _model_fields(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model must be a JSON object of M2SConfig fields: {err}.") from None
    if not isinstance(obj, dict):
        raise ValueError(f"--model must be a JSON object, got {type(obj).__name__}.")
    return obj


def _progress(args) -> bool | None:
    return False if args.no_progress else None


def _load(path: str, kind: str | None, loader_options: dict[str, Any]):
    from training.datasets import load_dataset

    return load_dataset(path, kind, **loader_options)


def _loader_options(args, subjects: list[str] | None = None) -> dict[str, Any]:
    """``load_dataset`` options from the command line (modalities, feature specs, subjects)."""
    specs, overrides = feature_options(args)
    options: dict[str, Any] = {}
    if _csv(args.modalities) is not None:
        options["modalities"] = _csv(args.modalities)
    if specs:
        options["specs"] = specs
    if overrides:
        options["spec_overrides"] = overrides
    if subjects is not None:
        options["subjects"] = subjects
    return options


def _splits(
    dataset, task_name: str, protocol: str | None, subjects=None, val_per_class: int = 1, seed: int = 0
):
    from training.protocols import make_task, subject_dependent_splits

    task = make_task(dataset, task_name)
    return task, subject_dependent_splits(
        dataset, task, protocol=protocol, subjects=subjects, val_per_class=val_per_class, seed=seed
    )


def _experiment(args, methods=("m2s",)):
    from training.experiment import ExperimentConfig
    from training.finetune import FinetuneConfig
    from training.pretrain import PretrainConfig

    progress = _progress(args)
    finetune = FinetuneConfig(
        epochs=args.finetune_epochs, lr=args.finetune_lr, patience=args.patience, seed=args.seed,
        device=args.device, progress=progress, optimistic_test_selection=args.optimistic,
    )  # fmt: skip
    return ExperimentConfig(
        seq_len=args.seq_len,
        model=_model_fields(args.model),
        pretrain=PretrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            estimator_lr=args.lr,
            min_steps=args.min_steps,
            warmup_steps=args.warmup_steps,
            max_batch_fraction=args.max_batch_fraction,
            seed=args.seed,
            device=args.device,
            progress=progress,
        ),  # fmt: skip
        finetune=finetune,
        supervised=FinetuneConfig(**{**finetune.to_dict(), "lr": 1e-4}),
        methods=tuple(methods),
    )


def run_state(run: str):
    """Open a run folder written by ``pretrain``.

    Parameters
    ----------
    run : str
        The run folder.

    Returns
    -------
    run_dir : Path
    checkpoint : dict
        ``pretrain.pt`` (:func:`training.pretrain.load_checkpoint`).
    record : RunRecord
        ``run.json``, checked against the copy inside the checkpoint and against the model's T and D.

    Raises
    ------
    FileNotFoundError, ValueError
        No record or checkpoint, or a record that is not the one the checkpoint was trained with.
    """
    from training.pretrain import CHECKPOINT_NAME, load_checkpoint
    from training.run_record import RUN_RECORD_NAME, RunRecord, record_from_mapping

    run_dir = Path(run)
    record = RunRecord.read(run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    stored = ckpt.get("extra", {}).get("run_record")
    if stored is None:
        raise ValueError(
            f"{run_dir / CHECKPOINT_NAME} holds no run record (written by an older 'm2s-train pretrain'); "
            f"pretrain the run again: m2s-train pretrain DATA --out {run_dir}."
        )
    if not record.same_run(record_from_mapping(stored, str(run_dir / CHECKPOINT_NAME))):
        raise ValueError(
            f"{run_dir / RUN_RECORD_NAME} differs from the record stored in {run_dir / CHECKPOINT_NAME}; "
            f"it was edited or copied from another run. Restore it, or pretrain again into {run_dir}."
        )
    config = ckpt["model_config"]
    model_dims = {m["name"]: int(m["dim"]) for m in config["modalities"]}
    record_dims = {m: r.dim for m, r in record.modalities.items()}
    if int(config["seq_len"]) != record.seq_len or model_dims != record_dims:
        raise ValueError(
            f"the model in {run_dir / CHECKPOINT_NAME} takes T={config['seq_len']} and {model_dims}, the run "
            f"record says T={record.seq_len} and {record_dims}; pretrain the run again."
        )
    return run_dir, ckpt, record


def run_data(run_dir: Path, record, data: str | None):
    """The run's data (:func:`training.run_record.load_run_data`): ``data`` or the recorded path, checked."""
    from training.run_record import RUN_RECORD_NAME, load_run_data

    return load_run_data(record, data, source=str(run_dir / RUN_RECORD_NAME))


def load_classifiers(run_dir: Path, modalities, device) -> tuple[dict[str, Any], dict[str, str]]:
    """The fine-tuned classifiers of a run folder (eval mode) and what each was selected on."""
    import torch

    from models.m2s import EmotionClassifier

    classifiers, selected = {}, {}
    for a in modalities:
        path = run_dir / _CLASSIFIER.format(a)
        if not path.is_file():
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        clf = EmotionClassifier(int(state["proj_dim"]), int(state["n_classes"]))
        clf.load_state_dict(state["state_dict"])
        classifiers[a] = clf.to(device).eval()
        selected[a] = state["selected_on"]
    if not classifiers:
        raise FileNotFoundError(
            f"no classifier_<modality>.pt in {run_dir}; run 'm2s-train finetune {run_dir}' first."
        )
    return classifiers, selected


# ---------------------------------------------------------------------------------------------- handlers


def _pretrain(args) -> int:
    from models.config import M2SConfig
    from training.experiment import modality_configs
    from training.pretrain import PretrainConfig, pretrain
    from training.run_record import RUN_RECORD_NAME, LoaderOptions, RunRecord, build_run_record

    options = _loader_options(args, None if args.subject is None else [args.subject])
    dataset = _load(args.path, args.kind, options)
    subjects = None if args.subject is None else [args.subject]
    task, splits = _splits(dataset, args.task, args.protocol, subjects, seed=args.seed)
    subject = splits[0].subject
    own = [s for s in splits if s.subject == subject]
    if not 0 <= args.split < len(own):
        raise ValueError(f"--split must be in [0, {len(own)}) for subject {subject}, got {args.split}.")
    split = own[args.split]
    mods = modality_configs(dataset, list(dataset.modalities))
    model_config = M2SConfig(modalities=mods, seq_len=args.seq_len, **_model_fields(args.model))
    loader = LoaderOptions(
        modalities=options.get("modalities"),
        subjects=(subject,),
        specs=options.get("specs", {}),
        spec_overrides=options.get("spec_overrides", {}),
    )
    record = build_run_record(
        dataset, path=args.path, loader=loader, split=split, modalities=[m.name for m in mods],
        seq_len=args.seq_len, val_per_class=1, seed=args.seed,
    )  # fmt: skip
    out = Path(args.out)
    if args.resume and (out / RUN_RECORD_NAME).is_file():
        previous = RunRecord.read(out)
        if not previous.same_run(record):
            raise ValueError(
                f"--resume: {out / RUN_RECORD_NAME} records another run (other data, split, specs or T); "
                "resume with the same options, or pretrain into a new --out folder."
            )
        record = previous
    windows = split.windows("train", args.seq_len, modalities=[m.name for m in mods])
    config = PretrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, estimator_lr=args.lr, seed=args.seed,
        device=args.device, progress=_progress(args), min_steps=args.min_steps, warmup_steps=args.warmup_steps,
        max_batch_fraction=args.max_batch_fraction,
    )  # fmt: skip
    path = record.write(out)
    result = pretrain(
        model_config,
        windows.x,
        config,
        out_dir=out,
        resume=bool(args.resume),
        extra={"run_record": record.model_dump(mode="json")},
    )
    _say(
        f"pretrained on {split.name} ({len(windows)} windows); checkpoint {result.checkpoint}; record {path}"
    )
    return 0


def _finetune(args) -> int:
    import torch

    from training.finetune import FinetuneConfig, finetune
    from training.pretrain import model_from_checkpoint, resolve_device

    run_dir, ckpt, record = run_state(args.run)
    data = run_data(run_dir, record, args.data)
    task = data.task
    model = model_from_checkpoint(ckpt, resolve_device(args.device))
    train, val = data.windows("train"), data.windows("val")
    test = data.windows("test") if args.optimistic else None
    config = FinetuneConfig(
        epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.finetune_lr, patience=args.patience,
        seed=args.seed, device=args.device, progress=_progress(args), optimistic_test_selection=args.optimistic,
    )  # fmt: skip
    wanted = _csv(args.train_modalities) or record.modality_names
    unknown = [a for a in wanted if a not in record.modalities]
    if unknown:
        raise ValueError(
            f"--train-modalities {unknown} were not pretrained in {run_dir}; it has {record.modality_names}."
        )
    for a in wanted:
        r = finetune(
            model, a, (train.x[a], train.y), (val.x[a], val.y) if len(val) else None, task.n_classes, config,
            test=None if test is None else (test.x[a], test.y),
        )  # fmt: skip
        path = run_dir / _CLASSIFIER.format(a)
        torch.save(
            {
                "modality": a, "n_classes": task.n_classes, "proj_dim": model.config.proj_dim,
                "state_dict": r.classifier.state_dict(), "best_epoch": r.best_epoch, "selected_on": r.selected_on,
                "history": r.history, "finetune_config": config.to_dict(),
            },
            path,
        )  # fmt: skip
        _say(f"{a}: epoch {r.best_epoch} selected on {r.selected_on}; saved {path}")
    return 0


def _evaluate(args) -> int:
    from training.evaluate import evaluate_matrix
    from training.pretrain import model_from_checkpoint, resolve_device
    from training.reports import write_json

    run_dir, ckpt, record = run_state(args.run)
    data = run_data(run_dir, record, args.data)
    device = resolve_device(args.device)
    model = model_from_checkpoint(ckpt, device)
    classifiers, selected = load_classifiers(run_dir, record.modality_names, device)
    test = data.windows("test")
    matrix = evaluate_matrix(model, classifiers, test.x, test.y, data.task.n_classes)
    write_json(
        {"split": data.split.name, "selected_on": selected, "matrix": matrix}, run_dir / "evaluation.json"
    )
    for pair, m in matrix.items():
        _say(
            f"{pair}: balanced accuracy {m['balanced_accuracy']:.4f}, kappa {m['kappa']:.4f}, F1 {m['f1']:.4f}"
        )
    return 0


def _reproduce(args) -> int:
    import dataclasses

    if args.regime == "population":
        return _reproduce_population(args)
    if args.targets:
        raise ValueError("--targets belongs to --regime population.")
    tune_splits = _tune_splits(args)

    from training.experiment import CLASSICAL_ANCHORS, METHODS, modality_configs, run_methods, run_tn_sweep
    from training.reports import write_report

    methods = _csv(args.methods) or ["m2s"]
    if args.head_data is not None:
        raise ValueError("--head-data belongs to --regime population.")
    if args.baselines:
        methods += ["clip", "supervised"]
    if args.ablations:
        methods += [m for m in METHODS if m.startswith("m2s_")]
    methods += list(CLASSICAL_ANCHORS)  # every table carries the classical anchors
    methods = list(dict.fromkeys(methods))
    if args.in_modal_features == "latent" and args.head != "linear":
        raise ValueError(
            "--in-modal-features latent needs --head linear (the MLP head reads the projection)."
        )
    exp = dataclasses.replace(
        _experiment(args, methods), head=args.head, in_modal_features=args.in_modal_features
    )
    dataset = _load(args.path, args.dataset, _loader_options(args))
    if len(dataset.modalities) < 2:
        if any(METHODS[m].kind == "pretrain" for m in methods):
            raise ValueError(
                f"the dataset has only {list(dataset.modalities)}; M2S needs two paired modalities."
            )
        if "cca_lr" in (_csv(args.methods) or []):
            raise ValueError(f"the dataset has only {list(dataset.modalities)}; cca_lr needs two modalities.")
        methods.remove("cca_lr")  # the automatic anchor needs a second modality; lr still runs
        exp = dataclasses.replace(exp, methods=tuple(methods))
    task, splits = _splits(
        dataset, args.task, args.protocol, _csv(args.subjects), args.val_per_class, args.seed
    )
    mods = modality_configs(dataset, list(dataset.modalities))
    tuning = None
    if args.tune:
        from training.tuning import tune_subject

        exp, tuning = tune_subject(splits, exp, mods, n_splits=tune_splits or 5)
        _say(f"tuning: chose '{tuning['selected']}' ({tuning['objective']})")
    results = run_methods(splits, exp, mods)
    sweep = run_tn_sweep(splits, exp, mods) if args.sweep else None
    meta = {
        "dataset": f"{dataset.name} ({args.path}), {len(dataset.subjects)} subjects",
        "task": f"{task.name} ({', '.join(task.class_names)})",
        "protocol": f"{splits[0].protocol or args.protocol}, {len(splits)} splits, {args.val_per_class} validation trial(s) per class",
        "modalities": ", ".join(f"{m.name} (D={m.dim})" for m in mods),
        "windows": f"T={args.seq_len}; features "
        + ", ".join(
            f"{m} {'released' if i.spec is None else format(i.spec.window_s, 'g') + '-s windows'} every "
            f"{i.spacing_s:g} s"
            for m, i in dataset.modalities.items()
        ),
    }
    paths = write_report(
        args.out, results, class_names=task.class_names, config=exp.to_dict(), meta=meta,
        title=f"M2S on {dataset.name}", sweep=sweep, optimistic=args.optimistic, tuning=tuning,
    )  # fmt: skip
    _say(f"report: {paths['report']}")
    return 0


def _tune_splits(args) -> int | None:
    """``--tune-splits`` checked: subject regime, with --tune, >= 1 (None when not given)."""
    n = args.tune_splits
    if n is None:
        return None
    if args.regime == "population":
        raise ValueError(
            "--tune-splits belongs to the subject regime; the population regime tunes on development subjects."
        )
    if not args.tune:
        raise ValueError("--tune-splits needs --tune (it says how many splits score each tuning candidate).")
    if n < 1:
        raise ValueError(f"--tune-splits must be >= 1, got {n}.")
    return n


def _reproduce_population(args) -> int:
    from training.label_efficiency import CURVE_METHODS, population_config, run_population_experiment

    _tune_splits(args)
    for flag in ("sweep", "ablations", "baselines", "optimistic"):
        if getattr(args, flag):
            raise ValueError(f"--{flag} belongs to the subject regime, not --regime population.")
    methods = _csv(args.methods) or list(CURVE_METHODS)
    methods = list(dict.fromkeys(methods + ["lr", "cca_lr"]))
    dataset = _load(args.path, args.dataset, _loader_options(args))
    if len(dataset.modalities) < 2:
        raise ValueError(f"the dataset has only {list(dataset.modalities)}; the population regime pairs two.")
    config = population_config(
        model=_model_fields(args.model), seq_len=args.seq_len, steps=args.min_steps, batch_size=args.batch_size,
        lr=args.lr, warmup_steps=args.warmup_steps, max_batch_fraction=args.max_batch_fraction,
        supervised_lr=args.finetune_lr, patience=args.patience, methods=methods, seed=args.seed,
        device=args.device, progress=_progress(args), head_data=args.head_data or "pool+target",
        in_modal_features=args.in_modal_features,
    )  # fmt: skip
    paths = run_population_experiment(
        dataset, config, args.out, task_name=args.task, targets=_csv(args.targets), protocol=args.protocol,
        tune=args.tune, title=f"Label efficiency on {dataset.name} (population regime)",
        meta={"dataset": f"{dataset.name} ({args.path}), {len(dataset.subjects)} subjects"},
    )  # fmt: skip
    _print_curves(paths)
    return 0


def _print_curves(paths) -> None:
    results = json.loads(paths["results"].read_text(encoding="utf-8"))
    for method, by_k in results["curves"].items():
        for k, cell in by_k.items():
            _say(f"{method} {k}: " + ", ".join(f"{p} {v['balanced_accuracy']:.3f}" for p, v in cell.items()))
    tuning = (results.get("population") or {}).get("tuning")
    if tuning:
        _say(
            f"tuning: chose '{tuning['selected']}' on development subjects {', '.join(tuning['dev_subjects'])}"
        )
    _say(f"results: {paths['results']}\nreport: {paths['report']}")


def _benchmark(args) -> int:
    from training.experiment import BenchmarkConfig, run_benchmark

    tune_splits = _tune_splits(args)
    if args.regime == "population":
        from training.label_efficiency import PopulationBenchmarkConfig, run_population_benchmark

        config = (
            PopulationBenchmarkConfig.from_json(args.config) if args.config else PopulationBenchmarkConfig()
        )
        specs, overrides = feature_options(args)
        update = {"specs": {**config.specs, **specs}} if specs else {}
        if overrides:
            update["spec_overrides"] = {
                m: {**config.spec_overrides.get(m, {}), **u} for m, u in overrides.items()
            }
        if args.tune:
            update["tune"] = True
        if args.device:
            update["device"] = args.device
        if update:
            config = PopulationBenchmarkConfig.model_validate({**config.model_dump(), **update})
        _print_curves(run_population_benchmark(config, args.out, progress=_progress(args)))
        return 0
    specs, overrides = feature_options(args)
    config = BenchmarkConfig.from_json(args.config) if args.config else BenchmarkConfig()
    if specs or overrides:  # the command line wins over the config file, modality by modality
        merged = {m: dict(u) for m, u in config.spec_overrides.items()}
        for m, u in overrides.items():
            merged[m] = {**merged.get(m, {}), **u}
        config = BenchmarkConfig.model_validate(
            {**config.model_dump(), "specs": {**config.specs, **specs}, "spec_overrides": merged}
        )
    if args.device:
        config = config.model_copy(update={"device": args.device})
    if args.tune:
        update = {"tune": True} if tune_splits is None else {"tune": True, "tune_splits": tune_splits}
        config = BenchmarkConfig.model_validate({**config.model_dump(), **update})
    paths = run_benchmark(config, args.out, progress=_progress(args))
    results = json.loads(paths["results"].read_text(encoding="utf-8"))
    for method, entry in results["methods"].items():
        cells = ", ".join(f"{k} {v['balanced_accuracy']:.3f}" for k, v in entry["matrix"].items())
        _say(f"{method}: {cells}")
    _say(f"results: {paths['results']}\nreport: {paths['report']}")
    return 0
