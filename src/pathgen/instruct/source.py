"""Where instruct items come from: a run's exported shards, or a labelled image folder.

Exported shards hold everything an item needs in one place, per pair: the image, the caption, the
describe agent's description, the revised description and the slide context (``KEY.json``), so we
read them rather than re-joining the journal with slides.parquet. The image of each pair is written
once under ``OUT/images/{wsi_id}/{x}_{y}.jpg``, the path PathGen-Instruct items carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pathgen.export.shards import iter_tar_samples, safe_key
from pathgen.instruct.agents import Pair
from pathgen.rundir import atomic_write

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def shards_of(run: Path) -> list[Path]:
    """The shard tars of a run (``RUN/export/shards``), an export folder, or a shards folder."""
    run = Path(run)
    for folder in (run / "export" / "shards", run / "shards", run):
        tars = sorted(folder.glob("*.tar")) if folder.is_dir() else []
        if tars:
            return tars
    raise FileNotFoundError(
        f"no exported shards under {run} (looked in export/shards, shards and the folder itself); "
        "run `pathgen export` first"
    )


def image_path(wsi_id: str, x: int, y: int) -> str:
    """PathGen-Instruct's ``image`` field: ``{wsi_id}/{x}_{y}.jpg`` (ids made path-safe)."""
    return f"{safe_key(wsi_id)}/{x}_{y}.jpg"


def read_pairs(run: Path, out: Path) -> Iterator[Pair]:
    """Every exported pair with a caption, its image written under ``out/images`` (once)."""
    for tar in shards_of(run):
        for key, fields in iter_tar_samples(tar):
            if not key or "json" not in fields:
                continue
            meta = json.loads(fields["json"])
            caption = str(meta.get("caption") or fields.get("txt", b"").decode("utf-8")).strip()
            if not caption:
                continue
            wsi_id = str(meta.get("wsi_id") or key)
            x, y = int(meta.get("x") or 0), int(meta.get("y") or 0)
            rel = image_path(wsi_id, x, y)
            jpg = fields.get("jpg") or fields.get("jpeg")
            dest = out / "images" / rel
            if jpg and not dest.exists():
                atomic_write(dest, jpg)
            yield Pair(
                key=key,
                wsi_id=wsi_id,
                x=x,
                y=y,
                caption=caption,
                description=str(meta.get("revised") or meta.get("description") or caption).strip(),
                project=str(meta.get("project") or "") or None,
                file_id=str(meta.get("file_id") or "") or None,
                image=rel if jpg else None,
            )


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    """``(class, image)`` for a folder of class sub-folders (the CRC-100K / ImageFolder layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    items = [
        (cls.name, f)
        for cls in sorted(p for p in folder.iterdir() if p.is_dir())
        for f in sorted(cls.iterdir())
        if f.suffix.lower() in IMAGE_EXTS
    ]
    if len({c for c, _ in items}) < 2:
        raise ValueError(f"{folder}: a labelled folder needs at least 2 class sub-folders with images")
    return items
