"""``RUN/audit/report.html``: one self-contained page (plots as embedded PNG, example strips).

Why self-contained: the report is mailed and opened from anywhere, so plots (matplotlib, Agg) and
example thumbnails are embedded as data URLs. Every piece of text that comes from the data
(captions, slide ids, terms) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pathgen.audit.flags import FLAGS
from pathgen.audit.images import PairImages, decode
from pathgen.config import AuditConfig
from pathgen.rundir import atomic_write

THUMB = 128

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:1200px;color:#222}
h1{font-size:1.5rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
.plots img{width:380px;margin:.3rem} .strip{display:flex;flex-wrap:wrap;gap:.4rem}
.strip figure{margin:0;width:132px;font-size:.7rem} .strip img{width:128px;height:128px;display:block}
.note{color:#666;font-size:.9rem}
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _hist(values: Sequence[float], title: str, threshold: float | None, log: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if log:
        vals = np.log10(np.maximum(vals, 1e-3))
    ax.hist(vals if len(vals) else [0], bins=min(40, max(5, len(vals))), color="#7b4f9d", edgecolor="white")
    if threshold is not None:
        t = float(np.log10(max(threshold, 1e-3))) if log else threshold
        ax.axvline(t, color="#c0392b", linestyle="--", label="threshold")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("pairs", fontsize=8)
    return _png(fig)


def _bars(counts: Mapping[str, int], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="#7b4f9d")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _png(fig)


def _thumb(jpeg: bytes) -> str:
    image = decode(jpeg)
    image.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _strips(
    rows: Sequence[Mapping[str, Any]], images: PairImages, slides: Mapping[str, Mapping[str, Any]], n: int
) -> str:
    parts = []
    for flag in FLAGS:
        hits = [r for r in rows if flag in r["flags"]][:n]
        if not hits:
            continue
        figs = []
        for r in hits:
            try:
                jpeg, _ = images.get(r, slides.get(r["slide_id"]))
            except Exception:  # the row already records why its image could not be read
                jpeg = None
            img = f'<img src="{_thumb(jpeg)}" alt="">' if jpeg else "<div>(no image)</div>"
            figs.append(
                f'<figure title="{html.escape(r["caption"], quote=True)}">{img}'
                f"<figcaption>{html.escape(r['tile_id'])}</figcaption></figure>"
            )
        parts.append(f'<h3 id="flag-{flag}">{flag} ({sum(flag in r["flags"] for r in rows)})</h3>')
        parts.append(f'<div class="strip">{"".join(figs)}</div>')
    return "\n".join(parts) or "<p>No pair is flagged.</p>"


def write_report(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    images: PairImages,
    slides: Mapping[str, Mapping[str, Any]],
    cfg: AuditConfig,
) -> Path:
    """Write the audit report; returns its path."""
    ok = [r for r in rows if r.get("error") is None]
    plots = [
        _bars(summary["by_flag"], "pairs per flag"),
        _hist([r["laplacian_var"] for r in ok], "blur: log10 variance of the Laplacian",
              cfg.blur_max_laplacian_var, log=True),
        _hist([r["pen_fraction"] for r in ok], "pen: ink pixel share", cfg.pen_max_fraction),
        _hist([r["background_fraction"] for r in ok], "background share", cfg.background_max_fraction),
        _hist([r["dark_fraction"] for r in ok], "fold: dark pixel share", cfg.fold_max_dark_fraction),
        _hist([r["blockiness"] for r in ok], "jpeg: blockiness", cfg.jpeg_max_blockiness),
        _hist([r.get("alignment") for r in ok], f"image-caption alignment ({summary['encoder']})", None),
        _hist([r["n_tokens"] for r in rows], "caption CLIP tokens", cfg.max_tokens),
    ]  # fmt: skip
    leak = summary["leakage"]
    if leak.get("accuracy") is not None:
        leak_text = (
            f"Linear probe predicting the tissue source site from image features: accuracy "
            f"{leak['accuracy']:.3f} vs chance {leak['chance']:.3f} (lift {leak['lift']:.2f}x; "
            f"{leak['sites']} sites, {leak['n']} patches, {leak['folds']}-fold CV by {leak['split']}). "
            f"{leak.get('note') or ''}"
        )
    else:
        leak_text = f"Site-leakage score not computed: {leak.get('note')} ({leak['n']} TCGA patches)."
    terms = [
        [site, ", ".join(f"{t} ({lo:+.2f}, {c})" for t, lo, c in found)]
        for site, found in sorted(summary["site_terms"].items())
    ]
    flag_rows = [[f, summary["by_flag"][f]] for f in FLAGS]
    random_note = (
        "<strong>The alignment encoder has random weights: alignment scores and the misaligned flag "
        "mean nothing; give a trained encoder (<code>--encoder</code>).</strong> "
        if summary.get("encoder_random")
        else ""
    )
    terms_html = (
        _table(["site", "term (log-odds, captions)"], terms)
        if terms
        else '<p class="note">Needs captions from at least two TCGA sites.</p>'
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pathgen audit</title><style>{_STYLE}</style></head>
<body>
<h1>pathgen audit</h1>
<p>{summary["pairs"]} pairs from {summary["slides"]} slides; {summary["flagged"]} flagged;
{summary["failed"]} could not be measured. Alignment encoder: <code>{html.escape(summary["encoder"])}</code>.
{random_note}Per-pair values: <code>flags.parquet</code>; thresholds: <code>summary.json</code> and the
<code>audit:</code> section of the config.</p>
<h2>Flags</h2>{_table(["flag", "pairs"], flag_rows)}
<div class="plots">{"".join(f'<img src="{p}" alt="plot">' for p in plots)}</div>
<h2>Shortcuts</h2>
<p>{html.escape(leak_text)}</p>
<h3>Per project</h3>{_table(["project", "pairs"], list(summary["projects"].items()))}
<h3>Per tissue source site</h3>{_table(["site", "pairs"], list(summary["sites"].items()))}
<h3>Most site-specific caption terms</h3>
{terms_html}
<h2>Examples</h2>
{_strips(rows, images, slides, cfg.examples)}
</body></html>
"""
    return atomic_write(path, page)
