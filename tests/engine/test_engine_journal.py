"""The SQLite journal: one row per call key, final rows never overwritten, error rows replaced."""

from __future__ import annotations

import sqlite3

import pytest

from pathgen.engine.journal import Journal, call_key


def _row(key: str, status: str = "ok", output: str = "text", **extra):
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
        "flags": ["a"],
        **extra,
    }


def test_journal_is_wal_and_rows_round_trip(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.put(_row("k1", data={"edits": []}))
        got = j.get_many(["k1", "missing"])
    assert list(got) == ["k1"]
    assert got["k1"]["data"] == {"edits": []} and got["k1"]["flags"] == ["a"]
    mode = sqlite3.connect(tmp_path / "j.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_final_rows_are_never_overwritten_but_error_rows_are(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.put(_row("k1", output="first"))
        j.put(_row("k1", output="second"))
        j.put(_row("k2", status="error", output=""))
        assert j.get_many(["k2"]) == {}  # errors are not final: the next run retries them
        j.put(_row("k2", status="ok", output="retried"))
        rows = j.rows()
    assert [r["key"] for r in rows] == ["k1", "k2"]
    assert rows[0]["output"] == "first" and rows[1]["output"] == "retried"


def test_unique_constraint_on_readable_columns(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.put(_row("k1"))
        with pytest.raises(sqlite3.IntegrityError):
            j.put({**_row("another-key"), "tile_id": "s:k1:0:672"})  # same tile/agent/prompt/model/...


def test_call_key_chains_upstream():
    a = call_key("t", "describe", "v1", "m", "p", "")
    b = call_key("t", "revise", "v1", "m", "p", a)
    assert b != call_key("t", "revise", "v1", "m", "p", call_key("t", "describe", "v2", "m", "p", ""))
    assert a == call_key("t", "describe", "v1", "m", "p", "")


def test_deferred_rows_encode_json_columns_and_timestamps(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.deferred = True
        j.put(_row("k1", data={"edits": [], "revised": "é"}))
        j.put(_row("k2", flags=[], data='{"raw": 1}', created_at=5.0))
        assert j.flush() == 2
        rows = {r["key"]: r for r in j.rows()}
    assert rows["k1"]["data"] == {"edits": [], "revised": "é"} and rows["k1"]["flags"] == ["a"]
    assert rows["k1"]["created_at"] > 1e9
    assert rows["k2"]["flags"] == [] and rows["k2"]["data"] == {"raw": 1} and rows["k2"]["created_at"] == 5.0


def test_flush_window_commits_each_row_within_the_period_and_idles_without_timers(tmp_path):
    import asyncio

    from pathgen.engine.journal import FlushWindow

    def committed(path) -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    async def scenario(j: Journal) -> list[int]:
        loop = asyncio.get_running_loop()
        window = FlushWindow(j, 0.05, loop)
        seen = []
        j.put(_row("k1"))  # first row after idle: committed at once
        seen.append(committed(j.path))
        j.put(_row("k2"))  # inside the window: waits for the window's end
        j.put(_row("k3"))
        seen.append(committed(j.path))
        assert window._timer is not None and not window._timer.cancelled()  # one timer, not one per row
        await asyncio.sleep(0.1)
        seen.append(committed(j.path))
        assert window._timer is None  # idle: nothing scheduled
        j.put(_row("k4"))
        window.close()
        seen.append(committed(j.path))
        assert not j.deferred and j.on_defer is None
        return seen

    with Journal(tmp_path / "j.sqlite") as j:
        assert asyncio.run(scenario(j)) == [1, 1, 3, 4]
