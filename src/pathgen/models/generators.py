"""Text generators (VLMs) behind one async interface, named by one spec string.

An agent builds OpenAI-style chat messages whose image parts hold an :class:`ImagePart`; the
generator owns the rest (JPEG data URLs for HTTP servers, the processor and chat template for local
transformers models), so agents never hard-code a model's preprocessing.

Specs:

- ``tiny``: the tiny random LLaVA of :mod:`pathgen.models.tiny_vlm`, local, offline (``offline_demo``);
- ``hf:<id or local dir>`` or a bare local directory: a transformers image-text-to-text model;
- any other name together with one or more base URLs: an OpenAI-compatible chat-completions server
  (vLLM, SGLang, TGI, llama.cpp, Ollama, OpenAI); ``openai:<name>`` is accepted as an explicit form.

Failures are typed: :class:`TransientError` (429, 5xx, timeouts, connection errors, garbled
answers) is retried by the engine; :class:`PermanentError` (400, 401, 404, ...) is not.
"""

from __future__ import annotations

import asyncio
import base64
import io
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pathgen.config import CaptionConfig, default_of


@dataclass
class GenerationParams:
    """Sampling parameters of one call; ``extra_body`` is merged into the request as is.

    ``json_schema``: the answer must be JSON matching this schema (its ``title`` names it). Servers
    that support structured output are asked to enforce it; the prompt asks for it in any case.

    The defaults are the caption config's (:class:`pathgen.config.CaptionConfig`), read from there.
    """

    temperature: float = default_of(CaptionConfig, "temperature")
    top_p: float = default_of(CaptionConfig, "top_p")
    max_tokens: int = default_of(CaptionConfig, "max_tokens")
    seed: int | None = default_of(CaptionConfig, "seed")
    extra_body: dict[str, Any] = field(default_factory=dict)
    json_schema: dict[str, Any] | None = None


@dataclass
class GenerationResult:
    text: str
    tokens_in: int
    tokens_out: int
    latency: float
    model: str
    finish_reason: str = "stop"


class GenerationError(Exception):
    """A failed model call; ``retryable`` tells the engine whether trying again can help."""

    retryable = False

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientError(GenerationError):
    retryable = True


class PermanentError(GenerationError):
    retryable = False


class ImagePart:
    """A patch image with memoised encodings: describe and revise send the same JPEG, encoded once.

    Encoding is CPU work (a few ms for 672 px); :meth:`data_url` can be called in a worker thread
    before the request so the event loop only pastes the cached string.
    """

    __slots__ = ("_cache", "_lock", "image")

    def __init__(self, image: Any):
        self.image = image
        self._cache: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()

    def data_url(self, size: int, quality: int = 90) -> str:
        key = (size, quality)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        with self._lock:
            if key not in self._cache:
                img = self.image.convert("RGB")
                if img.size != (size, size):
                    img = img.resize((size, size))
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=quality)
                b64 = base64.b64encode(buf.getvalue()).decode("ascii")
                self._cache[key] = f"data:image/jpeg;base64,{b64}"
            return self._cache[key]


def replace_images(
    messages: list[dict[str, Any]], replace: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The chat messages with each ``{"type": "image", "image": ...}`` part swapped for
    ``replace(image)``: every backend speaks the same messages and differs only in how an image
    travels (a data URL for HTTP servers, a processor placeholder for local models)."""
    out = []
    for msg in messages:
        content = msg["content"]
        if isinstance(content, list):
            content = [replace(part["image"]) if part.get("type") == "image" else part for part in content]
        out.append({"role": msg["role"], "content": content})
    return out


@runtime_checkable
class Generator(Protocol):
    """What agents and the engine need from a model."""

    name: str  # the model's identity in the journal (never a URL or a key)
    offline_demo: bool  # True for random test models whose output is gibberish

    async def generate(
        self, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...


async def within(awaitable: Awaitable[Any], seconds: float) -> Any:
    """``await`` with a deadline; raises ``asyncio.TimeoutError``.

    On Python >= 3.11 this is ``asyncio.timeout`` (no extra task per call, which matters at
    thousands of calls a second); older versions fall back to ``asyncio.wait_for``.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def count_text_tokens(text: str) -> int:
    """A cheap model-agnostic token estimate (~4 characters a token) for dry-run cost estimates."""
    return max(1, len(text) // 4)


GENERATOR_FORMS = (
    "'tiny' (offline random VLM)",
    "'hf:<hub id or local dir>' (local transformers)",
    "a local model directory",
    "'<served model name>' or 'openai:<name>' together with --base-url",
)


def load_generator(
    spec: str,
    *,
    base_url: str | list[str] | None = None,
    api_key_env: str | None = None,
    image_size: int = default_of(CaptionConfig, "image_size"),
    concurrency: int = default_of(CaptionConfig, "concurrency"),
    timeout_s: float = default_of(CaptionConfig, "timeout_s"),
    device: str | None = None,
    batch_size: int = 8,
    transport: str = "auto",
    structured_output: str = "auto",
) -> Generator:
    """Build the generator a spec names; bad specs fail at once with the forms that exist."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty generator spec; valid forms: {', '.join(GENERATOR_FORMS)}")
    spec = spec.strip()
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    if spec == "tiny" and not urls:
        from pathgen.models.gen_hf import HFGenerator

        return HFGenerator.tiny(batch_size=batch_size)
    if spec.startswith("hf:") or (not urls and Path(spec).expanduser().is_dir()):
        from pathgen.models.gen_hf import HFGenerator

        source = spec[3:] if spec.startswith("hf:") else spec
        return HFGenerator.from_pretrained(source, device=device, batch_size=batch_size)
    if urls:
        from pathgen.models.gen_openai import OpenAIGenerator

        name = spec[len("openai:") :] if spec.startswith("openai:") else spec
        return OpenAIGenerator(
            name,
            urls,
            api_key_env=api_key_env,
            image_size=image_size,
            concurrency=concurrency,
            timeout_s=timeout_s,
            transport=transport,
            structured_output=structured_output,
        )
    raise ValueError(
        f"cannot resolve generator {spec!r}: it is not 'tiny', not 'hf:...', not a local directory, "
        f"and no base URL was given. Valid forms: {', '.join(GENERATOR_FORMS)}"
    )
