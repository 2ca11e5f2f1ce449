"""Reports of an experiment: results JSON, Markdown tables laid out like the paper's, PNG figures.

- ``results.json``: ``{"methods": {method: {"matrix": {"A->B": {"balanced_accuracy", "kappa",
  "f1"}}}}}``, values the mean over splits (subjects), fractions in [0, 1] (kappa in [-1, 1]).
- ``details.json``: the same with std, per-split values, confusion matrices, model-selection
  records, loss histories, the configuration and timing.
- ``report.md``: paper-style tables (methods × A→B pairs, "mean ± std" in percent), one full matrix
  per method, the T × N sweep, and links to the figures.
- figures (matplotlib, Agg backend): loss curves, confusion matrices, the T × N heatmap of the
  cross-modal accuracy (paper Fig. 5) and a 2-D PCA of the shared embedding coloured by class and by
  modality.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate import parse_pair
from training.metrics import METRIC_NAMES

logger = logging.getLogger(__name__)

_METRIC_LABELS = {"balanced_accuracy": "balanced accuracy", "kappa": "Cohen's kappa", "f1": "macro F1"}
_LOSS_KEYS = ("total", "contra", "cpc", "recon", "club", "club_estimator")


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def results_json(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The results document: mean over splits of each metric, per method and A→B pair.

    Parameters
    ----------
    summaries : dict
        Method -> :func:`~training.evaluate.summarise_matrices` output.

    Returns
    -------
    dict
        ``{"methods": {method: {"matrix": {"A->B": {"balanced_accuracy": float, "kappa": float,
        "f1": float}}}}}``.
    """
    return {
        "methods": {
            method: {
                "matrix": {
                    pair: {k: float(v[k]["mean"]) for k in METRIC_NAMES} for pair, v in summary.items()
                }
            }
            for method, summary in summaries.items()
        }
    }


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON (numpy scalars and arrays converted), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _pct(stat: Mapping[str, float], metric: str) -> str:
    scale = 100.0
    return f"{scale * stat['mean']:.2f} ± {scale * stat['std']:.2f}"


def _pretty_pair(pair: str) -> str:
    a, b = parse_pair(pair)
    return f"{a.upper()}→{b.upper()}"


def ordered_pairs(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """All A->B pairs of the methods, cross-modal pairs first, in first-seen order (as the paper)."""
    seen = list(dict.fromkeys(p for s in summaries.values() for p in s))
    cross = [p for p in seen if len(set(parse_pair(p))) == 2]
    return cross + [p for p in seen if p not in cross]


def markdown_report(
    summaries: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "M2S results",
    meta: Mapping[str, Any] | None = None,
    optimistic: bool = False,
    sweep: Mapping[str, Any] | None = None,
    figures: Sequence[str | Path] = (),
    metrics: Sequence[str] = METRIC_NAMES,
) -> str:
    """The Markdown report.

    Parameters
    ----------
    summaries : dict
        Method -> :func:`~training.evaluate.summarise_matrices` output.
    labels : dict | None
        Method -> display name (e.g. 'M2S', 'w/o CPC').
    title : str
    meta : dict | None
        Shown as a bullet list under the title (dataset, protocol, subjects, timing, ...).
    optimistic : bool
        The epochs were selected on TEST data (reference protocol): a warning heads the report.
    sweep : dict | None
        :func:`~training.experiment.run_tn_sweep` output.
    figures : sequence of path
        Figure files, linked relative to the report's folder.
    metrics : sequence of str
        Which metrics get a methods × pairs table.

    Returns
    -------
    str
    """
    labels = dict(labels or {})
    lines = [f"# {title}", ""]
    if optimistic:
        lines += [
            "> **WARNING: optimistic protocol.** The classifier's epoch was selected on the TEST windows, as "
            "the authors' code does. These numbers overestimate accuracy; do not compare them with honestly "
            "selected results.",
            "",
        ]
    else:
        lines += [
            "Model selection: epochs chosen on a validation split of whole training trials; test trials "
            "were used once, for the numbers below.",
            "",
        ]
    for k, v in (meta or {}).items():
        lines.append(f"- **{k}**: {v}")
    if meta:
        lines.append("")
    pairs = ordered_pairs(summaries)
    for metric in metrics:
        lines += [f"## {_METRIC_LABELS.get(metric, metric)} (%, mean ± std over splits)", ""]
        lines.append("| Method | " + " | ".join(_pretty_pair(p) for p in pairs) + " |")
        lines.append("|---|" + "---:|" * len(pairs))
        for method, summary in summaries.items():
            cells = [_pct(summary[p][metric], metric) if p in summary else "—" for p in pairs]
            lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Cross-modal matrices (balanced accuracy %, rows: training modality A, columns: test modality B)",
        "",
    ]
    for method, summary in summaries.items():
        train = list(dict.fromkeys(parse_pair(p)[0] for p in summary))
        test = list(dict.fromkeys(parse_pair(p)[1] for p in summary))
        lines += [f"### {labels.get(method, method)}", ""]
        lines.append("| A \\ B | " + " | ".join(b.upper() for b in test) + " |")
        lines.append("|---|" + "---:|" * len(test))
        for a in train:
            row = [
                _pct(summary[f"{a}->{b}"]["balanced_accuracy"], "balanced_accuracy")
                if f"{a}->{b}" in summary
                else "—"
                for b in test
            ]
            lines.append(f"| {a.upper()} | " + " | ".join(row) + " |")
        lines.append("")
    if sweep and sweep.get("cells"):
        lines += ["## T × N sweep (M2S, balanced accuracy %, mean over cross-modal pairs)", ""]
        ns = sweep["cpc_steps"]
        lines.append("| T \\ N | " + " | ".join(str(n) for n in ns) + " |")
        lines.append("|---|" + "---:|" * len(ns))
        for t in sweep["seq_lens"]:
            row = []
            for n in ns:
                cell = sweep["cells"].get(f"T={t},N={n}")
                row.append("—" if cell is None else f"{100 * _cross_modal_mean(cell):.2f}")
            lines.append(f"| {t} | " + " | ".join(row) + " |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for f in figures:
            name = Path(f).name
            lines.append(f"![{Path(f).stem}]({name})")
        lines.append("")
    return "\n".join(lines)


def _cross_modal_mean(summary: Mapping[str, Any], metric: str = "balanced_accuracy") -> float:
    vals = [v[metric]["mean"] for p, v in summary.items() if len(set(parse_pair(p))) == 2]
    if not vals:  # single modality: fall back to the unimodal pairs
        vals = [v[metric]["mean"] for v in summary.values()]
    return float(np.mean(vals))


# ---------------------------------------------------------------------------------------------- figures


def plot_loss_curves(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], path: str | Path
) -> Path:
    """Pretraining losses per epoch, one panel per method, mean over splits.

    Parameters
    ----------
    histories : dict
        Method -> list over splits of per-epoch records (``PretrainResult.history``).
    path : path
        PNG file to write.
    """
    plt = _plt()
    methods = [m for m, h in histories.items() if h and h[0]]
    if not methods:
        raise ValueError("no pretraining history to plot.")
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, method in zip(axes.flat, methods, strict=False):
        runs = histories[method]
        n_epochs = min(len(r) for r in runs)
        epochs = np.arange(1, n_epochs + 1)
        for key in _LOSS_KEYS:
            if key not in runs[0][0]:
                continue
            vals = np.array([[r[e][key] for e in range(n_epochs)] for r in runs])
            if key != "total" and np.allclose(vals, 0):
                continue  # switched-off loss
            ax.plot(
                epochs,
                vals.mean(axis=0),
                label=key,
                # one colour per loss component in every panel, so panels compare at a glance
                color=f"C{_LOSS_KEYS.index(key)}",
                linestyle="--" if key == "club_estimator" else "-",
            )
        ax.set_title(method)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrices(
    summary: Mapping[str, Mapping[str, Any]], class_names: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Row-normalised confusion matrices (summed over splits) of every A→B pair of one method."""
    plt = _plt()
    pairs = list(summary)
    if not pairs:
        raise ValueError("no pairs to plot.")
    cols = min(4, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        cm = np.asarray(summary[pair]["confusion"], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, fontsize=7)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
        ax.set_title(_pretty_pair(pair), fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_tn_heatmap(sweep: Mapping[str, Any], path: str | Path, *, metric: str = "balanced_accuracy") -> Path:
    """Cross-modal accuracy over window length T (rows) and CPC steps N (columns), paper Fig. 5.

    One panel per cross-modal pair; invalid cells (``T < N + 2``) are blank.
    """
    plt = _plt()
    ts, ns, cells = list(sweep["seq_lens"]), list(sweep["cpc_steps"]), sweep["cells"]
    if not cells:
        raise ValueError("the sweep has no cells to plot.")
    pairs = [p for p in next(iter(cells.values())) if len(set(parse_pair(p))) == 2] or list(
        next(iter(cells.values()))
    )
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs) + 0.6, 3.2), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=True):
        grid = np.full((len(ts), len(ns)), np.nan)
        for i, t in enumerate(ts):
            for j, n in enumerate(ns):
                cell = cells.get(f"T={t},N={n}")
                if cell is not None and pair in cell:
                    grid[i, j] = 100 * cell[pair][metric]["mean"]
        im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
        for i in range(len(ts)):
            for j in range(len(ns)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=7, color="white")
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_yticks(range(len(ts)), [str(t) for t in ts])
        ax.set_xlabel("prediction steps N")
        ax.set_ylabel("window length T")
        ax.set_title(_pretty_pair(pair))
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def pca_2d(z: np.ndarray) -> np.ndarray:
    """Project rows of ``z`` (N, D) on their first two principal components -> (N, 2) (numpy SVD)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"pca_2d needs an (N, D) array with N >= 2, got shape {z.shape}.")
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def plot_embeddings(
    embeddings: Mapping[str, np.ndarray],
    y: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """2-D PCA of the shared embedding of every modality, coloured by class (left) and by modality (right).

    Parameters
    ----------
    embeddings : dict of str to array, shape (N, proj_dim)
        Paired test-window embeddings per modality.
    y : array of int, shape (N,)
    class_names : sequence of str
    path : path
    """
    plt = _plt()
    mods = list(embeddings)
    y = np.asarray(y)
    for m in mods:
        if np.asarray(embeddings[m]).shape[0] != y.shape[0]:
            raise ValueError(
                f"embeddings[{m!r}] has {np.asarray(embeddings[m]).shape[0]} rows, y has {y.shape[0]}."
            )
    coords = pca_2d(np.concatenate([embeddings[m] for m in mods]))
    mod_idx = np.repeat(np.arange(len(mods)), y.shape[0])
    classes = np.tile(y, len(mods))
    markers = "ox^sDv<>"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(class_names):
        for i, m in enumerate(mods):
            sel = (classes == k) & (mod_idx == i)
            ax1.scatter(*coords[sel].T, s=8, alpha=0.6, color=cmap(k % 10), marker=markers[i % len(markers)],
                        label=f"{name} ({m})")  # fmt: skip
    for i, m in enumerate(mods):
        sel = mod_idx == i
        ax2.scatter(*coords[sel].T, s=8, alpha=0.6, color=cmap((i + 3) % 10), label=m)
    ax1.set_title("coloured by class")
    ax2.set_title("coloured by modality")
    for ax in (ax1, ax2):
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7, markerscale=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- whole report


def write_report(
    out_dir: str | Path,
    results: Mapping[str, Any],
    *,
    class_names: Sequence[str],
    config: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    title: str = "M2S results",
    sweep: Mapping[str, Any] | None = None,
    optimistic: bool = False,
    tuning: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write results.json, details.json, report.md and the figures of an experiment.

    Parameters
    ----------
    out_dir : path
    results : dict
        Method -> :class:`~training.experiment.MethodResult`.
    class_names : sequence of str
    config : dict | None
        Stored in details.json.
    meta : dict | None
        Shown in the report and stored in details.json.
    title : str
    sweep : dict | None
        T × N sweep results.
    optimistic : bool
        Epochs selected on test data (labelled everywhere).
    tuning : dict | None
        The ``--tune`` record (:func:`training.tuning.tune_subject`), stored in results.json under
        ``"tuning"`` and summarised in the report.

    Returns
    -------
    dict of str to Path
        'results', 'details', 'report' and one entry per figure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {m: r.summary for m, r in results.items()}
    labels = {m: r.label for m, r in results.items()}
    record = results_json(summaries)
    if tuning is not None:
        record["tuning"] = dict(tuning)
        meta = {
            **dict(meta or {}),
            "tuning": f"'{tuning['selected']}' chosen by {tuning['objective']} (scores: "
            + ", ".join(f"{k} {v:.3f}" for k, v in tuning["scores"].items())
            + ")",
        }
    paths: dict[str, Path] = {"results": write_json(record, out / "results.json")}
    details = {
        "protocol": "TEST-SET epoch selection (optimistic reference protocol)"
        if optimistic
        else "validation-split epoch selection",
        "meta": dict(meta or {}),
        "config": dict(config or {}),
        "class_names": list(class_names),
        "methods": {
            m: {
                "label": r.label,
                "summary": r.summary,
                "splits": [
                    {
                        "split": s.split,
                        "subject": s.subject,
                        "seconds": s.seconds,
                        "matrix": s.matrix,
                        "selection": {
                            a: {"best_epoch": v["best_epoch"], "selected_on": v["selected_on"]}
                            for a, v in s.selection.items()
                        },
                        "pretrain_history": s.pretrain_history,
                    }
                    for s in r.splits
                ],
            }
            for m, r in results.items()
        },
    }
    if sweep:
        details["sweep"] = sweep
    paths["details"] = write_json(details, out / "details.json")
    figures: list[Path] = []
    histories = {
        m: [s.pretrain_history for s in r.splits] for m, r in results.items() if r.splits[0].pretrain_history
    }
    if histories:
        paths["loss_curves"] = plot_loss_curves(histories, out / "loss_curves.png")
        figures.append(paths["loss_curves"])
    for m, r in results.items():
        key = f"confusion_{m}"
        paths[key] = plot_confusion_matrices(r.summary, class_names, out / f"{key}.png", title=r.label)
        figures.append(paths[key])
    for r in results.values():
        emb = r.splits[0].embeddings
        if emb is not None:
            mods = {k: v for k, v in emb.items() if k != "y"}
            paths["embeddings"] = plot_embeddings(
                mods,
                emb["y"],
                class_names,
                out / "embeddings.png",
                title=f"{r.label}, {r.splits[0].split} (test windows)",
            )
            figures.append(paths["embeddings"])
            break
    if sweep and sweep.get("cells"):
        paths["tn_heatmap"] = plot_tn_heatmap(sweep, out / "tn_heatmap.png")
        figures.append(paths["tn_heatmap"])
    text = markdown_report(
        summaries, labels=labels, title=title, meta=meta, optimistic=optimistic, sweep=sweep, figures=figures
    )
    paths["report"] = out / "report.md"
    paths["report"].write_text(text, encoding="utf-8")
    logger.info("wrote report to %s", paths["report"])
    return paths
