"""Tests for training.curve_report: label-efficiency results, Markdown tables, the figure, merging."""

import json

import pytest

from training.curve_report import (
    CURVE_LABELS,
    CURVE_METHOD_NOTES,
    curves_markdown,
    curves_results,
    plot_curves,
    summarise_curves,
    write_curve_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _m(acc, kappa=None, f1=None):
    return {
        "balanced_accuracy": acc,
        "kappa": acc - 0.3 if kappa is None else kappa,
        "f1": acc - 0.05 if f1 is None else f1,
    }


# Two target subjects; balanced accuracies chosen so that means/stds are exact in binary.
PER_SUBJECT = {
    "m2s_pop": {
        "k=0": {"eeg->eye": {"s1": _m(0.5), "s2": _m(0.75)}, "eye->eye": {"s1": _m(0.5), "s2": _m(0.5)}},
        "k=1": {
            "eeg->eye": {"s1": _m(0.5), "s2": _m(1.0)},
            "eye->eye": {"s1": _m(0.75), "s2": _m(1.0)},
            "eeg->eeg": {"s1": _m(0.75), "s2": _m(0.75)},
        },
        "k=all": {"eeg->eye": {"s1": _m(0.75), "s2": _m(0.75)}, "eye->eye": {"s1": _m(1.0), "s2": _m(1.0)}},
    },
    "m2s_subject": {
        "k=1": {"eye->eye": {"s1": _m(0.5), "s2": _m(0.5)}},
        "k=all": {"eye->eye": {"s1": _m(1.0), "s2": _m(1.0)}},
    },
    "lr": {
        "k=1": {"eeg->eeg": {"s1": _m(0.25), "s2": _m(0.75)}, "eye->eye": {"s1": _m(0.25), "s2": _m(0.25)}},
        "k=2": {"eeg->eeg": {"s1": _m(0.5), "s2": _m(0.5)}},
        "k=all": {"eye->eye": {"s1": _m(0.5), "s2": _m(0.5)}},
    },
    "my_new": {"k=10": {"eye->eye": {"s1": _m(0.25), "s2": _m(0.25)}}},
}


@pytest.fixture(scope="module")
def summary():
    return summarise_curves(PER_SUBJECT)


def _table(md, pair_heading):
    """The lines of the table under the ``### pair_heading`` heading."""
    lines = md.splitlines()
    start = lines.index(f"### {pair_heading}") + 2
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def _row(table, label):
    rows = [r for r in table if r.startswith(f"| {label} |")]
    assert len(rows) == 1, (label, table)
    return [c.strip() for c in rows[0].strip("|").split("|")][1:]


# ---------------------------------------------------------------------------------------------- schema


def test_summarise_means_and_population_std(summary):
    curves, details = summary
    cell = details["m2s_pop"]["k=1"]["eeg->eye"]
    assert cell["mean"]["balanced_accuracy"] == pytest.approx(0.75)
    assert cell["std"]["balanced_accuracy"] == pytest.approx(0.25)  # ddof=0: |1.0 - 0.5| / 2
    assert cell["mean"]["kappa"] == pytest.approx(0.45)
    assert cell["std"]["f1"] == pytest.approx(0.25)
    assert cell["per_subject"]["s2"] == _m(1.0)
    assert details["lr"]["k=1"]["eye->eye"]["std"]["balanced_accuracy"] == 0.0
    assert curves["m2s_pop"]["k=1"]["eeg->eye"] == cell["mean"]
    assert set(curves) == set(PER_SUBJECT)
    assert set(curves["m2s_subject"]) == {"k=1", "k=all"}


def test_curves_results_round_trip_through_json(summary):
    curves, _ = summary
    doc = curves_results(curves)
    assert list(doc) == ["curves"]
    assert json.loads(json.dumps(doc)) == doc
    assert curves_results(json.loads(json.dumps(doc))["curves"]) == doc
    # numpy-like / int values come back as plain floats
    out = curves_results({"lr": {"k=1": {"eeg->eeg": {"balanced_accuracy": 1, "kappa": 0, "f1": 1}}}})
    assert out["curves"]["lr"]["k=1"]["eeg->eeg"] == {"balanced_accuracy": 1.0, "kappa": 0.0, "f1": 1.0}
    assert all(type(v) is float for v in out["curves"]["lr"]["k=1"]["eeg->eeg"].values())


@pytest.mark.parametrize(
    "curves, bad",
    [
        ({"lr": {"k1": {"eeg->eeg": _m(0.5)}}}, "'k1'"),
        ({"lr": {"k=some": {"eeg->eeg": _m(0.5)}}}, "'k=some'"),
        ({"lr": {"k=-1": {"eeg->eeg": _m(0.5)}}}, "'k=-1'"),
        ({"lr": {"k=1": {"eeg-eeg": _m(0.5)}}}, "'eeg-eeg'"),
        ({"lr": {"k=1": {"eeg->": _m(0.5)}}}, "'eeg->'"),
        ({"lr": {"k=1": {"eeg->eeg": {"balanced_accuracy": 0.5, "kappa": 0.1}}}}, "'f1'"),
        ({"lr": {"k=1": {"eeg->eeg": {**_m(0.5), "acc": 0.5}}}}, "'acc'"),
        ({"lr": {"k=1": {"eeg->eeg": _m(float("nan"))}}}, "'balanced_accuracy'"),
        ({"lr": {"k=1": {"eeg->eeg": 0.5}}}, "'eeg->eeg'"),
    ],
)
def test_malformed_curves_name_the_key(curves, bad):
    with pytest.raises(ValueError, match=bad):
        curves_results(curves)


def test_malformed_per_subject_and_details_name_the_key(summary):
    with pytest.raises(ValueError, match="'k=one'"):
        summarise_curves({"lr": {"k=one": {"eeg->eeg": {"s1": _m(0.5)}}}})
    with pytest.raises(ValueError, match="'s2'"):
        summarise_curves({"lr": {"k=1": {"eeg->eeg": {"s1": _m(0.5), "s2": _m(float("nan"))}}}})
    with pytest.raises(ValueError, match="no subject"):
        summarise_curves({"lr": {"k=1": {"eeg->eeg": {}}}})
    curves, details = summary
    bad = {"lr": {"k=1": {"eeg->eeg": {"mean": _m(0.5), "std": _m(0.0)}}}}
    with pytest.raises(ValueError, match="'per_subject'"):
        curves_markdown(curves, bad, title="t")
    with pytest.raises(ValueError, match="'eeg>eye'"):
        plot_curves({"lr": {"k=1": {"eeg>eye": details["lr"]["k=1"]["eeg->eeg"]}}}, "unused.png")


# ---------------------------------------------------------------------------------------------- markdown


def test_markdown_one_table_per_pair_cross_modal_first(summary):
    md = curves_markdown(*summary, title="Label efficiency", meta={"dataset": "toy"})
    assert md.startswith("# Label efficiency\n")
    assert "- **dataset**: toy" in md
    headings = [line for line in md.splitlines() if line.startswith("### ")]
    assert headings == ["### EEG→EYE", "### EYE→EYE", "### EEG→EEG"]
    # the method table, once, with the notes and the display labels
    assert md.count("| Method | What it is |") == 1
    assert f"| M2S-pop | {CURVE_METHOD_NOTES['m2s_pop']} |" in md
    assert "| my_new | — |" in md


def test_markdown_cells_order_and_bold_best(summary):
    md = curves_markdown(*summary, title="t")
    table = _table(md, "EYE→EYE")
    assert table[0] == "| Method | k=0 | k=1 | k=10 | k=all |"  # numeric order, then all
    labels = [r.split("|")[1].strip() for r in table[2:]]
    assert labels == ["M2S-pop", "M2S-subject", "LR", "my_new"]  # fixed order, unknown last
    assert _row(table, "M2S-pop") == ["**50.00 ± 0.00**", "**87.50 ± 12.50**", "—", "**100.00 ± 0.00**"]
    assert _row(table, "M2S-subject") == ["—", "50.00 ± 0.00", "—", "**100.00 ± 0.00**"]  # tie: both bold
    assert _row(table, "LR") == ["—", "25.00 ± 0.00", "—", "50.00 ± 0.00"]
    assert _row(table, "my_new") == ["—", "—", "**25.00 ± 0.00**", "—"]
    cross = _table(md, "EEG→EYE")
    assert cross[0] == "| Method | k=0 | k=1 | k=all |"
    assert [r.split("|")[1].strip() for r in cross[2:]] == ["M2S-pop"]  # in-modal-only methods left out
    assert _row(cross, "M2S-pop") == ["**62.50 ± 12.50**", "**75.00 ± 25.00**", "**75.00 ± 0.00**"]
    eeg = _table(md, "EEG→EEG")
    assert _row(eeg, "LR") == ["50.00 ± 25.00", "**50.00 ± 0.00**"]
    assert _row(eeg, "M2S-pop") == ["**75.00 ± 0.00**", "—"]


def test_markdown_cell_only_in_curves_shows_its_mean(summary):
    curves, details = summary
    curves = json.loads(json.dumps(curves))
    curves["s_pop"] = {"k=1": {"eye->eye": _m(0.9)}}
    table = _table(curves_markdown(curves, details, title="t"), "EYE→EYE")
    assert _row(table, "S-pop") == ["—", "**90.00**", "—", "—"]


def test_markdown_cross_modal_efficiency(summary):
    md = curves_markdown(*summary, title="t")
    section = md.split("## Cross-modal efficiency", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0] == "| Method | Pair | k=0 | k=1 | k=all |"
    # m2s_pop: eeg->eye / eye->eye = 0.625/0.5, 0.75/0.875, 0.75/1.0
    assert lines[2] == "| M2S-pop | EEG→EYE | 1.25 | 0.86 | 0.75 |"
    assert len(lines) == 3  # no other method has a cross pair


def test_markdown_choices_and_figures(summary):
    choices = {"head": "logistic", "lr_C": 0.5, "epochs": {"m2s_pop": 30}}
    md = curves_markdown(*summary, title="t", choices=choices, figures=["/x/y/label_efficiency.png"])
    section = md.split("## Choices made on validation data", 1)[1]
    assert "- **head**: logistic" in section
    assert "- **lr_C**: `0.5`" in section
    assert '- **epochs**: `{"m2s_pop": 30}`' in section
    assert "![label_efficiency](label_efficiency.png)" in md
    assert "## Choices made on validation data" not in curves_markdown(*summary, title="t")


def test_labels_cover_the_notes():
    assert set(CURVE_LABELS) == set(CURVE_METHOD_NOTES)


# ---------------------------------------------------------------------------------------------- figure


def test_plot_curves_writes_a_png(summary, tmp_path):
    _, details = summary
    path = plot_curves(details, tmp_path / "sub" / "curves.png", n_classes=4)
    assert path == tmp_path / "sub" / "curves.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert plot_curves(details, tmp_path / "k.png", metric="kappa").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="metric"):
        plot_curves(details, tmp_path / "x.png", metric="accuracy")
    with pytest.raises(ValueError, match="no label-efficiency"):
        plot_curves({}, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------- whole report


def test_write_curve_report_fresh_folder(summary, tmp_path):
    curves, details = summary
    paths = write_curve_report(
        tmp_path,
        curves,
        details,
        class_names=["a", "b", "c", "d"],
        title="Population",
        meta={"subjects": 2},
        config={"seed": 0},
        choices={"head": "lr"},
        extra_details={"timing": [1.0]},
    )
    assert set(paths) == {"results", "details", "report", "curves_figure"}
    assert paths["report"] == tmp_path / "report.md"
    assert paths["curves_figure"].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(paths["results"].read_text()) == {"curves": curves}
    doc = json.loads(paths["details"].read_text())
    assert doc["curves"] == details
    assert doc["population"] == {
        "meta": {"subjects": 2},
        "config": {"seed": 0},
        "choices": {"head": "lr"},
        "class_names": ["a", "b", "c", "d"],
        "extra_details": {"timing": [1.0]},
    }
    text = paths["report"].read_text()
    assert text.startswith("# Population") and "![label_efficiency](label_efficiency.png)" in text
    # a rerun replaces its own report.md rather than moving aside
    assert (
        write_curve_report(tmp_path, curves, details, class_names=["a", "b"], title="P")["report"]
        == paths["report"]
    )
    assert not (tmp_path / "report_population.md").exists()


def test_write_curve_report_merges_into_existing_documents(summary, tmp_path):
    curves, details = summary
    methods = {"m2s": {"matrix": {"eeg->eye": {"balanced_accuracy": 0.7, "kappa": 0.4, "f1": 0.6}}}}
    (tmp_path / "results.json").write_text(json.dumps({"methods": methods, "curves": {"stale": {}}}))
    (tmp_path / "details.json").write_text(json.dumps({"methods": {"m2s": {}}, "config": {"x": 1}}))
    (tmp_path / "report.md").write_text("# M2S results\n")
    paths = write_curve_report(tmp_path, curves, details, class_names=["a", "b"], title="Population")
    results = json.loads(paths["results"].read_text())
    assert results["methods"] == methods and results["curves"] == curves
    doc = json.loads(paths["details"].read_text())
    assert doc["methods"] == {"m2s": {}} and doc["config"] == {"x": 1}
    assert doc["curves"] == details and doc["population"]["class_names"] == ["a", "b"]
    assert paths["report"] == tmp_path / "report_population.md"
    assert (tmp_path / "report.md").read_text() == "# M2S results\n"


def test_write_curve_report_refuses_to_clobber_a_broken_results_file(summary, tmp_path):
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="results.json"):
        write_curve_report(tmp_path, *summary, class_names=["a", "b"], title="t")
    assert (tmp_path / "results.json").read_text() == "[1, 2]"
    assert not (tmp_path / "details.json").exists()
