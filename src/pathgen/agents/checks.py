"""Output checks every agent applies: empty text, refusals, repetition loops, wrong language, cut-off.

Each check returns a reason string or None; an agent re-asks when any fails and rejects the item,
with the reason, when re-asks run out. For ``offline_demo`` generators (random test models, whose
output is gibberish by construction) the checks in :data:`RELAXABLE` are relaxed: the output is
kept and flagged ``relaxed:<reason>``, so the offline chain completes and nobody mistakes the rows
for real captions.
"""

from __future__ import annotations

import re

RELAXABLE = frozenset({"refusal", "repetition", "language", "cut_off", "invalid_json"})

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i am unable|i'?m unable|i'?m not able|"
    r"as an ai|i am not able|unfortunately,? i can)|\b(cannot|can't|unable to) (assist|help) with\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_EN_STOP = frozenset(
    {"the", "a", "an", "of", "and", "or", "with", "in", "on", "at", "to", "is", "are", "was", "were", "be"}
    | {"by", "as", "from", "this", "that", "these", "there", "which", "it", "its", "for", "no", "not", "into"}
)
_OTHER_STOP = frozenset(
    {"le", "la", "les", "des", "du", "et", "est", "une", "un", "dans", "avec", "pour"}  # French
    | {"der", "die", "das", "und", "ist", "mit", "ein", "eine", "den"}  # German
    | {"el", "los", "las", "del", "que", "con", "una", "por", "para"}  # Spanish
    | {"il", "di", "che", "della", "sono"}  # Italian
)


def check_output(text: str, finish_reason: str = "stop", english: bool = True) -> str | None:
    """The first failed check's reason, or None when the text is usable."""
    if not text or not text.strip():
        return "empty"
    if _REFUSAL.search(text[:300]):
        return "refusal"
    if is_repetitive(text):
        return "repetition"
    if english and not looks_english(text):
        return "language"
    if finish_reason == "length":
        return "cut_off"
    return None


def is_repetitive(text: str, n: int = 4, min_words: int = 24, max_repeat_share: float = 0.5) -> bool:
    """A loop: the same word n-grams make up most of a long text, or one phrase repeats back to back."""
    words = text.lower().split()
    if len(words) >= min_words:
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if 1 - len(set(grams)) / len(grams) > max_repeat_share:
            return True
    # Loops with short periods or without spaces: the tail equals itself shifted by the loop's
    # period. A few C-speed string compares; no regex backtracking (this runs on every answer).
    tail = text[-400:]
    if len(tail) < 160:
        return False
    return any(tail[p:] == tail[:-p] for p in range(1, 101))


def looks_english(text: str) -> bool:
    """Latin script, and English function words outnumber French/German/Spanish/Italian ones."""
    if not text.isascii():  # the common case (ASCII English) skips the per-character scan
        letters = [c for c in text if c.isalpha()]
        if not letters:
            return False
        latin = sum(1 for c in letters if c.isascii() or "\u00c0" <= c <= "\u024f")
        if latin / len(letters) < 0.8:
            return False
    elif not any(c.isalpha() for c in text):
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 8:
        return True  # too short to judge
    en = sum(w in _EN_STOP for w in words)
    other = sum(w in _OTHER_STOP for w in words)
    return en >= other
