"""Near-duplicate removal across a whole run, greedy in priority order, in near-linear time.

The rule: walk the tiles from highest to lowest priority and keep a tile unless a tile already
kept is at cosine >= threshold; so the highest-priority member of every duplicate group is kept
and the result does not depend on how tiles were ordered on disk.

All-pairs comparison is quadratic (10^6 tiles is 10^12 dot products), so above ``exact_below``
tiles are bucketed into cells by a seeded k-means over a sample (an inverted file, as faiss IVF
does), and compared with blocked matrix products:

1. within each cell, the exact greedy rule;
2. across cells, each surviving tile is compared with the survivors of its ``nprobe - 1`` next
   nearest cells, and the lower-priority tile of every pair found is dropped (greedy again).

Duplicates at cosine 0.88 lie close together, so they share a cell or a neighbouring one. Pass 2
only ever drops tiles, so no kept pair within a probe neighbourhood is a duplicate, and a group's
top tile is never dropped. Cost is ``n * cell_size * d`` flops: linear in ``n``.

From ``faiss_above`` tiles (``select.dedup_faiss_above``) and when faiss is installed (extra
``faiss``), the same inverted-file search runs in faiss instead (:func:`faiss_pairs`: an
``IndexIVFFlat`` on inner products, a range search at the threshold); every pair it finds is
resolved by the same greedy rule, so on sets where its probes cover every cell the result is the
exact one. It is off by default: faiss scans cells query by query, while the numpy search above
does blocked matrix products, and on 2 cores numpy was ~5x faster (``benchmarks/dedup.py``); on
many cores faiss's query parallelism may win, which is what the setting is for.
"""

from __future__ import annotations

import numpy as np

from pathgen.selection.kmeans import kmeans


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _f32(x: np.ndarray) -> np.ndarray:
    """Rows are unit-norm on input (checked once), so blocks only need a dtype change."""
    return np.asarray(x, dtype=np.float32)


def _unit_rows(x: np.ndarray, block: int = 65536) -> np.ndarray:
    """``x`` itself when its rows are already unit-norm (the usual case), else a normalised copy."""
    for s in range(0, len(x), block):
        norms = np.linalg.norm(_f32(x[s : s + block]), axis=1)
        if np.abs(norms - 1).max() > 1e-2:
            return _unit(x).astype(x.dtype if x.dtype in (np.float16, np.float32) else np.float32)
    return x


def greedy_exact(vecs: np.ndarray, threshold: float, block: int = 1024) -> np.ndarray:
    """Exact greedy on rows already in priority order: ``dup_of`` local index, -1 where kept."""
    n = len(vecs)
    dup_of = np.full(n, -1, np.int64)
    kept = np.empty(n, np.int64)
    n_kept = 0
    thr = np.float32(threshold)
    for s in range(0, n, block):
        rows = np.arange(s, min(s + block, n))
        v = vecs[rows]
        if n_kept:
            sims = v @ vecs[kept[:n_kept]].T
            best = sims.argmax(axis=1)
            hit = sims[np.arange(len(rows)), best] >= thr
            dup_of[rows[hit]] = kept[best[hit]]
        alive = rows[dup_of[rows] < 0]
        if len(alive) > 1:
            sims = vecs[alive] @ vecs[alive].T
            np.fill_diagonal(sims, -1.0)
            close = sims >= thr
            gone = np.zeros(len(alive), bool)
            for a in np.flatnonzero(close.any(axis=1)):
                if gone[a]:
                    continue
                later = np.flatnonzero(close[a, a + 1 :] & ~gone[a + 1 :]) + a + 1
                gone[later] = True
                dup_of[alive[later]] = alive[a]
        survivors = rows[dup_of[rows] < 0]
        kept[n_kept : n_kept + len(survivors)] = survivors
        n_kept += len(survivors)
    return dup_of


def assign_cells(x: np.ndarray, n_cells: int, nprobe: int, seed: int, block: int = 16384) -> np.ndarray:
    """Probe cells per row, nearest first, ``(n, nprobe)``; column 0 is the row's home cell."""
    n = len(x)
    if n_cells <= 1:
        return np.zeros((n, 1), np.int64)
    rng = np.random.default_rng(seed)
    # cells only need to be reasonable, not optimal: a 16-per-cell sample, random seeds, 6 rounds
    pick = np.sort(rng.choice(n, size=min(n, 16 * n_cells), replace=False))
    _, centroids = kmeans(_f32(x[pick]), n_cells, seed=seed, iters=6, init="random")
    centroids = _unit(centroids)
    nprobe = max(1, min(nprobe, len(centroids)))
    probes = np.empty((n, nprobe), np.int64)
    for s in range(0, n, block):
        sims = _f32(x[s : s + block]) @ centroids.T
        rows = np.arange(len(sims))
        for j in range(nprobe):  # nprobe is tiny: repeated argmax beats a partial sort
            best = sims.argmax(axis=1)
            probes[s + rows, j] = best
            sims[rows, best] = -np.inf
    return probes


def near_duplicate_filter(
    x: np.ndarray,
    order: np.ndarray,
    threshold: float,
    *,
    seed: int = 0,
    cell_size: int = 512,
    nprobe: int = 2,
    exact_below: int = 8192,
    faiss_above: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy near-duplicate removal.

    ``x``: (n, d) embeddings (any float dtype; normalised here); ``order``: row indices from
    highest to lowest priority. Returns ``keep`` (bool, n) and ``dup_of`` (int64, n: the kept
    row that removed it, -1 for kept rows). ``faiss_above``: from this many rows, search the
    pairs with faiss when it is installed (None: never).
    """
    n = len(x)
    keep = np.zeros(n, bool)
    dup_of = np.full(n, -1, np.int64)
    if n == 0:
        return keep, dup_of
    order = np.asarray(order, np.int64)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError("order must be a permutation of the rows")
    x = _unit_rows(x)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    if faiss_above is not None and n >= faiss_above and faiss_available():
        a, b = faiss_pairs(x, threshold, seed=seed, cell_size=cell_size, nprobe=nprobe)
        keep = np.ones(n, bool)
        _resolve_pairs(a, b, rank, keep, dup_of)
        return keep, dup_of
    n_cells = 1 if n < exact_below else max(1, round(n / cell_size))
    probes = assign_cells(x, n_cells, nprobe, seed)
    home = probes[:, 0]

    # pass 1: exact greedy inside each home cell
    by_cell = np.lexsort((rank, home))
    bounds = np.flatnonzero(np.diff(home[by_cell])) + 1
    for rows in np.split(by_cell, bounds):
        local = greedy_exact(_f32(x[rows]), threshold)
        hit = local >= 0
        dup_of[rows[hit]] = rows[local[hit]]
    keep = dup_of < 0
    if probes.shape[1] < 2:
        return keep, dup_of

    # pass 2: survivors against the survivors of their other probe cells
    survivors = np.flatnonzero(keep)
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    s_home = home[survivors]
    s_other = probes[survivors, 1:]
    home_order = np.argsort(s_home, kind="stable")
    home_bounds = np.searchsorted(s_home[home_order], np.arange(n_cells + 1))
    flat_cells = s_other.ravel()
    flat_rows = np.repeat(np.arange(len(survivors)), s_other.shape[1])
    q_order = np.argsort(flat_cells, kind="stable")
    q_bounds = np.searchsorted(flat_cells[q_order], np.arange(n_cells + 1))
    thr = np.float32(threshold)
    for cell in range(n_cells):
        stored = home_order[home_bounds[cell] : home_bounds[cell + 1]]
        queries = flat_rows[q_order[q_bounds[cell] : q_bounds[cell + 1]]]
        if not len(stored) or not len(queries):
            continue
        sims = _f32(x[survivors[queries]]) @ _f32(x[survivors[stored]]).T
        qi, si = np.nonzero(sims >= thr)
        pairs_a.append(survivors[queries[qi]])
        pairs_b.append(survivors[stored[si]])
    if pairs_a:
        _resolve_pairs(np.concatenate(pairs_a), np.concatenate(pairs_b), rank, keep, dup_of)
    return keep, dup_of


def faiss_available() -> bool:
    """Whether faiss can be imported (the optional ``faiss`` extra)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_pairs(
    x: np.ndarray, threshold: float, *, seed: int, cell_size: int, nprobe: int, block: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of distinct rows at cosine >= ``threshold`` that an IVF search finds, as (a, b).

    Rows are unit-norm, so inner product is cosine. The coarse quantizer is trained on a seeded
    sample (16 rows a cell), queries go in blocks so the result arrays stay small.
    """
    import faiss

    n, d = x.shape
    n_cells = max(1, n // max(1, cell_size))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, n_cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 6
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(n, 39 * n_cells), replace=False))  # faiss wants 39 a cell
    index.train(np.ascontiguousarray(_f32(x[pick])))
    for s in range(0, n, block):
        index.add(np.ascontiguousarray(_f32(x[s : s + block])))
    index.nprobe = min(nprobe, n_cells)
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    for s in range(0, n, block):
        lims, _, found = index.range_search(np.ascontiguousarray(_f32(x[s : s + block])), float(threshold))
        rows = np.repeat(np.arange(s, s + len(lims) - 1), np.diff(lims.astype(np.int64)))
        other = found.astype(np.int64)
        mask = other != rows
        pairs_a.append(rows[mask])
        pairs_b.append(other[mask])
    return np.concatenate(pairs_a), np.concatenate(pairs_b)


def _resolve_pairs(
    a: np.ndarray, b: np.ndarray, rank: np.ndarray, keep: np.ndarray, dup_of: np.ndarray
) -> None:
    """Greedy over the cross-cell duplicate pairs, highest priority first (updates in place)."""
    if not len(a):
        return
    hi = np.where(rank[a] < rank[b], a, b)
    lo = np.where(rank[a] < rank[b], b, a)
    edges = np.unique(np.stack([lo, hi], axis=1), axis=0)
    # for each lower-priority tile, its higher-priority neighbours; decide tiles by rank
    lows = edges[:, 0]
    order = np.lexsort((rank[edges[:, 1]], rank[lows]))
    edges = edges[order]
    starts = np.flatnonzero(np.r_[True, edges[1:, 0] != edges[:-1, 0]])
    ends = np.r_[starts[1:], len(edges)]
    for s, e in zip(starts, ends, strict=True):
        low = edges[s, 0]
        for high in edges[s:e, 1]:
            if keep[high]:
                keep[low] = False
                dup_of[low] = high
                break
