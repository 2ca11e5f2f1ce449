"""``m2s-train export RUN`` and ``m2s-train demo-bundle``: write bundles into a model repository."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .demo_bundle import DEMO_REPOSITORY

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``export`` and ``demo-bundle`` commands."""
    p = subparsers.add_parser(
        "export",
        help="export a fine-tuned run as an ONNX bundle into a model repository",
        description="Export a run folder (written by 'pretrain' and 'finetune') as a new version of NAME in "
        "the repository: per modality an inference and an embedding ONNX graph plus manifest.json. The "
        "feature specs, spacing, T and normalisation written are those of the run record (RUN/run.json); "
        "data that do not match the record are refused.",
    )
    p.add_argument("run", type=Path, help="run folder with pretrain.pt and classifier_<modality>.pt")
    p.add_argument("--name", required=True, help="bundle name in the repository")
    p.add_argument("--repository", type=Path, default=DEMO_REPOSITORY, help="model repository folder")
    p.add_argument("--modalities", default=None, help="comma-separated modalities to export (default: all)")
    p.add_argument(
        "--classifier",
        default=None,
        help="serve every modality with the classifier fine-tuned on this modality (cross-modal A->B); "
        "default: each modality with its own classifier",
    )
    p.add_argument("--data", default=None, help="dataset path (default: the one the run was pretrained on)")
    p.set_defaults(handler=_export)

    p = subparsers.add_parser(
        "demo-bundle",
        help="rebuild the default demo bundle (population M2S, synthetic EEG, EYE, ECG) deterministically",
        description="Pretrain M2S on synthetic subjects 3-14 (EEG, EYE, ECG; subjects 0, 1 and 2 are never "
        "seen), fit a generic logistic-regression head per modality on their labels, choose the normalisation "
        "scheme on subject 2, and export it as the next version of m2s-synthetic-demo with the test matrix "
        "on subject 1. The committed version 1 was made by this command with the defaults (about 3.5 minutes "
        "on 2 CPU cores).",
    )
    p.add_argument("--out", type=Path, default=DEMO_REPOSITORY, help="model repository folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    p.set_defaults(handler=_demo_bundle)


def _export(args: argparse.Namespace) -> int:
    from training.commands import load_classifiers, run_data, run_state
    from training.evaluate import evaluate_matrix
    from training.export import ModalityExport, export_bundle
    from training.pretrain import model_from_checkpoint

    run_dir, ckpt, record = run_state(str(args.run))
    trained = record.modality_names
    wanted = args.modalities.split(",") if args.modalities else list(trained)
    unknown = [m for m in wanted if m not in trained]
    if unknown:
        raise ValueError(f"--modalities {unknown} were not trained in {run_dir}; it has {trained}.")
    without_spec = [m for m in wanted if record.modalities[m].spec is None]
    if without_spec:
        raise ValueError(
            f"the {without_spec} features of this run have no FeatureSpec (released features nobody can "
            f"compute live: {record.modalities[without_spec[0]].description}), so a bundle could not serve "
            "them; leave them out with --modalities."
        )
    data = run_data(run_dir, record, args.data)
    model = model_from_checkpoint(ckpt, "cpu").eval()
    classifiers, selected = load_classifiers(run_dir, trained, "cpu")
    if args.classifier is not None and args.classifier not in classifiers:
        raise ValueError(
            f"--classifier {args.classifier!r} has no fine-tuned classifier; there are {sorted(classifiers)}."
        )
    test = data.windows("test")
    items = {}
    for m in wanted:
        source = args.classifier or m
        if source not in classifiers:
            raise ValueError(
                f"modality {m!r} has no classifier of its own; fine-tune it, or pass --classifier A to serve it "
                f"cross-modally with A's classifier (fine-tuned: {sorted(classifiers)})."
            )
        rec = record.modalities[m]
        if not rec.reproducible_online:
            logger.warning("%s features are not reproducible online; the manifest says so.", m)
        items[m] = ModalityExport(
            embedder=model.embedder(m),
            classifier=classifiers[source],
            feature_spec=rec.spec,
            normalisation=data.normaliser.normalisation(m),
            spacing_s=rec.spacing_s,
            reproducible_online=rec.reproducible_online,
            check_windows=test.x[m],
        )
    matrix = evaluate_matrix(model, classifiers, test.x, test.y, data.task.n_classes)
    bundle, parity = export_bundle(
        args.repository,
        args.name,
        items,
        class_names=tuple(data.task.class_names),
        seq_len=record.seq_len,
        training={
            **_training_summary(record),
            "classifiers": {m: args.classifier or m for m in wanted},
            "selected_on": selected,
        },
        metrics={
            "matrix": {
                k: {n: float(v[n]) for n in ("balanced_accuracy", "kappa", "f1")} for k, v in matrix.items()
            },
            "evaluated_on": f"test trials of {record.split.name}",
        },
        model=model,  # its weights travel too: 'm2s-train adapt' starts from them
    )
    print(
        f"exported {bundle.ref} to {bundle.path}; ONNX parity (max abs diff) "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
    )
    return 0


def _training_summary(record) -> dict:
    """What the manifest says about the run: the record without the per-trial fingerprints."""
    return {
        "dataset": record.dataset.kind,
        "path": record.dataset.path,
        "fingerprint": f"{record.dataset.fingerprint.method}:{record.dataset.fingerprint.digest}",
        "subject": record.split.subject,
        "split": record.split.name,
        "protocol": record.split.protocol,
        "task": record.task,
        "seq_len": record.seq_len,
        "modalities": record.modality_names,
        "loader": record.loader.model_dump(mode="json"),
        "seed": record.split.seed,
        "run_record_created": record.created,
    }


def _demo_bundle(args: argparse.Namespace) -> int:
    from training.demo_bundle import build_demo_bundle, validation_summary

    bundle, parity = build_demo_bundle(args.out, seed=args.seed)
    training, metrics = bundle.manifest.training, bundle.manifest.metrics
    print(
        f"built {bundle.ref} in {bundle.path}; ONNX parity "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
    )
    print(
        f"pool subjects {training['subjects']}, never seen {training['unseen_subjects']}; normalisation "
        f"{training['normalisation']['scheme']!r} chosen on subject {training['validation_subject']} "
        f"({validation_summary(training)})"
    )
    print(f"test matrix ({metrics['evaluated_on']}):")
    for pair, m in metrics["matrix"].items():
        print(f"  {pair}: balanced accuracy {m['balanced_accuracy']:.3f}")
    return 0
