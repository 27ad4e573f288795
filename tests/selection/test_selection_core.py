"""Scoring, k-means quota and near-duplicate removal on hand-made embedding geometry."""

from __future__ import annotations

import numpy as np
import pytest

from pathgen.selection.dedup import near_duplicate_filter
from pathgen.selection.kmeans import cluster_fill, kmeans
from pathgen.selection.select import priority_order, prompt_scores, select_slide, slide_seed, top_k


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _geometry(seed: int = 0):
    """200 tiles in 16-d: 6 lean towards prompt axis 0, 5 towards axis 1, the rest live in dims 4..15."""
    rng = np.random.default_rng(seed)
    emb = np.zeros((200, 16), np.float32)
    emb[:, 4:] = _unit(rng.standard_normal((200, 12)))  # unit background: cosine ranks by strength
    planted_a = np.array([3, 17, 40, 41, 99, 150])
    planted_b = np.array([5, 60, 61, 120, 199])
    emb[planted_a, 0] = np.linspace(6, 3, len(planted_a))  # decreasing strength: a known ranking
    emb[planted_b, 1] = 5.0
    prompts = _unit(np.eye(16)[:3])  # axis 0, axis 1, and an axis nothing uses
    return _unit(emb), prompts, planted_a, planted_b


def test_prompt_retrieval_finds_the_planted_tiles():
    emb, prompts, planted_a, planted_b = _geometry()
    scores, best = prompt_scores(emb, prompts)
    assert set(top_k(scores, 11).tolist()) == set(planted_a) | set(planted_b)
    assert set(best[planted_a]) == {0} and set(best[planted_b]) == {1}
    # ranking within the planted set follows the planted strength
    only_a = prompt_scores(emb, prompts[:1])[0]
    assert top_k(only_a, 6).tolist() == planted_a.tolist()
    # top_k respects a mask and breaks ties by index
    assert top_k(np.array([1.0, 1.0, 2.0, 1.0]), 3, np.array([True, True, False, True])).tolist() == [0, 1, 3]


def test_select_slide_reasons_prompts_and_cap():
    emb, prompts, planted_a, planted_b = _geometry()
    texts = ["prompt on axis 0", "prompt on axis 1", "unused prompt"]
    picks = select_slide(
        emb,
        attribute=(texts[:1] + texts[2:], prompts[[0, 2]]),
        finding=(["finding on axis 1"], prompts[1:2]),
        top_k_attribute=6,
        top_k_finding=5,
        cap=30,
        seed=1,
    )
    assert len(picks) == 30 and len(set(picks.rows.tolist())) == 30
    by = {r: picks.rows[[i for i, x in enumerate(picks.reason) if x == r]] for r in ("attribute", "finding")}
    assert by["attribute"].tolist() == planted_a.tolist()
    assert set(by["finding"].tolist()) == set(planted_b)
    assert picks.reason.count("cluster") == 19
    for reason, prompt in zip(picks.reason, picks.prompt, strict=True):
        expected = {"attribute": "prompt on axis 0", "finding": "finding on axis 1", "cluster": None}[reason]
        assert prompt == expected
    assert (picks.cluster >= 0).all() and picks.cluster.max() < 15  # k = ceil(sqrt(200)) = 15


def test_slides_without_prompts_get_cluster_selection_and_are_deterministic():
    emb, *_ = _geometry()
    a = select_slide(emb, cap=25, seed=slide_seed(0, "slide-1"))
    b = select_slide(emb, cap=25, seed=slide_seed(0, "slide-1"))
    assert a.reason == ["cluster"] * 25
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cluster, b.cluster)
    small = select_slide(emb[:10], cap=256)
    assert sorted(small.rows.tolist()) == list(range(10))  # fewer tiles than the cap: all kept
    unusable = np.ones(200, bool)
    unusable[:100] = False
    assert (select_slide(emb, cap=50, usable=unusable).rows >= 100).all()


def test_cluster_quota_spreads_over_clusters():
    rng = np.random.default_rng(3)
    centers = np.eye(8, dtype=np.float32)[:4] * 10
    sizes = [100, 50, 20, 3]
    x = np.concatenate(
        [c + rng.standard_normal((s, 8)).astype(np.float32) for c, s in zip(centers, sizes, strict=True)]
    )
    truth = np.repeat(np.arange(4), sizes)
    labels, centroids = kmeans(x, 4, seed=0)
    assert len(np.unique(labels)) == 4
    for c in range(4):  # k-means recovered the planted clusters
        assert len(np.unique(labels[truth == c])) == 1
    idx, score = cluster_fill(x, labels, centroids, budget=19)
    got = sorted(np.bincount(truth[idx], minlength=4).tolist())
    assert got == [3, 5, 5, 6]  # the 3-tile cluster gives all it has, the rest share the quota
    # tiles already taken count toward their cluster's quota
    taken = np.zeros(len(x), bool)
    taken[:5] = True  # five from the largest cluster
    idx2, _ = cluster_fill(x, labels, centroids, budget=12, taken=taken)
    assert not np.isin(idx2, np.arange(5)).any()
    assert np.bincount(truth[idx2], minlength=4)[0] <= 1
    near, score = cluster_fill(x, labels, centroids, budget=19, pick="nearest")
    assert sorted(np.bincount(truth[near], minlength=4).tolist()) == got  # same quota either way
    assert (np.diff(score[truth[near] == 0]) <= 1e-6).all()  # nearest: most typical first in a cluster


def _planted_duplicates(n: int, d: int, n_dup: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d))
    base = _unit(centers[rng.integers(20, size=n)] + rng.standard_normal((n, d)))
    src = rng.choice(n, n_dup, replace=False)
    dups = _unit(base[src] + 0.01 * rng.standard_normal((n_dup, d)))
    return np.concatenate([base, dups]).astype(np.float16), src, np.arange(n, n + n_dup)


@pytest.mark.parametrize("mode", ["exact", "cells", "faiss"])
def test_planted_near_duplicates_are_removed(mode):
    x, src, dup = _planted_duplicates(3000, 64, 300)
    sims = _unit(x.astype(np.float32))
    pair_cos = (sims[src] * sims[dup]).sum(axis=1)
    assert pair_cos.min() > 0.95
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    kw = {"exact_below": 10**9} if mode == "exact" else {"exact_below": 100, "cell_size": 256, "nprobe": 2}
    if mode == "faiss":
        pytest.importorskip("faiss", reason="the faiss extra is not installed")
        kw = {"faiss_above": 1, "cell_size": 256}  # 12 cells, 4 probed: an approximate search
    keep, dup_of = near_duplicate_filter(x, order, 0.88, **kw)
    rank = np.empty(len(x), int)
    rank[order] = np.arange(len(x))
    winner = np.where(rank[src] < rank[dup], src, dup)
    loser = np.where(rank[src] < rank[dup], dup, src)
    assert keep[winner].all() and not keep[loser].any()
    assert (dup_of[loser] == winner).all()
    # distinct tiles (no partner above the threshold) are all kept
    assert keep[np.setdiff1d(np.arange(3000), src)].all()
    # no kept pair is a duplicate (exact check on the kept set)
    k = sims[keep]
    s = k @ k.T
    np.fill_diagonal(s, 0)
    assert s.max() < 0.88


def test_faiss_search_gives_the_exact_result_when_its_probes_cover_every_cell():
    pytest.importorskip("faiss", reason="the faiss extra is not installed")
    from pathgen.selection.dedup import faiss_pairs

    x, _, _ = _planted_duplicates(2000, 32, 500, seed=4)
    order = np.random.default_rng(3).permutation(len(x))
    exact_keep, exact_dup = near_duplicate_filter(x, order, 0.9, exact_below=10**9)
    keep, dup_of = near_duplicate_filter(x, order, 0.9, faiss_above=1000)  # 4 cells of 512, 4 probes
    assert 0 < (~keep).sum() < len(x) and np.array_equal(keep, exact_keep)
    unit = _unit(x.astype(np.float32))
    gone = np.flatnonzero(~keep)
    assert keep[dup_of[gone]].all()  # each dropped tile names a kept one it duplicates ...
    assert ((unit[gone] * unit[dup_of[gone]]).sum(axis=1) >= 0.9 - 1e-3).all()
    assert (exact_dup[gone] >= 0).all()
    # below faiss_above the numpy path runs (same answer on this set)
    small = near_duplicate_filter(x, order, 0.9, faiss_above=10**6, exact_below=10**9)
    assert np.array_equal(small[0], exact_keep) and np.array_equal(small[1], exact_dup)
    a, b = faiss_pairs(unit, 0.9, seed=0, cell_size=512, nprobe=4)
    assert len(a) == len(b) and (a != b).all() and len(a) >= 2 * (~keep).sum()


def test_dedup_is_deterministic_and_keeps_priority():
    x, _, _ = _planted_duplicates(2000, 32, 500, seed=4)
    order = np.arange(len(x))[::-1]
    a = near_duplicate_filter(x, order, 0.9, exact_below=10, cell_size=128, seed=7)
    b = near_duplicate_filter(x, order, 0.9, exact_below=10, cell_size=128, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # identical vectors: only the highest-priority one survives
    same = np.tile(_unit(np.ones((1, 8))), (5, 1))
    keep, dup_of = near_duplicate_filter(same, np.array([3, 1, 4, 0, 2]), 0.88)
    assert keep.tolist() == [False, False, False, True, False] and set(dup_of[[0, 1, 2, 4]]) == {3}
    with pytest.raises(ValueError, match="permutation"):
        near_duplicate_filter(same, np.array([0, 0, 1, 2, 3]), 0.88)


def test_priority_order():
    order = priority_order(
        ["cluster", "finding", "attribute", "attribute", "cluster"], np.array([0.9, 0.1, 0.2, 0.3, 0.9])
    )
    assert order.tolist() == [3, 2, 1, 0, 4]
