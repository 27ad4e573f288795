"""`agents data`: imported descriptions with bad rows, the three formats, the slide split, atomicity,
and the teacher through the engine and journal (resumable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pathgen.agents.training import data as data_mod
from pathgen.agents.training.corrupt import Corruption, apply, undo
from pathgen.agents.training.data import build_agent_data
from pathgen.agents.training.sources import load_descriptions
from pathgen.cli import app
from pathgen.engine.journal import Journal


def _description_file(tmp: Path, crc: Path, captions: Path, n: int = 24) -> Path:
    """Real CRC patches with real PathGen captions (grouped by their TCGA slide), plus bad rows."""
    records = json.loads(captions.read_text())[:n]
    patches = sorted(crc.glob("*/*.png"))
    rows = [
        {"image": str(patches[i % len(patches)]), "text": r["caption"], "slide_id": r["wsi_id"][:12]}
        for i, r in enumerate(records)
    ]
    rows += [
        {"image": "missing/nowhere.png", "text": "Sheets of cells."},  # missing image
        {"image": str(patches[-1]), "text": "   "},  # empty text
        dict(rows[0]),  # duplicate key
    ]
    path = tmp / "descriptions.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, crc_patches, pathgen_captions):
    tmp = tmp_path_factory.mktemp("agentdata")
    items, problems = load_descriptions(_description_file(tmp, crc_patches, pathgen_captions))
    out = tmp / "sets"
    manifest = build_agent_data(items, out, problems=problems)
    return out, manifest, items, problems


def test_bad_rows_are_reported_per_row_and_skipped(built):
    out, manifest, items, problems = built
    assert len(items) == 24
    assert [(p["row"], p["reason"].split(":")[0]) for p in problems] == [
        (25, "image not found"),
        (26, "empty text"),
        (27, "duplicate key (an earlier row has this tile or image)"),
    ]
    written = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert written == problems and manifest["problems"] == 3


def test_three_sets_in_three_formats_split_by_slide(built):
    from datasets import load_dataset

    out, manifest, _, _ = built
    train_slides, val_slides = set(manifest["slides"]["train"]), set(manifest["slides"]["validation"])
    assert train_slides and val_slides and not train_slides & val_slides
    for agent in ("describe", "revise", "summarize"):
        for split in ("train", "validation"):
            llava = json.loads((out / agent / f"llava_{split}.json").read_text())
            chat = [json.loads(x) for x in (out / agent / f"chat_{split}.jsonl").read_text().splitlines()]
            ds = load_dataset(
                "parquet", data_files=str(out / agent / "hf" / f"{split}.parquet"), split="train"
            )
            n = manifest["counts"][agent][split]
            assert n > 0 and len(llava) == len(chat) == len(ds) == n
            assert {r["slide_id"] for r in chat} <= (train_slides if split == "train" else val_slides)
            first = llava[0]
            assert first["conversations"][0]["from"] == "human" and first["conversations"][1]["value"]
            if agent == "summarize":  # text only, as the chain's summarize agent
                assert "image" not in first and ds[0]["images"] == []
            else:
                assert first["conversations"][0]["value"].startswith("<image>\n")
                assert (out / first["image"]).is_file() and chat[0]["images"] == [first["image"]]
                assert ds[0]["images"][0].size == (448, 448)  # the bytes are inside the parquet
            assert ds[0]["completion"][0]["content"] == chat[0]["messages"][-1]["content"]


def test_each_revise_sample_differs_from_its_source_by_exactly_the_recorded_edits(built):
    out, _, _, _ = built
    rows = [
        json.loads(x)
        for s in ("train", "validation")
        for x in (out / "revise" / f"chat_{s}.jsonl").read_text().splitlines()
    ]
    assert {r["meta"]["kind"] for r in rows} == {"clean", "addition", "deletion", "modification"}
    for r in rows:
        meta = r["meta"]
        cs = [Corruption(**c) for c in meta["corruptions"]]
        assert apply(meta["clean"], cs) == meta["corrupted"] and undo(meta["corrupted"], cs) == meta["clean"]
        assert (meta["corrupted"] == meta["clean"]) == (meta["kind"] == "clean")
        assert meta["corrupted"] in r["messages"][1]["content"][1]["text"]  # the draft the agent sees
        target = json.loads(r["messages"][-1]["content"])
        assert target == {"edits": meta["edits"], "revised": meta["clean"]}


def test_a_failure_leaves_nothing_half_written(tmp_path, built, monkeypatch):
    _, _, items, problems = built
    out = tmp_path / "sets"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(data_mod, "write_agent_set", boom)
    with pytest.raises(RuntimeError):
        build_agent_data(items[:6], out, problems=problems)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary sibling


def test_teacher_descriptions_through_the_engine_are_resumable(cmu_run, tmp_path):
    runner = CliRunner()
    args = [
        "agents",
        "data",
        str(cmu_run.root),
        "--out",
        str(tmp_path / "sets"),
        "--teacher-model",
        "tiny",
        "--no-progress",
        "--image-size",
        "64",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    with Journal(cmu_run.root / "agents_teacher.sqlite") as journal:
        rows = journal.rows()
    assert (
        len(rows) == 12
        and {r["agent"] for r in rows} == {"describe"}
        and {r["model"] for r in rows} == {"tiny"}
    )
    manifest = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    assert (
        manifest["counts"]["describe"]["train"] == 12 and manifest["sources"]["describe"]["kind"] == "teacher"
    )
    chat = [
        json.loads(x) for x in (tmp_path / "sets" / "describe" / "chat_train.jsonl").read_text().splitlines()
    ]
    assert sorted(r["messages"][-1]["content"] for r in chat) == sorted(r["output"] for r in rows)
    assert (
        "findings from the slide's pathology report: Sections show skin"
        in chat[0]["messages"][1]["content"][1]["text"]
    )
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    with Journal(cmu_run.root / "agents_teacher.sqlite") as journal:
        assert [r["created_at"] for r in journal.rows()] == [
            r["created_at"] for r in rows
        ]  # nothing asked again


def test_descriptions_and_teacher_together_are_refused(cmu_run, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "agents",
            "data",
            str(cmu_run.root),
            "--out",
            str(tmp_path / "o"),
            "--teacher-model",
            "tiny",
            "--descriptions",
            str(tmp_path / "d.csv"),
        ],
    )
    assert result.exit_code == 2 and "not both" in " ".join(result.output.split())


def test_a_run_without_captions_needs_a_teacher_or_descriptions(cmu_run, tmp_path):
    result = CliRunner().invoke(app, ["agents", "data", str(cmu_run.root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "finished captions: give --teacher-model" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "o").exists()


def test_several_gpus_relaunch_under_torchrun():
    from pathgen.agents.training.config import AgentTrainConfig
    from pathgen.agents.training.train import launch_command, needs_launch

    cmd = launch_command(["--agent", "revise", "--gpus", "4"], 4)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert cmd[5:9] == ["-m", "pathgen.cli", "agents", "train"] and cmd[-2:] == ["--gpus", "4"]
    assert needs_launch(AgentTrainConfig(gpus=4)) and not needs_launch(AgentTrainConfig(gpus=1))


class _Editor:
    """A generator (pathgen's own interface) that makes the asked error the way an obedient LLM
    would for deletions and additions, and botches modifications (two sentences changed)."""

    name, offline_demo = "editor", False

    async def generate(self, messages, params, request_id=None):
        from pathgen.agents.training.corrupt import sentences
        from pathgen.models.generators import GenerationResult

        ask, text = messages[1]["content"].split("\n\nDescription:\n")
        parts = sentences(text)
        if ask.startswith("Remove"):
            parts = parts[:-1]
        elif ask.startswith("Insert"):
            parts = [*parts[:1], "Necrosis is extensive.", *parts[1:]]
        else:
            parts = [p.replace("The", "A") for p in parts] + ["Extra."]
        return GenerationResult(" ".join(parts), 10, 10, 0.0, self.name)

    async def aclose(self):
        pass


def test_llm_injected_errors_are_recorded_or_reported(built, tmp_path):
    _, _, items, _ = built
    manifest = build_agent_data(items[:8], tmp_path / "sets", problems=[], inject=_Editor())
    rows = [
        json.loads(x)
        for s in ("train", "validation")
        for x in (tmp_path / "sets" / "revise" / f"chat_{s}.jsonl").read_text().splitlines()
    ]
    llm = [r for r in rows if r["meta"]["corruptions"] and r["meta"]["corruptions"][0]["source"] == "llm"]
    assert manifest["revise_llm_injected"] == len(llm) == 16  # 8 deletions + 8 additions
    assert {r["meta"]["kind"] for r in llm} == {"addition", "deletion"}
    for r in llm:
        cs = [Corruption(**c) for c in r["meta"]["corruptions"]]
        assert apply(r["meta"]["clean"], cs) == r["meta"]["corrupted"]
    assert sum("not exactly one modification" in p["reason"] for p in manifest_problems(tmp_path)) == 8


def manifest_problems(tmp_path):
    return [json.loads(x) for x in (tmp_path / "sets" / "problems.jsonl").read_text().splitlines()]


def test_the_hf_parquet_is_written_in_batches(built, tmp_path, monkeypatch):
    from datasets import load_dataset

    from pathgen.agents.training import formats

    _, _, items, _ = built
    monkeypatch.setattr(formats, "HF_CHUNK", 3)
    manifest = build_agent_data(items[:6], tmp_path / "sets")
    n = manifest["counts"]["revise"]["train"]
    assert n > 3  # more than one batch
    path = tmp_path / "sets" / "revise" / "hf" / "train.parquet"
    ds = load_dataset("parquet", data_files=str(path), split="train")
    assert len(ds) == n and ds[n - 1]["images"][0].size == (448, 448)
