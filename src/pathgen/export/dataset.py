"""Finish a dataset folder: shards, ``index.parquet``, ``pathgen.json``, card and gallery together.

Why: the export stage, ``export --from-pathgen-json`` and ``ingest`` differ only in where pairs come
from; this is the one place that decides what a pathgen dataset folder contains.

A dataset is never rewritten in place: it is written whole into a sibling folder and swapped in
(:func:`staged_dataset`), so a reader (training, ``ingest --against``, the gallery) sees the
previous dataset or the new one, never a mix of shards, even when the writer is killed. The swap
deletes the previous folder, so only a folder pathgen wrote may be replaced
(:func:`check_dataset_folder`); its mark is ``.pathgen-dataset.json``, written last.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from pathgen.export.card import TINY_WARNING, write_card
from pathgen.export.gallery import write_gallery
from pathgen.export.shards import brace_pattern
from pathgen.export.writer import Pair, WriteResult, write_index, write_pairs
from pathgen.rundir import atomic_write, replacing_dir, write_json

MARKER = ".pathgen-dataset.json"
DATASET_SCHEMA = 1
DATASET_FILES = ("index.parquet", "README.md", "gallery.html", "shards/sizes.json", MARKER)
#: Every top-level name a pathgen dataset folder may hold (export, materialise and ingest outputs).
DATASET_ENTRIES = frozenset(
    {
        "index.parquet",
        "README.md",
        "gallery.html",
        "shards",
        "card",
        "pathgen.json",
        "errors.json",
        "report.json",
        "duplicates.parquet",
        MARKER,
    }
)
_ATOMIC_TEMP = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")  # a killed atomic write's temporary file
SHOWN_FOREIGN = 5


class DatasetFolderError(ValueError):
    """The output folder holds something pathgen did not write, so it will not replace it."""


def check_dataset_folder(out: Path) -> None:
    """Refuse to replace ``out`` unless it is absent, empty, or a dataset folder pathgen wrote.

    Why: replacing a dataset deletes the previous folder as a whole. A user's ``--out`` that holds
    anything else (or a folder that only happens to have a README.md) must never be deleted.
    """
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetFolderError(f"{out} is a file, not a dataset folder; choose another output folder")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    foreign = [n for n in names if n not in DATASET_ENTRIES and not _ATOMIC_TEMP.match(n)]
    if foreign:
        shown = ", ".join(foreign[:SHOWN_FOREIGN]) + (" ..." if len(foreign) > SHOWN_FOREIGN else "")
        raise DatasetFolderError(
            f"{out} holds files pathgen did not write ({shown}); a dataset folder is replaced as a "
            "whole and pathgen never deletes other files: choose a new or empty folder, or move them"
        )
    if not {MARKER, "index.parquet", "shards"} & set(names):
        raise DatasetFolderError(
            f"{out} is not a dataset folder pathgen wrote (no {MARKER}, index.parquet or shards/), "
            "so it will not be replaced: choose a new or empty folder"
        )


@contextmanager
def staged_dataset(out: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``out`` to write a whole dataset into; on success it becomes ``out``.

    Everything a caller writes (shards, index, card, its own reports) goes into the yielded folder;
    the mark is written last, then the folder is swapped in and the previous one deleted. On error
    (or when killed) ``out`` is left exactly as it was; a killed run's folder is removed next time.
    """
    out = Path(out)
    check_dataset_folder(out)
    with replacing_dir(out) as staging:
        yield staging
        write_json(
            staging / MARKER,
            {"pathgen_dataset": DATASET_SCHEMA, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )


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
    into: Path | None = None,
) -> dict[str, Any]:
    """Write the dataset whose place is ``out``; returns counts and the shard pattern for training.

    ``skipped`` (reason -> count) goes into the card; pass a callable when the pipeline that feeds
    ``pairs`` only learns about failures while it is being consumed. ``into`` is the folder of a
    :func:`staged_dataset` of ``out`` for callers that add files of their own before the swap;
    without it the dataset is staged and swapped in here. Shards that ``out`` already holds with
    the same content are linked (or copied) into the new folder, not encoded again.
    """
    with nullcontext(into) if into is not None else staged_dataset(out) as staging:
        result = write_pairs(
            pairs,
            staging / "shards",
            per_shard=per_shard,
            quality=quality,
            expected=expected,
            gallery_max=gallery_max,
            reuse=Path(out) / "shards",
        )
        return finish_dataset(
            out, staging, result, title=title, page_size=page_size, skipped=skipped, extra=extra,
            released=released,
        )  # fmt: skip


def finish_dataset(
    out: Path,
    into: Path,
    result: WriteResult,
    *,
    title: str,
    page_size: int = 48,
    skipped: Mapping[str, int] | Callable[[], Mapping[str, int]] | None = None,
    extra: Mapping[str, Any] | None = None,
    released: bool = False,
) -> dict[str, Any]:
    """Write what completes the shards in ``into``: ``index.parquet``, ``pathgen.json``, card, gallery.

    ``result`` holds the index rows and thumbnails in shard order, whether one writer streamed the
    pairs (:func:`write_dataset`) or shard tasks wrote them (:mod:`pathgen.export.sharding`).
    """
    write_index(result.index, into / "index.parquet")
    if released:
        records = released_from_index(result.index)
        lines = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)  # one record a line
        atomic_write(into / "pathgen.json", f"[\n{lines}\n]\n" if records else "[]\n")
    # ``skipped`` may be a callable: pairs dropped while streaming are only known now.
    skipped_now = dict((skipped() if callable(skipped) else skipped) or {})
    write_card(into, result.index, result.agents, title=title, skipped=skipped_now, extra=extra)
    write_gallery(
        into / "gallery.html",
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
