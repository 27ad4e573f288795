"""Retries with exponential backoff and full jitter, honouring Retry-After, around one model call.

Only transient failures are retried (429, 5xx, timeouts, connection errors, garbled answers); a
permanent one (bad request, bad key, unknown model) fails the item at once, because repeating it
cannot help and would hammer the server. Jitter spreads the retries of a thousand concurrent calls
that failed together so they do not come back together.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pathgen.config import CaptionConfig, default_of
from pathgen.models.generators import GenerationError, TransientError, within

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How often and how long to retry; the defaults are the caption config's, read from there."""

    max_retries: int = default_of(CaptionConfig, "max_retries")
    base_s: float = default_of(CaptionConfig, "backoff_s")
    max_s: float = default_of(CaptionConfig, "backoff_max_s")
    max_retry_after_s: float = 300.0  # a server asking for longer is waited on for this long
    timeout_s: float = default_of(CaptionConfig, "timeout_s")

    @classmethod
    def of(cls, cfg: CaptionConfig) -> RetryPolicy:
        """The policy a caption config asks for."""
        return cls(cfg.max_retries, cfg.backoff_s, cfg.backoff_max_s, timeout_s=cfg.timeout_s)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds before retry number ``attempt`` (0-based): Retry-After when given, else full jitter."""
        rng = rng or random
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s) * (1.0 + 0.1 * rng.random())
        return rng.uniform(0.0, min(self.max_s, self.base_s * (2**attempt)))


class RetriesExhausted(GenerationError):
    """The last transient error after every retry was spent."""

    def __init__(self, last: GenerationError, attempts: int):
        super().__init__(f"gave up after {attempts} attempts: {last}", status=last.status)
        self.last = last
        self.attempts = attempts


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[GenerationError, float], None] | None = None,
    enforce_timeout: bool = True,
    interrupt: asyncio.Event | None = None,
) -> tuple[T, int]:
    """Run ``fn`` until it succeeds; return ``(result, attempts)``.

    Raises :class:`RetriesExhausted` after ``max_retries`` retries of transient errors, and
    re-raises permanent errors at once. ``enforce_timeout=False`` when ``fn`` has its own deadline
    (the HTTP generator does), to save a timer per call. ``interrupt``, once set, cuts a backoff
    short (a stopping run must not wait out a long Retry-After); ``fn`` then decides what to do.
    """
    attempt = 0
    while True:
        attempt += 1
        start = time.perf_counter()
        try:
            if not enforce_timeout:
                return await fn(), attempt
            return await within(fn(), policy.timeout_s), attempt
        except asyncio.TimeoutError:
            error: GenerationError = TransientError(f"timeout after {time.perf_counter() - start:.1f}s")
        except GenerationError as exc:
            if not exc.retryable:
                raise
            error = exc
        if attempt > policy.max_retries:
            raise RetriesExhausted(error, attempt)
        wait = policy.delay(attempt - 1, error.retry_after)
        if on_retry is not None:
            on_retry(error, wait)
        if interrupt is None:
            await asyncio.sleep(wait)
        elif not interrupt.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(interrupt.wait(), wait)
