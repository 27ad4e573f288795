"""Finish a dataset folder: shards, ``index.parquet``, ``pathgen.json``, card and gallery together.

Why: the export stage, ``export --from-pathgen-json`` and ``ingest`` differ only in where pairs come
from; this is the one place that decides what a pathgen dataset folder contains.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pathgen.export.card import TINY_WARNING, write_card
from pathgen.export.gallery import write_gallery
from pathgen.export.shards import brace_pattern
from pathgen.export.writer import Pair, write_index, write_pairs
from pathgen.rundir import atomic_write

DATASET_FILES = ("index.parquet", "README.md", "gallery.html", "shards/sizes.json")


def released_from_index(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """PathGen-1.6M release records from index rows (``file_id`` only when known)."""
    out = []
    for r in rows:
        rec: dict[str, Any] = {
            "wsi_id": r["slide_id"],
            "position": [str(r["x"]), str(r["y"])],
            "caption": r["caption"],
        }
        if r.get("file_id"):
            rec["file_id"] = r["file_id"]
        out.append(rec)
    return out


def peek_nonempty(pairs: Iterable[Pair]) -> Iterator[Pair] | None:
    """``pairs`` unchanged, or None when it yields nothing at all.

    Why: pairs are streamed, so an empty result is only known once the shards would be replaced;
    pulling the first pair early lets a caller keep the previous dataset instead of writing an
    empty one over it.
    """
    it = iter(pairs)
    first = next(it, None)
    return None if first is None else itertools.chain([first], it)


def write_dataset(
    out: Path,
    pairs: Iterable[Pair],
    *,
    title: str,
    per_shard: int,
    quality: int = 95,
    expected: int | None = None,
    gallery_max: int = 1000,
    page_size: int = 48,
    skipped: Mapping[str, int] | Callable[[], Mapping[str, int]] | None = None,
    extra: Mapping[str, Any] | None = None,
    released: bool = False,
) -> dict[str, Any]:
    """Write everything under ``out``; returns counts and the shard pattern for training.

    ``skipped`` (reason -> count) goes into the card; pass a callable when the pipeline that feeds
    ``pairs`` only learns about failures while it is being consumed.
    """
    out.mkdir(parents=True, exist_ok=True)
    result = write_pairs(
        pairs,
        out / "shards",
        per_shard=per_shard,
        quality=quality,
        expected=expected,
        gallery_max=gallery_max,
    )
    write_index(result.index, out / "index.parquet")
    if released:
        records = released_from_index(result.index)
        lines = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)  # one record a line
        atomic_write(out / "pathgen.json", f"[\n{lines}\n]\n" if records else "[]\n")
    # ``skipped`` may be a callable: pairs dropped while streaming are only known now.
    skipped_now = dict((skipped() if callable(skipped) else skipped) or {})
    write_card(out, result.index, result.agents, title=title, skipped=skipped_now, extra=extra)
    write_gallery(
        out / "gallery.html",
        result.gallery,
        title=title,
        total=len(result.index),
        page_size=page_size,
        warning=TINY_WARNING if result.agents.flags.get("offline_demo") else None,
    )
    return {
        "pairs": len(result.index),
        "shards": len(result.shards),
        "shards_written": result.written_shards,
        "shards_kept": result.kept_shards,
        "train_data": brace_pattern(out / "shards", result.shards),
    }


def dataset_complete(out: Path, released: bool = False) -> bool:
    names = (*DATASET_FILES, "pathgen.json") if released else DATASET_FILES
    return all((out / name).exists() for name in names)
