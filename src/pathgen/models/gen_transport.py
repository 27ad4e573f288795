"""HTTP transports for model calls: a lean HTTP/1.1 pool for the hot path, aiohttp for the rest.

A chat-completions call is one POST with a Content-Length body and one JSON answer. A client that
keeps thousands of GPU slots busy from one core has about 1 ms of CPU per call for everything (tile
read, JPEG, prompt, checks, journal), so the transport must cost a small part of that.

Why a home-made client (``native``, the default): measured with ``benchmarks/captioning.py
--patches 1000 --server-concurrency 256 --repeat 3`` (same fake server, same load, same process,
alternating runs; real tiles of CMU-1-Small-Region at 224 px) on a 2-core machine shared with other
work (load average 3-8), client CPU per call at C=256:

=====================  ============================  ===================  ======================
transport              whole client, median (range)  ratio to native      generator alone [1]_
=====================  ============================  ===================  ======================
native (this module)   0.99 ms (0.82-1.09)           1.00                 0.26-0.27 ms
aiohttp 3.14           1.15 ms (1.11-1.34)           1.35 (median)        0.59-0.70 ms
httpx 0.29 (removed)   -                             -                    1.8-2.6 ms
no HTTP at all [2]_    0.67-0.70 ms                  -                    -
=====================  ============================  ===================  ======================

.. [1] ``OpenAIGenerator.generate`` alone, 3000 calls at 256 in flight, latency U(0.5, 2) s.
.. [2] the same run with an in-process stub generator: what the engine itself costs (agents, checks,
   journal, tile reading), which leaves the transport ~0.3 ms of the 1 ms budget.

At C=64 (49 calls/s) both cost more per call (native 1.33 ms, aiohttp 1.77 ms, ratio 1.33): at a
low call rate every answer wakes a cold process, and fixed per-wakeup costs dominate; the total is
then a few percent of a core. Per-call CPU falls as the rate rises (the generator alone: 0.18 ms a
call at 1,900 calls/s), which is where the budget matters.

aiohttp with ``trust_env=True`` costs another ~0.7 ms a call (it looks up netrc and proxies in a
thread on every request), so :class:`AiohttpPool` resolves the proxy once per base URL instead.
aiohttp misses the 1 ms goal where the native pool meets it, so the native pool stays the hot path
and aiohttp is the well-kept alternative: chosen automatically when a proxy applies to a base URL,
and with ``transport="aiohttp"`` for servers the native pool cannot talk to.

The native pool is an :class:`asyncio.Protocol` per connection (no stream reader/writer layers): a
response is parsed as its bytes arrive and completes one future. It speaks Content-Length and
chunked bodies, bodies ended by close, ``Connection: close``, HTTP/1.0, 1xx interim answers, TLS,
and retries once, transparently, when a pooled keep-alive connection turns out to be closed by the
server before it answered.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from pathgen.models.generators import within

Response = tuple[int, dict[str, str], bytes]


class StaleConnection(ConnectionError):
    """A pooled connection closed by the server before it answered (safe to retry once)."""


class _Http1(asyncio.Protocol):
    """One keep-alive connection; ``exchange`` sends a request and awaits its parsed response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes, bool]] | None = None
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self._body_start = 0
        self._chunk_pos = 0  # chunked: where the next chunk-size line starts
        self._chunks: list[bytes] = []

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return  # bytes nobody asked for: the connection is closed when it is next taken
        try:
            done = self._parse()
        except ValueError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            return
        if done is not None:
            self._waiter.set_result(done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._head is not None and self._length() is None and not self._chunked():
            status, headers, _ = self._head  # body delimited by the end of the connection
            waiter.set_result((status, headers, bytes(self._buf[self._body_start :]), False))
        elif self.used and not self._buf:
            waiter.set_exception(StaleConnection("pooled connection closed by the server"))
        else:
            waiter.set_exception(ConnectionError(f"connection closed mid-response ({exc or 'EOF'})"))

    # -- exchange ----------------------------------------------------------------------------------
    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        assert self.transport is not None
        if self._buf:  # the server sent bytes while the connection was idle: do not trust it
            raise StaleConnection("unsolicited bytes on an idle connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self._head = None
        self._chunks = []
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self.used = True
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        """The deadline passed: the exchange raises ``asyncio.TimeoutError``, the connection closes."""
        self._fail(asyncio.TimeoutError())

    # -- parsing -----------------------------------------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _length(self) -> int | None:
        assert self._head is not None
        status, headers, _ = self._head
        if status in (204, 304):
            return 0
        value = headers.get("content-length")
        return None if value is None else int(value)

    def _chunked(self) -> bool:
        assert self._head is not None
        return "chunked" in self._head[1].get("transfer-encoding", "").lower()

    def _parse(self) -> tuple[int, dict[str, str], bytes, bool] | None:
        buf = self._buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = buf[:end].decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            status = int(rest[:3])
            if 100 <= status < 200:  # interim answer (100 Continue, 103 Early Hints): skip it
                del buf[: end + 4]
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            keep = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
            self._head = (status, headers, keep)
            self._body_start = self._chunk_pos = end + 4
        status, headers, keep = self._head
        if self._chunked():
            return self._parse_chunks()
        length = self._length()
        if length is None or len(buf) < self._body_start + length:
            return None  # None: read until the connection closes (see connection_lost)
        body = bytes(buf[self._body_start : self._body_start + length])
        del buf[: self._body_start + length]
        return status, headers, body, keep

    def _parse_chunks(self) -> tuple[int, dict[str, str], bytes, bool] | None:
        assert self._head is not None
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n", self._chunk_pos)
            if eol < 0:
                return None
            size = int(bytes(buf[self._chunk_pos : eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", eol)  # last chunk, optional trailers, blank line
                if buf[eol : eol + 4] == b"\r\n\r\n":
                    trailer_end = eol
                if trailer_end < 0:
                    return None
                del buf[: trailer_end + 4]
                status, headers, keep = self._head
                return status, headers, b"".join(self._chunks), keep
            if len(buf) < eol + 2 + size + 2:
                return None
            self._chunks.append(bytes(buf[eol + 2 : eol + 2 + size]))
            self._chunk_pos = eol + 2 + size + 2


class Http1Pool:
    """Keep-alive connections to one origin: at most ``max_connections`` at once, idle ones reused
    last-in first-out (the most recently used connection is the least likely to be stale)."""

    def __init__(self, base_url: str, max_connections: int = 64, headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = self.port == (443 if self.ssl else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        # The constant part of every request head is built once.
        fixed = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head_tail = f"Host: {host_header}\r\n{fixed}"
        self.max_connections = max_connections
        self._idle: list[_Http1] = []
        self._sem: asyncio.Semaphore | None = None
        self._busy: dict[_Http1, float] = {}  # connection -> deadline (loop time) of its exchange
        self._period = 1.0
        self._sweeper: asyncio.TimerHandle | None = None

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float | None = None
    ) -> Response:
        """POST ``body``; raises ``asyncio.TimeoutError`` when no answer came within ``timeout`` s."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        head = f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head_tail}{extra}Content-Length: {len(body)}"
        request = head.encode("latin-1") + b"\r\n\r\n" + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_connections)
        if deadline is not None and self._sem.locked():  # every connection busy: wait, within the deadline
            await within(self._sem.acquire(), deadline - loop.time())
        else:
            await self._sem.acquire()
        try:
            for _ in range(2):
                conn = self._take()
                reused = conn is not None
                if conn is None:
                    opening = self._open()
                    conn = await (opening if deadline is None else within(opening, deadline - loop.time()))
                if deadline is not None:
                    self._watch(conn, deadline, timeout or 0.0)
                try:
                    status, resp_headers, data, keep = await conn.exchange(request)
                except StaleConnection:
                    conn.close()
                    if reused:
                        continue  # the server closed an idle connection: once more on a fresh one
                    raise
                except BaseException:
                    conn.close()  # cancelled, timed out or broken mid-exchange: never reuse it
                    raise
                finally:
                    self._busy.pop(conn, None)
                if keep and not conn.closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                return status, resp_headers, data
        finally:
            self._sem.release()
        raise ConnectionError("server closed the connection twice before answering")

    def _watch(self, conn: _Http1, deadline: float, timeout: float) -> None:
        """Deadlines without a timer per request (a timer is a heap push and pop per call): one
        sweep every ``timeout / 8`` s (at most 1 s) expires the exchanges past their deadline."""
        self._busy[conn] = deadline
        self._period = min(self._period, max(0.005, timeout / 8))
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self._period, self._sweep)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for conn, deadline in list(self._busy.items()):
            if now >= deadline:
                self._busy.pop(conn, None)
                conn.expire()
        self._sweeper = (
            asyncio.get_running_loop().call_later(self._period, self._sweep) if self._busy else None
        )

    def _take(self) -> _Http1 | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _open(self) -> _Http1:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Http1, self.host, self.port, ssl=self.ssl)
        return conn

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle.pop().close()


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``...) names for a
    base URL, or None; resolved once, not per request."""
    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxy


class AiohttpPool:
    """The same ``post`` on an aiohttp session: one per origin, sized like the native pool."""

    def __init__(self, base_url: str, max_connections: int = 64, headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.proxy = env_proxy(base_url)
        self.max_connections = max_connections
        self._headers = dict(headers or {})
        self._session: Any = None  # created inside the running loop

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float | None = None
    ) -> Response:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=None),  # the caller owns the deadline
                trust_env=False,  # proxy resolved once in __init__; trust_env costs a thread hop a call
            )
        request = self._request(path, body, headers)
        try:
            return await (within(request, timeout) if timeout else request)
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def _request(self, path: str, body: bytes, headers: dict[str, str] | None) -> Response:
        async with self._session.post(
            self.base_url + path, data=body, headers=headers, proxy=self.proxy
        ) as resp:
            content = await resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, content

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
