"""One tile through describe -> revise -> summarize, resuming from the journal.

The chain's keys are computed before any work: an agent's key includes the key of the agent
before it, so a changed describe prompt changes all three keys while a changed summarize prompt
changes only the last. A tile starts at its first agent without a final row; an earlier
``rejected`` row ends its chain. Each outcome is journalled the moment it is known.

:func:`chain_keys` is the one place those keys are computed: the chain journals under them and
:mod:`pathgen.agents.results` reads them back for export, both from the same chain description
(``AgentSlot.describe()``, stored in the journal's ``meta['chain']``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pathgen.agents.base import Agent, Outcome, TileContext
from pathgen.engine.caller import Caller, Stats
from pathgen.engine.journal import Journal, call_key
from pathgen.models.generators import GenerationError, ImagePart
from pathgen.records import CaptionTile
from pathgen.rundir import fingerprint

TileTask = CaptionTile  # the name this record had before pathgen.records; kept for importers


def chain_keys(tile_id: str, chain: Sequence[Mapping[str, Any]]) -> list[str]:
    """The journal keys of one tile's chain, in chain order.

    ``chain`` holds one mapping per agent with ``agent``, ``prompt_id``, ``model`` and ``params``
    (what :meth:`AgentSlot.describe` returns and the journal's ``meta['chain']`` stores). Each key
    includes the key of the agent before it.
    """
    keys, upstream = [], ""
    for link in chain:
        upstream = call_key(
            tile_id, link["agent"], link["prompt_id"], link["model"], link["params"], upstream
        )
        keys.append(upstream)
    return keys


@dataclass
class AgentSlot:
    """An agent with its journal identity: prompt id, model name and sampling fingerprint."""

    agent: Agent
    model: str
    params_fp: str

    @classmethod
    def of(cls, agent: Agent, image_size: int) -> AgentSlot:
        p = agent.params
        parts: list[Any] = [p.temperature, p.top_p, p.max_tokens, p.seed, p.extra_body]
        if agent.uses_image:
            parts.append(image_size)
        if agent.name == "summarize":
            parts.append(agent.context_length)
        return cls(agent, agent.generator.name, fingerprint(*parts))

    def describe(self) -> dict[str, Any]:
        return {
            "agent": self.agent.name,
            "prompt_version": self.agent.prompt.version,
            "prompt_id": self.agent.prompt.id,
            "model": self.model,
            "params": self.params_fp,
        }


class CaptionChain:
    def __init__(
        self,
        slots: list[AgentSlot],
        journal: Journal,
        caller: Caller,
        stats: Stats,
        load_image: Callable[[CaptionTile], Any],
        image_size: int,
    ):
        self.slots = slots
        self.chain = [s.describe() for s in slots]
        self.journal = journal
        self.caller = caller
        self.stats = stats
        self.load_image = load_image
        self.image_size = image_size
        self.known: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, list[str]] = {}  # tile -> its chain keys (hashing is not free)
        # Pre-encode the JPEG in the image thread when some generator sends data URLs.
        self._encode_sizes = {
            getattr(s.agent.generator, "image_size", None) for s in slots if s.agent.uses_image
        } - {None}

    def keys(self, tile_id: str) -> list[str]:
        cached = self._keys.get(tile_id)
        if cached is not None:
            return cached
        keys = self._keys[tile_id] = chain_keys(tile_id, self.chain)
        return keys

    def preload(self, tasks: list[CaptionTile]) -> None:
        """Read the final rows of these tiles' current keys once, before the run starts."""
        self.known = self.journal.get_many(k for t in tasks for k in self.keys(t.tile_id))

    def pending_from(self, task: CaptionTile) -> int | None:
        """Index of the first agent still to run, or None when the tile's chain already ended."""
        for i, key in enumerate(self.keys(task.tile_id)):
            row = self.known.get(key)
            if row is None:
                return i
            if row["status"] == "rejected":
                return None
        return None

    def _prepare_image(self, task: CaptionTile) -> ImagePart:
        image = self.load_image(task)
        part = image if isinstance(image, ImagePart) else ImagePart(image)
        for size in self._encode_sizes:
            part.data_url(size)  # encoded here, in the worker thread: the request reuses the string
        return part

    async def run_tile(self, task: CaptionTile) -> None:
        keys = self.keys(task.tile_id)
        start = self.pending_from(task)
        if start is None:
            self.stats.skipped += 1
            return
        ctx = TileContext(task)
        for i in range(start):
            self._advance(ctx, self.slots[i].agent.name, self.known[keys[i]])
        if any(s.agent.uses_image for s in self.slots[start:]):
            try:
                ctx.image = await asyncio.get_running_loop().run_in_executor(None, self._prepare_image, task)
            except Exception as exc:  # unreadable tile: an error row, retried next run
                self._record_error(task, start, keys, f"image: {type(exc).__name__}: {exc}")
                return
        for i in range(start, len(self.slots)):
            slot = self.slots[i]
            try:
                outcome = await slot.agent.run(ctx, self.caller, keys[i])
            except GenerationError as exc:
                self._record_error(task, i, keys, str(exc))
                return
            row = self._row(task, i, keys, outcome)
            self.journal.put(row)
            self.known[keys[i]] = row
            if outcome.status == "rejected":
                self.stats.failed += 1
                self.stats.reasons[f"rejected:{slot.agent.name}:{outcome.error}"] += 1
                return
            self._advance(ctx, slot.agent.name, row)
        self.stats.done += 1

    @staticmethod
    def _advance(ctx: TileContext, agent: str, row: dict[str, Any]) -> None:
        if agent == "describe":
            ctx.description = row["output"]
        elif agent == "revise":
            ctx.revised = (row.get("data") or {}).get("revised") or row["output"]

    def _row(self, task: CaptionTile, i: int, keys: list[str], outcome: Outcome) -> dict[str, Any]:
        slot = self.slots[i]
        return {
            "key": keys[i],
            "tile_id": task.tile_id,
            "agent": slot.agent.name,
            "prompt_version": slot.agent.prompt.id,
            "model": slot.model,
            "params": slot.params_fp,
            "upstream": keys[i - 1] if i else "",
            "status": outcome.status,
            "output": outcome.output,
            "data": outcome.data,
            "flags": outcome.flags,
            "error": outcome.error,
            "attempts": outcome.attempts,
            "reasks": outcome.reasks,
            "latency": round(outcome.latency, 4),
            "tokens_in": outcome.tokens_in,
            "tokens_out": outcome.tokens_out,
        }

    def _record_error(self, task: CaptionTile, i: int, keys: list[str], message: str) -> None:
        row = self._row(task, i, keys, Outcome("error", "", error=message[:1000]))
        self.journal.put(row)
        self.stats.failed += 1
        self.stats.reasons[f"error:{self.slots[i].agent.name}"] += 1
