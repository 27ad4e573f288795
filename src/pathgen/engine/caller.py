"""The engine's side of a model call: bounded concurrency, retries, and live counters.

Every agent call goes through a :class:`Caller`, so one semaphore bounds the calls in flight across
all agents and generators, and one :class:`Stats` object feeds the progress display and the final
summary. It is also the one place that can refuse to send: after :meth:`Caller.stop` (Ctrl-C,
SIGTERM) no request leaves, neither a new call nor a retry, while the requests already sent finish
and are journalled (they are paid for).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pathgen.engine.retry import RetryPolicy, call_with_retries
from pathgen.models.generators import GenerationError, GenerationParams, GenerationResult, Generator


@dataclass
class Stats:
    total: int = 0  # tiles to process in this run
    done: int = 0  # tiles whose chain finished (ok, truncated or rejected)
    skipped: int = 0  # tiles already finished in the journal
    failed: int = 0  # tiles that ended rejected or in error
    in_flight: int = 0
    calls: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return max(1e-9, time.perf_counter() - self.started)

    def summary(self) -> dict[str, Any]:
        el = self.elapsed
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "calls": self.calls,
            "retries": self.retries,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "elapsed_s": round(el, 3),
            "calls_per_s": round(self.calls / el, 3),
            "tokens_per_s": round((self.tokens_in + self.tokens_out) / el, 1),
            "reasons": dict(self.reasons),
        }


class Stopped(Exception):
    """A call was not sent because the run is stopping (not an error of the item: nothing is journalled)."""


class Caller:
    def __init__(self, concurrency: int, policy: RetryPolicy, stats: Stats):
        self._sem = asyncio.Semaphore(concurrency)
        self.policy = policy
        self.stats = stats
        self.stopping = False
        self._stopped = asyncio.Event()  # wakes calls sleeping in a retry backoff

    def stop(self) -> None:
        """Send nothing more: every later attempt (new call, re-ask or retry) raises :class:`Stopped`,
        and a call waiting out a backoff wakes at once to do so. Call it on the event loop's thread."""
        self.stopping = True
        self._stopped.set()

    def _send(
        self,
        generator: Generator,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        request_id: str | None,
    ) -> Any:
        if self.stopping:
            raise Stopped("stopping: request not sent")
        return generator.generate(messages, params, request_id)

    def _on_retry(self, error: GenerationError, wait: float) -> None:
        self.stats.retries += 1
        self.stats.reasons[f"retry:{error.status or type(error).__name__}"] += 1

    async def call(
        self,
        generator: Generator,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        request_id: str | None = None,
    ) -> tuple[GenerationResult, int]:
        """One logical call (with retries); returns the result and the number of HTTP attempts.

        Raises :class:`Stopped` when the run stops before an attempt is sent.
        """
        async with self._sem:
            self.stats.in_flight += 1
            try:
                result, attempts = await call_with_retries(
                    lambda: self._send(generator, messages, params, request_id),
                    self.policy,
                    self._on_retry,
                    enforce_timeout=not getattr(generator, "enforces_timeout", False),
                    interrupt=self._stopped,
                )
            finally:
                self.stats.in_flight -= 1
        self.stats.calls += 1
        self.stats.tokens_in += result.tokens_in
        self.stats.tokens_out += result.tokens_out
        return result, attempts
