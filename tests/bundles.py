"""Hand-made bundles for tests of the manifest, repository and CLI (graph files are opaque bytes here)."""

from models.bundle import BundleManifest, file_sha256, write_manifest
from signals.spec import DESpec

CHANNELS = ("Fz", "Cz", "Pz")


def manifest_dict(folder, name="demo", version=1, **overrides):
    spec = DESpec(modality="eeg", sfreq=200, channels=CHANNELS, window_s=1, hop_s=1)
    files = {"eeg.onnx": b"graph-bytes-1", "eeg.embedding.onnx": b"graph-bytes-2"}
    for fname, content in files.items():
        (folder / fname).write_bytes(content)
    data = {
        "name": name,
        "version": version,
        "class_names": ["negative", "neutral", "positive"],
        "embedding_dim": 32,
        "opset": 17,
        "graphs": {
            "eeg": {
                "modality": "eeg",
                "model_file": "eeg.onnx",
                "embedding_file": "eeg.embedding.onnx",
                "seq_len": 5,
                "dim": 15,
                "spacing_s": 2.0,
                "feature_spec": spec.model_dump(mode="json"),
                "normalisation": {"mean": [0.0] * 15, "std": [1.0] * 15},
                "reproducible_online": True,
            }
        },
        "sha256": {f: file_sha256(folder / f) for f in files},
        "training": {"dataset": "synthetic"},
    }
    data.update(overrides)
    return data


def write_bundle(root, name="demo", version=1):
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    write_manifest(folder, BundleManifest.model_validate(manifest_dict(folder, name, version)))
    return folder
