"""The `tile` stage: slides in, slides.parquet + tiles.parquet out.

Each slide is one item of the run's executor (a worker process locally, a Ray task on a cluster;
a crash in a native reader kills a worker, not the run). Every slide ends as a row with a status
('ok', 'no_tissue', 'error', or 'skipped': a format no reader opens, or a slide that is not
brightfield) and a clear message; the tables are written atomically at the end. A fingerprint of the
inputs (path, size, mtime of every slide) and of the tile config marks the stage done, so a second
identical run does nothing; finished slides are also cached one by one, so a changed or interrupted
run redoes only the slides it has to.

The tile table never exists whole in memory: each finished slide's tiles go at once to their own
partition of ``RUN/tiles/`` (:mod:`pathgen.tables`), and only the slide's row is kept; at the end
the manifest is published and ``tiles.parquet`` is streamed from the partitions.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from pathgen.config import RunConfig, TileConfig, dump_section
from pathgen.executors import Executor
from pathgen.executors.local import LocalExecutor
from pathgen.rundir import RunDir, atomic_write, file_identity, fingerprint, write_parquet
from pathgen.slides.manifest import expand_inputs
from pathgen.tables import slide_tiles_table, write_manifest, write_partition, write_single_file

STAGE = "tile"
CACHE_VERSION = 2  # 2: the brightfield check, skipped slides


def tile_slide(rec: dict[str, Any], params: dict[str, Any], preview_dir: str | None) -> dict[str, Any]:
    """Tile one slide; never raises: failures come back as a row with status 'error'.

    Returns ``{"row": {...slides.parquet fields...}, "x": [...], "y": [...], "frac": [...]}``.
    """
    from pathgen.slides.backends import SlideOpenError
    from pathgen.slides.brightfield import check_brightfield
    from pathgen.slides.grid import grid_tiles, resolve_geometry
    from pathgen.slides.patches import choose_level
    from pathgen.slides.readers import Slide
    from pathgen.slides.tissue import compute_tissue_mask

    row: dict[str, Any] = {
        "vendor": None, "reader": None, "width": None, "height": None, "mpp": None,
        "mpp_source": "none", "levels": None, "status": "error", "error": None, "warning": None,
        "n_tiles": 0, "tile_size": None, "tile_level": None,
    }  # fmt: skip
    empty: dict[str, Any] = {"x": [], "y": [], "frac": []}
    if rec.get("input_error"):
        row["error"] = rec["input_error"]
        return {"row": row, **empty}
    if rec.get("input_skip"):
        row.update(status="skipped", error=rec["input_skip"])
        return {"row": row, **empty}
    try:
        slide = Slide(rec["path"], reader=params["reader"], slide_id=rec["slide_id"])
    except ValueError as exc:  # no reader for this kind of path (a DICOM URL)
        row["error"] = f"cannot open slide: {exc}"
        return {"row": row, **empty}
    try:
        slide.open()
        row.update(
            vendor=slide.vendor, reader=slide.reader, width=slide.dimensions[0],
            height=slide.dimensions[1], levels=slide.level_count,
        )  # fmt: skip
        geom = resolve_geometry(slide.mpp, params["size"], params["mpp"], params["assume_mpp"])
        warning = "; ".join(w for w in (slide.open_warning, geom.warning) if w) or None
        row.update(mpp=geom.mpp, mpp_source=geom.mpp_source, warning=warning, tile_size=geom.size)
        tissue = compute_tissue_mask(slide, params["thumbnail_downsample"])
        light = check_brightfield(tissue.thumbnail)
        if not light.is_brightfield:
            if not params["allow_non_brightfield"]:
                row.update(status="skipped", error=light.reason())
                return {"row": row, **empty}
            forced = "not brightfield (dark background), tiled because allow_non_brightfield is set"
            row["warning"] = "; ".join(w for w in (row["warning"], forced) if w)
        xs, ys, frac = grid_tiles(slide.dimensions, geom.size, tissue, params["min_tissue"])
        row["tile_level"] = choose_level(slide, geom.size, params["size"])
        if preview_dir:
            from pathgen.slides.preview import write_preview

            write_preview(Path(preview_dir) / f"{rec['slide_id']}.png", tissue, xs, ys, geom.size)
    except SlideOpenError as exc:
        row["error"] = f"cannot open slide: {exc}"
        return {"row": row, **empty}
    except Exception as exc:  # a corrupt slide can fail anywhere inside a native reader
        row["error"] = f"{type(exc).__name__} while reading slide: {exc}"
        return {"row": row, **empty}
    finally:
        slide.close()
    row["n_tiles"] = len(xs)
    if len(xs) == 0:
        row["status"] = "no_tissue"
        row["error"] = (
            f"no tile reaches min_tissue {params['min_tissue']} "
            f"(tissue mask covers {tissue.tissue_fraction:.1%} of the slide)"
        )
    else:
        row["status"] = "ok"
    return {"row": row, "x": xs.tolist(), "y": ys.tolist(), "frac": frac.tolist()}


def _check_url_reader(records: list[dict[str, Any]], reader: str) -> None:
    """A reader that cannot read URLs, asked to read slides in storage: fail before any work."""
    from pathgen.slides.readers import URL_READERS, url_reader_error
    from pathgen.storage import is_url

    if reader in ("auto", *URL_READERS):
        return
    remote = [r["path"] for r in records if is_url(r["path"])]
    if remote:
        more = f" (and {len(remote) - 1} more)" if len(remote) > 1 else ""
        raise ValueError(url_reader_error(reader, remote[0]) + more)


def _cache_path(run: RunDir, key: str) -> Path:
    return run.state / "tile-cache" / f"{key}.json"


def tile_stage(
    inputs: list[str], run: RunDir, cfg: TileConfig, preview: Path | None = None,
    *, executor: Executor | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Tile every slide of ``inputs`` into ``run``; returns the stage summary.

    Summary keys: done, skipped (served from the per-slide cache), failed, no_tissue,
    skipped_slides (status 'skipped'), n_tiles, up_to_date, slides (the slides.parquet rows).
    Raises ``ValueError`` (:class:`pathgen.slides.manifest.InputError`) before any work when an
    input cannot be reached or slide ids clash.
    """
    if not inputs:
        raise ValueError("no inputs: give slide files, folders or a manifest (CSV/parquet)")
    records = expand_inputs([str(i) for i in inputs])
    _check_url_reader(records, cfg.reader)
    params = dump_section(cfg)
    params.pop("workers")
    preview_dir = str(Path(preview).resolve()) if preview else None
    identities = [{**file_identity(r["path"]), "slide_id": r["slide_id"]} for r in records]
    extras = [{k: v for k, v in r.items() if k not in ("path", "slide_id")} for r in records]
    fp = fingerprint(STAGE, CACHE_VERSION, identities, extras, params, preview_dir)
    run.ensure()
    _write_config(run, inputs, cfg)
    if run.stage_done(STAGE, fp) and run.slides.exists() and run.tiles.exists():
        import pyarrow.parquet as pq

        rows = pq.read_table(run.slides).to_pylist()
        summary = dict((run.stage_status(STAGE) or {}).get("summary", {}))
        summary.update(up_to_date=True, done=0, skipped=len(rows), slides=rows)
        return summary

    if preview_dir:
        Path(preview_dir).mkdir(parents=True, exist_ok=True)
    results = TileResults(run, records)
    keys = [fingerprint(CACHE_VERSION, ident, params, preview_dir) for ident in identities]
    todo: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        ready = rec.get("input_error") is None and rec.get("input_skip") is None
        cached = _load_cache(run, keys[i]) if ready else None
        if cached is not None:
            results[i] = cached
        else:
            todo.append({**rec, "_index": i})
    skipped = len(results)
    _process(todo, params, preview_dir, cfg.workers, run, keys, results, executor or LocalExecutor())

    slide_rows, n_tiles = write_tile_tables(run, records, results)
    summary = {
        "done": sum(r["status"] == "ok" for r in slide_rows),
        "skipped": skipped,
        "failed": sum(r["status"] == "error" for r in slide_rows),
        "no_tissue": sum(r["status"] == "no_tissue" for r in slide_rows),
        "skipped_slides": sum(r["status"] == "skipped" for r in slide_rows),
        "n_slides": len(slide_rows),
        "n_tiles": n_tiles,
        "up_to_date": False,
    }
    run.mark_stage(STAGE, fp, summary)
    return {**summary, "slides": slide_rows}


def _process(
    todo: list[dict[str, Any]], params: dict[str, Any], preview_dir: str | None, workers: int,
    run: RunDir, keys: list[str], results: dict[int, dict[str, Any]], executor: Executor,
) -> None:  # fmt: skip
    """Tile ``todo`` through the executor; each finished slide is cached at once (resume)."""
    fn = partial(tile_slide, params=params, preview_dir=preview_dir)
    label = lambda rec, res: f"{rec['slide_id']}: {res.value['row']['status'] if res.ok else 'error'}"  # noqa: E731
    for res in executor.map(fn, todo, label="tiling", workers=workers, describe=label):
        rec = todo[res.index]
        if res.ok:
            result = res.value
        else:  # the worker crashed (native decoder) or was lost: the slide's own error row
            result = tile_slide({**rec, "input_error": res.error}, params, None)
        results[rec["_index"]] = result
        if result["row"]["status"] in ("ok", "no_tissue", "skipped"):
            atomic_write(_cache_path(run, keys[rec["_index"]]), json.dumps(result))


def _load_cache(run: RunDir, key: str) -> dict[str, Any] | None:
    path = _cache_path(run, key)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


_RECORD_KEYS = frozenset({"path", "slide_id", "input_error", "input_skip", "input_warning", "_index"})


class TileResults(dict[int, dict[str, Any]]):
    """Slide results by input index; an 'ok' slide's tiles go to its partition as it is stored.

    Why a dict: ``_process`` (and the cache loader) store each finished slide here. Keeping the
    tile coordinates of every slide until the end would hold the whole table in memory, so the
    tiles are written out at once and only ``{"row": ..., "part": <manifest entry>}`` stays.
    """

    def __init__(self, run: RunDir, records: list[dict[str, Any]]):
        super().__init__()
        self.run = run
        self.slide_ids = [r["slide_id"] for r in records]

    def __setitem__(self, index: int, result: dict[str, Any]) -> None:
        row = result["row"]
        slim: dict[str, Any] = {"row": row}
        if row["status"] == "ok" and "part" not in result:
            slim["part"] = self._write(self.slide_ids[index], result)
        elif "part" in result:
            slim["part"] = result["part"]
        super().__setitem__(index, slim)

    def _write(self, sid: str, result: dict[str, Any]) -> dict[str, Any]:
        row = result["row"]
        table = slide_tiles_table(sid, row["tile_size"], row["tile_level"], result["x"], result["y"],
                                  result["frac"])  # fmt: skip
        return write_partition(self.run, sid, table)


def write_tile_tables(
    run: RunDir, records: list[dict[str, Any]], results: dict[int, dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Publish the tile dataset's manifest, stream tiles.parquet from it, write slides.parquet.

    Returns (slides.parquet rows, number of tiles). Memory: one row group of tiles at a time.
    """
    slide_rows, entries = _assemble(records, results)
    manifest = write_manifest(run, entries)
    write_single_file(run, manifest)
    write_parquet(_slides_table(slide_rows), run.slides)
    return slide_rows, int(manifest["rows"])


def _assemble(
    records: list[dict[str, Any]], results: dict[int, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """slides.parquet rows (input order) and the ok slides' partition entries (slide-id order).

    ``results`` must be a :class:`TileResults`: it has written each ok slide's partition.
    """
    if not isinstance(results, TileResults):
        raise TypeError("results must be a TileResults (it writes each slide's partition)")
    slide_rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        res = results[i]
        extra = {k: v for k, v in rec.items() if k not in _RECORD_KEYS}
        row = {"slide_id": rec["slide_id"], "path": rec["path"], **res["row"], **extra}
        if rec.get("input_warning"):  # a renamed slide id: said here, so cached rows say it too
            row["warning"] = "; ".join(w for w in (rec["input_warning"], row["warning"]) if w)
        slide_rows.append(row)
        if res["row"]["status"] == "ok":
            part = res["part"]
            if part["slide_id"] != rec["slide_id"]:
                raise ValueError(
                    f"slide {rec['slide_id']!r} was stored with the tiles of {part['slide_id']!r}"
                )
            entries.append(part)
    entries.sort(key=lambda e: e["slide_id"])
    return slide_rows, entries


def _slides_table(rows: list[dict[str, Any]]) -> Any:
    """A slides table with fixed types for the contract columns (null-only columns keep their type)."""
    import pyarrow as pa

    fixed = [
        ("slide_id", pa.string()), ("path", pa.string()), ("vendor", pa.string()), ("reader", pa.string()),
        ("width", pa.int64()), ("height", pa.int64()), ("mpp", pa.float64()), ("mpp_source", pa.string()),
        ("levels", pa.int32()), ("status", pa.string()), ("error", pa.string()), ("warning", pa.string()),
        ("n_tiles", pa.int64()), ("tile_size", pa.int64()), ("tile_level", pa.int32()),
    ]  # fmt: skip
    names = [n for n, _ in fixed]
    extra_names = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in names]
    arrays = [pa.array([r.get(n) for r in rows], type=t) for n, t in fixed]
    arrays += [pa.array([r.get(n) for r in rows]) for n in extra_names]
    return pa.Table.from_arrays(arrays, names=names + extra_names)


def _write_config(run: RunDir, inputs: list[str], cfg: TileConfig) -> None:
    """Record the resolved config beside the outputs, unless the run already has one."""
    if run.config.exists():
        return
    conf = RunConfig(slides=[str(i) for i in inputs], out=run.root, tile=cfg)
    atomic_write(run.config, conf.to_yaml())
