"""From what the user typed to a list of slide records: files, folders, or a manifest table.

A manifest (CSV or parquet) has a ``path`` column and optionally ``slide_id``, ``project``,
``report``, ``file_id``; every other column travels with the slide into slides.parquet. Relative
paths in a manifest are resolved against the manifest's folder. Inputs that give no slide (a
missing path, a folder without slides, a manifest row without a path) become error records, so the
stage reports them instead of silently tiling less than the user asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathgen.sample_data import resolve_input
from pathgen.slides.readers import SLIDE_EXTENSIONS

MANIFEST_EXTENSIONS = frozenset({".csv", ".parquet", ".pq"})
RESERVED = frozenset({"path", "slide_id"})


def _record(path: str, slide_id: str | None = None, error: str | None = None, **extra: Any) -> dict[str, Any]:
    """One slide record; ``path`` becomes absolute so that later stages (export reads the patches
    again) work from any directory. ``os.path.abspath`` rather than ``resolve``: a symlinked slide
    keeps its own name, so the slide id (the file's stem) is the same as before."""
    rec: dict[str, Any] = {
        "path": os.path.abspath(path),
        "slide_id": slide_id or Path(path).stem or path,
        "input_error": error,
    }
    rec.update(extra)
    return rec


def _scan_dir(root: Path) -> list[Path]:
    """Slide files under ``root`` (recursive, sorted); MIRAX/DICOM companion folders are not descended."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in SLIDE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv":
        table = pcsv.read_csv(path)
    else:
        table = pq.read_table(path)
    if "path" not in table.column_names:
        raise ValueError(f"manifest {path} has no 'path' column (columns: {', '.join(table.column_names)})")
    rows = table.to_pylist()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        raw = row.get("path")
        extra = {k: v for k, v in row.items() if k not in RESERVED}
        if raw is None or not str(raw).strip():
            out.append(
                _record(f"{path}#row{i}", row.get("slide_id"), "manifest row has an empty path", **extra)
            )
            continue
        p = Path(str(raw)).expanduser()
        if not p.is_absolute():
            p = path.parent / p
        sid = row.get("slide_id")
        sid = str(sid) if sid is not None and str(sid).strip() else None
        err = None if p.exists() else "file not found"
        out.append(_record(str(p), sid, err, **extra))
    return out


def expand_inputs(inputs: list[str]) -> list[dict[str, Any]]:
    """Slide records ``{path, slide_id, input_error, <manifest columns>}`` in input order.

    Raises ``ValueError`` only for a malformed manifest (bad configuration fails at once); every
    per-slide problem is an ``input_error`` in the record.
    """
    records: list[dict[str, Any]] = []
    for item in inputs:
        p = Path(resolve_input(item)).expanduser()  # `pathgen:sample`: the packaged manifest
        if p.is_dir() and p.suffix.lower() != ".mrxs":
            slides = _scan_dir(p)
            if not slides:
                known = ", ".join(sorted(SLIDE_EXTENSIONS))
                records.append(_record(str(p), p.name or str(p), f"directory contains no slides ({known})"))
            records.extend(_record(str(s)) for s in slides)
        elif p.suffix.lower() in MANIFEST_EXTENSIONS and p.is_file():
            records.extend(_read_manifest(p))
        elif not p.exists():
            records.append(_record(str(p), error="file not found"))
        else:
            records.append(_record(str(p)))
    return _dedupe_ids(records)


def _dedupe_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two different files with the same stem would collide in tile ids: suffix the later ones.

    The same path given twice is listed once.
    """
    seen_paths: set[str] = set()
    used: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for rec in records:
        key = os.path.abspath(rec["path"])
        if key in seen_paths and rec["input_error"] is None:
            continue
        seen_paths.add(key)
        sid = rec["slide_id"]
        if sid in used:
            used[sid] += 1
            rec["slide_id"] = f"{sid}-{used[sid]}"
        else:
            used[sid] = 0
        out.append(rec)
    return out
