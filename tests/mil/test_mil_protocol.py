"""Splits and metrics: patients never cross a split, the official split is used as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathgen.mil.bags import Bag
from pathgen.mil.metrics import macro_auc, slide_metrics, summarise
from pathgen.mil.protocol import make_splits


def _bags(n, patients=True, split=None, fold=None):
    return [
        Bag(
            f"s{i}",
            Path(f"s{i}.h5"),
            i % 2,
            10,
            split(i) if split else None,
            fold(i) if fold else None,
            f"p{i // 3}" if patients else None,
        )
        for i in range(n)
    ]


def test_kfold_keeps_patients_together_and_tests_every_slide_once():
    bags = _bags(30)
    splits, how = make_splits(bags, seeds=[0, 1], folds=5, val_fraction=0.2)
    assert how.startswith("5-fold by patient") and len(splits) == 10
    for s in splits:
        pat = {k: {bags[i].patient for i in getattr(s, k)} for k in ("train", "val", "test")}
        assert (
            not (pat["train"] & pat["test"])
            and not (pat["val"] & pat["test"])
            and not (pat["train"] & pat["val"])
        )
        assert sorted(s.train + s.val + s.test) == list(range(30))
    for seed in (0, 1):
        tested = sorted(i for s in splits if s.seed == seed for i in s.test)
        assert tested == list(range(30))


def test_official_split_is_used_and_leaks_are_noted():
    names = ["train"] * 8 + ["val"] * 2 + ["test"] * 4
    bags = _bags(14, split=lambda i: names[i])
    splits, how = make_splits(bags, seeds=[0, 1, 2], folds=5, val_fraction=0.1)
    assert how == "official split" and len(splits) == 3
    assert (
        splits[0].train == list(range(8)) and splits[0].val == [8, 9] and splits[0].test == [10, 11, 12, 13]
    )
    assert splits[0].notes  # slides 9 (val) and 10/11 (test) share patient p3


def test_official_split_without_val_carves_it_from_train():
    names = ["train"] * 20 + ["test"] * 6
    bags = _bags(26, patients=False, split=lambda i: names[i])
    splits, how = make_splits(bags, seeds=[0], folds=5, val_fraction=0.25)
    s = splits[0]
    assert "validation" in how and len(s.val) > 0 and not set(s.val) & set(s.train)
    assert sorted(s.train + s.val) == list(range(20)) and s.test == list(range(20, 26))


def test_given_folds():
    bags = _bags(12, fold=lambda i: i % 3)
    splits, how = make_splits(bags, seeds=[0], folds=5, val_fraction=0.2)
    assert how.startswith("given folds (3)") and [s.fold for s in splits] == [0, 1, 2]
    assert all(all(bags[i].fold == s.fold for i in s.test) for s in splits)


def test_no_test_split_is_an_error():
    with pytest.raises(ValueError, match="no slide in the test split"):
        make_splits(_bags(4, split=lambda i: "train"), [0], 5, 0.1)
    with pytest.raises(ValueError, match="no usable slides"):
        make_splits([], [0], 5, 0.1)


def test_macro_auc_by_hand():
    # binary: 3 of the 4 (positive, negative) pairs are ordered right
    assert macro_auc(
        [0, 0, 1, 1], np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    ) == pytest.approx(0.75)
    assert macro_auc([1, 1], np.array([[0.2, 0.8], [0.3, 0.7]])) is None
    # three classes, class 2 absent from the truth: mean of the two one-vs-rest AUCs that exist
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    assert macro_auc([0, 0, 1, 1], p) == pytest.approx((1.0 + 1.0) / 2)


def test_slide_metrics_and_summary():
    m = slide_metrics([0, 1, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]), ["n", "t"])
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["macro_auc"] == 1.0 and m["confusion_matrix"] == [[1, 0], [1, 2]]
    s = summarise(
        [
            {"macro_auc": 1.0, "accuracy": 0.5},
            {"macro_auc": 0.5, "accuracy": 1.0},
            {"macro_auc": None, "accuracy": 0.0},
        ]
    )
    assert s["macro_auc"] == 0.75 and s["macro_auc_std"] == 0.25 and s["accuracy"] == 0.5


def test_heatmaps_take_the_classes_in_turn():
    from pathgen.mil.train import _round_robin

    assert _round_robin([0, 0, 0, 1, 1, 2]) == [0, 3, 5, 1, 4, 2]
    assert _round_robin([]) == []
