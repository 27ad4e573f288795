"""Journal shards (Ray caption workers): one writer per shard, the main journal read without locks,
the driver alone merges (final rows kept, error rows replaced), leftovers merged on the next open."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from pathgen.engine.journal import (
    Journal,
    ShardJournal,
    driver_lock,
    merge_shards,
    open_readonly,
    shard_dir,
    shard_paths,
)


def _row(key: str, status: str = "ok", output: str = "text"):
    return {
        "key": key,
        "tile_id": f"s:{key}:0:672",
        "agent": "describe",
        "prompt_version": "v1@abc",
        "model": "m",
        "params": "p",
        "upstream": "",
        "status": status,
        "output": output,
        "flags": [],
    }


def test_shard_reads_main_read_only_and_writes_only_its_own_file(tmp_path):
    main = tmp_path / "journal.sqlite"
    with Journal(main) as j:
        j.put(_row("done"))
        j.put(_row("failed", status="error"))
        j.checkpoint()  # the workers read the file itself, not the WAL
        with ShardJournal(shard_dir(main) / "w0.sqlite", main) as shard:
            shard.put(_row("new"))
            got = shard.get_many(["done", "failed", "new"])
            assert set(got) == {"done", "new"}  # error rows are not final: asked again
            assert shard.get_many(["failed"], final_only=False)["failed"]["status"] == "error"
        assert j.count() == 2  # nothing written to the main journal by the shard
    assert [p.name for p in shard_paths(main)] == ["w0.sqlite"]


def test_merge_keeps_final_rows_replaces_error_rows_and_removes_the_shards(tmp_path):
    main = tmp_path / "journal.sqlite"
    with Journal(main) as j:
        j.put(_row("final", output="first"))
        j.put(_row("retry", status="error", output=""))
    for name, rows in {
        "a": [_row("final", output="second"), _row("retry", output="fixed")],
        "b": [_row("only-b")],
    }.items():
        with Journal(shard_dir(main) / f"{name}.sqlite", merge_leftovers=False) as shard:
            for row in rows:
                shard.put(row)
    with driver_lock(main) as held:
        assert held
        assert merge_shards(main) == 3
    assert shard_paths(main) == []
    assert not list(shard_dir(main).glob("*.sqlite*"))  # -wal and -shm gone too
    with Journal(main) as j:
        rows = {r["key"]: (r["status"], r["output"]) for r in j.rows()}
    assert rows == {"final": ("ok", "first"), "retry": ("ok", "fixed"), "only-b": ("ok", "text")}


def _hold_lock_then_die(journal: str, ready) -> None:  # pragma: no cover - runs in a child
    import os
    import signal

    with driver_lock(journal):
        ready.set()
        os.kill(os.getpid(), signal.SIGKILL)


def test_leftover_shards_are_merged_on_open_unless_a_driver_holds_the_lock(tmp_path):
    main = tmp_path / "journal.sqlite"
    with Journal(shard_dir(main) / "w1.sqlite", merge_leftovers=False) as shard:
        shard.put(_row("left"))
    # A driver running (this process holds the lock): its workers' shards are live, not merged.
    with driver_lock(main), Journal(main) as j:
        assert j.count() == 0 and len(shard_paths(main)) == 1
    # A driver killed with SIGKILL: the kernel released its lock, the next open merges.
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_lock_then_die, args=(str(main), ready))
    child.start()
    child.join(30)
    assert ready.is_set() and child.exitcode == -9
    with Journal(main) as j:
        assert [r["key"] for r in j.rows()] == ["left"]
    assert shard_paths(main) == []


def test_merge_recovers_a_killed_writers_wal(tmp_path):
    """A worker killed mid-run leaves its shard with committed rows still in the WAL file."""
    main = tmp_path / "journal.sqlite"
    path = shard_dir(main) / "w0.sqlite"
    shard = Journal(path, merge_leftovers=False)
    shard.put(_row("in-wal"))
    # not closed (as after kill -9): the row is only in the WAL, the database file has no table rows
    assert (path.parent / "w0.sqlite-wal").stat().st_size > 0
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        open_readonly(path).execute("SELECT COUNT(*) FROM calls")  # the file alone: not even the table
    with driver_lock(main):
        assert merge_shards(main) == 1
    with Journal(main) as j:
        assert [r["key"] for r in j.rows()] == ["in-wal"]
