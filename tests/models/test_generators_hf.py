"""The local transformers generator on the tiny random LLaVA built in code (real HF code path)."""

from __future__ import annotations

import asyncio
import time

from PIL import Image

from pathgen.models.gen_hf import HFGenerator
from pathgen.models.generators import GenerationParams, ImagePart, load_generator
from pathgen.models.tiny_vlm import build_tiny_vlm


def _messages(i: int, image: bool = True):
    text = {"type": "text", "text": f"Describe tile {i}."}
    content = [{"type": "image", "image": ImagePart(Image.new("RGB", (40, 40), (200, 100 + i, 150)))}, text]
    return [
        {"role": "system", "content": "You describe."},
        {"role": "user", "content": content if image else text["text"]},
    ]


def test_tiny_vlm_builds_fast_with_a_chat_template():
    build_tiny_vlm()  # the first build pays transformers' lazy imports; time a second one
    start = time.perf_counter()
    model, processor = build_tiny_vlm()
    assert time.perf_counter() - start < 3.0
    assert sum(p.numel() for p in model.parameters()) < 500_000
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert "<image>" in prompt and prompt.endswith("ASSISTANT:")


def test_concurrent_calls_are_batched_and_answered():
    gen = load_generator("tiny", batch_size=4)
    assert isinstance(gen, HFGenerator) and gen.offline_demo and gen.name == "tiny"
    batches: list[int] = []
    original = gen._generate_batch

    def spy(batch, params):
        batches.append(len(batch))
        return original(batch, params)

    gen._generate_batch = spy  # count batch sizes; the generation itself is real

    async def run():
        try:
            return await asyncio.gather(
                *(gen.generate(_messages(i, image=i < 4), GenerationParams(max_tokens=12)) for i in range(6))
            )
        finally:
            await gen.aclose()

    results = asyncio.run(run())
    assert len(results) == 6 and all(r.text and r.tokens_out > 0 and r.model == "tiny" for r in results)
    assert max(batches) > 1 and sum(batches) == 6  # grouped, images and text-only apart


def test_loads_a_saved_model_directory_through_auto_classes(tmp_path):
    model, processor = build_tiny_vlm()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    gen = load_generator(f"hf:{tmp_path}", device="cpu")
    assert gen.name == f"hf:{tmp_path}" and not gen.offline_demo

    async def run():
        try:
            return await gen.generate(_messages(0), GenerationParams(max_tokens=6, temperature=0))
        finally:
            await gen.aclose()

    result = asyncio.run(run())
    assert result.tokens_out >= 1 and result.tokens_in > 16
