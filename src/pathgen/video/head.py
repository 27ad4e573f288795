"""The linear histology head: trained by ``pathgen video train-classifier``, saved as safetensors.

Training data is a folder of labelled frames, ``FOLDER/histology/*`` and ``FOLDER/other/*`` (any
image files; other folder names are refused so a typo is not a silent class). Features are the
weight-free colour/texture features (:mod:`pathgen.video.features`) or an encoder's image
embeddings (``--encoder SPEC``), standardised; the head is an L2-regularised, class-balanced
logistic regression (fitted exactly by Newton's method, see :func:`fit_logistic`). Quilt's DINO +
linear head is the same recipe with a DINO encoder. The file holds the weights, the
standardisation and, in its metadata, the feature kind, so a head can never be applied to
features it was not trained on. Loading needs no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.video.features import FEATURES, features_of

CLASSES = ("other", "histology")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _embedder(encoder: str | None, device: str | None = None) -> Any:
    """A function frames -> feature rows: the weight-free features, or an encoder's embeddings."""
    if not encoder:
        return features_of
    from PIL import Image

    from pathgen.models.encoders import load_encoder

    enc = load_encoder(encoder, device=device)
    return lambda frames: enc.encode_images([Image.fromarray(f) for f in frames])


@dataclass
class LinearHead:
    weight: np.ndarray  # (D,)
    bias: float
    mean: np.ndarray
    std: np.ndarray
    features: str  # FEATURES or "encoder:SPEC"
    name: str = "head"
    _embed: Any = None

    def scores(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        if self._embed is None:
            enc = self.features[len("encoder:") :] if self.features.startswith("encoder:") else None
            self._embed = _embedder(enc)
        x = (np.asarray(self._embed(list(frames)), dtype=np.float32) - self.mean) / self.std
        return (1.0 / (1.0 + np.exp(-(x @ self.weight + self.bias)))).astype(np.float32)

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> Path:
        from safetensors.numpy import save_file

        from pathgen.rundir import atomic_path

        tensors = {
            "weight": self.weight.astype(np.float32),
            "bias": np.array([self.bias], np.float32),
            "mean": self.mean.astype(np.float32),
            "std": self.std.astype(np.float32),
        }
        meta = {"features": self.features, "classes": json.dumps(CLASSES), **(extra or {})}
        with atomic_path(Path(path)) as tmp:
            save_file(tensors, str(tmp), metadata={k: str(v) for k, v in meta.items()})
        return Path(path)

    @classmethod
    def load(cls, path: Path, device: str | None = None) -> LinearHead:
        from safetensors import safe_open

        if not Path(path).is_file():
            raise FileNotFoundError(
                f"classifier head not found: {path} (train one: pathgen video train-classifier)"
            )
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in ("weight", "bias", "mean", "std")}
        features = meta.get("features", "")
        if features != FEATURES and not features.startswith("encoder:"):
            raise ValueError(f"{path}: unknown head features {features!r}")
        head = cls(
            t["weight"], float(t["bias"][0]), t["mean"], t["std"], features, name=f"head:{Path(path).name}"
        )
        if features.startswith("encoder:"):
            head._embed = _embedder(features[len("encoder:") :], device)
        return head


def read_labelled(folder: Path) -> tuple[list[np.ndarray], np.ndarray, list[Path]]:
    """Frames and 0/1 labels from ``folder/histology`` and ``folder/other`` (nested folders too)."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"labelled frame folder not found: {folder}")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    unknown = [d for d in subdirs if d not in CLASSES]
    if unknown or not set(CLASSES) <= set(subdirs):
        raise ValueError(
            f"{folder} must hold exactly the folders histology/ and other/ "
            f"(found: {', '.join(subdirs) or 'none'})"
        )
    frames, labels, paths = [], [], []
    for label, name in enumerate(CLASSES):
        files = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{folder / name} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        for p in files:
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert("RGB")))
            labels.append(label)
            paths.append(p)
    return frames, np.array(labels), paths


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised, class-balanced logistic regression by Newton's method (IRLS).

    Why not scikit-learn: the head has a few dozen features and a few hundred frames, which Newton
    solves exactly in a handful of steps, and importing scikit-learn costs seconds per process.
    The objective is scikit-learn's (``C`` = inverse penalty on the weights, bias unpenalised,
    ``class_weight="balanced"``), so results match it.
    """
    n, d = x.shape
    counts = np.bincount(y.astype(int), minlength=2).astype(np.float64)
    sw = (n / (2 * np.maximum(counts, 1)))[y.astype(int)]
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, 1.0 / c)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (sw * (p - y)) + penalty * w
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Stratified folds: each class's indices shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(y), dtype=int)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        fold_of[idx] = np.arange(len(idx)) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def train_head(
    frames: Sequence[np.ndarray],
    labels: np.ndarray,
    encoder: str | None = None,
    c: float = 1.0,
    seed: int = 0,
) -> tuple[LinearHead, dict[str, float]]:
    """Fit the head; returns it with its training and (stratified k-fold) held-out accuracy."""
    y = np.asarray(labels, dtype=np.float64)
    x = np.asarray(_embedder(encoder)(list(frames)), dtype=np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    weight, bias = fit_logistic(z, y, c)
    info: dict[str, float] = {
        "train_accuracy": round(float((((z @ weight + bias) > 0) == (y > 0)).mean()), 4)
    }
    k = int(min(5, y.sum(), len(y) - y.sum()))
    if k >= 2:  # held-out accuracy: what to expect on frames the head has not seen
        right = 0
        for test in _folds(y, k, seed):
            train = np.setdiff1d(np.arange(len(y)), test)
            w, b = fit_logistic(z[train], y[train], c)
            right += int((((z[test] @ w + b) > 0) == (y[test] > 0)).sum())
        info["cv_accuracy"] = round(right / len(y), 4)
    head = LinearHead(
        weight.astype(np.float32),
        bias,
        mean.astype(np.float32),
        std.astype(np.float32),
        f"encoder:{encoder}" if encoder else FEATURES,
    )
    return head, {**info, "histology": int(y.sum()), "other": int(len(y) - y.sum())}
