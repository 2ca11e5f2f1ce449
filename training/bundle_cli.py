"""``m2s-train bundle inspect PATH``: print a bundle's manifest in a readable form (or as JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.bundle import BundleManifest, load_manifest
from models.repository import ModelRepository


def register(subparsers) -> None:
    """Add the ``bundle`` command group."""
    bundle = subparsers.add_parser("bundle", help="inspect exported model bundles")
    sub = bundle.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="print a bundle's manifest",
        description="Print a bundle's manifest. PATH is a bundle folder (holding manifest.json), or a model "
        "repository folder together with --model NAME[:VERSION].",
    )
    inspect.add_argument("path", type=Path, help="bundle folder, or repository folder with --model")
    inspect.add_argument(
        "--model", help="NAME[:VERSION] inside the repository at PATH (default version: latest)"
    )
    inspect.add_argument("--json", action="store_true", help="print the manifest as JSON")
    inspect.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the ONNX files")
    inspect.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    verify = not args.no_verify
    if args.model:
        manifest = ModelRepository(args.path).load(args.model, verify=verify).manifest
    else:
        manifest = load_manifest(args.path, verify=verify)
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        print(describe_manifest(manifest, checksums_verified=verify))
    return 0


def describe_manifest(manifest: BundleManifest, *, checksums_verified: bool = True) -> str:
    """A human-readable summary of a manifest."""
    lines = [
        f"bundle {manifest.name}:{manifest.version}  (schema {manifest.schema_version}, ONNX opset {manifest.opset}"
        f"{', checksums verified' if checksums_verified else ', checksums NOT verified'})",
        f"classes: {', '.join(manifest.class_names)}   embedding: {manifest.embedding_dim}-d",
    ]
    if manifest.created:
        lines.append(f"created: {manifest.created}")
    for key, value in manifest.training.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > 100:  # long configs stay readable; --json shows them whole
            text = text[:97] + "..."
        lines.append(f"training.{key}: {text}")
    for name, graph in manifest.graphs.items():
        spec = graph.feature_spec
        lines += [
            f"modality {name}: input (T={graph.seq_len}, D={graph.dim}), vectors {graph.spacing_s:g} s apart",
            f"  graphs: {graph.model_file} (probabilities), {graph.embedding_file} (embedding)",
            f"  features: {spec.kind} on {len(spec.channels)} channels @ {spec.sfreq:g} Hz ({spec.unit}), "
            f"window {spec.window_s:g} s, hop {spec.hop_s:g} s, smoothing {spec.smoothing.method}",
            f"  reproducible online: {'yes' if graph.reproducible_online else 'NO (offline-only features)'}",
        ]
    cal = manifest.calibration
    if cal is not None:
        lines += [
            f"calibration: participant {cal.participant}, base {cal.base}, fitted {cal.created}",
            "  heads: "
            + ", ".join(f"{m} <- {src}" for m, src in cal.heads.items())
            + f"  (C {cal.head.get('c')}, {cal.head.get('selected_on', '')})",
            "  normalisation: " + ", ".join(f"{m} {kind}" for m, kind in cal.normalisation.items()),
            "  trials: " + ", ".join(f"{label} {n}" for label, n in cal.trials.items()),
        ]
        for modality, counts in cal.windows.items():
            lines.append(f"  windows {modality}: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
        per = cal.validation.get("per_modality", {})
        if per:
            lines.append(
                "  validation (leave-one-trial-out balanced accuracy): "
                + ", ".join(f"{m} {v['balanced_accuracy']:.3f}" for m, v in per.items())
            )
    matrix = manifest.metrics.get("matrix", {})
    if matrix:
        lines.append(f"evaluation ({manifest.metrics.get('evaluated_on', 'mean over subjects')}):")
        for pair, scores in matrix.items():
            text = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, (int, float)))
            lines.append(f"  {pair}: {text}")
    return "\n".join(lines)
