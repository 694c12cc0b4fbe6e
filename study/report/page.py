"""Self-contained HTML pages: sections, embedded figures and tables, shared by the report and the comparison.

A page is one file that opens offline: figures are base64 PNGs inside <img> tags, the CSS and the one small
script are inline, nothing is fetched. Every table sits in a box that scrolls sideways, so a wide table
never runs off the page. The script records on <body> how many images loaded (`data-images-loaded` of
`data-images-total`), any script error (`data-errors`) and whether the page is wider than the window
(`data-overflow`), so a headless browser can check the page.
What goes into a page's sections is decided by the pages: sections.py and final.py (the report), compare.py and
compare_final.py (the comparison), ablation.py (the ablation report).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainables.files import write_bytes, write_text

DPI = 100


@dataclass(frozen=True)
class Section:
    id: str  # the anchor, e.g. "summary"
    title: str
    blocks: tuple[str, ...]  # HTML fragments, in order


def section(id: str, title: str, *blocks: str) -> Section:
    return Section(id, title, blocks)


def save_figure(fig: Figure, folder: Path, name: str, caption: str) -> str:
    """Write `fig` as `folder/name.png` (drawn by Agg: no display needed); return the HTML embedding it, captioned."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / f"{name}.png", buf.getvalue())
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def note_html(text: str, warn: bool = False) -> str:
    """A note in an amber box; with `warn`, a warning in a red one (something the reader must not miss)."""
    return f'<p class="{"warn" if warn else "note"}">{html.escape(text)}</p>'


# The CSS class of each verdict (study/final/stats.py's VERDICTS): the box's colour follows what it says.
VERDICT_CLASSES = {"better": "better", "not distinguishable": "even", "worse": "worse"}


def verdict_html(text: str, verdict: str) -> str:
    """A verdict in a box coloured by it: green "better", grey "not distinguishable", red "worse"."""
    return f'<p class="verdict {VERDICT_CLASSES[verdict]}">{html.escape(text)}</p>'


def para_html(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def fmt(value: Any) -> str:
    """A cell as text: floats to 4 significant figures, missing values (None, NaN) as an em dash."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(inner: str, caption: str, cls: str = "") -> str:
    """A table in a box that scrolls sideways when the table is wider than the page."""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}>{cap}{inner}</table></div>'


def kv_table(items: Mapping[str, Any] | Iterable[tuple[str, Any]], caption: str = "") -> str:
    """A two-column table of names and values."""
    rows = items.items() if isinstance(items, Mapping) else items
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in rows)
    return _table(body, caption, "kv")


def frame_table(df: pd.DataFrame, caption: str = "", columns: Sequence[str] | None = None) -> str:
    """A table of a DataFrame's rows (index left out), every cell escaped."""
    cols = list(columns) if columns is not None else list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
        for row in df[cols].itertuples(index=False)
    )
    return _table(f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>", caption)


def details_html(summary: str, inner: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"


def grid_html(*blocks: str) -> str:
    """Blocks side by side where the page is wide enough, one under another where not."""
    return '<div class="grid">' + "".join(f"<div>{b}</div>" for b in blocks) + "</div>"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#222;
  background:#fafafa;line-height:1.45}
header{background:#263238;color:#fff;padding:1rem 2rem}
header h1{margin:0 0 .3rem 0;font-size:1.5rem} header p{margin:0;color:#cfd8dc}
header p.headline{color:#fff;font-size:1.1rem;font-weight:600;margin-bottom:.2rem}
nav{padding:.5rem 2rem;background:#eceff1;position:sticky;top:0;z-index:1}
nav a{margin-right:1rem;color:#37474f;text-decoration:none;font-weight:600}
main{padding:0 2rem 2rem 2rem;max-width:1200px}
section{background:#fff;margin:1.2rem 0;padding:.8rem 1.2rem;border-radius:6px;box-shadow:0 1px 3px #0002;
  min-width:0}
h2{border-bottom:2px solid #eceff1;padding-bottom:.3rem}
figure{margin:1rem 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
thead th,table.kv th{background:#f5f5f5}
caption{text-align:left;font-weight:600;padding:.3rem 0}
.note{background:#fff8e1;border-left:4px solid #ffb300;padding:.5rem .8rem}
.warn{background:#ffebee;border-left:4px solid #e53935;padding:.5rem .8rem;font-weight:600}
.verdict{border-left:4px solid;padding:.5rem .8rem;font-weight:600}
.verdict.better{background:#e8f5e9;border-color:#43a047} .verdict.even{background:#eceff1;border-color:#78909c}
.verdict.worse{background:#ffebee;border-color:#e53935}
.grid{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
.grid>div{min-width:0;max-width:100%}
"""

# Counts loaded images, script errors and overflow onto <body> so a headless browser's DOM dump shows them.
SCRIPT = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); }, true);
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-errors', String(window.__errors.length));
  var page = document.documentElement;  // wider than the window: something runs off the right edge
  document.body.setAttribute('data-overflow', String(page.scrollWidth > page.clientWidth));
  document.body.setAttribute('data-ready', '1');
});
"""


def write_page(path: Path, title: str, subtitle: str, sections: Sequence[Section], headline: str = "") -> None:
    """Write the page: a header (`headline`: the answer in a line), a nav bar linking every section, the sections."""
    head = f'<p class="headline">{html.escape(headline)}</p>' if headline else ""
    nav = "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>{"".join(s.blocks)}</section>'
        for s in sections
    )
    write_text(
        path,
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
        f"<body><header><h1>{html.escape(title)}</h1>{head}<p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n",
    )
