"""Per-slide representative-patch selection: prompt retrieval first, then k-means diversity.

PathGen-1.6M keeps, per slide, the tiles that best match the cancer type's morphology prompts
("attribute") and the slide report's findings ("finding"), then spreads the remaining budget over
k-means clusters so that the tissue types a prompt never names are still represented. The
functions here work on arrays only (no files), so they can be tested on hand-made geometry.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pathgen.selection.kmeans import cluster_count, cluster_fill, kmeans

REASONS = ("attribute", "finding", "cluster")


@dataclass
class Picks:
    """Selected rows of one slide with why each was kept (row order = pick order)."""

    rows: np.ndarray
    reason: list[str] = field(default_factory=list)
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    prompt: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def prompt_scores(
    emb: np.ndarray, text_emb: np.ndarray, combine: str = "max"
) -> tuple[np.ndarray, np.ndarray]:
    """Each tile's score against a prompt set, and its closest prompt: ((n,), (n,)).

    ``combine="max"``: the best cosine over the prompts (a tile matching one prompt well ranks
    high). ``combine="sum"``: the cosines summed over all prompts, as the released PathGen-1.6M
    script scores report findings (a tile matching the report as a whole ranks high); the value
    returned is that sum divided by the number of prompts (same ranking), so it stays on the
    cosine scale and is comparable across slides with different numbers of findings.
    """
    if combine not in ("max", "sum"):
        raise ValueError(f"unknown prompt score {combine!r}: use 'sum' or 'max'")
    if not len(text_emb) or not len(emb):
        return np.full(len(emb), -np.inf, np.float32), np.full(len(emb), -1, np.int64)
    sims = emb @ text_emb.T
    best = sims.argmax(axis=1)
    if combine == "sum":
        return sims.mean(axis=1).astype(np.float32), best
    return sims[np.arange(len(emb)), best].astype(np.float32), best


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores (ties: lower index first), among ``allowed`` rows."""
    idx = np.arange(len(scores)) if allowed is None else np.flatnonzero(allowed)
    idx = idx[np.isfinite(scores[idx])]
    if k <= 0 or not len(idx):
        return np.zeros(0, np.int64)
    order = np.lexsort((idx, -scores[idx]))
    return idx[order[:k]]


def slide_seed(seed: int, slide_id: str) -> int:
    """A per-slide seed that does not depend on which other slides are in the run."""
    return (int(seed) * 1_000_003 + zlib.crc32(slide_id.encode())) % (2**32)


def select_slide(
    emb: np.ndarray,
    *,
    attribute: tuple[list[str], np.ndarray] | None = None,
    finding: tuple[list[str], np.ndarray] | None = None,
    top_k_attribute: int = 64,
    top_k_finding: int = 64,
    cap: int = 256,
    clusters: int | None = None,
    cluster_count_rule: str = "sqrt",
    cluster_pick: str = "random",
    finding_score: str = "sum",
    seed: int = 0,
    usable: np.ndarray | None = None,
) -> Picks:
    """Select up to ``cap`` rows of one slide's unit-norm embeddings ``emb`` (n, d).

    ``attribute``/``finding``: (prompt texts, their unit-norm embeddings), or None when the slide
    has no project/report. Attribute prompts score a tile by their max cosine; findings by
    ``finding_score`` (see :func:`prompt_scores`). ``usable`` masks rows that may be picked
    (unreadable tiles are zero rows and are excluded). k-means uses k = ``clusters`` or the
    ``cluster_count_rule`` (:func:`~pathgen.selection.kmeans.cluster_count`); ``cluster_pick``
    orders tiles within a cluster (:func:`~pathgen.selection.kmeans.cluster_fill`).
    """
    emb = np.asarray(emb, np.float32)
    n = len(emb)
    usable = np.ones(n, bool) if usable is None else usable.astype(bool)
    rows: list[int] = []
    reasons: list[str] = []
    scores: list[float] = []
    prompts: list[str | None] = []
    taken = np.zeros(n, bool)
    sets = (
        ("attribute", attribute, top_k_attribute, "max"),
        ("finding", finding, top_k_finding, finding_score),
    )
    for reason, source, k, combine in sets:
        if source is None or not len(source[0]):
            continue
        texts, text_emb = source
        sc, best = prompt_scores(emb, np.asarray(text_emb, np.float32), combine)
        room = max(0, cap - len(rows))
        for r in top_k(sc, min(k, room), usable & ~taken).tolist():
            rows.append(r)
            reasons.append(reason)
            scores.append(float(sc[r]))
            prompts.append(texts[int(best[r])])
            taken[r] = True
    cand = np.flatnonzero(usable)
    labels = np.full(n, -1, np.int64)
    picks_cluster = np.zeros(0, np.int64)
    typical = np.zeros(0, np.float32)
    if len(cand):
        k = clusters or cluster_count(len(cand), cluster_count_rule)
        lab, centroids = kmeans(emb[cand], k, seed=seed)
        labels[cand] = lab
        local_idx, typical = cluster_fill(
            emb[cand], lab, centroids, cap - len(rows), taken[cand], pick=cluster_pick, seed=seed + 1
        )
        picks_cluster = cand[local_idx]
    rows.extend(picks_cluster.tolist())
    reasons.extend(["cluster"] * len(picks_cluster))
    scores.extend(typical.tolist())
    prompts.extend([None] * len(picks_cluster))
    out_rows = np.asarray(rows, np.int64)
    return Picks(
        rows=out_rows,
        reason=reasons,
        score=np.asarray(scores, np.float32),
        cluster=labels[out_rows] if len(out_rows) else np.zeros(0, np.int64),
        prompt=prompts,
    )


def single_threaded_blas() -> Any:
    """Per-slide matrices are small: one BLAS thread avoids thread start/spin costs (5x on a busy host)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, run as configured
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def priority_order(reasons: list[str], scores: np.ndarray) -> np.ndarray:
    """Run-wide dedup priority: attribute, then finding, then cluster; higher score first; then row."""
    rank = np.array([REASONS.index(r) for r in reasons], np.int64)
    rows = np.arange(len(reasons))
    return np.lexsort((rows, -np.asarray(scores, np.float64), rank))
