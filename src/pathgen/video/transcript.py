"""Sidecar transcripts: ``.srt`` and WebVTT ``.vtt`` cues as timed segments.

Parsed by hand (two small formats) to be forgiving where real files vary and strict where a wrong
answer would misalign pairs: a BOM, CRLF line ends, missing cue numbers, VTT headers, ``NOTE`` /
``STYLE`` / ``REGION`` blocks, cue settings after the times, ``mm:ss.ttt`` times, ``,`` or ``.``
before milliseconds, markup (``<i>``, ``<c.colour>``, YouTube's inline ``<00:00:01.500>`` word
times) and HTML entities are all accepted; YouTube's rolling captions (each cue repeating the
previous line) are de-duplicated. A timing line that cannot be read, or a cue that ends before it
starts, raises :class:`TranscriptError`: the video gets an error row rather than misaligned text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

SIDECAR_SUFFIXES = (".vtt", ".srt")
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")


class TranscriptError(Exception):
    """A transcript that cannot be trusted (broken timestamps): the video's error row."""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def _clean(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def parse_cues(text: str, name: str = "transcript") -> list[Segment]:
    """Segments of an SRT or WebVTT document (the format is recognised by its content)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks = re.split(r"\n\s*\n", text.strip())
    segments: list[Segment] = []
    previous_lines: list[str] = []
    for n, block in enumerate(blocks, 1):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        head = lines[0].strip()
        if head.startswith("WEBVTT") or head.split(" ")[0] in ("NOTE", "STYLE", "REGION"):
            if not any("-->" in ln for ln in lines):
                continue
            lines = lines[next(i for i, ln in enumerate(lines) if "-->" in ln) :]
        timing_at = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if timing_at is None:
            if all(ln.strip().isdigit() for ln in lines):
                continue  # a stray cue number
            raise TranscriptError(f"{name}: cue {n} has no timing line ({head[:60]!r})")
        match = _TIMING.match(lines[timing_at])
        if not match:
            raise TranscriptError(
                f"{name}: cue {n} has an unreadable timing line {lines[timing_at].strip()[:80]!r}"
            )
        g = match.groups()
        start, end = _seconds(*g[:4]), _seconds(*g[4:])
        if end < start:
            raise TranscriptError(f"{name}: cue {n} ends ({end:.3f}s) before it starts ({start:.3f}s)")
        body = [_clean(ln) for ln in lines[timing_at + 1 :]]
        body = [b for b in body if b]
        # YouTube rolling captions: a cue repeats the last line of the previous one, then adds one
        new = [b for b in body if b not in previous_lines]
        previous_lines = body
        if new:
            segments.append(Segment(start, end, " ".join(new)))
    segments.sort(key=lambda s: (s.start, s.end))
    return segments


def read_transcript(path: Path) -> list[Segment]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = Path(path).read_text(encoding="latin-1")
    return parse_cues(text, Path(path).name)


def find_sidecar(video: Path) -> Path | None:
    """``talk.vtt`` / ``talk.srt`` beside ``talk.mp4`` (also ``talk.en.vtt``, as yt-dlp names them)."""
    for suffix in SIDECAR_SUFFIXES:
        exact = video.with_suffix(suffix)
        if exact.is_file():
            return exact
    for suffix in SIDECAR_SUFFIXES:
        found = sorted(video.parent.glob(f"{glob_escape(video.stem)}.*{suffix}"))
        if found:
            return found[0]
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)
