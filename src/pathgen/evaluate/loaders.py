"""Loaders for each benchmark's native layout, as the dataset is published (no conversion step).

Each loader takes the folder the user downloaded and returns :class:`Example` rows with the
dataset's own label ids (``ADI``, ``G3``, ``lung_scc`` ...); the registry maps ids to prompt names.
A folder that does not look like the dataset fails with the layout that was expected.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from pathgen.evaluate.data import IMAGE_EXTS, Example, image_files

_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "1.training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "2.validation": "val",
    "test": "test",
    "testing": "test",
    "3.testing": "test",
}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _split_from_parts(parts: Iterable[str]) -> str | None:
    for part in parts:
        low = part.lower()
        if low in _SPLIT_WORDS:
            return _SPLIT_WORDS[low]
        if low.startswith("crc-val-he"):
            return "test"
        if low.startswith("nct-crc-he-100k"):
            return "train"
        # the Kaggle re-uploads of LC25000 ("Train and Validation Set" / "Test Set")
        if _norm(low) in ("testset", "testdata"):
            return "test"
        if _norm(low) in ("trainandvalidationset", "trainset", "trainingset", "trainingdata"):
            return "train"
    return None


def _missing(root: Path, layout: str) -> FileNotFoundError:
    return FileNotFoundError(f"no images of the expected layout under {root}; expected {layout}")


def class_folders(root: Path, labels: dict[str, str], layout: str) -> list[Example]:
    """Images whose nearest ancestor folder names a class; ``labels`` maps folder name -> label id.

    Folder names are compared case- and punctuation-insensitively (``InSitu`` = ``in_situ``); the
    split comes from any ancestor named train/val/test (or CRC-VAL-HE-7K / NCT-CRC-HE-100K).
    """
    root = Path(root)
    wanted = {_norm(k): v for k, v in labels.items()}
    out: list[Example] = []
    for path in image_files(root):
        rel = path.relative_to(root)
        label = next((wanted[_norm(p)] for p in reversed(rel.parts[:-1]) if _norm(p) in wanted), None)
        if label is None:
            continue
        out.append(Example(id=str(rel), label=label, path=str(path), split=_split_from_parts(rel.parts)))
    if not out:
        raise _missing(root, layout)
    return out


def _folders(labels: Iterable[str] | dict[str, str], layout: str) -> Callable[[Path], list[Example]]:
    mapping = labels if isinstance(labels, dict) else {k: k for k in labels}
    return lambda root: class_folders(Path(root), mapping, layout)


CRC_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
_CRC_LAYOUT = (
    "NCT-CRC-HE-100K/ (or NCT-CRC-HE-100K-NONORM/) and/or CRC-VAL-HE-7K/ with class folders ADI BACK ... TUM"
)


def load_crc(root: Path) -> list[Example]:
    """Zenodo 1214456: ``NCT-CRC-HE-100K/<CLASS>/*.tif`` (train), ``CRC-VAL-HE-7K/<CLASS>/*.tif`` (test).

    ``NCT-CRC-HE-100K-NONORM/`` (the same 100K patches without Macenko normalisation) is used as the
    train split only when the normalised folder is absent, so the patches are never counted twice.
    """
    out = class_folders(Path(root), {k: k for k in CRC_CLASSES}, _CRC_LAYOUT)

    def nonorm(e: Example) -> bool:
        return any("nonorm" in part.lower() for part in Path(e.id).parts[:-1])

    if any(e.split == "train" and not nonorm(e) for e in out):
        out = [e for e in out if not nonorm(e)]
    return out


_BACH_LABELS = {"Normal": "normal", "Benign": "benign", "InSitu": "insitu", "Invasive": "invasive"}
_BACH_LAYOUT = (
    "ICIAR2018_BACH_Challenge/Photos/{Benign,InSitu,Invasive,Normal}/*.tif "
    "(or Photos/*.tif with Photos/microscopy_ground_truth.csv)"
)


def load_bach(root: Path) -> list[Example]:
    """BACH part A microscopy (Zenodo 3632035): ``Photos/<Class>/*.tif``; labelled test images are not public.

    Images outside a class folder are labelled from ``microscopy_ground_truth.csv`` (``name,Class``, no
    header), which the challenge ships next to the class folders; the WSI part (``WSI/*.svs``) is skipped.
    """
    root = Path(root)
    try:
        out = class_folders(root, _BACH_LABELS, _BACH_LAYOUT)
    except FileNotFoundError:
        out = []
    seen = {Path(e.path).name for e in out}
    wanted = {_norm(k): v for k, v in _BACH_LABELS.items()}
    for table in sorted(root.rglob("microscopy_ground_truth.csv")):
        with open(table, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if len(r) >= 2]
        for name, cls in ((r[0].strip(), r[1].strip()) for r in rows):
            label = wanted.get(_norm(cls))
            if not label or name in seen:
                continue
            path = next(iter(sorted(table.parent.rglob(name))), None)
            if path is None:
                continue
            seen.add(name)
            rel = path.relative_to(root)
            out.append(Example(id=str(rel), label=label, path=str(path)))
    if not out:
        raise _missing(root, _BACH_LAYOUT)
    return out


load_lc25000_colon = _folders(
    ("colon_aca", "colon_n"), "lung_colon_image_set/colon_image_sets/{colon_aca,colon_n}/"
)
load_lc25000_lung = _folders(
    ("lung_aca", "lung_n", "lung_scc"), "lung_colon_image_set/lung_image_sets/{lung_aca,lung_n,lung_scc}/"
)
# Brummer et al. 2023 (Zenodo 7898308): ``tissue_classification/{blood,cancer,empty,normal,other,stroma}``.
# ``empty`` (background tiles) is not a class of the published evaluation (QuiltNet's five renal
# classes), so its folder is skipped like any other unknown folder.
load_renal = _folders(
    ("blood", "cancer", "normal", "other", "stroma"),
    "tissue_classification/{blood,cancer,normal,other,stroma}/*.png (empty/ is skipped)",
)

_IDC_GRADE = re.compile(r"(?:^|[^a-z])grade[\s_-]*(1|2|3|iii|ii|i)$", re.I)
_IDC_LAYOUT = "grade folders BC_IDC_Grade_1/ BC_IDC_Grade_2/ BC_IDC_Grade_3/ (each with 4X 10X 20X 40X/)"


def load_idc_grade(root: Path) -> list[Example]:
    """Databiox IDC grading: ``BC_IDC_Grade_{1,2,3}/<magnification>/*.jpg`` (also 'Grade 1', 'Grade II' ...).

    The nearest ancestor folder naming a grade gives the label; all magnifications are listed.
    """
    root = Path(root)
    grades = {"1": "G1", "i": "G1", "2": "G2", "ii": "G2", "3": "G3", "iii": "G3"}
    out = []
    for path in image_files(root):
        rel = path.relative_to(root)
        label = None
        for part in reversed(rel.parts[:-1]):
            m = _IDC_GRADE.search(part.strip())
            if m:
                label = grades[m.group(1).lower()]
                break
        if label:
            out.append(Example(id=str(rel), label=label, path=str(path), split=_split_from_parts(rel.parts)))
    if not out:
        raise _missing(root, _IDC_LAYOUT)
    return out


def _read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or XLSX file as dicts of strings (XLSX through openpyxl, the published format)."""
    if path.suffix.lower() in (".xlsx", ".xls"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = list(wb.active.iter_rows(values_only=True))
        wb.close()
        if not rows:
            return []
        header = [str(h).strip() if h is not None else "" for h in rows[0]]
        return [{h: ("" if v is None else str(v)) for h, v in zip(header, r, strict=False)} for r in rows[1:]]
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)]


def load_sicapv2(root: Path) -> list[Example]:
    """``images/*.jpg`` + ``partition/Test/{Train,Test}.xlsx`` one-hot NC/G3/G4/G5 (G4C ignored).

    Patches with exactly one of NC/G3/G4/G5 set are kept, as in PathGen-CLIP's clip_acc_SICAP_v2.py
    (QuiltNet takes the arg-max instead). ``Train.xlsx`` is the train split and ``Test.xlsx`` the test
    split, as QuiltNet uses them; PathGen-CLIP's script scores its zero-shot accuracy on ``Train.xlsx``.
    """
    root = Path(root)
    layout = "SICAPv2/images/*.jpg and SICAPv2/partition/Test/{Train,Test}.xlsx (or .csv)"
    out: list[Example] = []
    for split, stem in (("train", "Train"), ("test", "Test")):
        table = (
            next((p for p in (root / "partition" / "Test").glob(f"{stem}.*")), None)
            if (root / "partition" / "Test").is_dir()
            else None
        )
        if table is None:
            continue
        for row in _read_table(table):
            name = row.get("image_name", "")
            flags = [lab for lab in ("NC", "G3", "G4", "G5") if _truthy(row.get(lab))]
            if name and len(flags) == 1:
                path = root / "images" / name
                out.append(Example(id=name, label=flags[0], path=str(path), split=split))
    if not out:
        raise _missing(root, layout)
    return out


def _truthy(value: str | None) -> bool:
    try:
        return float(value or 0) >= 0.5
    except ValueError:
        return False


_WSSS_LABEL = re.compile(r"\[\s*([01])\s*,\s*([01])\s*,\s*([01])\s*\]")


def load_wsss4luad(root: Path) -> list[Example]:
    """``1.training/*-[t, s, n].png``: tumour/stroma/normal flags in the file name.

    As in the PathGen-CLIP evaluation: tumour when the tumour flag is set, else normal.
    """
    root = Path(root)
    out = []
    for path in image_files(root):
        m = _WSSS_LABEL.search(path.name)
        if not m:
            continue
        label = "tumor" if m.group(1) == "1" else "normal"
        rel = path.relative_to(root)
        out.append(Example(id=str(rel), label=label, path=str(path), split=_split_from_parts(rel.parts)))
    if not out:
        raise _missing(root, "1.training/NAME-[1, 0, 0].png (tumor, stroma, normal flags in the name)")
    return out


# ``classification`` values of ML_Features_1144.csv: Non-Tumor, Viable, Non-Viable-Tumor and the mixed
# "viable: non-viable"; the PathGen-CLIP evaluation counts the mixed tiles as viable tumour (QuiltNet
# drops them), and so do we.
_OSTEO_LABELS = {
    "non-tumor": "nontumor",
    "viable": "viable",
    "viable: non-viable": "viable",
    "viable-tumor": "viable",
    "non-viable-tumor": "necrotic",
}


def _osteo_key(name: str) -> str:
    stem = re.sub(r"\.(jpg|jpeg|png|tif)$", "", name.strip(), flags=re.I)
    return re.sub(r"[\s\-_]+", "-", stem).lower()


def load_osteo(root: Path) -> list[Example]:
    """Osteosarcoma-UT (TCIA): tiles ``Training-Set-*/**/Case-3-A10-38030-8601.jpg`` + labels in
    ``ML_Features_1144.csv`` (``image.name`` such as ``Case 3 - A10 - 38030 - 8601``, ``classification``;
    ``image_name`` in some re-uploads) or per-folder ``PathologistValidation.csv`` (name, label; no header).

    Names are matched with runs of spaces, hyphens and underscores collapsed, as the tile files
    spell them with hyphens where the table has spaces.
    """
    root = Path(root)
    labels: dict[str, str] = {}
    for table in sorted(root.rglob("*.csv")):
        with open(table, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            continue
        header = [h.strip() for h in rows[0]]
        name_col = next((h for h in ("image.name", "image_name") if h in header), None)
        if name_col and "classification" in header:
            i, j = header.index(name_col), header.index("classification")
            body = rows[1:]
        elif table.name.lower().startswith("pathologistvalidation"):
            i, j, body = 0, 1, rows
        else:
            continue
        for row in body:
            if len(row) > max(i, j):
                lab = _OSTEO_LABELS.get(row[j].strip().lower())
                if lab:
                    labels[_osteo_key(row[i])] = lab
    out = []
    for path in image_files(root):
        lab = labels.get(_osteo_key(path.name))
        if lab:
            out.append(Example(id=str(path.relative_to(root)), label=lab, path=str(path)))
    if not out:
        raise _missing(root, "tiles *.jpg with ML_Features_1144.csv (image.name, classification)")
    return out


def _load_skin(root: Path, tumour_only: bool) -> list[Example]:
    root = Path(root)
    tables = sorted(root.rglob("tiles*.csv")) or sorted(root.rglob("*.csv"))
    out = []
    split_map = {"train": "train", "validation": "val", "val": "val", "test": "test"}
    for table in tables:
        rows = _read_table(table)
        if not rows or not {"file", "class"} <= set(rows[0]):
            continue
        for row in rows:
            if tumour_only and not row["class"].startswith("tumor_"):
                continue
            rel = row["file"]
            # ``file`` is relative to the folder holding data/ ("data/tiles/<class>/<tile>.jpg"),
            # and tiles-v2.csv sits inside data/: also try it relative to the table, data/ dropped.
            parts = Path(rel).parts
            bare = Path(*parts[1:]) if len(parts) > 1 and parts[0] == "data" else Path(rel)
            candidates = (root / rel, table.parent / bare, table.parent.parent / rel, root.parent / rel)
            path = next((c for c in candidates if c.exists()), table.parent / bare)
            split = split_map.get(row.get("set", "").lower())
            out.append(Example(id=rel, label=row["class"], path=str(path), split=split))
        break
    if not out:
        raise _missing(root, "tiles-v2.csv with columns file, class, set (Train/Validation/Test), malignicy")
    return out


def load_skincancer(root: Path) -> list[Example]:
    """Kriegsmann et al. skin tissue (heiDATA doi:10.11588/data/7QCR8S, ``data.zip``): ``data/tiles-v2.csv``
    (file ``data/tiles/<class>/<tile>.jpg``, class, set Train/Validation/Test, malignicy) +
    ``data/tiles/<class>/``; 16 classes."""
    return _load_skin(root, tumour_only=False)


def load_skin_tumour(root: Path) -> list[Example]:
    """The same dataset restricted to its four tumour classes (bcc, sqcc, melanoma, naevus)."""
    return _load_skin(root, tumour_only=True)


_PCAM = re.compile(r"camelyonpatch_level_2_split_(train|valid|test)_x\.h5$")


def load_pcam(root: Path) -> list[Example]:
    """``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` (key ``x``: N×96×96×3, ``y``: N×1×1×1)."""
    import h5py

    root = Path(root)
    out = []
    for xfile in sorted(root.rglob("camelyonpatch_level_2_split_*_x.h5")):
        m = _PCAM.search(xfile.name)
        yfile = xfile.with_name(xfile.name.replace("_x.h5", "_y.h5"))
        if not m or not yfile.exists():
            continue
        split = {"valid": "val"}.get(m.group(1), m.group(1))
        with h5py.File(yfile, "r") as fh:
            ys = fh["y"][:].reshape(-1)
        for i, y in enumerate(ys):
            out.append(
                Example(id=f"{split}:{i}", label=str(int(y)), path=str(xfile), index=i, key="x", split=split)
            )
    if not out:
        gz = list(root.rglob("*.h5.gz"))
        hint = " (found .h5.gz files: gunzip them first)" if gz else ""
        raise _missing(root, "camelyonpatch_level_2_split_test_x.h5 + _y.h5" + hint)
    return out


def load_mhist(root: Path) -> list[Example]:
    """``images/*.png`` + ``annotations.csv`` (Image Name, Majority Vote Label HP/SSA, Partition)."""
    root = Path(root)
    table = next(iter(sorted(root.rglob("annotations.csv"))), None)
    out = []
    if table is not None:
        for row in _read_table(table):
            name = row.get("Image Name", "")
            label = row.get("Majority Vote Label", "")
            if not name or label not in ("HP", "SSA"):
                continue
            path = next(
                (p for p in (table.parent / "images" / name, table.parent / name) if p.exists()), None
            )
            path = path or table.parent / "images" / name
            out.append(Example(id=name, label=label, path=str(path), split=row.get("Partition") or None))
    if not out:
        raise _missing(root, "images/*.png and annotations.csv (Image Name, Majority Vote Label, Partition)")
    return out


def load_digestpath(root: Path) -> list[Example]:
    """DigestPath 2019 colonoscopy tissue set (``Colonoscopy_tissue_segment_dataset/``, as PLIP reads it):
    ``tissue-train-pos-v1/*.jpg`` (malignant, with ``*_mask.jpg`` lesion masks, skipped) and
    ``tissue-train-neg/*.jpg`` (benign); one label per whole image (PLIP tiles them into 224 px
    patches first, which is a conversion step and not done here)."""
    root = Path(root)
    out = []
    for path in image_files(root):
        rel = path.relative_to(root)
        tags = [p.lower() for p in rel.parts[:-1]]
        label = None
        for tag in reversed(tags):
            if re.search(r"(^|[-_])pos", tag) or "malignant" in tag:
                label = "malignant"
                break
            if re.search(r"(^|[-_])neg", tag) or "benign" in tag:
                label = "benign"
                break
        if label:
            out.append(Example(id=str(rel), label=label, path=str(path), split=_split_from_parts(rel.parts)))
    if not out:
        raise _missing(root, "tissue-train-pos-v1/*.jpg (malignant) and tissue-train-neg/*.jpg (benign)")
    return out


def _instance_counts(mask) -> list[int]:
    """Distinct values minus one per channel of one H×W×C PanNuke mask (its nucleus count per type)."""
    import numpy as np

    flat = np.sort(np.asarray(mask).reshape(-1, mask.shape[-1]), axis=0)
    return [int(n) for n in (np.diff(flat, axis=0) != 0).sum(axis=0)]


def _pannuke_label(mask) -> str | None:
    """The PLIP binarisation of one patch: malignant with >= 10 neoplastic nuclei making up more than 30%
    of all (channel 0 = neoplastic), benign with none; patches in between, and patches without any
    nucleus in channels 0-4, are left out."""
    import numpy as np

    if not np.asarray(mask[..., :5]).any():
        return None
    counts = _instance_counts(mask)
    total = sum(counts)
    if counts[0] >= 10 and counts[0] / total > 0.3:
        return "malignant"
    if counts[0] == 0:
        return "benign"
    return None


def load_pannuke(root: Path) -> list[Example]:
    """PanNuke (Warwick TIA): ``fold_1/Fold 1/images/fold1/images.npy`` (N×256×256×3) with
    ``Fold 1/masks/fold1/masks.npy`` (N×256×256×6 instance ids: neoplastic, inflammatory, connective,
    dead, epithelial, background) and ``types.npy``; any folder depth above ``Fold N`` works.

    Labels follow PLIP's ``preprocess_PanNuke.py`` (see :func:`_pannuke_label`). A
    ``PanNuke_all_binary.csv`` (image, caption[, split]) of PLIP's extracted patches is used instead
    when present.
    """
    import numpy as np

    root = Path(root)
    csv_file = next(iter(sorted(root.rglob("PanNuke_all_binary.csv"))), None)
    out: list[Example] = []
    if csv_file is not None:
        for row in _read_table(csv_file):
            label = "malignant" if "malignant" in row.get("caption", "") else "benign"
            image = Path(row["image"])
            path = image if image.is_absolute() else csv_file.parent / image
            if not path.exists() and (csv_file.parent / "images" / image.name).exists():
                path = csv_file.parent / "images" / image.name
            out.append(Example(id=image.name, label=label, path=str(path), split=row.get("split") or None))
        if out:
            return out
    for images in sorted(root.rglob("images.npy")):
        fold_dir = images.parents[2] if len(images.parents) > 2 else images.parent
        masks = next(iter(sorted(fold_dir.rglob("masks.npy"))), None)
        if masks is None:
            continue
        mask_arr = np.load(masks, mmap_mode="r")
        fold = fold_dir.name
        for i in range(mask_arr.shape[0]):
            label = _pannuke_label(mask_arr[i])
            if label:
                out.append(Example(id=f"{fold}:{i}", label=label, path=str(images), index=i, split=fold))
    if not out:
        raise _missing(root, "'Fold 1/images/fold1/images.npy' with 'Fold 1/masks/fold1/masks.npy'")
    return out


_KIMIA = re.compile(r"^s(\d+)(?:_|$)", re.I)


def load_kimia24(root: Path) -> list[Example]:
    """KIMIA Path24 (RGB release): ``Training/s{0..23}/*.jpg`` and ``RGBPatches-test/s{0..23}/*.jpg``;
    the class is the ``s<n>`` folder (or an ``s<n>_...`` file name prefix), the split the top folder."""
    root = Path(root)
    out = []
    for path in image_files(root):
        rel = path.relative_to(root)
        label = None
        for part in (path.stem, *reversed(rel.parts[:-1])):
            m = _KIMIA.match(part)
            if m and int(m.group(1)) < 24:
                label = str(int(m.group(1)))
                break
        if label is None:
            continue
        dirs = [p.lower() for p in rel.parts[:-1]]
        split = (
            "test" if any("test" in d for d in dirs) else "train" if any("train" in d for d in dirs) else None
        )
        out.append(Example(id=str(rel), label=label, path=str(path), split=split))
    if not out:
        raise _missing(root, "Training/s{0..23}/*.jpg and RGBPatches-test/s{0..23}/*.jpg (KIMIA Path24)")
    return out


__all__ = [
    "CRC_CLASSES",
    "IMAGE_EXTS",
    "class_folders",
    "load_bach",
    "load_crc",
    "load_digestpath",
    "load_idc_grade",
    "load_kimia24",
    "load_lc25000_colon",
    "load_lc25000_lung",
    "load_mhist",
    "load_osteo",
    "load_pannuke",
    "load_pcam",
    "load_renal",
    "load_sicapv2",
    "load_skin_tumour",
    "load_skincancer",
    "load_wsss4luad",
]
