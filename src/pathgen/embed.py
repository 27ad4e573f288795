"""The `embed` stage: every tile of the run through an image encoder, one float16 array per slide.

Tiles are read through :func:`pathgen.slides.read_tile` at the encoder's input size, so a pyramid
level serves the read instead of a full level-0 decode; a torch DataLoader does the reading in
worker processes (each keeps its own open slide handles) while the main process runs the model.

Resumable per slide: ``embeddings/<slide_id>.npy`` is written atomically as soon as a slide's last
tile is embedded, and ``embeddings/meta.json`` records the encoder and, per slide, a hash of its
tile grid. A slide is skipped when its array exists and meta says the same encoder embedded the
same tiles; a different encoder starts over. Unreadable tiles get a zero row (selection ignores
them) and are listed in ``embeddings/errors.json``; a slide where nothing can be read fails as a
whole and is retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.config import EmbedConfig
from pathgen.executors import Executor
from pathgen.rundir import RunDir, atomic_path, file_identity, fingerprint, write_json

STAGE = "embed"
META_VERSION = 1
_META_EVERY_S = 5.0
_HANDLES_PER_WORKER = 4


def meta_path(run: RunDir) -> Path:
    return run.embeddings / "meta.json"


def read_meta(run: RunDir) -> dict[str, Any] | None:
    try:
        return json.loads(meta_path(run).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def embedding_path(run: RunDir, slide_id: str) -> Path:
    return run.embeddings / f"{slide_id}.npy"


def tiles_hash(x: np.ndarray, y: np.ndarray, size: np.ndarray) -> str:
    """Identity of a slide's tile grid: a changed grid makes its old embeddings stale."""
    grid = np.stack([np.asarray(a, np.int64) for a in (x, y, size)])
    return hashlib.sha256(grid.tobytes()).hexdigest()[:16]


class TileDataset:
    """Map-style dataset over tiles: (index, preprocessed image, error text or '')."""

    def __init__(
        self,
        paths: list[str],
        readers: list[str],
        slide_index: np.ndarray,
        xs: np.ndarray,
        ys: np.ndarray,
        sizes: np.ndarray,
        image_size: int,
        preprocess: Any,
    ):
        self.paths, self.readers = paths, readers
        self.slide_index, self.xs, self.ys, self.sizes = slide_index, xs, ys, sizes
        self.image_size = image_size
        self.preprocess = preprocess
        self._handles: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self.xs)

    def _slide(self, s: int) -> Any:
        """One open handle per slide per worker process, a few kept (tiles arrive slide by slide)."""
        from pathgen.slides import open_slide

        handle = self._handles.get(s)
        if handle is None:
            reader = self.readers[s] or "auto"
            handle = open_slide(self.paths[s], reader=reader).open()
            self._handles[s] = handle
            while len(self._handles) > _HANDLES_PER_WORKER:
                self._handles.popitem(last=False)[1].close()
        else:
            self._handles.move_to_end(s)
        return handle

    def __getitem__(self, i: int) -> tuple[int, Any, str]:
        import torch

        from pathgen.slides import read_tile

        try:
            slide = self._slide(int(self.slide_index[i]))
            image = read_tile(slide, int(self.xs[i]), int(self.ys[i]), int(self.sizes[i]), self.image_size)
            return i, self.preprocess(image), ""
        except Exception as exc:  # one bad tile is a row with an error, never a dead loader
            blank = torch.zeros(3, self.image_size, self.image_size)
            return i, blank, f"{type(exc).__name__}: {exc}"[:500]


def _ok_slides(run: RunDir) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(run.require(run.slides, "tile")).to_pylist()
    return [r for r in rows if r.get("status") == "ok"]


def _tiles_by_slide(run: RunDir) -> Mapping[str, dict[str, np.ndarray]]:
    """slide_id -> {x, y, size} arrays; a slide's partition is read when it is looked up.

    The mapping holds no tiles itself (:class:`pathgen.tables.SlideTiles`), so a run with 10^8
    tiles costs memory only for the slides being worked on.
    """
    from pathgen.tables import SlideTiles

    return SlideTiles(run, ("x", "y", "size"))


def embed_stage(run: RunDir, cfg: EmbedConfig, *, executor: Executor | None = None) -> dict[str, Any]:
    """Embed every tile of every ok slide; returns the stage summary (done/skipped/failed/...)."""
    from pathgen.models.encoders import canonical_spec

    spec = canonical_spec(cfg.encoder)
    slides = _ok_slides(run)
    tiles = _tiles_by_slide(run)
    fp = fingerprint(STAGE, META_VERSION, spec, file_identity(run.tiles), file_identity(run.slides))
    meta = read_meta(run)
    same_encoder = bool(meta) and meta.get("encoder") == spec and meta.get("version") == META_VERSION
    grids = {s["slide_id"]: tiles.get(s["slide_id"]) for s in slides}
    hashes = {
        sid: tiles_hash(g["x"], g["y"], g["size"])
        for sid, g in grids.items()
        if g is not None and len(g["x"])
    }

    def is_done(sid: str) -> bool:
        rec = (meta or {}).get("slides", {}).get(sid)
        return (
            same_encoder
            and bool(rec)
            and rec.get("tiles") == hashes[sid]
            and embedding_path(run, sid).exists()
        )

    todo = [s for s in slides if s["slide_id"] in hashes and not is_done(s["slide_id"])]
    skipped = len(hashes) - len(todo)
    if run.stage_done(STAGE, fp) and not todo:
        return {"done": 0, "skipped": skipped, "failed": 0, "up_to_date": True, "encoder": spec}
    if not todo:
        summary = {"done": 0, "skipped": skipped, "failed": 0, "n_tiles": 0, "encoder": spec}
        run.mark_stage(STAGE, fp, summary)
        return {**summary, "up_to_date": True}

    from pathgen.models.encoders import load_encoder

    encoder = load_encoder(spec, device=cfg.device)
    if not same_encoder:
        meta = None
    meta = meta or {
        "version": META_VERSION,
        "encoder": spec,
        "backend": encoder.backend,
        "dim": encoder.dim,
        "image_size": encoder.image_size,
        "dtype": "float16",
        "slides": {},
    }
    run.embeddings.mkdir(parents=True, exist_ok=True)
    write_json(meta_path(run), meta)
    result = _run(run, cfg, encoder, todo, grids, hashes, meta)
    write_json(meta_path(run), meta)
    summary = {**result, "skipped": skipped, "encoder": spec, "device": str(encoder.device)}
    if summary["failed"] == 0:
        run.mark_stage(STAGE, fp, summary)
    return {**summary, "up_to_date": False}


def _run(
    run: RunDir,
    cfg: EmbedConfig,
    encoder: Any,
    todo: list[dict[str, Any]],
    grids: dict[str, Any],
    hashes: dict[str, str],
    meta: dict[str, Any],
) -> dict[str, Any]:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from torch.utils.data import DataLoader

    counts = np.array([len(grids[s["slide_id"]]["x"]) for s in todo], np.int64)
    ends = np.cumsum(counts)
    slide_index = np.repeat(np.arange(len(todo)), counts)
    dataset = TileDataset(
        [s["path"] for s in todo],
        [s.get("reader") or "auto" for s in todo],
        slide_index,
        *(np.concatenate([grids[s["slide_id"]][k] for s in todo]) for k in ("x", "y", "size")),
        image_size=encoder.image_size,
        preprocess=encoder.preprocess,
    )
    loader = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.workers,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if cfg.workers else None,
    )
    errors_file = run.embeddings / "errors.json"
    try:
        errors: dict[str, Any] = json.loads(errors_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        errors = {}
    done = failed = bad_total = 0
    current = 0
    buf = np.zeros((counts[0], encoder.dim), np.float16)
    tile_errors: list[tuple[int, str]] = []
    last_meta = time.monotonic()
    t0 = time.perf_counter()
    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(todo[0]["slide_id"], total=int(ends[-1]))
        for idx, images, errs in loader:
            feats = encoder.encode_images(images, batch_size=len(images))
            idx = idx.numpy()
            for j, i in enumerate(idx.tolist()):
                s = int(slide_index[i])
                row = i - (ends[s] - counts[s])
                if errs[j]:
                    tile_errors.append((int(row), errs[j]))
                else:
                    buf[row] = feats[j]
                if i + 1 != ends[s]:
                    continue
                sid = todo[s]["slide_id"]
                status = _finish(run, sid, buf, tile_errors, hashes[sid], meta, errors)
                done += status == "done"
                failed += status == "failed"
                bad_total += len(tile_errors) if status == "done" else 0
                if time.monotonic() - last_meta > _META_EVERY_S:
                    write_json(run.embeddings / "meta.json", meta)
                    last_meta = time.monotonic()
                current = s + 1
                if current < len(todo):
                    buf = np.zeros((counts[current], encoder.dim), np.float16)
                    tile_errors = []
                    bar.update(task, description=todo[current]["slide_id"])
            bar.update(task, advance=len(idx))
    if encoder.device.type == "cuda":
        torch.cuda.empty_cache()
    write_json(errors_file, errors)
    seconds = time.perf_counter() - t0
    return {
        "done": done,
        "failed": failed,
        "n_tiles": int(ends[-1]),
        "bad_tiles": bad_total,
        "seconds": round(seconds, 2),
        "tiles_per_s": round(float(ends[-1]) / max(seconds, 1e-9), 1),
        "errors": {k: v for k, v in errors.items() if k in {s["slide_id"] for s in todo}},
    }


def _finish(
    run: RunDir,
    sid: str,
    buf: np.ndarray,
    tile_errors: list[tuple[int, str]],
    tiles_fp: str,
    meta: dict[str, Any],
    errors: dict[str, Any],
) -> str:
    """Write one slide's array (or record why not); 'done' or 'failed'."""
    if len(tile_errors) == len(buf):
        errors[sid] = {"status": "error", "error": f"no tile could be read: {tile_errors[0][1]}"}
        meta["slides"].pop(sid, None)
        return "failed"
    with atomic_path(embedding_path(run, sid)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, buf)
    meta["slides"][sid] = {"n_tiles": len(buf), "tiles": tiles_fp, "bad_tiles": len(tile_errors)}
    if tile_errors:
        errors[sid] = {
            "status": "partial",
            "error": f"{len(tile_errors)} of {len(buf)} tiles unreadable (zero rows): {tile_errors[0][1]}",
            "rows": [r for r, _ in tile_errors][:1000],
        }
    else:
        errors.pop(sid, None)
    return "done"
