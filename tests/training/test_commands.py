"""Tests for training.commands: benchmark results.json schema, reproduce, pretrain/finetune/evaluate."""

import json

import pytest

from training.cli import build_parser, main
from training.experiment import BENCHMARK_METHODS

TINY_MODEL = '{"d_model": 16, "n_blocks": 1, "d_ff": 32, "n_heads": 2, "head_dim": 8, "d_ei": 16}'


def test_commands_registered():
    """All five commands parse."""
    parser = build_parser()
    for argv in (
        ["pretrain", "data", "--out", "o"],
        ["finetune", "run"],
        ["evaluate", "run"],
        ["reproduce", "seed", "data", "--out", "o"],
        ["benchmark", "--out", "o"],
    ):
        assert callable(parser.parse_args(argv).handler)


def test_benchmark_writes_results_json_exactly_shaped(tmp_path, capsys):
    """A tiny benchmark config runs all 9 methods (the classical anchors included) and writes results.json in the documented shape."""
    cfg = {
        "synthetic": {
            "n_subjects": 2,
            "n_trials": 6,
            "trial_duration_s": 30,
            "eeg": {"channel_names": ["FP1", "FPZ", "FP2", "FZ"]},
        },
        "model": json.loads(TINY_MODEL),
        "pretrain_epochs": 2,
        "pretrain_min_steps": 0,
        "warmup_steps": 0,
        "finetune_epochs": 2,
        "supervised_epochs": 2,
        "val_per_class": 0,
        "n_jobs": 1,
        "device": "cpu",
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert (
        main(
            [
                "benchmark",
                "--config",
                str(tmp_path / "cfg.json"),
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results) == ["methods"] and list(results["methods"]) == list(BENCHMARK_METHODS)
    full = ["eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"]
    for method, entry in results["methods"].items():
        assert list(entry) == ["matrix"]
        assert sorted(entry["matrix"]) == (
            ["eeg->eeg", "eye->eye"] if method in ("supervised", "lr") else full
        )
        for metrics in entry["matrix"].values():
            assert list(metrics) == ["balanced_accuracy", "kappa", "f1"]
            assert 0 <= metrics["balanced_accuracy"] <= 1 and -1 <= metrics["kappa"] <= 1
    for name in ("report.md", "details.json", "loss_curves.png", "confusion_m2s.png", "embeddings.png"):
        assert (tmp_path / "out" / name).is_file()
    assert "m2s: eeg->eeg" in capsys.readouterr().out


def test_benchmark_bad_config_exits_2(tmp_path, capsys):
    """An invalid config is an input error (exit 2) naming the field."""
    (tmp_path / "cfg.json").write_text('{"pretrain_epochs": 0}')
    assert main(["benchmark", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "o")]) == 2
    assert "pretrain_epochs" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory):
    from tests.fixtures.seed import write_seed

    root = tmp_path_factory.mktemp("seed")
    write_seed(root, n_subjects=2, n_sessions=1, layout="multimodal", n_windows=6)
    return root


def test_reproduce_on_seed_fixture(seed_folder, tmp_path):
    """reproduce runs the SEED protocol for every subject, with the baselines, and writes the report."""
    out = tmp_path / "rep"
    argv = ["reproduce", "seed", str(seed_folder), "--out", str(out), "--baselines", "--seq-len", "3",
            "--model", TINY_MODEL, "--epochs", "2", "--min-steps", "0", "--warmup-steps", "0", "--batch-size", "16", "--finetune-epochs", "2",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == ["m2s", "clip", "supervised", "lr", "cca_lr"]
    details = json.loads((out / "details.json").read_text())
    assert len(details["methods"]["m2s"]["splits"]) == 2  # one per subject (one session each)
    report = (out / "report.md").read_text()
    assert "# M2S on seed" in report and "| CLIP |" in report


def test_reproduce_optimistic_is_labelled(seed_folder, tmp_path):
    """--optimistic selects on test and the report says so."""
    out = tmp_path / "opt"
    argv = ["reproduce", "seed", str(seed_folder), "--out", str(out), "--seq-len", "3", "--model", TINY_MODEL,
            "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0", "--finetune-epochs", "2", "--optimistic", "--no-progress", "--device", "cpu",
            "--subjects", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "WARNING: optimistic protocol" in (out / "report.md").read_text()
    details = json.loads((out / "details.json").read_text())
    assert details["protocol"].startswith("TEST-SET")
    sel = details["methods"]["m2s"]["splits"][0]["selection"]["eeg"]["selected_on"]
    assert sel.startswith("TEST SET")


def test_pretrain_finetune_evaluate_chain(seed_folder, tmp_path, capsys):
    """pretrain -> finetune -> evaluate on one split writes the checkpoint, classifiers and the matrix."""
    run = tmp_path / "run"
    assert main(["pretrain", str(seed_folder), "--kind", "seed", "--out", str(run), "--seq-len", "3", "--model",
                 TINY_MODEL, "--epochs", "2", "--min-steps", "0", "--warmup-steps", "0", "--batch-size", "16", "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    assert (run / "pretrain.pt").is_file()
    assert main(["finetune", str(run), "--finetune-epochs", "2", "--no-progress", "--device", "cpu"]) == 0
    assert (run / "classifier_eeg.pt").is_file() and (run / "classifier_eye.pt").is_file()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert sorted(evaluation["matrix"]) == ["eeg->eeg", "eeg->eye", "eye->eeg", "eye->eye"]
    assert evaluation["selected_on"] == {"eeg": "validation", "eye": "validation"}
    assert "eeg->eye: balanced accuracy" in capsys.readouterr().out


def test_evaluate_without_classifiers_exits_2(seed_folder, tmp_path, capsys):
    """evaluate before finetune is an input error with the fix in the message."""
    run = tmp_path / "run"
    main(["pretrain", str(seed_folder), "--out", str(run), "--seq-len", "3", "--model", TINY_MODEL, "--epochs", "1", "--min-steps", "0", "--warmup-steps", "0",
          "--no-progress", "--device", "cpu"])  # fmt: skip
    assert main(["evaluate", str(run), "--device", "cpu"]) == 2
    assert "run 'm2s-train finetune" in capsys.readouterr().err


def test_bad_model_json_exits_2(seed_folder, tmp_path, capsys):
    """--model must be a JSON object."""
    assert main(["pretrain", str(seed_folder), "--out", str(tmp_path), "--model", "[1]"]) == 2
    assert "--model must be a JSON object" in capsys.readouterr().err
