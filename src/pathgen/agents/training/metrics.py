"""Text metrics of agent evaluation, implemented here (no extra dependency): ROUGE-L on words via
the longest common subsequence, word-overlap F1, and the vocabulary terms a text mentions."""

from __future__ import annotations

import re
from collections import Counter

from pathgen.agents.training.vocab import terms_in

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) on lower-cased words."""
    c, r = words(candidate), words(reference)
    n = lcs_length(c, r)
    if n == 0:
        return 0.0
    precision, recall = n / len(c), n / len(r)
    return 2 * precision * recall / (precision + recall)


def overlap_f1(a: str, b: str) -> float:
    """Bag-of-words F1 of two texts (how much two edit texts are about the same thing)."""
    wa, wb = Counter(words(a)), Counter(words(b))
    common = sum((wa & wb).values())
    if not common:
        return 0.0
    p, r = common / sum(wa.values()), common / sum(wb.values())
    return 2 * p * r / (p + r)


def normalized(text: str) -> str:
    return " ".join(words(text))


def terms(text: str) -> set[str]:
    return terms_in(text)
