"""Recorded corruptions of a true description: the revise agent's training inputs and its targets.

PathGen trained its revise agent on descriptions with injected errors of three kinds. Each kind is
done here by a rule, on the description's sentence list, and recorded so that it can be replayed
and scored:

- ``addition``: a sentence of another tissue's description is inserted (a finding not in this patch);
- ``deletion``: a true sentence is removed;
- ``modification``: a vocabulary term (grade, differentiation, cell type, architecture, counts, ...)
  that occurs once is swapped for another term of its group that does not occur.

The revise target is what the chain's revise agent outputs (:class:`pathgen.agents.revise.Revision`):
the edits that *undo* the corruption (an addition is undone by a ``delete``, a deletion by an
``add``, a modification by a ``modify``) and the clean text. :func:`apply` replays corruptions and
:func:`undo` reverts them, so "the corrupted text differs from its source by exactly the recorded
edits" is checkable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pathgen.agents.training.vocab import GROUPS, KIND_OF_GROUP, term_pattern

KINDS = ("addition", "deletion", "modification")
UNDO_TYPE = {"addition": "delete", "deletion": "add", "modification": "modify"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (whitespace normalised; joining with one space restores it)."""
    return [s for s in _SENTENCE.split(" ".join(text.split())) if s]


def join(parts: Sequence[str]) -> str:
    return " ".join(parts)


@dataclass(frozen=True)
class Corruption:
    """One injected error: where (sentence ``index``), what (``kind``, ``subkind``) and the texts."""

    kind: str  # addition | deletion | modification
    index: int  # sentence index in the list the corruption was applied to
    text: str  # addition: the inserted sentence; deletion: the removed one; modification: the new sentence
    before: str = ""  # modification: the true term
    after: str = ""  # modification: the wrong term
    subkind: str = ""  # modification: the vocabulary group's kind (grade, cell_type, ...)
    source: str = "rule"  # rule | llm

    def undo_edit(self) -> dict[str, str]:
        """The revise agent's edit that undoes this corruption (its JSON shape)."""
        if self.kind == "addition":
            return {"type": "delete", "before": self.text, "after": ""}
        if self.kind == "deletion":
            return {"type": "add", "before": "", "after": self.text}
        return {"type": "modify", "before": self.after, "after": self.before}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply(text: str, corruptions: Sequence[Corruption]) -> str:
    """``text`` with ``corruptions`` replayed in order (each index refers to the list at its turn)."""
    parts = sentences(text)
    for c in corruptions:
        if c.kind == "addition":
            parts.insert(c.index, c.text)
        elif c.kind == "deletion":
            if parts[c.index] != c.text:
                raise ValueError(f"deletion at {c.index} does not match the text")
            del parts[c.index]
        elif c.kind == "modification":
            parts[c.index] = c.text
        else:
            raise ValueError(f"unknown corruption kind {c.kind!r}")
    return join(parts)


def undo(text: str, corruptions: Sequence[Corruption]) -> str:
    """The source text back from a corrupted one (the corruptions reverted in reverse order)."""
    parts = sentences(text)
    for c in reversed(corruptions):
        if c.kind == "addition":
            if parts[c.index] != c.text:
                raise ValueError(f"addition at {c.index} does not match the text")
            del parts[c.index]
        elif c.kind == "deletion":
            parts.insert(c.index, c.text)
        else:
            if parts[c.index] != c.text:
                raise ValueError(f"modification at {c.index} does not match the text")
            pattern = term_pattern(c.after)
            parts[c.index] = pattern.sub(c.before.replace("\\", "\\\\"), c.text, count=1)
    return join(parts)


def _same_case(found: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if found[:1].isupper() else replacement


def add_sentence(text: str, foreign: Sequence[str], rng: random.Random) -> Corruption | None:
    """Insert a sentence of another tissue's description that this text does not contain."""
    parts = sentences(text)
    own = {s.lower() for s in parts}
    # Whole sentences only, inserted after a sentence end: the corrupted text splits back the same way.
    pool = [s for s in foreign if s.lower() not in own and len(s.split()) >= 4 and _whole(s)]
    places = [i for i in range(1, len(parts) + 1) if parts[i - 1][-1:] in ".!?"]
    if not pool or not places:
        return None
    return Corruption("addition", rng.choice(places), rng.choice(pool))


def _whole(sentence: str) -> bool:
    return sentence[-1:] in ".!?" and (
        sentence[:1].isupper() or sentence[:1].isdigit() or sentence[:1] == "("
    )


def delete_sentence(text: str, rng: random.Random) -> Corruption | None:
    """Remove one true sentence (never the only one, and not the first: it names the tissue)."""
    parts = sentences(text)
    if len(parts) < 2:
        return None
    i = rng.randint(1, len(parts) - 1)
    return Corruption("deletion", i, parts[i])


def modify_term(text: str, rng: random.Random) -> Corruption | None:
    """Swap a vocabulary term that occurs exactly once for another of its group that does not occur."""
    parts = sentences(text)
    options = []
    for group, terms in GROUPS.items():
        for term in terms:
            hits = [(i, m) for i, s in enumerate(parts) for m in term_pattern(term).finditer(s)]
            if len(hits) != 1:
                continue
            wrong = [t for t in terms if t != term and not term_pattern(t).search(text)]
            if wrong:
                options.append((group, term, hits[0][0], wrong))
    if not options:
        return None
    group, term, i, wrong = rng.choice(sorted(options, key=lambda o: (o[0], o[1])))
    found = term_pattern(term).search(parts[i])
    if found is None:  # pragma: no cover - found above
        return None
    true_text, new_text = found.group(0), _same_case(found.group(0), rng.choice(wrong))
    new_sentence = parts[i][: found.start()] + new_text + parts[i][found.end() :]
    return Corruption("modification", i, new_sentence, true_text, new_text, KIND_OF_GROUP[group])


def corrupt(text: str, kind: str, foreign: Sequence[str], rng: random.Random) -> Corruption | None:
    """One corruption of ``kind``, or None when this text offers none (too short, no term)."""
    if kind == "addition":
        return add_sentence(text, foreign, rng)
    if kind == "deletion":
        return delete_sentence(text, rng)
    if kind == "modification":
        return modify_term(text, rng)
    raise ValueError(f"unknown corruption kind {kind!r}; kinds: {', '.join(KINDS)}")


def diff_corruption(source: str, changed: str, kind: str) -> Corruption | None:
    """The corruption an LLM made, read back at sentence level, or None when it is not one clean
    error of ``kind`` (then the answer is not used: an unrecorded change would make a wrong target).

    addition: one sentence inserted; deletion: one sentence removed; modification: one sentence
    changed (recorded whole: ``before`` and ``after`` are the true and the wrong sentence).
    """
    src, dst = sentences(source), sentences(changed)
    if kind == "addition" and len(dst) == len(src) + 1:
        i = next((k for k in range(len(src)) if src[k] != dst[k]), len(src))
        if dst[:i] + dst[i + 1 :] == src and _whole(dst[i]):
            return Corruption("addition", i, dst[i], source="llm")
    elif kind == "deletion" and len(dst) == len(src) - 1:
        i = next((k for k in range(len(dst)) if src[k] != dst[k]), len(dst))
        if src[:i] + src[i + 1 :] == dst:
            return Corruption("deletion", i, src[i], source="llm")
    elif kind == "modification" and len(dst) == len(src) and dst != src:
        diff = [k for k in range(len(src)) if src[k] != dst[k]]
        if len(diff) == 1:
            i = diff[0]
            return Corruption("modification", i, dst[i], src[i], dst[i], "llm", source="llm")
    return None
