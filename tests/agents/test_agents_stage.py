"""The caption stage end to end against a real local OpenAI-compatible server that injects faults."""

from __future__ import annotations

import pytest

from pathgen.agents.fit import count_tokens
from pathgen.agents.results import load_caption_records
from pathgen.agents.stage import caption_stage
from pathgen.config import AgentConfig, CaptionConfig
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal


def _cfg(server: FakeServer, **kw) -> CaptionConfig:
    base = dict(
        model="fake-vlm",
        base_url=server.base_url,
        image_size=96,
        backoff_s=0.01,
        timeout_s=2.0,
        concurrency=8,
    )
    return CaptionConfig(**{**base, **kw})


def test_faults_are_survived_and_a_second_run_makes_no_calls(cmu_run):
    faults = {
        "describe": ["429", "500", "slow", "malformed", "drop"],  # transport: retried
        "revise": ["invalid_json", "truncated"],  # re-asked with the reason
        "summarize": ["refusal", "long"],  # re-asked, then asked to be shorter
    }
    config = ServerConfig(latency=(0.0, 0.02), faults=faults, retry_after=0.05, slow_s=5.0)
    with FakeServer(config) as server:
        summary = caption_stage(cmu_run, _cfg(server, timeout_s=0.5), progress=False)
        calls_first = len(server.log)
        again = caption_stage(cmu_run, _cfg(server, timeout_s=0.5), progress=False)
        assert len(server.log) == calls_first  # nothing asked twice
    assert summary["done"] == 12 and summary["failed"] == 0 and 12 * 4 <= summary["retries"] <= 12 * 5
    assert again["up_to_date"] and again["skipped"] == 12 and again["calls"] == 0
    records = load_caption_records(cmu_run)
    assert [r["tile_id"] for r in records] == [
        f"CMU-1-Small-Region:{(i % 9) * 224}:{(i // 9) * 224 + 448}:224" for i in range(12)
    ]
    for r in records:
        assert r["status"] == "ok" and r["flags"] == [] and count_tokens(r["caption"]) <= 77
        assert r["revision"]["edits"][0]["type"] == "modify" and "no necrosis" in r["revision"]["revised"]
        assert r["models"] == {"describe": "fake-vlm", "revise": "fake-vlm", "summarize": "fake-vlm"}
        assert r["prompt_versions"] == {"describe": "v1", "revise": "v1", "summarize": "v1"}
    with Journal(cmu_run.journal) as journal:
        rows = journal.rows()
    assert len(rows) == 36 and len({r["key"] for r in rows}) == 36
    # 5 faults then success; a "drop" on a reused keep-alive connection is retried inside the pool.
    assert {r["attempts"] for r in rows if r["agent"] == "describe"} <= {5, 6}
    assert {r["reasks"] for r in rows if r["agent"] != "describe"} == {2}
    assert cmu_run.stage_status("caption")["summary"]["done"] == 12


def test_rejections_and_last_resort_truncation_are_rows_with_reasons(cmu_run):
    faults = {"summarize": ["long", "long", "long"], "describe": ["refusal"] * 3}
    with FakeServer(ServerConfig(faults=faults, fault_fraction=0.5)) as server:
        summary = caption_stage(cmu_run, _cfg(server), progress=False)
    records = load_caption_records(cmu_run)
    assert len(records) == 12
    rejected = [r for r in records if r["status"] == "rejected"]
    truncated = [r for r in records if r["status"] == "truncated"]
    assert rejected and truncated and summary["failed"] == len(rejected)
    assert summary["reasons"] == {"rejected:describe:refusal": len(rejected)}
    for r in rejected:
        assert r["caption"] == "" and "rejected:refusal" in r["flags"] and list(r["models"]) == ["describe"]
    for r in truncated:
        assert "truncated" in r["flags"] and count_tokens(r["caption"]) <= 77 and r["caption"].endswith(".")


def test_changing_one_agent_reruns_only_it_and_the_agents_after_it(cmu_run, tmp_path):
    from pathgen.agents.prompts import load_prompt

    v2 = tmp_path / "summarize-v2.txt"
    original = load_prompt("summarize").sections
    v2.write_text(
        "".join(f"### {k}\n{v}\n" for k, v in original.items()).replace("single caption", "one caption")
    )
    with FakeServer() as server:
        caption_stage(cmu_run, _cfg(server), progress=False)
        assert len(server.log) == 36
        caption_stage(cmu_run, _cfg(server, summarize=AgentConfig(prompt_version=str(v2))), progress=False)
        assert [e["agent"] for e in server.log[36:]] == ["summarize"] * 12
        caption_stage(
            cmu_run,
            _cfg(
                server, summarize=AgentConfig(prompt_version=str(v2)), revise=AgentConfig(model="other-vlm")
            ),
            progress=False,
        )
        agents = [e["agent"] for e in server.log[48:]]
        assert sorted(set(agents)) == ["revise", "summarize"] and len(agents) == 24
    records = load_caption_records(cmu_run)
    assert all(r["models"]["revise"] == "other-vlm" for r in records)
    assert all(r["prompt_versions"]["summarize"] == str(v2) for r in records)
    with Journal(cmu_run.journal) as journal:
        assert journal.count(agent="describe") == 12  # describe never re-ran
        assert journal.count() == 36 + 12 + 24


def test_limit_and_bad_input_rows(cmu_run, tmp_path):
    with FakeServer() as server:
        summary = caption_stage(cmu_run, _cfg(server), limit=3, progress=False)
        assert summary["done"] == 3 and len(load_caption_records(cmu_run)) == 3
        assert cmu_run.stage_status("caption") is None  # a partial run does not mark the stage done
    with pytest.raises(FileNotFoundError, match="pathgen select"):
        caption_stage(
            type(cmu_run)(tmp_path / "empty"), CaptionConfig(model="x", base_url="http://127.0.0.1:9/v1")
        )
