"""The caption stage: every selected tile through describe -> revise -> summarize, journalled.

``caption_stage(run, cfg)`` is what `pathgen caption` and `pathgen run` call. It resolves each
agent's model and sampling (per-agent settings override the shared ones), shares one generator
between agents that use the same model and server, and drives the tiles through the chain with a
fixed pool of workers. Re-running it resumes from the journal; ``dry_run`` renders the prompts and
estimates tokens and cost without calling any model. Ctrl-C or SIGTERM stops it gracefully (the
calls in flight are waited for, up to ``stop_grace_s``, and journalled) and raises
:class:`~pathgen.engine.runner.Interrupted`.

With a Ray executor the same engine runs in several caption workers, each against its share of the
servers and of the tiles, each journalling into its own shard (:mod:`pathgen.agents.stage_ray`);
with ``engine: ray-vllm`` the model runs inside Ray Data instead (:mod:`pathgen.agents.stage_vllm`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pathgen.agents.base import Agent, TileContext
from pathgen.agents.chain import AgentSlot, CaptionChain, TileTask
from pathgen.agents.describe import DescribeAgent
from pathgen.agents.inputs import load_tasks
from pathgen.agents.prompts import load_prompt
from pathgen.agents.revise import ReviseAgent
from pathgen.agents.summarize import SummarizeAgent
from pathgen.config import CaptionConfig, dump_section
from pathgen.engine.caller import Caller, Stats
from pathgen.engine.journal import FlushWindow, Journal
from pathgen.engine.retry import RetryPolicy
from pathgen.engine.runner import GracefulStop, Interrupted, run_pool
from pathgen.executors import Executor
from pathgen.models.generators import GenerationParams, Generator, count_text_tokens, load_generator
from pathgen.rundir import RunDir, file_identity, fingerprint

AGENT_CLASSES: dict[str, type[Agent]] = {
    "describe": DescribeAgent,
    "revise": ReviseAgent,
    "summarize": SummarizeAgent,
}
# Dry-run guesses: image tokens of a LLaVA-1.5-style encoder, typical answer lengths per agent.
IMAGE_TOKENS = 576
TYPICAL_OUT = {"describe": 250, "revise": 320, "summarize": 70}
FLUSH_S = 0.02  # journal commit period: kill -9 loses at most this much of finished answers
UNFINGERPRINTED = ("stop_grace_s", "ray_workers")  # settings that never change a caption


def resolve_agent(cfg: CaptionConfig, name: str) -> dict[str, Any]:
    """An agent's effective settings: its own section, falling back to the shared ones."""
    own = getattr(cfg, name)
    pick = lambda field: getattr(own, field) if getattr(own, field) is not None else getattr(cfg, field)  # noqa: E731
    return {
        "model": pick("model"),
        "base_url": pick("base_url"),
        "temperature": pick("temperature"),
        "top_p": pick("top_p"),
        "max_tokens": pick("max_tokens"),
        "prompt_version": own.prompt_version or "v1",
    }


GeneratorFactory = Callable[[str, list[str]], Generator]


def build_agents(
    cfg: CaptionConfig, batch_size: int = 8, make_generator: GeneratorFactory | None = None
) -> tuple[list[Agent], list[Generator]]:
    """Agents in chain order, and the distinct generators they use (to close at the end).

    ``make_generator(model, base_urls)`` replaces :func:`load_generator` (the ray-vllm engine's
    batched generator)."""
    generators: dict[tuple[str, tuple[str, ...]], Generator] = {}
    agents: list[Agent] = []
    for name, cls in AGENT_CLASSES.items():
        spec = resolve_agent(cfg, name)
        urls = spec["base_url"]
        urls_t = (urls,) if isinstance(urls, str) else tuple(urls or ())
        gkey = (spec["model"], urls_t)
        if gkey not in generators and make_generator is not None:
            generators[gkey] = make_generator(spec["model"], list(urls_t))
        elif gkey not in generators:
            generators[gkey] = load_generator(
                spec["model"],
                base_url=list(urls_t),
                api_key_env=cfg.api_key_env,
                image_size=cfg.image_size,
                concurrency=cfg.concurrency,
                timeout_s=cfg.timeout_s,
                batch_size=batch_size,
                transport=cfg.transport,
                structured_output=cfg.structured_output,
            )
        params = GenerationParams(
            temperature=spec["temperature"],
            top_p=spec["top_p"],
            max_tokens=spec["max_tokens"],
            seed=cfg.seed,
            extra_body=dict(cfg.extra_body),
        )
        prompt = load_prompt(name, spec["prompt_version"])
        agents.append(cls(prompt, generators[gkey], params, cfg.max_reasks, cfg.context_length))
    return agents, list(generators.values())


def tile_loader(image_size: int) -> Callable[[TileTask], Any]:
    """Read a tile from its slide, at the size the model is sent (the default image loader)."""

    def load(task: TileTask) -> Any:
        return task.read(image_size)  # with the reader recorded for the slide

    return load


def caption_stage(
    run: RunDir,
    cfg: CaptionConfig,
    limit: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
    image_loader: Callable[[TileTask], Any] | None = None,
    *,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Caption the run's selected tiles; returns the summary (done / skipped / failed / up_to_date).

    ``image_loader(task)`` replaces reading the tile from its slide (pre-extracted patches, tests,
    benchmarks); it returns a PIL image or an already encoded :class:`ImagePart`.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    settings = {k: v for k, v in dump_section(cfg).items() if k not in UNFINGERPRINTED}
    fp = fingerprint("caption", settings, file_identity(run.selected))
    if limit is None and not dry_run and run.journal.exists() and run.stage_done("caption", fp):
        # Loading a model (or probing a server) takes seconds to minutes: skip it when the marker
        # says every selected tile was captioned with exactly these settings.
        last = (run.stage_status("caption") or {}).get("summary", {})
        idle = Stats(total=last.get("total", 0)).summary()
        return {
            **idle,
            "skipped": last.get("total", 0),
            "total": last.get("total", 0),
            "up_to_date": True,
            "chain": [],
            "offline_demo": last.get("offline_demo", False),
        }
    tasks = load_tasks(run, limit)
    factory = None
    if cfg.engine == "ray-vllm":
        from pathgen.agents.stage_vllm import generator_factory

        factory = generator_factory(cfg)
    agents, generators = build_agents(cfg, make_generator=factory)
    slots = [AgentSlot.of(a, cfg.image_size) for a in agents]
    if dry_run:
        try:
            return _dry_run(run, cfg, tasks, slots, generators)
        finally:
            asyncio.run(_close(generators))
    run.ensure()
    if cfg.engine == "ray-vllm":
        from pathgen.agents.stage_vllm import caption_with_vllm

        return caption_with_vllm(run, cfg, tasks, agents, slots, executor, image_loader, progress, limit, fp)
    if executor is not None and executor.name == "ray":
        from pathgen.agents.stage_ray import caption_with_workers

        asyncio.run(_close(generators))  # the workers build their own, against their servers
        return caption_with_workers(run, cfg, tasks, slots, executor, image_loader, progress, limit, fp)
    warm_up(slots)
    loader = image_loader or tile_loader(cfg.image_size)
    return asyncio.run(_run(run, cfg, tasks, slots, generators, limit, progress, loader, fp))


def warm_up(slots: list[AgentSlot]) -> None:
    """Import the heavy libraries (open_clip's tokenizer, slide readers) before the event loop
    starts: an import inside the loop would stall every call in flight for seconds."""
    from pathgen.agents.fit import clip_tokenizer

    if any(s.agent.name == "summarize" for s in slots):
        clip_tokenizer()
    import pathgen.slides  # noqa: F401


async def _run(
    run: RunDir,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    generators: list[Generator],
    limit: int | None,
    progress: bool,
    loader: Callable[[TileTask], Any],
    fp: str,
) -> dict[str, Any]:
    stats = Stats(total=len(tasks))
    policy = RetryPolicy.of(cfg)
    caller = Caller(cfg.concurrency, policy, stats)
    stop = GracefulStop(cfg.stop_grace_s, caller.stop, lambda: stats.in_flight)
    journal = Journal(run.journal)
    loop = asyncio.get_running_loop()
    try:
        journal.set_meta("chain", [s.describe() for s in slots])
        await drive_tiles(
            journal, cfg, tasks, slots, caller, stats, loader, progress,
            should_stop=lambda: stop.requested, started=lambda pool: stop.install(loop, pool),
        )  # fmt: skip
    finally:
        stop.restore()
        journal.close()  # flushes what is left
        for gen in generators:
            await gen.aclose()
    if stop.signum is not None:
        raise Interrupted(stop.signum, journal.written, stats.done + stats.skipped, len(tasks), stop.forced)
    return finish(run, stats.summary(), len(tasks), slots, any(g.offline_demo for g in generators), limit, fp)


async def drive_tiles(
    journal: Journal,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    caller: Caller,
    stats: Stats,
    loader: Callable[[TileTask], Any],
    progress: bool,
    should_stop: Callable[[], bool],
    started: Callable[[asyncio.Future[Any]], Any],
) -> None:
    """The engine of one process: the tiles through the chain with a fixed pool of workers,
    answers committed to ``journal`` every few ms. ``started(pool)`` sees the pool's future (a
    signal handler or a worker's stop cancels it); a cancel after ``should_stop()`` ends quietly."""
    chain = CaptionChain(slots, journal, caller, stats, loader, cfg.image_size)
    chain.preload(tasks)
    workers = cfg.concurrency + max(4, cfg.concurrency // 8)
    window = FlushWindow(journal, FLUSH_S, asyncio.get_running_loop())
    pool = asyncio.ensure_future(
        run_pool(tasks, chain.run_tile, workers, stats, progress=progress, should_stop=should_stop)
    )
    started(pool)
    try:
        await pool
    except asyncio.CancelledError:
        if not (pool.cancelled() and should_stop()):
            raise  # cancelled from outside, not by a stop request
    finally:
        window.close()


def finish(
    run: RunDir,
    summary: dict[str, Any],
    total: int,
    slots: list[AgentSlot],
    offline_demo: bool,
    limit: int | None,
    fp: str,
) -> dict[str, Any]:
    """The stage's summary; the stage marker when every selected tile finished."""
    summary.update(
        total=total,
        up_to_date=summary["done"] == 0 and summary["failed"] == 0,
        chain=[s.describe() for s in slots],
        offline_demo=offline_demo,
    )
    if (
        limit is None
        and summary["failed"] == 0
        and not (summary["up_to_date"] and run.stage_done("caption", fp))
    ):
        run.mark_stage("caption", fp, {k: v for k, v in summary.items() if k != "chain"})
    return summary


def _dry_run(
    run: RunDir,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    generators: list[Generator],
) -> dict[str, Any]:
    """Render every pending tile's first prompt, count tokens, estimate cost; call nothing."""
    pending: dict[str, int] = {s.agent.name: 0 for s in slots}
    tok_in = tok_out = 0
    samples: dict[str, str] = {}
    chain = CaptionChain(slots, _NullJournal(), None, Stats(), lambda t: None, cfg.image_size)  # type: ignore[arg-type]
    if run.journal.exists():
        with Journal(run.journal) as journal:
            chain.known = journal.get_many(k for t in tasks for k in chain.keys(t.tile_id))
    # The earlier agents' answers do not exist yet: the prompts show a marker in their place, and
    # the token count adds a typical answer's length for each marker.
    placeholder = {
        "describe": f"[dry run: the describe agent's answer, ~{TYPICAL_OUT['describe']} tokens]",
        "revise": f"[dry run: the revise agent's revised text, ~{TYPICAL_OUT['describe']} tokens]",
    }
    for task in tasks:
        start = chain.pending_from(task)
        if start is None:
            continue
        ctx = TileContext(task)
        ctx.description, ctx.revised = placeholder["describe"], placeholder["revise"]
        for slot in slots[start:]:
            agent = slot.agent
            messages = agent.first_messages(ctx)
            text = "\n".join(
                m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in messages
            )
            pending[agent.name] += 1
            tok_in += count_text_tokens(text) + (IMAGE_TOKENS if agent.uses_image else 0)
            tok_in += TYPICAL_OUT["describe"] * sum(text.count(p) for p in placeholder.values())
            tok_out += TYPICAL_OUT[agent.name]
            if agent.name not in samples:
                samples[agent.name] = "\n\n".join(
                    f"[{m['role']}]\n{m['content'] if isinstance(m['content'], str) else '<image>'}"
                    for m in messages
                )
    cost = tok_in / 1e6 * cfg.price_in_per_mtok + tok_out / 1e6 * cfg.price_out_per_mtok
    return {
        "done": 0,
        "skipped": len(tasks) - sum(1 for t in tasks if chain.pending_from(t) is not None),
        "failed": 0,
        "up_to_date": sum(pending.values()) == 0,
        "dry_run": True,
        "tiles": len(tasks),
        "calls": pending,
        "tokens_in_est": tok_in,
        "tokens_out_est": tok_out,
        "cost_est": round(cost, 4),
        "sample_prompts": samples,
        "chain": [s.describe() for s in slots],
    }


async def _close(generators: list[Generator]) -> None:
    for gen in generators:
        await gen.aclose()


class _NullJournal:
    def put(self, row: dict[str, Any]) -> None:  # pragma: no cover - dry runs never write
        raise RuntimeError("dry run must not write the journal")
