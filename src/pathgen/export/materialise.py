"""Materialise a released ``pathgen.json`` (PathGen-1.6M schema) into image-caption shards.

The release ships coordinates, not pixels: ``{wsi_id, position: [x, y], caption, file_id}`` with
672-px patches at level 0. Given a folder of the slides, this reads every patch and writes the same
dataset folder an export writes. Slides are found by ``wsi_id`` the way people actually store TCGA
slides: the full file name stem, the barcode before the UUID (``TCGA-CR-7395-01A-01-TS1`` of
``TCGA-CR-7395-01A-01-TS1.<uuid>``), case-insensitively, or a GDC download folder named by
``file_id``. Missing slides, ambiguous matches and positions outside the slide are reported per
record and skipped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pathgen.executors import Executor
from pathgen.executors.local import LocalExecutor
from pathgen.export.dataset import check_dataset_folder, finish_dataset, staged_dataset
from pathgen.export.reading import Patch
from pathgen.export.records import read_released
from pathgen.export.sharding import PatchItem, write_sharded
from pathgen.export.shards import tile_key
from pathgen.export.stage import ExportError
from pathgen.rundir import write_json

SLIDE_EXTS = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".svslide", ".bif", ".vms", ".dcm", ".czi"}
PATCH_SIZE = 672


def _norm(name: str) -> str:
    return name.strip().lower()


def _barcode(wsi_id: str) -> str:
    """The TCGA barcode part of a slide id: everything before the first dot (the UUID follows it)."""
    return _norm(wsi_id).split(".", 1)[0]


class SlideFinder:
    """Index a folder of slides once, then resolve ``wsi_id`` (and ``file_id``) to one file."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        self.by_barcode: dict[str, list[Path]] = defaultdict(list)
        self.by_folder: dict[str, list[Path]] = defaultdict(list)
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.suffix.lower() in SLIDE_EXTS:
                stem = _norm(path.name[: -len(path.suffix)])
                self.by_stem[stem].append(path)
                self.by_barcode[_barcode(stem)].append(path)
                self.by_folder[_norm(path.parent.name)].append(path)

    def find(self, wsi_id: str, file_id: str | None = None) -> tuple[Path | None, str | None]:
        """``(path, None)`` or ``(None, reason)``."""
        for table, key in (
            (self.by_folder, _norm(file_id or "")),
            (self.by_stem, _norm(wsi_id)),
            (self.by_barcode, _barcode(wsi_id)),
        ):
            if not key:
                continue
            hits = sorted(set(table.get(key, [])))
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                return None, f"ambiguous: {len(hits)} slides match ({', '.join(p.name for p in hits[:3])})"
        return None, "slide_not_found"


def _position(record: Mapping[str, Any]) -> tuple[int, int]:
    pos = record.get("position")
    if not isinstance(pos, (list, tuple)) or len(pos) != 2:
        raise ValueError(f"position must be [x, y], got {pos!r}")
    return int(float(pos[0])), int(float(pos[1]))


def materialise(
    source: Path,
    slides_dir: Path,
    out: Path,
    *,
    patch_size: int = PATCH_SIZE,
    image_size: int = PATCH_SIZE,
    quality: int = 95,
    per_shard: int = 1000,
    gallery_max: int = 1000,
    reader: str = "auto",
    workers: int = 0,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Write ``out/`` (shards, index, pathgen.json of what was materialised, card, gallery, report).

    ``out`` is replaced as a whole once everything is written (see
    :func:`~pathgen.export.dataset.staged_dataset`); a folder pathgen did not write is refused.
    Shards are written as the export stage writes them: one item of ``executor`` each
    (:mod:`pathgen.export.sharding`), ``workers`` at once on the local executor.
    """
    check_dataset_folder(out)
    records = read_released(source)
    finder = SlideFinder(slides_dir)
    problems: list[dict[str, Any]] = []
    by_slide: dict[Path, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, rec in enumerate(records):
        wsi_id = str(rec.get("wsi_id") or "").strip()
        caption = str(rec.get("caption") or "").strip()
        if not wsi_id or not caption:
            problems.append({"record": i, "wsi_id": wsi_id, "reason": "missing wsi_id or caption"})
            continue
        path, why = finder.find(wsi_id, rec.get("file_id"))
        if path is None:
            problems.append({"record": i, "wsi_id": wsi_id, "reason": why})
            continue
        by_slide[path].append((i, rec))

    plan = _plan(by_slide, patch_size, reader, problems)
    items = _items(plan, patch_size, reader)
    with staged_dataset(out) as staging:
        sharded = write_sharded(
            items,
            staging / "shards",
            meta=partial(release_meta, image_size=image_size),
            per_shard=per_shard,
            image_size=image_size,
            quality=quality,
            gallery_max=gallery_max,
            workers=workers,
            executor=executor or LocalExecutor(),
            reuse=Path(out) / "shards",
            label="materialise: shards",
        )
        for pos, reason in sharded.errors:
            lost = items[pos].source
            problems.append(
                {"record": lost["record"], "wsi_id": lost["wsi_id"], "reason": f"read failed: {reason}"}
            )
        if not sharded.written.index:  # raised inside the staging: the previous dataset stays whole
            reasons = ", ".join(f"{k} {v}" for k, v in _reasons(problems).items()) or "no record"
            raise ExportError(f"no record could be materialised ({reasons}), so {out} was left as it was")
        summary = finish_dataset(
            out,
            staging,
            sharded.written,
            title=f"PathGen release materialised: {Path(source).name}",
            skipped=_reasons(problems),
            extra={
                "slides folder": str(slides_dir),
                "patch": f"{patch_size} px at level 0 -> {image_size} px",
            },
            released=True,
        )
        write_json(staging / "errors.json", problems)
    return {
        "records": len(records),
        "done": summary["pairs"],
        "skipped": len(problems),
        "failed": sharded.failed_in_shards,
        "failed_shards": sharded.failed_shards,
        "skipped_by_reason": _reasons(problems),
        **summary,
    }


def release_meta(source: dict[str, Any], patch: Patch, image_size: int) -> dict[str, Any]:
    """A materialised pair's KEY.json (runs in the shard task: the slide's mpp comes with the read)."""
    meta = {k: v for k, v in source.items() if k != "record"}
    meta.update(level=0, mpp=patch.mpp or 0.0, mpp_source="metadata" if patch.mpp else "none")
    return {**meta, "image_size": image_size}


def _items(
    plan: list[tuple[Path, list[tuple[int, dict[str, Any], int, int]]]], patch_size: int, reader: str
) -> list[PatchItem]:
    """The patches to read, in plan order, each with the fields of its KEY.json known up front.

    A patch listed twice keeps both pairs under distinct keys (the later one gets ``_r<record>``).
    """
    keys: set[str] = set()
    items = []
    for path, entries in plan:
        for i, rec, x, y in entries:
            wsi_id = str(rec["wsi_id"]).strip()
            key = tile_key(wsi_id, x, y, patch_size)
            if key in keys:
                key = f"{key}_r{i}"
            keys.add(key)
            source = {
                "record": i,
                "key": key,
                "source": "pathgen-release",
                "tile_id": f"{wsi_id}:{x}:{y}:{patch_size}",
                "wsi_id": wsi_id,
                "file_id": rec.get("file_id"),
                "slide_file": path.name,
                "x": x,
                "y": y,
                "size": patch_size,
                "caption": str(rec["caption"]).strip(),
            }
            items.append(PatchItem(str(path), reader, x, y, patch_size, source))
    return items


def _plan(
    by_slide: dict[Path, list[tuple[int, dict[str, Any]]]],
    patch_size: int,
    reader: str,
    problems: list[dict[str, Any]],
) -> list[tuple[Path, list[tuple[int, dict[str, Any], int, int]]]]:
    """Per slide, the records whose patch lies inside it, in (y, x) order; the rest become problems."""
    from pathgen.slides import open_slide

    plan = []
    for path in sorted(by_slide):
        try:
            with open_slide(path, reader=reader) as slide:
                width, height = slide.dimensions
        except Exception as exc:
            problems.extend(
                {"record": i, "wsi_id": r.get("wsi_id"), "reason": f"open failed: {exc}"}
                for i, r in by_slide[path]
            )
            continue
        items = []
        for i, rec in by_slide[path]:
            wsi_id = str(rec["wsi_id"]).strip()
            try:
                x, y = _position(rec)
            except (TypeError, ValueError) as exc:
                problems.append({"record": i, "wsi_id": wsi_id, "reason": f"bad position: {exc}"})
                continue
            if x < 0 or y < 0 or x + patch_size > width or y + patch_size > height:
                where = f"({x},{y})+{patch_size} not in {width}x{height}"
                problems.append({"record": i, "wsi_id": wsi_id, "reason": f"position_outside_slide {where}"})
                continue
            items.append((i, rec, x, y))
        if items:
            plan.append((path, sorted(items, key=lambda t: (t[3], t[2], t[0]))))
    return plan


def _reasons(problems: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(p["reason"]).split(" ", 1)[0].rstrip(":") for p in problems))
