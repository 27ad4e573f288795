"""The async work runner behind the agents: bounded concurrency, retries, the SQLite journal.

- :mod:`pathgen.engine.runner` — a fixed pool of workers over an item iterator, live progress;
- :mod:`pathgen.engine.caller` — one semaphore for all model calls, retries, counters;
- :mod:`pathgen.engine.retry` — exponential backoff with full jitter, Retry-After;
- :mod:`pathgen.engine.journal` — one WAL-mode row per (tile, agent, prompt, model, upstream);
- :mod:`pathgen.engine.fakeserver` — a local OpenAI-compatible server with latency and faults,
  for tests, benchmarks and smoke runs (``python -m pathgen.engine.fakeserver``).
"""
