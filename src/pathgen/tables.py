"""Run tables that grow with the run: the tile table as a partitioned dataset, read slide by slide.

At TCGA scale the tile table holds 10^7-10^8 rows; building it whole in memory (tile) or reading it
whole (embed, select) does not fit a worker. So the tile stage writes ``RUN/tiles/`` — one parquet
file per slide, written atomically as the slide finishes — and, last, ``RUN/tiles/_manifest.json``
listing the partitions (slide id, file, rows, bytes, content digest) in slide-id order. The
manifest is what readers trust: a partition it does not list does not exist for them (a killed
run may leave one behind; the next manifest removes it), and its digest is the dataset's identity
for stage fingerprints. Names start with ``_`` or ``.`` where pyarrow's discovery must skip them,
so ``pyarrow.dataset.dataset(RUN/tiles)`` (and ``pq.read_table(RUN/tiles)``) read the table too.

``RUN/tiles.parquet`` — the single file every run had before — is still written, streamed from the
partitions in the same order and with the same rows, for users and tools that open it; stages read
through :func:`read_tiles` / :func:`iter_tiles_by_slide`, which hide which layout a run has (a run
made before the dataset existed has only the file, and is read from it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.rundir import RunDir, atomic_path, file_identity, fingerprint, write_json

MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1
TILE_COLUMNS = ("tile_id", "slide_id", "x", "y", "size", "level", "tissue_fraction")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_SINGLE_FILE_ROW_GROUP = 1 << 18  # rows buffered before a row group of tiles.parquet is written


def tiles_schema() -> Any:
    """The tile table's columns and types (the contract of tiles.parquet and of every partition)."""
    import pyarrow as pa

    return pa.schema(
        [("tile_id", pa.string()), ("slide_id", pa.string()), ("x", pa.int64()), ("y", pa.int64()),
         ("size", pa.int64()), ("level", pa.int32()), ("tissue_fraction", pa.float32())]
    )  # fmt: skip


def slide_tiles_table(slide_id: str, size: int, level: int | None, xs: Any, ys: Any, frac: Any) -> Any:
    """One slide's tile rows, sorted by (y, x): the order of tiles.parquet within a slide."""
    import pyarrow as pa

    xs = np.asarray(xs, dtype=np.int64)
    ys = np.asarray(ys, dtype=np.int64)
    order = np.lexsort((xs, ys))
    xs, ys = xs[order], ys[order]
    n = len(xs)
    ids = [f"{slide_id}:{x}:{y}:{size}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array([slide_id] * n, pa.string()) if n else pa.array([], pa.string()),
            pa.array(xs, pa.int64()),
            pa.array(ys, pa.int64()),
            pa.array(np.full(n, size, np.int64), pa.int64()),
            pa.array([level] * n, pa.int32()),
            pa.array(np.asarray(frac, dtype=np.float32)[order], pa.float32()),
        ],
        schema=tiles_schema(),
    )


def _digest(table: Any) -> str:
    """Content identity of one partition, 16 hex digits (tile_id follows from slide_id, x, y, size)."""
    h = hashlib.sha256()
    sid = table.column("slide_id")
    h.update((sid[0].as_py() if len(sid) else "").encode())
    for name in ("x", "y", "size", "level", "tissue_fraction"):
        h.update(b"|" + np.ascontiguousarray(table.column(name).to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()[:16]


def partition_name(slide_id: str, digest: str) -> str:
    """File name of a slide's partition: readable id, plus the digest (ids may hold any character)."""
    safe = _SAFE.sub("_", slide_id).lstrip("._") or "slide"
    return f"{safe[:80]}-{digest}.parquet"


def write_partition(run: RunDir, slide_id: str, table: Any) -> dict[str, Any]:
    """Write one slide's tiles as its own partition (atomically); returns its manifest entry.

    The name holds a digest of the content, so a partition that is already there with the same
    rows is not written again (a resumed run) and a changed one never overwrites a file the
    current manifest still lists.
    """
    import pyarrow.parquet as pq

    digest = _digest(table)
    path = run.tiles_dir / partition_name(slide_id, digest)
    if not path.exists():
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    return {"slide_id": slide_id, "file": path.name, "rows": table.num_rows, "digest": digest,
            "bytes": path.stat().st_size}  # fmt: skip


def write_manifest(run: RunDir, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Publish the dataset: the manifest (slide-id order) is written last; unlisted partitions go.

    Returns the manifest. A reader sees the previous manifest or this one, never a mix.
    """
    entries = sorted(entries, key=lambda e: e["slide_id"])
    ids = [e["slide_id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("a slide has two partitions in one tile table")
    manifest = {
        "version": MANIFEST_VERSION,
        "rows": int(sum(e["rows"] for e in entries)),
        "columns": list(TILE_COLUMNS),
        "partitions": entries,
    }
    run.tiles_dir.mkdir(parents=True, exist_ok=True)
    write_json(run.tiles_dir / MANIFEST, manifest)
    listed = {e["file"] for e in entries}
    for path in run.tiles_dir.glob("*.parquet"):
        if path.name not in listed:
            path.unlink(missing_ok=True)
    return manifest


def write_single_file(run: RunDir, manifest: dict[str, Any] | None = None) -> Path:
    """Stream the partitions, in manifest order, into ``RUN/tiles.parquet`` (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = manifest or read_manifest(run)
    if manifest is None:
        raise FileNotFoundError(f"{run.tiles_dir / MANIFEST} does not exist: run `pathgen tile` first")
    schema = tiles_schema()
    with atomic_path(run.tiles) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        buffer: list[Any] = []
        rows = 0
        for entry in manifest["partitions"]:
            buffer.append(pq.read_table(run.tiles_dir / entry["file"], schema=schema))
            rows += entry["rows"]
            if rows >= _SINGLE_FILE_ROW_GROUP:
                writer.write_table(pa.concat_tables(buffer), row_group_size=rows)
                buffer, rows = [], 0
        if buffer or not manifest["partitions"]:
            table = pa.concat_tables(buffer) if buffer else schema.empty_table()
            writer.write_table(table, row_group_size=max(1, table.num_rows))
    return run.tiles


# -- reading -------------------------------------------------------------------------------------


_MANIFEST_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, Any], dict[str, dict[str, Any]]]] = {}


def _load_manifest(run: RunDir) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """(manifest, slide_id -> entry), parsed once per version of the file (a stat per call).

    Per-slide reads ask for the manifest thousands of times; parsing it each time would make a
    run's reads quadratic in slides.
    """
    path = run.tiles_dir / MANIFEST
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _MANIFEST_CACHE.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return None
    index = {e["slide_id"]: e for e in manifest["partitions"]}
    if len(_MANIFEST_CACHE) > 8:  # a few runs at a time at most: no unbounded growth
        _MANIFEST_CACHE.clear()
    _MANIFEST_CACHE[str(path)] = (stamp, manifest, index)
    return manifest, index


def read_manifest(run: RunDir) -> dict[str, Any] | None:
    """The tile dataset's manifest, or None when the run has no dataset (an older run)."""
    loaded = _load_manifest(run)
    return loaded[0] if loaded else None


def layout(run: RunDir) -> str | None:
    """'dataset' (RUN/tiles/ with a manifest), 'file' (only RUN/tiles.parquet), or None (not tiled)."""
    if read_manifest(run) is not None:
        return "dataset"
    if run.tiles.exists():
        return "file"
    return None


def _require(run: RunDir) -> dict[str, Any] | None:
    """The manifest, None for the single-file layout; a clear error when the run has no tile table."""
    manifest = read_manifest(run)
    if manifest is None:
        run.require(run.tiles, "tile")
    return manifest


def tiles_identity(run: RunDir) -> dict[str, Any]:
    """Identity of the tile table for stage fingerprints: the manifest's digest, else the file's.

    The manifest lists every partition's content digest, so its hash changes exactly when a tile
    changes (and not when the same table is written again).
    """
    manifest = read_manifest(run)
    if manifest is None:
        return {"tiles": file_identity(run.tiles)}
    parts = [(e["slide_id"], e["rows"], e["digest"]) for e in manifest["partitions"]]
    return {"tiles_dataset": fingerprint(parts), "rows": manifest["rows"]}


def count_tiles(run: RunDir) -> int:
    """Rows of the tile table, from metadata only."""
    import pyarrow.parquet as pq

    manifest = _require(run)
    if manifest is not None:
        return int(manifest["rows"])
    return int(pq.read_metadata(run.tiles).num_rows)


def tile_counts(run: RunDir) -> dict[str, int]:
    """Tiles per slide (slides without tiles are absent); reads only metadata or the slide_id column."""
    manifest = _require(run)
    if manifest is not None:
        return {e["slide_id"]: int(e["rows"]) for e in manifest["partitions"]}
    return {sid: t.num_rows for sid, t in iter_tiles_by_slide(run, columns=["slide_id"])}


def _files(run: RunDir, manifest: dict[str, Any]) -> list[str]:
    return [str(run.tiles_dir / e["file"]) for e in manifest["partitions"]]


def tiles_dataset(run: RunDir) -> Any:
    """The tile table as a ``pyarrow.dataset.Dataset`` (the manifest's partitions, or the file)."""
    import pyarrow.dataset as ds

    manifest = _require(run)
    if manifest is None:
        return ds.dataset(str(run.tiles), format="parquet")
    return ds.dataset(_files(run, manifest), schema=tiles_schema(), format="parquet")


def read_tiles(run: RunDir, slide_id: str | None = None, columns: list[str] | None = None) -> Any:
    """The tile table (or one slide's rows) as a pyarrow Table, in tiles.parquet order.

    With ``slide_id`` only that slide's partition is read (an empty table when it has no tiles);
    a single-file run is filtered on slide_id through ``pyarrow.dataset``.
    """
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    cols = list(columns) if columns else list(TILE_COLUMNS)
    manifest = _require(run)
    if slide_id is None:
        return tiles_dataset(run).to_table(columns=cols)
    if manifest is None:
        return tiles_dataset(run).to_table(columns=cols, filter=ds.field("slide_id") == slide_id)
    loaded = _load_manifest(run)
    entry = loaded[1].get(slide_id) if loaded else None
    if entry is None:
        return tiles_schema().empty_table().select(cols)
    return pq.read_table(run.tiles_dir / entry["file"], columns=cols, schema=tiles_schema())


def iter_tiles_by_slide(
    run: RunDir, columns: list[str] | None = None, slide_ids: list[str] | None = None
) -> Iterator[tuple[str, Any]]:
    """Yield ``(slide_id, table)`` per slide with tiles, in slide-id order; one slide in memory.

    ``slide_ids`` limits the slides (dataset layout: only their partitions are opened). A
    single-file run is streamed in record batches and cut where slide_id changes (the file is
    sorted by slide), so memory stays bounded there too.
    """
    import pyarrow.parquet as pq

    cols = list(columns) if columns else list(TILE_COLUMNS)
    manifest = _require(run)
    wanted = set(slide_ids) if slide_ids is not None else None
    if manifest is not None:
        for entry in manifest["partitions"]:
            if wanted is None or entry["slide_id"] in wanted:
                table = pq.read_table(run.tiles_dir / entry["file"], columns=cols, schema=tiles_schema())
                yield entry["slide_id"], table
        return
    yield from _iter_single_file(pq.ParquetFile(run.tiles), cols, wanted)


def _iter_single_file(pf: Any, cols: list[str], wanted: set[str] | None) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa

    read_cols = cols if "slide_id" in cols else [*cols, "slide_id"]
    pending: list[Any] = []
    current: str | None = None

    def flush() -> Iterator[tuple[str, Any]]:
        if current is not None and pending and (wanted is None or current in wanted):
            yield current, pa.concat_tables(pending).select(cols)

    for batch in pf.iter_batches(batch_size=65536, columns=read_cols):
        table = pa.Table.from_batches([batch])
        sid = np.asarray(table.column("slide_id").to_numpy(zero_copy_only=False), dtype=object)
        if not len(sid):
            continue
        cuts = np.r_[0, np.flatnonzero(sid[1:] != sid[:-1]) + 1, len(sid)]
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            if sid[a] != current:
                yield from flush()
                pending, current = [], str(sid[a])
            pending.append(table.slice(a, b - a))
    yield from flush()


class SlideTiles(Mapping[str, dict[str, np.ndarray]]):
    """slide_id -> that slide's tile columns as numpy arrays, read when asked (dataset layout).

    For stages that look tiles up by slide (embed): holding the mapping costs only the manifest;
    each lookup reads one partition. A single-file run is read whole once, as before.
    """

    def __init__(self, run: RunDir, columns: tuple[str, ...] = ("x", "y", "size")):
        self._run = run
        self._columns = list(columns)
        manifest = _require(run)
        self._eager: dict[str, dict[str, np.ndarray]] | None = None
        if manifest is None:
            self._eager = {sid: self._arrays(t) for sid, t in iter_tiles_by_slide(run, self._columns)}
            self._ids = list(self._eager)
        else:
            self._ids = [e["slide_id"] for e in manifest["partitions"] if e["rows"]]
        self._known = set(self._ids)

    def _arrays(self, table: Any) -> dict[str, np.ndarray]:
        return {k: table.column(k).to_numpy() for k in self._columns}

    def __getitem__(self, slide_id: str) -> dict[str, np.ndarray]:
        if slide_id not in self._known:
            raise KeyError(slide_id)
        if self._eager is not None:
            return self._eager[slide_id]
        return self._arrays(read_tiles(self._run, slide_id, self._columns))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, slide_id: object) -> bool:
        return slide_id in self._known
