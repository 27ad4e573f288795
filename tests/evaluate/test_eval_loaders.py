"""Each benchmark loader on a tiny copy of its published layout, built here; CRC also on real patches."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathgen.evaluate.benchmarks import BENCHMARKS, get_benchmark
from pathgen.evaluate.data import class_counts, split_of


def img(path: Path, colour=(200, 100, 150), size=8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def test_every_benchmark_has_names_prompts_and_a_loader():
    assert len(BENCHMARKS) == 16
    for bench in BENCHMARKS.values():
        assert set(bench.names) == set(bench.classes)
        single, ensemble = bench.prompts(False), bench.prompts(True)
        assert len(single) == len(ensemble) == len(bench.classes)
        assert all(len(p) == 1 for p in single)
        assert all(len(p) >= len(bench.templates) for p in ensemble)
    assert len(get_benchmark("skincancer").classes) == 16
    assert get_benchmark("NCT-CRC-HE") is get_benchmark("crc100k")


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="crc100k"):
        get_benchmark("crc1000k")


def test_crc_loader_on_real_patches(crc_patches):
    ex = get_benchmark("crc100k").load(crc_patches)
    assert len(ex) == 32
    assert class_counts(ex) == {c: 4 for c in ("ADI", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")}
    assert ex[0].open().size == (224, 224)


def test_crc_splits_from_published_folder_names(tmp_path):
    img(tmp_path / "NCT-CRC-HE-100K" / "ADI" / "ADI-AAA.tif")
    img(tmp_path / "CRC-VAL-HE-7K" / "BACK" / "BACK-TCGA-X.tif")
    ex = get_benchmark("crc100k").load(tmp_path)
    assert {(e.label, e.split) for e in ex} == {("ADI", "train"), ("BACK", "test")}
    assert [e.label for e in split_of(ex, "test")] == ["BACK"]


def test_bach_and_lc25000_and_renal_and_idc_class_folders(tmp_path):
    for name in ("Normal", "Benign", "InSitu", "Invasive"):
        img(tmp_path / "bach" / "ICIAR2018_BACH_Challenge" / "Photos" / name / f"{name[0].lower()}001.tif")
    assert class_counts(get_benchmark("bach").load(tmp_path / "bach")) == dict.fromkeys(
        ["benign", "insitu", "invasive", "normal"], 1
    )
    base = tmp_path / "lc" / "lung_colon_image_set"
    for name in ("colon_aca", "colon_n"):
        img(base / "colon_image_sets" / name / f"{name}1.jpeg")
    for name in ("lung_aca", "lung_n", "lung_scc"):
        img(base / "lung_image_sets" / name / f"{name}1.jpeg")
    assert len(get_benchmark("lc25000-colon").load(tmp_path / "lc")) == 2
    assert class_counts(get_benchmark("lc25000-lung").load(tmp_path / "lc")) == dict.fromkeys(
        ["lung_aca", "lung_n", "lung_scc"], 1
    )
    for name in ("blood", "cancer", "normal", "other", "stroma"):
        img(tmp_path / "renal" / "train" / name / "p.png")
    renal = get_benchmark("renal").load(tmp_path / "renal")
    assert len(renal) == 5 and {e.split for e in renal} == {"train"}
    for name in ("Grade 1", "Grade 2", "Grade 3"):
        img(tmp_path / "idc" / name / "x.jpg")
    assert class_counts(get_benchmark("idc-grade").load(tmp_path / "idc")) == {"G1": 1, "G2": 1, "G3": 1}


def test_sicapv2_xlsx_partition(tmp_path):
    import openpyxl

    root = tmp_path / "SICAPv2"
    for split, rows in (
        ("Train", [("a.jpg", 1, 0, 0, 0, 0), ("b.jpg", 0, 0, 1, 0, 0)]),
        ("Test", [("c.jpg", 0, 0, 0, 1, 0), ("d.jpg", 0, 1, 1, 0, 0)]),
    ):
        wb = openpyxl.Workbook()
        wb.active.append(["image_name", "NC", "G3", "G4", "G5", "G4C"])
        for r in rows:
            wb.active.append(list(r))
        (root / "partition" / "Test").mkdir(parents=True, exist_ok=True)
        wb.save(root / "partition" / "Test" / f"{split}.xlsx")
        for r in rows:
            img(root / "images" / r[0])
    ex = get_benchmark("sicapv2").load(root)
    # d.jpg has two labels set and is dropped, as in the published evaluation
    assert sorted((e.id, e.label, e.split) for e in ex) == [
        ("a.jpg", "NC", "train"),
        ("b.jpg", "G4", "train"),
        ("c.jpg", "G5", "test"),
    ]


def test_wsss4luad_labels_from_file_names(tmp_path):
    img(tmp_path / "1.training" / "436219-7159-48057-[1, 0, 0].png")
    img(tmp_path / "1.training" / "436219-7159-48058-[0, 1, 1].png")
    img(tmp_path / "1.training" / "notes.png")
    ex = get_benchmark("wsss4luad").load(tmp_path)
    assert sorted(e.label for e in ex) == ["normal", "tumor"]


def test_osteo_csv_labels(tmp_path):
    root = tmp_path / "osteo"
    img(root / "Training-Set-1" / "Case-3-A10-38030-8601.jpg")
    img(root / "Training-Set-1" / "Case-4-B2-1-2.jpg")
    img(root / "Training-Set-1" / "Case-5-C1-1-2.jpg")
    with open(root / "ML_Features_1144.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image.name", "feat", "classification"])
        w.writerow(["Case 3 - A10 - 38030 - 8601", "1", "Non-Tumor"])
        w.writerow(["Case 4 - B2-1-2", "1", "Non-Viable-Tumor"])
        w.writerow(["Case 5 - C1-1-2", "1", "viable: non-viable"])
    ex = get_benchmark("osteo").load(root)
    assert sorted(e.label for e in ex) == ["necrotic", "nontumor", "viable"]


def test_skincancer_and_skin_tumour_from_tiles_csv(tmp_path):
    root = tmp_path / "skin"
    rows = [
        ("data/tiles/a.png", "nontumor_skin_dermis_dermis", "Train", "nontumor"),
        ("data/tiles/b.png", "tumor_skin_melanoma_melanoma", "Test", "tumor"),
        ("data/tiles/c.png", "tumor_skin_epithelial_bcc", "Validation", "tumor"),
    ]
    root.mkdir()
    with open(root / "tiles-v2.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uuid", "file", "class", "set", "malignicy"])
        for r in rows:
            w.writerow(["u", *r])
            img(root / r[0])
    all_ex = get_benchmark("skincancer").load(root)
    assert {(e.label, e.split) for e in all_ex} == {
        (r[1], {"Train": "train", "Test": "test", "Validation": "val"}[r[2]]) for r in rows
    }
    assert Path(all_ex[0].path).exists()
    assert len(get_benchmark("skin-tumour").load(root)) == 2


def test_pcam_h5(tmp_path):
    import h5py

    x = np.zeros((3, 96, 96, 3), np.uint8)
    x[1] = 255
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_test_x.h5", "w") as fh:
        fh["x"] = x
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_test_y.h5", "w") as fh:
        fh["y"] = np.asarray([0, 1, 1], np.uint8).reshape(3, 1, 1, 1)
    ex = get_benchmark("pcam").load(tmp_path)
    assert [e.label for e in ex] == ["0", "1", "1"]
    assert {e.split for e in ex} == {"test"}
    im = ex[1].open()
    assert im.size == (96, 96) and im.getpixel((0, 0)) == (255, 255, 255)


def test_mhist_annotations(tmp_path):
    img(tmp_path / "images" / "MHIST_aaa.png")
    img(tmp_path / "images" / "MHIST_aab.png")
    (tmp_path / "annotations.csv").write_text(
        "Image Name,Majority Vote Label,Number of Annotators who Selected SSA (Out of 7),Partition\n"
        "MHIST_aaa.png,SSA,6,train\nMHIST_aab.png,HP,1,test\n"
    )
    ex = get_benchmark("mhist").load(tmp_path)
    assert [(e.label, e.split) for e in ex] == [("SSA", "train"), ("HP", "test")]


def test_digestpath_skips_masks(tmp_path):
    img(tmp_path / "tissue-train-pos-v1" / "18-1.jpg")
    img(tmp_path / "tissue-train-pos-v1" / "18-1_mask.jpg")
    img(tmp_path / "tissue-train-neg" / "2018_1.jpg")
    ex = get_benchmark("digestpath").load(tmp_path)
    assert sorted(e.label for e in ex) == ["benign", "malignant"]


def test_pannuke_folds_binarised_by_neoplastic_channel(tmp_path):
    fold = tmp_path / "Fold 1"
    (fold / "images" / "fold1").mkdir(parents=True)
    (fold / "masks" / "fold1").mkdir(parents=True)
    np.save(fold / "images" / "fold1" / "images.npy", np.full((2, 16, 16, 3), 128.0))
    masks = np.zeros((2, 16, 16, 6))
    masks[1, 3:5, 3:5, 0] = 7  # a neoplastic nucleus in patch 1
    masks[0, 3:5, 3:5, 1] = 2  # only an inflammatory nucleus in patch 0
    np.save(fold / "masks" / "fold1" / "masks.npy", masks)
    ex = get_benchmark("pannuke").load(tmp_path)
    assert [e.label for e in ex] == ["benign", "malignant"]
    assert ex[0].open().getpixel((0, 0)) == (128, 128, 128)


def test_kimia24_names(tmp_path):
    img(tmp_path / "Test_Data" / "s0_1.jpg")
    img(tmp_path / "Test_Data" / "s23_4.jpg")
    ex = get_benchmark("kimia24").load(tmp_path)
    assert sorted(e.label for e in ex) == ["0", "23"]
    assert get_benchmark("kimia").task == "retrieval"


def test_missing_or_wrong_folder_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_benchmark("bach").load(tmp_path / "nope")
    img(tmp_path / "random" / "x.png")
    with pytest.raises(FileNotFoundError, match="camelyonpatch"):
        get_benchmark("pcam").load(tmp_path)
