"""`m2s-train bundle inspect`: readable and JSON views of a manifest, and clear errors."""

import json

from tests.bundles import write_bundle
from training.cli import main


def test_inspect_prints_readable_summary(tmp_path, capsys):
    """The readable view names the bundle, the modality input, the features and the checksum status."""
    folder = write_bundle(tmp_path, "demo", 2)
    assert main(["bundle", "inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "bundle demo:2" in out and "checksums verified" in out
    assert "modality eeg: input (T=5, D=15), vectors 2 s apart" in out
    assert "features: de on 3 channels @ 200 Hz (uV), window 1 s, hop 1 s, smoothing none" in out


def test_inspect_from_repository_as_json(tmp_path, capsys):
    """With --model the bundle is resolved in a repository; --json prints the manifest itself."""
    write_bundle(tmp_path, "demo", 1)
    write_bundle(tmp_path, "demo", 4)
    assert main(["bundle", "inspect", str(tmp_path), "--model", "demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 4


def test_inspect_errors_exit_2_with_message(tmp_path, capsys):
    """A missing bundle or a tampered file exits with status 2 and says what is wrong."""
    assert main(["bundle", "inspect", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    folder = write_bundle(tmp_path, "demo", 1)
    (folder / "eeg.onnx").write_bytes(b"changed")
    assert main(["bundle", "inspect", str(folder)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["bundle", "inspect", str(folder), "--no-verify"]) == 0
