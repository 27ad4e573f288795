"""The slide models, in plain PyTorch: mean-pool linear, ABMIL (gated attention) and ACMIL.

Each takes one slide's features ``x`` (N x D) and returns :class:`MILOutput`: slide ``logits`` (C),
``attention`` over the N tiles (softmaxed, for heatmaps; None for mean pooling) and, for ACMIL,
per-branch logits and raw attention scores (its extra losses need them).

- Mean pooling + a linear layer: the baseline any attention model must beat.
- ABMIL (Ilse et al. 2018): Linear + ReLU to ``d_inner``, gated attention
  ``a = w^T (tanh(V h) * sigmoid(U h))``, softmax over tiles, attention-weighted mean, linear head.
- ACMIL (Zhang et al. 2023, following dazhangyu123/ACMIL's ``ACMIL_GA``): the same front, gated
  attention with ``n_token`` branches, a classifier per branch and a slide classifier on the mean of
  the branches' softmaxed attention. In training only, stochastic top-k masking: of each branch's
  ``n_masked_patch`` highest-scoring tiles, a random ``mask_drop`` share is hidden, so no branch can
  rest on a few tiles. ``n_token=1, n_masked_patch=0`` is ABMIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MODELS = ("meanpool", "abmil", "acmil")


@dataclass
class MILOutput:
    logits: torch.Tensor
    attention: torch.Tensor | None = None
    branch_logits: torch.Tensor | None = None
    branch_scores: torch.Tensor | None = None


class GatedAttention(nn.Module):
    """Gated attention scores (``n_branches`` x N), before the softmax."""

    def __init__(self, d_in: int, d_attn: int, n_branches: int = 1, dropout: float = 0.0):
        super().__init__()
        self.v = nn.Sequential(nn.Linear(d_in, d_attn), nn.Tanh())
        self.u = nn.Sequential(nn.Linear(d_in, d_attn), nn.Sigmoid())
        self.drop = nn.Dropout(dropout)
        self.w = nn.Linear(d_attn, n_branches)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.w(self.drop(self.v(h) * self.u(h))).transpose(0, 1)


def _front(d_feat: int, d_inner: int) -> nn.Module:
    """ACMIL's DimReduction: Linear without bias, then ReLU."""
    return nn.Sequential(nn.Linear(d_feat, d_inner, bias=False), nn.ReLU())


class MeanPoolMIL(nn.Module):
    def __init__(self, d_feat: int, n_classes: int, dropout: float = 0.0, **_: Any):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_feat, n_classes)

    def forward(self, x: torch.Tensor) -> MILOutput:
        return MILOutput(self.head(self.drop(x.mean(0))))


class ABMIL(nn.Module):
    def __init__(
        self,
        d_feat: int,
        n_classes: int,
        d_inner: int = 128,
        d_attn: int = 128,
        dropout: float = 0.0,
        **_: Any,
    ):
        super().__init__()
        self.front = _front(d_feat, d_inner)
        self.attn = GatedAttention(d_inner, d_attn, 1, dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_inner, n_classes)

    def forward(self, x: torch.Tensor) -> MILOutput:
        h = self.front(x)
        a = torch.softmax(self.attn(h), dim=1)  # 1 x N
        slide = (a @ h)[0]
        return MILOutput(self.head(self.drop(slide)), attention=a[0])


class ACMIL(nn.Module):
    def __init__(
        self,
        d_feat: int,
        n_classes: int,
        d_inner: int = 128,
        d_attn: int = 128,
        dropout: float = 0.0,
        n_token: int = 5,
        n_masked_patch: int = 10,
        mask_drop: float = 0.6,
        **_: Any,
    ):
        super().__init__()
        self.front = _front(d_feat, d_inner)
        self.attn = GatedAttention(d_inner, d_attn, n_token, dropout)
        self.drop = nn.Dropout(dropout)
        self.branch_heads = nn.ModuleList(nn.Linear(d_inner, n_classes) for _ in range(n_token))
        self.head = nn.Linear(d_inner, n_classes)
        self.n_masked_patch, self.mask_drop = n_masked_patch, mask_drop

    def _mask(self, scores: torch.Tensor) -> torch.Tensor:
        """Hide a random ``mask_drop`` share of each branch's top ``n_masked_patch`` tiles."""
        k, n = scores.shape
        top = min(self.n_masked_patch, n)
        n_drop = int(top * self.mask_drop)
        if top == 0 or n_drop == 0:
            return scores
        idx = torch.topk(scores, top, dim=-1).indices  # k x top
        pick = torch.argsort(torch.rand(k, top, device=scores.device), dim=-1)[:, :n_drop]
        masked = torch.gather(idx, 1, pick)
        keep = torch.ones_like(scores, dtype=torch.bool).scatter_(1, masked, False)
        return scores.masked_fill(~keep, -1e9)

    def forward(self, x: torch.Tensor) -> MILOutput:
        h = self.front(x)
        scores = self.attn(h)  # n_token x N
        if self.training:
            scores = self._mask(scores)
        a = torch.softmax(scores, dim=1)
        per_branch = a @ h  # n_token x d_inner
        branch_logits = torch.stack(
            [head(self.drop(f)) for head, f in zip(self.branch_heads, per_branch, strict=True)]
        )
        bag_a = a.mean(0)
        slide = bag_a @ h
        return MILOutput(
            self.head(self.drop(slide)), attention=bag_a, branch_logits=branch_logits, branch_scores=scores
        )


def diversity_loss(scores: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity of the branches' softmaxed attention (ACMIL's extra term)."""
    k = scores.shape[0]
    if k < 2:
        return scores.new_zeros(())
    a = torch.nn.functional.normalize(torch.softmax(scores, dim=1), dim=1)
    sim = a @ a.T
    off = sim[~torch.eye(k, dtype=torch.bool, device=sim.device)]
    return off.mean()


def mil_loss(out: MILOutput, target: torch.Tensor) -> torch.Tensor:
    """Slide cross-entropy; for ACMIL plus each branch's cross-entropy and the diversity term."""
    ce = nn.functional.cross_entropy
    loss = ce(out.logits[None], target[None])
    if out.branch_logits is not None and out.branch_scores is not None:
        k = out.branch_logits.shape[0]
        loss = loss + ce(out.branch_logits, target.repeat(k)) + diversity_loss(out.branch_scores)
    return loss


class Standardized(nn.Module):
    """``inner`` on z-scored features, with the training slides' mean and std as saved buffers.

    Why: CLIP encoders (pathgen's among them) give unit-norm features, about 1/sqrt(D) per
    dimension; on inputs that small a Linear layer learns an order of magnitude slower at the same
    learning rate. The statistics live in the state dict, so a saved model scores new slides with
    the training set's scaling.
    """

    def __init__(self, inner: nn.Module, d_feat: int):
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.zeros(d_feat))
        self.register_buffer("std", torch.ones(d_feat))

    def forward(self, x: torch.Tensor) -> MILOutput:
        return self.inner((x - self.mean) / self.std)


def build_model(
    kind: str, d_feat: int, n_classes: int, standardize: bool = False, **params: Any
) -> nn.Module:
    if kind == "meanpool":
        model: nn.Module = MeanPoolMIL(d_feat, n_classes, **params)
    elif kind == "abmil":
        model = ABMIL(d_feat, n_classes, **params)
    elif kind == "acmil":
        model = ACMIL(d_feat, n_classes, **params)
    else:
        raise ValueError(f"unknown MIL model {kind!r}; models: {', '.join(MODELS)}")
    return Standardized(model, d_feat) if standardize else model
