"""kill -9 in the middle of `pathgen caption`, re-run, and every tile is captioned exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from typer.testing import CliRunner

from pathgen.agents.fit import count_tokens
from pathgen.agents.results import load_caption_records
from pathgen.agents.stage import caption_stage
from pathgen.cli import app
from pathgen.config import CaptionConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal

N_TILES = 27


def _journal_rows(path) -> int:
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_midway_then_resume_captions_every_tile_exactly_once(make_cmu_run):
    run = make_cmu_run(N_TILES)
    with FakeServer(ServerConfig(latency=(0.15, 0.3))) as server:
        cmd = [
            sys.executable,
            "-c",
            "from pathgen.cli import main; main()",
            "caption",
            str(run.root),
            "--base-url",
            server.base_url,
            "--model",
            "fake-vlm",
            "--concurrency",
            "4",
            "--no-progress",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while _journal_rows(run.journal) < 15 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        with Journal(run.journal) as journal:
            before = {r["key"] for r in journal.rows()}
        assert 15 <= len(before) < N_TILES * 3  # killed midway
        answered_before = len(server.log)
        summary = caption_stage(
            run, CaptionConfig(model="fake-vlm", base_url=server.base_url), progress=False
        )
        after_ids = [e["request_id"] for e in server.log[answered_before:]]
    # No journalled call was asked again; only the calls in flight at the kill (<= 4) and answers of
    # the last journal flush period (20 ms) were asked again.
    assert not before & set(after_ids)
    assert len(after_ids) <= N_TILES * 3 - len(before) + 8
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == N_TILES
    with Journal(run.journal) as journal:
        rows = journal.rows()
    assert len(rows) == N_TILES * 3 and len({(r["tile_id"], r["agent"]) for r in rows}) == N_TILES * 3
    records = load_caption_records(run)
    assert len(records) == N_TILES and len({r["tile_id"] for r in records}) == N_TILES
    assert all(r["status"] == "ok" and count_tokens(r["caption"]) <= 77 for r in records)


def test_cli_tiny_runs_offline_end_to_end_and_dry_run_calls_nothing(cmu_run):
    runner = CliRunner()
    dry = runner.invoke(
        app,
        ["caption", str(cmu_run.root), "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--dry-run"],
    )
    assert dry.exit_code == 0, dry.output
    assert "nests of atypical melanocytes" in dry.output and "TCGA-SKCM" in dry.output
    assert not cmu_run.journal.exists()
    result = runner.invoke(
        app, ["caption", str(cmu_run.root), "--model", "tiny", "--limit", "4", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    records = load_caption_records(cmu_run)
    assert len(records) == 4
    for r in records:
        assert r["status"] in ("ok", "truncated") and "offline_demo" in r["flags"]
        assert r["caption"] and count_tokens(r["caption"]) <= 77 and r["models"]["summarize"] == "tiny"
    again = runner.invoke(
        app, ["caption", str(cmu_run.root), "--model", "tiny", "--limit", "4", "--no-progress"]
    )
    assert again.exit_code == 0 and "up to date" in again.output
