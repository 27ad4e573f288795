"""A real, local OpenAI-compatible chat-completions server with simulated latency and injected faults.

Tests and the captioning benchmark talk to it over real TCP exactly as they would to vLLM: it is a
small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies), so it holds thousands of open
connections on one thread. It answers like a describe, revise or summarize agent would (it tells
them apart by their system prompts), after a latency drawn from ``latency``, with at most
``concurrency`` answers being "computed" at once (the rest queue, as on a GPU server).

Faults are deterministic: ``faults[agent]`` is a list applied to the 1st, 2nd, ... time one request
(its ``X-Request-Id``) is seen; ``fault_fraction`` limits them to that share of requests. Names:
``429`` (with Retry-After), ``500``, ``slow`` (answers after ``slow_s``), ``malformed`` (bad JSON
body), ``drop`` (closes the connection), ``truncated`` (finish_reason=length, text cut), ``refusal``,
``loop`` (a repetition loop), ``french`` (wrong language), ``empty``, ``invalid_json`` (revise answers
prose), ``long`` (summarize answers a far too long caption), ``echo_auth`` (a 401 whose body echoes
the request's headers, Authorization included, as careless servers and proxies do).
Each log entry keeps the request's Authorization header (``auth``), so a test can check what was sent.
The instruct agents' requests (``mcq``, ``conversation``) get grounded JSON items from
:mod:`pathgen.instruct.fakeanswers`, whose faults plant bad items (``dup_options``, ``leak``, ...);
its ``judge`` requests (``support: judge``) get a verdict decided by term overlap (faults
``unsupported``: a planted "not supported"; ``invalid_json``: prose instead of the verdict).

Structured output, like a real model: a revise request without ``response_format`` is answered with
prose instead of JSON at ``invalid_json_rate`` (deterministic per request id and attempt), so the
client re-asks; with a ``json_schema`` response format the answer is always valid JSON
(``structured_output="honour"``, like vLLM, SGLang, OpenAI), or the request is refused with a 400
naming ``response_format`` (``"reject"``, like a server without it).

Run it alone: ``python -m pathgen.engine.fakeserver --port 8000 --latency 0.5 2 --concurrency 64``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DESCRIPTION = (
    "The image shows a densely cellular tissue fragment stained with hematoxylin and eosin. Tumour cells "
    "are arranged in solid nests and irregular trabeculae separated by thin fibrovascular septa. The "
    "nuclei are enlarged, pleomorphic and hyperchromatic with coarse chromatin and conspicuous nucleoli, "
    "and several mitotic figures are present. The cytoplasm is moderately abundant and eosinophilic. "
    "Scattered lymphocytes infiltrate the stroma, and a small focus of necrosis is seen at the edge."
)
REVISED = DESCRIPTION.replace("a small focus of necrosis is seen", "no necrosis is seen")
CAPTION = (
    "H&E-stained tissue with solid nests and trabeculae of pleomorphic tumour cells with enlarged "
    "hyperchromatic nuclei, prominent nucleoli and mitoses, eosinophilic cytoplasm, thin fibrovascular "
    "septa and scattered stromal lymphocytes, consistent with carcinoma."
)
LONG_CAPTION = DESCRIPTION + " " + CAPTION
REFUSAL = "I'm sorry, but I can't help with analysing this medical image."
LOOP = "The cells are atypical. " * 40
FRENCH = (
    "L'image montre un tissu dense avec des cellules tumorales pléomorphes et des noyaux hyperchromatiques "
    "dans un stroma fibreux, avec des lymphocytes et une nécrose focale."
)


@dataclass
class ServerConfig:
    latency: tuple[float, float] = (0.0, 0.0)
    concurrency: int = 1_000_000
    faults: dict[str, list[str]] = field(default_factory=dict)
    fault_fraction: float = 1.0
    retry_after: float = 0.1
    slow_s: float = 5.0
    seed: int = 0
    structured_output: str = "honour"  # honour | reject
    invalid_json_rate: float = 0.2  # prompt-only revise answers that are prose, not JSON

    def __post_init__(self) -> None:
        if self.structured_output not in ("honour", "reject"):
            raise ValueError(
                f"structured_output must be 'honour' or 'reject', got {self.structured_output!r}"
            )
        if not 0.0 <= self.invalid_json_rate <= 1.0:
            raise ValueError(f"invalid_json_rate must be in [0, 1], got {self.invalid_json_rate}")


def agent_of(payload: dict[str, Any]) -> str:
    """Which agent sent a request, from its system prompt (see the agents' prompt files)."""
    system = ""
    for msg in payload.get("messages", []):
        if msg.get("role") == "system" and isinstance(msg.get("content"), str):
            system += msg["content"]
    if '"supported"' in system:  # the instruct judge (support: judge), answered by instruct.fakeanswers
        return "judge"
    if '"medical_statements"' in system:
        return "clean"  # pathgen video's transcript cleaning
    if '"options"' in system:  # the instruct agents (pathgen.instruct), answered by instruct.fakeanswers
        return "mcq"
    if '"turns"' in system:
        return "conversation"
    if '"edits"' in system:
        return "revise"
    if "caption" in system.lower():
        return "summarize"
    return "describe"


def clean_answer(payload: dict[str, Any]) -> str:
    """A transcript-cleaning answer (``pathgen video``): the chunk's own sentences, as JSON.

    Deterministic and derived from the request, like a model that changes nothing: the corrected
    text is the chunk, every sentence is a medical statement, those pointing at the screen ("here",
    "this") are ROI statements, and words of six letters or more are proposed as keywords (the
    client keeps only vocabulary terms).
    """
    user = next((m.get("content") for m in payload.get("messages", []) if m.get("role") == "user"), "")
    text = str(user).split('"""')[1].strip() if '"""' in str(user) else str(user).strip()
    sentences = [s.strip() for s in text.replace("!", ".").replace("?", ".").split(".") if s.strip()]
    sentences = [s + "." for s in sentences]
    roi = [s for s in sentences if any(w in s.lower().split() for w in ("here", "this", "these"))]
    words = sorted({w.strip(".,;:").lower() for w in text.split() if len(w.strip(".,;:")) >= 6})
    answer = {
        "corrected_text": text,
        "medical_statements": sentences,
        "roi_statements": roi,
        "keywords": words,
    }
    return json.dumps(answer)


class FakeServer:
    """Start with :meth:`start` (in a background thread) or :meth:`serve` (in the current loop)."""

    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ServerConfig()
        self.host, self.port = host, port
        self.log: list[dict[str, Any]] = []  # one entry per answered request
        self.seen: Counter[str] = Counter()  # request id -> times seen
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_sum = 0.0  # simulated compute time handed out (for the benchmark's ideal)
        self._rng = random.Random(self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sem: asyncio.Semaphore | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------------------------
    async def serve(self) -> None:
        self._sem = asyncio.Semaphore(self.config.concurrency)
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> FakeServer:
        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                asyncio.run(self.serve())

        self._thread = threading.Thread(target=run, name="pathgen-fakeserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)  # ends serve_forever, then asyncio.run
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def completed(self, agent: str | None = None) -> list[str]:
        """Request ids answered with a 200 and a usable body, optionally for one agent."""
        return [e["request_id"] for e in self.log if e["ok"] and (agent is None or e["agent"] == agent)]

    # -- HTTP ----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._respond(method, path, headers, body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:  # server shutting down: end quietly
            pass
        finally:
            writer.close()

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "GET" and path.rstrip("/") == "/stats":
            ok = [e for e in self.log if e["ok"]]
            stats = {
                "requests": len(self.log),
                "ok": len(ok),
                "max_in_flight": self.max_in_flight,
                "delay_sum": self.delay_sum,
                "structured": sum(1 for e in self.log if e.get("structured")),
                "schema_rejected": sum(1 for e in self.log if e["fault"] == "schema_rejected"),
                "ok_ids": [e["request_id"] for e in ok] if "ids" in headers.get("x-stats", "") else None,
            }
            return await self._send(writer, 200, stats)
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return await self._send(
                writer, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
            )
        if method != "POST" or path.rstrip("/") != "/v1/chat/completions":
            return await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            payload = json.loads(body)
        except ValueError:
            return await self._send(writer, 400, {"error": {"message": "request body is not JSON"}})
        agent = agent_of(payload)
        rid = headers.get("x-request-id") or hashlib.sha1(body).hexdigest()
        fmt = payload.get("response_format")
        structured = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
        if fmt is not None and (
            self.config.structured_output == "reject"
            or not structured
            or not isinstance((fmt.get("json_schema") or {}).get("schema"), dict)
        ):
            entry = {"request_id": rid, "agent": agent, "fault": "schema_rejected", "ok": False}
            self.log.append({**entry, "structured": structured, "t": time.time()})
            message = "response_format (json_schema) is not supported by this server"
            return await self._send(writer, 400, {"error": {"message": message, "param": "response_format"}})
        nth = self.seen[rid]
        self.seen[rid] += 1
        fault = self._fault(agent, rid, nth)
        if fault is None and agent == "revise" and not structured and self._prose(rid, nth):
            fault = "invalid_json"  # what a model without constrained decoding does now and then
        entry = {
            "request_id": rid,
            "agent": agent,
            "fault": fault,
            "ok": False,
            "structured": structured,
            "t": time.time(),
            "auth": headers.get("authorization"),
        }
        if fault == "429":
            self.log.append(entry)
            extra = {"Retry-After": f"{self.config.retry_after:g}"}
            return await self._send(writer, 429, {"error": {"message": "rate limited"}}, extra)
        if fault == "500":
            self.log.append(entry)
            return await self._send(writer, 500, {"error": {"message": "internal error"}})
        if fault == "echo_auth":
            self.log.append(entry)
            echoed = {"authorization": headers.get("authorization"), **headers}  # first: within any cut
            error = {"message": "invalid credentials", "request_headers": echoed}
            return await self._send(writer, 401, {"error": error})
        if fault == "drop":
            self.log.append(entry)
            return False
        assert self._sem is not None
        async with self._sem:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                lo, hi = self.config.latency
                delay = (
                    self.config.slow_s if fault == "slow" else (self._rng.uniform(lo, hi) if hi > 0 else 0)
                )
                if delay:
                    self.delay_sum += delay
                    await asyncio.sleep(delay)
            finally:
                self.in_flight -= 1
        if fault == "malformed":
            self.log.append(entry)
            return await self._send_raw(writer, 200, b'{"choices": [{"message": {"content": "trunc')
        if agent in ("mcq", "conversation", "judge"):
            from pathgen.instruct.fakeanswers import answer

            text, finish = answer(agent, payload, fault), "stop"
        else:
            text, finish = self._answer(agent, fault)
        if agent == "clean" and fault is None:
            text = clean_answer(payload)
        entry["ok"] = True
        self.log.append(entry)
        response = {
            "id": f"chatcmpl-{rid[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": len(body) // 4,
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": len(body) // 4 + max(1, len(text) // 4),
            },
        }
        return await self._send(writer, 200, response)

    def _fault(self, agent: str, rid: str, nth: int) -> str | None:
        plan = self.config.faults.get(agent) or self.config.faults.get("*") or []
        if nth >= len(plan):
            return None
        if self.config.fault_fraction < 1.0:
            h = int(hashlib.sha1(rid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if h >= self.config.fault_fraction:
                return None
        return plan[nth]

    def _prose(self, rid: str, nth: int) -> bool:
        """Whether this prompt-only revise attempt answers prose (deterministic, ~invalid_json_rate)."""
        if self.config.invalid_json_rate <= 0:
            return False
        h = hashlib.sha1(f"{self.config.seed}:{rid}:{nth}".encode()).digest()
        return int.from_bytes(h[:4], "big") / 0xFFFFFFFF < self.config.invalid_json_rate

    @staticmethod
    def _answer(agent: str, fault: str | None) -> tuple[str, str]:
        special = {"refusal": REFUSAL, "loop": LOOP, "french": FRENCH, "empty": ""}
        if fault in special:
            return special[fault], "stop"
        if agent == "describe":
            text = DESCRIPTION
        elif agent == "revise":
            if fault == "invalid_json":
                return "The description looks right to me; I would change the necrosis sentence.", "stop"
            edits = [
                {
                    "type": "modify",
                    "before": "a small focus of necrosis is seen",
                    "after": "no necrosis is seen",
                }
            ]
            text = json.dumps({"edits": edits, "revised": REVISED})
        else:
            text = LONG_CAPTION if fault == "long" else CAPTION
        if fault == "truncated":
            return text[: len(text) // 3], "length"
        return text, "stop"

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, obj: Any, extra: dict[str, str] | None = None
    ) -> bool:
        return await self._send_raw(writer, status, json.dumps(obj).encode(), extra)

    @staticmethod
    async def _send_raw(
        writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str] | None = None
    ) -> bool:
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            429: "Too Many Requests",
        }.get(status, "Error")
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--faults", default="{}", help='JSON, e.g. {"describe": ["429"]}')
    parser.add_argument("--fault-fraction", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structured-output", choices=["honour", "reject"], default="honour")
    parser.add_argument("--invalid-json-rate", type=float, default=0.2)
    args = parser.parse_args(argv)
    config = ServerConfig(
        latency=tuple(args.latency),
        concurrency=args.concurrency,
        faults=json.loads(args.faults),
        fault_fraction=args.fault_fraction,
        seed=args.seed,
        structured_output=args.structured_output,
        invalid_json_rate=args.invalid_json_rate,
    )
    server = FakeServer(config, args.host, args.port)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server._ready.is_set():
            await asyncio.sleep(0.01)
        print(f"listening {server.base_url}", flush=True)
        await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
