"""The glue between stages: the tile record caption reads, and the one function for chain keys."""

from __future__ import annotations

import pyarrow.parquet as pq

from pathgen.agents.chain import AgentSlot, CaptionChain, chain_keys
from pathgen.agents.inputs import load_tasks
from pathgen.agents.results import load_caption_records
from pathgen.agents.stage import build_agents, caption_stage
from pathgen.config import CaptionConfig
from pathgen.engine.caller import Stats
from pathgen.engine.fakeserver import FakeServer, ServerConfig
from pathgen.engine.journal import Journal
from pathgen.records import CaptionTile
from pathgen.rundir import write_parquet
from pathgen.slides import patches


def _cfg(server: FakeServer) -> CaptionConfig:
    return CaptionConfig(
        model="fake-vlm",
        base_url=server.base_url,
        image_size=96,
        backoff_s=0.01,
        timeout_s=2.0,
        concurrency=4,
    )


def _record_reader(run, reader: str) -> None:
    """Rewrite slides.parquet as the tile stage writes it when a slide was opened by ``reader``."""
    rows = pq.read_table(run.slides).to_pylist()
    write_parquet([{**r, "reader": reader, "mpp": 0.499} for r in rows], run.slides)


def test_caption_reads_a_tile_with_the_reader_recorded_in_slides_parquet(make_cmu_run, cmu_small):
    run = make_cmu_run(3)
    _record_reader(run, "tiffslide")  # auto would open this SVS with OpenSlide
    tasks = load_tasks(run)
    assert all(isinstance(t, CaptionTile) for t in tasks)
    assert {(t.reader, t.slide_path, t.mpp) for t in tasks} == {("tiffslide", str(cmu_small), 0.499)}
    assert tasks[1].prompt is None and tasks[0].selection_prompt == "nests of atypical melanocytes"
    assert tasks[0].project == "TCGA-SKCM (skin)" and tasks[0].findings  # the report's findings

    patches._cache.clear()
    with FakeServer(ServerConfig(latency=(0.0, 0.0))) as server:
        summary = caption_stage(run, _cfg(server), progress=False)
    assert summary["done"] == 3 and summary["failed"] == 0
    opened = {key: handle.slide.reader for key, handle in patches._cache._open.items()}
    assert opened == {(str(cmu_small), "tiffslide"): "tiffslide"}  # not (path, auto) -> openslide
    patches._cache.clear()


def test_the_chain_journals_under_the_keys_results_reads(make_cmu_run):
    run = make_cmu_run(4)
    with FakeServer(ServerConfig(latency=(0.0, 0.0))) as server:
        cfg = _cfg(server)
        assert caption_stage(run, cfg, progress=False)["done"] == 4
        agents, _ = build_agents(cfg)
    slots = [AgentSlot.of(a, cfg.image_size) for a in agents]
    tasks = load_tasks(run)
    with Journal(run.journal) as journal:
        stored_chain = journal.get_meta("chain")
        rows = journal.rows()
    chain = CaptionChain(slots, journal, None, Stats(), lambda t: None, cfg.image_size)  # type: ignore[arg-type]
    written = {(r["tile_id"], r["agent"]): r["key"] for r in rows}
    for task in tasks:
        keys = chain_keys(task.tile_id, stored_chain)  # what results reads
        assert chain.keys(task.tile_id) == keys  # what the chain computes before work
        assert [written[(task.tile_id, a)] for a in ("describe", "revise", "summarize")] == keys
    assert [r["tile_id"] for r in load_caption_records(run)] == [t.tile_id for t in tasks]


def test_a_changed_upstream_prompt_changes_every_later_key():
    chain = [
        {"agent": "describe", "prompt_id": "v1@aa", "model": "m", "params": "p"},
        {"agent": "revise", "prompt_id": "v1@bb", "model": "m", "params": "p"},
        {"agent": "summarize", "prompt_id": "v1@cc", "model": "m", "params": "p"},
    ]
    keys = chain_keys("s:0:0:224", chain)
    changed = chain_keys("s:0:0:224", [{**chain[0], "prompt_id": "v2@dd"}, *chain[1:]])
    last_only = chain_keys("s:0:0:224", [*chain[:2], {**chain[2], "model": "other"}])
    assert len(set(keys)) == 3 and all(a != b for a, b in zip(keys, changed, strict=True))
    assert last_only[:2] == keys[:2] and last_only[2] != keys[2]
    assert chain_keys("s:0:0:448", chain) != keys
