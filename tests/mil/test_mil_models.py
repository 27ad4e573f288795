"""The slide models: shapes, attention that sums to one, ACMIL's masking (training only), losses."""

from __future__ import annotations

import pytest
import torch

from pathgen.mil.models import ABMIL, ACMIL, build_model, diversity_loss, mil_loss


@pytest.mark.parametrize("kind", ["meanpool", "abmil", "acmil"])
def test_outputs(kind):
    torch.manual_seed(0)
    m = build_model(kind, 12, 3, d_inner=8, d_attn=6).eval()
    out = m(torch.randn(7, 12))
    assert out.logits.shape == (3,)
    if kind == "meanpool":
        assert out.attention is None
    else:
        assert out.attention.shape == (7,)
        assert torch.isclose(out.attention.sum(), torch.tensor(1.0))
    assert torch.isfinite(mil_loss(out, torch.tensor(2)))


def test_meanpool_is_a_linear_layer_on_the_mean():
    m = build_model("meanpool", 4, 2).eval()
    x = torch.randn(5, 4)
    assert torch.allclose(m(x).logits, m.head(x.mean(0)))


def test_abmil_attention_is_gated():
    torch.manual_seed(0)
    m = ABMIL(4, 2, d_inner=3, d_attn=5).eval()
    x = torch.randn(6, 4)
    h = m.front(x)
    expected = torch.softmax(m.attn.w(torch.tanh(m.attn.v[0](h)) * torch.sigmoid(m.attn.u[0](h))).T, dim=1)[0]
    assert torch.allclose(m(x).attention, expected, atol=1e-6)


def test_acmil_masks_top_instances_in_training_only():
    torch.manual_seed(0)
    m = ACMIL(8, 2, d_inner=8, d_attn=8, n_token=3, n_masked_patch=4, mask_drop=0.5)
    x = torch.randn(20, 8)
    m.train()
    out = m(x)
    hidden = (out.branch_scores < -1e8).sum(dim=1)
    assert hidden.tolist() == [2, 2, 2]  # int(4 * 0.5) of each branch's top 4
    raw = m.attn(m.front(x))
    for k in range(3):  # only tiles among the branch's top 4 are ever hidden
        top4 = set(torch.topk(raw[k], 4).indices.tolist())
        assert set(torch.nonzero(out.branch_scores[k] < -1e8).flatten().tolist()) <= top4
    m.eval()
    assert not (m(x).branch_scores < -1e8).any()
    assert out.branch_logits.shape == (3, 2)


def test_acmil_without_masking_and_one_branch_has_no_diversity_term():
    m = ACMIL(8, 2, n_token=1, n_masked_patch=0, mask_drop=0.0).train()
    out = m(torch.randn(5, 8))
    assert not (out.branch_scores < -1e8).any()
    assert diversity_loss(out.branch_scores) == 0


def test_diversity_loss_is_mean_pairwise_cosine():
    same = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    assert torch.isclose(diversity_loss(same), torch.tensor(1.0))
    apart = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])  # softmax one-hot on different tiles
    assert diversity_loss(apart) < 1e-6


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown MIL model"):
        build_model("transmil", 4, 2)
