"""Which slides train, validate and test each run: the official split, given folds, or k-fold.

Patients stay together everywhere (k-fold groups and validation carve-outs are by patient when a
patient column exists, else by slide): a patient's slides on both sides of a split leak. A given
split that mixes patients is reported (``leaks``), not silently used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from pathgen.mil.bags import Bag


@dataclass
class Split:
    name: str
    seed: int
    fold: int | None
    train: list[int]
    val: list[int]
    test: list[int]
    notes: list[str] = field(default_factory=list)


def _groups(bags: list[Bag], idx: list[int]) -> np.ndarray:
    return np.array([bags[i].patient or bags[i].slide_id for i in idx])


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds of (rest, held) index arrays, whole groups only; stratified by label when every
    class has at least k members, else plain shuffled groups (small or rare-class sets)."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold

    if min(np.unique(y, return_counts=True)[1]) >= k:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
            cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            return list(cv.split(np.zeros(len(y)), y, groups))
    uniq = np.array(sorted(set(groups.tolist())))
    folds = []
    for _, held_groups in KFold(n_splits=k, shuffle=True, random_state=seed).split(uniq):
        held = np.isin(groups, uniq[held_groups])
        folds.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return folds


def carve_val(bags: list[Bag], idx: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) from ``idx``: about ``fraction`` of the patients, stratified by label."""
    groups = _groups(bags, idx)
    n_splits = min(max(2, round(1 / fraction)), len(set(groups.tolist())))
    if n_splits < 2:
        return list(idx), []
    y = np.array([bags[i].label for i in idx])
    tr, va = group_folds(y, groups, n_splits, seed)[0]
    return [idx[i] for i in tr], [idx[i] for i in va]


def leaks(bags: list[Bag], a: list[int], b: list[int]) -> list[str]:
    """Patients found on both sides (only meaningful when a patient column exists)."""
    pa = {bags[i].patient for i in a if bags[i].patient}
    return sorted(pa & {bags[i].patient for i in b if bags[i].patient})


def make_splits(
    bags: list[Bag], seeds: list[int], folds: int, val_fraction: float
) -> tuple[list[Split], str]:
    """Every run's split and a sentence saying which protocol applies."""
    if not bags:
        raise ValueError("no usable slides (every labelled slide had a problem; see the problems list)")
    idx = list(range(len(bags)))
    if any(b.split for b in bags):
        test = [i for i in idx if bags[i].split == "test"]
        given_val = [i for i in idx if bags[i].split == "val"]
        train_all = [i for i in idx if bags[i].split in ("train", None)]
        if not test:
            raise ValueError("the labels have a split column but no slide in the test split")
        splits = []
        for seed in seeds:
            tr, va = (train_all, given_val) if given_val else carve_val(bags, train_all, val_fraction, seed)
            notes = [
                f"patient(s) in train and test: {', '.join(p)}" for p in [leaks(bags, tr + va, test)] if p
            ]
            splits.append(Split(f"seed{seed}", seed, None, tr, va, test, notes))
        how = "official split" + (
            "" if given_val else f" (validation: {val_fraction:.0%} of training patients)"
        )
        return splits, how
    if any(b.fold is not None for b in bags):
        values = sorted({b.fold for b in bags if b.fold is not None})
        if len(values) < 2:
            raise ValueError("the fold column has a single value; k-fold needs at least two folds")
        splits = []
        for seed in seeds:
            for f in values:
                test = [i for i in idx if bags[i].fold == f]
                tr, va = carve_val(bags, [i for i in idx if bags[i].fold != f], val_fraction, seed)
                notes = [
                    f"patient(s) in train and test: {', '.join(p)}" for p in [leaks(bags, tr + va, test)] if p
                ]
                splits.append(Split(f"fold{f}-seed{seed}", seed, f, tr, va, test, notes))
        return splits, f"given folds ({len(values)}), {len(seeds)} seed(s)"
    groups = _groups(bags, idx)
    k = min(folds, len(set(groups.tolist())))
    if k < 2:
        raise ValueError("k-fold needs at least two patients/slides")
    y = np.array([b.label for b in bags])
    splits = []
    for seed in seeds:
        for f, (rest, test) in enumerate(group_folds(y, groups, k, seed)):
            tr, va = carve_val(bags, [int(i) for i in rest], val_fraction, seed)
            splits.append(Split(f"fold{f}-seed{seed}", seed, f, tr, va, [int(i) for i in test]))
    by = "patient" if any(b.patient for b in bags) else "slide"
    return splits, f"{k}-fold by {by}, stratified, {len(seeds)} seed(s)"
