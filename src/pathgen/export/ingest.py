"""Ingest external image-caption pairs into pathgen shards, with checks and duplicate reports.

``ingest(fmt, path, out_root, name)`` writes ``out_root/name/`` as a dataset folder (the same
layout as ``RUN/export/``: shards, ``index.parquet`` with pixel hashes, card, gallery), every
sample tagged ``source=name``, plus ``report.json`` (counts by skip reason) and ``duplicates.parquet``
(exact and near duplicates, within this source and against every other dataset folder given in
``against`` or found beside it in ``out_root``). Exact duplicates (same decoded pixels) are
dropped by default; near duplicates (dHash within ``near_threshold`` bits) are reported only.
Finally ``out_root/mix.yaml`` (see :mod:`pathgen.export.mixing`) is refreshed to list every set
under ``out_root`` (``against`` folders only when asked: they are usually stage 1's own pairs).

Bad input never stops an ingest and nothing is written outside ``out_root/name``: the sample key
is made by pathgen, never taken from a path or tar member name. Nothing is read from outside the
image folder either (``..``, symlinks and absolute paths elsewhere are per-row skips) unless
``allow_absolute_paths`` is given. ``out_root/name`` is replaced as a whole when the new set is
complete, never rewritten in place.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from pathgen.export.dataset import check_dataset_folder, peek_nonempty, staged_dataset, write_dataset
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
    found = [
        (p.parent.name, p)
        for p in sorted(out_root.glob("*/index.parquet"))
        if p.parent.name != name and not p.parent.name.startswith(".")  # not a set being written
    ]
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
    mix_against: bool = False,
    weight: float = 1.0,
    max_caption_chars: int = MAX_CAPTION_CHARS,
    allow_absolute_paths: bool = False,
) -> dict[str, Any]:
    """Ingest one source; returns the report (also written to ``out_root/name/report.json``).

    ``against`` folders are only compared with for duplicates; they join ``mix.yaml`` only with
    ``mix_against`` (the mix is for stage 2, whose data must not be stage 1's pairs again). A source
    that yields no pair writes nothing (an earlier set of that name stays) and the report says
    ``written: False``; ``replaced`` names the earlier input when a set of the same name but another
    source is replaced. Image paths are read only inside the image folder unless
    ``allow_absolute_paths`` (see :func:`pathgen.export.readers.read_source`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dup_schema = pa.schema(
        [("key", pa.string()), ("other", pa.string()), ("kind", pa.string()), ("distance", pa.int32())]
    )

    name = safe_key(name)
    out = Path(out_root) / name
    check_dataset_folder(out)  # before reading anything
    skipped: Counter = Counter()
    examples: dict[str, str] = {}
    seen: dict[str, str] = {}  # pixel sha256 -> "source:key" of the first copy
    for other, idx in _other_indexes(Path(out_root), name, against):
        for row in pq.read_table(idx, columns=["key", "pixel_sha256"]).to_pylist():
            seen.setdefault(row["pixel_sha256"], f"{other}:{row['key']}")
    exact: list[dict[str, Any]] = []
    keys: set[str] = set()
    raws = read_source(fmt, path, images, image_col, text_col, allow_absolute_paths=allow_absolute_paths)

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

    previous = _previous_input(out)
    stream = peek_nonempty(pairs())
    if stream is None:
        return _empty_report(name, fmt, path, skipped, examples, exact)
    with staged_dataset(out) as staging:
        summary = write_dataset(
            out,
            stream,
            title=f"pathgen ingest: {name} ({fmt})",
            per_shard=per_shard,
            quality=quality,
            skipped=lambda: dict(skipped),
            extra={"format": fmt, "input": str(path)},
            into=staging,
        )
        others = _other_indexes(Path(out_root), name, against)
        near = _near_duplicates(staging, name, others, near_threshold)
        dups = exact + near
        write_parquet(pa.Table.from_pylist(dups, schema=dup_schema), staging / "duplicates.parquet")
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
            "input_resolved": _input_of(fmt, path)["input"],
            "written": True,
            "replaced": previous if previous and previous != _input_of(fmt, path) else None,
        }
        write_json(staging / "report.json", report)
    mixed = list(against) if mix_against else []
    manifest = refresh_manifest(Path(out_root), weights={name: weight}, external=mixed)
    return {**report, "manifest": str(manifest) if manifest else None}


def _input_of(fmt: str, path: str | Path) -> dict[str, str]:
    """What a set was made from, comparable across runs and working directories."""
    resolved = str(Path(path).resolve()) if fmt != "wds" or Path(path).exists() else str(path)
    return {"format": fmt, "input": resolved}


def _previous_input(out: Path) -> dict[str, str] | None:
    """The input of the set already in ``out`` (from its report.json), if any."""
    report_path = out / "report.json"
    if not report_path.is_file():
        return None
    old = json.loads(report_path.read_text(encoding="utf-8"))
    old_input = str(old.get("input_resolved") or old.get("input") or "")
    return {"format": str(old.get("format", "")), "input": old_input} if old_input else None


def _empty_report(
    name: str, fmt: str, path: str | Path, skipped: Counter, examples: dict[str, str], exact: list
) -> dict[str, Any]:
    """The report of an ingest that yielded no pair: nothing was written anywhere."""
    return {
        "source": name,
        "format": fmt,
        "input": str(path),
        "done": 0,
        "skipped": sum(skipped.values()),
        "failed": 0,
        "skipped_by_reason": dict(sorted(skipped.items())),
        "skip_examples": examples,
        "exact_duplicates": len(exact),
        "near_duplicates": 0,
        "written": False,
        "replaced": None,
        "manifest": None,
    }


def explain_empty(report: dict[str, Any], source: str | Path, images: Path | None) -> str:
    """Why an ingest wrote nothing, in words a user can act on."""
    reasons = report["skipped_by_reason"]
    if not reasons:
        return f"{source} holds no image-caption pair; nothing was written"
    head = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    msg = f"no pair of {source} could be ingested ({head}); nothing was written and mix.yaml is unchanged"
    relative_paths = report["format"] in ("quilt", "table", "arch")
    if set(reasons) == {"missing_image"} and images is None and relative_paths:
        base = Path(source).resolve().parent / ("images" if report["format"] == "arch" else "")
        msg += (
            f". Every image was missing: without --images, relative image paths are resolved against "
            f"{base}; pass --images FOLDER (the folder the paths are relative to)"
        )
    if reasons.get("absolute_path_refused"):
        msg += (
            ". Absolute image paths outside the image folder are not read: pass --images FOLDER "
            "(the folder holding them), or --allow-absolute-paths to read them where they are"
        )
    return msg


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
