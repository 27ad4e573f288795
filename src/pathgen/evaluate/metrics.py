"""Metrics on embeddings: zero-shot classification, classification scores, retrieval recall.

Pure NumPy + scikit-learn functions on arrays, so they are tested against hand-computed values
without any model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

RECALL_KS = (1, 5, 10, 50)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def text_classifier(
    prompts_per_class: Sequence[Sequence[str]], encode_texts: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """One row per class: the re-normalised mean of the normalised embeddings of its prompts.

    With one prompt per class this is just that prompt's embedding (the single-template case).
    """
    flat = [p for prompts in prompts_per_class for p in prompts]
    emb = l2_normalise(encode_texts(flat))
    rows, start = [], 0
    for prompts in prompts_per_class:
        rows.append(emb[start : start + len(prompts)].mean(axis=0))
        start += len(prompts)
    return l2_normalise(np.stack(rows))


def zero_shot_predict(image_features: np.ndarray, classifier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, predicted class index): cosine similarity of each image to each class row."""
    scores = l2_normalise(image_features) @ classifier.T
    return scores, scores.argmax(axis=1)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str], ordinal: bool = False
) -> dict:
    """Accuracy, balanced accuracy, weighted F1, per-class report and confusion matrix (sklearn);
    with ``ordinal`` (class indices are grades) also quadratic weighted Cohen's κ."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        classification_report,
        confusion_matrix,
        f1_score,
    )

    if len(y_true) == 0:
        raise ValueError("no examples to score (the selected images are empty)")

    labels = list(range(len(class_names)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = sorted(set(y_true.tolist()))
    with warnings.catch_warnings():
        # a class absent from y_true (e.g. BACK in a subset) is expected, not worth a warning
        warnings.simplefilter("ignore", UserWarning)
        report = classification_report(
            y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
        )
        # balanced accuracy over the classes present in y_true (sklearn's definition)
        balanced = float(balanced_accuracy_score(y_true, y_pred)) if len(present) else 0.0
    out = {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {
            name: {k: float(v) for k, v in report[name].items()} for name in class_names if name in report
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if ordinal:
        out["quadratic_kappa"] = quadratic_kappa(y_true, y_pred, len(class_names))
    return out


def quadratic_kappa(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float | None:
    """Cohen's κ with quadratic weights over grades 0..n-1: a G3 called G5 costs four times a G3
    called G4. None when undefined (truth and prediction both a single, identical grade)."""
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # sklearn's UndefinedMetricWarning: handled as None below
        k = cohen_kappa_score(y_true, y_pred, labels=list(range(n_classes)), weights="quadratic")
    return None if np.isnan(k) else float(k)


def recall_at_k(similarity: np.ndarray, positives: Sequence[set[int]], ks: Sequence[int] = RECALL_KS) -> dict:
    """Fraction of queries (rows) with at least one positive among their top-k columns, per k.

    ``positives[i]`` holds the column indices that count as correct for query ``i``. Ties are
    broken by column order (stable sort), so results are deterministic.
    """
    order = np.argsort(-similarity, axis=1, kind="stable")
    n_cols = similarity.shape[1]
    first_hit = np.full(len(order), np.inf)
    for i, pos in enumerate(positives):
        hits = np.flatnonzero(np.isin(order[i], list(pos)))
        if hits.size:
            first_hit[i] = hits[0]
    return {f"R@{k}": float(np.mean(first_hit < min(k, n_cols))) for k in ks}


def retrieval_metrics(
    image_features: np.ndarray,
    text_features: np.ndarray,
    text_to_image: Sequence[int] | None = None,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, Any]:
    """Image→text and text→image Recall@k; ``text_to_image[j]`` is the image of caption ``j``
    (default: caption j belongs to image j)."""
    img, txt = l2_normalise(image_features), l2_normalise(text_features)
    t2i = list(range(len(txt))) if text_to_image is None else list(text_to_image)
    sim = img @ txt.T
    img_pos: list[set[int]] = [set() for _ in range(len(img))]
    for j, i in enumerate(t2i):
        img_pos[i].add(j)
    i2t = recall_at_k(sim, img_pos, ks)
    t2i_r = recall_at_k(sim.T, [{i} for i in t2i], ks)
    return {
        "n_images": len(img),
        "n_texts": len(txt),
        "image_to_text": i2t,
        "text_to_image": t2i_r,
        "mean_recall": float(np.mean(list(i2t.values()) + list(t2i_r.values()))),
    }


def image_retrieval_metrics(
    features: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict:
    """Leave-one-out image→image retrieval by class: top-k hit rate and majority-vote accuracy.

    ``majority@k`` is the fraction of queries whose k nearest other images vote for the query's
    class (the KIMIA Path24 protocol's patch accuracy uses k = 1 or a small vote).
    """
    feats = l2_normalise(features)
    labels = np.asarray(labels)
    sim = feats @ feats.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    out: dict[str, Any] = {"n": len(labels)}
    for k in ks:
        top = labels[order[:, :k]]
        out[f"R@{k}"] = float(np.mean((top == labels[:, None]).any(axis=1)))
        votes = [np.bincount(row, minlength=labels.max() + 1).argmax() for row in top]
        out[f"majority@{k}"] = float(np.mean(np.asarray(votes) == labels))
    return out
