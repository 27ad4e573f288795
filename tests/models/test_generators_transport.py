"""The HTTP transports (native pool and aiohttp) against raw local servers: framings, keep-alive,
stale connections, proxies."""

from __future__ import annotations

import asyncio
import json

import pytest

from pathgen.models.gen_openai import OpenAIGenerator
from pathgen.models.gen_transport import Http1Pool
from pathgen.models.generators import GenerationParams

ANSWER = json.dumps(
    {"choices": [{"message": {"content": "chunked caption"}, "finish_reason": "stop"}]}
).encode()
HALF = len(ANSWER) // 2
CHUNKED = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (ANSWER[:HALF], ANSWER[HALF:]))
# mode -> (response bytes, whether the server keeps the connection open afterwards)
RESPONSES = {
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED + b"0\r\n\r\n", True),
    "chunked_trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED + b"0\r\nX-T: 1\r\n\r\n",
        True,
    ),
    "interim": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
        True,
    ),
    "close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
        False,
    ),
    "until_close": (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + ANSWER, False),
}


async def _serve(mode: str, seen: list[bytes]):
    """A raw server answering every request with RESPONSES[mode] (split in two writes, so the
    client sees a response arrive in pieces); ``seen`` gets each connection's first request line."""
    response, keep = RESPONSES[mode]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if first:
                    seen.append(head.split(b"\r\n", 1)[0])
                    first = False
                length = next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                await reader.readexactly(int(length.split(b":")[1]))
                writer.write(response[:40])
                await writer.drain()
                await asyncio.sleep(0.005)
                writer.write(response[40:])
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("transport", ["native", "aiohttp"])
@pytest.mark.parametrize(
    ("mode", "connections"),
    [("chunked", 1), ("chunked_trailer", 1), ("interim", 1), ("close", 3), ("until_close", 3)],
)
def test_framings_and_keep_alive(mode, connections, transport):
    seen: list[bytes] = []

    async def run():
        server = await _serve(mode, seen)
        port = server.sockets[0].getsockname()[1]
        gen = OpenAIGenerator("m", [f"http://127.0.0.1:{port}/v1"], transport=transport, concurrency=1)
        try:
            return [
                await gen.generate([{"role": "user", "content": "hi"}], GenerationParams()) for _ in range(3)
            ]
        finally:
            await gen.aclose()
            server.close()

    results = asyncio.run(run())
    assert [r.text for r in results] == ["chunked caption"] * 3
    assert len(seen) == connections  # keep-alive reuses one connection; `close` opens one per call


def test_stale_pooled_connection_is_replaced_transparently():
    async def run():
        opened: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            opened.append(1)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()  # keep-alive promised, then closed: the next request finds it stale

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = Http1Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", max_connections=1)
        try:
            first = await pool.post("/x", b"{}", {})
            second = await pool.post("/x", b"{}", {})  # at once: the close may not be seen yet
            await asyncio.sleep(0.05)
            third = await pool.post("/x", b"{}", {})
        finally:
            await pool.aclose()
            server.close()
        return first, second, third, len(opened)

    first, second, third, opened = asyncio.run(run())
    assert first[0] == second[0] == third[0] == 200 and third[2] == b"ok" and opened == 3


def test_deadlines_cover_the_exchange_and_the_wait_for_a_connection():
    """A server that never answers: the exchange times out near its deadline, a second request
    waiting for the pool's only connection times out too, and the connection is not reused."""
    import time

    async def run():
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answers

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = Http1Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", max_connections=1)
        start = time.perf_counter()
        try:
            results = await asyncio.gather(
                pool.post("/x", b"{}", None, 0.2), pool.post("/x", b"{}", None, 0.3), return_exceptions=True
            )
        finally:
            await pool.aclose()
            server.close()
        return results, time.perf_counter() - start, len(pool._idle), pool._busy

    results, elapsed, idle, busy = asyncio.run(run())
    assert all(isinstance(r, asyncio.TimeoutError) for r in results)
    assert 0.2 <= elapsed < 1.0 and idle == 0 and not busy


def test_a_proxy_in_the_environment_is_honoured(monkeypatch):
    """With HTTP_PROXY set, `auto` picks aiohttp and every request goes through the proxy (here a
    raw server that answers itself and records the absolute-form request line)."""
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    seen: list[bytes] = []

    async def run():
        proxy = await _serve("chunked", seen)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
        monkeypatch.delenv("http_proxy", raising=False)
        gen = OpenAIGenerator("m", ["http://model.invalid:8000/v1"])
        try:
            result = await gen.generate([{"role": "user", "content": "hi"}], GenerationParams())
        finally:
            await gen.aclose()
            proxy.close()
        return gen.transport, result.text

    transport, text = asyncio.run(run())
    assert transport == "aiohttp" and text == "chunked caption"
    assert seen == [b"POST http://model.invalid:8000/v1/chat/completions HTTP/1.1"]


def test_unknown_transport_and_structured_output_modes_are_rejected():
    with pytest.raises(ValueError, match="transport"):
        OpenAIGenerator("m", ["http://127.0.0.1:9/v1"], transport="httpx")
    with pytest.raises(ValueError, match="structured_output"):
        OpenAIGenerator("m", ["http://127.0.0.1:9/v1"], structured_output="yes")
