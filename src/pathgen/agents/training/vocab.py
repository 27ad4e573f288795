"""The pathology term vocabulary that rule-based modifications swap within, one group per feature.

Why groups: a modification must turn a true feature into a wrong one *of the same kind* (a grade
into another grade, a cell type into another cell type), as PathGen's revise training data did, so
the error is plausible and the sentence still reads naturally. Terms are matched case-insensitively
on word boundaries; a group is a set of mutually exclusive alternatives.
"""

from __future__ import annotations

import re
from functools import cache

GROUPS: dict[str, tuple[str, ...]] = {
    "grade": ("low-grade", "high-grade", "intermediate-grade"),
    "differentiation": ("well differentiated", "moderately differentiated", "poorly differentiated"),
    "differentiation_hyphen": ("well-differentiated", "moderately-differentiated", "poorly-differentiated"),
    "cell_type": (
        "lymphocytes",
        "plasma cells",
        "neutrophils",
        "eosinophils",
        "macrophages",
        "histiocytes",
        "fibroblasts",
        "adipocytes",
        "keratinocytes",
        "melanocytes",
        "hepatocytes",
    ),
    "tumor_type": (
        "adenocarcinoma",
        "squamous cell carcinoma",
        "urothelial carcinoma",
        "melanoma",
        "sarcoma",
        "lymphoma",
    ),
    "architecture": (
        "glandular",
        "papillary",
        "solid",
        "cribriform",
        "trabecular",
        "acinar",
        "tubular",
        "fascicular",
    ),
    "counts": ("numerous", "few", "scattered", "rare", "abundant", "occasional", "frequent"),
    "nuclei": ("hyperchromatic", "vesicular", "pale"),
    "pleomorphism": ("pleomorphic", "uniform", "monomorphic"),
    "cellularity": ("hypercellular", "hypocellular"),
    "stain": ("eosinophilic", "basophilic", "amphophilic"),
}

# What a modification of each group is called in reports (the kinds).
KIND_OF_GROUP = {
    "grade": "grade",
    "differentiation": "differentiation",
    "differentiation_hyphen": "differentiation",
    "cell_type": "cell_type",
    "tumor_type": "cell_type",
    "architecture": "architecture",
    "counts": "counts",
    "nuclei": "cytology",
    "pleomorphism": "cytology",
    "cellularity": "counts",
    "stain": "cytology",
}


@cache
def term_pattern(term: str) -> re.Pattern[str]:
    """``term`` on word boundaries, case-insensitive (``-`` and spaces inside are literal)."""
    return re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w-])", re.IGNORECASE)


def all_terms() -> list[str]:
    """Every vocabulary term, longest first (so "plasma cells" is found before "cells")."""
    return sorted({t for group in GROUPS.values() for t in group}, key=len, reverse=True)


def terms_in(text: str) -> set[str]:
    """The vocabulary terms that occur in ``text`` (lower case)."""
    return {t for t in all_terms() if term_pattern(t).search(text)}
