"""The lean HTTP/1.1 client: chunked answers, Connection: close, stale keep-alive connections."""

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


async def _serve(mode: str, seen: list[int]):
    """A raw server: 'chunked' answers in two chunks and keeps the connection; 'close' answers
    once with Connection: close; both record how many connections were opened."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                        b":"
                    )[1]
                )
                await reader.readexactly(length)
                if mode == "chunked":
                    half = len(ANSWER) // 2
                    body = b"".join(
                        f"{len(part):x}\r\n".encode() + part + b"\r\n"
                        for part in (ANSWER[:half], ANSWER[half:])
                    )
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                        + ANSWER
                    )
                    await writer.drain()
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(("mode", "connections"), [("chunked", 1), ("close", 3)])
def test_chunked_and_connection_close(mode, connections):
    seen: list[int] = []

    async def run():
        server = await _serve(mode, seen)
        port = server.sockets[0].getsockname()[1]
        gen = OpenAIGenerator("m", [f"http://127.0.0.1:{port}/v1"], transport="native", concurrency=1)
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
            await asyncio.sleep(0.05)
            second = await pool.post("/x", b"{}", {})
        finally:
            pool.close()
            server.close()
        return first, second, len(opened)

    first, second, opened = asyncio.run(run())
    assert first[0] == second[0] == 200 and second[2] == b"ok" and opened == 2
