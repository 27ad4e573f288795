"""The LLM judge of ``support: judge``: is a generated item's answer supported by the description?

Why a judge: term overlap (:func:`pathgen.instruct.checks.support`) misses paraphrases and passes an
answer that reuses the description's words to claim something else; a model reading both catches
both, at the price of one more call per generated item. The judge is asked through the same
engine (the stage's :class:`~pathgen.engine.caller.Caller`: bounded concurrency, retries) and its
verdicts go into the same journal, one row per judged item (agent ``judge:<kind>``, keyed on the
item's text, the judge prompt and model): an item judged once is never judged again, and the row
keeps the judge's reason for the record. An answer that is not the JSON verdict is a failed check
(``judge_unparsable``), journalled as ``error`` so it is asked again next time, never cached.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pathgen.agents.prompts import Prompt, parse_sections
from pathgen.engine.journal import Journal, call_key
from pathgen.models.generators import GenerationParams, Generator
from pathgen.rundir import fingerprint

if TYPE_CHECKING:
    from pathgen.engine.caller import Caller
    from pathgen.instruct.agents import Pair

VERDICT_SCHEMA = {
    "title": "judge_verdict",
    "type": "object",
    "properties": {"supported": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["supported", "reason"],
    "additionalProperties": False,
}
UNSUPPORTED = "judge_unsupported"
UNPARSABLE = "judge_unparsable"


def load_judge_prompt(version: str = "v1") -> Prompt:
    """The packaged judge prompt (``instruct/prompts/judge/<version>.txt``) or a ``.txt`` path."""
    path = Path(version).expanduser()
    if not (path.suffix == ".txt" and path.is_file()):
        path = Path(str(resources.files("pathgen.instruct") / "prompts" / "judge" / f"{version}.txt"))
    if not path.is_file():
        raise FileNotFoundError(f"no judge prompt {version}")
    text = path.read_text(encoding="utf-8")
    sections = parse_sections(text)
    for required in ("system", "user"):
        if required not in sections:
            raise ValueError(f"{path}: missing '### {required}' section")
    return Prompt("judge", path.stem, sections, hashlib.sha256(text.encode()).hexdigest())


def item_text(kind: str, item: dict[str, Any]) -> str:
    """What the judge reads of an item: the question and its answer, or every turn of a conversation."""
    if kind == "mcq":
        return f"Question: {item.get('question', '')}\nAnswer: {item.get('answer', '')}"
    turns = item.get("turns") or []
    return "\n".join(f"Question: {t.get('question', '')}\nAnswer: {t.get('answer', '')}" for t in turns)


def parse_verdict(text: str) -> tuple[bool, str] | None:
    """``(supported, reason)`` from the judge's answer, or None when it is not that JSON object."""
    from pathgen.instruct.agents import parse_json

    obj = parse_json(text)
    if obj is None or not isinstance(obj.get("supported"), bool):
        return None
    reason = obj.get("reason")
    return obj["supported"], " ".join(str(reason).split()) if reason is not None else ""


class Judge:
    """Judges items for the instruct agents; :meth:`bind` it to the run's journal before use."""

    def __init__(self, prompt: Prompt, generator: Generator, seed: int | None = 0):
        self.prompt = prompt
        self.generator = generator
        # Deterministic and short: a verdict is a decision, not a text to vary.
        self.params = GenerationParams(
            temperature=0.0, top_p=1.0, max_tokens=256, seed=seed, json_schema=VERDICT_SCHEMA
        )
        self.journal: Journal | None = None
        # Final verdicts of this run by key: the engine's journal commits rows in short windows, so a
        # re-ask moments later may not find its row there yet.
        self._verdicts: dict[str, str | None] = {}

    @property
    def identity(self) -> str:
        """What the generation rows key on when they were judged (a new judge re-asks them)."""
        return f"judge:{self.prompt.id}:{self.generator.name}:{self._params_fp()}"

    def bind(self, journal: Journal) -> None:
        self.journal = journal

    def _params_fp(self) -> str:
        p = self.params
        return fingerprint(p.temperature, p.top_p, p.max_tokens, p.seed)

    async def check(
        self, kind: str, item: dict[str, Any], pair: Pair, caller: Caller, request_id: str
    ) -> str | None:
        """None when the judge finds the item supported, else the failed check's reason (re-ask text,
        then rejection reason): ``judge_unsupported: <the judge's reason>`` or ``judge_unparsable``."""
        text = item_text(kind, item)
        agent = f"judge:{kind}"
        upstream = hashlib.sha256(text.encode()).hexdigest()[:16]
        key = call_key(pair.key, agent, self.prompt.id, self.generator.name, self._params_fp(), upstream)
        if key in self._verdicts:
            return self._verdicts[key]
        if self.journal is not None:
            row = self.journal.get_many([key]).get(key)
            if row is not None:
                return row["error"] if row["status"] == "rejected" else None
        fields = {"description": pair.description or pair.caption, "kind": kind, "item": text}
        messages = [
            {"role": "system", "content": self.prompt.render("system", **fields)},
            {"role": "user", "content": self.prompt.render("user", **fields)},
        ]
        result, attempts = await caller.call(self.generator, messages, self.params, f"{request_id}:judge")
        verdict = parse_verdict(result.text)
        if verdict is None:
            status, reason = "error", f"{UNPARSABLE}: {' '.join(result.text.split())[:200]!r}"
        elif verdict[0]:
            status, reason = "ok", None
        else:
            status, reason = "rejected", f"{UNSUPPORTED}: {verdict[1] or 'no reason given'}"
        if status != "error":
            self._verdicts[key] = reason
        if self.journal is not None:
            self.journal.put(
                {
                    "key": key, "tile_id": pair.key, "agent": agent, "prompt_version": self.prompt.id,
                    "model": self.generator.name, "params": self._params_fp(), "upstream": upstream,
                    "status": status, "output": result.text,
                    "data": {"supported": verdict[0], "reason": verdict[1]} if verdict else None,
                    "error": reason, "attempts": attempts, "reasks": 0,
                    "tokens_in": result.tokens_in, "tokens_out": result.tokens_out,
                }
            )  # fmt: skip
        return reason


def reason_code(reason: str | None) -> str:
    """The reason without the judge's free text (``judge_unsupported: ...`` -> ``judge_unsupported``):
    what counts group by."""
    return str(reason).split(":", 1)[0]
