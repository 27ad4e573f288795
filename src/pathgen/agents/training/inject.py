"""Optional LLM-injected errors: an LLM is asked to put one error of a given kind into a description.

Rules (:mod:`corrupt`) make errors of a fixed vocabulary; an LLM makes subtler ones, as PathGen's
own revise data did. The answer is read back at sentence level (:func:`corrupt.diff_corruption`),
so each injected error is recorded like a rule's and can be scored; an answer that is not exactly
one error of the asked kind is a problem row, never a sample with an unrecorded change.
Calls go through the engine's :class:`~pathgen.engine.caller.Caller` (bounded concurrency, retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pathgen.agents.training.corrupt import KINDS, Corruption, diff_corruption
from pathgen.agents.training.sources import Item, problem

SYSTEM = (
    "You edit pathology descriptions to create training data for an error-correcting model. Change the "
    "description in exactly one place, as asked, keep every other sentence word for word, and answer "
    "with the full changed description only."
)
ASK = {
    "addition": "Insert one new sentence stating a plausible finding that the description does not mention.",
    "deletion": "Remove exactly one sentence.",
    "modification": (
        "Change one feature in one sentence into a wrong one (grade, differentiation, cell type, "
        "architecture or a count)."
    ),
}


async def _inject(
    generator: Any, items: Sequence[Item], kinds: Sequence[str], concurrency: int
) -> tuple[dict[str, list[tuple[str, Corruption]]], list[dict[str, Any]]]:
    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.retry import RetryPolicy
    from pathgen.models.generators import GenerationError, GenerationParams

    caller = Caller(concurrency, RetryPolicy(), Stats(total=len(items) * len(kinds)))
    params = GenerationParams(temperature=0.7, max_tokens=512, seed=0)
    found: dict[str, list[tuple[str, Corruption]]] = {}
    problems: list[dict[str, Any]] = []

    async def one(item: Item, kind: str) -> None:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{ASK[kind]}\n\nDescription:\n{item.text}"},
        ]
        try:
            result, _ = await caller.call(generator, messages, params, f"inject:{kind}:{item.key}")
        except GenerationError as exc:
            problems.append(problem(None, item.key, f"llm injection ({kind}) failed: {exc}"))
            return
        c = diff_corruption(item.text, result.text.strip().strip('"'), kind)
        if c is None:
            problems.append(problem(None, item.key, f"llm injection ({kind}): not exactly one {kind}"))
            return
        found.setdefault(item.key, []).append((kind, c))

    try:
        await asyncio.gather(*(one(i, k) for i in items for k in kinds))
    finally:
        await generator.aclose()
    return found, problems


def llm_corruptions(
    items: Sequence[Item], generator: Any, kinds: Sequence[str] = KINDS, concurrency: int = 16
) -> tuple[dict[str, list[tuple[str, Corruption]]], list[dict[str, Any]]]:
    """``{item key: [(kind, corruption), ...]}`` made by ``generator``, and the problem rows."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown error kinds {sorted(unknown)}; kinds: {', '.join(KINDS)}")
    return asyncio.run(_inject(generator, items, kinds, concurrency))
