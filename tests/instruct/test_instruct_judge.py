"""`support: judge`: an LLM judge (the fake server's, over real HTTP) decides whether answers are grounded."""

from __future__ import annotations

import json
from pathlib import Path

from pathgen.config import InstructConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal
from pathgen.instruct.stage import instruct_stage


def _cfg(server: FakeServer, **kw: object) -> InstructConfig:
    return InstructConfig(
        model="fake", base_url=server.base_url, concurrency=8, backoff_s=0.0, support="judge", **kw
    )


def _calls(server: FakeServer, agent: str) -> int:
    return sum(1 for e in server.log if e["agent"] == agent)


def test_judge_keeps_supported_rejects_planted_and_resumes(demo_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "instruct"
    faults = {"mcq": ["unsupported"] * 3}  # those pairs' MCQ answer is a feature the description lacks
    with FakeServer(ServerConfig(faults=faults, fault_fraction=0.5)) as server:
        cfg = _cfg(server, judge_model="judge-llm", test_fraction=0.25)
        info = instruct_stage(demo_export, out, cfg, progress=False)
        judged = _calls(server, "judge")
        structured = all(e["structured"] for e in server.log if e["agent"] == "judge")
    rejected = json.loads((out / "rejections.json").read_text())
    assert 0 < len(rejected) < 12, "some pairs drew the planted answer"
    assert {r["kind"] for r in rejected} == {"mcq"}
    for r in rejected:  # the judge's own reason, naming the unsupported answer
        answer = json.loads(r["output"])["answer"]
        assert r["reason"].startswith("judge_unsupported: the description does not mention")
        assert answer.split()[0].lower() in r["reason"]
    assert info["counts"]["rejected_by_reason"] == {"mcq:judge_unsupported": len(rejected)}
    assert info["judge"] == "judge-llm" and info["settings"]["support"] == "judge"
    assert info["counts"]["conversations"] == 12 and info["counts"]["mcq"] == 12 - len(rejected)
    # every distinct item is judged once: a re-asked identical item reuses its journalled verdict
    assert judged == 24 and structured
    with Journal(out / "journal.sqlite") as journal:
        rows = [r for r in journal.rows() if r["agent"].startswith("judge:")]
    assert len(rows) == 24 and {r["model"] for r in rows} == {"judge-llm"}
    assert sum(1 for r in rows if r["status"] == "rejected") == len(rejected)
    # a re-run asks nothing: neither the generator nor the judge
    with FakeServer() as server:
        again = instruct_stage(demo_export, out, _cfg(server, judge_model="judge-llm", test_fraction=0.25))
        assert server.log == []
    assert again["calls"]["skipped"] == 24 and again["counts"] == info["counts"]


def test_unparsable_verdict_is_a_failed_check(demo_export: Path, tmp_path: Path) -> None:
    faults = {"judge": ["invalid_json"]}  # each item's first verdict is prose
    with FakeServer(ServerConfig(faults=faults)) as server:
        kept = instruct_stage(demo_export, tmp_path / "a", _cfg(server, kinds=["mcq"]), progress=False)
        asked, judged = _calls(server, "mcq"), _calls(server, "judge")
    assert kept["counts"]["mcq"] == 12 and kept["counts"]["rejected"] == 0
    assert asked == 24 and judged == 24  # re-asked once, and the prose verdict was not cached
    with FakeServer(ServerConfig(faults=faults)) as server:
        cfg = _cfg(server, kinds=["mcq"], max_reasks=0)
        info = instruct_stage(demo_export, tmp_path / "b", cfg, progress=False)
    rejected = json.loads((tmp_path / "b" / "rejections.json").read_text())
    assert len(rejected) == 12 and info["counts"]["rejected_by_reason"] == {"mcq:judge_unparsable": 12}
    assert all(r["reason"].startswith("judge_unparsable: 'I think the answer") for r in rejected)


def test_tiny_model_cannot_judge(demo_export: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pathgen.cli import app

    out = tmp_path / "o"
    args = ["instruct", str(demo_export), "--out", str(out), "--model", "tiny", "--support", "judge"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert "support='judge' needs a real LLM" in res.output and "offline demo" in res.output
    assert not out.exists(), "refused before any work"
