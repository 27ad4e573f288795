"""Shortcuts a model could learn instead of morphology: the hospital a slide came from.

TCGA barcodes name the tissue source site (``TCGA-<TSS>-<participant>-...``); stain, scanner and
preparation differ by site, and image features that predict the site let a model (and its
evaluation) cheat (Howard et al., Nat Commun 2021). The site-leakage score is the cross-validated
accuracy of a linear probe predicting the site from the image features, next to chance (the share
of the most common site): the further above chance, the stronger the site signal. Caption terms
that are much more frequent at one site than elsewhere show where the text carries the site too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pathgen.audit.caption_quality import content_terms

_BARCODE = re.compile(r"^TCGA-([A-Z0-9]{2})-([A-Z0-9]{4})", re.IGNORECASE)


@dataclass(frozen=True)
class Barcode:
    site: str  # tissue source site code, e.g. "CR"
    patient: str  # "TCGA-CR-7395"


def parse_barcode(slide_id: str) -> Barcode | None:
    """The TCGA site and patient of a slide id or file name; None when it is not a TCGA barcode."""
    m = _BARCODE.match(str(slide_id or "").strip())
    if not m:
        return None
    site, participant = m.group(1).upper(), m.group(2).upper()
    return Barcode(site, f"TCGA-{site}-{participant}")


def site_leakage(
    features: np.ndarray,
    sites: Sequence[str],
    folds: int = 5,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> dict[str, float | int | str | None]:
    """Cross-validated accuracy of a logistic-regression probe predicting ``sites`` from features.

    With ``groups`` (the patient of each patch) and at least two patients at every site, folds keep
    a patient's patches together (``split: patient``): otherwise the probe could score by
    recognising the slide rather than the site. Else folds are by patch (``split: patch``, noted).
    Returns ``{accuracy, chance, lift, sites, n, folds, split, note}``; ``accuracy`` is None (with
    a note) when there are fewer than two sites or fewer than two patches at some site.
    """
    labels = np.asarray([str(s) for s in sites])
    counts = Counter(labels.tolist())
    n = len(labels)
    result: dict[str, float | int | str | None] = {
        "accuracy": None, "chance": None, "lift": None, "sites": len(counts), "n": n, "folds": 0,
        "split": None, "note": "",
    }  # fmt: skip
    if len(counts) < 2:
        result["note"] = "needs patches from at least two TCGA sites"
        return result
    result["chance"] = max(counts.values()) / n
    k = min(folds, min(counts.values()))
    if k < 2:
        result["note"] = "needs at least two patches from every site"
        return result
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score

    split, cv, cv_groups = "patch", StratifiedKFold(k, shuffle=True, random_state=seed), None
    if groups is not None:
        patients = np.asarray([str(g) for g in groups])
        per_site = min(len(set(patients[labels == s])) for s in counts)
        if per_site >= 2:
            k = min(k, per_site)
            split, cv_groups = "patient", patients
            cv = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
        else:
            result["note"] = "folds by patch (a site has one patient): recognising the slide inflates this"
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    probe = LogisticRegression(C=1.0, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(probe, x, labels, groups=cv_groups, cv=cv)
    acc = float(np.mean(scores))
    result.update(accuracy=acc, lift=acc / float(result["chance"]), folds=k, split=split)
    return result


def site_terms(
    captions: Sequence[str], sites: Sequence[str], top: int = 5, min_count: int = 3
) -> dict[str, list[tuple[str, float, int]]]:
    """Per site, the caption terms most specific to it: ``(term, log-odds, count at the site)``.

    Log-odds of a term at a site against all other sites, with add-one smoothing, over terms seen
    at least ``min_count`` times at that site (documents = captions, each term counted once).
    """
    by_site: dict[str, Counter] = {}
    totals: Counter = Counter()
    docs: Counter = Counter()
    for caption, site in zip(captions, sites, strict=True):
        terms = content_terms(caption, 4)
        by_site.setdefault(site, Counter()).update(terms)
        totals.update(terms)
        docs[site] += 1
    n_all = sum(docs.values())
    out: dict[str, list[tuple[str, float, int]]] = {}
    for site, counts in by_site.items():
        n_in, n_out = docs[site], n_all - docs[site]
        if n_out == 0:
            continue
        scored = []
        for term, c in counts.items():
            if c < min_count:
                continue
            other = totals[term] - c
            lo = math.log((c + 1) / (n_in - c + 1)) - math.log((other + 1) / (n_out - other + 1))
            scored.append((term, round(lo, 3), c))
        out[site] = sorted(scored, key=lambda t: (-t[1], t[0]))[:top]
    return out
