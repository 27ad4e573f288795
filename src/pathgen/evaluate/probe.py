"""Linear probe and few-shot classification on frozen image features (scikit-learn).

The probe picks the inverse regularisation C on a stratified validation split of the training
features, then refits on all training features: the protocol of CLIP-style linear evaluation,
without ever looking at the test set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pathgen.evaluate.metrics import classification_metrics, l2_normalise

C_GRID = tuple(float(c) for c in np.logspace(-3, 3, 7))
FEW_SHOT_KS = (1, 2, 4, 8, 16)


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    return clf.fit(x, y)


def choose_c(
    x: np.ndarray, y: np.ndarray, grid: Sequence[float] = C_GRID, val_fraction: float = 0.2, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """C with the best validation accuracy (ties -> the smaller C, i.e. stronger regularisation)."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    n_val = max(round(len(y) * val_fraction), len(set(y.tolist())) if stratify is not None else 1)
    if len(y) - n_val < 2:
        return float(grid[len(grid) // 2]), {}
    xtr, xval, ytr, yval = train_test_split(x, y, test_size=n_val, random_state=seed, stratify=stratify)
    if len(set(ytr.tolist())) < 2:
        return float(grid[len(grid) // 2]), {}
    scores = {}
    for c in grid:
        scores[str(c)] = float((_fit(xtr, ytr, c, seed).predict(xval) == yval).mean())
    best = max(grid, key=lambda c: (scores[str(c)], -c))
    return float(best), scores


def linear_probe(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_test: np.ndarray,
    y_test: Sequence[int],
    class_names: Sequence[str],
    seed: int = 0,
    c: float | None = None,
) -> dict:
    """Fit on train (C from a validation split unless given), score on test."""
    xtr, xte = l2_normalise(x_train), l2_normalise(x_test)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(set(ytr.tolist())) < 2:
        raise ValueError("linear probe needs at least two classes in the training split")
    val_scores: dict[str, float] = {}
    if c is None:
        c, val_scores = choose_c(xtr, ytr, seed=seed)
    pred = _fit(xtr, ytr, c, seed).predict(xte)
    return {"C": c, "validation": val_scores, **classification_metrics(yte, pred, class_names)}


def supported_shots(y_train: np.ndarray, classes: Sequence[int]) -> tuple[int, int]:
    """The largest k every class can supply, and which class limits it.

    A k above that would silently train on fewer shots for the small classes (and, once k reaches the
    class size, every seed draws the same images: identical runs, std 0), so such k are skipped.
    """
    counts = {cl: int((y_train == cl).sum()) for cl in classes}
    limiting = min(counts, key=lambda cl: (counts[cl], cl))
    return counts[limiting], limiting


def _whole_classes(y_train: np.ndarray, k: int) -> bool:
    """True when k is every class's whole training set: each seed then draws the same images, so the
    spread over seeds (std 0) says nothing about the variance of k-shot learning."""
    return all(int((y_train == cl).sum()) == k for cl in set(y_train.tolist()))


def _one_run(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    k: int,
    seed: int,
    c: float,
    names: Sequence[str],
) -> dict[str, float]:
    """k training examples per class drawn with ``seed``; the headline metrics on the test set."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(ytr == cl), size=k, replace=False) for cl in sorted(set(ytr.tolist()))]
    )
    m = classification_metrics(yte, _fit(xtr[idx], ytr[idx], c, seed).predict(xte), names)
    return {key: m[key] for key in ("accuracy", "balanced_accuracy", "weighted_f1")}


def few_shot(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_test: np.ndarray,
    y_test: Sequence[int],
    class_names: Sequence[str],
    ks: Sequence[int] = FEW_SHOT_KS,
    seeds: Sequence[int] = (0, 1, 2),
    c: float = 1.0,
) -> dict:
    """For each k, k training examples per class drawn with each seed; mean ± std over seeds.

    Only the k that every class (of the training and the test split) can supply are run; the others
    are listed under ``skipped`` with the reason, so no reported k ever used fewer shots than it says.
    """
    if any(k < 1 for k in ks):
        raise ValueError(f"few-shot k must be >= 1, got {sorted(set(ks))}")
    if not seeds:
        raise ValueError("few-shot needs at least one seed")
    xtr, xte = l2_normalise(x_train), l2_normalise(x_test)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    classes = sorted(set(ytr.tolist()) | set(yte.tolist()))
    max_k, limiting = supported_shots(ytr, classes)
    name = class_names[limiting] if 0 <= limiting < len(class_names) else str(limiting)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for k in sorted(set(ks)):
        if len(classes) < 2:
            skipped[str(k)] = "fewer than two classes"
        elif k > max_k:
            skipped[str(k)] = (
                f"needs {k} training images per class; class {name!r} has {max_k} in the training split"
            )
        else:
            runs = [_one_run(xtr, ytr, xte, yte, k, seed, c, class_names) for seed in seeds]
            results[str(k)] = {
                key: {
                    "mean": float(np.mean([r[key] for r in runs])),
                    "std": float(np.std([r[key] for r in runs])),
                }
                for key in runs[0]
            } | {"seeds": len(runs), "same_images_every_seed": _whole_classes(ytr, k)}
    return {"C": c, "shots": results, "skipped": skipped, "max_k": max_k}
