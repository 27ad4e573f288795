"""`pathgen instruct`: exported pairs -> checked conversations and MCQs, through the engine and journal.

Each (pair, kind) is one journalled agent call (:class:`pathgen.engine.journal.Journal`, keyed on the
pair, the kind, the prompt's version and text, the model and the sampling), so a re-run resumes,
a finished item is never asked again, and changing a prompt re-asks only that kind. Transport
failures are retried by the engine; failed checks are re-asked, then rejected with the reason
(``rejections.json``). With ``support: judge`` the answer's grounding is decided by an LLM judge
(:mod:`pathgen.instruct.judge`) asked through the same caller, its verdicts journalled too. Outputs
are rebuilt from the journal at the end of every run, so they always reflect every item finished
so far.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pathgen.config import InstructConfig, dump_section
from pathgen.engine.caller import Caller, Stats
from pathgen.engine.journal import FlushWindow, Journal, call_key
from pathgen.engine.retry import RetryPolicy
from pathgen.engine.runner import GracefulStop, Interrupted, run_pool
from pathgen.instruct import formats, templates
from pathgen.instruct.agents import ConversationAgent, InstructAgent, MCQAgent, Pair, load_instruct_prompt
from pathgen.instruct.judge import Judge, load_judge_prompt, reason_code
from pathgen.models.generators import GenerationError, GenerationParams, Generator, load_generator
from pathgen.rundir import fingerprint

AGENTS: dict[str, type[InstructAgent]] = {"conversation": ConversationAgent, "mcq": MCQAgent}


def split_of(pairs: list[Pair], test_fraction: float, seed: int) -> dict[str, str]:
    """``train`` or ``test`` per pair, by slide when there are enough slides (no slide on both sides),
    else by pair; seeded and stable (a pair keeps its split when others are added)."""
    slides = {p.wsi_id for p in pairs}
    by_slide = test_fraction > 0 and len(slides) * test_fraction >= 1
    out = {}
    for p in pairs:
        u = templates.rng_for("split", seed, p.wsi_id if by_slide else p.key).random()
        out[p.key] = "test" if u < test_fraction else "train"
    return out


def build_agents(
    cfg: InstructConfig, generator: Generator, judge: Generator | None = None
) -> list[InstructAgent]:
    """The agents of ``cfg.kinds``; with ``support: judge``, sharing one judge asked through ``judge``."""
    params = GenerationParams(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed
    )
    shared = None
    if cfg.support == "judge":
        shared = Judge(load_judge_prompt(), judge or generator, seed=cfg.seed)
    return [AGENTS[kind](load_instruct_prompt(kind), generator, params, cfg, shared) for kind in cfg.kinds]


def _params_fp(agent: InstructAgent, cfg: InstructConfig) -> str:
    p = agent.params
    checks: tuple[object, ...] = (
        cfg.min_turns, cfg.max_turns, cfg.min_options, cfg.max_options, cfg.min_support, cfg.support,
    )  # fmt: skip
    if agent.judge is not None:  # a judged item is re-asked when the judge changes
        checks = (*checks, agent.judge.identity)
    return fingerprint(p.temperature, p.top_p, p.max_tokens, p.seed, p.extra_body, checks)


def _offline(spec: str, base_url: str | list[str] | None) -> bool:
    """Whether a spec names the offline demo model (``tiny`` without a server: it cannot write JSON)."""
    return spec.strip() == "tiny" and not base_url


def check_judge(cfg: InstructConfig, generator: Generator | None = None) -> None:
    """Refuse ``support: judge`` with the offline demo model before any work: its answers are not JSON,
    so it cannot judge, and its items are templates that never reach a judge."""
    if cfg.support != "judge":
        return
    judge = cfg.judge_model or cfg.model
    writer_offline = generator.offline_demo if generator is not None else _offline(cfg.model, cfg.base_url)
    judge_offline = _offline(cfg.judge_model, cfg.base_url) if cfg.judge_model else writer_offline
    if writer_offline or judge_offline:
        raise ValueError(
            "support='judge' needs a real LLM (one that answers JSON) for generation and judging; "
            f"model {cfg.model!r} / judge_model {judge!r} is the offline demo model. "
            "Use support='overlap' with 'tiny', or give --model/--judge-model with --base-url"
        )


def instruct_stage(
    run: Path,
    out: Path,
    cfg: InstructConfig,
    *,
    generator: Generator | None = None,
    progress: bool = True,
    limit: int | None = None,
    answer_style: str = "letter",
) -> dict[str, Any]:
    """Write every output under ``out``; returns the card plus the run's call summary."""
    out = Path(out)
    if cfg.min_turns > cfg.max_turns or cfg.min_options > cfg.max_options:
        raise ValueError("min_turns/min_options must not exceed max_turns/max_options")
    check_judge(cfg, generator)
    out.mkdir(parents=True, exist_ok=True)
    pairs = list(_limited(_read(run, out), limit))
    if not pairs:
        raise ValueError(f"{run}: no exported pairs with a caption")
    own = generator is None
    if generator is None:
        generator = load_generator(
            cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
        )  # fmt: skip
    judge = None
    if cfg.support == "judge" and cfg.judge_model and cfg.judge_model != cfg.model:
        judge = load_generator(
            cfg.judge_model, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
        )  # fmt: skip
    agents = build_agents(cfg, generator, judge)
    closing = [g for g in (generator if own else None, judge) if g is not None]
    summary = asyncio.run(_run(out, pairs, agents, cfg, closing, progress))
    rows = _final_rows(out, pairs, agents, cfg)
    meta = {"source": str(run), "model": generator.name}
    if agents and agents[0].judge is not None:
        meta["judge"] = agents[0].judge.generator.name
    return _write(out, pairs, rows, cfg, meta, summary, answer_style)


def _read(run: Path, out: Path) -> Any:
    from pathgen.instruct.source import read_pairs

    return read_pairs(Path(run), out)


def _limited(pairs: Any, limit: int | None) -> Any:
    for i, p in enumerate(pairs):
        if limit is not None and i >= limit:
            return
        yield p


def _keys(pairs: list[Pair], agents: list[InstructAgent], cfg: InstructConfig) -> dict[tuple[str, str], str]:
    out = {}
    for agent in agents:
        fp = _params_fp(agent, cfg)
        for p in pairs:
            out[(p.key, agent.kind)] = call_key(
                p.key, agent.kind, agent.prompt.id, agent.generator.name, fp, ""
            )
    return out


async def _run(
    out: Path,
    pairs: list[Pair],
    agents: list[InstructAgent],
    cfg: InstructConfig,
    closing: list[Generator],
    progress: bool,
) -> dict[str, Any]:
    keys = _keys(pairs, agents, cfg)
    journal = Journal(out / "journal.sqlite")
    for agent in agents:
        if agent.judge is not None:
            agent.judge.bind(journal)
    known = journal.get_many(keys.values())
    todo = [(p, a) for a in agents for p in pairs if keys[(p.key, a.kind)] not in known]
    stats = Stats(total=len(pairs) * len(agents), skipped=len(pairs) * len(agents) - len(todo))
    caller = Caller(cfg.concurrency, RetryPolicy.of(cfg), stats)  # type: ignore[arg-type]
    stop = GracefulStop(cfg.stop_grace_s, caller.stop, lambda: stats.in_flight)
    loop = asyncio.get_running_loop()
    window = FlushWindow(journal, 0.02, loop)

    async def one(job: tuple[Pair, InstructAgent]) -> None:
        pair, agent = job
        key = keys[(pair.key, agent.kind)]
        row = {
            "key": key, "tile_id": pair.key, "agent": agent.kind, "prompt_version": agent.prompt.id,
            "model": agent.generator.name, "params": _params_fp(agent, cfg), "upstream": "",
        }  # fmt: skip
        try:
            outcome = await agent.run(pair, caller, key)  # type: ignore[arg-type]
        except GenerationError as exc:
            journal.put({**row, "status": "error", "output": "", "error": str(exc)[:1000]})
            stats.failed += 1
            return
        journal.put(
            {
                **row, "status": outcome.status, "output": outcome.output, "data": outcome.data,
                "flags": outcome.flags, "error": outcome.error, "attempts": outcome.attempts,
                "reasks": outcome.reasks, "latency": round(outcome.latency, 4),
                "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out,
            }
        )  # fmt: skip
        stats.done += 1
        if outcome.status == "rejected":
            stats.failed += 1
            stats.reasons[f"rejected:{agent.kind}:{reason_code(outcome.error)}"] += 1

    pool = asyncio.ensure_future(
        run_pool(todo, one, cfg.concurrency, stats, progress=progress, should_stop=lambda: stop.requested)
    )
    stop.install(loop, pool)
    try:
        await pool
    except asyncio.CancelledError:
        if not (pool.cancelled() and stop.requested):
            raise
    finally:
        stop.restore()
        window.close()
        journal.close()
        for generator in closing:
            await generator.aclose()
    if stop.signum is not None:
        raise Interrupted(stop.signum, journal.written, stats.done + stats.skipped, stats.total, stop.forced)
    return stats.summary()


def _final_rows(
    out: Path, pairs: list[Pair], agents: list[InstructAgent], cfg: InstructConfig
) -> dict[tuple[str, str], dict[str, Any]]:
    keys = _keys(pairs, agents, cfg)
    with Journal(out / "journal.sqlite") as journal:
        rows = journal.get_many(keys.values())
    return {pk: rows[k] for pk, k in keys.items() if k in rows}


def _write(
    out: Path,
    pairs: list[Pair],
    rows: dict[tuple[str, str], dict[str, Any]],
    cfg: InstructConfig,
    meta: dict[str, Any],
    summary: dict[str, Any],
    answer_style: str,
) -> dict[str, Any]:
    conversations, mcqs, rejections = [], [], []
    for p in pairs:
        base = {**asdict(p), "id": p.key}
        for kind in cfg.kinds:
            row = rows.get((p.key, kind))
            if row is None:
                continue
            if row["status"] == "rejected":
                rejections.append(
                    {"id": p.key, "kind": kind, "reason": row["error"], "output": row["output"]}
                )
            elif row["status"] == "ok" and row.get("data"):
                item = {**base, **row["data"], "flags": row.get("flags") or []}
                (conversations if kind == "conversation" else mcqs).append(item)
    splits = split_of(pairs, cfg.test_fraction, cfg.seed or 0)
    placed = formats.place_answers(mcqs, cfg.seed or 0)
    settings = {k: v for k, v in dump_section(cfg).items() if k not in ("api_key_env",)}
    info = formats.write_outputs(
        out, conversations, placed, rejections, splits,
        {**meta, "settings": settings, "answer_style": answer_style, "calls": summary},
        answer_style=answer_style, pairs=[{**asdict(p), "id": p.key} for p in pairs if p.image],
    )  # fmt: skip
    return info


def instruct_from_classes(
    folder: Path,
    out: Path,
    names: dict[str, str] | None = None,
    n_options: int = 4,
    test_fraction: float = 0.25,
    seed: int = 0,
    question: str = "Which tissue type is shown in this image?",
    answer_style: str = "letter",
    image_transform: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Closed tissue-class questions from a labelled folder (no LLM): the answer is the image's
    class, the distractors other classes; held out by image. Images are copied to ``out/images``."""
    from pathgen.instruct.source import labelled_images

    out = Path(out)
    items = labelled_images(folder)
    classes = sorted({c for c, _ in items})
    names = {c: (names or {}).get(c, c) for c in classes}
    pairs, mcqs = [], []
    for cls, path in items:
        rel = f"{cls}/{path.stem}.png"
        dest = out / "images" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if image_transform is None:
            shutil.copyfile(path, dest)
        else:
            from PIL import Image

            image_transform(Image.open(path).convert("RGB")).save(dest)
        key = f"{cls}-{path.stem}"
        pair = Pair(key=key, wsi_id=cls, x=0, y=0, caption=names[cls], description=names[cls], image=rel)
        pair_item = {**asdict(pair), "id": key, "project": "classes", "flags": ["template:class"]}
        pairs.append(pair)
        mcqs.append({**pair_item, **templates.class_mcq(key, cls, names, n_options, question, seed)})
    splits = {p.key: s for p, s in zip(pairs, _split_by_key(pairs, test_fraction, seed), strict=True)}
    placed = formats.place_answers(mcqs, seed)
    return formats.write_outputs(
        out, [], placed, [], splits,
        {"source": str(folder), "model": "template:class", "answer_style": answer_style},
        answer_style=answer_style, pairs=[{**asdict(p), "id": p.key} for p in pairs],
    )  # fmt: skip


def _split_by_key(pairs: list[Pair], test_fraction: float, seed: int) -> list[str]:
    return [
        "test" if templates.rng_for("split", seed, p.key).random() < test_fraction else "train" for p in pairs
    ]
