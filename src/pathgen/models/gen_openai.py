"""OpenAI-compatible chat completions over pooled keep-alive HTTP/1.1 connections.

Why not the ``openai`` SDK: the engine owns retries, backoff and timeouts (the SDK would retry
underneath it and hide 429s), it needs connection pools sized to its concurrency shared by all
calls, and it must spend well under a millisecond of CPU per call at hundreds of calls a second; a
bare POST with a pre-encoded body is the leanest path. The default transport is the small asyncio
HTTP/1.1 client of :mod:`gen_transport` (see there for the measured reason); ``httpx`` is the
alternative, chosen automatically when a proxy is set. Several base URLs are used round-robin.
The API key is read from the environment variable the config names, at construction time, and is
only ever placed in the Authorization header.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from pathgen.models.gen_transport import Http1Pool
from pathgen.models.generators import (
    GenerationParams,
    GenerationResult,
    ImagePart,
    PermanentError,
    TransientError,
    replace_images,
    within,
)
from pathgen.redact import url_auth_header

if TYPE_CHECKING:
    import httpx

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SHARD = 16  # connections per httpx client


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
    ):
        if not base_urls:
            raise ValueError("an OpenAI-compatible generator needs at least one base URL")
        for url in base_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
        self.name = model
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        headers = {"Content-Type": "application/json", **url_auth_header(base_urls)}  # user:pass@ -> Basic
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"environment variable {api_key_env!r} (the API key) is not set or empty")
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers
        self._mark = f"\x00pathgen-image-{secrets.token_hex(8)}-"  # see encode_body
        self.timeout_s = timeout_s
        if transport == "auto":
            proxied = any(
                os.environ.get(v) for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
            )
            transport = "httpx" if proxied else "native"
        if transport not in ("native", "httpx"):
            raise ValueError(f"transport must be 'auto', 'native' or 'httpx', got {transport!r}")
        self.transport = transport
        self._pools = [Http1Pool(u, max_connections=concurrency) for u in self.base_urls]
        self._next_pool = itertools.cycle(range(len(self.base_urls)))
        # httpcore scans its whole pool on every request (O(pool) per call, O(n^2) at high
        # concurrency), so its pool is split into shards of <= SHARD connections used round-robin.
        self._clients: list[httpx.AsyncClient] = []
        # httpx is imported only when used (a fifth of a second of CPU in every `pathgen caption`).
        self._timeout_errors: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)
        self._transport_errors: tuple[type[BaseException], ...] = (
            OSError,
            asyncio.IncompleteReadError,
            ValueError,
        )
        if transport == "httpx":
            import httpx

            self._timeout_errors += (httpx.TimeoutException,)
            self._transport_errors += (httpx.TransportError,)
            n_shards = max(1, -(-concurrency // SHARD))
            per_shard = -(-concurrency // n_shards)
            limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
            timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0))
            self._clients = [
                httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) for _ in range(n_shards)
            ]
        self._next_client = itertools.cycle(self._clients)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIGenerator(model={self.name!r}, base_urls={self.base_urls!r})"

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
        payload.update(params.extra_body)
        return payload

    def encode_body(self, messages: list[dict[str, Any]], params: GenerationParams) -> bytes:
        """The JSON request body, byte for byte ``json.dumps(build_payload(...))``.

        Why not dump it whole: the JSON encoder scans every character of a ~30 kB data URL for
        escapes on every call (~0.1 ms, the largest share of a describe or revise call). A data URL
        is base64 and needs no escaping, so each one is dumped as a short placeholder and its
        cached bytes are pasted in its place.
        """
        urls: list[bytes] = []

        def placeholder(image: ImagePart) -> str:
            urls.append(image.data_url_bytes(self.image_size, self.jpeg_quality))
            return f"{self._mark}{len(urls) - 1}\x00"

        body = json.dumps(self.build_payload(messages, params, placeholder), separators=(",", ":")).encode()
        for i, url in enumerate(urls):
            pieces = body.split(json.dumps(f"{self._mark}{i}\x00").encode())
            if len(pieces) != 2:  # the random mark in the prompt text itself: never in practice
                return json.dumps(self.build_payload(messages, params), separators=(",", ":")).encode()
            body = b"".join((pieces[0], b'"', url, b'"', pieces[1]))
        return body

    async def generate(
        self, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> GenerationResult:
        body = self.encode_body(messages, params)
        extra = {"X-Request-Id": request_id} if request_id else {}
        start = time.perf_counter()
        try:
            status, headers, content = await self._post(body, extra)
        except self._timeout_errors as exc:
            raise TransientError(f"timeout after {time.perf_counter() - start:.1f}s") from exc
        except self._transport_errors as exc:
            raise TransientError(f"connection error: {type(exc).__name__}: {exc}") from exc
        latency = time.perf_counter() - start
        if status != 200:
            detail = content[:300].decode("utf-8", "replace")
            retry_after = parse_retry_after(headers.get("retry-after"))
            cls = TransientError if status in RETRY_STATUS else PermanentError
            raise cls(f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
        return self._parse(content, latency)

    async def _post(self, body: bytes, extra: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        i = next(self._next_pool)
        if self.transport == "native":
            post = self._pools[i].post("/chat/completions", body, {**self._headers, **extra})
            return await within(post, self.timeout_s)
        resp = await next(self._next_client).post(
            f"{self.base_urls[i]}/chat/completions", content=body, headers=extra
        )
        return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content

    def _parse(self, content: bytes, latency: float) -> GenerationResult:
        try:
            data = json.loads(content)
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
            pool.close()
        for client in self._clients:
            await client.aclose()
