"""The describe agent: image + additional text -> a detailed morphological description."""

from __future__ import annotations

from typing import Any

from pathgen.agents.base import Agent, TileContext, Verdict
from pathgen.agents.checks import check_output


class DescribeAgent(Agent):
    name = "describe"
    uses_image = True

    def template_fields(self, ctx: TileContext) -> dict[str, Any]:
        return {**ctx.fields(), "description": ""}

    def validate(self, text: str, finish_reason: str, ctx: TileContext) -> Verdict:
        reason = check_output(text, finish_reason)
        return Verdict(reason, " ".join(text.split()))
