"""Ingest external image-caption pairs into pathgen shards, with checks and duplicate reports.

``ingest(fmt, path, out_root, name)`` writes ``out_root/name/`` as a dataset folder (the same
layout as ``RUN/export/``: shards, ``index.parquet`` with pixel hashes, card, gallery), every
sample tagged ``source=name``, plus ``report.json`` (counts by skip reason) and ``duplicates.parquet``
(exact and near duplicates, within this source and against every other dataset folder given in
``against`` or found beside it in ``out_root``). Exact duplicates (same decoded pixels) are
dropped by default; near duplicates (dHash within ``near_threshold`` bits) are reported only.
Finally ``out_root/mix.yaml`` (see :mod:`pathgen.export.mixing`) is refreshed to list every set.

Bad input never stops an ingest and nothing is written outside ``out_root/name``: the sample key
is made by pathgen, never taken from a path or tar member name.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from pathgen.export.dataset import write_dataset
from pathgen.export.dedup import dhash, near_pairs, pixel_sha256, same_hash_groups
from pathgen.export.mixing import dataset_name, refresh_manifest
from pathgen.export.readers import RawPair, read_source
from pathgen.export.shards import safe_key
from pathgen.export.writer import Pair
from pathgen.rundir import write_json, write_parquet

MAX_CAPTION_CHARS = 4000
MIN_IMAGE_SIDE = 16
MAX_IMAGE_PIXELS = 100_000_000


def check_caption(caption: str | None, max_chars: int = MAX_CAPTION_CHARS) -> str | None:
    if caption is None or not caption.strip():
        return "empty_caption"
    if len(caption) > max_chars:
        return "caption_too_long"
    return None


def load_image(raw: RawPair) -> tuple[Image.Image | None, str | None]:
    """Decode fully (a truncated file fails here, not later in training) into RGB."""
    if raw.path is None and raw.data is None:
        return None, "missing_image"
    if raw.path is not None and not raw.path.is_file():
        return None, "missing_image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            src = io.BytesIO(raw.data) if raw.data is not None else raw.path
            with Image.open(src) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    return None, "image_too_large"
                image = im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "image_too_large"
    except Exception:
        return None, "corrupt_image"
    if min(image.size) < MIN_IMAGE_SIDE:
        return None, "image_too_small"
    return image, None


def _other_indexes(out_root: Path, name: str, against: Sequence[Path]) -> list[tuple[str, Path]]:
    found = [(p.parent.name, p) for p in sorted(out_root.glob("*/index.parquet")) if p.parent.name != name]
    for folder in against:
        idx = Path(folder) / "index.parquet"
        if idx.exists() and idx.resolve() not in {p.resolve() for _, p in found}:
            found.append((dataset_name(Path(folder)), idx))
    return found


def ingest(
    fmt: str,
    path: str | Path,
    out_root: Path,
    name: str,
    *,
    images: Path | None = None,
    image_col: str | None = None,
    text_col: str | None = None,
    max_side: int | None = None,
    per_shard: int = 1000,
    quality: int = 95,
    near_threshold: int = 4,
    keep_exact_duplicates: bool = False,
    against: Sequence[Path] = (),
    weight: float = 1.0,
    max_caption_chars: int = MAX_CAPTION_CHARS,
) -> dict[str, Any]:
    """Ingest one source; returns the report (also written to ``out_root/name/report.json``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dup_schema = pa.schema(
        [("key", pa.string()), ("other", pa.string()), ("kind", pa.string()), ("distance", pa.int32())]
    )

    name = safe_key(name)
    out = Path(out_root) / name
    skipped: Counter = Counter()
    examples: dict[str, str] = {}
    seen: dict[str, str] = {}  # pixel sha256 -> "source:key" of the first copy
    for other, idx in _other_indexes(Path(out_root), name, against):
        for row in pq.read_table(idx, columns=["key", "pixel_sha256"]).to_pylist():
            seen.setdefault(row["pixel_sha256"], f"{other}:{row['key']}")
    exact: list[dict[str, Any]] = []
    keys: set[str] = set()
    raws = read_source(fmt, path, images, image_col, text_col)

    def skip(raw: RawPair, reason: str) -> None:
        reason_key = reason.split(":", 1)[0]
        skipped[reason_key] += 1
        examples.setdefault(reason_key, raw.id)

    def pairs() -> Iterator[Pair]:
        for raw in raws:
            if raw.problem:
                skip(raw, raw.problem)
                continue
            reason = check_caption(raw.caption, max_caption_chars)
            image, why = (None, reason) if reason else load_image(raw)
            if image is None:
                skip(raw, why or "corrupt_image")
                continue
            if max_side and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            sha = pixel_sha256(image)
            key = f"{name}_{safe_key(raw.id)}"
            while key in keys:
                key += "_d"
            if sha in seen:
                exact.append({"key": key, "other": seen[sha], "kind": "exact", "distance": 0})
                if not keep_exact_duplicates:
                    skip(raw, "exact_duplicate")
                    continue
            seen.setdefault(sha, f"{name}:{key}")
            keys.add(key)
            meta = {
                "key": key,
                "source": name,
                "format": fmt,
                "source_id": raw.id,
                "caption": " ".join(raw.caption.split()),
                "width": image.width,
                "height": image.height,
                **{f"extra_{k}": v for k, v in sorted(raw.extra.items())},
            }
            yield Pair(meta=meta, image=image, hashes=(sha, dhash(image)))

    summary = write_dataset(
        out,
        pairs(),
        title=f"pathgen ingest: {name} ({fmt})",
        per_shard=per_shard,
        quality=quality,
        skipped=lambda: dict(skipped),
        extra={"format": fmt, "input": str(path)},
    )
    near = _near_duplicates(out, name, _other_indexes(Path(out_root), name, against), near_threshold)
    dups = exact + near
    write_parquet(pa.Table.from_pylist(dups, schema=dup_schema), out / "duplicates.parquet")
    report = {
        "source": name,
        "format": fmt,
        "input": str(path),
        "done": summary["pairs"],
        "skipped": sum(skipped.values()),
        "failed": 0,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "skip_examples": examples,
        "exact_duplicates": len(exact),
        "near_duplicates": len(near),
        "near_threshold": near_threshold,
        **summary,
    }
    write_json(out / "report.json", report)
    refresh_manifest(Path(out_root), weights={name: weight}, external=list(against))
    return report


def _near_duplicates(
    out: Path, name: str, others: list[tuple[str, Path]], threshold: int
) -> list[dict[str, Any]]:
    """Near pairs among this set's images and between this set and the others (never others-only)."""
    import pyarrow.parquet as pq

    rows = [(name, r["key"], r["dhash"]) for r in pq.read_table(out / "index.parquet").to_pylist()]
    n_own = len(rows)
    for other, idx in others:
        rows += [
            (other, r["key"], r["dhash"]) for r in pq.read_table(idx, columns=["key", "dhash"]).to_pylist()
        ]
    hashes = [h for _, _, h in rows]
    found = [(g[0], k, 0) for g in same_hash_groups(hashes) for k in g[1:]]
    found += near_pairs(hashes, threshold)
    out_rows = []
    for i, j, dist in found:
        if i >= n_own and j >= n_own:
            continue
        a, b = (i, j) if i < n_own else (j, i)
        out_rows.append(
            {"key": rows[a][1], "other": f"{rows[b][0]}:{rows[b][1]}", "kind": "near", "distance": dist}
        )
    return out_rows
