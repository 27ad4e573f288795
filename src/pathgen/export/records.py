"""From caption records to the dataset's records: released JSON, shard metadata, index rows.

Why one normaliser: the same pair appears in ``pathgen.json`` (the released PathGen-1.6M schema),
in each shard's ``KEY.json`` and in ``index.parquet``; building all three from one dict keeps them
consistent. Shard metadata always has the same keys with the same types, because Hugging Face
``datasets`` infers one schema from the first few samples and fails on any later sample that
differs (see :func:`pathgen.export.shards.wire_meta` for how nulls and lists are written).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pathgen.export.shards import tile_key

AGENTS = ("describe", "revise", "summarize")
EXPORT_STATUSES = ("ok", "truncated")
SOURCE = "pathgen"


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def _float_or_none(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def normalise_edits(revision: Any) -> list[dict[str, str | None]]:
    """The revise agent's edits as ``{type, before, after}`` (types: addition/deletion/modification).

    Accepts the common spellings an agent may use (``kind``, ``old``/``new``, ``original``/``revised``).
    """
    edits = revision.get("edits") if isinstance(revision, Mapping) else None
    out: list[dict[str, str | None]] = []
    for edit in edits or []:
        if isinstance(edit, Mapping):
            kind = edit.get("type") or edit.get("kind") or edit.get("op") or "unknown"
            before = next((edit[k] for k in ("before", "old", "original", "from") if k in edit), None)
            after = next(
                (edit[k] for k in ("after", "new", "revised", "to", "replacement") if k in edit), None
            )
            out.append(
                {"type": str(kind).lower(), "before": _str_or_none(before), "after": _str_or_none(after)}
            )
        else:
            out.append({"type": "unknown", "before": None, "after": _str_or_none(edit)})
    return out


def _by_agent(mapping: Any) -> dict[str, str | None]:
    mapping = mapping if isinstance(mapping, Mapping) else {}
    return {agent: _str_or_none(mapping.get(agent)) for agent in AGENTS}


def exportable(record: Mapping[str, Any]) -> str | None:
    """None when the record goes into the dataset, else the reason it does not."""
    status = record.get("status", "ok")
    if status not in EXPORT_STATUSES:
        return f"status_{status}"
    if not _str_or_none(record.get("caption")):
        return "empty_caption"
    return None


def build_meta(record: Mapping[str, Any], slide: Mapping[str, Any], image_size: int) -> dict[str, Any]:
    """The ``KEY.json`` of a pair: where it comes from, the three agents' outputs, models, prompts."""
    slide_id = str(record["slide_id"])
    x, y, size = int(record["x"]), int(record["y"]), int(record["size"])
    revision = record.get("revision") if isinstance(record.get("revision"), Mapping) else {}
    mpp = _float_or_none(slide.get("mpp"))
    return {
        "key": tile_key(slide_id, x, y, size),
        "source": SOURCE,
        "tile_id": str(record.get("tile_id") or f"{slide_id}:{x}:{y}:{size}"),
        "wsi_id": slide_id,
        "file_id": _str_or_none(slide.get("file_id")),
        "project": _str_or_none(slide.get("project")),
        "x": x,
        "y": y,
        "size": size,
        "level": 0,
        "mpp": mpp or 0.0,  # 0.0 = unknown (see mpp_source)
        "mpp_source": (_str_or_none(slide.get("mpp_source")) or "metadata") if mpp else "none",
        "image_size": int(image_size),
        "caption": str(record["caption"]).strip(),
        "description": _str_or_none(record.get("description")),
        "revised": _str_or_none(revision.get("revised")),
        "edits": normalise_edits(revision),
        "status": str(record.get("status", "ok")),
        "flags": [str(f) for f in record.get("flags") or []],
        "models": _by_agent(record.get("models")),
        "prompt_versions": _by_agent(record.get("prompt_versions")),
        "reviewed": bool(record.get("reviewed", False)),  # by a person in `pathgen review`
        "reviewer": _str_or_none(record.get("reviewer")),
    }


def released_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The PathGen-1.6M release schema: ``{wsi_id, position: [x, y] as strings, caption, file_id}``."""
    rec: dict[str, Any] = {
        "wsi_id": meta["wsi_id"],
        "position": [str(meta["x"]), str(meta["y"])],
        "caption": meta["caption"],
    }
    if meta.get("file_id"):
        rec["file_id"] = meta["file_id"]
    return rec


def read_released(path: str | Path) -> list[dict[str, Any]]:
    """Read a released ``pathgen.json`` (a JSON list; JSON lines accepted too)."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
    else:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return data


def slide_rows(path: Path) -> dict[str, dict[str, Any]]:
    """``slides.parquet`` as ``{slide_id: row}`` (empty when the file is absent)."""
    if not path.exists():
        return {}
    import pyarrow.parquet as pq

    return {str(r["slide_id"]): r for r in pq.read_table(path).to_pylist()}


def sort_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """tiles.parquet order (slide, then y, then x): stable shards whatever order captions finished in."""
    return sorted(records, key=lambda r: (str(r["slide_id"]), int(r["y"]), int(r["x"]), int(r["size"])))
