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


def write_linear_bundle(root, name, graphs, class_names=("a", "b"), *, version=1, seed=0):
    """A bundle of REAL ONNX graphs (a linear layer + softmax per modality), runnable by ONNX Runtime.

    ``graphs`` maps a modality to ``(feature_spec, seq_len, spacing_s, normalisation)``. The graph
    computes ``softmax(flatten(window) @ W + b)`` with seeded random weights; the embedding graph a
    linear map to 32 values. Returns the bundle folder.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = root / name / str(version)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    entries, digests = {}, {}
    for modality, (spec, seq_len, spacing_s, norm) in graphs.items():
        dim = spec.n_features
        for fname, width, last in (
            (f"{modality}.onnx", len(class_names), "Softmax"),
            (f"{modality}.embedding.onnx", 32, "Identity"),
        ):
            weights = numpy_helper.from_array(
                rng.normal(0, 0.3, (seq_len * dim, width)).astype(np.float32), "W"
            )
            shape = numpy_helper.from_array(np.array([-1, seq_len * dim], dtype=np.int64), "shape")
            out = "probabilities" if last == "Softmax" else "embedding"
            nodes = [
                helper.make_node("Reshape", ["window", "shape"], ["flat"]),
                helper.make_node("MatMul", ["flat", "W"], ["logits"]),
                helper.make_node(last, ["logits"], [out], **({"axis": -1} if last == "Softmax" else {})),
            ]
            graph = helper.make_graph(
                nodes,
                f"{modality}-{out}",
                [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", seq_len, dim])],
                [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", width])],
                initializer=[weights, shape],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 8
            onnx.save(model, folder / fname)
            digests[fname] = file_sha256(folder / fname)
        entries[modality] = {
            "modality": modality,
            "model_file": f"{modality}.onnx",
            "embedding_file": f"{modality}.embedding.onnx",
            "seq_len": seq_len,
            "dim": dim,
            "spacing_s": spacing_s,
            "feature_spec": spec.model_dump(mode="json"),
            "normalisation": norm.model_dump(mode="json"),
            "reproducible_online": spec.reproducible_online,
        }
    manifest = BundleManifest.model_validate(
        {
            "name": name,
            "version": version,
            "class_names": list(class_names),
            "embedding_dim": 32,
            "opset": 17,
            "graphs": entries,
            "sha256": digests,
            "training": {"dataset": "test"},
        }
    )
    write_manifest(folder, manifest)
    return folder
