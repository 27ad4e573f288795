"""Local transformers VLMs (``AutoModelForImageTextToText`` + ``AutoProcessor``) behind the async API.

Calls from many concurrent agents are queued and grouped into batches (same sampling parameters,
same image/no-image shape) that one worker thread runs through ``model.generate``, so the event
loop keeps scheduling while the model computes, and the model sees batches instead of single calls.
The processor's own chat template formats the prompt: the generator owns its preprocessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pathgen.models.generators import (
    GenerationParams,
    GenerationResult,
    ImagePart,
    PermanentError,
    replace_images,
)

Request = tuple[list[dict[str, Any]], GenerationParams, "asyncio.Future[GenerationResult]"]


class HFGenerator:
    """A transformers image-text-to-text model run locally, with request batching."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str,
        *,
        offline_demo: bool = False,
        batch_size: int = 8,
        max_new_tokens_cap: int | None = None,
    ):
        self.model = model
        self.processor = processor
        self.name = name
        self.offline_demo = offline_demo
        self.batch_size = max(1, batch_size)
        self.max_new_tokens_cap = max_new_tokens_cap
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pathgen-hf")
        self._queue: asyncio.Queue[Request] | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def tiny(cls, batch_size: int = 8) -> HFGenerator:
        """The offline demo model; its answers are capped at 48 new tokens (they are gibberish anyway)."""
        from pathgen.models.tiny_vlm import tiny_vlm

        model, processor = tiny_vlm()
        return cls(model, processor, "tiny", offline_demo=True, batch_size=batch_size, max_new_tokens_cap=48)

    @classmethod
    def from_pretrained(cls, source: str, device: str | None = None, batch_size: int = 8) -> HFGenerator:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(source)
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype).to(device).eval()
        except OSError as exc:
            raise FileNotFoundError(f"cannot load a transformers VLM from {source!r}: {exc}") from exc
        if getattr(processor, "tokenizer", None) is not None:
            processor.tokenizer.padding_side = "left"
        return cls(model, processor, f"hf:{source}", batch_size=batch_size)

    # -- async API -----------------------------------------------------------------------------
    async def generate(
        self, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> GenerationResult:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._batcher())
        future: asyncio.Future[GenerationResult] = loop.create_future()
        await self._queue.put((messages, params, future))
        return await future

    async def _batcher(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let concurrent callers enqueue before the batch closes
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            groups: dict[Any, list[Request]] = {}
            for req in batch:
                groups.setdefault(_group_key(req), []).append(req)
            for reqs in groups.values():
                live = [r for r in reqs if not r[2].done()]
                if not live:
                    continue
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._generate_batch, [r[0] for r in live], live[0][1]
                    )
                except Exception as exc:
                    for r in live:
                        if not r[2].done():
                            r[2].set_exception(PermanentError(f"local generation failed: {exc!r}"))
                    continue
                for r, res in zip(live, results, strict=True):
                    if not r[2].done():
                        r[2].set_result(res)

    # -- model work (worker thread) --------------------------------------------------------------
    def _generate_batch(
        self, batch: list[list[dict[str, Any]]], params: GenerationParams
    ) -> list[GenerationResult]:
        if self.offline_demo and len(batch) > 1:
            # One request at a time: seeded sampling then depends on the request alone, not on which
            # requests happened to share a batch, so a demo run (local or on Ray) is reproducible.
            # Real models keep batching for speed; their sampled output depends on the batch.
            return [res for messages in batch for res in self._generate_rows([messages], params)]
        return self._generate_rows(batch, params)

    def _generate_rows(
        self, batch: list[list[dict[str, Any]]], params: GenerationParams
    ) -> list[GenerationResult]:
        import torch

        start = time.perf_counter()
        images: list[Any] = []  # in prompt order, as the processor pairs them with placeholders

        def placeholder(img: Any) -> dict[str, Any]:
            images.append(img.image if isinstance(img, ImagePart) else img)
            return {"type": "image"}

        conversations = [replace_images(messages, placeholder) for messages in batch]
        texts = [
            self.processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = [im.convert("RGB") for im in images]
        inputs = self.processor(**kwargs).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        max_new = params.max_tokens
        if self.max_new_tokens_cap:
            max_new = min(max_new, self.max_new_tokens_cap)
        gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new}
        if self.offline_demo:
            gen_kwargs["min_new_tokens"] = max(1, max_new // 2)  # a random model must not answer nothing
        if params.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            gen_kwargs["do_sample"] = False
        if params.seed is not None:
            seed = params.seed
            if len(texts) == 1:  # each request its own stream (its text and its pixels), stable anywhere
                digest = hashlib.sha256(texts[0].encode())
                for im in images:
                    digest.update(im.tobytes())
                seed += int.from_bytes(digest.digest()[:4], "little")
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = out[:, prompt_len:]
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        latency = time.perf_counter() - start
        results = []
        for i, text in enumerate(decoded):
            row = new_tokens[i].tolist()
            n_out = sum(1 for t in row if t != pad_id)
            finish = "stop" if eos_id in row else "length"
            results.append(
                GenerationResult(
                    # A byte-level tokenizer may stop inside a multi-byte character; its U+FFFD
                    # replacement marks carry nothing and would reach the dataset.
                    text=text.replace("\ufffd", "").strip(),
                    tokens_in=int(inputs["attention_mask"][i].sum()),
                    tokens_out=n_out,
                    latency=latency,
                    model=self.name,
                    finish_reason=finish,
                )
            )
        return results

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._executor.shutdown(wait=False)


def _group_key(req: Request) -> Any:
    messages, params, _ = req
    has_image = any(
        isinstance(m["content"], list) and any(p.get("type") == "image" for p in m["content"])
        for m in messages
    )
    return (has_image, params.temperature, params.top_p, params.max_tokens, params.seed)
