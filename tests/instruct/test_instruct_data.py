"""`pathgen instruct` over real HTTP (the fake OpenAI-compatible server), the checks, the formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pathgen.config import InstructConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.instruct import checks, formats
from pathgen.instruct.stage import instruct_stage


def _cfg(server: FakeServer, **kw: object) -> InstructConfig:
    return InstructConfig(model="fake", base_url=server.base_url, concurrency=8, backoff_s=0.0, **kw)


def test_instruct_writes_every_format(demo_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "instruct"
    with FakeServer(ServerConfig(faults={"mcq": ["500"]})) as server:
        info = instruct_stage(demo_export, out, _cfg(server, test_fraction=0.25), progress=False)
    assert info["counts"]["conversations"] == 12 and info["counts"]["mcq"] == 12
    assert info["counts"]["rejected"] == 0
    assert info["calls"]["retries"] >= 12  # every MCQ's first answer was a 500, retried
    llava = json.loads((out / "llava.json").read_text())
    kinds = {r["type"] for r in llava}
    assert kinds == {"OPEN", "CLOSE"}
    close = next(r for r in llava if r["type"] == "CLOSE")
    human, gpt = close["conversations"]
    assert human["value"].startswith("<image>\n") and human["value"].endswith(formats.CLOSE_SUFFIX)
    assert gpt["value"] in "ABCDE" and len(gpt["value"]) == 1
    assert (out / "images" / close["image"]).is_file()
    opened = next(r for r in llava if r["type"] == "OPEN")
    assert [t["from"] for t in opened["conversations"]][:2] == ["human", "gpt"]
    assert 4 <= len(opened["conversations"]) <= 10
    mcq = json.loads((out / "mcq.json").read_text())
    test_items = [i for subset in mcq.values() for i in subset.get("test", [])]
    assert test_items, "a held-out split exists"
    held = {i["No"] for i in test_items}
    assert not any(r["id"].rsplit("-", 1)[0] in held for r in llava), "held-out pairs never train"
    item = test_items[0]
    assert item["answer"] in item["options"] and item["options"][0].startswith("A) ")
    import datasets

    ds = datasets.load_from_disk(str(out / "hf"))
    assert len(ds) == len(llava) and ds[0]["image"].size[0] > 0
    assert "Answer letters" in (out / "README.md").read_text()
    # resumable: a second run asks nothing
    with FakeServer() as server:
        again = instruct_stage(demo_export, out, _cfg(server, test_fraction=0.25), progress=False)
        assert server.log == []
    assert again["calls"]["skipped"] == 24


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("answer_not_in_options", "answer_not_in_options"),
        ("dup_options", "options_not_unique"),
        ("leak", "answer_leaked_in_question"),
        ("unsupported", "answer_not_supported"),
    ],
)
def test_planted_bad_mcq_is_reasked_then_rejected(
    demo_export: Path, tmp_path: Path, fault: str, reason: str
) -> None:
    out = tmp_path / "instruct"
    cfg_faults = {"mcq": [fault] * 3}  # first answer and both re-asks are bad
    with FakeServer(ServerConfig(faults=cfg_faults, fault_fraction=0.5)) as server:
        info = instruct_stage(demo_export, out, _cfg(server, kinds=["mcq"]), progress=False)
    rejected = json.loads((out / "rejections.json").read_text())
    assert rejected, "some pairs drew the fault"
    assert {r["reason"] for r in rejected} == {reason}
    assert info["counts"]["mcq"] + len(rejected) == 12
    assert info["counts"]["rejected_by_reason"] == {f"mcq:{reason}": len(rejected)}


def test_one_bad_answer_is_reasked_and_kept(demo_export: Path, tmp_path: Path) -> None:
    with FakeServer(ServerConfig(faults={"conversation": ["blind"]})) as server:
        info = instruct_stage(
            demo_export, tmp_path / "o", _cfg(server, kinds=["conversation"]), progress=False
        )
        reasks = [e for e in server.log if e["agent"] == "conversation"]
    assert info["counts"]["conversations"] == 12 and info["counts"]["rejected"] == 0
    assert len(reasks) == 24  # each conversation asked twice: the refusal turn was re-asked


def test_tiny_model_writes_template_items(demo_export: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pathgen.cli import app

    out = tmp_path / "o"
    res = CliRunner().invoke(
        app, ["instruct", str(demo_export), "--out", str(out), "--model", "tiny", "--limit", "3"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads((out / "card.json").read_text())
    assert info["counts"]["conversations"] == 3 and info["counts"]["mcq"] == 3
    assert info["counts"]["offline_demo"] == 6 and "offline-demo templates" in res.output
    for name in ("llava.json", "mcq.json", "pairs.json", "README.md", "hf"):
        assert (out / name).exists(), name


def test_checks_direct() -> None:
    desc = "Glands lined by atypical cells with hyperchromatic nuclei and necrosis."
    good = {"question": "Which is seen?", "options": ["necrosis", "cartilage", "mucin", "fat"],
            "answer": "necrosis", "explanation": "Necrosis is present."}  # fmt: skip
    assert checks.check_mcq(good, desc, 4, 5, 0.5) is None
    assert checks.check_mcq({**good, "options": good["options"][:3]}, desc, 4, 5, 0.5) == "option_count_3"
    assert checks.check_mcq({**good, "answer": "bone"}, desc, 4, 5, 0.5) == "answer_not_in_options"
    leak = {**good, "question": "Necrosis is seen; which is seen?"}
    assert checks.check_mcq(leak, desc, 4, 5, 0.5) == "answer_leaked_in_question"


def test_letters_balanced_on_many_items(export_of, tmp_path: Path) -> None:
    run = export_of(120)
    with FakeServer() as server:
        info = instruct_stage(run, tmp_path / "o", _cfg(server, kinds=["mcq"]), progress=False)
    balance = info["letter_balance"]
    assert balance["n"] == 120
    assert balance["max_ratio"] <= 1.5
    assert {len(v) for v in [balance["letters"]]} and set(balance["letters"]) == set("ABCDE")
    # the file agrees with the card
    mcq = json.loads((tmp_path / "o" / "mcq.json").read_text())
    letters = [i["answer"][0] for s in mcq.values() for split in s.values() for i in split]
    assert len(letters) == 120
