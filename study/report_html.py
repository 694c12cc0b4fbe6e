"""Self-contained HTML pages: the helpers `study.report` and `study.compare` share, and the study report.

A page is one file that opens offline: figures are base64 PNGs inside <img> tags, the CSS and the one small
script are inline, nothing is fetched. The script records on <body> how many images loaded
(`data-images-loaded` of `data-images-total`) and any script error (`data-errors`), so a headless browser
can check the page. `write_report` assembles the study report from report.py's info and plot functions;
the numbers and figures themselves are computed there (and in compare.py for comparisons).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from study import report as R

log = logging.getLogger(__name__)

DPI = 100


@dataclass(frozen=True)
class Section:
    id: str  # the anchor, e.g. "summary"
    title: str
    blocks: tuple[str, ...]  # HTML fragments, in order


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, drawn by Agg (no display needed)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig: Figure, folder: Path, name: str, caption: str) -> str:
    """Write `fig` as `folder/name.png` and return the HTML block that embeds it with its caption."""
    png = figure_png(fig)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / f"{name}.png", png)
    return figure_html(png, name, caption)


def figure_html(png: bytes, name: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def note_html(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def verdict_html(text: str) -> str:
    return f'<p class="verdict">{html.escape(text)}</p>'


def para_html(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def fmt(value: Any, digits: int = 4) -> str:
    """A cell as text: floats to `digits` significant figures, missing values as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        return f"{value:.{digits}g}"
    if hasattr(value, "item"):  # numpy scalars
        return fmt(value.item(), digits)
    return str(value)


def kv_table(items: Mapping[str, Any] | Iterable[tuple[str, Any]], caption: str = "") -> str:
    """A two-column table of names and values."""
    rows = items.items() if isinstance(items, Mapping) else items
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="kv">{cap}{body}</table>'


def frame_table(df: pd.DataFrame, caption: str = "", columns: Sequence[str] | None = None) -> str:
    """A table of a DataFrame's rows (index left out), every cell escaped."""
    cols = list(columns) if columns is not None else list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
        for row in df[cols].itertuples(index=False)
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def details_html(summary: str, inner: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#222;
  background:#fafafa;line-height:1.45}
header{background:#263238;color:#fff;padding:1rem 2rem}
header h1{margin:0 0 .3rem 0;font-size:1.5rem} header p{margin:0;color:#cfd8dc}
nav{padding:.5rem 2rem;background:#eceff1;position:sticky;top:0;z-index:1}
nav a{margin-right:1rem;color:#37474f;text-decoration:none;font-weight:600}
main{padding:0 2rem 2rem 2rem;max-width:1200px}
section{background:#fff;margin:1.2rem 0;padding:.8rem 1.2rem;border-radius:6px;box-shadow:0 1px 3px #0002}
h2{border-bottom:2px solid #eceff1;padding-bottom:.3rem}
figure{margin:1rem 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
thead th,table.kv th{background:#f5f5f5}
caption{text-align:left;font-weight:600;padding:.3rem 0}
.note{background:#fff8e1;border-left:4px solid #ffb300;padding:.5rem .8rem}
.verdict{background:#e8f5e9;border-left:4px solid #43a047;padding:.5rem .8rem;font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
"""

# Counts loaded images and script errors onto <body> so a headless browser's DOM dump shows them.
SCRIPT = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); }, true);
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-errors', String(window.__errors.length));
  document.body.setAttribute('data-ready', '1');
});
"""


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: header, a navigation bar with one link per section, and the sections."""
    nav = "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>{"".join(s.blocks)}</section>'
        for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
        f"<body><header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_page(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------ the study report


def _summary_section(results: R.StudyResults, s: R.Summary, top: pd.DataFrame, params: dict) -> Section:
    data = results.study.get("data") or {}
    best = {
        "trial": s.trial_id,
        "status": s.status,
        "best epoch / epochs run": f"{s.best_epoch} / {s.epochs_run}",
        "validation macro-F1": s.metrics["macro_f1"],
        "validation ROC AUC (macro, one-vs-rest)": s.metrics["auc"],
        "validation accuracy": s.metrics["accuracy"],
        "validation loss": s.metrics["loss"],
    }
    per_class = pd.DataFrame({"class": list(s.recall_per_class), "recall": list(s.recall_per_class.values())}).assign(
        f1=[s.f1_per_class.get(c) for c in s.recall_per_class]
    )
    hp = [(k, v) for k, v in s.searched.items()] + [(f"{k} (fixed)", v) for k, v in s.fixed.items()]
    counts = {
        "completed": s.counts["completed"],
        "stopped early (ASHA)": s.counts["stopped_early"],
        "errored": s.counts["errored"],
        **({"still running / interrupted": s.counts["running"]} if s.counts["running"] else {}),
        "total": s.counts["total"],
        "trial-epochs run": s.trial_epochs,
        "wall time (s)": s.wall_time_s,
        "study status": results.study.get("status"),
    }
    data_kv = {
        "fingerprint": data.get("fingerprint"),
        "classes": ", ".join(results.classes),
        "training rows": data.get("n_train"),
        "validation rows": data.get("n_valid"),
        "unlabelled rows": data.get("n_unlabelled"),
        "demo data": data.get("demo"),
        "training file": data.get("train_path"),
        "validation file": data.get("valid_path") or "(split from the training file)",
    }
    cols = ["trial_id", "status", "best_val_macro_f1", "best_val_auc", "best_val_accuracy", "best_epoch", "epochs_run"]
    top_cols = cols + [f"params_{k}" for k in params]
    settings = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in results.settings.items()}
    return Section(
        "summary",
        "Summary",
        (
            '<div class="grid">',
            kv_table(best, "Best trial"),
            frame_table(per_class, "Per class at the best epoch"),
            kv_table(hp, "Its hyperparameters"),
            "</div>",
            '<div class="grid">',
            kv_table(counts, "Trials"),
            kv_table(data_kv, "Data"),
            "</div>",
            frame_table(
                top.rename(columns=lambda c: c.removeprefix("params_")),
                f"Top {len(top)} trials",
                [c.removeprefix("params_") for c in top_cols],
            ),
            details_html("All settings of the study", kv_table(settings)),
        ),
    )


def _data_section(results: R.StudyResults, texts: R.TrainingTexts | None, note: str, fig_dir: Path) -> Section:
    from trainables.preprocess import clean_corpus
    from trainables.vectorize import default_cache_dir, encode_mean, train_word2vec

    if texts is None:
        return Section("data", "The data", (note_html(note),))
    s = R.data_settings(results)
    cleaned = clean_corpus(texts.texts, s.clean_config())
    before, after = R.token_frequencies(R.raw_tokens(texts.texts)), R.token_frequencies(cleaned)
    blocks = [para_html(f"{len(texts.texts)} labelled tweets. {note}")]
    blocks.append(
        save_figure(R.plot_wordclouds(before, after), fig_dir, "wordclouds", "Word clouds before and after cleaning")
    )
    blocks.append(
        save_figure(
            R.plot_token_frequencies(before, after),
            fig_dir,
            "token_frequencies",
            f"Most frequent tokens before ({len(before)} distinct) and after cleaning ({len(after)} distinct)",
        )
    )
    wv = train_word2vec(
        clean_corpus(texts.w2v_texts, s.clean_config()), s.vector_config(), default_cache_dir() / "word2vec"
    )
    vectors = encode_mean(cleaned, wv)
    try:
        points = R.tsne_points(vectors, texts.labels, seed=s.data_seed)
    except R.ReportError as e:
        blocks.append(note_html(f"No t-SNE map: {e}"))
    else:
        title = (
            f"t-SNE of mean Word2Vec tweet vectors (D={wv.vectors.shape[1]}, {len(points)} of "
            f"{len(texts.texts)} tweets)"
        )
        blocks.append(save_figure(R.plot_tsne(points, texts.classes, title), fig_dir, "tsne", title))
    return Section("data", "The data", tuple(blocks))


def write_report(folder: str | Path, top_k: int = 5, train: str | Path | None = None) -> Path:
    """Write `folder/report.html` and `folder/figures/*.png` from the study's files; returns the HTML path.

    Raises:
        ResultsError: not a study folder, a missing file or an unknown schema version.
        ReportError: bad arguments.
        DataError: `train` was given but cannot be read.
    """
    if top_k < 1:
        raise R.ReportError(f"`top` must be >= 1, but got {top_k}.")
    if train is not None and not Path(train).is_file():
        raise R.ReportError(f"`--train` {str(train)!r} does not exist or is not a file; give the training CSV.")
    results = R.load_results(folder)
    texts, data_note = R.load_training_texts(results, train)  # a bad `--train` fails before any drawing
    fig_dir = results.folder / R.FIGURES_DIR
    fig_dir.mkdir(exist_ok=True)
    settings = results.settings
    params = R.searched_params(results)
    s = R.summary(results)
    top = R.top_trials(results.trials, top_k)
    sections = [_summary_section(results, s, top, params)]

    curves = R.learning_curves(results.epochs, list(top["trial_id"]))
    best_curves = curves[curves["trial_id"] == s.trial_id]
    labels = {r.trial_id: f"{r.trial_id} (F1 {r.best_val_macro_f1:.3f})" for r in top.itertuples()}
    sections.append(
        Section(
            "curves",
            "Learning curves",
            (
                save_figure(
                    R.plot_best_curves(best_curves, s.best_epoch, f"best trial {s.trial_id}"),
                    fig_dir,
                    "curves_best",
                    "The best trial: macro-F1 and loss per epoch, train against validation",
                ),
                save_figure(
                    R.plot_top_curves(curves, labels),
                    fig_dir,
                    "curves_top",
                    f"The top {len(top)} trials: validation (solid) and train (dashed) macro-F1 and loss",
                ),
            ),
        )
    )

    model_blocks: list[str] = []
    try:
        y, probs = R.trial_predictions(results.predictions, s.trial_id)
    except R.ReportError as e:
        model_blocks.append(note_html(f"No ROC curves or confusion matrices: {e}"))
    else:
        classes = results.classes or tuple(str(i) for i in range(probs.shape[1]))
        rocs = R.roc_curves(y, probs, classes)
        cm = R.confusion_matrix(y, probs.argmax(axis=1), len(classes))
        model_blocks += [
            para_html(f"Validation predictions of trial {s.trial_id} at its best epoch ({len(y)} tweets)."),
            save_figure(R.plot_roc(rocs, f"ROC, one-vs-rest ({s.trial_id})"), fig_dir, "roc", "ROC curve per class"),
            save_figure(
                R.plot_confusion(cm, classes, s.trial_id),
                fig_dir,
                "confusion",
                "Confusion matrix: counts and row-normalised (rows: true class)",
            ),
        ]
    sections.append(Section("model", "The best model", tuple(model_blocks)))

    search_blocks = []
    if not R.trial_order(results.trials)["trial_number"].ge(0).all():
        search_blocks.append(note_html("trials.parquet has no trial numbers; trials are shown in file order."))
    search_blocks.append(
        save_figure(R.plot_history(R.optimisation_history(results.trials)), fig_dir, "history", "Optimisation history")
    )
    if params:
        search_blocks += [
            save_figure(
                R.plot_slices(R.slice_data(results.trials, params), params),
                fig_dir,
                "slices",
                "Slice plots, one per searched hyperparameter (colour: trial order)",
            ),
            save_figure(
                R.plot_parallel(R.parallel_coordinates(results.trials, params)),
                fig_dir,
                "parallel",
                "Parallel coordinates of the searched hyperparameters",
            ),
        ]
    else:
        search_blocks.append(note_html("The search space has no searched hyperparameters."))
    imp = R.param_importances(results.trials, results.epochs, params)
    if imp.by_evaluator:
        search_blocks.append(
            save_figure(R.plot_importances(imp), fig_dir, "importance", "Hyperparameter importance (Optuna)")
        )
    search_blocks += [note_html(n) for n in imp.notes]
    sections.append(Section("search", "The search", tuple(search_blocks)))

    max_epochs = int(settings.get("max_epochs") or results.trials["epochs_run"].max())
    rungs = R.asha_rungs(int(settings.get("grace_period", 1)), int(settings.get("reduction_factor", 3)), max_epochs)
    saved = R.compute_saved(results.trials, max_epochs, results.epochs)
    sections.append(
        Section(
            "early-stopping",
            "Early stopping",
            (
                save_figure(
                    R.plot_early_stopping(R.epochs_per_trial(results.trials), rungs, max_epochs, saved),
                    fig_dir,
                    "early_stopping",
                    "Epochs run per trial against ASHA's rungs",
                ),
                kv_table(
                    {
                        "ASHA rungs (epochs)": ", ".join(map(str, rungs)),
                        "trials stopped early": saved.stopped_early,
                        "trial-epochs run": saved.epochs_run,
                        f"trial-epochs if all ran {max_epochs}": saved.epochs_full,
                        "trial-epochs saved": f"{saved.epochs_saved} ({saved.fraction_saved:.0%})",
                        "mean seconds per epoch": saved.seconds_per_epoch,
                        "seconds saved (estimate)": saved.seconds_saved,
                    },
                    "Compute saved",
                ),
            ),
        )
    )
    sections.append(_data_section(results, texts, data_note, fig_dir))

    path = results.folder / R.REPORT_FILE
    subtitle = (
        f"{results.folder} · space {(results.study.get('space') or {}).get('name')} · "
        f"{s.counts['total']} trials · best val macro-F1 {s.metrics['macro_f1']:.4f}"
    )
    write_page(path, render_page(f"Study {results.name}", subtitle, sections))
    log.info("Writing report <path=%s>", path)
    return path
