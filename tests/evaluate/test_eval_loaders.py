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
    # the unnormalised copy of the same 100K patches is not counted twice ...
    img(tmp_path / "NCT-CRC-HE-100K-NONORM" / "ADI" / "ADI-AAA.tif")
    assert len(get_benchmark("crc100k").load(tmp_path)) == 2
    # ... but is the train split when it is the only one there
    nonorm = tmp_path / "nonorm"
    img(nonorm / "NCT-CRC-HE-100K-NONORM" / "MUS" / "MUS-AAA.tif")
    assert [(e.label, e.split) for e in get_benchmark("crc100k").load(nonorm)] == [("MUS", "train")]


def test_benchmarks_follow_the_published_zero_shot_scripts():
    # class order, names and single template of PathGen-CLIP's clip_acc_*.py
    bach = get_benchmark("bach")
    assert bach.classes == ("benign", "insitu", "invasive", "normal")
    assert bach.prompts(False)[1] == ["An H&E image of in-situ carcinoma"]
    assert get_benchmark("lc25000-lung").classes == ("lung_n", "lung_aca", "lung_scc")
    assert get_benchmark("lc25000-colon").prompts(False)[0] == ["An image of normal colon tissue"]
    assert get_benchmark("crc100k").prompts(False)[0] == ["An H&E patch of adipose"]
    assert get_benchmark("wsss4luad").prompts(False) == [
        ["An H&E image of tumor tissue."],
        ["An H&E image of normal tissue."],
    ]
    skin = get_benchmark("skincancer")
    assert skin.classes == tuple(sorted(skin.classes)) and skin.names[skin.classes[0]] == (
        "non-tumor chondral tissue"
    )
    # QuiltNet's names stay in the ensemble
    assert any("chondral tissue" in p for p in skin.prompts(True)[0])
    assert get_benchmark("skin-tumour").classes[0] == "tumor_skin_epithelial_sqcc"


def test_bach_and_lc25000_and_renal_and_idc_class_folders(tmp_path):
    photos = tmp_path / "bach" / "ICIAR2018_BACH_Challenge" / "Photos"
    for name, stem in (("Normal", "n001"), ("Benign", "b001"), ("InSitu", "is001"), ("Invasive", "iv001")):
        img(photos / name / f"{stem}.tif")
    (photos / "microscopy_ground_truth.csv").write_text(
        "b001.tif,Benign\nis001.tif,InSitu\niv001.tif,Invasive\nn001.tif,Normal\n"
    )
    img(tmp_path / "bach" / "ICIAR2018_BACH_Challenge" / "WSI" / "A01.png")  # not a labelled photo
    assert class_counts(get_benchmark("bach").load(tmp_path / "bach")) == dict.fromkeys(
        ["benign", "insitu", "invasive", "normal"], 1
    )
    # flat photos labelled only by the ground-truth table
    flat = tmp_path / "bach_flat" / "Photos"
    img(flat / "b002.tif")
    img(flat / "iv002.tif")
    (flat / "microscopy_ground_truth.csv").write_text("b002.tif,Benign\niv002.tif,Invasive\n")
    assert class_counts(get_benchmark("bach").load(tmp_path / "bach_flat")) == {"benign": 1, "invasive": 1}
    base = tmp_path / "lc" / "lung_colon_image_set"
    for name in ("colon_aca", "colon_n"):
        img(base / "colon_image_sets" / name / f"{name}1.jpeg")
    for name in ("lung_aca", "lung_n", "lung_scc"):
        img(base / "lung_image_sets" / name / f"{name}1.jpeg")
    assert len(get_benchmark("lc25000-colon").load(tmp_path / "lc")) == 2
    assert class_counts(get_benchmark("lc25000-lung").load(tmp_path / "lc")) == dict.fromkeys(
        ["lung_aca", "lung_n", "lung_scc"], 1
    )
    # a Kaggle re-upload with its own split folders
    img(tmp_path / "lck" / "Test Set" / "colon_n" / "colonn1.jpeg")
    img(tmp_path / "lck" / "Train and Validation Set" / "colon_aca" / "colonca1.jpeg")
    assert {(e.label, e.split) for e in get_benchmark("lc25000-colon").load(tmp_path / "lck")} == {
        ("colon_n", "test"),
        ("colon_aca", "train"),
    }
    # Brummer et al. tiles: six folders, of which empty/ is not an evaluated class
    tiles = tmp_path / "renal" / "tissue_classification"
    for name in ("blood", "cancer", "empty", "normal", "other", "stroma"):
        img(tiles / name / f"FIMM6_14_ML1412133.mrxs_{name.title()}Tile 1.png")
    renal = get_benchmark("renal").load(tmp_path / "renal")
    assert sorted(e.label for e in renal) == ["blood", "cancer", "normal", "other", "stroma"]
    # Databiox: grade folders with magnification subfolders (and the spelled-out variants)
    for grade, mag in (("BC_IDC_Grade_1", "4X"), ("BC_IDC_Grade_2", "40X"), ("BC_IDC_Grade_3", "10X")):
        img(tmp_path / "idc" / grade / mag / "x.jpg")
    img(tmp_path / "idc2" / "Grade II" / "y.jpg")
    assert class_counts(get_benchmark("idc-grade").load(tmp_path / "idc")) == {"G1": 1, "G2": 1, "G3": 1}
    assert class_counts(get_benchmark("idc-grade").load(tmp_path / "idc2")) == {"G2": 1}


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
        w.writerow(["Case 5 - C1-1-2", "1", "viable: non-viable"])  # viable, as PathGen-CLIP counts it
    ex = get_benchmark("osteo").load(root)
    assert sorted(e.label for e in ex) == ["necrotic", "nontumor", "viable"]
    (root / "ML_Features_1144.csv").write_text("image_name,classification\nCase 4 - B2-1-2,Viable\n")
    assert [e.label for e in get_benchmark("osteo").load(root)] == ["viable"]


def test_skincancer_and_skin_tumour_from_tiles_csv(tmp_path):
    # heiDATA data.zip unpacks to data/{tiles-v2.csv, class_dict.json, tiles/<class>/<tile>.jpg}; the
    # file column is relative to the folder holding data/
    root = tmp_path / "skin"
    data = root / "data"
    rows = [
        ("data/tiles/nontumor_skin_dermis_dermis/a.jpg", "nontumor_skin_dermis_dermis", "Train", "nontumor"),
        ("data/tiles/tumor_skin_melanoma_melanoma/b.jpg", "tumor_skin_melanoma_melanoma", "Test", "tumor"),
        ("data/tiles/tumor_skin_epithelial_bcc/c.jpg", "tumor_skin_epithelial_bcc", "Validation", "tumor"),
    ]
    data.mkdir(parents=True)
    (data / "class_dict.json").write_text("{}")
    with open(data / "tiles-v2.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "uuid", "file", "class", "set", "malignicy", "case"])
        for i, r in enumerate(rows):
            w.writerow([i, "u", *r, "c1"])
            img(root / r[0])
    all_ex = get_benchmark("skincancer").load(root)
    assert {(e.label, e.split) for e in all_ex} == {
        (r[1], {"Train": "train", "Test": "test", "Validation": "val"}[r[2]]) for r in rows
    }
    assert all(Path(e.path).exists() for e in all_ex)
    assert len(get_benchmark("skin-tumour").load(root)) == 2
    # pointed at data/ itself, renamed: paths still resolve
    renamed = data.rename(tmp_path / "kriegsmann")
    assert all(Path(e.path).exists() for e in get_benchmark("skincancer").load(renamed))


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


def test_pannuke_folds_binarised_as_plip_does(tmp_path):
    fold = tmp_path / "fold_1" / "Fold 1"
    (fold / "images" / "fold1").mkdir(parents=True)
    (fold / "masks" / "fold1").mkdir(parents=True)
    np.save(fold / "images" / "fold1" / "images.npy", np.full((5, 16, 16, 3), 128.0))
    masks = np.zeros((5, 16, 16, 6))
    masks[..., 5] = 1  # the background channel
    masks[0, 0, 0:3, 1] = [1, 2, 3]  # inflammatory nuclei only: benign
    masks[1, 1, 0:12, 0] = np.arange(1, 13)  # 12 neoplastic of 15 nuclei: malignant
    masks[1, 2, 0:3, 2] = [13, 14, 15]
    masks[2, 1, 0:3, 0] = [1, 2, 3]  # only 3 neoplastic nuclei: neither, left out
    masks[3, 1, 0:10, 0] = np.arange(1, 11)  # 10 neoplastic but a quarter of 40 nuclei: left out
    masks[3, 2, 0:15, 1] = np.arange(11, 26)
    masks[3, 3, 0:15, 2] = np.arange(26, 41)
    # patch 4 holds no nucleus at all: left out
    np.save(fold / "masks" / "fold1" / "masks.npy", masks)
    np.save(fold / "images" / "fold1" / "types.npy", np.asarray(["Breast"] * 5))
    ex = get_benchmark("pannuke").load(tmp_path)
    assert [(e.index, e.label) for e in ex] == [(0, "benign"), (1, "malignant")]
    assert ex[0].open().getpixel((0, 0)) == (128, 128, 128)


def test_kimia24_class_folders_and_names(tmp_path):
    root = tmp_path / "KIMIAPath24 RGB"
    img(root / "Training" / "s1" / "95.jpg")
    img(root / "RGBPatches-test" / "s23" / "4.jpg")
    ex = get_benchmark("kimia24").load(root)
    assert sorted((e.label, e.split) for e in ex) == [("1", "train"), ("23", "test")]
    img(tmp_path / "flat" / "s0_1.jpg")
    assert [e.label for e in get_benchmark("kimia24").load(tmp_path / "flat")] == ["0"]
    assert get_benchmark("kimia").task == "retrieval"


def test_missing_or_wrong_folder_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_benchmark("bach").load(tmp_path / "nope")
    img(tmp_path / "random" / "x.png")
    with pytest.raises(FileNotFoundError, match="camelyonpatch"):
        get_benchmark("pcam").load(tmp_path)
