"""The three training sets as records, rendered with the chain's own agents and prompts.

A record is one supervised sample: the prompt turns exactly as the chain's agent sends them
(:meth:`pathgen.agents.base.Agent.first_messages`, so a trained model is asked in deployment what
it was trained on), the image it sees, the target answer, and what evaluation needs (``meta``).
Samples are split by slide: no slide has samples in both train and validation.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from pathgen.agents.base import Agent, TileContext
from pathgen.agents.describe import DescribeAgent
from pathgen.agents.fit import count_tokens, fit_caption
from pathgen.agents.prompts import load_prompt
from pathgen.agents.revise import ReviseAgent, Revision
from pathgen.agents.summarize import SummarizeAgent
from pathgen.agents.training.corrupt import KINDS, UNDO_TYPE, Corruption, apply, corrupt, sentences
from pathgen.agents.training.sources import Item
from pathgen.models.generators import GenerationParams

SPLITS = ("train", "validation")


def split_slides(slide_ids: Sequence[str], fraction: float, seed: int = 0) -> dict[str, str]:
    """slide -> split. A stable hash order, the first ``ceil(fraction * n)`` held out (at least one
    when there are two slides or more and ``fraction > 0``), so adding slides moves few of them."""
    slides = sorted(set(slide_ids), key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    n_val = 0
    if fraction > 0 and len(slides) >= 2:
        n_val = min(len(slides) - 1, max(1, round(fraction * len(slides))))
    return {s: ("validation" if i < n_val else "train") for i, s in enumerate(slides)}


def _agents(prompt_version: str | dict[str, str], context_length: int) -> dict[str, Agent]:
    params = GenerationParams()
    versions = prompt_version if isinstance(prompt_version, dict) else {}
    version = (lambda agent: versions.get(agent, "v1")) if versions else (lambda agent: prompt_version)
    return {
        "describe": DescribeAgent(load_prompt("describe", version("describe")), None, params),  # type: ignore[arg-type]
        "revise": ReviseAgent(load_prompt("revise", version("revise")), None, params),  # type: ignore[arg-type]
        "summarize": SummarizeAgent(
            load_prompt("summarize", version("summarize")),
            None,
            params,
            context_length=context_length,  # type: ignore[arg-type]
        ),
    }


def _messages(agent: Agent, item: Item, description: str = "") -> list[dict[str, Any]]:
    ctx = TileContext(item.tile())
    ctx.description = description
    ctx.revised = description if agent.name == "summarize" else None
    return agent.first_messages(ctx)  # image None: the text turns only; the image travels beside them


def revise_target(clean: str, edits: list[dict[str, str]]) -> str:
    """The revise agent's answer for these edits, in the exact JSON its validation produces."""
    return Revision.model_validate({"edits": edits, "revised": clean}).model_dump_json()


def build_records(
    items: Sequence[Item],
    splits: dict[str, str],
    image_of: dict[str, str],
    *,
    copies: int = 1,
    clean_copies: int = 1,
    prompt_version: str | dict[str, str] = "v1",
    context_length: int = 77,
    seed: int = 0,
    injected: dict[str, list[tuple[str, Corruption]]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{agent: [record, ...]}`` for describe, revise and summarize.

    ``image_of`` maps an item's key to its stored image path (relative to the dataset folder).
    Additions take a sentence of another slide's description in the same split (another project's
    when the project is known), so no validation text leaks into training. ``injected`` adds the
    LLM-made corruptions of an item (:mod:`pathgen.agents.training.inject`) as further samples.
    """
    agents = _agents(prompt_version, context_length)
    rng = random.Random(seed)
    by_split: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for item in items:
        by_split[splits[item.slide_id]].append(item)
    out: dict[str, list[dict[str, Any]]] = {"describe": [], "revise": [], "summarize": []}
    for split, group in by_split.items():
        for item in group:
            base = {"slide_id": item.slide_id, "split": split, "key": item.key, "source": item.source}
            image = image_of[item.key]
            uid = hashlib.sha256(item.key.encode()).hexdigest()[:12]
            findings = list(item.findings)
            out["describe"].append({
                **base, "id": f"describe-{uid}", "agent": "describe", "image": image,
                "messages": _messages(agents["describe"], item), "target": item.text,
                "meta": {"reference": item.text, "findings": findings},
            })  # fmt: skip
            foreign = [
                s for other in group if other.slide_id != item.slide_id
                and not (item.project and other.project == item.project) for s in sentences(other.text)
            ]  # fmt: skip
            n = 0
            for _ in range(clean_copies):
                out["revise"].append(_revise_record(agents["revise"], item, base, image, uid, n, [], None))
                n += 1
            for kind in KINDS:
                for _ in range(copies):
                    c = corrupt(item.text, kind, foreign, rng)
                    if c is None:
                        continue
                    out["revise"].append(
                        _revise_record(agents["revise"], item, base, image, uid, n, [c], kind)
                    )
                    n += 1
            for kind, c in (injected or {}).get(item.key, []):
                out["revise"].append(_revise_record(agents["revise"], item, base, image, uid, n, [c], kind))
                n += 1
            caption, source = item.caption, "run"
            if not caption or count_tokens(caption) > context_length:
                caption, source = fit_caption(item.text, context_length)[0], "extractive"
            out["summarize"].append({
                **base, "id": f"summarize-{uid}", "agent": "summarize", "image": None,
                "messages": _messages(agents["summarize"], item, item.text), "target": caption,
                "meta": {"description": item.text, "caption_source": source},
            })  # fmt: skip
    return out


def _revise_record(
    agent: Agent,
    item: Item,
    base: dict[str, Any],
    image: str,
    uid: str,
    n: int,
    corruptions: list,
    kind: str | None,
) -> dict[str, Any]:
    corrupted = apply(item.text, corruptions)
    edits = [c.undo_edit() for c in corruptions]
    return {
        **base, "id": f"revise-{uid}-{n}", "agent": "revise", "image": image,
        "messages": _messages(agent, item, corrupted), "target": revise_target(item.text, edits),
        "meta": {
            "clean": item.text, "corrupted": corrupted, "kind": kind or "clean",
            "corruptions": [c.as_dict() for c in corruptions], "edits": edits,
            "edit_types": [UNDO_TYPE[c.kind] for c in corruptions],
        },
    }  # fmt: skip
