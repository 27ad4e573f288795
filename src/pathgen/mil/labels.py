"""Slide labels: a plain CSV, or the label files of CAMELYON16, CAMELYON17 and BRACS as published.

Every loader returns a :class:`LabelSet`: one :class:`SlideLabel` per slide (label, and the split,
fold or patient when the source has them), the class list in a fixed order, and ``problems``: rows
that could not be used (an unknown label, a repeated slide), which are reported, never fatal.

Published layouts:

- **CAMELYON16**: ``training/normal/normal_NNN.tif``, ``training/tumor/tumor_NNN.tif`` (the label is
  the folder) and ``testing/reference.csv`` (no header; ``test_NNN,Tumor|Normal[,Macro|Micro,...]``)
  for the official test set. ``test_049`` is left out, as everyone does (a duplicate slide). Without
  the training folders, training labels come from the slide names (``normal_*`` / ``tumor_*``).
- **CAMELYON17**: ``stage_labels.csv`` (``stages.csv`` in later releases; header ``patient,stage``):
  ``patient_NNN_node_K.tif`` rows carry the slide label (negative, itc, micro, macro);
  ``patient_NNN.zip`` rows the patient's pN stage (not a slide label, skipped). Patients 0-99 are
  the challenge's training set, 100-199 its test set: when the file labels test patients too, that
  is the split; with training patients only, k-fold with each patient's five slides together.
- **BRACS**: ``BRACS_WSI/{train,val,test}/Group_{BT,AT,MT}/Type_{N,PB,UDH,FEA,ADH,DCIS,IC}/BRACS_*``
  (the official split is the folder). 7 classes as published, or 3: {N, PB, UDH} benign,
  {FEA, ADH} atypical, {DCIS, IC} malignant.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("csv", "camelyon16", "camelyon17", "bracs7", "bracs3")
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

CAMELYON16_CLASSES = ["normal", "tumor"]
CAMELYON16_EXCLUDED = {"test_049"}
CAMELYON17_CLASSES = ["negative", "itc", "micro", "macro"]
BRACS7_CLASSES = ["N", "PB", "UDH", "FEA", "ADH", "DCIS", "IC"]
BRACS3_CLASSES = ["benign", "atypical", "malignant"]
BRACS3_MAP = {
    "N": "benign",
    "PB": "benign",
    "UDH": "benign",
    "FEA": "atypical",
    "ADH": "atypical",
    "DCIS": "malignant",
    "IC": "malignant",
}
SLIDE_EXTENSIONS = (".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".h5", ".png", ".jpg")


@dataclass(frozen=True)
class SlideLabel:
    slide_id: str
    label: str
    split: str | None = None
    fold: int | None = None
    patient: str | None = None


@dataclass
class LabelSet:
    name: str
    classes: list[str]
    rows: list[SlideLabel]
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_split(self) -> bool:
        return any(r.split for r in self.rows)

    @property
    def has_folds(self) -> bool:
        return any(r.fold is not None for r in self.rows)

    def index(self, label: str) -> int:
        return self.classes.index(label)


def load_labels(
    path: Path, fmt: str = "csv", classes: list[str] | None = None, slide_ids: Iterable[str] = ()
) -> LabelSet:
    """Labels from ``path`` in format ``fmt`` (see :data:`FORMATS`); ``classes`` fixes the class list
    (and its order) of a CSV; ``slide_ids`` (the feature files) names CAMELYON16 training slides
    when the training folders are absent."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labels not found: {path}")
    if fmt == "csv":
        return read_csv(path, classes)
    if fmt == "camelyon16":
        return camelyon16(path, slide_ids)
    if fmt == "camelyon17":
        return camelyon17(path)
    if fmt in ("bracs7", "bracs3"):
        return bracs(path, three_class=fmt == "bracs3")
    raise ValueError(f"unknown label format {fmt!r}; formats: {', '.join(FORMATS)}")


def _stem(name: str) -> str:
    name = Path(name.strip()).name
    for ext in (*SLIDE_EXTENSIONS, ".zip"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _dedupe(
    name: str, classes: list[str], rows: list[SlideLabel], problems: list[dict[str, str]]
) -> LabelSet:
    seen: dict[str, SlideLabel] = {}
    for r in rows:
        if r.slide_id in seen:
            problems.append({"slide_id": r.slide_id, "problem": "listed more than once (first row kept)"})
            continue
        seen[r.slide_id] = r
    return LabelSet(name, classes, list(seen.values()), problems)


def read_csv(path: Path, classes: list[str] | None = None) -> LabelSet:
    """``slide_id,label[,split|fold][,patient]`` with a header (``case_id`` is read as patient).

    Without ``classes`` the class list is the sorted set of labels; with it, a label outside the
    list is a problem row.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        missing = [c for c in ("slide_id", "label") if c not in cols]
        if missing:
            raise ValueError(
                f"{path}: the header needs slide_id and label (missing {', '.join(missing)}); "
                f"found {', '.join(reader.fieldnames or []) or 'no header'}"
            )
        patient_col = cols.get("patient") or cols.get("case_id") or cols.get("patient_id")
        rows, problems = [], []
        for line, raw in enumerate(reader, start=2):
            sid = _stem(raw.get(cols["slide_id"]) or "")
            label = (raw.get(cols["label"]) or "").strip()
            if not sid:
                problems.append({"slide_id": f"(line {line})", "problem": "empty slide_id"})
                continue
            if not label:
                problems.append({"slide_id": sid, "problem": "empty label"})
                continue
            split = None
            if "split" in cols and (raw.get(cols["split"]) or "").strip():
                text = raw[cols["split"]].strip().lower()
                split = _SPLIT_ALIASES.get(text)
                if split is None:
                    problems.append(
                        {"slide_id": sid, "problem": f"unknown split {text!r} (train, val, test)"}
                    )
                    continue
            fold = None
            if "fold" in cols and (raw.get(cols["fold"]) or "").strip():
                try:
                    fold = int(raw[cols["fold"]])
                except ValueError:
                    problems.append(
                        {"slide_id": sid, "problem": f"fold {raw[cols['fold']]!r} is not an integer"}
                    )
                    continue
            patient = (raw.get(patient_col) or "").strip() or None if patient_col else None
            rows.append(SlideLabel(sid, label, split, fold, patient))
    if classes:
        known = set(classes)
        for r in [r for r in rows if r.label not in known]:
            problems.append(
                {"slide_id": r.slide_id, "problem": f"label {r.label!r} not in the classes {classes}"}
            )
        rows = [r for r in rows if r.label in known]
        class_list = list(classes)
    else:
        class_list = sorted({r.label for r in rows})
    if any(r.split for r in rows) and any(r.fold is not None for r in rows):
        raise ValueError(f"{path}: give either a split or a fold column, not both")
    return _dedupe(path.stem, class_list, rows, problems)


def _find(root: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


def camelyon16(path: Path, slide_ids: Iterable[str] = ()) -> LabelSet:
    """CAMELYON16: ``path`` is the dataset folder (or its ``reference.csv``)."""
    root = path if path.is_dir() else path.parent.parent if path.parent.name == "testing" else path.parent
    reference = (
        path
        if path.is_file()
        else _find(root, ("testing/reference.csv", "reference.csv", "testing/evaluation/reference.csv"))
    )
    rows: list[SlideLabel] = []
    problems: list[dict[str, str]] = []
    names = set()
    for cls in CAMELYON16_CLASSES:
        folder = root / "training" / cls
        if folder.is_dir():
            names |= {(f.stem, cls) for f in folder.iterdir() if f.suffix.lower() in SLIDE_EXTENSIONS}
    if not names:  # only the features are here: the training slides' names carry their label
        for sid in slide_ids:
            m = re.fullmatch(r"(normal|tumor)_\d+", sid.lower())
            if m:
                names.add((sid, m.group(1)))
    rows += [SlideLabel(sid, cls, "train") for sid, cls in sorted(names)]
    if reference is None:
        problems.append(
            {"slide_id": "(test set)", "problem": f"no reference.csv under {root}: no official test set"}
        )
    else:
        with open(reference, newline="", encoding="utf-8-sig") as handle:
            for raw in csv.reader(handle):
                if not raw or not raw[0].strip():
                    continue
                sid = _stem(raw[0]).lower()
                if sid in ("image", "name", "slide", "slide_id"):  # a header line someone added
                    continue
                if sid in CAMELYON16_EXCLUDED:
                    continue
                label = (raw[1] if len(raw) > 1 else "").strip().lower()
                if label not in CAMELYON16_CLASSES:
                    problems.append({"slide_id": sid, "problem": f"label {label!r} not tumor/normal"})
                    continue
                rows.append(SlideLabel(sid, label, "test"))
    return _dedupe("camelyon16", list(CAMELYON16_CLASSES), rows, problems)


def camelyon17(path: Path) -> LabelSet:
    """CAMELYON17: ``stage_labels.csv`` (or the folder holding it); patients kept together."""
    file = (
        path
        if path.is_file()
        else _find(path, ("stage_labels.csv", "stages.csv", "training/stage_labels.csv"))
    )
    if file is None:
        raise FileNotFoundError(f"no stage_labels.csv in {path}")
    rows, problems = [], []
    with open(file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        if "patient" not in cols or "stage" not in cols:
            raise ValueError(f"{file}: expected the header patient,stage (CAMELYON17's stage_labels.csv)")
        for raw in reader:
            name = (raw[cols["patient"]] or "").strip()
            if not name.lower().endswith((".tif", ".tiff")):
                continue  # patient_NNN.zip: the patient's pN stage, not a slide label
            sid = _stem(name)
            m = re.match(r"(patient_\d+)", sid)
            label = (raw[cols["stage"]] or "").strip().lower()
            if label not in CAMELYON17_CLASSES:
                problems.append(
                    {"slide_id": sid, "problem": f"stage {label!r} not one of {CAMELYON17_CLASSES}"}
                )
                continue
            rows.append(SlideLabel(sid, label, patient=m.group(1) if m else sid))
    numbers = [
        int(r.patient.split("_")[1]) for r in rows if r.patient and re.fullmatch(r"patient_\d+", r.patient)
    ]
    if numbers and min(numbers) < 100 <= max(numbers):  # the challenge's own train / test patients
        rows = [
            SlideLabel(
                r.slide_id,
                r.label,
                "test" if int(r.patient.split("_")[1]) >= 100 else "train",
                patient=r.patient,
            )
            if r.patient and re.fullmatch(r"patient_\d+", r.patient)
            else r
            for r in rows
        ]
    return _dedupe("camelyon17", list(CAMELYON17_CLASSES), rows, problems)


def bracs(path: Path, three_class: bool = False) -> LabelSet:
    """BRACS: the ``BRACS_WSI`` folder tree (``<split>/Group_*/Type_<T>/<slide>``)."""
    rows, problems = [], []
    found = 0
    for split_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        split = _SPLIT_ALIASES.get(split_dir.name.lower())
        if split is None:
            continue
        for type_dir in sorted(split_dir.glob("Group_*/Type_*")):
            subtype = type_dir.name[len("Type_") :]
            for f in sorted(type_dir.iterdir()):
                if f.name.startswith(".") or f.is_dir():
                    continue
                found += 1
                if subtype not in BRACS3_MAP:
                    problems.append({"slide_id": f.stem, "problem": f"unknown BRACS type {subtype!r}"})
                    continue
                label = BRACS3_MAP[subtype] if three_class else subtype
                rows.append(SlideLabel(_stem(f.name), label, split))
    if not found:
        raise ValueError(f"{path}: no BRACS slides found (expected train|val|test/Group_*/Type_*/BRACS_*)")
    classes = BRACS3_CLASSES if three_class else BRACS7_CLASSES
    return _dedupe("bracs-3" if three_class else "bracs-7", list(classes), rows, problems)
