"""``caption.engine: ray-vllm`` without a GPU: what can be checked here is the processor config, the
rows (OpenAI-style messages with image parts, sampling parameters), the pass loop with a
pure-Python pass in place of vLLM, and the error when vLLM is missing. vLLM itself never runs."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from pathgen.agents.results import load_caption_records
from pathgen.agents.stage import caption_stage
from pathgen.agents.stage_vllm import (
    TILE_SCHEME,
    drive_passes,
    postprocess,
    preprocess,
    processor_config,
)
from pathgen.config import CaptionConfig, RunConfig
from pathgen.engine.fakeserver import FakeServer, agent_of
from pathgen.engine.journal import Journal
from pathgen.executors.local import LocalExecutor

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


def _vllm_installed() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def test_config_section_and_processor_config():
    cfg = RunConfig.model_validate(
        {"caption": {"engine": "ray-vllm", "model": f"hf:{MODEL}",
                     "ray_vllm": {"engine_kwargs": {"max_model_len": 8192}, "batch_size": 16, "replicas": 4}}}
    ).caption  # fmt: skip
    pytest.importorskip("ray.data.llm", reason="the ray extra is not installed")
    config = processor_config(cfg, cfg.model)
    assert config.model_source == MODEL and config.batch_size == 16 and config.concurrency == 4
    assert config.engine_kwargs["max_model_len"] == 8192
    assert config.should_continue_on_error
    stage = config.prepare_multimodal_stage
    assert (stage["enabled"] if isinstance(stage, dict) else stage.enabled) is True
    with pytest.raises(ValueError, match="engine"):
        CaptionConfig(engine="vllm-local")


def _fake_pass(calls: list[tuple[str, list[dict[str, Any]]]]):
    """A pass that does what the processor's ends do (our preprocess, our postprocess) and answers
    in between like the fake server's agents: the loop, the re-asks and the journal are real."""

    def run_pass(model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append((model, rows))
        out = []
        for row in rows:
            ready = preprocess(row)
            text, _ = FakeServer._answer(agent_of({"messages": ready["messages"]}), None)
            out.append(postprocess({**ready, "generated_text": text, "num_input_tokens": 100,
                                    "num_generated_tokens": len(text) // 4}))  # fmt: skip
        return out

    return run_pass


def test_three_agents_run_as_successive_passes_with_image_rows_and_journal_through_the_driver(cmu_run):
    from pathgen.agents.chain import AgentSlot
    from pathgen.agents.inputs import load_tasks
    from pathgen.agents.stage import build_agents
    from pathgen.agents.stage_vllm import generator_factory

    cfg = CaptionConfig(engine="ray-vllm", model=MODEL, image_size=64)
    tasks = load_tasks(cmu_run)
    agents, _ = build_agents(cfg, make_generator=generator_factory(cfg))
    slots = [AgentSlot.of(a, cfg.image_size) for a in agents]
    calls: list[tuple[str, list[dict[str, Any]]]] = []
    summary = drive_passes(cmu_run, cfg, tasks, slots, None, _fake_pass(calls), None, "fp")
    n = len(tasks)
    assert summary["done"] == n and summary["failed"] == 0
    # describe, revise, summarize: one pass each over all tiles, in that order
    agents_of = [{agent_of({"messages": json.loads(r["messages_json"])}) for r in rows} for _, rows in calls]
    assert agents_of == [{"describe"}, {"revise"}, {"summarize"}]
    assert [len(rows) for _, rows in calls] == [n, n, n] and {m for m, _ in calls} == {MODEL}
    row = calls[0][1][0]
    messages = json.loads(row["messages_json"])
    assert [m["role"] for m in messages] == ["system", "user"]
    image, text = messages[1]["content"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith(TILE_SCHEME)
    assert text["type"] == "text" and "TCGA-SKCM" in text["text"]  # the slide's project reached the prompt
    assert json.loads(row["sampling_json"]) == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 512,
        "seed": 0,
    }
    url = preprocess(row)["messages"][1]["content"][0]["image_url"]["url"]  # read on the cluster
    from PIL import Image

    jpeg = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert url.startswith("data:image/jpeg;base64,") and jpeg.size == (64, 64)
    assert isinstance(json.loads(calls[2][1][0]["messages_json"])[1]["content"], str)  # summarize: text
    with Journal(cmu_run.journal) as journal:
        assert journal.count(status="ok") == 3 * n
    records = load_caption_records(cmu_run)
    assert len(records) == n and all(r["caption"] and r["status"] == "ok" for r in records)
    # resumes from the journal like the server engine: a second run makes no pass at all
    calls.clear()
    again = drive_passes(cmu_run, cfg, tasks, slots, None, _fake_pass(calls), None, "fp")
    assert calls == [] and again["skipped"] == n


@pytest.mark.skipif(_vllm_installed(), reason="vLLM is installed here")
def test_missing_vllm_fails_at_once_naming_pip_install_vllm(cmu_run):
    from pathgen.executors.ray_executor import RayExecutor

    cfg = CaptionConfig(engine="ray-vllm", model=MODEL)
    with pytest.raises(ValueError, match="pip install vllm"):
        caption_stage(cmu_run, cfg, progress=False, executor=RayExecutor())  # Ray is never started
    with pytest.raises(ValueError, match="--executor ray"):
        caption_stage(cmu_run, cfg, progress=False, executor=LocalExecutor())
    dry = caption_stage(cmu_run, cfg, dry_run=True)  # a dry run needs neither
    assert dry["calls"] == {"describe": 12, "revise": 12, "summarize": 12}
