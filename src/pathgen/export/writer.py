"""Write a stream of image-caption pairs as a dataset folder: shards, index, card, gallery.

Why one writer for every origin: a pathgen run, a materialised release and ingested external pairs
all end in the same layout, so training and inspection never need to know where pairs came from.
Pairs stream through (a 672-px JPEG is ~100 KB; a million of them never sit in memory); only the
small index rows and a capped set of gallery thumbnails are kept.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pathgen.export.card import AgentStats
from pathgen.export.dedup import dhash, pixel_sha256
from pathgen.export.shards import Sample, encode_jpeg, write_shards
from pathgen.export.text import clip_token_count, word_count
from pathgen.rundir import write_parquet

THUMB_SIZE = 192


@dataclass
class Pair:
    """A pair on its way to a shard: ``meta`` must hold at least ``key``, ``caption`` and ``source``."""

    meta: dict[str, Any]
    image: Image.Image | None = None
    jpeg: bytes | None = None
    hashes: tuple[str, int] | None = None  # (pixel sha256, dHash) when the caller already has them


@dataclass
class WriteResult:
    index: list[dict[str, Any]] = field(default_factory=list)
    gallery: list[dict[str, Any]] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    written_shards: int = 0
    kept_shards: int = 0
    agents: AgentStats = field(default_factory=AgentStats)


def thumbnail_uri(image: Image.Image, size: int = THUMB_SIZE) -> str:
    """A small JPEG as a ``data:`` URI so the gallery is one file that opens from disk."""
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(thumb, quality=80)).decode("ascii")


def index_row(
    meta: dict[str, Any], shard: str, hashes: tuple[str, int], tokens: bool = True
) -> dict[str, Any]:
    """The pair's row of ``index.parquet``; ``tokens=False`` leaves ``n_clip_tokens`` to the caller.

    Why optional: counting CLIP tokens loads open_clip's tokenizer (and torch with it, seconds and
    hundreds of MB); shard tasks leave it to the driver, which loads it once.
    """
    caption = meta["caption"]
    return {
        "key": meta["key"],
        "shard": shard,
        "source": meta.get("source"),
        "slide_id": meta.get("wsi_id"),
        "tile_id": meta.get("tile_id"),
        "project": meta.get("project"),
        "file_id": meta.get("file_id"),
        "x": meta.get("x"),
        "y": meta.get("y"),
        "size": meta.get("size"),
        "caption": caption,
        "n_words": word_count(caption),
        "n_clip_tokens": clip_token_count(caption) if tokens else None,
        "status": meta.get("status"),
        "pixel_sha256": hashes[0],
        "dhash": hashes[1],
    }


def gallery_item(meta: dict[str, Any], uri: str) -> dict[str, Any]:
    return {
        "key": meta["key"],
        "img": uri,
        "slide": meta.get("wsi_id") or "",
        "project": meta.get("project") or "",
        "source": meta.get("source") or "",
        "pos": [meta.get("x"), meta.get("y"), meta.get("size")] if meta.get("x") is not None else None,
        "caption": meta["caption"],
        "description": meta.get("description") or "",
        "revised": meta.get("revised") or "",
        "edits": meta.get("edits") or [],
        "models": meta.get("models") or {},
    }


def gallery_stride(n: int, gallery_max: int) -> int:
    """Every how many pairs a gallery thumbnail is taken, so at most ``gallery_max`` of ``n`` pairs
    spread evenly over the set (0: no gallery)."""
    return max(1, math.ceil(n / gallery_max)) if gallery_max > 0 else 0


def write_pairs(
    pairs: Iterable[Pair],
    shards_dir: Path,
    *,
    per_shard: int,
    quality: int = 95,
    expected: int | None = None,
    gallery_max: int = 1000,
    reuse: Path | None = None,
) -> WriteResult:
    """Stream ``pairs`` into shards under ``shards_dir``; collect index rows and gallery thumbnails.

    ``expected`` (the number of pairs, when known) spreads the capped gallery evenly over the set;
    ``reuse`` is the shards folder of the previous version, whose unchanged shards are kept.
    """
    result = WriteResult()
    stride = gallery_stride(expected or 0, gallery_max)

    def samples() -> Iterator[Sample]:
        for i, pair in enumerate(pairs):
            meta = pair.meta
            jpeg = pair.jpeg if pair.jpeg is not None else encode_jpeg(pair.image, quality)
            image = pair.image if pair.image is not None else Image.open(io.BytesIO(jpeg))
            hashes = pair.hashes or (pixel_sha256(image), dhash(image))
            shard = f"{i // per_shard:05d}.tar"
            result.index.append(index_row(meta, shard, hashes))
            result.agents.add(meta)
            if stride and i % stride == 0 and len(result.gallery) < gallery_max:
                result.gallery.append(gallery_item(meta, thumbnail_uri(image)))
            yield Sample(key=meta["key"], image=jpeg, caption=meta["caption"], meta=meta)

    shard_result = write_shards(samples(), shards_dir, per_shard, reuse=reuse)
    result.shards = shard_result.shards
    result.written_shards = shard_result.written
    result.kept_shards = shard_result.kept
    return result


def write_index(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("key", pa.string()),
            ("shard", pa.string()),
            ("source", pa.string()),
            ("slide_id", pa.string()),
            ("tile_id", pa.string()),
            ("project", pa.string()),
            ("file_id", pa.string()),
            ("x", pa.int64()),
            ("y", pa.int64()),
            ("size", pa.int64()),
            ("caption", pa.string()),
            ("n_words", pa.int32()),
            ("n_clip_tokens", pa.int32()),
            ("status", pa.string()),
            ("pixel_sha256", pa.string()),
            ("dhash", pa.int64()),
        ]
    )
    write_parquet(pa.Table.from_pylist(rows, schema=schema), path)
