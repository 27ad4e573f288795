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

_REFUSAL_OPENING = re.compile(
    r"\W*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i am unable|i'?m unable|i'?m not able|"
    r"as an ai|i am not able|unfortunately,? i can)",
    re.IGNORECASE,
)
_REFUSAL_PHRASE = re.compile(r"\b(cannot|can't|unable to) (assist|help) with\b", re.IGNORECASE)
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
    if is_refusal(text[:300]):
        return "refusal"
    if is_repetitive(text):
        return "repetition"
    if english and not looks_english(text):
        return "language"
    if finish_reason == "length":
        return "cut_off"
    return None


def is_refusal(head: str) -> bool:
    """A refusal opening, or "cannot help with" anywhere in ``head``.

    Why split in two: one regex with both alternatives was tried at every position of every
    answer; the opening is only tried at the start, and the phrase only when "can" or "unable"
    occurs at all (a substring test in C).
    """
    if _REFUSAL_OPENING.match(head):
        return True
    low = head.lower()
    return ("can" in low or "unable" in low) and _REFUSAL_PHRASE.search(head) is not None


def is_repetitive(text: str, n: int = 4, min_words: int = 24, max_repeat_share: float = 0.5) -> bool:
    """A loop: the same word n-grams make up most of a long text, or one phrase repeats back to back."""
    words = text.lower().split()
    if len(words) >= min_words:
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))  # consecutive n-grams, in C
        if 1 - len(set(grams)) / len(grams) > max_repeat_share:
            return True
    return _has_short_period(text[-400:], 100)


def _has_short_period(tail: str, max_period: int, min_len: int = 160) -> bool:
    """``tail`` equals itself shifted by some period p <= ``max_period`` (a loop without spaces too).

    Why not compare all shifts: a p-periodic tail has its own head ``tail[:len - max_period]`` at
    offset p, so one C-speed ``find`` rules out every period of ordinary text at once (this runs on
    every answer); only the offsets it finds are verified.
    """
    if len(tail) < min_len:
        return False
    head = tail[: len(tail) - max_period]
    p = tail.find(head, 1, max_period + len(head))
    while p > 0:
        if tail[p:] == tail[:-p]:
            return True
        p = tail.find(head, p + 1, max_period + len(head))
    return False


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
    # ASCII: lower-casing first yields the same words (C speed instead of one call per word).
    words = _WORD.findall(text.lower()) if text.isascii() else [w.lower() for w in _WORD.findall(text)]
    if len(words) < 8:
        return True  # too short to judge
    return sum(map(_EN_STOP.__contains__, words)) >= sum(map(_OTHER_STOP.__contains__, words))
