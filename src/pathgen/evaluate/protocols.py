"""Named presets of the published zero-shot protocols: which of a benchmark's images are scored.

Two evaluations of the same model on the same dataset disagree by points when they score different
images, so the preset is recorded with every zero-shot result:

- ``test-split``: the dataset's own test split, as QuiltNet (wisdomikezogwo/quilt1m) and CONCH
  evaluate (CRC-VAL-HE-7K, SICAPv2 ``Test.xlsx``, SkinCancer ``set == Test``, ...).
- ``pathgen-clip``: the images PathGen-CLIP's ``Zero-shot_classification/clip_acc_*.py`` score
  (PathGen-1-6M/PathGen-1.6M): NCT-CRC-HE-100K in full, SICAPv2 ``Train.xlsx``, every row of
  SkinCancer's ``tiles-v2.csv``, all of WSSS4LUAD's ``1.training``, and every image of the other
  datasets (BACH, LC25000, Osteo). The split per benchmark is ``Benchmark.pathgen_split``.

A split the data folder does not hold (a CRC root with only ``NCT-CRC-HE-100K/``, a WSSS4LUAD root
with only ``1.training/``) falls back to every image, and the result says so: an empty split used
to end in a bare scikit-learn error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pathgen.evaluate.benchmarks import Benchmark
from pathgen.evaluate.data import Example

PRESETS = {
    "test-split": "the dataset's test split (QuiltNet / CONCH)",
    "pathgen-clip": "the images PathGen-CLIP's clip_acc_*.py scripts score",
}
DEFAULT_PRESET = "test-split"


@dataclass(frozen=True)
class Selection:
    """The examples a preset scores, the split they are (``all`` for every image), and a note when
    the preset's split was not there and every image is scored instead."""

    examples: list[Example]
    split: str
    note: str | None = None


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return name


def wanted_split(bench: Benchmark, preset: str) -> str | None:
    """The split a preset asks for on ``bench`` (None: every image)."""
    check_preset(preset)
    return "test" if preset == "test-split" else bench.pathgen_split


def zeroshot_images(bench: Benchmark, examples: list[Example], preset: str) -> Selection:
    """The images ``preset`` scores on ``bench``; a missing split falls back to all, with a note."""
    split = wanted_split(bench, preset)
    if split is None:
        return Selection(list(examples), "all")
    found = Counter(e.split for e in examples if e.split)
    chosen = [e for e in examples if e.split == split]
    if chosen:
        return Selection(chosen, split)
    if found:
        held = ", ".join(f"{s} ({n})" for s, n in sorted(found.items()))
        why = f"the data holds no {split} split (splits found: {held})"
    else:
        why = f"the data has no splits, so no {split} split"
    note = f"{why}; preset {preset} scores all {len(examples)} images instead"
    return Selection(list(examples), "all", note)
