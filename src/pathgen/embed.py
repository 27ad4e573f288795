"""The `embed` stage: every tile of the run through an image encoder, one float16 array per slide.

The item is a chunk, ``batch_size`` tiles of one slide (``pathgen.embedding.plan``); how chunks
run depends on the executor. Locally, each device of ``embed.devices`` (``cuda:0,cuda:1``, ``all``,
or ``device`` alone) gets an encoder and its own DataLoader whose worker processes read tiles
through :func:`pathgen.slides.read_tile` at the encoder's input size (``embedding.local``); under
the Ray executor, Ray Data reads chunks on CPU tasks and maps them through an actor pool of
encoders (``embedding.ray_data``). Either way this module alone writes: results come back in any
order, are put in place per slide, and a slide is written the moment its last chunk arrives, so
every runner writes the same bytes.

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.config import EmbedConfig
from pathgen.embedding.plan import ChunkResult, EmbedJob, SlideTiles, whole_slides
from pathgen.embedding.tiles import TileDataset
from pathgen.executors import Executor
from pathgen.rundir import RunDir, atomic_path, file_identity, fingerprint, write_json

__all__ = ["TileDataset", "embed_stage", "embedding_path", "meta_path", "read_meta", "tiles_hash"]

STAGE = "embed"
META_VERSION = 1
_META_EVERY_S = 5.0
#: Slides are embedded in windows of about this many tiles (whole slides, at least one): only a
#: window's tile grids are in memory at once, however many tiles the run has. A window is a
#: set of chunks like any other, so the bytes do not depend on it (a test uses tiny windows).
#: Under Ray each window is one Ray Data execution, so its actor pool loads the encoder once a
#: window: seconds against the minutes a GPU pool spends on 10^6 tiles.
WINDOW_TILES = 1 << 20


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
    from pathgen.tables import tiles_identity

    fp = fingerprint(STAGE, META_VERSION, spec, tiles_identity(run), file_identity(run.slides))
    meta = read_meta(run)
    same_encoder = bool(meta) and meta.get("encoder") == spec and meta.get("version") == META_VERSION
    hashes, counts = _grid_hashes(tiles, [s["slide_id"] for s in slides])

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

    runner = _runner(spec, cfg, executor)
    encoder = runner.encoder
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
    windows = _windows(todo, counts)
    totals: dict[str, Any] = {}
    try:
        with _progress(todo, counts, cfg.batch_size) as bar:
            for window in windows:  # one window's grids in memory at a time
                job = EmbedJob.build([_slide_tiles(s, tiles[s["slide_id"]]) for s in window], cfg.batch_size)
                result = _collect(run, job, runner.run(job), encoder.dim, hashes, meta, bar)
                totals = _add(totals, result)
    finally:
        write_json(meta_path(run), meta)  # what was written stays recorded, even on a crash
    summary = {**totals, "skipped": skipped, "encoder": spec, "device": runner.where}
    if summary["failed"] == 0:
        run.mark_stage(STAGE, fp, summary)
    return {**summary, "up_to_date": False}


def _grid_hashes(
    tiles: Mapping[str, dict[str, np.ndarray]], ids: list[str]
) -> tuple[dict[str, str], dict[str, int]]:
    """Per slide with tiles: the hash of its grid and its tile count (one slide read at a time)."""
    hashes: dict[str, str] = {}
    counts: dict[str, int] = {}
    for sid in ids:
        grid = tiles.get(sid)
        if grid is not None and len(grid["x"]):
            hashes[sid] = tiles_hash(grid["x"], grid["y"], grid["size"])
            counts[sid] = len(grid["x"])
    return hashes, counts


def _windows(todo: list[dict[str, Any]], counts: dict[str, int]) -> list[list[dict[str, Any]]]:
    """``todo`` in order, cut into runs of whole slides of about :data:`WINDOW_TILES` tiles."""
    windows: list[list[dict[str, Any]]] = []
    size = 0
    for slide in todo:
        n = counts[slide["slide_id"]]
        if not windows or size + n > WINDOW_TILES:
            windows.append([])
            size = 0
        windows[-1].append(slide)
        size += n
    return [w for w in windows if w]


def _progress(todo: list[dict[str, Any]], counts: dict[str, int], batch_size: int) -> Any:
    """One progress display over every window's chunks."""
    from pathgen.executors.progress import progress

    chunks = sum(-(-counts[s["slide_id"]] // batch_size) for s in todo)
    return progress("embedding", chunks)


def _add(totals: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The summary of the windows so far plus one more."""
    if not totals:
        return result
    out = {k: totals[k] + result[k] for k in ("done", "failed", "n_tiles", "bad_tiles", "seconds")}
    out["seconds"] = round(out["seconds"], 2)
    out["tiles_per_s"] = round(float(out["n_tiles"]) / max(out["seconds"], 1e-9), 1)
    out["errors"] = {**totals["errors"], **result["errors"]}
    return out


def _slide_tiles(slide: dict[str, Any], grid: dict[str, np.ndarray]) -> SlideTiles:
    path, reader = slide["path"], slide.get("reader") or "auto"
    return SlideTiles(slide["slide_id"], path, reader, grid["x"], grid["y"], grid["size"])


class _Runner:
    """How windows of chunks are embedded: ``run(job)`` yields chunk results; loaded once a stage."""

    def __init__(self, encoder: Any, where: str, run: Any) -> None:
        self.encoder, self.where, self.run = encoder, where, run


def _runner(spec: str, cfg: EmbedConfig, executor: Executor | None) -> _Runner:
    """The runner of this stage's windows, and where it runs.

    Under Ray the encoder's facts (dimension, input size, preprocessing) come from a Ray task, so
    the driver never holds the model; the actors load their own. Locally every device loads one
    replica, and devices are checked before any model loads (a typo fails at once).
    """
    from pathgen.models.encoders import load_encoder

    if executor is not None and executor.name == "ray":
        from pathgen.embedding.ray_data import describe_encoder, plan_actors, run_ray

        ray = executor.ensure()  # type: ignore[attr-defined]
        n, gpu = plan_actors(ray, cfg.actors)
        facts = describe_encoder(ray, spec)

        def run(job: EmbedJob) -> Iterator[ChunkResult]:
            return run_ray(job, executor, spec, cfg.precision, (n, gpu), facts.image_size, facts.preprocess)

        precision = cfg.precision or ("fp16" if gpu else "fp32")  # load_encoder's default on the actor
        return _Runner(facts, f"ray: {n} {'GPU' if gpu else 'CPU'} actor(s) ({precision})", run)
    from pathgen.embedding.devices import resolve_devices
    from pathgen.embedding.local import run_local

    devices = resolve_devices(cfg.device, cfg.devices)
    encoders = [load_encoder(spec, device=d, precision=cfg.precision) for d in devices]
    where = ",".join(devices) + f" ({encoders[0].precision})"
    return _Runner(encoders[0], where, lambda job: run_local(job, encoders, cfg.workers))


def _collect(
    run: RunDir,
    job: EmbedJob,
    results: Iterator[ChunkResult],
    dim: int,
    hashes: dict[str, str],
    meta: dict[str, Any],
    bar: Any,
) -> dict[str, Any]:
    """Put chunk results in place per slide and write each slide the moment it is whole."""
    errors_file = run.embeddings / "errors.json"
    try:
        errors: dict[str, Any] = json.loads(errors_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        errors = {}
    done = failed = bad_total = 0
    last_meta = time.monotonic()
    t0 = time.perf_counter()
    try:
        for sid, buf, tile_errors in whole_slides(job, results, dim, bar):
            status = _finish(run, sid, buf, tile_errors, hashes[sid], meta, errors)
            done += status == "done"
            failed += status == "failed"
            bad_total += len(tile_errors) if status == "done" else 0
            if time.monotonic() - last_meta > _META_EVERY_S:
                write_json(meta_path(run), meta)
                last_meta = time.monotonic()
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # stop device threads or the Ray dataset now, not at garbage collection
            close()
        _release_cuda()
        write_json(errors_file, errors)
    seconds = time.perf_counter() - t0
    n_tiles = job.n_tiles
    ids = {s.slide_id for s in job.slides}
    return {
        "done": done,
        "failed": failed,
        "n_tiles": n_tiles,
        "bad_tiles": bad_total,
        "seconds": round(seconds, 2),
        "tiles_per_s": round(float(n_tiles) / max(seconds, 1e-9), 1),
        "errors": {k: v for k, v in errors.items() if k in ids},
    }


def _release_cuda() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


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
