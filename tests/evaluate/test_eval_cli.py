"""`pathgen eval` end to end with the tiny encoder: the acceptance command, cache, compare, pairs."""

from __future__ import annotations

import io
import json

import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from pathgen.cli import app


def test_eval_tiny_on_real_crc_patches_all_tasks_then_cached_then_compare(crc_patches, tmp_path):
    runner = CliRunner()
    out = tmp_path / "tiny"
    args = [
        "eval",
        "--model",
        "tiny",
        "--benchmark",
        "crc100k",
        "--data",
        str(crc_patches),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, [*args, "-t", "zeroshot", "-t", "linear", "-t", "fewshot", "--shots", "1,2"])
    assert res.exit_code == 0, res.output
    for word in ("accuracy=", "balanced_accuracy=", "weighted_f1=", "results.json"):
        assert word in res.output
    result = json.loads((out / "results.json").read_text())
    assert result["n_examples"] == 32 and not result["features_cached"]
    zs = result["tasks"]["zeroshot"]
    assert zs["n"] == 32 and zs["prompts"] == "single" and zs["n_prompts"] == 9
    assert 0.0 <= zs["accuracy"] <= 1.0 and len(zs["confusion_matrix"]) == 9
    assert result["tasks"]["linear"]["n_train"] == 16 and result["tasks"]["linear"]["n_test"] == 16
    assert set(result["tasks"]["fewshot"]["shots"]) == {"1", "2"}
    assert (out / "confusion_zeroshot.png").read_bytes()[:4] == b"\x89PNG"
    assert "| zeroshot |" in (out / "results.md").read_text()

    out2 = tmp_path / "tiny-ensemble"
    res = runner.invoke(
        app, [*args[:-4], "--out", str(out2), "--cache-dir", str(out / "cache"), "--ensemble"]
    )
    assert res.exit_code == 0, res.output
    result2 = json.loads((out2 / "results.json").read_text())
    assert result2["features_cached"]  # same model and images: no second encoding pass
    assert result2["tasks"]["zeroshot"]["prompts"] == "ensemble"
    assert result2["tasks"]["zeroshot"]["n_prompts"] > 9 * 4

    res = runner.invoke(app, ["eval", "compare", str(out), str(out2)])
    assert res.exit_code == 0, res.output
    assert "| crc100k | zeroshot |" in res.output and "tiny" in res.output


def test_eval_retrieval_on_pairs_shards(crc_patches, tmp_path):
    shards = tmp_path / "pairs"
    shards.mkdir()
    with wds.TarWriter(str(shards / "00000.tar")) as w:
        for i, path in enumerate(sorted(crc_patches.rglob("*.png"))[:12]):
            buf = io.BytesIO()
            Image.open(path).convert("RGB").save(buf, "JPEG")
            w.write({"__key__": f"k{i}", "jpg": buf.getvalue(), "txt": f"an H&E patch of {path.parent.name}"})
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "tiny",
            "--task",
            "retrieval",
            "--data",
            str(shards),
            "--out",
            str(tmp_path / "r"),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "r" / "results.json").read_text())["tasks"]["retrieval"]
    assert r["n_images"] == r["n_texts"] == 12
    assert set(r["image_to_text"]) == {"R@1", "R@5", "R@10", "R@50"}
    assert r["image_to_text"]["R@50"] == 1.0  # 12 candidates: everything is within the top 50


def test_eval_errors_are_clear(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "tiny",
            "--benchmark",
            "nope",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code != 0 and "unknown benchmark" in res.output
    res = CliRunner().invoke(app, ["eval", "--model", "tiny", "--benchmark", "crc100k"])
    assert res.exit_code != 0 and "missing --data, --out" in res.output
