"""A lean HTTP/1.1 keep-alive client on asyncio streams, for the hot path of model calls.

Why not only httpx: measured on this project's benchmark, httpx + anyio spend 2-4 ms of CPU per
request at 64 concurrent calls (its pool is scanned on every request), more than the whole
per-call budget (1 ms) of a client that must keep thousands of GPU slots busy from one core. A
chat-completions call is one POST with a Content-Length body and one JSON answer; this client does
exactly that (plus chunked answers, TLS, and one transparent retry when a pooled keep-alive
connection turns out to be closed by the server) in ~0.1 ms. httpx remains available
(``transport="httpx"``) and is used automatically when a proxy is configured in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

Response = tuple[int, dict[str, str], bytes]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class StaleConnection(Exception):
    """A pooled connection closed by the server before it answered (safe to retry once)."""


class Http1Pool:
    """Connections to one origin: at most ``max_connections`` at once, idle ones reused (LIFO)."""

    def __init__(self, base_url: str, max_connections: int = 64):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = self.port == (443 if self.ssl else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.max_connections = max_connections
        self._idle: list[Conn] = []
        self._sem: asyncio.Semaphore | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_connections)
        head = [
            f"POST {self.prefix}{path} HTTP/1.1",
            f"Host: {self.host_header}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._sem:
            for _ in range(2):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._open()
                try:
                    status, resp_headers, data, keep = await _exchange(conn, request, reused)
                except StaleConnection:
                    _close(conn)
                    continue  # the server closed an idle connection: once more on a fresh one
                except BaseException:
                    _close(conn)  # cancelled or broken mid-exchange: never reuse it
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    _close(conn)
                return status, resp_headers, data
        raise ConnectionError("server closed the connection twice before answering")

    async def _open(self) -> Conn:
        return await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 22)

    def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())


async def _exchange(conn: Conn, request: bytes, reused: bool) -> tuple[int, dict[str, str], bytes, bool]:
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if reused and not exc.partial:
            raise StaleConnection from exc
        raise ConnectionError("connection closed before the response headers") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ConnectionError(f"bad status line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
        keep = True
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        keep = True
    else:  # body until close
        body = await reader.read()
        keep = False
    if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
        keep = False
    return status, headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _close(conn: Conn) -> None:
    with contextlib.suppress(Exception):
        conn[1].close()
