"""Zero-shot and retrieval metrics against values computed by hand on tiny fixed embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pathgen.evaluate.metrics import (
    classification_metrics,
    image_retrieval_metrics,
    retrieval_metrics,
    text_classifier,
    zero_shot_predict,
)
from pathgen.evaluate.probe import few_shot, linear_probe

TEXT = {"a1": [1, 0, 0], "a2": [0, 1, 0], "b1": [0, 0, 1]}


def fake_encode(texts: list[str]) -> np.ndarray:
    return np.asarray([TEXT[t] for t in texts], dtype=np.float32)


def test_text_classifier_is_the_renormalised_mean_of_prompt_embeddings():
    clf = text_classifier([["a1", "a2"], ["b1"]], fake_encode)
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(clf, [[r, r, 0], [0, 0, 1]], atol=1e-6)


def test_zero_shot_predictions_and_metrics_match_hand_computation():
    clf = text_classifier([["a1", "a2"], ["b1"]], fake_encode)
    images = np.asarray([[1, 0, 0], [0, 0, 2], [0.1, 0.1, 1], [1, 1, 0.5]], dtype=np.float32)
    scores, pred = zero_shot_predict(images, clf)
    # x1 . A = 1/sqrt2; x3 = (0.1, 0.1, 1)/1.00995: A = 0.1414/1.00995, B = 1/1.00995
    assert scores[0, 0] == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert scores[2, 0] == pytest.approx(0.2 / math.sqrt(2) / math.sqrt(1.02), abs=1e-6)
    assert scores[3, 0] == pytest.approx(math.sqrt(2) / 1.5, abs=1e-6)
    assert pred.tolist() == [0, 1, 1, 0]

    m = classification_metrics([0, 1, 0, 0], pred, ["A", "B"])
    # A: tp 2, fn 1, fp 0 -> P 1, R 2/3, F1 0.8; B: tp 1, fp 1 -> P 0.5, R 1, F1 2/3
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 1 * (2 / 3)) / 4)
    assert m["per_class"]["A"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["B"]["precision"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[2, 1], [0, 1]]


def test_retrieval_recall_matches_hand_computation():
    images = np.eye(3, dtype=np.float32)
    texts = np.asarray([[1, 0, 0], [0, 0, 1], [0, 0.6, 0.8]], dtype=np.float32)
    # sim[i, j] = texts[j, i]: image 0 -> t0 first; image 1 -> t2, t0, t1 (its caption third);
    # image 2 -> t1, t2 (its caption second). Text side: t0 -> img 0; t1 -> img 2, img 0, img 1; t2 -> img 2.
    r = retrieval_metrics(images, texts, ks=(1, 2, 5))
    assert r["image_to_text"] == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "R@5": 1.0})
    assert r["text_to_image"] == pytest.approx({"R@1": 2 / 3, "R@2": 2 / 3, "R@5": 1.0})


def test_retrieval_with_several_captions_per_image():
    images = np.asarray([[1, 0], [0, 1]], dtype=np.float32)
    texts = np.asarray([[0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    # captions 0 and 1 belong to image 0, caption 2 to image 1
    r = retrieval_metrics(images, texts, text_to_image=[0, 0, 1], ks=(1,))
    # image 0: best caption is t1 (its own) -> hit; image 1: best is t0 (sim 1, image 0's) -> miss
    assert r["image_to_text"]["R@1"] == pytest.approx(0.5)
    # t0 -> image 1 (miss), t1 -> image 0 (hit), t2 -> image 1 (hit)
    assert r["text_to_image"]["R@1"] == pytest.approx(2 / 3)


def test_image_to_image_retrieval_leave_one_out():
    feats = np.asarray([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.6]], dtype=np.float32)
    r = image_retrieval_metrics(feats, [0, 0, 1, 1], ks=(1, 3))
    # point 3's nearest other point is point 1 (class 0): the only miss at k = 1
    assert r["R@1"] == pytest.approx(0.75)
    assert r["majority@1"] == pytest.approx(0.75)
    assert r["R@3"] == pytest.approx(1.0)


def test_linear_probe_and_few_shot_on_separable_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    x = np.concatenate([c + rng.normal(0, 0.3, (20, 3)) for c in centres])
    y = np.repeat([0, 1, 2], 20)
    idx = rng.permutation(60)
    tr, te = idx[:40], idx[40:]
    res = linear_probe(x[tr], y[tr], x[te], y[te], ["a", "b", "c"])
    assert res["accuracy"] == 1.0
    assert res["C"] in [float(c) for c in np.logspace(-3, 3, 7)]
    fs = few_shot(x[tr], y[tr], x[te], y[te], ["a", "b", "c"], ks=(1, 4), seeds=(0, 1))
    assert set(fs["shots"]) == {"1", "4"}
    assert fs["shots"]["4"]["accuracy"]["mean"] == 1.0
    assert fs["shots"]["4"]["seeds"] == 2
