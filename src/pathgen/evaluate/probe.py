"""Linear probe and few-shot classification on frozen image features (scikit-learn).

Two protocols, named in every result (``protocol``):

- ``sweep`` (pathgen's default): features L2-normalised; the inverse regularisation C is picked
  from ``C_GRID`` on a stratified validation split of the training features, then refit on all
  training features (CLIP-style linear evaluation that never looks at the test set). Few-shot
  cannot hold out a validation split from k images, so it uses C = 1 (scikit-learn's default).
- ``uni``: the protocol UNI (Chen et al. 2024) publishes, as its code does it (mahmoodlab/UNI,
  ``uni/downstream/eval_patch_features/linear_probe.py``, ``train_linear_probe``): a fixed
  C = feature_dim x n_classes / 100 (no search), L-BFGS, at most 1000 iterations, the features as
  the encoder returns them (no centring, scaling or re-normalisation; pathgen's encoders already
  return unit-norm embeddings). UNI fits with its own torch L-BFGS by default (mean cross-entropy
  + (1/C) * 0.5 * ||W||, bias unpenalised, zero init) and offers scikit-learn's
  ``LogisticRegression(C, max_iter=1000)`` with ``use_sklearn=True``; this is that scikit-learn path,
  whose penalty scales differently, so numbers can differ slightly from UNI's default path. Few-shot
  under ``uni`` is logistic regression with the same C rule on k images per class (UNI's own
  ``fewshot.py`` scores SimpleShot prototypes instead). CONCH's repository ships no probe code.

Few-shot draws are at least ``MIN_FEW_SHOT_DRAWS`` per k in :func:`pathgen.evaluate.run.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pathgen.evaluate.metrics import classification_metrics, l2_normalise

C_GRID = tuple(float(c) for c in np.logspace(-3, 3, 7))
FEW_SHOT_KS = (1, 2, 4, 8, 16)
MIN_FEW_SHOT_DRAWS = 5
PROTOCOLS = ("sweep", "uni")
SWEEP_MAX_ITER = 2000
UNI_MAX_ITER = 1000  # UNI's eval_linear_probe default
FEW_SHOT_SWEEP_C = 1.0


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown probe protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return name


def uni_cost(feature_dim: int, n_classes: int) -> float:
    """UNI's fixed inverse regularisation: ``feature_dim * n_classes / 100`` (e.g. 512-d, 9 classes:
    46.08), with n_classes counted in the training labels as UNI does."""
    return feature_dim * n_classes / 100


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int, max_iter: int = SWEEP_MAX_ITER):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        # the iteration cap is part of the protocol; hitting it is expected, as UNI silences it too
        warnings.simplefilter("ignore", ConvergenceWarning)
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
    protocol: str = "sweep",
    ordinal: bool = False,
) -> dict:
    """Fit on train, score on test. ``sweep``: C from a validation split unless given; ``uni``:
    UNI's fixed C rule on the features as given (see the module docstring)."""
    check_protocol(protocol)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(set(ytr.tolist())) < 2:
        raise ValueError("linear probe needs at least two classes in the training split")
    if protocol == "uni":
        xtr, xte = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
        c = uni_cost(xtr.shape[1], len(set(ytr.tolist())))
        pred = _fit(xtr, ytr, c, seed, UNI_MAX_ITER).predict(xte)
        detail = _uni_detail(c)
        return detail | classification_metrics(yte, pred, class_names, ordinal)
    xtr, xte = l2_normalise(x_train), l2_normalise(x_test)
    val_scores: dict[str, float] = {}
    if c is None:
        c, val_scores = choose_c(xtr, ytr, seed=seed)
    pred = _fit(xtr, ytr, c, seed).predict(xte)
    detail = {
        "protocol": "sweep",
        "C": c,
        "C_rule": f"best validation accuracy over {len(C_GRID)} C in 1e-3..1e3" if val_scores else "given",
        "solver": "lbfgs",
        "max_iter": SWEEP_MAX_ITER,
        "features": "L2-normalised",
        "validation": val_scores,
    }
    return detail | classification_metrics(yte, pred, class_names, ordinal)


def _uni_detail(c: float) -> dict:
    return {
        "protocol": "uni",
        "C": c,
        "C_rule": "feature_dim * n_classes / 100 (UNI)",
        "solver": "lbfgs",
        "max_iter": UNI_MAX_ITER,
        "features": "as encoded",
    }


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
    max_iter: int = SWEEP_MAX_ITER,
    ordinal: bool = False,
) -> dict[str, float]:
    """k training examples per class drawn with ``seed``; the headline metrics on the test set."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(ytr == cl), size=k, replace=False) for cl in sorted(set(ytr.tolist()))]
    )
    m = classification_metrics(yte, _fit(xtr[idx], ytr[idx], c, seed, max_iter).predict(xte), names, ordinal)
    keys = ("accuracy", "balanced_accuracy", "weighted_f1", "quadratic_kappa")
    return {key: m[key] for key in keys if m.get(key) is not None}


def few_shot(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_test: np.ndarray,
    y_test: Sequence[int],
    class_names: Sequence[str],
    ks: Sequence[int] = FEW_SHOT_KS,
    seeds: Sequence[int] = tuple(range(MIN_FEW_SHOT_DRAWS)),
    c: float | None = None,
    protocol: str = "sweep",
    ordinal: bool = False,
) -> dict:
    """For each k, k training examples per class drawn with each seed; mean ± std over seeds.

    Only the k that every class (of the training and the test split) can supply are run; the others
    are listed under ``skipped`` with the reason, so no reported k ever used fewer shots than it says.
    C: given, else 1 under ``sweep`` and UNI's feature_dim x n_classes / 100 under ``uni``.
    """
    check_protocol(protocol)
    if any(k < 1 for k in ks):
        raise ValueError(f"few-shot k must be >= 1, got {sorted(set(ks))}")
    if not seeds:
        raise ValueError("few-shot needs at least one seed")
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if protocol == "uni":
        xtr, xte = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
        n_train_classes = len(set(ytr.tolist()))
        detail = _uni_detail(uni_cost(xtr.shape[1], n_train_classes) if c is None else c)
        if c is not None:
            detail["C_rule"] = "given"
        c = detail["C"]
    else:
        xtr, xte = l2_normalise(x_train), l2_normalise(x_test)
        c = FEW_SHOT_SWEEP_C if c is None else c
        detail = {
            "protocol": "sweep",
            "C": c,
            "C_rule": "fixed (no validation split in k images)",
            "solver": "lbfgs",
            "max_iter": SWEEP_MAX_ITER,
            "features": "L2-normalised",
        }
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
            runs = [
                _one_run(xtr, ytr, xte, yte, k, seed, c, class_names, detail["max_iter"], ordinal)
                for seed in seeds
            ]
            results[str(k)] = {
                key: {
                    "mean": float(np.mean([r[key] for r in runs])),
                    "std": float(np.std([r[key] for r in runs])),
                }
                for key in runs[0]
                if all(key in r for r in runs)  # κ is undefined on a draw that predicts one grade
            } | {"seeds": len(runs), "same_images_every_seed": _whole_classes(ytr, k)}
    return detail | {"draws": len(seeds), "shots": results, "skipped": skipped, "max_k": max_k}
