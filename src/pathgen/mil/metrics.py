"""Slide-level metrics: macro AUC, balanced accuracy, weighted F1 (and accuracy), mean ± std.

Weighted F1, not torchmetrics' default micro F1 (which is accuracy under another name, as in
ACMIL's reported "F1"). Macro AUC is one-vs-rest over the classes present in the test slides
(binary: the AUC of the positive class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pathgen.evaluate.metrics import classification_metrics

HEADLINE = ("macro_auc", "balanced_accuracy", "weighted_f1", "accuracy")


def macro_auc(y_true: Sequence[int], probs: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    probs = np.asarray(probs)
    if probs.shape[1] == 2:
        return float(roc_auc_score(y, probs[:, 1])) if len(set(y.tolist())) == 2 else None
    aucs = [
        float(roc_auc_score(y == c, probs[:, c]))
        for c in range(probs.shape[1])
        if 0 < int((y == c).sum()) < len(y)
    ]
    return float(np.mean(aucs)) if aucs else None


def slide_metrics(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    probs = np.asarray(probs)
    out = classification_metrics(list(y_true), probs.argmax(1).tolist(), list(classes))
    out["macro_auc"] = macro_auc(y_true, probs)
    return out


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (population, over runs) of each headline metric; None values are left out."""
    out: dict[str, Any] = {}
    for m in HEADLINE:
        vals = [r[m] for r in runs if r.get(m) is not None]
        out[m] = float(np.mean(vals)) if vals else None
        out[f"{m}_std"] = float(np.std(vals)) if vals else None
    return out
