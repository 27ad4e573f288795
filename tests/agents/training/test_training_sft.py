"""`agents train` on the tiny VLM (TRL SFT, full and LoRA), resume, the model used by `pathgen caption`,
and `agents eval` on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pathgen.agents.training.config import AgentDataConfig, AgentTrainConfig
from pathgen.agents.training.data import build_agent_data
from pathgen.agents.training.sources import load_descriptions
from pathgen.agents.training.train import train_agent
from pathgen.cli import app
from pathgen.engine.journal import Journal


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory, crc_patches, pathgen_captions) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    records = json.loads(pathgen_captions.read_text())[:10]
    patches = sorted(crc_patches.glob("*/*.png"))
    rows = [
        {"image": str(patches[i]), "text": r["caption"], "slide_id": r["wsi_id"]}
        for i, r in enumerate(records)
    ]
    (tmp / "d.json").write_text(json.dumps(rows))
    items, problems = load_descriptions(tmp / "d.json")
    build_agent_data(items, tmp / "sets", AgentDataConfig(image_size=32), problems)
    return tmp / "sets"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_sets) -> tuple[Path, dict]:
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("model") / "revise"
    cfg = AgentTrainConfig(max_steps=3, batch_size=2, lr=1e-3, logging_steps=1, save_steps=3)
    return out, train_agent("revise", "tiny", small_sets, out, cfg, echo=lambda _: None)


def test_train_writes_a_merged_model_folder_with_card_and_curve(trained):
    out, summary = trained
    for name in (
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "README.md",
        "loss_curve.png",
        "training.json",
    ):
        assert (out / name).is_file(), name
    assert summary["steps"] == 3 and summary["first_loss"] > 0 and summary["train_samples"] > 0
    card = (out / "README.md").read_text()
    assert "| base | `tiny` |" in card and "loss_curve.png" in card and "full fine-tuning" in card
    assert len(json.loads((out / "training.json").read_text())["history"]) >= 3


def test_a_rerun_resumes_from_the_checkpoint(trained, small_sets):
    out, _ = trained
    seen: list[str] = []
    cfg = AgentTrainConfig(max_steps=4, batch_size=2, lr=1e-3, logging_steps=1, save_steps=3)
    summary = train_agent("revise", "tiny", small_sets, out, cfg, echo=seen.append)
    assert summary["resumed_from"].endswith("checkpoint-3") and summary["steps"] == 4
    assert seen and "resuming from" in seen[0]


def test_lora_is_merged_into_a_plain_model(tmp_path, small_sets):
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "lora"
    args = ["agents", "train", "--agent", "summarize", "--base", "tiny", "--data", str(small_sets)]
    args += [
        "--out",
        str(out),
        "--lora",
        "--lora-r",
        "4",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "summarize: 2 steps" in result.output and f"hf:{out}" in result.output
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert "LoRA (merged), r=4" in (out / "README.md").read_text()


def test_pathgen_caption_uses_the_trained_model(trained, cmu_run):
    out, _ = trained
    args = ["caption", str(cmu_run.root), "--model", f"hf:{out}", "--limit", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    with Journal(cmu_run.journal) as journal:
        rows = journal.rows()
    # The model was loaded from OUT and answered every agent of both tiles; after 3 steps its answers
    # are not yet usable, so the chain's own checks reject them (exit 1, reasons recorded as rows).
    assert rows and {r["model"] for r in rows} == {f"hf:{out}"} and all(r["tokens_out"] > 0 for r in rows)
    assert {r["tile_id"] for r in rows} == {"CMU-1-Small-Region:0:448:224", "CMU-1-Small-Region:224:448:224"}
    assert result.exit_code in (0, 1) and all(r["status"] in ("ok", "rejected") for r in rows), result.output


def test_agents_eval_writes_results_json_and_markdown(trained, small_sets, tmp_path):
    out, _ = trained
    result = CliRunner().invoke(
        app,
        [
            "agents",
            "eval",
            "--agent",
            "revise",
            "--model",
            f"hf:{out}",
            "--data",
            str(small_sets),
            "--out",
            str(tmp_path / "ev"),
            "--limit",
            "4",
            "--max-tokens",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    m = res["metrics"]
    assert m["n"] == 4 and set(m["per_kind"]) == {"addition", "deletion", "modification"}
    assert m["valid_json_rate"] == 0.0  # 3 steps of training do not make the JSON yet
    assert "| valid_json_rate | 0.000 |" in (tmp_path / "ev" / "results.md").read_text()
    rows = [json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["answer"] for r in rows) and not any(r["valid_json"] for r in rows)
    assert m["cut_off_rate"] == sum(r["finish_reason"] == "length" for r in rows) / 4


def test_a_set_without_validation_slides_trains(tmp_path, crc_patches, pathgen_captions):
    """One slide (a run of one slide): the validation split is empty and training still runs."""
    records = json.loads(pathgen_captions.read_text())[:4]
    patches = sorted(crc_patches.glob("*/*.png"))
    rows = [
        {"image": str(patches[i]), "text": r["caption"], "slide_id": "one"} for i, r in enumerate(records)
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    items, _ = load_descriptions(tmp_path / "d.json")
    manifest = build_agent_data(items, tmp_path / "sets", AgentDataConfig(image_size=32))
    assert manifest["counts"]["revise"]["validation"] == 0
    cfg = AgentTrainConfig(max_steps=1, batch_size=2, logging_steps=1)
    summary = train_agent("revise", "tiny", tmp_path / "sets", tmp_path / "m", cfg, echo=lambda _: None)
    assert summary["steps"] == 1 and summary["validation_samples"] == 0 and summary["eval_loss"] is None
