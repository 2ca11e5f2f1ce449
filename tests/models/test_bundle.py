"""Bundle manifests and the model repository: validation, checksums, versions, and no torch needed."""

import json

import pytest

from models.bundle import BundleError, load_manifest, manifest_json_schema
from models.repository import ModelRepository, parse_model_ref
from signals.spec import DESpec, feature_spec_from_dict
from tests.bundles import CHANNELS, manifest_dict, write_bundle
from tests.no_torch import run_without


def test_round_trip_and_feature_spec_survives(tmp_path):
    """A written manifest loads back equal, and its FeatureSpec rebuilds the same extractor settings."""
    folder = write_bundle(tmp_path)
    manifest = load_manifest(folder)
    graph = manifest.graph("eeg")
    assert graph.feature_spec == DESpec(modality="eeg", sfreq=200, channels=CHANNELS, window_s=1, hop_s=1)
    assert feature_spec_from_dict(graph.feature_spec.model_dump(mode="json")).n_features == 15


def test_tampered_file_is_refused(tmp_path):
    """Changing one byte of a graph makes loading fail with a checksum error naming the file."""
    folder = write_bundle(tmp_path)
    (folder / "eeg.onnx").write_bytes(b"graph-bytes-X")
    with pytest.raises(BundleError, match=r"checksum mismatch for .*eeg\.onnx.*re-export or re-copy"):
        load_manifest(folder)
    load_manifest(folder, verify=False)  # listing without reading graphs still works


def test_missing_graph_and_schema_version_refused(tmp_path):
    """A missing graph file and an unknown schema version are both refused clearly."""
    folder = write_bundle(tmp_path)
    (folder / "eeg.embedding.onnx").unlink()
    with pytest.raises(BundleError, match="lists 'eeg.embedding.onnx', which is missing"):
        load_manifest(folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["schema_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="schema_version 2 is not supported"):
        load_manifest(folder, verify=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"class_names": ["one"]}, "class_names"),
        ({"name": "bad name!"}, "name"),
        ({"version": 0}, "version"),
        ({"sha256": {}}, "sha256 has no entry for 'eeg.onnx'"),
    ],
)
def test_invalid_manifest_fields(tmp_path, change, match):
    """Invalid manifests are refused with the field named."""
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest_dict(folder, **change)))
    with pytest.raises(BundleError, match=match):
        load_manifest(folder)


@pytest.mark.parametrize(
    ("graph_change", "match"),
    [
        ({"dim": 16}, "gives 15 features per vector but dim is 16"),
        ({"normalisation": {"mean": [0.0] * 15, "std": [0.0] * 15}}, "every std must be > 0"),
        ({"spacing_s": 1.5}, "whole multiple of the feature hop"),
        ({"model_file": "../evil.onnx"}, "plain '.onnx' file name"),
        ({"modality": "eye"}, "describes modality 'eye'|feature_spec.modality"),
    ],
)
def test_inconsistent_graph_refused(tmp_path, graph_change, match):
    """A graph whose dims, normalisation, spacing or file names do not fit is refused."""
    folder = tmp_path / "b"
    folder.mkdir()
    data = manifest_dict(folder)
    data["graphs"]["eeg"].update(graph_change)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=match):
        load_manifest(folder)


def test_repository_versions_latest_and_errors(tmp_path):
    """The repository lists names and versions, picks the latest or a given one, and says what exists."""
    repo = ModelRepository(tmp_path)
    write_bundle(tmp_path, "demo", 1)
    write_bundle(tmp_path, "demo", 3)
    write_bundle(tmp_path, "other", 1)
    (tmp_path / "demo" / "7").mkdir()  # no manifest: not a version
    assert repo.names() == ["demo", "other"]
    assert repo.versions("demo") == [1, 3]
    assert repo.load("demo").manifest.version == 3
    assert repo.load("demo:1").ref == "demo:1"
    assert [b.ref for b in repo.list()] == ["demo:1", "demo:3", "other:1"]
    with pytest.raises(BundleError, match="has no version 2; versions: \\[1, 3\\]"):
        repo.load("demo:2")
    with pytest.raises(BundleError, match="no model named 'nope'.*models there: demo, other"):
        repo.load("nope")
    assert repo.new_version_dir("demo")[0] == 4


def test_folder_must_match_manifest(tmp_path):
    """A bundle copied under the wrong name/version folder is refused."""
    src = write_bundle(tmp_path / "src", "demo", 1)
    dst = tmp_path / "repo" / "renamed" / "1"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    with pytest.raises(BundleError, match="does not match its folder"):
        ModelRepository(tmp_path / "repo").load("renamed")


def test_model_refs():
    """Model references parse as name[:version|latest]."""
    assert parse_model_ref("demo") == ("demo", None)
    assert parse_model_ref("demo:latest") == ("demo", None)
    assert parse_model_ref("demo:12") == ("demo", 12)
    with pytest.raises(BundleError, match="invalid model reference 'demo:0'"):
        parse_model_ref("demo:0")


def test_schema_is_published():
    """The manifest JSON schema names its key fields."""
    schema = json.dumps(manifest_json_schema())
    for key in ("feature_spec", "normalisation", "spacing_s", "sha256", "schema_version"):
        assert key in schema


def test_bundle_code_imports_without_torch(tmp_path):
    """models.bundle and models.repository load a bundle in a process where torch cannot be imported."""
    folder = write_bundle(tmp_path)
    code = (
        "import sys\n"
        "from models.repository import ModelRepository\n"
        f"b = ModelRepository({str(tmp_path)!r}).load('demo')\n"
        "assert 'torch' not in sys.modules\n"
        "print(b.ref)\n"
    )
    out = run_without(code, blocked=("torch", "onnxruntime"), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "demo:1"
    assert folder.is_dir()


def test_published_schema_file_is_current():
    """models/manifest.schema.json is the schema this code validates against (regenerate it when it changes)."""
    from pathlib import Path

    published = json.loads((Path(__file__).parents[2] / "models" / "manifest.schema.json").read_text())
    assert published == json.loads(json.dumps(manifest_json_schema())), (
        "models/manifest.schema.json is stale: regenerate it with "
        "python -c 'import json; from models.bundle import manifest_json_schema as s; "
        "print(json.dumps(s(), indent=2, sort_keys=True))' > models/manifest.schema.json"
    )
