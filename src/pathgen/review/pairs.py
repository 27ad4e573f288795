"""The pairs the review app pages through, with what a reviewer needs to judge each one.

A pair is an exportable caption record (the agents' caption, description and the revise agent's
edits) joined with its slide (project, size), the reason the selection kept its tile, and the audit's
flags when ``RUN/audit/flags.parquet`` exists. Loaded once when the app starts; review statuses come
from the store on every request, so two reviewers see each other's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pathgen.rundir import RunDir


@dataclass
class Pair:
    index: int
    tile_id: str
    slide_id: str
    x: int
    y: int
    size: int
    caption: str
    description: str
    revised: str
    edits: list[dict[str, Any]]
    project: str
    reason: str
    flags: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "tile_id": self.tile_id,
            "slide_id": self.slide_id,
            "x": self.x,
            "y": self.y,
            "size": self.size,
        }


def load_pairs(run: RunDir) -> tuple[list[Pair], dict[str, dict[str, Any]]]:
    """``(pairs in tiles order, slides by id)``; raises FileNotFoundError before the caption stage."""
    import pyarrow.parquet as pq

    from pathgen.agents.results import load_caption_records
    from pathgen.export.records import exportable, normalise_edits, slide_rows, sort_records

    run.require(run.slides, "tile")
    run.require(run.journal, "caption")
    slides = slide_rows(run.slides)
    reasons: dict[str, str] = {}
    if run.selected.exists():
        table = pq.read_table(run.selected, columns=["tile_id", "reason"])
        reasons = {str(r["tile_id"]): str(r["reason"] or "") for r in table.to_pylist()}
    flags: dict[str, list[str]] = {}
    audit = run.root / "audit" / "flags.parquet"
    if audit.exists():
        table = pq.read_table(audit, columns=["tile_id", "flags"])
        flags = {str(r["tile_id"]): list(r["flags"] or []) for r in table.to_pylist()}
    pairs = []
    for record in sort_records(load_caption_records(run)):
        sid = str(record["slide_id"])
        if exportable(record) is not None or sid not in slides:
            continue
        revision = record.get("revision") if isinstance(record.get("revision"), dict) else {}
        tid = str(record["tile_id"])
        pairs.append(
            Pair(
                index=len(pairs), tile_id=tid, slide_id=sid, x=int(record["x"]), y=int(record["y"]),
                size=int(record["size"]), caption=str(record["caption"]),
                description=str(record.get("description") or ""), revised=str(revision.get("revised") or ""),
                edits=normalise_edits(revision), project=str(slides[sid].get("project") or "").strip(),
                reason=reasons.get(tid, ""), flags=flags.get(tid, []),
            )
        )  # fmt: skip
    return pairs, slides
