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
        "the repository: per modality an inference and an embedding ONNX graph plus manifest.json.",
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
        help="rebuild the default demo bundle (synthetic EEG, EYE, ECG) deterministically",
        description="Train M2S on synthetic subject 0 (EEG, EYE, ECG) and export it as the next version of "
        "m2s-synthetic-demo. The committed version 1 was made by this command with the defaults.",
    )
    p.add_argument("--out", type=Path, default=DEMO_REPOSITORY, help="model repository folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    p.set_defaults(handler=_demo_bundle)


def _export(args: argparse.Namespace) -> int:
    from training.commands import _run_split, _run_state, load_classifiers
    from training.evaluate import evaluate_matrix
    from training.export import ModalityExport, export_bundle
    from training.pretrain import model_from_checkpoint

    run_dir, ckpt = _run_state(str(args.run))
    task, split, info, dataset = _run_split(ckpt, args.data)
    model = model_from_checkpoint(ckpt, "cpu").eval()
    classifiers, selected = load_classifiers(run_dir, info["modalities"], "cpu")
    wanted = args.modalities.split(",") if args.modalities else list(info["modalities"])
    unknown = [m for m in wanted if m not in info["modalities"]]
    if unknown:
        raise ValueError(
            f"--modalities {unknown} were not trained in {run_dir}; it has {info['modalities']}."
        )
    if args.classifier is not None and args.classifier not in classifiers:
        raise ValueError(
            f"--classifier {args.classifier!r} has no fine-tuned classifier; there are {sorted(classifiers)}."
        )
    test = split.windows("test", info["seq_len"], modalities=info["modalities"])
    items = {}
    for m in wanted:
        source = args.classifier or m
        if source not in classifiers:
            raise ValueError(
                f"modality {m!r} has no classifier of its own; fine-tune it, or pass --classifier A to serve it "
                f"cross-modally with A's classifier (fine-tuned: {sorted(classifiers)})."
            )
        spec = dataset.modalities[m].spec
        if spec is None:
            raise ValueError(
                f"the {m!r} features of this dataset have no FeatureSpec (released features nobody can compute "
                "live), so a bundle could not serve them; leave it out with --modalities."
            )
        if not dataset.modalities[m].reproducible_online:
            logger.warning("%s features are not reproducible online; the manifest says so.", m)
        items[m] = ModalityExport(
            embedder=model.embedder(m),
            classifier=classifiers[source],
            feature_spec=spec,
            mean=split.normaliser.mean[m],
            std=split.normaliser.std[m],
            spacing_s=dataset.modalities[m].spacing_s,
            reproducible_online=dataset.modalities[m].reproducible_online,
            check_windows=test.x[m],
        )
    matrix = evaluate_matrix(model, classifiers, test.x, test.y, task.n_classes)
    bundle, parity = export_bundle(
        args.repository,
        args.name,
        items,
        class_names=tuple(task.class_names),
        seq_len=info["seq_len"],
        training={**info, "classifiers": {m: args.classifier or m for m in wanted}, "selected_on": selected},
        metrics={
            "matrix": {
                k: {n: float(v[n]) for n in ("balanced_accuracy", "kappa", "f1")} for k, v in matrix.items()
            }
        },
    )
    print(
        f"exported {bundle.ref} to {bundle.path}; ONNX parity (max abs diff) "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
    )
    return 0


def _demo_bundle(args: argparse.Namespace) -> int:
    from training.demo_bundle import build_demo_bundle

    bundle, parity = build_demo_bundle(args.out, seed=args.seed)
    print(
        f"built {bundle.ref} in {bundle.path}; ONNX parity "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
    )
    for pair, m in bundle.manifest.metrics["matrix"].items():
        print(f"  {pair}: balanced accuracy {m['balanced_accuracy']:.3f}")
    return 0
