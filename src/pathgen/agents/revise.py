"""The revise agent: image + description -> JSON ``{edits: [...], revised}``, validated with pydantic.

Models wrap JSON in prose or code fences; we take the outermost object, validate it, and re-ask
with the validation error when it does not parse, so the model sees what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pathgen.agents.base import Agent, Outcome, TileContext, Verdict
from pathgen.agents.checks import check_output


class Edit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["add", "delete", "modify"]
    before: str = ""
    after: str = ""


class Revision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    edits: list[Edit] = Field(default_factory=list)
    revised: str = Field(min_length=1)


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_revision(text: str) -> Revision:
    """Parse a revise answer; raises ValueError with a short reason when it is not usable."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object found")
    try:
        obj = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at character {exc.pos}") from exc
    try:
        return Revision.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


class ReviseAgent(Agent):
    name = "revise"
    uses_image = True

    def template_fields(self, ctx: TileContext) -> dict[str, Any]:
        return {**ctx.fields(), "description": ctx.description or ""}

    def validate(self, text: str, finish_reason: str, ctx: TileContext) -> Verdict:
        if finish_reason == "length":
            return Verdict("cut_off")
        try:
            revision = parse_revision(text)
        except ValueError as exc:
            return Verdict("invalid_json", reask=self.reask_text(f"invalid_json: {exc}", ctx))
        revised = " ".join(revision.revised.split())
        reason = check_output(revised)
        if reason:
            return Verdict(reason)
        data = {"edits": [e.model_dump() for e in revision.edits], "revised": revised}
        return Verdict(None, revised, data)

    def relaxed(self, text: str, reason: str, ctx: TileContext) -> Outcome:
        """Offline demo: keep the description unrevised (a random model writes no JSON)."""
        description = ctx.description or ""
        data = {"edits": [], "revised": description}
        return Outcome("ok", description, data, flags=["offline_demo", f"relaxed:{reason}", "unrevised"])
