"""The audit's flag names, and reading ``RUN/audit/flags.parquet`` back (for export's --drop-flag)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PATCH_FLAGS = ("blur", "pen", "background", "fold", "jpeg")
CAPTION_FLAGS = ("misaligned", "near_duplicate", "short", "long", "refusal", "report_leak")
FLAGS = PATCH_FLAGS + CAPTION_FLAGS


def check_flags(names: Iterable[str]) -> list[str]:
    """Flag names, validated (a typo must not silently drop nothing)."""
    out = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        if name not in FLAGS:
            raise ValueError(f"unknown audit flag {name!r}; flags: {', '.join(FLAGS)}")
        out.append(name)
    return out


def flagged_tiles(run_root: str | Path, names: Iterable[str]) -> dict[str, list[str]]:
    """``{tile_id: [its flags among names]}`` for the pairs the audit flagged with any of ``names``."""
    wanted = set(check_flags(names))
    if not wanted:
        return {}
    path = Path(run_root) / "audit" / "flags.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `pathgen audit {run_root}` before --drop-flag")
    import pyarrow.parquet as pq

    out = {}
    for row in pq.read_table(path, columns=["tile_id", "flags"]).to_pylist():
        hits = [f for f in row["flags"] or [] if f in wanted]
        if hits:
            out[str(row["tile_id"])] = hits
    return out
