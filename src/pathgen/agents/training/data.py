"""`pathgen agents data`: the describe, revise and summarize training sets of a run, in one folder.

The folder is written beside ``--out`` and swapped in when complete
(:func:`pathgen.rundir.replacing_dir`): a failure or Ctrl-C leaves the previous version (or
nothing), never a half-written set. Layout::

    OUT/manifest.json             counts, splits (slides per split), sources, settings
    OUT/problems.jsonl            one row per input skipped, with the reason
    OUT/images/<id>.png           each patch once, shared by the sets
    OUT/<agent>/llava_<split>.json, chat_<split>.jsonl, hf/<split>.parquet
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathgen.agents.training.config import AgentDataConfig
from pathgen.agents.training.formats import write_agent_set
from pathgen.agents.training.sets import build_records, split_slides
from pathgen.agents.training.sources import Item, problem
from pathgen.rundir import atomic_path, atomic_write, replacing_dir, write_json


def build_agent_data(
    items: Sequence[Item],
    out: str | Path,
    cfg: AgentDataConfig | None = None,
    problems: Sequence[dict[str, Any]] = (),
    sources: dict[str, Any] | None = None,
    inject: Any = None,
) -> dict[str, Any]:
    """Write the three sets of ``items`` to ``out`` (atomically); returns the manifest.

    ``inject``: a generator asked for one LLM-made error of each kind per description, recorded
    and added to the revise set beside the rule-made ones (:mod:`pathgen.agents.training.inject`).
    """
    cfg = cfg or AgentDataConfig()
    problems = list(problems)
    if not items:
        raise ValueError("no usable descriptions: nothing to build (see the problems reported)")
    out = Path(out)
    with replacing_dir(out) as tmp:
        image_of: dict[str, str] = {}
        usable: list[Item] = []
        for item in items:
            name = f"images/{hashlib.sha256(item.key.encode()).hexdigest()[:16]}.png"
            try:
                image = item.load_image()
                if cfg.image_size and max(image.size) != cfg.image_size:
                    image = image.resize((cfg.image_size, cfg.image_size))
                (tmp / "images").mkdir(exist_ok=True)
                with atomic_path(tmp / name) as path:
                    image.save(path, format="PNG")
            except Exception as exc:  # one unreadable patch is a problem row, not the end of the run
                problems.append(problem(None, item.key, f"image unreadable: {type(exc).__name__}: {exc}"))
                continue
            image_of[item.key] = name
            usable.append(item)
        if not usable:
            raise ValueError("no description has a readable image: nothing to build")
        injected = None
        if inject is not None:
            from pathgen.agents.training.inject import llm_corruptions

            injected, inject_problems = llm_corruptions(usable, inject)
            problems.extend(inject_problems)
        splits = split_slides([i.slide_id for i in usable], cfg.validation_fraction, cfg.seed)
        records = build_records(
            usable, splits, image_of, copies=cfg.copies, clean_copies=cfg.clean_copies,
            prompt_version=cfg.prompt_version, context_length=cfg.context_length, seed=cfg.seed,
            injected=injected,
        )  # fmt: skip
        counts = {agent: write_agent_set(recs, tmp, agent) for agent, recs in records.items()}
        kinds = Counter(r["meta"]["kind"] for r in records["revise"])
        revise_corruptions = [c for r in records["revise"] for c in r["meta"]["corruptions"]]
        by_llm = sum(c["source"] == "llm" for c in revise_corruptions)
        manifest = {
            "counts": counts,
            "revise_kinds": dict(sorted(kinds.items())),
            "revise_llm_injected": by_llm,
            "slides": {s: sorted(k for k, v in splits.items() if v == s) for s in ("train", "validation")},
            "items": len(usable),
            "problems": len(problems),
            "problem_reasons": dict(Counter(p["reason"].split(":")[0] for p in problems)),
            "sources": sources or {},
            "settings": cfg.model_dump(),
            "formats": ["llava", "hf", "chat"],
        }
        write_json(tmp / "manifest.json", manifest)
        atomic_write(tmp / "problems.jsonl", "".join(json.dumps(p) + "\n" for p in problems))
    return manifest


def agent_data_from_run(
    run_root: str | Path,
    out: str | Path,
    cfg: AgentDataConfig | None = None,
    *,
    descriptions: str | Path | None = None,
    teacher: Any = None,
    inject: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the sets of a run from a description file, a teacher (a CaptionConfig naming its
    model), or, without either, from the run's own finished captions."""
    from pathgen.agents.training.sources import (
        load_descriptions,
        run_captions,
        run_tiles,
        teacher_descriptions,
    )
    from pathgen.rundir import RunDir

    cfg = cfg or AgentDataConfig()
    run = RunDir(run_root)
    tiles = run_tiles(run) if run.selected.exists() else {}
    sources: dict[str, Any] = {}
    if descriptions is not None:
        items, problems = load_descriptions(descriptions, tiles, cfg.image_size)
        sources["describe"] = {"kind": "imported", "file": str(Path(descriptions).resolve())}
    elif teacher is not None:
        if not tiles:
            raise FileNotFoundError(f"{run.selected} not found: run `pathgen select` first")
        items, problems, summary = teacher_descriptions(
            run, list(tiles.values()), teacher, cfg.image_size, progress
        )
        sources["describe"] = {"kind": "teacher", **summary}
    own, own_problems = run_captions(run, tiles, cfg.image_size) if tiles else ([], [])
    if descriptions is None and teacher is None:
        if not own:
            raise ValueError(f"{run.root} has no finished captions: give --teacher-model or --descriptions")
        items, problems = own, own_problems
        sources["describe"] = {"kind": "run"}
    # The run's own summaries that passed the checks are the summarize targets where they exist.
    captions = {i.key: i.caption for i in own if i.caption}
    for item in items:
        item.caption = item.caption or captions.get(item.key)
    return build_agent_data(items, out, cfg, problems, sources, inject)
