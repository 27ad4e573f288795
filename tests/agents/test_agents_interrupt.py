"""Ctrl-C / SIGTERM during `pathgen caption`: the calls in flight (already paid) are waited for and
journalled, the user is told what was saved and how to resume, the exit status is 128 + signal; a
second signal, or the end of the grace period, aborts at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from pathgen.agents.stage import caption_stage
from pathgen.config import CaptionConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal
from pathgen.engine.runner import Interrupted

N_TILES = 6
CONCURRENCY = 3


def _journal_keys(path) -> set[str]:
    with sqlite3.connect(path, timeout=5) as db:
        return {k for (k,) in db.execute("SELECT key FROM calls")}


def _caption_cmd(run, server: FakeServer) -> list[str]:
    return [
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
        str(CONCURRENCY),
        "--no-progress",
    ]


def _wait_in_flight(server: FakeServer, proc: subprocess.Popen | None, n: int, timeout: float = 120) -> None:
    """Until ``n`` requests are being answered by the server (the client is mid-call)."""
    deadline = time.monotonic() + timeout
    while server.in_flight < n:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"caption ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the calls never got in flight")
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_calls_in_flight_says_how_to_resume_and_rerun_repeats_none(make_cmu_run, sig):
    run = make_cmu_run(N_TILES)
    with FakeServer(ServerConfig(latency=(1.5, 1.5))) as server:
        proc = subprocess.Popen(_caption_cmd(run, server), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_in_flight(server, proc, CONCURRENCY)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        text = " ".join((out + err).decode().split())  # rich wraps lines at the terminal width
        assert proc.returncode == 128 + sig, text[-2000:]
        assert "calls saved to the journal" in text and "run the same command again to resume" in text
        # Every request the server answered is in the journal: the calls in flight at the signal were
        # waited for and saved, and nothing was sent after it that was not saved.
        answered = server.completed()
        assert len(server.log) == len(answered) >= CONCURRENCY
        journalled = _journal_keys(run.journal)
        assert journalled == set(answered)
        assert f"interrupted ({sig.name}): {len(journalled)} calls saved" in text
        assert len(journalled) < N_TILES * 3  # it did stop early
        if sig == signal.SIGTERM:
            return
        server.config.latency = (0.0, 0.0)
        before = len(server.log)
        summary = caption_stage(
            run, CaptionConfig(model="fake-vlm", base_url=server.base_url), progress=False
        )
        again = [e["request_id"] for e in server.log[before:]]
    assert not journalled & set(again)  # no journalled call was paid twice
    assert len(again) == N_TILES * 3 - len(journalled)
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == N_TILES


def test_second_signal_aborts_at_once(make_cmu_run, capsys):
    """In-process: SIGINT to ourselves twice while calls hang (60 s): the second one cancels."""
    run = make_cmu_run(N_TILES)
    with FakeServer(ServerConfig(latency=(60.0, 60.0))) as server:

        def interrupt_twice() -> None:
            _wait_in_flight(server, None, CONCURRENCY)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_twice, daemon=True).start()
        cfg = CaptionConfig(model="fake-vlm", base_url=server.base_url, concurrency=CONCURRENCY)
        start = time.monotonic()
        with pytest.raises(Interrupted) as info:
            caption_stage(run, cfg, progress=False)
        waited = time.monotonic() - start
    assert info.value.forced and info.value.exit_code == 130 and info.value.saved == 0
    assert waited < 20  # neither the 30 s grace nor the 60 s answers
    assert "aborted (SIGINT): 0 calls saved" in str(info.value)
    err = capsys.readouterr().err
    assert "stopping" in err and "second signal: cancelling" in err


def test_grace_period_bounds_the_wait_and_handlers_are_restored(make_cmu_run):
    """In-process: SIGINT to ourselves while calls hang; the stage gives up after stop_grace_s."""
    run = make_cmu_run(N_TILES)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with FakeServer(ServerConfig(latency=(60.0, 60.0))) as server:

        def interrupt() -> None:
            _wait_in_flight(server, None, CONCURRENCY)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        cfg = CaptionConfig(
            model="fake-vlm", base_url=server.base_url, concurrency=CONCURRENCY, stop_grace_s=0.5
        )
        start = time.monotonic()
        with pytest.raises(Interrupted) as info:
            caption_stage(run, cfg, progress=False)
        waited = time.monotonic() - start
        sent = len(server.seen)
    assert info.value.forced and info.value.exit_code == 130 and info.value.saved == 0
    assert waited < 30 and sent == CONCURRENCY  # nothing sent after the signal
    assert {s: signal.getsignal(s) for s in before} == before
    with Journal(run.journal) as journal:
        assert journal.count() == 0
