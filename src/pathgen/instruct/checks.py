"""The checks every generated item passes: structure, options, answer leaks, grounding.

Why term overlap for grounding: an answer whose content words are absent from the description the
LLM was given is, most of the time, something it invented (the failure LLaVA-Med filtered for);
the share of the answer's content terms found in the description is cheap, deterministic and
explainable in a rejection row. An LLM judge is the configurable alternative (``support: judge``).

Each check returns a reason string (``None``: passed), which becomes the re-ask text and, after the
re-asks, the rejection reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pathgen.agents.checks import is_refusal

_WORD = re.compile(r"[a-z][a-z0-9-]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "with",
        "in",
        "on",
        "at",
        "to",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "by",
        "as",
        "from",
        "this",
        "that",
        "these",
        "those",
        "there",
        "which",
        "it",
        "its",
        "for",
        "no",
        "not",
        "into",
        "than",
        "then",
        "also",
        "may",
        "can",
        "could",
        "would",
        "should",
        "will",
        "what",
        "who",
        "whom",
        "whose",
        "how",
        "why",
        "when",
        "where",
        "does",
        "do",
        "did",
        "has",
        "have",
        "had",
        "image",
        "shows",
        "seen",
        "see",
        "present",
        "presence",
        "feature",
        "features",
        "following",
        "most",
        "likely",
        "best",
        "describes",
        "described",
        "suggests",
        "suggest",
        "indicates",
        "indicate",
        "consistent",
        "about",
        "other",
        "some",
        "such",
        "any",
        "each",
        "both",
        "more",
        "less",
        "very",
        "within",
        "between",
        "their",
        "they",
        "them",
        "his",
        "her",
        "our",
        "your",
        "you",
        "patch",
        "slide",
        "tissue",
        "section",
    ]
)
# LLaVA-Med dropped generated turns containing these: the model pretends not to see the image.
BLIND_PHRASES = ("sorry", "cannot see the image", "can't see the image", "as an ai", "unable to view")


def norm(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: how options are compared."""
    return re.sub(r"\s+", " ", str(text).strip().lower()).strip(" .;:,!?\"'()")


def stem(word: str) -> str:
    """A crude stem (first 6 letters) so 'nuclei'/'nuclear', 'glands'/'glandular' meet."""
    return word[:6]


def content_terms(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(str(text).lower()) if w not in STOPWORDS and len(w) > 2}


def support(answer: str, description: str) -> float:
    """Share of the answer's content terms that occur in the description (1.0 for no terms)."""
    terms = content_terms(answer)
    if not terms:
        return 1.0
    return len(terms & content_terms(description)) / len(terms)


def check_mcq(
    item: dict[str, Any], description: str, min_options: int, max_options: int, min_support: float
) -> str | None:
    """Reasons, in the order a reader would look: shape, options, answer, leak, grounding."""
    for field in ("question", "options", "answer", "explanation"):
        if field not in item:
            return f"missing_{field}"
    question, options, answer = item["question"], item["options"], item["answer"]
    if not isinstance(question, str) or not question.strip():
        return "empty_question"
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        return "options_not_strings"
    if not min_options <= len(options) <= max_options:
        return f"option_count_{len(options)}"
    normed = [norm(o) for o in options]
    if len(set(normed)) != len(normed):
        return "options_not_unique"
    if not isinstance(answer, str) or norm(answer) not in normed:
        return "answer_not_in_options"
    if leaks(question, answer, [o for o in options if norm(o) != norm(answer)]):
        return "answer_leaked_in_question"
    if not isinstance(item["explanation"], str) or not item["explanation"].strip():
        return "empty_explanation"
    if any(is_blind(t) for t in (question, answer, item["explanation"])):
        return "refusal"
    if support(answer, description) < min_support:
        return "answer_not_supported"
    return None


def leaks(question: str, answer: str, distractors: Sequence[str]) -> bool:
    """The question gives the answer away: it contains the answer's text, or every content term of
    the answer that no distractor shares (the part that singles it out)."""
    q, a = norm(question), norm(answer)
    if a and re.search(rf"(?<![a-z0-9]){re.escape(a)}(?![a-z0-9])", q):
        return True
    own = content_terms(answer) - set().union(*(content_terms(d) for d in distractors))
    return bool(own) and own <= content_terms(question)


def is_blind(text: str) -> bool:
    low = str(text).lower()
    return is_refusal(str(text)[:300]) or any(p in low for p in BLIND_PHRASES)


def check_conversation(
    item: dict[str, Any], description: str, min_turns: int, max_turns: int, min_support: float
) -> str | None:
    turns = item.get("turns")
    if not isinstance(turns, list) or not turns:
        return "missing_turns"
    if not min_turns <= len(turns) <= max_turns:
        return f"turn_count_{len(turns)}"
    for turn in turns:
        if not isinstance(turn, dict):
            return "turn_not_object"
        q, a = turn.get("question"), turn.get("answer")
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            return "empty_turn"
        if is_blind(a) or is_blind(q):
            return "refusal"
    answers = " ".join(t["answer"] for t in turns)
    if support(answers, description) < min_support:
        return "answer_not_supported"
    return None
