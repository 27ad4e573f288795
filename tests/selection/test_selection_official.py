"""The choices where the released PathGen-1.6M selection script and pathgen's first take differed.

Random picks within a k-means cluster (the script) against nearest-the-centroid first; report
findings scored by the sum of cosines (the script) against the max; the script's cluster count
rule against ceil(sqrt(n)). Hand-made geometry, so each difference shows on a known answer.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.config import SelectConfig
from pathgen.selection.kmeans import cluster_count
from pathgen.selection.select import prompt_scores, select_slide
from pathgen.selection.stage import select_stage


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _core_and_spread(seed: int = 0):
    """200 tiles around one centre: rows 0..39 a tight core, rows 40..199 spread widely."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(16, np.float32)
    centre[0] = 1.0
    core = centre + 0.02 * rng.standard_normal((40, 16))
    spread = centre + 0.6 * rng.standard_normal((160, 16))
    return _unit(np.concatenate([core, spread]))


def _mean_pairwise_cos(v: np.ndarray) -> float:
    s = v @ v.T
    return float((s.sum() - np.trace(s)) / (len(v) * (len(v) - 1)))


def test_defaults_follow_the_official_script_where_the_issue_says_so():
    cfg = SelectConfig()
    assert (cfg.cluster_pick, cfg.finding_score, cfg.cluster_count) == ("random", "sum", "sqrt")
    with pytest.raises(ValueError, match="cluster_pick"):
        SelectConfig(cluster_pick="farthest")
    with pytest.raises(ValueError, match="finding_score"):
        SelectConfig(finding_score="mean")
    with pytest.raises(ValueError, match="cluster_count"):
        SelectConfig(cluster_count="elbow")


def test_random_cluster_picks_differ_from_nearest_and_are_more_varied():
    emb = _core_and_spread()
    nearest = select_slide(emb, cap=10, clusters=1, cluster_pick="nearest", seed=5)
    random = select_slide(emb, cap=10, clusters=1, cluster_pick="random", seed=5)
    # nearest-first takes the tight core only: the least varied tiles of the cluster
    assert (nearest.rows < 40).all()
    assert (random.rows >= 40).sum() >= 5  # 160 of 200 tiles are spread; a random draw finds them
    assert set(random.rows.tolist()) != set(nearest.rows.tolist())
    assert _mean_pairwise_cos(emb[random.rows]) < _mean_pairwise_cos(emb[nearest.rows]) - 0.2
    # the default is random
    default = select_slide(emb, cap=10, clusters=1, seed=5)
    assert np.array_equal(default.rows, random.rows)


def test_random_cluster_picks_are_deterministic_for_a_seed():
    emb = _core_and_spread(seed=1)
    a = select_slide(emb, cap=30, cluster_pick="random", seed=11)
    b = select_slide(emb, cap=30, cluster_pick="random", seed=11)
    c = select_slide(emb, cap=30, cluster_pick="random", seed=12)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cluster, b.cluster)
    assert np.array_equal(a.score, b.score)
    assert not np.array_equal(np.sort(a.rows), np.sort(c.rows))  # another seed, another draw


def test_sum_and_max_of_finding_cosines_rank_tiles_differently():
    findings = _unit(np.eye(8)[:3])  # three findings on axes 0, 1, 2
    emb = np.zeros((20, 8), np.float32)
    emb[:, 3:] = np.random.default_rng(0).standard_normal((20, 5))
    emb[0, :3] = [3.0, 0.0, 0.0]  # tile 0 matches one finding very well
    emb[1, :3] = [1.0, 1.0, 1.0]  # tile 1 matches all three findings moderately
    emb = _unit(emb)
    by_max, best = prompt_scores(emb, findings, "max")
    by_sum, _ = prompt_scores(emb, findings, "sum")
    assert by_max[0] > by_max[1] and by_sum[1] > by_sum[0]
    # the sum mode reports sum / n_findings: same ranking, on the cosine scale
    assert by_sum[1] == pytest.approx(float((emb[1] @ findings.T).sum()) / 3, abs=1e-6)
    texts = ["finding on axis 0", "finding on axis 1", "finding on axis 2"]
    picks = {
        mode: select_slide(emb, finding=(texts, findings), top_k_finding=1, cap=1, finding_score=mode)
        for mode in ("sum", "max")
    }
    assert picks["max"].rows.tolist() == [0] and picks["max"].prompt == ["finding on axis 0"]
    assert picks["sum"].rows.tolist() == [1] and picks["sum"].prompt == [texts[int(best[1])]]
    assert picks["sum"].reason == ["finding"]
    # the default is the sum; attribute prompts keep the max in both modes
    assert select_slide(emb, finding=(texts, findings), top_k_finding=1, cap=1).rows.tolist() == [1]
    attr = select_slide(emb, attribute=(texts, findings), top_k_attribute=1, cap=1, finding_score="sum")
    assert attr.rows.tolist() == [0]
    with pytest.raises(ValueError, match="sum"):
        prompt_scores(emb, findings, "mean")


def test_cluster_count_rules():
    assert [cluster_count(n, "sqrt") for n in (1, 2, 200, 10_000)] == [1, 2, 15, 100]
    # the script: ceil(sqrt(1.6 * number of 128-tile batches))
    assert [cluster_count(n, "official") for n in (1, 128, 129, 300, 10_000, 100_000)] == [2, 2, 2, 3, 12, 36]
    assert cluster_count(0, "official") == 1
    with pytest.raises(ValueError, match="official"):
        cluster_count(10, "elbow")
    emb = _core_and_spread()
    official = select_slide(emb, cap=200, cluster_count_rule="official")  # k = ceil(sqrt(1.6 * 2)) = 2
    assert set(official.cluster.tolist()) == {0, 1}
    square = select_slide(emb, cap=200)  # k = ceil(sqrt(200)) = 15
    assert len(set(square.cluster.tolist())) > 2 and square.cluster.max() < 15
    assert select_slide(emb, cap=200, clusters=4, cluster_count_rule="official").cluster.max() == 3


CFG = dict(top_k_attribute=4, top_k_finding=3, per_slide_cap=12, dedup_threshold=0.995)


def test_each_new_setting_changes_the_stage_fingerprint(run_copy):
    first = select_stage(run_copy, SelectConfig(**CFG))
    assert not first["up_to_date"]
    assert select_stage(run_copy, SelectConfig(**CFG))["up_to_date"]
    for change in ({"cluster_pick": "nearest"}, {"finding_score": "max"}, {"cluster_count": "official"}):
        redone = select_stage(run_copy, SelectConfig(**CFG, **change))
        assert not redone["up_to_date"], change
        assert select_stage(run_copy, SelectConfig(**CFG, **change))["up_to_date"], change


def test_cli_options_reach_the_stage(run_copy):
    runner = CliRunner()
    base = ["select", str(run_copy.root), "--cap", "6", "--top-k", "2", "--dedup", "0.995"]
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    extra = ["--cluster-pick", "nearest", "--finding-score", "max", "--cluster-count", "official"]
    res = runner.invoke(app, base + extra)
    assert res.exit_code == 0 and "up to date" not in res.output, res.output
    again = runner.invoke(app, base + extra)
    assert again.exit_code == 0 and "up to date" in again.output
    bad = runner.invoke(app, [*base, "--cluster-pick", "farthest"])
    assert bad.exit_code == 2 and "farthest" in bad.output
