"""Caption quality measured on text: length, refusals and boilerplate, near-duplicates, and report
findings that a caption states although the description it summarises never did.

Why the last one: the summary agent sees the slide's report findings as well as the description;
a caption that names a report finding the description never mentioned repeats the report instead
of describing the patch (a finding true of the slide need not be visible in this patch).
Near-duplicates are found with MinHash over word 3-grams and banded locality-sensitive hashing, so
the cost grows with the number of captions, not its square.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z][a-z\-]+")
# Words too common in pathology prose to show that a caption repeats the report.
STOPWORDS = frozenset(
    (
        "about", "above", "after", "again", "also", "among", "and", "any", "are", "around", "as", "at",
        "be", "been", "being", "both", "but", "by", "can", "cells", "cell", "could", "did", "does",
        "each", "either", "few", "for", "from", "further", "had", "has", "have", "having", "here",
        "hence", "his", "her", "however", "into", "its", "itself", "may", "might", "more", "most",
        "much", "must", "near", "neither", "nor", "not", "noted", "of", "off", "often", "on", "once",
        "only", "other", "our", "out", "over", "own", "present", "same", "seen", "shows", "shown",
        "should", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these",
        "they", "this", "those", "through", "tissue", "to", "too", "under", "until", "upon", "very",
        "visible", "was", "were", "what", "when", "where", "which", "while", "who", "whom", "whose",
        "why", "will", "with", "within", "without", "would", "image", "patch", "slide", "section",
        "specimen", "features", "feature", "appears", "appear", "area", "areas", "region", "regions",
        "consistent", "suggestive", "pattern",
    )
)  # fmt: skip


def words(text: str) -> list[str]:
    return _WORD.findall(str(text or "").lower())


def content_terms(text: str, min_len: int = 5) -> set[str]:
    """Lower-case words of at least ``min_len`` letters that are not pathology prose filler."""
    return {w for w in words(text) if len(w) >= min_len and w not in STOPWORDS}


def refusal_hits(text: str, phrases: Sequence[str]) -> list[str]:
    """The configured refusal/boilerplate phrases (case-insensitive substrings) found in ``text``."""
    low = " ".join(str(text or "").lower().split())
    return [p for p in phrases if p.lower() in low]


def unseen_findings(caption: str, description: str, findings: Sequence[str], min_len: int = 5) -> list[str]:
    """Terms of the report findings that the caption states and the description does not."""
    report = set().union(*(content_terms(f, min_len) for f in findings)) if findings else set()
    if not report:
        return []
    said = content_terms(caption, min_len) & report
    return sorted(said - content_terms(description, min_len))


def _shingles(text: str, n: int = 3) -> set[int]:
    w = words(text)
    if len(w) < n:
        return {zlib.crc32(" ".join(w).encode())} if w else set()
    return {zlib.crc32(" ".join(w[i : i + n]).encode()) for i in range(len(w) - n + 1)}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(
    texts: Sequence[str], threshold: float = 0.8, num_perm: int = 64, bands: int = 16, seed: int = 0
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, jaccard)`` (i < j) of texts whose word 3-gram Jaccard similarity is at least
    ``threshold``; candidates from MinHash LSH, each confirmed with the exact Jaccard.

    Texts identical up to case and spacing are grouped first (each pairs with its group's first
    text) and only the first of a group is hashed: a boilerplate caption repeated 10^5 times would
    otherwise fill one LSH bucket with 10^10 candidate pairs.
    """
    if num_perm % bands:
        raise ValueError("num_perm must be a multiple of bands")
    first_of: dict[str, int] = {}
    out: list[tuple[int, int, float]] = []
    unique: list[int] = []
    for i, t in enumerate(texts):
        norm = " ".join(str(t or "").lower().split())
        if norm in first_of:
            out.append((first_of[norm], i, 1.0))
        else:
            first_of[norm] = i
            unique.append(i)
    sets = {i: _shingles(texts[i]) for i in unique}
    rng = np.random.default_rng(seed)
    prime = np.uint64((1 << 61) - 1)
    a = rng.integers(1, 1 << 31, num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, num_perm, dtype=np.uint64)
    rows = num_perm // bands
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for i in unique:
        if not sets[i]:
            continue
        x = np.fromiter(sets[i], dtype=np.uint64)
        sig = ((np.outer(x, a) + b) % prime).min(axis=0)
        for band in range(bands):
            buckets[(band, sig[band * rows : (band + 1) * rows].tobytes())].append(i)
    seen: set[tuple[int, int]] = set()
    for members in buckets.values():
        for pos, i in enumerate(members):
            for j in members[pos + 1 :]:
                if (i, j) in seen:
                    continue
                seen.add((i, j))
                sim = jaccard(sets[i], sets[j])
                if sim >= threshold:
                    out.append((i, j, sim))
    return sorted(out)
