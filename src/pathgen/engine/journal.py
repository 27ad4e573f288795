"""The SQLite journal: one row per (tile, agent, prompt version, model, upstream), written per call.

Each agent result is committed the moment it is known, or, in the engine, at most 20 ms later
together with the other rows of that window in one short transaction (:class:`FlushWindow`; WAL
mode, synchronous=NORMAL: a commit is in the WAL file when it returns, so ``kill -9`` of the
process loses nothing committed, only the calls in flight and at most the last 20 ms of answers).
The row key is a hash of the request's identity (tile, agent, prompt version and text hash,
model, sampling parameters, and the key of the upstream agent's row), datatrove-style, plus a
UNIQUE constraint on the readable columns: a re-run finds its work done, a row is never
duplicated, and changing one agent's prompt or model changes its keys and those of the agents
after it, and nothing before it.

Server-written text (``output``, ``error``) passes through :func:`pathgen.redact.redact` on the
way in: a key echoed by a server never reaches the file. ``written`` counts the rows put by this
process (what an interrupted run reports as saved).

Statuses: ``ok``, ``truncated`` (caption cut to fit), ``rejected`` (output checks failed after every
re-ask: final) and ``error`` (transport failure after every retry: retried by the next run).

Shards (cluster mode): SQLite is not safe with several writers on NFS, so each Ray caption worker
writes its own shard, ``RUN/journal.d/<worker>.sqlite``, that no other process opens for writing,
and reads the main journal through :func:`open_readonly` (``immutable=1``: no locks, which NFS
does not honour reliably; the driver checkpoints the main journal and leaves it alone while the
workers run). The driver alone merges the shards back (:func:`merge_shards`, the journal's own
upsert rule, one transaction per shard) and removes them. Shards left behind by a killed driver
are merged the next time the journal is opened for writing while no driver holds the lock
(:func:`driver_lock`), so a call journalled in any shard is never made again and every reader
(export, a dry run) sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pathgen.redact import redact
from pathgen.rundir import fingerprint

FINAL = ("ok", "truncated", "rejected")
COLUMNS = (
    "key",
    "tile_id",
    "agent",
    "prompt_version",
    "model",
    "params",
    "upstream",
    "status",
    "output",
    "data",
    "flags",
    "error",
    "attempts",
    "reasks",
    "latency",
    "tokens_in",
    "tokens_out",
    "created_at",
)
_JSON_COLUMNS = (COLUMNS.index("data"), COLUMNS.index("flags"))
# Text a server wrote (an error body may echo the Authorization header): secrets masked before storing.
_REDACTED_COLUMNS = (COLUMNS.index("output"), COLUMNS.index("error"))
_CREATED_AT = COLUMNS.index("created_at")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    tile_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    upstream TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    data TEXT,
    flags TEXT,
    error TEXT,
    attempts INTEGER,
    reasks INTEGER,
    latency REAL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    created_at REAL,
    UNIQUE (tile_id, agent, prompt_version, model, params, upstream)
);
CREATE INDEX IF NOT EXISTS calls_tile ON calls (tile_id);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""

# A final row is never overwritten; an ``error`` row is replaced (by a put, or by a shard's row).
_ON_CONFLICT = f"""
ON CONFLICT (key) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "key")}
WHERE calls.status = 'error'
"""
_UPSERT = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}){_ON_CONFLICT}"


def call_key(tile_id: str, agent: str, prompt_id: str, model: str, params: str, upstream: str) -> str:
    """The request hash that identifies one agent call of one tile."""
    return fingerprint("pathgen-call-v1", tile_id, agent, prompt_id, model, params, upstream)


class Journal:
    """A thin, single-connection wrapper; used from one event-loop thread.

    Opening it merges shards a killed Ray caption driver left behind (``merge_leftovers=False``
    for a worker's own shard, which is never a main journal).
    """

    def __init__(self, path: str | Path, merge_leftovers: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if merge_leftovers and shard_paths(self.path):
            with driver_lock(self.path, wait=False) as free:
                if free:  # no caption driver is running: these shards are leftovers
                    merge_shards(self.path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self.deferred = False
        self.on_defer: Callable[[], None] | None = None  # called after each deferred put
        self._pending: list[list[Any]] = []
        self.written = 0  # rows put by this process

    def close(self) -> None:
        self.flush()
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------------
    def put(self, row: dict[str, Any]) -> None:
        """Record one agent result; a final row is never overwritten, an ``error`` row is replaced.

        With ``deferred`` set, rows wait in memory until :meth:`flush` (the engine flushes every
        few tens of milliseconds from one task: one transaction for all rows of a tick).
        """
        values = self._values(row)
        self.written += 1
        if self.deferred:
            self._pending.append(values)
            if self.on_defer is not None:
                self.on_defer()
        else:
            self._db.execute(_UPSERT, values)  # autocommit: one short transaction per row

    def flush(self) -> int:
        """Commit the deferred rows in one transaction; returns how many were written."""
        if not self._pending:
            return 0
        rows, self._pending = self._pending, []
        self._db.execute("BEGIN")
        try:
            self._db.executemany(_UPSERT, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return len(rows)

    @staticmethod
    def _values(row: dict[str, Any]) -> list[Any]:
        """The row as SQL parameters in COLUMNS order (this runs once per model call: kept lean)."""
        values = [row.get(col) for col in COLUMNS]
        for i in _JSON_COLUMNS:
            value = values[i]
            if value is not None and not isinstance(value, str):
                values[i] = "[]" if value == [] else json.dumps(value, ensure_ascii=False)
        for i in _REDACTED_COLUMNS:
            if values[i]:
                values[i] = redact(str(values[i]))
        if values[_CREATED_AT] is None:
            values[_CREATED_AT] = time.time()
        return values

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (key, json.dumps(value, sort_keys=True)),
        )

    # -- reads -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: Iterable[str], final_only: bool = True) -> dict[str, dict[str, Any]]:
        """Rows by key (in chunks, to stay under SQLite's variable limit)."""
        return _select_many(self._db, list(keys), final_only)

    def count(self, **where: Any) -> int:
        clause = " AND ".join(f"{k} = ?" for k in where) or "1"
        return int(
            self._db.execute(f"SELECT COUNT(*) FROM calls WHERE {clause}", tuple(where.values())).fetchone()[
                0
            ]
        )

    def rows(self) -> list[dict[str, Any]]:
        return [
            _decode(v) for v in self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls ORDER BY rowid")
        ]

    def checkpoint(self) -> None:
        """Move the WAL into the database file, so readers that ignore the WAL (``immutable=1``)
        see every committed row."""
        self.flush()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class ShardJournal(Journal):
    """A Ray caption worker's journal: writes go to its own shard; reads also see the main
    journal, opened read-only (rows already journalled there are skipped, never asked again)."""

    def __init__(self, shard: str | Path, main: str | Path):
        super().__init__(shard, merge_leftovers=False)
        self._main = open_readonly(main) if Path(main).exists() else None

    def get_many(self, keys: Iterable[str], final_only: bool = True) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        out = _select_many(self._main, keys, final_only) if self._main is not None else {}
        for key, row in _select_many(self._db, keys, final_only).items():
            if key not in out or out[key]["status"] not in FINAL:
                out[key] = row
        return out

    def close(self) -> None:
        super().close()
        if self._main is not None:
            self._main.close()
            self._main = None


def _select_many(db: sqlite3.Connection, keys: list[str], final_only: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    where = f" AND status IN ({', '.join(repr(s) for s in FINAL)})" if final_only else ""
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        sql = f"SELECT {', '.join(COLUMNS)} FROM calls WHERE key IN ({', '.join('?' * len(chunk))}){where}"
        for values in db.execute(sql, chunk):
            row = _decode(values)
            out[row["key"]] = row
    return out


# -- shards -----------------------------------------------------------------------------------------
def shard_dir(journal: str | Path) -> Path:
    """``RUN/journal.d/`` beside ``RUN/journal.sqlite``: the workers' shards."""
    path = Path(journal)
    return path.with_name(path.stem + ".d")


def shard_paths(journal: str | Path) -> list[Path]:
    folder = shard_dir(journal)
    return sorted(folder.glob("*.sqlite")) if folder.is_dir() else []


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """The database file as it is, without locks or its WAL (``immutable=1``): safe on NFS as long
    as nobody writes it meanwhile, which the caption driver guarantees for the main journal."""
    uri = Path(path).resolve().as_uri() + "?immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


@contextlib.contextmanager
def driver_lock(journal: str | Path, wait: bool = True) -> Iterator[bool]:
    """Hold ``journal.d/.driver.lock`` (an advisory ``flock``, released by the kernel when the
    holder dies, even by SIGKILL) for as long as a caption driver runs workers; yields whether it
    was taken (``wait=False`` gives up at once when someone else holds it)."""
    import fcntl

    folder = shard_dir(journal)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".driver.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def merge_shards(journal: str | Path, shards: Iterable[Path] | None = None) -> int:
    """Merge shards into the main journal and remove them; returns the rows the shards held.

    The caller holds :func:`driver_lock` and no worker writes these shards any more. Each shard is
    merged in one transaction with the journal's upsert rule (a final row is kept, an ``error``
    row is replaced), then deleted: a crash between the two merges it again, harmlessly.
    """
    shards = list(shard_paths(journal) if shards is None else shards)
    if not shards:
        return 0
    db = sqlite3.connect(journal, timeout=30, isolation_level=None)
    merged = 0
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        db.executescript(SCHEMA)
        cols = ", ".join(COLUMNS)
        for shard in shards:
            db.execute("ATTACH DATABASE ? AS shard", (str(shard),))  # read-write: recovers its WAL
            try:
                has_calls = db.execute(
                    "SELECT 1 FROM shard.sqlite_master WHERE type = 'table' AND name = 'calls'"
                ).fetchone()
                db.execute("BEGIN IMMEDIATE")
                try:
                    if has_calls:
                        merged += db.execute("SELECT COUNT(*) FROM shard.calls").fetchone()[0]
                        db.execute(
                            # "WHERE true": SQLite's rule for an upsert whose rows come from a SELECT
                            f"INSERT INTO calls ({cols}) SELECT {cols} FROM shard.calls WHERE true"
                            + _ON_CONFLICT
                        )
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.execute("DETACH DATABASE shard")
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{shard}{suffix}")
    finally:
        db.close()
    return merged


def _decode(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(COLUMNS, values, strict=True))
    for col in ("data", "flags"):
        if row[col] is not None:
            row[col] = json.loads(row[col])
    row["flags"] = row["flags"] or []
    return row


class FlushWindow:
    """Commits a deferred journal's rows at most ``period`` seconds after each was put, on an event loop.

    Why not a task that flushes every ``period``: it wakes the loop 1/period times a second even
    when nothing finished, and at moderate call rates those wake-ups cost as much CPU as the calls.
    Here a put commits at once when the last commit is at least ``period`` old (inside the wake-up
    that produced the row), else arms one timer for the end of the window; the guarantee is the
    same (no finished row waits longer than ``period``), with at most 1/period commits a second.
    """

    def __init__(self, journal: Journal, period: float, loop: asyncio.AbstractEventLoop):
        self.journal = journal
        self.period = period
        self._loop = loop
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        journal.deferred = True
        journal.on_defer = self._on_put

    def _on_put(self) -> None:
        now = self._loop.time()
        if now - self._last >= self.period:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_at(self._last + self.period, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = self._loop.time()
        self.journal.flush()

    def close(self) -> None:
        """Commit what is pending and detach from the journal (writes are immediate again)."""
        self.flush()
        self.journal.on_defer = None
        self.journal.deferred = False
