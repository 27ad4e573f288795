"""The caption stage on Ray: several caption workers, each running the async engine of one process.

Why workers and not one Ray task per tile: a tile is three short HTTP calls, and the engine already
keeps hundreds of them in flight from one event loop; what a cluster adds is more event loops, more
servers and more image decoding. So the driver splits the work:

- the **servers**: worker *i* of *n* gets base URLs ``i, i+n, ...`` (round-robin; with more workers
  than URLs, worker *i* shares URL ``i mod len``), of the shared ``base_url`` and of each agent's own;
- the **concurrency**: ``caption.concurrency`` calls in flight in all, split evenly;
- the **tiles**: by a hash of ``tile_id`` (stable across runs and machines, whatever the order).

The journal stays correct with one writer per file: each worker writes its own shard
``RUN/journal.d/<run>-w<i>.sqlite`` and reads the main journal read-only (``immutable=1``, after the
driver checkpointed it) to skip calls already done; the driver alone merges the shards when the
workers end, under ``journal.d/.driver.lock``. A worker that dies is restarted by Ray and resumes
from the main journal and its own shard; a killed driver leaves shards behind, merged when the
journal is next opened, so a call journalled in any shard is never made again.

Stopping (best effort): on the first SIGINT/SIGTERM the driver asks every worker to send nothing
more and waits up to ``stop_grace_s`` (plus a margin) for the calls in flight; a second signal, or
the end of that wait, kills the workers (their shards keep every committed row). Then it merges the
shards and raises :class:`~pathgen.engine.runner.Interrupted`.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

from pathgen.agents.chain import AgentSlot, TileTask
from pathgen.config import CaptionConfig
from pathgen.engine.caller import Caller, Stats
from pathgen.engine.journal import Journal, ShardJournal, driver_lock, merge_shards, shard_dir
from pathgen.engine.retry import RetryPolicy
from pathgen.engine.runner import Interrupted
from pathgen.executors import Executor
from pathgen.rundir import RunDir

WORKER_CPUS = 1.0  # an event loop plus a few image-decoding threads
POLL_S = 0.25  # how often the driver looks at its workers (progress, signals)
STOP_MARGIN_S = 10.0  # beyond stop_grace_s: time for the workers to flush and return
AGENTS = ("describe", "revise", "summarize")


def worker_count(cfg: CaptionConfig) -> int:
    """``caption.ray_workers``, or one worker per base URL (at least one)."""
    return cfg.ray_workers or max(1, len(_urls(cfg.base_url)))


def tile_share(tile_id: str, n: int) -> int:
    """Which of ``n`` workers captions this tile: a hash, so the split never depends on order."""
    return int(hashlib.sha1(tile_id.encode()).hexdigest()[:8], 16) % n


def split_tasks(tasks: list[TileTask], n: int) -> list[list[TileTask]]:
    shares: list[list[TileTask]] = [[] for _ in range(n)]
    for task in tasks:
        shares[tile_share(task.tile_id, n)].append(task)
    return shares


def share_urls(urls: list[str], i: int, n: int) -> list[str]:
    """Worker ``i`` of ``n``: its round-robin share of the base URLs."""
    if not urls:
        return []
    return urls[i::n] if n <= len(urls) else [urls[i % len(urls)]]


def worker_config(cfg: CaptionConfig, i: int, n: int) -> CaptionConfig:
    """Worker ``i``'s caption settings: its servers and its part of the concurrency."""
    data = cfg.model_dump()
    data["base_url"] = share_urls(_urls(cfg.base_url), i, n) or None
    for agent in AGENTS:
        own = _urls(getattr(cfg, agent).base_url)
        if own:
            data[agent]["base_url"] = share_urls(own, i, n)
    data["concurrency"] = max(1, cfg.concurrency // n + (1 if i < cfg.concurrency % n else 0))
    return CaptionConfig.model_validate(data)


def _urls(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


class CaptionWorker:
    """One caption worker (a Ray async actor): the engine over its share, journalled in its shard."""

    def __init__(
        self, cfg_data: dict[str, Any], shard: str, main: str, image_loader: Callable[[TileTask], Any] | None
    ) -> None:
        from pathgen.agents.stage import tile_loader

        self.cfg = CaptionConfig.model_validate(cfg_data)
        self.shard, self.main = Path(shard), Path(main)
        self.loader = image_loader or tile_loader(self.cfg.image_size)
        self.stats = Stats()
        self.caller: Caller | None = None
        self.pool: asyncio.Future[Any] | None = None
        self.stopping = self.forced = False

    async def run(self, tasks: list[TileTask]) -> dict[str, Any]:
        from pathgen.agents.stage import build_agents, drive_tiles, warm_up

        cfg = self.cfg
        agents, generators = build_agents(cfg)
        slots = [AgentSlot.of(a, cfg.image_size) for a in agents]
        warm_up(slots)
        self.stats = Stats(total=len(tasks))
        policy = RetryPolicy.of(cfg)
        self.caller = Caller(cfg.concurrency, policy, self.stats)
        if self.stopping:
            self.caller.stop()
        journal = ShardJournal(self.shard, self.main)
        try:
            await drive_tiles(
                journal, cfg, tasks, slots, self.caller, self.stats, self.loader, False,
                should_stop=lambda: self.stopping, started=self._started,
            )  # fmt: skip
        finally:
            journal.close()
            for gen in generators:
                await gen.aclose()
        return {
            **self.stats.summary(),
            "written": journal.written,
            "offline_demo": any(g.offline_demo for g in generators),
            "chain": [s.describe() for s in slots],
        }

    def _started(self, pool: asyncio.Future[Any]) -> None:
        self.pool = pool

    async def stop(self, grace_s: float) -> None:
        """Send nothing more; cancel the calls still in flight after ``grace_s``."""
        self.stopping = True
        if self.caller is not None:
            self.caller.stop()
        asyncio.get_running_loop().call_later(grace_s, self._cancel)

    def _cancel(self) -> None:
        if self.pool is not None and not self.pool.done():
            self.forced = True
            self.pool.cancel()

    async def progress(self) -> tuple[int, int]:
        """(tiles finished or skipped, tiles failed) so far."""
        return self.stats.done + self.stats.skipped, self.stats.failed


def caption_with_workers(
    run: RunDir,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    executor: Executor,
    image_loader: Callable[[TileTask], Any] | None,
    progress: bool,
    limit: int | None,
    fp: str,
) -> dict[str, Any]:
    """Run the caption workers on the executor's Ray cluster; merge their shards; the summary."""
    from pathgen.agents.stage import finish

    ray = executor.ensure()  # type: ignore[attr-defined]
    n = worker_count(cfg)
    shares = split_tasks(tasks, n)
    chain = [s.describe() for s in slots]
    started = time.perf_counter()
    with driver_lock(run.journal, wait=False) as held:
        if not held:
            raise ValueError(
                f"another caption run is writing {run.journal} (it holds {shard_dir(run.journal)}/"
                ".driver.lock); wait for it to end"
            )
        with Journal(run.journal, merge_leftovers=False) as journal:
            merge_shards(run.journal)  # what a killed driver left behind
            journal.set_meta("chain", chain)
            journal.checkpoint()  # the workers read the file without its WAL
        token = uuid.uuid4().hex[:8]
        actor_cls = ray.remote(CaptionWorker).options(
            num_cpus=WORKER_CPUS,
            max_restarts=executor.max_retries,  # type: ignore[attr-defined]
            max_task_retries=executor.max_retries,  # type: ignore[attr-defined]
        )
        running: dict[Any, tuple[int, Any]] = {}
        for i, share in enumerate(shares):
            if share:
                shard = shard_dir(run.journal) / f"{token}-w{i}.sqlite"
                actor = actor_cls.remote(
                    worker_config(cfg, i, n).model_dump(), str(shard), str(run.journal), image_loader
                )
                running[actor.run.remote(share)] = (i, actor)
        stop = _DriverStop(cfg.stop_grace_s)
        stop.install()
        try:
            results = _wait(ray, running, stop, len(tasks) if progress else None)
        finally:
            stop.restore()
            for _, actor in running.values():
                ray.kill(actor, no_restart=True)
        saved = merge_shards(run.journal)
    summary = _combine(results, shares, started)
    offline = any(r.get("offline_demo") for r in results.values() if "error" not in r)
    for r in results.values():
        if "chain" in r and r["chain"] != chain:  # never expected: the same settings, the same keys
            raise RuntimeError(f"a caption worker computed another chain: {r['chain']} != {chain}")
    if stop.signum is not None:
        done = summary["done"] + summary["skipped"]
        raise Interrupted(stop.signum, saved, done, len(tasks), stop.forced)
    return finish(run, summary, len(tasks), slots, offline, limit, fp)


def _wait(
    ray: Any, running: dict[Any, tuple[int, Any]], stop: _DriverStop, total: int | None
) -> dict[int, dict[str, Any]]:
    """Collect every worker's summary (or its error), showing progress and acting on signals."""
    from pathgen.executors.progress import progress

    pending = dict(running)
    results: dict[int, dict[str, Any]] = {}
    shown = [0, 0]
    with progress("caption", total) if total is not None else nullcontext() as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            for ref in ready:
                i, _ = pending.pop(ref)
                results[i] = _result(ray, ref)
            if stop.signum is not None and stop.deadline is None:
                stop.begin([actor for _, actor in pending.values()])
            if pending and stop.overdue():
                stop.notify("cancelling the calls still in flight: stopping the caption workers")
                for _i, actor in pending.values():
                    ray.kill(actor, no_restart=True)
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=60)
                for ref in list(pending):
                    i, _ = pending.pop(ref)
                    results[i] = {"error": "stopped: the worker was killed"}
            if bar is not None and pending:
                _show(ray, bar, pending, results, shown)
    return results


def _show(ray: Any, bar: Any, pending: dict[Any, tuple[int, Any]], results: dict[int, dict[str, Any]],
          shown: list[int]) -> None:  # fmt: skip
    """Advance the one progress display by what the workers finished since the last look."""
    finished = sum(r.get("done", 0) + r.get("skipped", 0) for r in results.values())
    failed = sum(r.get("failed", 0) for r in results.values())
    try:
        for done, bad in ray.get([actor.progress.remote() for _, actor in pending.values()], timeout=5):
            finished, failed = finished + done, failed + bad
    except Exception:  # a worker restarting: look again next time
        return
    for _ in range(max(0, failed - shown[1])):
        bar.advance("", True)
    for _ in range(max(0, finished - shown[0])):
        bar.advance("")
    shown[0], shown[1] = max(shown[0], finished), max(shown[1], failed)


def _result(ray: Any, ref: Any) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:  # lost beyond Ray's restarts, or the worker raised
        return {
            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        }


def _combine(
    results: dict[int, dict[str, Any]], shares: list[list[TileTask]], started: float
) -> dict[str, Any]:
    """One summary from the workers' (a lost worker's tiles count as failed: the next run redoes them)."""
    total: dict[str, Any] = {k: 0 for k in ("done", "skipped", "failed", "calls", "retries", "tokens_in",
                                            "tokens_out")}  # fmt: skip
    reasons: Counter[str] = Counter()
    for i, r in results.items():
        if "error" in r:
            total["failed"] += len(shares[i])
            reasons[f"worker:{r['error'][:120]}"] += 1
            continue
        for k in total:
            total[k] += r.get(k, 0)
        reasons.update(r.get("reasons", {}))
    el = max(1e-9, time.perf_counter() - started)
    total.update(
        elapsed_s=round(el, 3),
        calls_per_s=round(total["calls"] / el, 3),
        tokens_per_s=round((total["tokens_in"] + total["tokens_out"]) / el, 1),
        reasons=dict(reasons),
        workers=len(results),
    )
    return total


class _DriverStop:
    """The driver's SIGINT/SIGTERM handlers while the workers run (main thread only).

    The handler only records the signal; the driver's loop acts on it between two looks at the
    workers (a Ray call inside a signal handler could interrupt Ray's own)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        self.forced = False
        self.deadline: float | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = sig
        else:
            self.forced = True

    def begin(self, actors: list[Any]) -> None:
        assert self.signum is not None
        self.deadline = time.monotonic() + self.grace_s + STOP_MARGIN_S
        for actor in actors:
            actor.stop.remote(self.grace_s)
        self.notify(
            f"{signal.Signals(self.signum).name}: stopping; the caption workers send nothing more and "
            f"wait up to {self.grace_s:g} s for their calls in flight (again to abort at once)"
        )

    def overdue(self) -> bool:
        if self.deadline is None:
            return False
        if not self.forced and time.monotonic() > self.deadline:
            self.forced = True
        return self.forced

    @staticmethod
    def notify(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
