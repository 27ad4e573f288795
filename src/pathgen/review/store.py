"""``RUN/reviews.sqlite``: every review decision, appended; the latest one of a pair counts.

Why append-only: a decision is evidence (who said what about which pair, when), so nothing is
overwritten; the current state of a pair is its latest row, and agreement between reviewers is
computed from each reviewer's latest row. One short transaction per decision, WAL journal, so the
review app's threads and a concurrent ``pathgen export`` read a consistent table.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DECISIONS = ("accept", "edit", "reject")
MAX_REVIEWER = 80

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tile_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'edit', 'reject')),
    caption TEXT,
    reviewer TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_tile ON decisions (tile_id, id);
"""


@dataclass(frozen=True)
class Decision:
    tile_id: str
    decision: str
    caption: str | None
    reviewer: str
    at: float


def check_decision(decision: str, caption: str | None, reviewer: str) -> tuple[str, str | None, str]:
    """Validated ``(decision, caption, reviewer)``; raises ValueError saying what is wrong."""
    decision = str(decision or "").strip().lower()
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    reviewer = " ".join(str(reviewer or "").split())
    if not reviewer:
        raise ValueError("a reviewer name is required")
    if len(reviewer) > MAX_REVIEWER:
        raise ValueError(f"reviewer name longer than {MAX_REVIEWER} characters")
    if decision == "edit":
        caption = " ".join(str(caption or "").split())
        if not caption:
            raise ValueError("an edit needs the edited caption")
    else:
        caption = None
    return decision, caption, reviewer


class ReviewStore:
    """The decisions of one run (the file is created on the first write)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)
        return con

    def add(self, tile_id: str, decision: str, reviewer: str, caption: str | None = None) -> Decision:
        decision, caption, reviewer = check_decision(decision, caption, reviewer)
        row = Decision(str(tile_id), decision, caption, reviewer, time.time())
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT INTO decisions (tile_id, decision, caption, reviewer, at) VALUES (?, ?, ?, ?, ?)",
                    (row.tile_id, row.decision, row.caption, row.reviewer, row.at),
                )
        finally:
            con.close()
        return row

    def all(self) -> list[Decision]:
        """Every decision in the order it was made."""
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT tile_id, decision, caption, reviewer, at FROM decisions ORDER BY id"
            ).fetchall()
        finally:
            con.close()
        return [Decision(*r) for r in rows]

    def latest(self) -> dict[str, Decision]:
        """``{tile_id: the pair's latest decision}``."""
        return latest_of(self.all())

    def latest_by_reviewer(self) -> dict[str, dict[str, Decision]]:
        """``{tile_id: {reviewer: that reviewer's latest decision}}``."""
        out: dict[str, dict[str, Decision]] = {}
        for d in self.all():
            out.setdefault(d.tile_id, {})[d.reviewer] = d
        return out


def latest_of(decisions: Iterable[Decision]) -> dict[str, Decision]:
    out: dict[str, Decision] = {}
    for d in decisions:
        out[d.tile_id] = d
    return out


def agreement(by_reviewer: dict[str, dict[str, Decision]]) -> dict[str, float | int | None]:
    """Agreement between reviewers on the pairs that two or more reviewed (their latest decisions).

    ``pairs``: pairs with at least two reviewers; ``same_decision``: share of reviewer pairs on those
    that gave the same decision (accept / edit / reject); ``same_keep``: the same on keep (accept or
    edit) vs reject.
    """
    pairs = 0
    comparisons = same = same_keep = 0
    for reviewers in by_reviewer.values():
        ds = list(reviewers.values())
        if len(ds) < 2:
            continue
        pairs += 1
        for i in range(len(ds)):
            for j in range(i + 1, len(ds)):
                comparisons += 1
                same += ds[i].decision == ds[j].decision
                same_keep += (ds[i].decision == "reject") == (ds[j].decision == "reject")
    return {
        "pairs": pairs,
        "comparisons": comparisons,
        "same_decision": same / comparisons if comparisons else None,
        "same_keep": same_keep / comparisons if comparisons else None,
    }
