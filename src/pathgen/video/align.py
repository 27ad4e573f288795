"""Alignment: each kept frame gets the cleaned text spoken while it was on screen.

A kept frame is on screen from the start of its stable clip (or of its shot, for the first frame
of a shot) until the next kept frame of the same shot appears, or the shot ends. Its text window
widens that by ``lead_s`` before (narrators announce what comes) and ``lag_s`` after (and explain
what just went). A transcript chunk belongs to a frame when at least ``min_overlap`` of the chunk's
duration lies inside the window; a chunk can belong to two frames (Quilt's pairs are many-to-many).

Confidence = histology score x the share of the paired speech spoken while the frame was actually
on screen (not in the lead/lag margins): 1.0 for a certain histology frame narrated exactly while
shown, lower for text borrowed from the margins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pathgen.video.text import Chunk, Cleaned


@dataclass
class Window:
    on: float
    off: float
    start: float
    end: float


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def windows(frames: Sequence[dict[str, Any]], duration: float, lead_s: float, lag_s: float) -> list[Window]:
    """On-screen interval and text window of each kept frame (``frames`` sorted by time)."""
    out = []
    for i, f in enumerate(frames):
        nxt = frames[i + 1] if i + 1 < len(frames) else None
        first_of_shot = i == 0 or frames[i - 1]["shot"] != f["shot"]
        on = f["shot_start"] if first_of_shot else f["run_start"]
        off = nxt["run_start"] if nxt is not None and nxt["shot"] == f["shot"] else f["shot_end"]
        off = max(off, f["run_end"])
        out.append(
            Window(on, off, max(0.0, on - lead_s), min(duration, off + lag_s) if duration else off + lag_s)
        )
    return out


def pair_text(
    window: Window, chunks: Sequence[Chunk], cleaned: dict[int, Cleaned], min_overlap: float
) -> dict[str, Any] | None:
    """The text of one frame's window (None when no chunk falls in it)."""
    picked = []
    for c in chunks:
        length = max(c.end - c.start, 1e-3)
        if _overlap(c.start, c.end, window.start, window.end) / length >= min_overlap - 1e-9:
            picked.append(c)
    if not picked:
        return None
    spoken = sum(max(c.end - c.start, 1e-3) for c in picked)
    on_screen = sum(_overlap(c.start, c.end, window.on, window.off) for c in picked)
    parts = [cleaned[c.index] for c in picked if c.index in cleaned]

    def merged(attr: str) -> list[str]:
        seen: dict[str, None] = {}
        for p in parts:
            for item in getattr(p, attr):
                seen.setdefault(item, None)
        return list(seen)

    medical, roi = merged("medical"), merged("roi")
    corrected = " ".join(p.corrected for p in parts if p.corrected)
    return {
        "caption": " ".join(medical) or corrected,
        "medical_text": " ".join(medical),
        "roi_text": " ".join(roi),
        "corrected_text": corrected,
        "noisy_text": " ".join(c.text for c in picked),
        "keywords": merged("keywords"),
        "concept_ids": merged("concept_ids"),
        "chunks": [c.index for c in picked],
        "text_start": min(c.start for c in picked),
        "text_end": max(c.end for c in picked),
        "time_share": round(on_screen / spoken, 4),
        "cleaned_by": sorted({p.by for p in parts}),
    }
