"""The two instruct agents, on the caption agents' ask / check / re-ask loop (:mod:`pathgen.agents.base`).

A text LLM gets one pair's caption, revised description and slide context and answers JSON; the
agent parses it and runs :mod:`pathgen.instruct.checks`; a failed check is re-asked with its reason,
and after ``max_reasks`` the item is rejected with that reason. Offline demo generators (the tiny
random model) cannot write JSON: their items are built from templates instead (:mod:`templates`)
and flagged ``offline_demo``, so the whole path runs without a model and nobody takes them for
generated items.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pathgen.agents.base import Agent, Outcome, Verdict
from pathgen.agents.prompts import Prompt, parse_sections
from pathgen.config import InstructConfig
from pathgen.instruct import checks, templates
from pathgen.instruct.judge import Judge

KINDS = ("conversation", "mcq")


@dataclass
class Pair:
    """One exported image-caption pair, what the instruct agents are given."""

    key: str
    wsi_id: str
    x: int
    y: int
    caption: str
    description: str
    project: str | None = None
    file_id: str | None = None
    image: str | None = None  # path of the image relative to the output folder

    @property
    def tile_id(self) -> str:  # the journal's item id
        return self.key

    def fields(self) -> dict[str, str]:
        return {
            "project": self.project or "not given",
            "caption": self.caption,
            "description": self.description or self.caption,
        }


def load_instruct_prompt(kind: str, version: str = "v1") -> Prompt:
    """A packaged instruct prompt (``instruct/prompts/<kind>/<version>.txt``) or a ``.txt`` path."""
    if kind not in KINDS:
        raise ValueError(f"unknown item kind {kind!r}; kinds: {', '.join(KINDS)}")
    path = Path(version).expanduser()
    if not (path.suffix == ".txt" and path.is_file()):
        path = Path(str(resources.files("pathgen.instruct") / "prompts" / kind / f"{version}.txt"))
    if not path.is_file():
        raise FileNotFoundError(f"no instruct prompt {kind}/{version}")
    text = path.read_text(encoding="utf-8")
    sections = parse_sections(text)
    for required in ("system", "user", "reask"):
        if required not in sections:
            raise ValueError(f"{path}: missing '### {required}' section")
    return Prompt(kind, path.stem, sections, hashlib.sha256(text.encode()).hexdigest())


def parse_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (models wrap it in prose or code fences now and then)."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _count(key: str, lo: int, hi: int) -> int:
    """A stable per-pair choice in [lo, hi] (how many options or turns to ask for)."""
    return lo + int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) % (hi - lo + 1)


class InstructAgent(Agent):
    uses_image = False  # a text LLM writes from the description, as LLaVA-Med and PathGen did
    kind = "item"

    def __init__(
        self, prompt: Prompt, generator: Any, params: Any, cfg: InstructConfig, judge: Judge | None = None
    ):
        super().__init__(prompt, generator, params, max_reasks=cfg.max_reasks)
        self.cfg = cfg
        self.name = self.kind
        self.judge = judge  # support 'judge': the LLM judge replaces the term-overlap check

    @property
    def min_support(self) -> float:
        """The term-overlap bar; 0 (off) when a judge decides support."""
        return self.cfg.min_support if self.judge is None else 0.0

    async def confirm(self, verdict: Verdict, ctx: Pair, caller: Any, request_id: str) -> Verdict:  # type: ignore[override]
        if self.judge is None or verdict.data is None:
            return verdict
        reason = await self.judge.check(self.kind, verdict.data, ctx, caller, request_id)
        return verdict if reason is None else Verdict(reason)

    def template_fields(self, ctx: Pair) -> dict[str, Any]:  # type: ignore[override]
        return {**ctx.fields(), **self.size_fields(ctx)}

    def size_fields(self, ctx: Pair) -> dict[str, Any]:
        return {}

    def check(self, item: dict[str, Any], ctx: Pair) -> str | None:
        raise NotImplementedError

    def validate(self, text: str, finish_reason: str, ctx: Pair) -> Verdict:  # type: ignore[override]
        if finish_reason == "length":
            return Verdict("cut_off")
        item = parse_json(text)
        if item is None:
            return Verdict("invalid_json")
        reason = self.check(item, ctx)
        if reason is not None:
            return Verdict(reason)
        return Verdict(None, output=json.dumps(item, ensure_ascii=False), data=item)

    def relaxed(self, text: str, reason: str, ctx: Pair) -> Outcome:  # type: ignore[override]
        item = self.template(ctx)
        return Outcome(
            "ok", json.dumps(item, ensure_ascii=False), item, flags=["offline_demo", f"template:{reason}"]
        )

    def template(self, ctx: Pair) -> dict[str, Any]:
        raise NotImplementedError


class MCQAgent(InstructAgent):
    kind = "mcq"

    def size_fields(self, ctx: Pair) -> dict[str, Any]:
        return {"n_options": _count(ctx.key, self.cfg.min_options, self.cfg.max_options)}

    def check(self, item: dict[str, Any], ctx: Pair) -> str | None:
        item = _letter_answer(item)
        return checks.check_mcq(
            item, ctx.description or ctx.caption, self.cfg.min_options, self.cfg.max_options,
            self.min_support,
        )  # fmt: skip

    def validate(self, text: str, finish_reason: str, ctx: Pair) -> Verdict:  # type: ignore[override]
        verdict = super().validate(text, finish_reason, ctx)
        if verdict.data is not None:
            verdict.data = _letter_answer(verdict.data)
            verdict.output = json.dumps(verdict.data, ensure_ascii=False)
        return verdict

    def template(self, ctx: Pair) -> dict[str, Any]:
        return templates.mcq_from_description(ctx, self.size_fields(ctx)["n_options"])


class ConversationAgent(InstructAgent):
    kind = "conversation"

    def size_fields(self, ctx: Pair) -> dict[str, Any]:
        return {"n_turns": _count(ctx.key, self.cfg.min_turns, self.cfg.max_turns)}

    def check(self, item: dict[str, Any], ctx: Pair) -> str | None:
        # Conversations explain (what a feature means, a differential): half the MCQ grounding bar.
        return checks.check_conversation(
            item, ctx.description or ctx.caption, self.cfg.min_turns, self.cfg.max_turns,
            self.min_support / 2,
        )  # fmt: skip

    def template(self, ctx: Pair) -> dict[str, Any]:
        return templates.conversation_from_description(ctx)


def _letter_answer(item: dict[str, Any]) -> dict[str, Any]:
    """An answer given as a bare letter ('B') is replaced by that option's text."""
    answer, options = item.get("answer"), item.get("options")
    if isinstance(answer, str) and isinstance(options, list):
        m = re.fullmatch(r"\s*\(?([A-Ea-e])\)?[.)]?\s*", answer)
        if m and checks.norm(answer) not in [checks.norm(str(o)) for o in options]:
            i = ord(m.group(1).upper()) - ord("A")
            if i < len(options):
                return {**item, "answer": options[i]}
    return item
