"""Transcript text: chunks by pauses and sentences, a rule-based cleaning pass, the vocabulary.

Quilt chunks the ASR output, has an LLM correct medical terms and pull out the medical and the
region-of-interest (ROI) statements, and validates keywords against UMLS. This module holds the
parts that need no model: chunking, the vocabulary (a plain file; UMLS is the user's to supply),
keyword extraction and validation, and the rule-based pass used when no LLM is configured —
fillers removed, words within a small edit distance of a vocabulary word corrected, medical
statements = sentences naming a vocabulary term, ROI statements = those that also point at the
screen ("here", "this area", "at the top", ...). The rule pass is recorded as such in every pair.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pathgen.video.transcript import Segment

FILLERS = re.compile(
    r"\b(?:um+|uh+|erm+|er|ah+|hmm+|you know|i mean|sort of|kind of)\b[,]?\s*", re.IGNORECASE
)
ROI_CUES = re.compile(
    r"\b(?:here|there|this (?:area|region|field|part|spot|one)|these|arrow|pointer|circled?|"
    r"(?:top|bottom|upper|lower|left|right|centre|center|middle)|you can see|notice|look at|we see)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_SPLIT_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass
class Chunk:
    """A stretch of narration between pauses or sentence ends: the unit the LLM cleans."""

    index: int
    start: float
    end: float
    text: str


@dataclass
class Cleaned:
    """What cleaning made of a chunk (by an LLM or by rules)."""

    corrected: str
    medical: list[str] = field(default_factory=list)
    roi: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    concept_ids: list[str] = field(default_factory=list)
    by: str = "rules"


def chunk_segments(
    segments: Sequence[Segment], pause_s: float = 1.0, max_chunk_s: float = 30.0
) -> list[Chunk]:
    """Merge consecutive segments until a sentence ends, a pause of ``pause_s`` or ``max_chunk_s``."""
    chunks: list[Chunk] = []
    cur: list[Segment] = []

    def close() -> None:
        if cur:
            text = " ".join(s.text for s in cur).strip()
            if text:
                chunks.append(Chunk(len(chunks), cur[0].start, max(s.end for s in cur), text))
            cur.clear()

    for i, seg in enumerate(segments):
        if cur and (seg.start - cur[-1].end >= pause_s or seg.end - cur[0].start > max_chunk_s):
            close()
        cur.append(seg)
        nxt = segments[i + 1] if i + 1 < len(segments) else None
        if _SENTENCE_END.search(seg.text.strip()) or nxt is None:
            close()
    close()
    return chunks


class Vocabulary:
    """Terms (optionally with a concept id), matched case-insensitively on whole words, longest first."""

    def __init__(self, terms: dict[str, str], source: str):
        if not terms:
            raise ValueError(f"vocabulary {source} holds no term")
        self.terms = terms  # lower-case term -> concept id ("" when none)
        self.source = source
        ordered = sorted(terms, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w&])(?:" + "|".join(re.escape(t) for t in ordered) + r")(?![\w&])", re.IGNORECASE
        )
        self._words = sorted({w for t in terms for w in t.split() if len(w) >= 6 and w.isalpha()})

    @classmethod
    def load(cls, path: Path | None = None) -> Vocabulary:
        if path is None:
            text = resources.files("pathgen.video").joinpath("vocabulary.txt").read_text(encoding="utf-8")
            source = "pathgen default (vocabulary.txt)"
        else:
            if not Path(path).is_file():
                raise FileNotFoundError(f"vocabulary file not found: {path}")
            text = Path(path).read_text(encoding="utf-8")
            source = str(path)
        terms: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            term, _, cid = line.partition("\t")
            terms[" ".join(term.lower().split())] = cid.strip()
        return cls(terms, source)

    def find(self, text: str) -> list[str]:
        """Vocabulary terms in ``text``, in order of first appearance, each once (lower case)."""
        seen: dict[str, None] = {}
        for m in self._pattern.finditer(text):
            seen.setdefault(" ".join(m.group(0).lower().split()), None)
        return list(seen)

    def validate(self, keywords: Iterable[str]) -> list[str]:
        """The keywords that are vocabulary terms (what an LLM proposes is kept only if known)."""
        out: dict[str, None] = {}
        for k in keywords:
            key = " ".join(str(k).lower().split())
            if key in self.terms:
                out.setdefault(key, None)
        return list(out)

    def ids(self, keywords: Iterable[str]) -> list[str]:
        return [self.terms[k] for k in keywords if self.terms.get(k)]

    def correct_word(self, word: str, cutoff: float = 0.85) -> str:
        """A long word that is a near-miss of a vocabulary word (an ASR slip) becomes that word."""
        low = word.lower()
        if len(low) < 6 or not low.isalpha() or low in self.terms:
            return word
        match = difflib.get_close_matches(low, self._words, n=1, cutoff=cutoff)
        return match[0] if match else word


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SPLIT_SENTENCES.split(text) if s.strip()]


def clean_rules(text: str, vocab: Vocabulary) -> Cleaned:
    """The rule-based pass: fillers out, near-miss medical words corrected, statements by keyword."""
    text = FILLERS.sub("", text)
    text = re.sub(r"\b(\w+)( \1\b)+", r"\1", text, flags=re.IGNORECASE)  # "the the" -> "the"
    words = re.split(r"(\W+)", text)
    corrected = "".join(vocab.correct_word(w) if w.isalpha() else w for w in words)
    corrected = " ".join(corrected.split())
    if corrected and corrected[0].islower():
        corrected = corrected[0].upper() + corrected[1:]
    medical = [s for s in sentences(corrected) if vocab.find(s)]
    roi = [s for s in medical if ROI_CUES.search(s)]
    keywords = vocab.find(corrected)
    return Cleaned(corrected, medical, roi, keywords, vocab.ids(keywords), by="rules")
