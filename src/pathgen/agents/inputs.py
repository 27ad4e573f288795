"""The tiles to caption and their additional text, read from a run's parquet files.

Additional text per tile: the slide's ``project`` (organ / TCGA project), the findings of its
``report`` (via :func:`pathgen.selection.findings.split_findings`, or a plain sentence split when
that module is unavailable), and the ``prompt`` that selected the tile.
"""

from __future__ import annotations

import re
from typing import Any

from pathgen.records import CaptionTile
from pathgen.rundir import RunDir

_SENTENCES = re.compile(r"(?<=[.!?])\s+")
MAX_FINDINGS = 8


def report_findings(report: Any) -> list[str]:
    if not isinstance(report, str) or not report.strip():
        return []
    try:
        from pathgen.selection.findings import split_findings
    except ImportError:
        return [s.strip() for s in _SENTENCES.split(report) if len(s.split()) >= 3][:MAX_FINDINGS]
    return list(split_findings(report))[:MAX_FINDINGS]


def _read(path: Any) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def load_tasks(run: RunDir, limit: int | None = None) -> list[CaptionTile]:
    """Selected tiles as caption records, in selected.parquet order (``limit`` keeps the first N).

    Each record carries its slide's path, recorded reader and mpp from slides.parquet, so the
    caption stage reads a tile exactly as the tile stage and export do.
    """
    run.require(run.selected, "select")
    selected = _read(run.selected)
    if not selected:
        return []
    missing = {"tile_id", "slide_id", "x", "y", "size"} - set(selected[0])
    if missing:
        raise ValueError(f"{run.selected} lacks columns {sorted(missing)}")
    slides: dict[str, dict[str, Any]] = {}
    if run.slides.exists():
        slides = {str(r["slide_id"]): r for r in _read(run.slides)}
    findings_cache: dict[str, tuple[str, ...]] = {}
    tasks = []
    for row in selected[: limit if limit is not None else None]:
        slide_id = str(row["slide_id"])
        slide = slides.get(slide_id)
        if slide_id not in findings_cache:
            findings_cache[slide_id] = tuple(report_findings((slide or {}).get("report")))
        tasks.append(CaptionTile.from_rows(row, slide, findings=findings_cache[slide_id]))
    return tasks
