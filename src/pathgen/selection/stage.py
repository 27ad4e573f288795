"""The `select` stage: embeddings + prompts in, ``selected.parquet`` out.

Per slide: prompt retrieval against the slide's project prompts and report findings, then a
k-means quota up to the per-slide cap (:mod:`pathgen.selection.select`); then one run-wide
near-duplicate pass (:mod:`pathgen.selection.dedup`) over the picks only. Slides stream: one
slide's tiles and embeddings are in memory at a time (read through :mod:`pathgen.tables`), so
memory is bounded by the selected set (<= per_slide_cap a slide), not by the tile table. Prompt
texts are embedded with the encoder that embedded the tiles (re-loaded from
``embeddings/meta.json``), each distinct text once. The stage is deterministic for a seed and
skipped when nothing it depends on changed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pathgen.config import SelectConfig, dump_section
from pathgen.embed import embedding_path, read_meta
from pathgen.executors import Executor
from pathgen.rundir import RunDir, file_identity, fingerprint, write_parquet
from pathgen.selection.dedup import near_duplicate_filter
from pathgen.selection.findings import split_findings
from pathgen.selection.library import load_library, normalise_project
from pathgen.selection.select import REASONS, priority_order, select_slide, single_threaded_blas, slide_seed
from pathgen.tables import iter_tiles_by_slide, tile_counts, tiles_identity

STAGE = "select"
VERSION = 2  # 2: random picks within clusters and summed finding scores by default


def _slides(run: RunDir) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(run.require(run.slides, "tile")).to_pylist()
    return sorted((r for r in rows if r.get("status") == "ok"), key=lambda r: r["slide_id"])


TILE_COLUMNS = ["tile_id", "slide_id", "x", "y", "size"]


class _VecBuffer:
    """The picks' embeddings in one growing float16 array (no list of parts + concatenate copy)."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.data: np.ndarray | None = None
        self.n = 0

    def add(self, vec: np.ndarray) -> None:
        if self.data is None:
            self.data = np.empty((self.capacity, vec.shape[1]), np.float16)
        if self.n + len(vec) > len(self.data):
            grown = np.empty((max(2 * len(self.data), self.n + len(vec)), self.data.shape[1]), np.float16)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + len(vec)] = vec
        self.n += len(vec)

    def array(self) -> np.ndarray:
        return np.zeros((0, 0), np.float16) if self.data is None else self.data[: self.n]


def select_stage(run: RunDir, cfg: SelectConfig, *, executor: Executor | None = None) -> dict[str, Any]:
    """Select representative tiles of every embedded slide; returns the stage summary."""
    meta = read_meta(run)
    if meta is None:
        raise FileNotFoundError(f"{run.embeddings / 'meta.json'} does not exist: run `pathgen embed` first")
    library = load_library(cfg.prompts, cfg.replace_prompts)  # a bad prompt file fails before work
    slides = _slides(run)
    params = dump_section(cfg)
    params["prompts"] = file_identity(cfg.prompts) if cfg.prompts else None
    fp = fingerprint(
        STAGE, VERSION, params, meta.get("encoder"), meta.get("slides"), file_identity(run.slides),
        tiles_identity(run),
    )  # fmt: skip
    if run.stage_done(STAGE, fp) and run.selected.exists():
        summary = dict((run.stage_status(STAGE) or {}).get("summary", {}))
        return {**summary, "done": 0, "skipped": summary.get("done", 0), "up_to_date": True}

    t0 = time.perf_counter()
    counts = tile_counts(run)
    ok = {rec["slide_id"] for rec in slides}
    texts = _slide_texts(slides, library)
    text_emb = _embed_texts(meta, sorted({t for a, f in texts.values() for t in a + f}))
    per_slide: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    vecs = _VecBuffer(sum(min(n, cfg.per_slide_cap) for sid, n in counts.items() if sid in ok))
    seen = 0
    with single_threaded_blas():
        # slides.parquet's ok slides and the tile table are both in slide-id order
        for sid, table in iter_tiles_by_slide(run, TILE_COLUMNS, slide_ids=sorted(ok)):
            if table.num_rows == 0:
                continue
            seen += 1
            row, part, vec = _select_one(run, meta, cfg, sid, table, texts, text_emb)
            per_slide.append(row)
            if part is not None:
                parts.append(part)
                vecs.add(vec)
    skipped = len(slides) - seen
    failed = sum(r["status"] == "error" for r in per_slide)
    table, removed = dedup_and_table(parts, vecs.array(), cfg)
    write_parquet(table, run.selected)
    for row in per_slide:
        if row["status"] == "ok":
            row["duplicates"] = removed.get(row["slide_id"], 0)
            row["selected"] = row["picked"] - row["duplicates"]
    reasons = table.column("reason").to_pylist()
    summary = {
        "done": len(parts),
        "skipped": skipped,
        "failed": failed,
        "selected": table.num_rows,
        "duplicates_removed": int(sum(removed.values())),
        **{f"by_{r}": reasons.count(r) for r in REASONS},
        "seconds": round(time.perf_counter() - t0, 2),
        "encoder": meta.get("encoder"),
    }
    if failed == 0:
        run.mark_stage(STAGE, fp, summary)
    return {**summary, "up_to_date": False, "slides": per_slide}


def _select_one(
    run: RunDir,
    meta: dict[str, Any],
    cfg: SelectConfig,
    sid: str,
    table: Any,
    texts: dict[str, tuple[list[str], list[str]]],
    text_emb: dict[str, np.ndarray],
) -> tuple[dict[str, Any], dict[str, Any] | None, np.ndarray | None]:
    """One slide: (summary row, its picks as columns, their embeddings) or an error row."""
    emb, problem = _load_embeddings(run, meta, sid, table.num_rows)
    if problem:
        return {"slide_id": sid, "status": "error", "error": problem}, None, None
    norms = np.linalg.norm(emb, axis=1)
    emb = emb / np.maximum(norms, 1e-12)[:, None]
    attr, find = texts[sid]
    picks = select_slide(
        emb,
        attribute=(attr, _rows(text_emb, attr)) if attr else None,
        finding=(find, _rows(text_emb, find)) if find else None,
        top_k_attribute=cfg.top_k_attribute,
        top_k_finding=cfg.top_k_finding,
        cap=cfg.per_slide_cap,
        clusters=cfg.clusters,
        cluster_count_rule=cfg.cluster_count,
        cluster_pick=cfg.cluster_pick,
        finding_score=cfg.finding_score,
        seed=slide_seed(cfg.seed, sid),
        usable=norms > 0.5,  # unreadable tiles were stored as zero rows
    )
    cols = {
        k: table.column(k).to_numpy(zero_copy_only=False)[picks.rows] for k in ("tile_id", "x", "y", "size")
    }
    part = {"slide_id": sid, **cols, "reason": picks.reason, "score": picks.score, "cluster": picks.cluster,
            "prompt": picks.prompt}  # fmt: skip
    row = {"slide_id": sid, "status": "ok", "tiles": table.num_rows, "picked": len(picks),
           **{r: picks.reason.count(r) for r in REASONS}}  # fmt: skip
    return row, part, emb[picks.rows].astype(np.float16)


def _slide_texts(slides: list[dict[str, Any]], library: Any) -> dict[str, tuple[list[str], list[str]]]:
    """(attribute prompts, report findings) per slide; empty lists where it has no project/report."""
    out = {}
    for rec in slides:
        project = normalise_project(rec.get("project"))
        out[rec["slide_id"]] = (
            library.prompts_for(project) if project else [],
            split_findings(rec.get("report")),
        )
    return out


def _embed_texts(meta: dict[str, Any], texts: list[str]) -> dict[str, np.ndarray]:
    if not texts:
        return {}
    from pathgen.models.encoders import load_encoder

    encoder = load_encoder(meta["encoder"])
    emb = encoder.encode_texts(texts)
    if meta.get("dim") and emb.shape[1] != int(meta["dim"]):
        raise ValueError(
            f"encoder {meta['encoder']} now gives {emb.shape[1]}-d text embeddings but the tiles were "
            f"embedded in {meta['dim']}-d; re-run `pathgen embed`"
        )
    return dict(zip(texts, emb, strict=True))


def _rows(text_emb: dict[str, np.ndarray], texts: list[str]) -> np.ndarray:
    return np.stack([text_emb[t] for t in texts])


def _load_embeddings(run: RunDir, meta: dict[str, Any], sid: str, n: int) -> tuple[np.ndarray, str | None]:
    path = embedding_path(run, sid)
    if sid not in meta.get("slides", {}) or not path.exists():
        return np.zeros((0, 0), np.float32), "no embeddings (embedding failed or not run for this slide)"
    try:
        emb = np.load(path).astype(np.float32)
    except (OSError, ValueError) as exc:
        return np.zeros((0, 0), np.float32), f"unreadable {path.name}: {exc}"
    if emb.ndim != 2 or len(emb) != n:
        return emb, f"{path.name} has {len(emb)} rows but the slide has {n} tiles; re-run `pathgen embed`"
    return emb, None


def dedup_and_table(
    parts: list[dict[str, Any]], vecs: list[np.ndarray] | np.ndarray, cfg: SelectConfig
) -> tuple[Any, dict[str, int]]:
    """Run-wide near-duplicate removal, then the selected table sorted by slide_id, y, x.

    ``vecs``: the picks' embeddings, one array per part or all parts' rows in one array.
    """
    import pyarrow as pa

    schema = pa.schema(
        [("tile_id", pa.string()), ("slide_id", pa.string()), ("x", pa.int64()), ("y", pa.int64()),
         ("size", pa.int64()), ("reason", pa.string()), ("score", pa.float32()), ("cluster", pa.int32()),
         ("prompt", pa.string())]
    )  # fmt: skip
    if not parts:
        return schema.empty_table(), {}
    slide_col = np.concatenate([np.full(len(p["tile_id"]), p["slide_id"], dtype=object) for p in parts])
    cols = {
        k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in ("tile_id", "x", "y", "size", "cluster")
    }
    reason = [r for p in parts for r in p["reason"]]
    prompt = [t for p in parts for t in p["prompt"]]
    score = np.concatenate([p["score"] for p in parts]).astype(np.float32)
    order = priority_order(reason, score)
    stacked = vecs if isinstance(vecs, np.ndarray) else np.concatenate(vecs)
    keep, _ = near_duplicate_filter(
        stacked, order, cfg.dedup_threshold, seed=cfg.seed, faiss_above=cfg.dedup_faiss_above
    )
    removed: dict[str, int] = {}
    for sid in slide_col[~keep]:
        removed[sid] = removed.get(sid, 0) + 1
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((cols["x"][idx], cols["y"][idx], slide_col[idx].astype(str)))]
    table = pa.table(
        {
            "tile_id": cols["tile_id"][idx].astype(str).tolist(),
            "slide_id": slide_col[idx].astype(str).tolist(),
            "x": cols["x"][idx].astype(np.int64),
            "y": cols["y"][idx].astype(np.int64),
            "size": cols["size"][idx].astype(np.int64),
            "reason": [reason[i] for i in idx],
            "score": score[idx],
            "cluster": cols["cluster"][idx].astype(np.int32),
            "prompt": [prompt[i] for i in idx],
        },
        schema=schema,
    )
    return table, removed
