"""The revise agent: image + description -> JSON ``{edits: [...], revised}``, validated with pydantic.

Servers with structured output are asked to enforce :data:`REVISION_SCHEMA` (see
:mod:`pathgen.models.gen_openai`); others only read the prompt, and their models wrap JSON in prose
or code fences: we take the outermost object, validate it, and re-ask with the validation error
when it does not parse, so the model sees what was wrong.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pathgen.agents.base import Agent, Outcome, TileContext, Verdict
from pathgen.agents.checks import check_output
from pathgen.agents.prompts import Prompt
from pathgen.models.generators import GenerationParams, Generator


class Edit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["add", "delete", "modify"]
    before: str = ""
    after: str = ""


class Revision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    edits: list[Edit] = Field(default_factory=list)
    revised: str = Field(min_length=1)


# The JSON schema sent as ``response_format``: the shape of :class:`Revision`, written out in the
# subset that OpenAI's strict mode accepts (every property required, no additional properties).
REVISION_SCHEMA: dict[str, Any] = {
    "title": "revision",
    "type": "object",
    "properties": {
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["add", "delete", "modify"]},
                    "before": {"type": "string"},
                    "after": {"type": "string"},
                },
                "required": ["type", "before", "after"],
                "additionalProperties": False,
            },
        },
        "revised": {"type": "string"},
    },
    "required": ["edits", "revised"],
    "additionalProperties": False,
}

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_revision(text: str) -> Revision:
    """Parse a revise answer; raises ValueError with a short reason when it is not usable."""
    try:  # the common case, and the only one under structured output: the answer is the object
        return Revision.model_validate_json(text)
    except ValidationError:
        pass
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

    def __init__(self, prompt: Prompt, generator: Generator, params: GenerationParams, *args: Any, **kw: Any):
        super().__init__(
            prompt, generator, dataclasses.replace(params, json_schema=REVISION_SCHEMA), *args, **kw
        )

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
