"""LLM cleaning of transcript chunks through the engine and its journal (as Quilt does with an LLM).

Each chunk is one call (``agent = "clean"``, journalled under ``video:<video id>:<chunk>`` with the
prompt's version and hash, the model, the sampling and the chunk text's hash), so a re-run asks
only for chunks not answered yet, a changed prompt or model asks again, and an interrupted run
loses at most the calls in flight. The answer is JSON (a ``json_schema`` response format where the
server supports it, the prompt asks for it in any case); keywords are validated against the
vocabulary (an LLM's keyword is kept only when it is a vocabulary term) and completed with the
vocabulary terms found in the corrected text. A chunk whose calls all fail, or whose answer is
unusable after the re-asks, is cleaned by the rules instead (``by = "rules-fallback"``) and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pathgen.agents.prompts import Prompt, parse_sections
from pathgen.config import VideoConfig
from pathgen.video.text import Chunk, Cleaned, Vocabulary, clean_rules

AGENT = "clean"
MAX_REASKS = 1
SCHEMA = {
    "title": "transcript_chunk",
    "type": "object",
    "properties": {
        "corrected_text": {"type": "string"},
        "medical_statements": {"type": "array", "items": {"type": "string"}},
        "roi_statements": {"type": "array", "items": {"type": "string"}},
        "keywords": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["corrected_text", "medical_statements", "roi_statements", "keywords"],
}


def load_clean_prompt(version: str = "v1") -> Prompt:
    text = (
        resources.files("pathgen.video")
        .joinpath("prompts", AGENT, f"{version}.txt")
        .read_text(encoding="utf-8")
    )
    return Prompt(AGENT, version, parse_sections(text), hashlib.sha256(text.encode()).hexdigest())


def parse_answer(text: str, vocab: Vocabulary, model: str) -> Cleaned:
    """The model's JSON as :class:`Cleaned`; raises ``ValueError`` when it is not usable."""
    raw = text.strip()
    if raw.startswith("```"):
        raw = raw.strip("`").split("\n", 1)[-1]
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    data = json.loads(raw[start : end + 1])
    if not isinstance(data, dict) or not isinstance(data.get("corrected_text"), str):
        raise ValueError("the answer lacks corrected_text")

    def strings(key: str) -> list[str]:
        value = data.get(key) or []
        if not isinstance(value, list):
            raise ValueError(f"{key} is not a list")
        return [" ".join(str(v).split()) for v in value if str(v).strip()]

    corrected = " ".join(data["corrected_text"].split())
    keywords = vocab.validate(strings("keywords"))
    for k in vocab.find(corrected):
        if k not in keywords:
            keywords.append(k)
    return Cleaned(
        corrected,
        strings("medical_statements"),
        strings("roi_statements"),
        keywords,
        vocab.ids(keywords),
        by=f"llm:{model}",
    )


def clean_with_llm(
    items: Sequence[tuple[str, Chunk]], cfg: VideoConfig, vocab: Vocabulary, journal_path: Path
) -> tuple[dict[str, Cleaned], dict[str, Any]]:
    """Clean every ``(item id, chunk)``; returns results by item id and what happened."""
    return asyncio.run(_clean(items, cfg, vocab, journal_path))


async def _clean(
    items: Sequence[tuple[str, Chunk]], cfg: VideoConfig, vocab: Vocabulary, journal_path: Path
) -> tuple[dict[str, Cleaned], dict[str, Any]]:
    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.journal import Journal, call_key
    from pathgen.engine.retry import RetryPolicy
    from pathgen.engine.runner import run_pool
    from pathgen.models.generators import GenerationParams, load_generator

    prompt = load_clean_prompt()
    generator = load_generator(
        cfg.llm or "", base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency
    )
    params = GenerationParams(temperature=0.0, max_tokens=1024, seed=0, json_schema=SCHEMA)
    params_id = json.dumps({"t": 0.0, "max": 1024, "seed": 0, "schema": SCHEMA["title"]}, sort_keys=True)
    out: dict[str, Cleaned] = {}
    counts: Counter[str] = Counter()
    stats = Stats(total=len(items))
    caller = Caller(cfg.concurrency, RetryPolicy(), stats)

    def key_of(item_id: str, chunk: Chunk) -> str:
        upstream = hashlib.sha256(chunk.text.encode()).hexdigest()[:16]
        return call_key(item_id, AGENT, prompt.id, generator.name, params_id, upstream)

    with Journal(journal_path) as journal:
        keys = {item_id: key_of(item_id, chunk) for item_id, chunk in items}
        done = journal.get_many(keys.values())
        todo = []
        for item_id, chunk in items:
            row = done.get(keys[item_id])
            if row is not None and row["status"] == "ok":
                out[item_id] = parse_answer(row["output"], vocab, generator.name)
                counts["journal"] += 1
            elif row is not None:  # rejected: final, not asked again
                out[item_id] = dataclasses.replace(clean_rules(chunk.text, vocab), by="rules-fallback")
                counts["rules_fallback"] += 1
            else:
                todo.append((item_id, chunk))

        async def process(item: tuple[str, Chunk]) -> None:
            item_id, chunk = item
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": prompt.render("system")},
                {"role": "user", "content": prompt.render("user", text=chunk.text)},
            ]
            row: dict[str, Any] = {
                "key": keys[item_id],
                "tile_id": item_id,
                "agent": AGENT,
                "prompt_version": prompt.id,
                "model": generator.name,
                "params": params_id,
                "upstream": hashlib.sha256(chunk.text.encode()).hexdigest()[:16],
            }
            attempts = 0
            try:
                for i in range(MAX_REASKS + 1):
                    p = dataclasses.replace(params, seed=(params.seed or 0) + i)
                    result, n = await caller.call(generator, messages, p, request_id=f"{item_id}:{i}")
                    attempts += n
                    try:
                        cleaned = parse_answer(result.text, vocab, generator.name)
                    except ValueError as exc:
                        messages += [
                            {"role": "assistant", "content": result.text},
                            {"role": "user", "content": prompt.render("reask", reason=str(exc))},
                        ]
                        continue
                    journal.put(
                        {
                            **row,
                            "status": "ok",
                            "output": result.text,
                            "attempts": attempts,
                            "reasks": i,
                            "latency": result.latency,
                            "tokens_in": result.tokens_in,
                            "tokens_out": result.tokens_out,
                        }
                    )
                    out[item_id] = cleaned
                    counts["llm"] += 1
                    stats.done += 1
                    return
                journal.put(
                    {
                        **row,
                        "status": "rejected",
                        "output": result.text,
                        "error": "unusable answer",
                        "attempts": attempts,
                        "reasks": MAX_REASKS,
                    }
                )
            except Exception as exc:  # transport failure after the retries: retried by the next run
                from pathgen.engine.caller import Stopped

                if isinstance(exc, Stopped):
                    raise
                journal.put({**row, "status": "error", "error": str(exc), "attempts": attempts})
            fallback = clean_rules(chunk.text, vocab)
            out[item_id] = dataclasses.replace(fallback, by="rules-fallback")
            counts["rules_fallback"] += 1
            stats.failed += 1

        try:
            await run_pool(todo, process, cfg.concurrency, stats, progress=bool(todo))
        finally:
            await generator.aclose()
    info = {
        "by": f"llm:{generator.name}",
        "note": f"LLM {generator.name} (prompt clean/{prompt.id}); journal {journal_path}",
        "chunks": len(items),
        "from_journal": counts["journal"],
        "llm_calls_answered": counts["llm"],
        "rules_fallback": counts["rules_fallback"],
    }
    return out, info
