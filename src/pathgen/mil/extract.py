"""`pathgen features`: every tile of a run through an encoder, one HDF5 file per slide.

The work is the embed stage's: the same chunks (``pathgen.embedding.plan``), the same runners (one
device, several ``--devices``, or a Ray actor pool) and the same tile reading, so a slide's features
are the rows `pathgen embed` would give (float16 precision, stored as float32 as CLAM/TRIDENT
files are). What differs is the output: a file per slide with level-0 coordinates, written the
moment the slide's last chunk arrives (resumable per slide: a file exists only when complete, and
one made by the same encoder on the same tile grid is skipped). When `pathgen embed` already
embedded a slide with the same encoder, its array is converted instead of computed again.

Unreadable tiles are left out of the file (a MIL model would otherwise attend to zero rows) and
counted in its ``bad_tiles`` attribute; a slide with no readable tile is a failed row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.config import EmbedConfig
from pathgen.executors import Executor
from pathgen.mil.h5 import h5_path, read_attrs, write_slide
from pathgen.rundir import RunDir


def default_out(run: RunDir, spec: str) -> Path:
    """``RUN/features/<encoder slug>``: one folder per encoder, so two encoders never mix."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[-80:] or "encoder"
    return run.root / "features" / slug


def features_stage(
    run: RunDir,
    cfg: EmbedConfig,
    *,
    out: Path | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Write ``OUT/h5_files/<slide>.h5`` for every ok slide of ``run``; returns the stage summary."""
    from pathgen.embed import _ok_slides, _runner, embedding_path, read_meta, tiles_hash
    from pathgen.embedding.plan import EmbedJob, whole_slides
    from pathgen.embedding.plan import SlideTiles as JobSlide
    from pathgen.models.encoders import canonical_spec
    from pathgen.tables import SlideTiles

    spec = canonical_spec(cfg.encoder)
    out = Path(out) if out is not None else default_out(run, spec)
    slides = {s["slide_id"]: s for s in _ok_slides(run)}
    tiles = SlideTiles(run, ("x", "y", "size", "level"))
    grids = {sid: tiles[sid] for sid in slides if sid in tiles}
    grids = {sid: g for sid, g in grids.items() if len(g["x"])}
    hashes = {sid: tiles_hash(g["x"], g["y"], g["size"]) for sid, g in grids.items()}

    def done(sid: str) -> bool:
        path = h5_path(out, sid)
        if not path.exists():
            return False
        try:
            attrs = read_attrs(path)
        except Exception:  # a foreign or broken file is redone
            return False
        return attrs.get("encoder") == spec and attrs.get("tiles") == hashes[sid]

    todo = [sid for sid in grids if not done(sid)]
    summary: dict[str, Any] = {
        "done": 0,
        "reused": 0,
        "skipped": len(grids) - len(todo),
        "failed": 0,
        "n_tiles": 0,
        "encoder": spec,
        "out": str(out),
        "errors": {},
    }
    meta = read_meta(run) or {}
    reusable = [
        sid
        for sid in todo
        if meta.get("encoder") == spec
        and meta.get("slides", {}).get(sid, {}).get("tiles") == hashes[sid]
        and embedding_path(run, sid).exists()
    ]
    for sid in reusable:  # the embed stage already computed these rows with this encoder
        feats = np.load(embedding_path(run, sid))
        bad = set(_bad_rows(run, sid))
        keep = np.array([i for i in range(len(feats)) if i not in bad], np.int64)
        _write(out, slides[sid], grids[sid], feats, keep, spec, hashes[sid], source="embeddings")
        summary["reused"] += 1
        summary["n_tiles"] += len(keep)
    todo = [sid for sid in todo if sid not in set(reusable)]
    if not todo:
        return {**summary, "up_to_date": summary["reused"] == 0}

    job = EmbedJob.build(
        [
            JobSlide(
                sid,
                slides[sid]["path"],
                slides[sid].get("reader") or "auto",
                grids[sid]["x"],
                grids[sid]["y"],
                grids[sid]["size"],
            )
            for sid in todo
        ],
        cfg.batch_size,
    )
    runner = _runner(spec, cfg, executor)
    results, encoder, where = runner.run(job), runner.encoder, runner.where
    summary["device"] = where
    from pathgen.executors.progress import progress

    try:
        with progress("features", len(job.chunks)) as bar:
            for sid, buf, tile_errors in whole_slides(job, results, encoder.dim, bar):
                bad = {row for row, _ in tile_errors}
                keep = np.array([i for i in range(len(buf)) if i not in bad], np.int64)
                if not len(keep):
                    summary["failed"] += 1
                    summary["errors"][sid] = f"no tile could be read: {tile_errors[0][1]}"
                    continue
                _write(out, slides[sid], grids[sid], buf, keep, spec, hashes[sid], source=where)
                summary["done"] += 1
                summary["n_tiles"] += len(keep)
                if tile_errors:
                    summary["errors"][sid] = f"{len(bad)} unreadable tile(s) left out: {tile_errors[0][1]}"
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    return {**summary, "up_to_date": False}


def _bad_rows(run: RunDir, sid: str) -> list[int]:
    """Rows the embed stage zeroed because their tile could not be read (``embeddings/errors.json``)."""
    import json

    try:
        errors = json.loads((run.embeddings / "errors.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [int(r) for r in errors.get(sid, {}).get("rows", [])]


def _write(
    out: Path,
    slide: dict[str, Any],
    grid: dict[str, np.ndarray],
    feats: np.ndarray,
    keep: np.ndarray,
    spec: str,
    tiles: str,
    source: str,
) -> Path:
    sid = slide["slide_id"]
    coords = np.stack([grid["x"][keep], grid["y"][keep]], axis=1).astype(np.int64)
    sizes = np.unique(grid["size"])
    levels = np.unique(grid["level"]) if "level" in grid else np.array([0])
    attrs = {
        "slide_id": sid,
        "slide_path": str(slide.get("path") or ""),
        "reader": str(slide.get("reader") or "auto"),
        "patch_size": int(sizes[0]) if len(sizes) == 1 else int(np.median(grid["size"])),
        "patch_level": int(levels[0]) if len(levels) else 0,
        "level0_width": int(slide.get("width") or 0),
        "level0_height": int(slide.get("height") or 0),
        "mpp": float(slide["mpp"]) if slide.get("mpp") else None,
        "encoder": spec,
        "tiles": tiles,
        "bad_tiles": int(len(grid["x"]) - len(keep)),
        "source": source,
    }
    return write_slide(h5_path(out, sid), np.asarray(feats)[keep], coords, attrs)
