"""Small, seeded k-means and the per-cluster quota that spreads a slide's budget over its tissue.

Why our own k-means: it runs once per slide (thousands of times per run) on a few thousand
vectors, where library start-up costs dominate; plain numpy Lloyd iterations with k-means++
seeding are fast, deterministic for a seed, and have no thread-count-dependent behaviour.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

# the released PathGen-1.6M script's k: its DataLoader's batch count (batches of 128 tiles) times 1.6
OFFICIAL_BATCH = 128
OFFICIAL_RATIO = 1.6


def cluster_count(n: int, rule: str = "sqrt") -> int:
    """k of k-means for ``n`` candidate tiles (at least 1; k-means caps it at ``n``).

    ``sqrt``: ceil(sqrt(n)), the published rule. ``official``: ceil(sqrt(1.6 * ceil(n / 128))), what
    the released script computes (the square root of its DataLoader's batch count, not of the tile
    count: k ≈ sqrt(n / 80), 12 clusters for 10,000 tiles where ``sqrt`` gives 100).
    """
    if n <= 0:
        return 1
    if rule == "sqrt":
        return math.ceil(math.sqrt(n))
    if rule == "official":
        return math.ceil(math.sqrt(OFFICIAL_RATIO * math.ceil(n / OFFICIAL_BATCH)))
    raise ValueError(f"unknown cluster count rule {rule!r}: use 'sqrt' or 'official'")


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, iters: int = 15, tol: float = 1e-4, init: str = "k-means++"
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of ``x`` into ``k`` groups; returns (labels (n,), centroids (k, d)).

    k-means++ seeding then Lloyd iterations, each one pass over ``x`` (matrix products only);
    empty clusters are re-seeded at the points farthest from their centroids.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
    k = max(1, min(int(k), n))
    rng = np.random.default_rng(seed)
    if init == "random":
        centroids = x[np.sort(rng.choice(n, size=k, replace=False))].copy()
    else:
        centroids = _seed(x, k, rng)
    rows = np.arange(n)
    labels = _assign(x, centroids)
    for _ in range(iters):
        onehot = np.zeros((k, n), np.float32)
        onehot[labels, rows] = 1.0
        counts = onehot.sum(axis=1)
        new = onehot @ x  # cluster sums in one matrix product (no gather of x)
        present = counts > 0
        new[present] /= counts[present, None]
        if not present.all():  # re-seed empty clusters at the points worst served now
            resid = x - centroids[labels]
            worst = np.argsort(-np.einsum("ij,ij->i", resid, resid), kind="stable")
            new[~present] = x[worst[: int((~present).sum())]]
        shift = float(np.abs(new - centroids).max())
        centroids = new
        labels = _assign(x, centroids)
        if shift < tol:
            break
    return labels, centroids


def _seed(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ (a few candidates per step, keep the best) on a subsample of ``x``.

    The subsample (8 points per cluster, at least 256) keeps seeding cheap on big slides; Lloyd
    iterations over all rows refine the seeds afterwards.
    """
    n = len(x)
    m = min(n, max(256, 8 * k))
    sub = x if m == n else x[np.sort(rng.choice(n, size=m, replace=False))]
    sq = np.einsum("ij,ij->i", sub, sub)
    trials = 2 + int(np.log(k))
    first = int(rng.integers(m))
    chosen = [first]
    closest = np.maximum(sq - 2 * (sub @ sub[first]) + sq[first], 0)
    for _ in range(1, k):
        cdf = np.cumsum(closest)
        if cdf[-1] <= 0:
            cand = rng.integers(m, size=1)
        else:  # draw in proportion to squared distance (inverse CDF; rng.choice(p=) is slow)
            cand = np.minimum(np.searchsorted(cdf, rng.random(trials) * cdf[-1], side="right"), m - 1)
        dist = np.maximum(sq[:, None] - 2 * (sub @ sub[cand].T) + sq[cand][None, :], 0)
        pot = np.minimum(closest[:, None], dist)
        best = int(np.argmin(pot.sum(axis=0)))
        chosen.append(int(cand[best]))
        closest = pot[:, best]
    return sub[chosen].copy()


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid per row (|x|^2 is constant per row, so it is left out)."""
    cc = np.einsum("ij,ij->i", centroids, centroids)
    return np.argmin(cc[None, :] - 2 * (x @ centroids.T), axis=1)


def cluster_fill(
    x: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    budget: int,
    taken: np.ndarray | None = None,
    *,
    pick: str = "random",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick up to ``budget`` untaken rows, always from the cluster holding the fewest picks so far.

    Tiles already taken (by prompt retrieval) count toward their cluster, so prompts and clusters
    share one quota. Within a cluster, ``pick="random"`` draws tiles in a seeded random order (as
    the released PathGen-1.6M script does: the cluster's spread, not only its centre), and
    ``pick="nearest"`` takes the most typical tile (highest cosine to the centroid) first, which
    favours the least varied tiles. Ties go to the larger cluster, then the lower cluster id, so
    the result is deterministic for a seed. Returns (indices in pick order, their cosine to their
    centroid).
    """
    if pick not in ("random", "nearest"):
        raise ValueError(f"unknown cluster pick {pick!r}: use 'random' or 'nearest'")
    n = len(x)
    taken = np.zeros(n, bool) if taken is None else taken.astype(bool)
    if budget <= 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    cn = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    typical = np.einsum("ij,ij->i", xn, cn[labels]).astype(np.float32)
    k = len(centroids)
    sizes = np.bincount(labels, minlength=k)
    have = np.bincount(labels[taken], minlength=k)
    rng = np.random.default_rng(seed)
    queues: list[list[int]] = []
    for c in range(k):
        members = np.flatnonzero((labels == c) & ~taken)
        if pick == "random":
            order = rng.permutation(members)
        else:
            order = members[np.lexsort((members, -typical[members]))]
        queues.append(order.tolist()[::-1])  # pop() from the end = first in pick order
    heap = [(int(have[c]), -int(sizes[c]), c) for c in range(k) if queues[c]]
    heapq.heapify(heap)
    picks: list[int] = []
    while heap and len(picks) < budget:
        count, neg_size, c = heapq.heappop(heap)
        picks.append(queues[c].pop())
        if queues[c]:
            heapq.heappush(heap, (count + 1, neg_size, c))
    idx = np.asarray(picks, np.int64)
    return idx, typical[idx]
