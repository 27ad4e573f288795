"""Audit findings on `pathgen eval`: few-shot k beyond the data, compare ordering and headings,
re-runs into the same --out, and the benchmark listing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.evaluate.probe import few_shot
from pathgen.evaluate.report import compare, headline_rows, markdown_table
from pathgen.rundir import write_json


def _eval(crc: Path, out: Path, *extra: str) -> object:
    args = ["eval", "--model", "tiny", "--benchmark", "crc100k", "--data", str(crc), "--out", str(out)]
    return CliRunner().invoke(app, [*args, "--device", "cpu", *extra])


def _clusters(per_class_train: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    xtr = np.concatenate([c + rng.normal(0, 0.3, (per_class_train, 3)) for c in centres])
    xte = np.concatenate([c + rng.normal(0, 0.3, (5, 3)) for c in centres])
    return xtr, np.repeat([0, 1, 2], per_class_train), xte, np.repeat([0, 1, 2], 5)


def test_few_shot_skips_every_k_a_class_cannot_supply():
    xtr, ytr, xte, yte = _clusters(2)
    fs = few_shot(xtr, ytr, xte, yte, ["a", "b", "c"], ks=(16, 1, 2, 4, 8), seeds=(0, 1, 2))
    assert list(fs["shots"]) == ["1", "2"] and fs["max_k"] == 2
    assert set(fs["skipped"]) == {"4", "8", "16"}
    assert "needs 16 training images per class" in fs["skipped"]["16"]
    assert "has 2 in the training split" in fs["skipped"]["16"]
    assert fs["shots"]["2"]["seeds"] == 3
    assert fs["shots"]["2"]["same_images_every_seed"] and not fs["shots"]["1"]["same_images_every_seed"]
    assert fs["shots"]["2"]["accuracy"]["std"] == 0.0  # why the flag exists


def test_few_shot_names_the_class_that_limits_k():
    xtr, ytr, xte, yte = _clusters(4)
    keep = np.flatnonzero(ytr != 1)[: -0 or None].tolist() + np.flatnonzero(ytr == 1)[:1].tolist()
    fs = few_shot(xtr[keep], ytr[keep], xte, yte, ["a", "b", "c"], ks=(1, 2), seeds=(0,))
    assert list(fs["shots"]) == ["1"]
    assert "class 'b' has 1 in the training split" in fs["skipped"]["2"]
    # a class seen only in the test split cannot supply even one shot
    fs = few_shot(xtr[ytr != 2], ytr[ytr != 2], xte, yte, ["a", "b", "c"], ks=(1,), seeds=(0,))
    assert fs["shots"] == {} and "class 'c' has 0" in fs["skipped"]["1"]
    with pytest.raises(ValueError, match=">= 1"):
        few_shot(xtr, ytr, xte, yte, ["a", "b", "c"], ks=(0, 1))


def test_eval_fewshot_on_crc_reports_only_supported_k(crc_patches, tmp_path):
    out = tmp_path / "fs"
    res = _eval(crc_patches, out, "-t", "fewshot", "--shots", "1,2,4,8,16")
    assert res.exit_code == 0, res.output
    fs = json.loads((out / "results.json").read_text())["tasks"]["fewshot"]
    assert fs["n_train"] == 16  # 4 images in each of 8 classes, split 50/50: 2 per class
    assert set(fs["shots"]) == {"1", "2"} and set(fs["skipped"]) == {"4", "8", "16"}
    assert "warning: fewshot k=16 skipped: needs 16 training images per class" in res.output
    assert "note: fewshot k=2 is every class's whole training split" in res.output
    table = res.output.split("warning:")[0]
    assert "k=16" in table and "needs 16 training" in " ".join(table.replace("│", " ").split())
    md = (out / "results.md").read_text()
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| fewshot")]
    assert rows == ["| fewshot k=1", "| fewshot k=2", "| fewshot k=4", "| fewshot k=8", "| fewshot k=16"]
    assert "needs 8 training images per class" in next(r for r in md.splitlines() if "k=8 " in r)


def _fake(model: str, shots: dict, retrieval: dict | None = None) -> dict:
    entry = {m: 0.5 for m in ("accuracy", "balanced_accuracy", "weighted_f1")}
    tasks = {
        "zeroshot": dict(entry),
        "fewshot": {
            "shots": {
                k: {m: {"mean": v, "std": 0.0} for m in entry} | {"seeds": 3} for k, v in shots.items()
            },
            "skipped": {"32": "needs 32 training images per class; class 'x' has 20 in the training split"},
        },
    }
    if retrieval:
        tasks["retrieval"] = retrieval
    return {"benchmark": "crc100k", "model": model, "n_examples": 10, "tasks": tasks}


def test_compare_orders_k_numerically_and_gives_retrieval_its_own_table(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shots = {"1": 0.1, "2": 0.2, "4": 0.4, "16": 0.16}
    write_json(a / "results.json", _fake("model-a", shots, {"R@1": 0.75, "R@5": 0.9, "majority@1": 0.7}))
    write_json(b / "results.json", _fake("model-b", shots))
    text, rows = compare([a, b])
    assert len(rows) == 6 + 3  # zeroshot + five few-shot k; three retrieval measures
    acc, retr = text.split("retrieval recall@k by model")
    assert acc.startswith("accuracy by model") and "R@1" not in acc
    tasks = [line.split(" | ")[1] for line in acc.splitlines() if line.startswith("| crc100k")]
    assert tasks == ["zeroshot", "fewshot k=1", "fewshot k=2", "fewshot k=4", "fewshot k=16", "fewshot k=32"]
    assert "| crc100k | fewshot k=16 | 0.1600 | 0.1600 |" in acc
    assert "| crc100k | fewshot k=32 | skipped | skipped |" in acc
    measures = [line.split(" | ")[1] for line in retr.splitlines() if line.startswith("| crc100k")]
    assert measures == ["R@1", "R@5", "majority@1"]
    assert "| crc100k | R@1 | 0.7500 |  |" in retr
    with pytest.raises(ValueError, match="unknown metric"):
        compare([a], metric="R@1")

    res = CliRunner().invoke(app, ["eval", "compare", str(a), str(b), "--metric", "weighted_f1"])
    assert res.exit_code == 0, res.output
    assert "weighted_f1 by model" in res.output and "retrieval recall@k by model" in res.output


def test_results_md_rows_follow_numeric_k():
    rows = headline_rows(_fake("m", {"16": 0.16, "2": 0.2}))
    assert [r["task"] for r in rows] == ["zeroshot", "fewshot k=2", "fewshot k=16", "fewshot k=32"]
    assert "skipped" in markdown_table(rows).splitlines()[0]


def test_rerun_keeps_other_tasks_and_refuses_another_model_or_subsample(crc_patches, tmp_path):
    out = tmp_path / "run"
    res = _eval(crc_patches, out, "-t", "zeroshot", "-t", "linear")
    assert res.exit_code == 0, res.output
    first = json.loads((out / "results.json").read_text())
    assert first["kept_tasks"] == [] and set(first["task_created"]) == {"zeroshot", "linear"}

    res = _eval(crc_patches, out, "-t", "zeroshot", "--ensemble")
    assert res.exit_code == 0, res.output
    second = json.loads((out / "results.json").read_text())
    assert set(second["tasks"]) == {"zeroshot", "linear"} and second["kept_tasks"] == ["linear"]
    assert second["tasks"]["linear"] == first["tasks"]["linear"]
    assert second["tasks"]["zeroshot"]["prompts"] == "ensemble"
    assert second["task_created"]["linear"] == first["task_created"]["linear"]
    assert "kept from the earlier run in this --out: linear" in res.output
    assert "| linear |" in (out / "results.md").read_text()

    before = (out / "results.json").read_text()
    res = _eval(crc_patches, out, "-t", "zeroshot", "--max-per-class", "2")
    said = " ".join(res.output.split())  # rich wraps the error to the terminal width
    assert res.exit_code != 0 and "already holds results of another evaluation" in said
    assert "max_per_class None there, 2 now" in said and "choose another --out" in said
    res = CliRunner().invoke(
        app,
        ["eval", "-m", "other-model", "-b", "crc100k", "-d", str(crc_patches), "-o", str(out)],
    )
    assert res.exit_code != 0 and "model 'tiny' there, 'other-model' now" in " ".join(res.output.split())
    assert (out / "results.json").read_text() == before  # a refused run leaves the folder alone


def test_benchmarks_lists_prompts_templates_and_full_layouts(monkeypatch):
    from pathgen.evaluate.benchmarks import BENCHMARKS

    monkeypatch.setenv("COLUMNS", "400")
    res = CliRunner().invoke(app, ["eval", "benchmarks"])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output
    for bench in BENCHMARKS.values():
        assert bench.layout in res.output
        if bench.task == "classification":
            assert bench.single_template in res.output
            for c in bench.classes:
                assert f"{c}: {bench.names[c]}" in res.output


def test_benchmarks_name_shows_everything_about_one():
    res = CliRunner().invoke(app, ["eval", "benchmarks", "kather"])
    assert res.exit_code == 0, res.output
    from pathgen.evaluate.benchmarks import get_benchmark

    crc = get_benchmark("crc100k")
    assert res.output.startswith("crc100k: ")
    assert f"layout: {crc.layout}\n" in res.output
    assert f"single template: {crc.single_template}\n" in res.output
    assert f"  ADI: {crc.names['ADI']}  [{'; '.join(crc.synonyms['ADI'])}]" in res.output
    for template in crc.templates:
        assert f"  {template}\n" in res.output
    assert f"ensemble prompts: {sum(len(p) for p in crc.prompts(True))}" in res.output
    res = CliRunner().invoke(app, ["eval", "benchmarks", "crc10"])
    assert res.exit_code != 0 and "unknown benchmark" in res.output
