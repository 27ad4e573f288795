"""The summarize agent: revised description -> a caption that fits CLIP's context, measured exactly.

Too long is re-asked with a stricter instruction that names the measured length; when re-asks run
out, the last answer is cut at a sentence boundary and the row is flagged ``truncated``.
"""

from __future__ import annotations

from typing import Any

from pathgen.agents.base import Agent, Outcome, TileContext, Verdict
from pathgen.agents.checks import check_output
from pathgen.agents.fit import count_tokens, fit_caption, words_for


class SummarizeAgent(Agent):
    name = "summarize"
    uses_image = False

    def template_fields(self, ctx: TileContext) -> dict[str, Any]:
        words = words_for(self.context_length)
        return {
            **ctx.fields(),
            "description": ctx.revised or ctx.description or "",
            "limit": self.context_length,
            "words": words,
            "strict_words": max(5, int(words * 0.75)),
        }

    def validate(self, text: str, finish_reason: str, ctx: TileContext) -> Verdict:
        caption = " ".join(text.strip().strip('"').split())
        reason = check_output(caption, finish_reason)
        if reason:
            return Verdict(reason)
        n = count_tokens(caption)
        if n > self.context_length:
            reask = self.prompt.render("shorter", tokens=n, **self.template_fields(ctx))
            return Verdict("too_long", caption, reask=reask)
        return Verdict(None, caption)

    def _cut(self, text: str, flags: list[str]) -> Outcome:
        caption, cut = fit_caption(text, self.context_length)
        if not caption:
            return Outcome("rejected", "", flags=[*flags, "rejected:empty"], error="empty")
        return Outcome("truncated" if cut else "ok", caption, flags=[*flags, "truncated"] if cut else flags)

    def relaxed(self, text: str, reason: str, ctx: TileContext) -> Outcome:
        return self._cut(text, ["offline_demo", f"relaxed:{reason}"])

    def last_resort(self, text: str, verdict: Verdict, ctx: TileContext) -> Outcome | None:
        if verdict.reason == "too_long":
            return self._cut(verdict.output or text, [])
        return None
