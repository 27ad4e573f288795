"""Retries: exponential backoff with full jitter, Retry-After honoured, permanent errors not retried."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from pathgen.engine.retry import RetriesExhausted, RetryPolicy, call_with_retries
from pathgen.models.gen_openai import parse_retry_after
from pathgen.models.generators import PermanentError, TransientError


def test_backoff_is_bounded_jittered_and_honours_retry_after():
    policy = RetryPolicy(base_s=0.5, max_s=4.0)
    rng = random.Random(0)
    waits = [policy.delay(a, None, rng) for a in range(8) for _ in range(50)]
    assert all(0 <= w <= 4.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 300  # jittered, not synchronised
    assert 7.0 <= policy.delay(0, 7.0, rng) <= 7.7
    assert policy.delay(0, 10_000, rng) <= policy.max_retry_after_s * 1.1


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_call_with_retries_counts_attempts_and_stops_on_permanent():
    calls = {"n": 0}

    async def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("503", status=503, retry_after=0.01)
        return "ok"

    result, attempts = asyncio.run(call_with_retries(flaky, RetryPolicy(base_s=0.001)))
    assert (result, attempts) == ("ok", 3)

    async def bad():
        raise PermanentError("400", status=400)

    with pytest.raises(PermanentError):
        asyncio.run(call_with_retries(bad, RetryPolicy(base_s=0.001)))

    async def always():
        raise TransientError("500", status=500)

    with pytest.raises(RetriesExhausted) as info:
        asyncio.run(call_with_retries(always, RetryPolicy(max_retries=2, base_s=0.001)))
    assert info.value.attempts == 3


def test_timeout_is_a_transient_error():
    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(RetriesExhausted, match="timeout"):
        asyncio.run(call_with_retries(slow, RetryPolicy(max_retries=1, base_s=0.001, timeout_s=0.05)))


def test_stopping_wakes_a_call_waiting_out_a_retry_after():
    """A graceful stop must not wait out a server's Retry-After: the backoff is cut short and the
    call ends as Stopped (nothing sent after the stop)."""
    from pathgen.engine.caller import Caller, Stats, Stopped

    sent: list[float] = []

    class Busy:  # a server that always answers 429 with Retry-After: 30
        async def generate(self, messages, params, request_id=None):
            sent.append(time.perf_counter())
            raise TransientError("HTTP 429", status=429, retry_after=30.0)

    async def run() -> float:
        caller = Caller(4, RetryPolicy(max_retries=5), Stats())
        call = asyncio.create_task(caller.call(Busy(), [], None))
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        caller.stop()
        with pytest.raises(Stopped):
            await call
        return time.perf_counter() - start

    waited = asyncio.run(run())
    assert waited < 2.0 and len(sent) == 1
