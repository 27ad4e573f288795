"""Label loaders, each on a small file written in the dataset's published layout."""

from __future__ import annotations

import pytest

from pathgen.mil.labels import load_labels


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_csv_with_split_patient_and_bad_rows(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text(
        "slide_id,label,split,case_id\n"
        "a.svs,tumor,train,p1\n"
        "b,normal,Validation,p2\n"
        "c,normal,test,\n"
        "d,lymphoma,train,p3\n"
        "a,normal,train,p1\n"
        "e,tumor,holdout,p4\n"
        ",tumor,train,p5\n"
    )
    ls = load_labels(f, "csv", classes=["normal", "tumor"])
    assert ls.classes == ["normal", "tumor"]
    assert [(r.slide_id, r.label, r.split, r.patient) for r in ls.rows] == [
        ("a", "tumor", "train", "p1"),
        ("b", "normal", "val", "p2"),
        ("c", "normal", "test", None),
    ]
    problems = {p["slide_id"]: p["problem"] for p in ls.problems}
    assert "not in the classes" in problems["d"]
    assert "more than once" in problems["a"]
    assert "unknown split" in problems["e"]
    assert "empty slide_id" in problems["(line 8)"]


def test_csv_folds_and_inferred_classes(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("slide_id,label,fold\nx,b,0\ny,a,1\nz,c,1\n")
    ls = load_labels(f)
    assert ls.classes == ["a", "b", "c"] and ls.has_folds and not ls.has_split
    assert [r.fold for r in ls.rows] == [0, 1, 1]


def test_csv_needs_a_header(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("x,tumor\n")
    with pytest.raises(ValueError, match="slide_id and label"):
        load_labels(f)


def test_camelyon16_folders_and_reference(tmp_path):
    root = tmp_path / "CAMELYON16"
    for name in (
        "training/normal/normal_001.tif",
        "training/normal/normal_002.tif",
        "training/tumor/tumor_001.tif",
    ):
        _touch(root / name)
    (root / "testing").mkdir()
    (root / "testing" / "reference.csv").write_text(
        "Test_001,Tumor,Macro,Metastases\nTest_002,Normal,None\nTest_049,Tumor,Micro,Metastases\nTest_050,Unknown\n"
    )
    ls = load_labels(root, "camelyon16")
    assert ls.classes == ["normal", "tumor"]
    got = {(r.slide_id, r.label, r.split) for r in ls.rows}
    assert got == {
        ("normal_001", "normal", "train"),
        ("normal_002", "normal", "train"),
        ("tumor_001", "tumor", "train"),
        ("test_001", "tumor", "test"),
        ("test_002", "normal", "test"),
    }  # test_049 (the duplicate) is excluded as in the literature
    assert [p["slide_id"] for p in ls.problems] == ["test_050"]


def test_camelyon16_training_labels_from_feature_names(tmp_path):
    ref = tmp_path / "reference.csv"
    ref.write_text("test_003,Normal\n")
    ls = load_labels(ref, "camelyon16", slide_ids=["tumor_010", "normal_004", "other"])
    assert {(r.slide_id, r.label, r.split) for r in ls.rows} == {
        ("tumor_010", "tumor", "train"),
        ("normal_004", "normal", "train"),
        ("test_003", "normal", "test"),
    }


def test_camelyon17_stage_labels(tmp_path):
    f = tmp_path / "stage_labels.csv"
    f.write_text(
        "patient,stage\n"
        "patient_000.zip,pN0\n"
        "patient_000_node_0.tif,negative\n"
        "patient_000_node_1.tif,negative\n"
        "patient_004.zip,pN1\n"
        "patient_004_node_4.tif,macro\n"
        "patient_004_node_1.tif,itc\n"
        "patient_010_node_2.tif,micro\n"
        "patient_011_node_0.tif,huge\n"
    )
    ls = load_labels(tmp_path, "camelyon17")
    assert ls.classes == ["negative", "itc", "micro", "macro"]
    assert [(r.slide_id, r.label, r.patient, r.split) for r in ls.rows] == [
        ("patient_000_node_0", "negative", "patient_000", None),
        ("patient_000_node_1", "negative", "patient_000", None),
        ("patient_004_node_4", "macro", "patient_004", None),
        ("patient_004_node_1", "itc", "patient_004", None),
        ("patient_010_node_2", "micro", "patient_010", None),
    ]
    assert ls.problems[0]["slide_id"] == "patient_011_node_0"


def test_camelyon17_with_test_patients_uses_the_challenge_split(tmp_path):
    f = tmp_path / "stages.csv"
    f.write_text("patient,stage\npatient_001_node_0.tif,negative\npatient_120_node_3.tif,macro\n")
    ls = load_labels(tmp_path, "camelyon17")
    assert [(r.slide_id, r.split) for r in ls.rows] == [
        ("patient_001_node_0", "train"),
        ("patient_120_node_3", "test"),
    ]


@pytest.fixture
def bracs_tree(tmp_path):
    root = tmp_path / "BRACS_WSI"
    for split, group, kind, name in [
        ("train", "Group_BT", "Type_N", "BRACS_1003718.svs"),
        ("train", "Group_BT", "Type_PB", "BRACS_1320.svs"),
        ("train", "Group_AT", "Type_ADH", "BRACS_1271.svs"),
        ("val", "Group_AT", "Type_FEA", "BRACS_1486.svs"),
        ("test", "Group_MT", "Type_IC", "BRACS_1003677.svs"),
        ("test", "Group_MT", "Type_DCIS", "BRACS_1247.svs"),
        ("test", "Group_BT", "Type_XYZ", "BRACS_9.svs"),
    ]:
        _touch(root / split / group / kind / name)
    return root


def test_bracs_seven_and_three_classes(bracs_tree):
    seven = load_labels(bracs_tree, "bracs7")
    assert seven.classes == ["N", "PB", "UDH", "FEA", "ADH", "DCIS", "IC"]
    assert {(r.slide_id, r.label, r.split) for r in seven.rows} == {
        ("BRACS_1003718", "N", "train"),
        ("BRACS_1320", "PB", "train"),
        ("BRACS_1271", "ADH", "train"),
        ("BRACS_1486", "FEA", "val"),
        ("BRACS_1003677", "IC", "test"),
        ("BRACS_1247", "DCIS", "test"),
    }
    assert seven.problems[0]["slide_id"] == "BRACS_9"
    three = load_labels(bracs_tree, "bracs3")
    assert three.classes == ["benign", "atypical", "malignant"]
    assert {r.slide_id: r.label for r in three.rows} == {
        "BRACS_1003718": "benign",
        "BRACS_1320": "benign",
        "BRACS_1271": "atypical",
        "BRACS_1486": "atypical",
        "BRACS_1003677": "malignant",
        "BRACS_1247": "malignant",
    }


def test_unknown_format_and_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_labels(tmp_path / "nope.csv")
    (tmp_path / "x.csv").write_text("slide_id,label\n")
    with pytest.raises(ValueError, match="unknown label format"):
        load_labels(tmp_path / "x.csv", "tcga")
