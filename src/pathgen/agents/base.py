"""What the three agents share: the ask / check / re-ask loop and the outcome record.

An agent renders its prompt, calls its generator through the engine's :class:`Caller` (which owns
retries of transport failures), checks the answer, and re-asks inside the same conversation with
the reason when a check fails (with a different seed, so a deterministic server does not repeat
itself). After ``max_reasks`` it rejects the item, or applies its own last resort. Offline demo
generators skip re-asks for relaxable reasons and flag the row instead (see :mod:`checks`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from pathgen.agents.checks import RELAXABLE
from pathgen.agents.prompts import Prompt
from pathgen.config import CaptionConfig, default_of
from pathgen.engine.caller import Caller
from pathgen.models.generators import GenerationParams, Generator, ImagePart
from pathgen.records import CaptionTile


@dataclass
class TileContext:
    """One tile on its way through the chain: its record (fixed) and what the agents add to it."""

    tile: CaptionTile
    image: ImagePart | None = None
    description: str | None = None
    revised: str | None = None

    @property
    def tile_id(self) -> str:
        return self.tile.tile_id

    @property
    def project(self) -> str | None:
        return self.tile.project

    @property
    def findings(self) -> tuple[str, ...]:
        return self.tile.findings

    @property
    def selection_prompt(self) -> str | None:
        return self.tile.selection_prompt

    def fields(self) -> dict[str, str]:
        return {
            "project": self.project or "not given",
            "findings": "; ".join(self.findings) if self.findings else "none given",
            "selection_prompt": self.selection_prompt or "not given",
            "description": self.revised or self.description or "",
        }


@dataclass
class Verdict:
    reason: str | None  # None: accepted
    output: str = ""
    data: dict[str, Any] | None = None
    reask: str = ""


@dataclass
class Outcome:
    status: str  # ok | truncated | rejected
    output: str
    data: dict[str, Any] | None = None
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    attempts: int = 0
    reasks: int = 0
    latency: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0


class Agent:
    name = "agent"
    uses_image = True

    def __init__(
        self,
        prompt: Prompt,
        generator: Generator,
        params: GenerationParams,
        max_reasks: int = default_of(CaptionConfig, "max_reasks"),
        context_length: int = default_of(CaptionConfig, "context_length"),
    ):
        self.prompt = prompt
        self.generator = generator
        self.params = params
        self.max_reasks = max_reasks
        self.context_length = context_length

    # -- to override -----------------------------------------------------------------------------
    def template_fields(self, ctx: TileContext) -> dict[str, Any]:
        return ctx.fields()

    def first_messages(self, ctx: TileContext) -> list[dict[str, Any]]:
        fields = self.template_fields(ctx)
        text = self.prompt.render("user", **fields)
        content: Any = text
        if self.uses_image and ctx.image is not None:
            content = [{"type": "image", "image": ctx.image}, {"type": "text", "text": text}]
        return [
            {"role": "system", "content": self.prompt.render("system", **fields)},
            {"role": "user", "content": content},
        ]

    def validate(self, text: str, finish_reason: str, ctx: TileContext) -> Verdict:
        raise NotImplementedError

    async def confirm(self, verdict: Verdict, ctx: TileContext, caller: Caller, request_id: str) -> Verdict:
        """A further, asynchronous check of an answer :meth:`validate` accepted (e.g. a model judge);
        the verdict it returns takes the same re-ask / reject path. Default: accepted as is."""
        return verdict

    def relaxed(self, text: str, reason: str, ctx: TileContext) -> Outcome:
        """Accept an offline-demo answer that failed a relaxable check, flagged."""
        return Outcome("ok", text.strip(), flags=["offline_demo", f"relaxed:{reason}"])

    def last_resort(self, text: str, verdict: Verdict, ctx: TileContext) -> Outcome | None:
        """After every re-ask failed: an outcome to keep, or None to reject."""
        return None

    def reask_text(self, reason: str, ctx: TileContext) -> str:
        return self.prompt.render("reask", reason=reason, **self.template_fields(ctx))

    # -- the loop --------------------------------------------------------------------------------
    async def run(self, ctx: TileContext, caller: Caller, request_id: str) -> Outcome:
        messages = self.first_messages(ctx)
        totals = Outcome("rejected", "")
        start = time.perf_counter()
        verdict = Verdict("not run")
        text = ""
        for i in range(self.max_reasks + 1):
            params = self.params
            if i and params.seed is not None:
                params = dataclasses.replace(params, seed=params.seed + i)
            result, attempts = await caller.call(self.generator, messages, params, request_id)
            totals.attempts += attempts
            totals.tokens_in += result.tokens_in
            totals.tokens_out += result.tokens_out
            totals.reasks = i
            text = result.text
            verdict = self.validate(text, result.finish_reason, ctx)
            if verdict.reason is None:
                verdict = await self.confirm(verdict, ctx, caller, request_id)
            if verdict.reason is None:
                out = Outcome("ok", verdict.output, verdict.data)
                break
            if self.generator.offline_demo and verdict.reason in RELAXABLE:
                out = self.relaxed(text, verdict.reason, ctx)
                break
            if i < self.max_reasks:
                reask = verdict.reask or self.reask_text(verdict.reason, ctx)
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": reask},
                ]
        else:
            out = self.last_resort(text, verdict, ctx) or Outcome(
                "rejected", text, flags=[f"rejected:{verdict.reason}"], error=verdict.reason
            )
        for name in ("attempts", "reasks", "tokens_in", "tokens_out"):
            setattr(out, name, getattr(totals, name))
        out.latency = time.perf_counter() - start
        if self.generator.offline_demo and "offline_demo" not in out.flags:
            out.flags.insert(0, "offline_demo")
        return out
