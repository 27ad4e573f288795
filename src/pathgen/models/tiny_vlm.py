"""A tiny random LLaVA (CLIP vision tower + Llama text model) built in code, for offline runs and tests.

It is the real transformers code path (``LlavaForConditionalGeneration``, ``LlavaProcessor``, a
chat template on the processor, batched ``generate``) at a size that builds in about a second on
a CPU, so the whole captioning chain can run without any download. Its weights are random: it
emits plausible-looking pathology sub-words (its BPE vocabulary is trained on the morphology
prompts shipped with pathgen, so every install gets the same one) in a random order. Generators
built from it are flagged ``offline_demo`` so output checks that would reject gibberish are
relaxed and the rows are flagged instead.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]

# A plain chat template: system/user/assistant turns; an {"type": "image"} content part becomes the
# image token, which the processor expands to one token per vision patch.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | upper }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_FALLBACK_TEXT = (
    "The image shows a section of tissue stained with hematoxylin and eosin. Nuclei are round to oval "
    "with fine chromatin; the stroma is fibrous and eosinophilic; glands and vessels are scattered."
)
_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def _packaged_texts() -> list[str]:
    """The attribute prompts shipped with pathgen (its own text), with a fixed fallback sentence.

    The default corpus: the shared PathGen caption sample, used before, is not on every install, so
    demo captions differed between a developer checkout and a pip install.
    """
    from pathgen.selection.library import bundled_library

    texts = [_FALLBACK_TEXT]
    for project in bundled_library().projects.values():
        texts.append(", ".join(project.prompts) + ".")
    return texts


def _corpus_texts(corpus: Path | None, limit: int = 2000) -> list[str]:
    if corpus is None:
        return _packaged_texts()
    records = json.loads(Path(corpus).read_text(encoding="utf-8"))
    return [r["caption"] for r in records[:limit] if isinstance(r, dict) and r.get("caption")]


def train_bpe(texts: list[str], vocab_size: int, byte_complete: bool = False) -> Any:
    """A byte-level BPE (``tokenizers``) with pathgen's special tokens, trained in-process on ``texts``.

    ``byte_complete`` seeds the vocabulary with all 256 byte symbols, so any text encodes without
    ``<unk>`` (the assistant's tiny LLM); without it only bytes seen in ``texts`` are known, as the
    tiny VLM has always been built."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if byte_complete else {}
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False, **alphabet
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tokenizer(corpus: Path | None = None, vocab_size: int = 600) -> Any:
    """Train a byte-level BPE in-process and wrap it as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(_corpus_texts(corpus), vocab_size),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    fast.padding_side = "left"  # decoder-only batched generation pads on the left
    return fast


def tiny_llama_config(tokenizer: Any, max_positions: int, **extra: Any) -> Any:
    """The one tiny Llama shape (2 layers, 64 wide) behind every offline stand-in LLM: the tiny
    VLM's language model here and the assistant's ``--llm tiny`` (``instruct.model``)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def build_tiny_vlm(corpus: Path | None = None, seed: int = 0, vocab_size: int = 600) -> tuple[Any, Any]:
    """Return ``(model, processor)`` of a fresh tiny random LLaVA (eval mode, CPU, float32).

    ``corpus`` and ``vocab_size`` shape its BPE: agent training builds it on its own training
    texts, so prompts and answers take a few times fewer tokens (and steps) than the default.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = build_tokenizer(corpus, vocab_size)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    image_size, patch = 32, 8
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )
    text = tiny_llama_config(tokenizer, max_positions=1024)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # the "full" strategy keeps the CLS token
    )
    return model, processor


def tiny_vlm(corpus: Path | None = None) -> tuple[Any, Any]:
    """The process-wide cached tiny VLM (built once; later calls are free)."""
    key = str(corpus)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build_tiny_vlm(corpus)
        return _CACHE[key]
