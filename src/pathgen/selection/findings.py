"""Pathology report -> short "finding" prompts that a tile can be scored against.

A report mixes what a pathologist saw ("tumor invades the muscularis propria") with paperwork
(specimen labels, gross handling, signatures). Only the first kind can match a tile, and CLIP
text encoders read 77 tokens, so the report is cut into sentence-sized findings, the paperwork
is dropped, and repeats (reports often restate the diagnosis) are merged.
"""

from __future__ import annotations

import re
from typing import Any

_BULLET = re.compile(r"^\s*(?:[-*•·–]+|\(?\d{1,2}[.)]|\(?[A-Za-z][.)](?=\s))\s*")
_HEADER = re.compile(
    r"^\s*(?:final\s+|pathologic(?:al)?\s+|microscopic\s+|clinical\s+)?"
    r"(?:diagnosis|diagnoses|interpretation|impression|comments?|notes?|findings|description|"
    r"synoptic report|summary)\s*[:\-]\s*",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
_BOILERPLATE = re.compile(
    r"electronically signed|signed out|dictated|transcribed|pathologist|attending|resident|"
    r"i have personally|accession|case (?:no|number|#)|medical record|\bmrn\b|page \d+ of|"
    r"date of (?:birth|procedure|service|collection)|\bdob\b|received (?:fresh|in formalin|in)|"
    r"labeled (?:with|as)|cassettes?|submitted (?:in|for|entirely)|representative sections|"
    r"\bsee (?:comment|note|addendum)\b|\baddendum\b|specimen(?:s)?\s*(?:\(s\))?\s*:|"
    r"gross description|clinical (?:history|information)|procedure\s*:|\bprotocol\b|"
    r"\bphysician\b|\bhospital\b|\bclinic\b|\bblock [a-z0-9]+\b|tissue bank|consent|"
    r"\bmeasur(?:es|ing)\b.*\bcm\b|tumou?r size|greatest dimension|\bweigh(?:s|ing)\b.*\bg\b",
    re.IGNORECASE,
)
_SPECIMEN_LABEL = re.compile(r"^(?:part|specimen|site|slide|container)\s*[#A-Z0-9]*\s*[:.)-]?\s*$", re.I)


def split_findings(
    report: Any, *, min_words: int = 3, min_chars: int = 12, max_findings: int | None = 64
) -> list[str]:
    """Findings of a report, in order of appearance, boilerplate and duplicates removed.

    Splits on lines, bullets, semicolons and sentence ends; strips section headers
    ("FINAL DIAGNOSIS:") but keeps what follows them. ``None``/NaN/empty gives ``[]``.
    """
    if report is None or (isinstance(report, float) and report != report):
        return []
    text = str(report).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    seen: set[str] = set()
    for line in text.split("\n"):
        for piece in re.split(r";", line):
            for sentence in _SENTENCE.split(piece):
                if sentence.rstrip().endswith(":"):
                    continue  # a specimen label ("A. LEFT BREAST, MASTECTOMY:"), not a finding
                finding = _clean(sentence)
                if not _keep(finding, min_words, min_chars):
                    continue
                key = re.sub(r"[^a-z0-9]+", " ", finding.lower()).strip()
                if key in seen:
                    continue
                seen.add(key)
                out.append(finding)
                if max_findings is not None and len(out) >= max_findings:
                    return out
    return out


def _clean(fragment: str) -> str:
    text = fragment.strip()
    for _ in range(3):  # "A. FINAL DIAGNOSIS: - ..." carries several prefixes
        stripped = _HEADER.sub("", _BULLET.sub("", text)).strip()
        if stripped == text:
            break
        text = stripped
    text = " ".join(text.split())
    return text.strip(" .,:;-").strip()


def _keep(text: str, min_words: int, min_chars: int) -> bool:
    if len(text) < min_chars or len(text.split()) < min_words:
        return False
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.6 * len(text.replace(" ", "")):
        return False  # tables of numbers, ids, dates
    return not (_SPECIMEN_LABEL.match(text) or _BOILERPLATE.search(text))
