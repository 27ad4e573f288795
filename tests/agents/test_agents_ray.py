"""`caption` with a Ray executor: caption workers (one per server by default), each with its journal
shard; the same journal as a local run, no call made twice, and a killed driver resumes.

One local Ray instance with 2 CPUs for the module (it takes seconds to start); the killed driver
joins it as a client, so its workers die with it while the instance stays up for the resume.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pathgen.agents.results import load_caption_records
from pathgen.agents.stage import caption_stage
from pathgen.config import CaptionConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal, shard_dir, shard_paths
from pathgen.engine.runner import Interrupted
from pathgen.executors import make_executor
from pathgen.rundir import RunDir

COMPARED = ("key", "tile_id", "agent", "prompt_version", "model", "params", "upstream", "status", "output",
            "data", "flags")  # fmt: skip


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")
    from pathgen.config import ExecutorConfig

    executor = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=2, max_retries=1))
    executor.ensure()
    yield executor
    executor.close()


def _rows(run: RunDir) -> dict[str, tuple]:
    with Journal(run.journal) as journal:
        return {r["key"]: tuple(str(r[c]) for c in COMPARED) for r in journal.rows()}


def _copy_inputs(run: RunDir, root: Path) -> RunDir:
    other = RunDir(root).ensure()
    for path in (run.slides, run.selected):
        shutil.copy2(path, other.root / path.name)
    return other


def _worker_pids() -> set[int]:
    import psutil

    pids = set()
    for proc in psutil.process_iter(["cmdline"]):
        if any("CaptionWorker" in part for part in proc.info["cmdline"] or []):
            pids.add(proc.pid)
    return pids


def test_two_workers_give_the_local_journal_and_ask_nothing_twice(make_cmu_run, tmp_path, ray_executor):
    n_tiles = 8
    run = make_cmu_run(n_tiles)
    local = _copy_inputs(run, tmp_path / "local")
    with FakeServer() as a, FakeServer() as b:
        cfg = CaptionConfig(model="fake-vlm", base_url=[a.base_url, b.base_url], concurrency=4)
        summary = caption_stage(run, cfg, progress=False, executor=ray_executor)
        on_a, on_b, sent = a.completed(), b.completed(), len(a.log) + len(b.log)
        caption_stage(local, CaptionConfig(model="fake-vlm", base_url=a.base_url), progress=False)
    assert summary["workers"] == 2 and summary["done"] == n_tiles and summary["failed"] == 0
    # each worker talked to its own server; together every call exactly once, nothing refused
    asked = on_a + on_b
    assert on_a and on_b and len(asked) == len(set(asked)) == sent == n_tiles * 3
    ray_rows, local_rows = _rows(run), _rows(local)
    assert ray_rows == local_rows and len(ray_rows) == n_tiles * 3
    assert set(asked) == set(ray_rows)
    assert shard_paths(run.journal) == []  # merged and removed
    assert load_caption_records(run) == load_caption_records(local)
    again = caption_stage(run, cfg, progress=False, executor=ray_executor)
    assert again["up_to_date"]


def _shard_rows(run: RunDir) -> int:
    total = 0
    for path in shard_paths(run.journal):
        try:
            with sqlite3.connect(path, timeout=1) as db:
                total += db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        except sqlite3.Error:
            pass
    return total


def test_killed_driver_leaves_shards_that_the_next_run_merges_and_never_asks_again(
    make_cmu_run, ray_executor
):
    import ray

    n_tiles = 16
    run = make_cmu_run(n_tiles)
    address = ray.get_runtime_context().gcs_address
    with (
        FakeServer(ServerConfig(latency=(0.15, 0.3))) as a,
        FakeServer(ServerConfig(latency=(0.15, 0.3))) as b,
    ):
        cmd = [sys.executable, "-c", "from pathgen.cli import main; main()", "caption", str(run.root),
               "--base-url", a.base_url, "--base-url", b.base_url, "--model", "fake-vlm", "--concurrency",
               "4", "--no-progress", "--executor", "ray", "--ray-address", address]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while _shard_rows(run) < 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        # Ray ends a dead driver's workers; wait for them so nothing writes a shard any more.
        deadline = time.monotonic() + 60
        while _worker_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _worker_pids()
        left = shard_paths(run.journal)
        with sqlite3.connect(run.journal) as db:  # not Journal(): opening it would merge the leftovers
            assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
        assert len(left) == 2  # every answer is in a shard, none merged yet
        before: set[str] = set()
        for path in left:
            with sqlite3.connect(path) as db:
                before |= {k for (k,) in db.execute("SELECT key FROM calls WHERE status != 'error'")}
        assert 12 <= len(before) < n_tiles * 3
        asked_before = len(a.log), len(b.log)
        summary = caption_stage(
            run, CaptionConfig(model="fake-vlm", base_url=[a.base_url, b.base_url], concurrency=4),
            progress=False, executor=ray_executor,
        )  # fmt: skip
        after = [e["request_id"] for e in a.log[asked_before[0] :] + b.log[asked_before[1] :]]
    assert not before & set(after)  # no call journalled in a shard was asked again
    assert len(after) <= n_tiles * 3 - len(before) + 8  # at most the calls in flight at the kill, again
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == n_tiles
    assert shard_paths(run.journal) == []
    rows = _rows(run)
    assert len(rows) == n_tiles * 3 and before <= set(rows)
    assert len({r["tile_id"] for r in load_caption_records(run)}) == n_tiles


def test_sigint_stops_the_workers_waits_for_calls_in_flight_and_merges(make_cmu_run, ray_executor):
    n_tiles = 12
    run = make_cmu_run(n_tiles)
    with FakeServer(ServerConfig(latency=(1.5, 1.5))) as server:

        def interrupt() -> None:
            deadline = time.monotonic() + 120
            while server.in_flight < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        cfg = CaptionConfig(model="fake-vlm", base_url=server.base_url, concurrency=2, ray_workers=2)
        with pytest.raises(Interrupted) as info:
            caption_stage(run, cfg, progress=False, executor=ray_executor)
        answered = server.completed()
    assert not info.value.forced and info.value.exit_code == 130
    assert shard_paths(run.journal) == [] and not list(shard_dir(run.journal).glob("*.sqlite*"))
    journalled = set(_rows(run))
    # every call the server answered (those in flight at the signal included) is in the journal
    assert journalled == set(answered) and len(server.log) == len(answered) >= 2
    assert info.value.saved == len(journalled) < n_tiles * 3
