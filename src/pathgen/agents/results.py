"""Caption records for export: one per selected tile whose chain finished under the current chain.

"Current" is the chain (prompt ids, models, sampling) of the last caption run, stored in the
journal's ``meta`` table; rows of older prompt versions stay in the journal but are not exported.
A chain finishes when summarize has a final row, or when an earlier agent rejected the tile (then
``status='rejected'`` and ``caption`` is the empty string).
"""

from __future__ import annotations

from typing import Any

from pathgen.agents.chain import chain_keys
from pathgen.engine.journal import Journal
from pathgen.records import SelectedTile
from pathgen.rundir import RunDir


def load_caption_records(run: RunDir) -> list[dict[str, Any]]:
    """Records with keys tile_id, slide_id, x, y, size, caption, description, revision, status,
    flags, models, prompt_versions (see the shared contract), in selected.parquet order."""
    import pyarrow.parquet as pq

    if not run.journal.exists():
        return []
    run.require(run.selected, "select")
    columns = ["tile_id", "slide_id", "x", "y", "size"]
    selected = [SelectedTile.from_rows(r) for r in pq.read_table(run.selected, columns=columns).to_pylist()]
    with Journal(run.journal) as journal:
        chain = journal.get_meta("chain")
        if not chain:
            return []
        keys_of = {tile.tile_id: chain_keys(tile.tile_id, chain) for tile in selected}
        rows = journal.get_many(k for keys in keys_of.values() for k in keys)
    records = []
    for tile in selected:
        chain_rows = []
        for key in keys_of[tile.tile_id]:
            row = rows.get(key)
            if row is None:
                break
            chain_rows.append(row)
            if row["status"] == "rejected":
                break
        finished = chain_rows and (len(chain_rows) == len(chain) or chain_rows[-1]["status"] == "rejected")
        if finished:
            records.append(_record(tile, chain_rows))
    return records


def _record(tile: SelectedTile, rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_agent = {r["agent"]: r for r in rows}
    last = rows[-1]
    flags: list[str] = []
    for r in rows:
        flags.extend(f for f in r["flags"] if f not in flags)
    if last["status"] == "rejected":
        status = "rejected"
    elif "truncated" in flags or last["status"] == "truncated":
        status = "truncated"
    else:
        status = "ok"
    revise = by_agent.get("revise")
    revision = (revise.get("data") if revise else None) or {
        "edits": [],
        "revised": revise["output"] if revise else "",
    }
    summarize = by_agent.get("summarize")
    return {
        "tile_id": tile.tile_id,
        "slide_id": tile.slide_id,
        "x": tile.x,
        "y": tile.y,
        "size": tile.size,
        "caption": summarize["output"] if summarize and status != "rejected" else "",
        "description": by_agent["describe"]["output"] if "describe" in by_agent else "",
        "revision": revision,
        "status": status,
        "flags": flags,
        "models": {r["agent"]: r["model"] for r in rows},
        "prompt_versions": {r["agent"]: r["prompt_version"].split("@")[0] for r in rows},
    }
