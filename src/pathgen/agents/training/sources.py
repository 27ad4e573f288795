"""Where describe targets come from: a teacher model, the user's own file, or the run's captions.

Every source yields :class:`Item` rows (one patch, its slide, its true description and its context)
and a list of problems, one per row that could not be used (missing image, empty text, duplicate
key, a teacher answer that was rejected), so a bad row is reported and skipped, never fatal.

The teacher goes through the caption engine and journal (:func:`pathgen.agents.stage.drive_tiles`)
with the describe agent alone, journalled in ``RUN/agents_teacher.sqlite``: a re-run resumes and
never asks twice for the same (tile, prompt, model, sampling).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathgen.records import CaptionTile
from pathgen.rundir import RunDir

TEXT_COLUMNS = ("text", "description", "caption")
TEACHER_JOURNAL = "agents_teacher.sqlite"


@dataclass
class Item:
    """One patch with a true description: what all three training sets are built from."""

    key: str  # tile_id, or the image path for imported images
    slide_id: str
    text: str
    load_image: Callable[[], Any] = field(repr=False)  # -> PIL RGB image
    project: str | None = None
    findings: tuple[str, ...] = ()
    selection_prompt: str | None = None
    caption: str | None = None  # a summary that passed the chain's checks, when the run has one
    source: str = "imported"  # teacher | imported | run

    def __post_init__(self) -> None:
        self.text = " ".join(self.text.split())  # corruptions replay on single-spaced sentences

    def tile(self) -> CaptionTile:
        """The record the agents render their prompts from (the chain's own type)."""
        return CaptionTile(
            tile_id=self.key, slide_id=self.slide_id, x=0, y=0, size=0,
            project=self.project, findings=self.findings, prompt=self.selection_prompt,
        )  # fmt: skip


def problem(row: int | None, key: str | None, reason: str) -> dict[str, Any]:
    return {"row": row, "key": key, "reason": reason}


# -- imported descriptions -------------------------------------------------------------------------
def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON (a list of objects, or JSON lines) or parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if suffix in (".json", ".jsonl"):
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        if isinstance(data, dict):
            data = data.get("records") or data.get("data") or [data]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of objects")
        return [r if isinstance(r, dict) else {"_invalid": r} for r in data]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise ValueError(
        f"{path}: descriptions must be .csv, .json, .jsonl or .parquet, not {suffix or 'no suffix'}"
    )


def _open_image(path: Path) -> Callable[[], Any]:
    def load() -> Any:
        from PIL import Image

        with Image.open(path) as img:
            return img.convert("RGB")

    return load


def _tile_image(tile: CaptionTile, size: int) -> Callable[[], Any]:
    return lambda: tile.read(size)


def load_descriptions(
    path: str | Path, tiles: dict[str, CaptionTile] | None = None, image_size: int = 448
) -> tuple[list[Item], list[dict[str, Any]]]:
    """Items of a description file: a ``tile_id`` of the run or an ``image`` path, plus the text.

    Image paths are relative to the file's folder unless absolute. ``slide_id`` (optional) groups
    imported images for the split; without it each image is its own group. Returns the usable
    items and one problem per row skipped (missing image or tile, empty text, duplicate key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"descriptions file not found: {path}")
    rows = read_table(path)
    tiles = tiles or {}
    items: list[Item] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=1):
        text = next((row.get(c) for c in TEXT_COLUMNS if row.get(c) is not None), None)
        tile_id = str(row.get("tile_id") or "").strip()
        image = str(row.get("image") or row.get("image_path") or row.get("path") or "").strip()
        key = tile_id or image or None
        if key is None:
            problems.append(problem(i, None, "no tile_id or image column value"))
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(problem(i, key, "empty text"))
            continue
        if tile_id:
            tile = tiles.get(tile_id)
            if tile is None:
                problems.append(problem(i, key, "tile_id not among the run's selected tiles"))
                continue
            full_key, loader = tile_id, _tile_image(tile, image_size)
            slide_id, project, findings = tile.slide_id, tile.project, tile.findings
            prompt = tile.prompt
        else:
            image_path = Path(image).expanduser()
            if not image_path.is_absolute():
                image_path = path.parent / image_path
            if not image_path.is_file():
                problems.append(problem(i, key, f"image not found: {image_path}"))
                continue
            full_key, loader = str(image_path.resolve()), _open_image(image_path)
            slide_id = str(row.get("slide_id") or row.get("wsi_id") or full_key)
            project, findings, prompt = row.get("project") or None, (), None
            if isinstance(row.get("findings"), str) and row["findings"].strip():
                findings = tuple(s.strip() for s in row["findings"].split(";") if s.strip())
        if full_key in seen:
            problems.append(problem(i, key, "duplicate key (an earlier row has this tile or image)"))
            continue
        seen.add(full_key)
        items.append(
            Item(
                full_key,
                slide_id,
                " ".join(text.split()),
                loader,
                project,
                findings,
                prompt,
                None,
                "imported",
            )
        )
    return items, problems


# -- the run's own captions --------------------------------------------------------------------------
def run_tiles(run: RunDir) -> dict[str, CaptionTile]:
    from pathgen.agents.inputs import load_tasks

    return {t.tile_id: t for t in load_tasks(run)}


def run_captions(
    run: RunDir, tiles: dict[str, CaptionTile], image_size: int
) -> tuple[list[Item], list[dict[str, Any]]]:
    """Items from the run's finished chains: the revised description, and the caption when it fit."""
    from pathgen.agents.results import load_caption_records

    items, problems = [], []
    for rec in load_caption_records(run):
        tile = tiles.get(rec["tile_id"])
        text = (rec.get("revision") or {}).get("revised") or rec.get("description") or ""
        if tile is None or rec["status"] == "rejected" or not text.strip():
            problems.append(problem(None, rec["tile_id"], f"caption record not usable ({rec['status']})"))
            continue
        caption = rec["caption"] if rec["status"] == "ok" else None
        items.append(
            Item(tile.tile_id, tile.slide_id, text, _tile_image(tile, image_size), tile.project,
                 tile.findings, tile.prompt, caption, "run")
        )  # fmt: skip
    return items, problems


# -- the teacher -----------------------------------------------------------------------------------
def teacher_descriptions(
    run: RunDir,
    tiles: Sequence[CaptionTile],
    cfg: Any,
    image_size: int,
    progress: bool = True,
) -> tuple[list[Item], list[dict[str, Any]], dict[str, Any]]:
    """Describe every tile with the teacher (``cfg``: a CaptionConfig naming it), journalled.

    The teacher is given the image and the slide's report findings and project, as PathGen's
    teacher was. Returns items, problems (rejected or failed tiles) and the engine's summary.
    """
    from pathgen.agents.chain import AgentSlot, chain_keys
    from pathgen.agents.describe import DescribeAgent
    from pathgen.agents.prompts import load_prompt
    from pathgen.agents.stage import drive_tiles, resolve_agent, tile_loader, warm_up
    from pathgen.engine.caller import Caller, Stats
    from pathgen.engine.journal import Journal
    from pathgen.engine.retry import RetryPolicy
    from pathgen.models.generators import GenerationParams, load_generator

    spec = resolve_agent(cfg, "describe")
    urls = spec["base_url"]
    generator = load_generator(
        spec["model"], base_url=[urls] if isinstance(urls, str) else list(urls or []),
        api_key_env=cfg.api_key_env, image_size=cfg.image_size, concurrency=cfg.concurrency,
        timeout_s=cfg.timeout_s, transport=cfg.transport, structured_output=cfg.structured_output,
    )  # fmt: skip
    params = GenerationParams(
        temperature=spec["temperature"], top_p=spec["top_p"], max_tokens=spec["max_tokens"],
        seed=cfg.seed, extra_body=dict(cfg.extra_body),
    )  # fmt: skip
    agent = DescribeAgent(load_prompt("describe", spec["prompt_version"]), generator, params, cfg.max_reasks)
    slots = [AgentSlot.of(agent, cfg.image_size)]
    warm_up(slots)
    stats = Stats(total=len(tiles))

    async def go() -> None:
        caller = Caller(cfg.concurrency, RetryPolicy.of(cfg), stats)
        journal = Journal(run.root / TEACHER_JOURNAL)
        try:
            journal.set_meta("chain", [s.describe() for s in slots])
            await drive_tiles(
                journal, cfg, list(tiles), slots, caller, stats, tile_loader(cfg.image_size), progress,
                should_stop=lambda: False, started=lambda pool: None,
            )  # fmt: skip
        finally:
            journal.close()
            await generator.aclose()

    asyncio.run(go())
    chain = [slots[0].describe()]
    with Journal(run.root / TEACHER_JOURNAL) as journal:
        keys = {t.tile_id: chain_keys(t.tile_id, chain)[0] for t in tiles}
        rows = journal.get_many(keys.values(), final_only=False)
    items, problems = [], []
    for tile in tiles:
        row = rows.get(keys[tile.tile_id])
        if row is None or row["status"] not in ("ok", "truncated") or not row["output"].strip():
            reason = (
                "no answer" if row is None else f"teacher {row['status']}: {row.get('error') or ''}".strip()
            )
            problems.append(problem(None, tile.tile_id, reason))
            continue
        items.append(
            Item(tile.tile_id, tile.slide_id, row["output"], _tile_image(tile, image_size), tile.project,
                 tile.findings, tile.prompt, None, "teacher")
        )  # fmt: skip
    summary = {**stats.summary(), "model": generator.name, "offline_demo": generator.offline_demo}
    return items, problems, summary
