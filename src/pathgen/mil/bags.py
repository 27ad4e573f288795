"""Which slides take part (bad input becomes reported rows), and reading them one at a time.

Why one slide at a time: 1,000 slides x 10,000 tiles x 768 floats is 30 GB, more than a laptop
holds, while one slide is 30 MB. A bag is read from its HDF5 file when the training loop asks for
it and dropped after its step, so memory is bounded by the largest slide, not the data set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.mil.h5 import feature_files, read_attrs, read_slide
from pathgen.mil.labels import LabelSet


@dataclass(frozen=True)
class Bag:
    slide_id: str
    path: Path
    label: int
    n: int
    split: str | None = None
    fold: int | None = None
    patient: str | None = None


@dataclass
class BagPlan:
    bags: list[Bag]
    classes: list[str]
    dim: int
    encoder: str | None
    problems: list[dict[str, str]]


def plan_bags(features: Path, labels: LabelSet) -> BagPlan:
    """Match labels to feature files; every mismatch is a problem row and the rest goes on.

    Problems: a label without a feature file, a feature file without a label, a label not in the
    class list (from the loader), an empty or unreadable file, a feature width unlike the others.
    """
    files = feature_files(features)
    problems = list(labels.problems)
    bags: list[Bag] = []
    labelled = {r.slide_id for r in labels.rows}
    dims: dict[int, int] = {}
    encoders: dict[str, int] = {}
    attrs_of: dict[str, dict[str, Any]] = {}
    for r in labels.rows:
        path = files.get(r.slide_id)
        if path is None:
            problems.append({"slide_id": r.slide_id, "problem": "labelled, but no feature file"})
            continue
        try:
            attrs = read_attrs(path)
        except Exception as exc:  # a truncated or foreign file is this slide's problem only
            problems.append(
                {
                    "slide_id": r.slide_id,
                    "problem": f"unreadable feature file: {type(exc).__name__}: {exc}"[:300],
                }
            )
            continue
        if attrs["n"] == 0 or attrs["dim"] == 0:
            problems.append({"slide_id": r.slide_id, "problem": "empty feature file (no tiles)"})
            continue
        attrs_of[r.slide_id] = attrs
        dims[attrs["dim"]] = dims.get(attrs["dim"], 0) + 1
        if attrs.get("encoder"):
            encoders[str(attrs["encoder"])] = encoders.get(str(attrs["encoder"]), 0) + 1
        bags.append(Bag(r.slide_id, path, labels.index(r.label), attrs["n"], r.split, r.fold, r.patient))
    for sid in sorted(set(files) - labelled):
        problems.append({"slide_id": sid, "problem": "feature file without a label"})
    dim = max(dims, key=lambda d: dims[d]) if dims else 0
    for b in [b for b in bags if attrs_of[b.slide_id]["dim"] != dim]:
        problems.append(
            {
                "slide_id": b.slide_id,
                "problem": f"features are {attrs_of[b.slide_id]['dim']}-d, the others {dim}-d",
            }
        )
    bags = [b for b in bags if attrs_of[b.slide_id]["dim"] == dim]
    encoder = max(encoders, key=lambda e: encoders[e]) if encoders else None
    return BagPlan(bags, list(labels.classes), dim, encoder, problems)


def iter_bags(bags: Sequence[Bag], order: np.ndarray | None = None) -> Iterator[tuple[Bag, np.ndarray]]:
    """(bag, features N x D float32), read from disk one slide at a time in ``order``."""
    for i in order if order is not None else range(len(bags)):
        bag = bags[int(i)]
        yield bag, read_slide(bag.path).features
