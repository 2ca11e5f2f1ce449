"""Tests for training.reports: results JSON shape, Markdown tables, PNG figures, PCA."""

import json

import numpy as np
import pytest

from training.experiment import MethodResult, SplitResult
from training.reports import (
    markdown_report,
    ordered_pairs,
    pca_2d,
    plot_confusion_matrices,
    plot_embeddings,
    plot_loss_curves,
    plot_tn_heatmap,
    results_json,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _stat(mean, std=0.0):
    return {"mean": mean, "std": std, "n": 2}


def _summary(acc):
    return {
        p: {
            "balanced_accuracy": _stat(a, 0.1),
            "kappa": _stat(a - 0.1),
            "f1": _stat(a - 0.05),
            "confusion": [[3, 1], [0, 4]],
        }
        for p, a in acc.items()
    }


SUMMARIES = {
    "m2s": _summary({"eeg->eeg": 0.9, "eeg->eye": 0.8, "eye->eeg": 0.7, "eye->eye": 0.85}),
    "supervised": _summary({"eeg->eeg": 0.88, "eye->eye": 0.8}),
}


def _assert_png(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def test_results_json_exact_shape():
    """Only methods -> matrix -> pair -> the three metric means."""
    out = results_json(SUMMARIES)
    assert list(out) == ["methods"]
    assert out["methods"]["m2s"] == {
        "matrix": {
            "eeg->eeg": {"balanced_accuracy": 0.9, "kappa": pytest.approx(0.8), "f1": pytest.approx(0.85)},
            "eeg->eye": {"balanced_accuracy": 0.8, "kappa": pytest.approx(0.7), "f1": pytest.approx(0.75)},
            "eye->eeg": {"balanced_accuracy": 0.7, "kappa": pytest.approx(0.6), "f1": pytest.approx(0.65)},
            "eye->eye": {"balanced_accuracy": 0.85, "kappa": pytest.approx(0.75), "f1": pytest.approx(0.8)},
        }
    }
    assert list(out["methods"]["supervised"]["matrix"]) == ["eeg->eeg", "eye->eye"]


def test_ordered_pairs_cross_modal_first():
    """Cross-modal pairs come first, as in the paper's tables."""
    assert ordered_pairs(SUMMARIES) == ["eeg->eye", "eye->eeg", "eeg->eeg", "eye->eye"]


def test_markdown_tables_in_percent_with_missing_cells():
    """Cells read 'mean ± std' in percent; a method without a pair shows a dash."""
    text = markdown_report(SUMMARIES, labels={"m2s": "M2S", "supervised": "S"})
    assert "| Method | EEG→EYE | EYE→EEG | EEG→EEG | EYE→EYE |" in text
    assert "| M2S | 80.00 ± 10.00 | 70.00 ± 10.00 | 90.00 ± 10.00 | 85.00 ± 10.00 |" in text
    assert "| S | — | — | 88.00 ± 10.00 | 80.00 ± 10.00 |" in text
    assert "validation split" in text and "optimistic" not in text


def test_markdown_labels_optimistic_protocol():
    """Test-set selection is flagged at the top of the report."""
    text = markdown_report(SUMMARIES, optimistic=True)
    assert "WARNING: optimistic protocol" in text.splitlines()[2]


def test_pca_matches_dominant_direction():
    """The first component follows the direction of largest variance and PC1 variance >= PC2's."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 5)) * np.array([10.0, 1.0, 0.5, 0.1, 0.1])
    p = pca_2d(z)
    assert p.shape == (200, 2) and abs(np.corrcoef(p[:, 0], z[:, 0])[0, 1]) > 0.99
    assert p[:, 0].var() >= p[:, 1].var()
    np.testing.assert_allclose(p.mean(axis=0), 0, atol=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        pca_2d(np.zeros((1, 3)))


def test_figures_are_valid_pngs(tmp_path):
    """Every figure function writes a readable PNG."""
    hist = [
        [
            {"epoch": e, "total": 5.0 - e, "contra": 2.0, "cpc": 1.0, "recon": 0.0, "club": 0.1}
            for e in range(1, 4)
        ]
    ]
    _assert_png(plot_loss_curves({"m2s": hist, "clip": hist}, tmp_path / "loss.png"))
    _assert_png(plot_confusion_matrices(SUMMARIES["m2s"], ["low", "high"], tmp_path / "cm.png"))
    sweep = {
        "seq_lens": [3, 4],
        "cpc_steps": [1, 2],
        "cells": {"T=3,N=1": SUMMARIES["m2s"], "T=4,N=2": SUMMARIES["m2s"]},
    }
    _assert_png(plot_tn_heatmap(sweep, tmp_path / "tn.png"))
    rng = np.random.default_rng(0)
    emb = {"eeg": rng.normal(size=(30, 32)), "eye": rng.normal(size=(30, 32))}
    _assert_png(plot_embeddings(emb, np.arange(30) % 2, ["low", "high"], tmp_path / "emb.png"))
    with pytest.raises(ValueError, match="has 30 rows, y has 3"):
        plot_embeddings(emb, np.arange(3), ["low", "high"], tmp_path / "bad.png")


def test_write_report_files(tmp_path):
    """write_report writes results.json, details.json, report.md linking every PNG."""
    hist = [{"epoch": 1, "total": 3.0, "contra": 2.0, "cpc": 1.0, "recon": 0.1, "club": 0.1}]
    rng = np.random.default_rng(0)
    emb = {"eeg": rng.normal(size=(10, 32)), "eye": rng.normal(size=(10, 32)), "y": np.arange(10) % 2}
    split = SplitResult(
        "s=1",
        "1",
        {"eeg->eye": {}},
        hist,
        {"eeg": {"best_epoch": 1, "selected_on": "validation", "history": []}},
        emb,
    )
    results = {"m2s": MethodResult("m2s", [split], SUMMARIES["m2s"])}
    paths = write_report(tmp_path, results, class_names=["low", "high"], meta={"dataset": "x"})
    assert json.loads(paths["results"].read_text()) == results_json({"m2s": SUMMARIES["m2s"]})
    details = json.loads(paths["details"].read_text())
    assert details["methods"]["m2s"]["splits"][0]["selection"]["eeg"]["selected_on"] == "validation"
    report = paths["report"].read_text()
    for key in ("loss_curves", "confusion_m2s", "embeddings"):
        _assert_png(paths[key])
        assert f"({paths[key].name})" in report
