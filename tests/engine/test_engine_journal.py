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
