"""OpenAI-compatible chat completions over pooled keep-alive HTTP connections.

Why not the ``openai`` SDK: the engine owns retries, backoff and timeouts (the SDK would retry
underneath it and hide 429s), it needs connection pools sized to its concurrency shared by all
calls, and it must spend well under a millisecond of CPU per call at hundreds of calls a second; a
bare POST with an orjson-encoded body is the leanest path. The default transport is the small
asyncio HTTP/1.1 pool of :mod:`gen_transport` (see there for the measured reason); aiohttp is the
alternative, chosen automatically when the environment names a proxy for a base URL. Several base
URLs are used round-robin. The API key is read from the environment variable the config names, at
construction time, and is only ever placed in the Authorization header.

Structured output: when a call's parameters carry a JSON schema (the revise agent's), the request
asks for it with ``response_format: {"type": "json_schema", ...}`` (OpenAI, vLLM >= 0.12, SGLang
accept this form), so the server constrains decoding to valid JSON and re-asks for broken JSON
vanish. ``structured_output="auto"`` sends it until a server answers 400/422 naming
``response_format`` or ``json_schema``; that base URL is then remembered as prompt-only and the call
is sent again at once without it. ``"on"`` always sends it (a rejection is an error), ``"off"``
never does (the prompt alone asks for JSON).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from pathgen.models.gen_transport import AiohttpPool, Http1Pool, env_proxy
from pathgen.models.generators import (
    GenerationParams,
    GenerationResult,
    ImagePart,
    PermanentError,
    TransientError,
    replace_images,
)
from pathgen.redact import redact, redact_url, url_auth_header

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
TRANSPORTS = ("auto", "native", "aiohttp")
STRUCTURED_OUTPUT = ("auto", "on", "off")
SCHEMA_REJECTED_STATUS = {400, 422}  # vLLM/OpenAI answer 400 to an unknown field, FastAPI-based 422
SCHEMA_WORDS = (b"response_format", b"json_schema")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for JSON that matches ``schema`` (named by its title)."""
    name = str(schema.get("title") or "answer")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


class OpenAIGenerator:
    """A model served behind one or more OpenAI-compatible ``/v1`` base URLs."""

    offline_demo = False
    enforces_timeout = True  # every request has its own deadline (timeout_s)

    def __init__(
        self,
        model: str,
        base_urls: list[str],
        *,
        api_key_env: str | None = None,
        image_size: int = 672,
        concurrency: int = 64,
        timeout_s: float = 120.0,
        jpeg_quality: int = 90,
        transport: str = "auto",
        structured_output: str = "auto",
    ):
        if not base_urls:
            raise ValueError("an OpenAI-compatible generator needs at least one base URL")
        for url in base_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}; got {transport!r}")
        if structured_output not in STRUCTURED_OUTPUT:
            raise ValueError(
                f"structured_output must be one of {', '.join(STRUCTURED_OUTPUT)}; got {structured_output!r}"
            )
        self.name = model
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        self.timeout_s = timeout_s
        self.structured_output = structured_output
        headers = {"Content-Type": "application/json", **url_auth_header(base_urls)}  # user:pass@ -> Basic
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"environment variable {api_key_env!r} (the API key) is not set or empty")
            headers["Authorization"] = f"Bearer {key}"
        if transport == "auto":
            transport = "aiohttp" if any(env_proxy(u) for u in self.base_urls) else "native"
        self.transport = transport
        pool_cls = Http1Pool if transport == "native" else AiohttpPool
        self._pools = [pool_cls(u, max_connections=concurrency, headers=headers) for u in self.base_urls]
        self._next_pool = itertools.cycle(range(len(self.base_urls)))
        self.schema_rejected: set[str] = set()  # base URLs that refused response_format (auto mode)

    def __repr__(self) -> str:  # never shows the key
        urls = [redact_url(u) for u in self.base_urls]  # credentials in a URL stay in memory only
        return f"OpenAIGenerator(model={self.name!r}, base_urls={urls!r})"

    def to_openai_messages(
        self, messages: list[dict[str, Any]], image_url: Callable[[ImagePart], str] | None = None
    ) -> list[dict[str, Any]]:
        """Replace :class:`ImagePart` content with ``image_url`` data URLs (JPEG at ``image_size``)."""
        url_of = image_url or (lambda image: image.data_url(self.image_size, self.jpeg_quality))

        def part(image: ImagePart) -> dict[str, Any]:
            return {"type": "image_url", "image_url": {"url": url_of(image)}}

        return replace_images(messages, part)

    def build_payload(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        image_url: Callable[[ImagePart], str] | None = None,
        structured: bool = False,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.name,
            "messages": self.to_openai_messages(messages, image_url),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if structured and params.json_schema is not None:
            payload["response_format"] = response_format(params.json_schema)
        payload.update(params.extra_body)
        return payload

    def encode_body(
        self, messages: list[dict[str, Any]], params: GenerationParams, structured: bool = False
    ) -> bytes:
        """The JSON request body. orjson writes a 30 kB data URL in microseconds, where the
        standard encoder scans every character for escapes (~0.1 ms a call)."""
        return orjson.dumps(self.build_payload(messages, params, structured=structured))

    def wants_schema(self, params: GenerationParams, base_url: str) -> bool:
        """Whether this call asks the server for structured output."""
        if params.json_schema is None or self.structured_output == "off":
            return False
        return self.structured_output == "on" or base_url not in self.schema_rejected

    async def generate(
        self, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> GenerationResult:
        i = next(self._next_pool)
        url = self.base_urls[i]
        structured = self.wants_schema(params, url)
        extra = {"X-Request-Id": request_id} if request_id else None
        start = time.perf_counter()
        status, headers, content = await self._post(i, self.encode_body(messages, params, structured), extra)
        if (
            structured
            and self.structured_output == "auto"
            and status in SCHEMA_REJECTED_STATUS
            and any(word in content.lower() for word in SCHEMA_WORDS)
        ):
            # A server without structured output: remember it and ask again with the prompt alone.
            self.schema_rejected.add(url)
            status, headers, content = await self._post(i, self.encode_body(messages, params), extra)
        latency = time.perf_counter() - start
        if status != 200:
            # Redact before cutting: a key cut in half at the limit would escape the key patterns.
            detail = redact(content[:4000].decode("utf-8", "replace"))[:300]
            retry_after = parse_retry_after(headers.get("retry-after"))
            cls = TransientError if status in RETRY_STATUS else PermanentError
            raise cls(f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
        return self._parse(content, latency)

    async def _post(
        self, i: int, body: bytes, extra: dict[str, str] | None
    ) -> tuple[int, dict[str, str], bytes]:
        start = time.perf_counter()
        try:
            return await self._pools[i].post("/chat/completions", body, extra, self.timeout_s)
        except asyncio.TimeoutError as exc:
            raise TransientError(f"timeout after {time.perf_counter() - start:.1f}s") from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise TransientError(f"connection error: {type(exc).__name__}: {exc}") from exc

    def _parse(self, content: bytes, latency: float) -> GenerationResult:
        try:
            data = orjson.loads(content)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content")
            if text is None:
                # OpenAI puts a model refusal in `refusal` with content null: an answer, not an error.
                text = message.get("refusal") or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise TransientError(f"malformed response: {content[:200]!r}") from exc
        return GenerationResult(
            text=str(text),
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            latency=latency,
            model=str(data.get("model") or self.name),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
