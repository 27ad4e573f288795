"""`pathgen mil train|eval` end to end on synthetic feature files (CPU), bad input, compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.mil.h5 import h5_path, write_slide

FAST = ["--epochs", "8", "--patience", "8", "--lr", "2e-3", "--seeds", "0", "--device", "cpu"]


def _labels(path, labels, extra=""):
    path.write_text("slide_id,label\n" + "".join(f"{s},{lab}\n" for s, lab in labels.items()) + extra)
    return path


@pytest.mark.parametrize("model", ["abmil", "acmil"])
def test_train_then_eval(synthetic, tmp_path, model):
    feats, labels = synthetic
    csv = _labels(tmp_path / "labels.csv", labels)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "mil",
            "train",
            "--features",
            str(feats),
            "--labels",
            str(csv),
            "--model",
            model,
            "--out",
            str(out),
            "--folds",
            "3",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    entry = result["tasks"][f"mil-{model}"]
    assert entry["n_runs"] == 3 and entry["protocol"].startswith("3-fold by slide")
    assert sorted(s for r in entry["runs"] for s in r["test_slides"]) == sorted(labels)
    assert entry["macro_auc"] > 0.9, entry  # the planted signal is strong
    assert result["model"] == "synthetic" and result["problems"] == []
    assert len(list((out / "checkpoints").glob("*.safetensors"))) == 3
    assert "| mil-" + model in (out / "results.md").read_text()
    preds = (out / "predictions.csv").read_text().splitlines()
    assert preds[0] == "run,slide_id,label,pred,p_normal,p_tumor" and len(preds) == 1 + len(labels)

    ev = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "mil",
            "eval",
            "--trained",
            str(out),
            "--features",
            str(feats),
            "--labels",
            str(csv),
            "--out",
            str(ev),
            "--heatmaps",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    er = json.loads((ev / "results.json").read_text())
    assert er["tasks"][f"mil-{model}"]["n_runs"] == 3 and er["stage"] == "eval"
    assert len(er["heatmaps"]) == 2
    im = Image.open(er["heatmaps"][0])
    assert im.size[0] >= 320 and im.size[1] > 22  # no slide recorded: the map is drawn from coordinates


def test_bad_input_is_reported_per_slide(synthetic, tmp_path):
    feats, labels = synthetic
    write_slide(h5_path(feats, "empty"), np.zeros((0, 16)), np.zeros((0, 2)), {})
    write_slide(h5_path(feats, "unlabelled"), np.ones((3, 16)), np.zeros((3, 2)), {})
    write_slide(h5_path(feats, "narrow"), np.ones((3, 8)), np.zeros((3, 2)), {})
    (feats / "h5_files" / "broken.h5").write_bytes(b"not hdf5")
    extra = "ghost,tumor\nempty,tumor\nweird,lymphoma\nnarrow,normal\nbroken,normal\n"
    csv = _labels(tmp_path / "labels.csv", labels, extra)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "mil",
            "train",
            "-f",
            str(feats),
            "-l",
            str(csv),
            "--classes",
            "normal,tumor",
            "-o",
            str(out),
            "--model",
            "meanpool",
            "--folds",
            "2",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results.json").read_text())
    problems = {p["slide_id"]: p["problem"] for p in result["problems"]}
    assert problems.keys() == {"ghost", "empty", "weird", "unlabelled", "narrow", "broken"}
    assert "no feature file" in problems["ghost"]
    assert "empty feature file" in problems["empty"]
    assert "not in the classes" in problems["weird"]
    assert "without a label" in problems["unlabelled"]
    assert "8-d" in problems["narrow"]
    assert "unreadable" in problems["broken"]
    assert result["n_slides"] == len(labels)  # the rest ran
    assert "left out" in res.output


def test_compare_shows_mil_beside_patch_results(synthetic, tmp_path):
    feats, labels = synthetic
    csv = _labels(tmp_path / "labels.csv", labels)
    out = tmp_path / "mil"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "mil",
            "train",
            "-f",
            str(feats),
            "-l",
            str(csv),
            "-o",
            str(out),
            "--model",
            "meanpool",
            "--folds",
            "2",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    from pathgen.evaluate.report import write_results

    patch = tmp_path / "patch"
    write_results(
        patch,
        {
            "benchmark": "crc100k",
            "model": "synthetic",
            "n_examples": 4,
            "tasks": {"zeroshot": {"accuracy": 0.5, "balanced_accuracy": 0.5, "weighted_f1": 0.4}},
        },
    )
    res = runner.invoke(app, ["eval", "compare", str(patch), str(out)])
    assert res.exit_code == 0, res.output
    assert "| crc100k | zeroshot | 0.5000 |" in res.output
    mil_acc = json.loads((out / "results.json").read_text())["tasks"]["mil-meanpool"]["accuracy"]
    # the same encoder's patch and slide-level results share its column
    assert "| benchmark | task | synthetic |\n" in res.output
    assert f"| labels | mil-meanpool | {mil_acc:.4f} |" in res.output
    res = runner.invoke(app, ["eval", "compare", str(patch), str(out), "--metric", "macro_auc"])
    assert (
        res.exit_code == 0
        and "macro_auc by model" in res.output
        and "| crc100k | zeroshot |  |" in res.output
    )


def test_eval_refuses_other_classes(synthetic, tmp_path):
    feats, labels = synthetic
    csv = _labels(tmp_path / "labels.csv", labels)
    out = tmp_path / "out"
    runner = CliRunner()
    assert (
        runner.invoke(
            app,
            [
                "mil",
                "train",
                "-f",
                str(feats),
                "-l",
                str(csv),
                "-o",
                str(out),
                "--model",
                "meanpool",
                "--folds",
                "2",
                *FAST,
            ],
        ).exit_code
        == 0
    )
    other = _labels(
        tmp_path / "other.csv", {s: ("a" if lab == "normal" else "b") for s, lab in labels.items()}
    )
    res = runner.invoke(
        app, ["mil", "eval", "-t", str(out), "-f", str(feats), "-l", str(other), "-o", str(tmp_path / "e")]
    )
    assert res.exit_code == 2 and "trained on classes" in res.output
