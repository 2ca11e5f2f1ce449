"""Report of the label-efficiency benchmark (population regime): accuracy against labelled trials k.

Each method is fitted for a target subject with ``k`` labelled calibration trials per class (``k=0``:
none, ``k=all``: all of them), the rest of its knowledge coming from the other subjects (or, for the
subject-only baselines, from nothing); the numbers are means over target subjects.

- ``curves``: ``{method: {"k=K": {"A->B": {"balanced_accuracy", "kappa", "f1"}}}}``, the means over
  target subjects, fractions in [0, 1] (kappa in [-1, 1]). Not every method has every k nor every pair.
- ``details``: ``{method: {"k=K": {"A->B": {"per_subject": {subject: metrics}, "mean": metrics,
  "std": metrics}}}}``, std the population std over subjects (``ddof=0``, as the paper's tables).
- ``results.json`` gets a top-level ``"curves"`` key, ``details.json`` the keys ``"curves"`` and
  ``"population"``; the other top-level keys of existing files (the subject-dependent report's
  ``"methods"``, ...) are kept.
- ``report.md`` (``report_population.md`` when another report already holds ``report.md``): one table
  per A→B pair (methods × k, balanced accuracy "mean ± std" in percent), the cross-modal efficiency
  ``acc(A→B) / acc(B→B)`` and the choices made on validation data.
- ``label_efficiency.png``: accuracy against k, one panel per pair, bands of ± one std over subjects.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from training.evaluate import parse_pair
from training.metrics import METRIC_NAMES, mean_std
from training.reports import _METRIC_LABELS, _pct, _plt, _pretty_pair, _save, ordered_pairs, write_json

logger = logging.getLogger(__name__)

CURVE_LABELS: dict[str, str] = {
    "m2s_pop": "M2S-pop",
    "clip_pop": "CLIP-pop",
    "s_subject": "S-subject",
    "s_pop": "S-pop",
    "lr": "LR",
    "cca_lr": "CCA-LR",
    "m2s_subject": "M2S-subject",
}

CURVE_METHOD_NOTES: dict[str, str] = {
    "m2s_pop": "M2S pretrained on the other subjects -> linear head on k trials",
    "clip_pop": "same as M2S-pop, contrastive loss only",
    "s_subject": "supervised network from scratch on the target's k trials per class",
    "s_pop": "supervised network on the other subjects' labels -> head re-fitted on the target's k trials",
    "lr": "logistic regression on the normalised features (window means) of the target's k trials "
    "(classical in-modal anchor)",
    "cca_lr": "CCA fitted on the other subjects' paired data, LR on the target's k trials' projection "
    "(classical cross-modal anchor)",
    "m2s_subject": "the paper's protocol: M2S pretrained on the target's calibration trials only -> head",
}

#: Row order of the tables and colour order of the figure; unknown methods follow in first-seen order.
CURVE_METHOD_ORDER: tuple[str, ...] = (
    "m2s_pop",
    "clip_pop",
    "m2s_subject",
    "s_pop",
    "s_subject",
    "cca_lr",
    "lr",
)

_K_RE = re.compile(r"k=(0|[1-9][0-9]*|all)")
_PAIR_RE = re.compile(r"([^\s>-]+)->([^\s>-]+)")
_DETAIL_KEYS = ("per_subject", "mean", "std")
_REPORT_MARKER = "<!-- m2s: label-efficiency report -->"


# ---------------------------------------------------------------------------------------------- validation


def _check_mapping(obj: Any, where: str) -> Mapping:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(obj).__name__}.")
    return obj


def _check_method(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: a method key must be a non-empty string, got {key!r}.")
    return key


def _check_k(key: Any, where: str) -> str:
    if not isinstance(key, str) or not _K_RE.fullmatch(key):
        raise ValueError(f"{where}: a k key looks like 'k=<int>' or 'k=all', got {key!r}.")
    return key


def _check_pair(key: Any, where: str) -> str:
    if not isinstance(key, str) or not _PAIR_RE.fullmatch(key):
        raise ValueError(f"{where}: a pair key looks like 'A->B' (e.g. 'eeg->eye'), got {key!r}.")
    return key


def _metrics(obj: Any, where: str) -> dict[str, float]:
    """``{metric: float}`` with exactly the metrics of :data:`~training.metrics.METRIC_NAMES`, finite."""
    obj = _check_mapping(obj, where)
    for key in obj:
        if key not in METRIC_NAMES:
            raise ValueError(f"{where}: unknown metric key {key!r}; expected {list(METRIC_NAMES)}.")
    out = {}
    for name in METRIC_NAMES:
        if name not in obj:
            raise ValueError(f"{where}: missing metric key {name!r}.")
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
            raise ValueError(f"{where}[{name!r}] must be a finite number, got {value!r}.")
        out[name] = float(value)
    return out


def _walk(tree: Any, name: str):
    """Yield ``(method, k, pair, leaf, where)`` of a ``{method: {"k=K": {"A->B": leaf}}}`` tree, checked."""
    for method, by_k in _check_mapping(tree, name).items():
        _check_method(method, name)
        for k, by_pair in _check_mapping(by_k, f"{name}[{method!r}]").items():
            _check_k(k, f"{name}[{method!r}]")
            for pair, leaf in _check_mapping(by_pair, f"{name}[{method!r}][{k!r}]").items():
                _check_pair(pair, f"{name}[{method!r}][{k!r}]")
                yield method, k, pair, leaf, f"{name}[{method!r}][{k!r}][{pair!r}]"


def _rebuild(tree: Mapping, name: str, leaf_fn) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, by_k in _check_mapping(tree, name).items():
        out.setdefault(_check_method(method, name), {})
        for k in _check_mapping(by_k, f"{name}[{method!r}]"):
            out[method].setdefault(_check_k(k, f"{name}[{method!r}]"), {})
    for method, k, pair, leaf, where in _walk(tree, name):
        out[method][k][pair] = leaf_fn(leaf, where)
    return out


def _detail_cell(leaf: Any, where: str) -> dict[str, Any]:
    leaf = _check_mapping(leaf, where)
    for key in leaf:
        if key not in _DETAIL_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; expected {list(_DETAIL_KEYS)}.")
    for key in _DETAIL_KEYS:
        if key not in leaf:
            raise ValueError(f"{where}: missing key {key!r}.")
    per_subject = _check_mapping(leaf["per_subject"], f"{where}['per_subject']")
    return {
        "per_subject": {
            str(s): _metrics(m, f"{where}['per_subject'][{s!r}]") for s, m in per_subject.items()
        },
        "mean": _metrics(leaf["mean"], f"{where}['mean']"),
        "std": _metrics(leaf["std"], f"{where}['std']"),
    }


def _validated_curves(curves: Mapping) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    return _rebuild(curves, "curves", _metrics)


def _validated_details(details: Mapping) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    return _rebuild(details, "details", _detail_cell)


# ---------------------------------------------------------------------------------------------- documents


def curves_results(curves: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]) -> dict[str, Any]:
    """The results document of the label-efficiency benchmark.

    Parameters
    ----------
    curves : dict
        ``{method: {"k=K": {"A->B": {"balanced_accuracy", "kappa", "f1"}}}}``, means over target
        subjects; K a non-negative integer or ``all``.

    Returns
    -------
    dict
        ``{"curves": curves}`` with plain floats.

    Raises
    ------
    ValueError
        Malformed input; the message names the offending key (a k key not ``k=<int>``/``k=all``, a
        pair not ``A->B``, a missing or unknown metric, a non-finite value).
    """
    return {"curves": _validated_curves(curves)}


def summarise_curves(
    per_subject: Mapping[str, Mapping[str, Mapping[str, Mapping[Any, Mapping[str, float]]]]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Means and spreads over target subjects.

    Parameters
    ----------
    per_subject : dict
        ``{method: {"k=K": {"A->B": {subject: {"balanced_accuracy", "kappa", "f1"}}}}}``, finite values
        (NaN-free), at least one subject per cell.

    Returns
    -------
    curves : dict
        ``{method: {"k=K": {"A->B": {metric: mean}}}}``.
    details : dict
        ``{method: {"k=K": {"A->B": {"per_subject": {subject: metrics}, "mean": {metric: float},
        "std": {metric: float}}}}}``, std the population std (``ddof=0``). Subject keys become strings
        (as JSON writes them).
    """

    def cell(leaf: Any, where: str) -> dict[str, Any]:
        subjects = _check_mapping(leaf, where)
        if not subjects:
            raise ValueError(f"{where}: no subject to summarise.")
        values = {str(s): _metrics(m, f"{where}[{s!r}]") for s, m in subjects.items()}
        stats = mean_std(list(values.values()))
        return {
            "per_subject": values,
            "mean": {name: float(stats[name]["mean"]) for name in METRIC_NAMES},
            "std": {name: float(stats[name]["std"]) for name in METRIC_NAMES},
        }

    details = _rebuild(per_subject, "per_subject", cell)
    curves = {
        method: {k: {pair: dict(v["mean"]) for pair, v in by_pair.items()} for k, by_pair in by_k.items()}
        for method, by_k in details.items()
    }
    return curves, details


# ---------------------------------------------------------------------------------------------- ordering


def _k_sort_key(k: str) -> tuple[int, int]:
    value = k.partition("=")[2]
    return (1, 0) if value == "all" else (0, int(value))


def _order_methods(methods) -> list[str]:
    seen = list(dict.fromkeys(methods))
    return [m for m in CURVE_METHOD_ORDER if m in seen] + [m for m in seen if m not in CURVE_METHOD_ORDER]


def _label(method: str) -> str:
    return CURVE_LABELS.get(method, method)


def _pairs_of(*trees: Mapping) -> list[str]:
    """Every A->B pair of the trees, cross-modal first, first-seen order (:func:`ordered_pairs`)."""
    cells = {
        f"{i}:{m}:{k}": by_pair
        for i, t in enumerate(trees)
        for m, by_k in t.items()
        for k, by_pair in by_k.items()
    }
    return ordered_pairs(cells)


def _is_cross(pair: str) -> bool:
    a, b = parse_pair(pair)
    return a != b


def _stat(curves, details, method, k, pair, metric) -> tuple[float, float | None] | None:
    """(mean, std or None) of one cell; details first (they hold the std), else the curves' mean."""
    cell = details.get(method, {}).get(k, {}).get(pair)
    if cell is not None:
        return cell["mean"][metric], cell["std"][metric]
    mean = curves.get(method, {}).get(k, {}).get(pair, {}).get(metric)
    return None if mean is None else (mean, None)


def _mean(curves, details, method, k, pair, metric) -> float | None:
    """The mean of one cell; the curves first (they are the results), else the details' mean."""
    mean = curves.get(method, {}).get(k, {}).get(pair, {}).get(metric)
    if mean is not None:
        return mean
    cell = details.get(method, {}).get(k, {}).get(pair)
    return None if cell is None else cell["mean"][metric]


def _fmt_choice(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "`" + json.dumps(value, default=str, sort_keys=False) + "`"


# ---------------------------------------------------------------------------------------------- markdown


def curves_markdown(
    curves: Mapping[str, Any],
    details: Mapping[str, Any],
    *,
    title: str,
    meta: Mapping[str, Any] | None = None,
    figures: Sequence[str | Path] = (),
    notes: Mapping[str, str] | None = None,
    choices: Mapping[str, Any] | None = None,
) -> str:
    """The Markdown report of the label-efficiency benchmark.

    Parameters
    ----------
    curves : dict
        ``{method: {"k=K": {"A->B": metrics}}}`` (see :func:`curves_results`).
    details : dict
        ``{method: {"k=K": {"A->B": {"per_subject", "mean", "std"}}}}`` (see :func:`summarise_curves`);
        a cell there gives its table entry "mean ± std", a cell only in ``curves`` its mean alone.
    title : str
    meta : dict | None
        Shown as a bullet list under the title (dataset, subjects, timing, ...).
    figures : sequence of path
        Figure files, linked relative to the report's folder.
    notes : dict | None
        Method -> "what it is", over :data:`CURVE_METHOD_NOTES` (for new methods or other wording).
    choices : dict | None
        Settings chosen on validation data (any JSON), shown as a bullet list.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Malformed ``curves`` or ``details`` (the message names the key).
    """
    curves = _validated_curves(curves)
    details = _validated_details(details)
    method_notes = {**CURVE_METHOD_NOTES, **dict(notes or {})}
    metric = "balanced_accuracy"
    methods = _order_methods([*curves, *details])
    pairs = _pairs_of(curves, details)

    lines = [f"# {title}", ""]
    lines += [
        "Population regime: each method is fitted for a target subject with k labelled calibration trials "
        "per class (k=all: all of them); entries are means ± std over target subjects.",
        "",
    ]
    for key, value in (meta or {}).items():
        lines.append(f"- **{key}**: {value}")
    if meta:
        lines.append("")

    lines += ["## Methods", "", "| Method | What it is |", "|---|---|"]
    for method in methods:
        lines.append(f"| {_label(method)} | {method_notes.get(method, '—')} |")
    lines.append("")

    lines += [f"## {_METRIC_LABELS[metric].capitalize()} (%, mean ± std over target subjects) against k", ""]
    if not pairs:
        lines += ["No results.", ""]
    for pair in pairs:
        rows = [
            m
            for m in methods
            if any(
                _stat(curves, details, m, k, pair, metric) for k in {*curves.get(m, {}), *details.get(m, {})}
            )
        ]
        ks = sorted(
            {
                k
                for m in rows
                for k in (*curves.get(m, {}), *details.get(m, {}))
                if _stat(curves, details, m, k, pair, metric) is not None
            },
            key=_k_sort_key,
        )
        best = {}
        for k in ks:
            shown = [
                round(100 * s[0], 2)
                for m in rows
                if (s := _stat(curves, details, m, k, pair, metric)) is not None
            ]
            best[k] = max(shown) if shown else None
        lines += [f"### {_pretty_pair(pair)}", ""]
        lines.append("| Method | " + " | ".join(ks) + " |")
        lines.append("|---|" + "---:|" * len(ks))
        for method in rows:
            cells = []
            for k in ks:
                stat = _stat(curves, details, method, k, pair, metric)
                if stat is None:
                    cells.append("—")
                    continue
                mean, std = stat
                text = f"{100 * mean:.2f}" if std is None else _pct({"mean": mean, "std": std}, metric)
                cells.append(f"**{text}**" if round(100 * mean, 2) == best[k] else text)
            lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += [
        "## Cross-modal efficiency",
        "",
        f"{_METRIC_LABELS[metric].capitalize()} of A→B over that of B→B, same method and k (1.00: the "
        "cross-modal transfer is as good as training on the target modality itself).",
        "",
    ]
    eff_rows = []
    all_ks = sorted({k for t in (curves, details) for by_k in t.values() for k in by_k}, key=_k_sort_key)
    for method in methods:
        for pair in (p for p in pairs if _is_cross(p)):
            b = parse_pair(pair)[1]
            ratios = {}
            for k in all_ks:
                cross = _mean(curves, details, method, k, pair, metric)
                within = _mean(curves, details, method, k, f"{b}->{b}", metric)
                if cross is not None and within is not None and within > 0:
                    ratios[k] = cross / within
            if ratios:
                eff_rows.append((method, pair, ratios))
    if eff_rows:
        eff_ks = [k for k in all_ks if any(k in r for *_, r in eff_rows)]
        lines.append("| Method | Pair | " + " | ".join(eff_ks) + " |")
        lines.append("|---|---|" + "---:|" * len(eff_ks))
        for method, pair, ratios in eff_rows:
            cells = [f"{ratios[k]:.2f}" if k in ratios else "—" for k in eff_ks]
            lines.append(f"| {_label(method)} | {_pretty_pair(pair)} | " + " | ".join(cells) + " |")
    else:
        lines.append("No method has both an A→B and the matching B→B result.")
    lines.append("")

    if choices:
        lines += ["## Choices made on validation data", ""]
        for key, value in choices.items():
            lines.append(f"- **{key}**: {_fmt_choice(value)}")
        lines.append("")

    if figures:
        lines += ["## Figures", ""]
        for f in figures:
            lines.append(f"![{Path(f).stem}]({Path(f).name})")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- figure


def plot_curves(
    details: Mapping[str, Any],
    path: str | Path,
    *,
    metric: str = "balanced_accuracy",
    n_classes: int | None = None,
) -> Path:
    """Accuracy against the number k of labelled trials per class, one panel per A→B pair.

    Parameters
    ----------
    details : dict
        ``{method: {"k=K": {"A->B": {"per_subject", "mean", "std"}}}}`` (see :func:`summarise_curves`).
    path : path
        PNG file to write.
    metric : str
        One of :data:`~training.metrics.METRIC_NAMES`.
    n_classes : int | None
        Draws the chance level (100 / n_classes %, 0 for kappa) as a dashed line.

    Returns
    -------
    Path

    Notes
    -----
    The k axis is categorical (0, 1, 2, ..., all, equally spaced); each method keeps its colour in every
    panel; the band is mean ± std over target subjects.
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric must be one of {list(METRIC_NAMES)}, got {metric!r}.")
    if n_classes is not None and (
        isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1
    ):
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}.")
    details = _validated_details(details)
    pairs = _pairs_of(details)
    if not pairs:
        raise ValueError("no label-efficiency results to plot.")
    methods = _order_methods(details)
    colours = {
        m: f"C{i % 10}"
        for i, m in enumerate([*CURVE_METHOD_ORDER, *(m for m in methods if m not in CURVE_METHOD_ORDER)])
    }
    ks = sorted({k for by_k in details.values() for k in by_k}, key=_k_sort_key)
    x_of = {k: i for i, k in enumerate(ks)}

    n_legend = len(methods) + (n_classes is not None)
    plt = _plt()
    cols = min(2, len(pairs))
    rows = -(-len(pairs) // cols)
    spare = rows * cols > len(pairs)  # a free panel holds the legend, else a strip under the panels does
    legend_height = 0.0 if spare else 0.22 * -(-n_legend // (2 * cols)) + 0.15  # inches
    height = 3.6 * rows + legend_height
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, height), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, pair in zip(axes.flat, pairs, strict=False):
        for method in methods:
            cells = [(k, details[method][k][pair]) for k in ks if pair in details[method].get(k, {})]
            if not cells:
                continue
            x = [x_of[k] for k, _ in cells]
            mean = [100 * c["mean"][metric] for _, c in cells]
            std = [100 * c["std"][metric] for _, c in cells]
            colour = colours[method]
            (line,) = ax.plot(x, mean, marker="o", color=colour, label=_label(method))
            lo = [m - s for m, s in zip(mean, std, strict=True)]
            hi = [m + s for m, s in zip(mean, std, strict=True)]
            if len(x) > 1:
                ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
            else:  # a single k: a band has no width, show the spread as an error bar
                ax.errorbar(x, mean, yerr=std, color=colour, capsize=3, linewidth=1)
            handles.setdefault(method, line)
        if n_classes is not None:
            chance = 0.0 if metric == "kappa" else 100.0 / n_classes
            handles["_chance"] = ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_xticks(range(len(ks)), [k.partition("=")[2] for k in ks])
        ax.set_xlim(-0.3, len(ks) - 0.7)
        ax.set_xlabel("labelled trials per class k")
        ax.set_ylabel(f"{_METRIC_LABELS[metric]} (%)")
        ax.set_title(_pretty_pair(pair))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    ordered = [handles[m] for m in methods if m in handles]
    if "_chance" in handles:
        ordered.append(handles["_chance"])
    labels = [h.get_label() for h in ordered]
    if spare:
        axes.flat[-1].legend(ordered, labels, loc="center", fontsize=9, frameon=False)
    else:
        fig.legend(ordered, labels, loc="lower center", ncol=min(len(ordered), 2 * cols), fontsize=8)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- whole report


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} exists but is not valid JSON ({exc}); not overwriting it.") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} exists but does not hold a JSON object; not overwriting it.")
    return obj


def write_curve_report(
    out_dir: str | Path,
    curves: Mapping[str, Any],
    details: Mapping[str, Any],
    *,
    class_names: Sequence[str],
    title: str,
    meta: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    choices: Mapping[str, Any] | None = None,
    extra_details: Any = None,
) -> dict[str, Path]:
    """Write results.json, details.json, the label-efficiency figure and the report of the benchmark.

    Existing ``results.json`` / ``details.json`` (the subject-dependent report's) are read and merged:
    their other top-level keys are kept, ``"curves"`` (and ``"population"``) replaced. The report goes to
    ``report.md``, or to ``report_population.md`` when ``report.md`` holds another report.

    Parameters
    ----------
    out_dir : path
    curves : dict
        ``{method: {"k=K": {"A->B": metrics}}}``.
    details : dict
        ``{method: {"k=K": {"A->B": {"per_subject", "mean", "std"}}}}``.
    class_names : sequence of str
        Stored in details.json; their number sets the chance level of the figure.
    title : str
    meta : dict | None
        Shown in the report and stored in details.json.
    config : dict | None
        Stored in details.json.
    choices : dict | None
        Settings chosen on validation data; shown in the report and stored in details.json.
    extra_details : any JSON | None
        Stored in details.json (``details["population"]["extra_details"]``).

    Returns
    -------
    dict of str to Path
        'results', 'details', 'report' and 'curves_figure'.

    Raises
    ------
    ValueError
        Malformed ``curves``/``details`` or an existing results.json/details.json that is not a JSON
        object (nothing is written then).
    """
    out = Path(out_dir)
    curves = _validated_curves(curves)
    details = _validated_details(details)
    class_names = [str(c) for c in class_names]
    if not class_names:
        raise ValueError("class_names must name at least one class.")
    if not any(by_pair for by_k in details.values() for by_pair in by_k.values()):
        raise ValueError("details hold no result: nothing to report.")
    results_doc = _read_json_object(out / "results.json")  # read both before writing either
    details_doc = _read_json_object(out / "details.json")
    out.mkdir(parents=True, exist_ok=True)

    results_doc["curves"] = curves
    details_doc["curves"] = details
    details_doc["population"] = {
        "meta": dict(meta or {}),
        "config": dict(config or {}),
        "choices": dict(choices or {}),
        "class_names": class_names,
        "extra_details": extra_details,
    }
    paths: dict[str, Path] = {
        "results": write_json(results_doc, out / "results.json"),
        "details": write_json(details_doc, out / "details.json"),
    }
    paths["curves_figure"] = plot_curves(details, out / "label_efficiency.png", n_classes=len(class_names))
    text = curves_markdown(
        curves, details, title=title, meta=meta, figures=[paths["curves_figure"]], choices=choices
    )
    report = out / "report.md"
    if report.exists() and _REPORT_MARKER not in report.read_text(encoding="utf-8"):
        report = out / "report_population.md"  # report.md is the subject-dependent report's
    report.write_text(text + "\n" + _REPORT_MARKER + "\n", encoding="utf-8")
    paths["report"] = report
    logger.info("wrote the label-efficiency report to %s", report)
    return paths
