"""What export takes from the audit and the review: the one function ``export_stage`` calls.

Pairs flagged by the audit with any of ``drop_flags`` are left out (reason ``audit_<flag>``). Then
the latest review decision of each pair applies: ``reject`` leaves it out (``review_rejected``),
``edit`` replaces the agent's caption with the reviewer's, re-checked against the CLIP context (an
edit that does not fit is cut at a sentence or word boundary by the same rule as the summary
agent's captions, and the pair gets status ``truncated`` and flag ``review_edit_truncated``),
``accept`` keeps it. Every record gets ``reviewed`` and ``reviewer`` (the latest decision's), which
export writes into each sample's metadata; the card gets the review counts and the agreement
between reviewers who reviewed the same pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathgen.review.store import ReviewStore, agreement

REVIEWS_FILE = "reviews.sqlite"


@dataclass
class Curation:
    records: list[dict[str, Any]]
    skipped: Counter = field(default_factory=Counter)
    card: dict[str, str] = field(default_factory=dict)  # extra lines of the dataset card


def reviews_path(run_root: str | Path) -> Path:
    return Path(run_root) / REVIEWS_FILE


def _context_length() -> int:
    from pathgen.config import CaptionConfig, default_of

    return int(default_of(CaptionConfig, "context_length"))


def curate(
    run_root: str | Path,
    records: Sequence[Mapping[str, Any]],
    *,
    drop_flags: Iterable[str] = (),
    context_length: int | None = None,
) -> Curation:
    """The records export writes, with the audit's drops and the reviews applied (see module doc)."""
    from pathgen.agents.fit import fit_caption, fits
    from pathgen.audit.flags import flagged_tiles

    limit = context_length or _context_length()
    drop = flagged_tiles(run_root, drop_flags)
    store = ReviewStore(reviews_path(run_root))
    by_reviewer = store.latest_by_reviewer()
    latest = {tile: max(ds.values(), key=lambda d: d.at) for tile, ds in by_reviewer.items()}
    out = Curation(records=[])
    decided: Counter = Counter()
    for record in records:
        tile_id = str(record.get("tile_id"))
        if tile_id in drop:
            out.skipped[f"audit_{drop[tile_id][0]}"] += 1
            continue
        rec = {**record, "reviewed": False, "reviewer": None}
        decision = latest.get(tile_id)
        if decision is not None:
            decided[decision.decision] += 1
            if decision.decision == "reject":
                out.skipped["review_rejected"] += 1
                continue
            rec.update(reviewed=True, reviewer=decision.reviewer)
            if decision.decision == "edit" and decision.caption:
                caption = decision.caption
                if not fits(caption, limit):
                    caption, _ = fit_caption(caption, limit)
                    rec["status"] = "truncated"
                    rec["flags"] = [*(rec.get("flags") or []), "review_edit_truncated"]
                rec["caption"] = caption
        out.records.append(rec)
    if drop:
        out.card["audit flags dropped"] = ", ".join(sorted({f for fs in drop.values() for f in fs}))
    if by_reviewer:
        reviewers = {r for ds in by_reviewer.values() for r in ds}
        counts = ", ".join(f"{decided.get(k, 0)} {k}" for k in ("accept", "edit", "reject"))
        out.card["reviews"] = f"{len(latest)} pairs reviewed by {len(reviewers)} reviewer(s): {counts}"
        agree = agreement(by_reviewer)
        if agree["pairs"]:
            out.card["reviewer agreement"] = (
                f"{agree['pairs']} pair(s) reviewed by two or more reviewers: same decision "
                f"{agree['same_decision']:.0%}, same keep/reject {agree['same_keep']:.0%} "
                f"({agree['comparisons']} comparison(s))"
            )
        else:
            out.card["reviewer agreement"] = "no pair was reviewed by two reviewers"
    return out
