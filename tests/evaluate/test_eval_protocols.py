"""Issue 9: roots holding one split, the published image presets, quadratic κ, the UNI probe protocol."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.evaluate.benchmarks import get_benchmark
from pathgen.evaluate.data import Example
from pathgen.evaluate.metrics import classification_metrics
from pathgen.evaluate.probe import few_shot, linear_probe
from pathgen.evaluate.protocols import zeroshot_images
from pathgen.evaluate.run import evaluate


def _copy_classes(crc: Path, dest: Path, classes: list[str] | None = None) -> Path:
    for folder in sorted(p for p in crc.iterdir() if p.is_dir()):
        if classes is None or folder.name in classes:
            shutil.copytree(folder, dest / folder.name)
    return dest


def _eval(bench: str, data: Path, out: Path, *extra: str):
    args = ["eval", "-m", "tiny", "-b", bench, "-d", str(data), "-o", str(out), "--device", "cpu"]
    return CliRunner().invoke(app, [*args, *extra])


def test_crc_root_with_only_the_100k_folder_runs_every_task(crc_patches, tmp_path):
    root = tmp_path / "crc"
    _copy_classes(crc_patches, root / "NCT-CRC-HE-100K")
    out = tmp_path / "out"
    res = _eval("crc100k", root, out, "-t", "zeroshot", "-t", "linear")
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "note: zeroshot: the data holds no test split (splits found: train (32))" in said
    assert "preset test-split scores all 32 images instead" in said
    result = json.loads((out / "results.json").read_text())
    zs = result["tasks"]["zeroshot"]
    assert zs["n"] == 32 and zs["images"] == "all" and zs["preset"] == "test-split"
    assert result["tasks"]["linear"]["split"] == "stratified 50/50 (the data holds only the train split(s))"
    # PathGen-CLIP's script scores NCT-CRC-HE-100K itself: no fallback, no note
    res = _eval("crc100k", root, tmp_path / "pg", "--preset", "pathgen-clip")
    assert res.exit_code == 0, res.output
    zs = json.loads((tmp_path / "pg" / "results.json").read_text())["tasks"]["zeroshot"]
    assert (zs["preset"], zs["images"], zs["n"]) == ("pathgen-clip", "train", 32) and "note" not in zs


def test_wsss4luad_dataset_root_runs(crc_patches, tmp_path):
    # the dataset as unpacked: labelled 1.training/, and validation/test with masks and bare names
    root = tmp_path / "WSSS4LUAD"
    flags = {"TUM": "[1, 0, 0]", "STR": "[0, 1, 0]", "NORM": "[0, 0, 1]", "MUC": "[1, 1, 0]"}
    for cls, flag in flags.items():
        for i, src in enumerate(sorted((crc_patches / cls).glob("*.png"))):
            dst = root / "1.training" / f"4362{i}-{len(cls)}-{i}-{flag}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    for sub in ("img", "mask"):
        (root / "2.validation" / sub).mkdir(parents=True)
        shutil.copy(next((crc_patches / "ADI").glob("*.png")), root / "2.validation" / sub / "00.png")
    out = tmp_path / "out"
    res = _eval("wsss4luad", root, out)
    assert res.exit_code == 0, res.output
    zs = json.loads((out / "results.json").read_text())["tasks"]["zeroshot"]
    assert zs["n"] == 16 and zs["images"] == "all" and "no test split" in zs["note"]
    assert sum(map(sum, zs["confusion_matrix"])) == 16
    assert [sum(r) for r in zs["confusion_matrix"]] == [8, 8]  # TUM + MUC tumour, STR + NORM normal


def _ex(i: int, label: str, split: str | None) -> Example:
    return Example(id=f"{split}/{i}", label=label, path="x", split=split)


def test_presets_pick_the_published_images():
    crc = get_benchmark("crc100k")
    both = [_ex(0, "ADI", "train"), _ex(1, "TUM", "train"), _ex(2, "ADI", "test")]
    assert [e.id for e in zeroshot_images(crc, both, "test-split").examples] == ["test/2"]
    assert [e.id for e in zeroshot_images(crc, both, "pathgen-clip").examples] == ["train/0", "train/1"]
    # SICAPv2: Train.xlsx for PathGen-CLIP, Test.xlsx for QuiltNet
    sicap = get_benchmark("sicapv2")
    assert zeroshot_images(sicap, [*both[:2], _ex(5, "G3", "test")], "pathgen-clip").split == "train"
    # SkinCancer: every row of tiles-v2.csv whatever its set; BACH (no splits): every image
    skin = get_benchmark("skincancer")
    rows = [_ex(0, skin.classes[0], "train"), _ex(1, skin.classes[1], "val"), _ex(2, skin.classes[2], "test")]
    sel = zeroshot_images(skin, rows, "pathgen-clip")
    assert (len(sel.examples), sel.split, sel.note) == (3, "all", None)
    assert zeroshot_images(skin, rows, "test-split").split == "test"
    flat = [_ex(0, "benign", None), _ex(1, "normal", None)]
    sel = zeroshot_images(get_benchmark("bach"), flat, "test-split")
    assert len(sel.examples) == 2 and "no splits" in sel.note
    with pytest.raises(ValueError, match="unknown preset"):
        zeroshot_images(crc, both, "quilt")


def test_quadratic_kappa_for_graded_classes():
    names = ["NC", "G3", "G4", "G5"]
    m = classification_metrics([0, 1, 2, 3], [0, 1, 3, 3], names, ordinal=True)
    # by hand: observed weighted disagreement 1/36, expected 1/3 -> 1 - 1/12
    assert m["quadratic_kappa"] == pytest.approx(11 / 12)
    assert "quadratic_kappa" not in classification_metrics([0, 1], [0, 1], names)
    assert get_benchmark("sicapv2").ordinal and not get_benchmark("crc100k").ordinal


def _clusters(dim: int = 3, n: int = 20) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    centres = np.eye(3, dim) * 5
    x = np.concatenate([c + rng.normal(0, 0.3, (n, dim)) for c in centres])
    y = np.repeat([0, 1, 2], n)
    idx = rng.permutation(len(y))
    tr, te = idx[: len(y) // 2], idx[len(y) // 2 :]
    return x[tr], y[tr], x[te], y[te]


def test_uni_probe_protocol_fixed_c_rule_and_recorded():
    xtr, ytr, xte, yte = _clusters(dim=8)
    res = linear_probe(xtr, ytr, xte, yte, ["a", "b", "c"], protocol="uni")
    assert res["protocol"] == "uni" and res["C"] == pytest.approx(8 * 3 / 100)
    assert (res["solver"], res["max_iter"], res["features"]) == ("lbfgs", 1000, "as encoded")
    assert "validation" not in res  # no C search
    assert res["accuracy"] == 1.0
    sweep = linear_probe(xtr, ytr, xte, yte, ["a", "b", "c"])
    assert sweep["protocol"] == "sweep" and sweep["validation"]
    fs = few_shot(xtr, ytr, xte, yte, ["a", "b", "c"], ks=(2,), protocol="uni")
    assert fs["protocol"] == "uni" and fs["C"] == pytest.approx(0.24) and fs["draws"] == 5
    assert fs["shots"]["2"]["seeds"] == 5
    with pytest.raises(ValueError, match="unknown probe protocol"):
        linear_probe(xtr, ytr, xte, yte, ["a", "b", "c"], protocol="sk")


def test_eval_fewshot_takes_at_least_five_draws_and_records_the_protocol(crc_patches, tmp_path):
    with pytest.raises(ValueError, match="at least 5 draws"):
        evaluate("tiny", "crc100k", crc_patches, tmp_path / "x", tasks=["fewshot"], seeds=(0, 1, 2))
    out = tmp_path / "fs"
    res = _eval(
        "crc100k", crc_patches, out, "-t", "linear", "-t", "fewshot", "--shots", "1", "--probe", "uni"
    )
    assert res.exit_code == 0, res.output
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    dim = np.load(next((out / "cache").rglob("*.npy"))).shape[1]
    assert tasks["linear"]["protocol"] == tasks["fewshot"]["protocol"] == "uni"
    assert tasks["linear"]["C"] == tasks["fewshot"]["C"] == pytest.approx(dim * 8 / 100)  # 8 classes
    assert tasks["fewshot"]["draws"] == 5 and tasks["fewshot"]["shots"]["1"]["seeds"] == 5
    assert "linear: protocol uni" in res.output
