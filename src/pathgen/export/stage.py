"""The export stage: a captioned run becomes ``RUN/export/``, the dataset people train on.

Reads the caption records (``pathgen.agents.results.load_caption_records``) and ``slides.parquet``,
reads every exported patch once more from its slide through ``pathgen.slides.read_tile`` at
``cfg.image_size``, and writes shards, ``index.parquet``, ``pathgen.json``, the card and the gallery.
Each shard is one item of the run's executor (:mod:`pathgen.export.sharding`: local threads or
Ray tasks), and the bytes are the same whichever ran them. The stage is fingerprinted on the
exported records, the slide files and the config: a re-run with the same inputs touches nothing and
says so. A patch that cannot be read becomes an error row in ``export/errors.json`` and the export
goes on (its shard holds one sample fewer); a shard whose task failed as a whole becomes an empty
shard and error rows for its patches, and the stage is then not marked done, so a re-run writes it.
When no pair at all can be exported the stage raises :class:`ExportError` and leaves the previous
export as it was. The new export is written beside the
old one and swapped in whole (:func:`pathgen.export.dataset.staged_dataset`), and the stage marker
is removed before anything is written: a killed export leaves the previous export complete and is
never taken for up to date.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pathgen.config import ExportConfig, dump_section
from pathgen.executors import Executor
from pathgen.executors.local import LocalExecutor
from pathgen.export.dataset import check_dataset_folder, dataset_complete, finish_dataset, staged_dataset
from pathgen.export.reading import Patch
from pathgen.export.records import build_meta, exportable, slide_rows, sort_records
from pathgen.export.sharding import PatchItem, write_sharded
from pathgen.rundir import RunDir, file_identity, fingerprint, write_json

STAGE = "export"
EXPORT_SCHEMA = 1
SHOWN_ERRORS = 3


class ExportError(ValueError):
    """No pair could be exported; the previous ``RUN/export/`` was left untouched.

    A ValueError so that ``pathgen run`` reports it as a failed stage like any other bad input.
    """


def _nothing_exported(errors: list[dict[str, Any]], skipped: Mapping[str, int], out: Path) -> ExportError:
    """The error of an export that would write 0 pairs, with the first few reasons."""
    kept = f"{out} was left as it was" if out.exists() else f"nothing was written to {out}"
    if errors:
        first = "; ".join(f"{e['tile_id']}: {e['error']}" for e in errors[:SHOWN_ERRORS])
        more = f" (and {len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
        return ExportError(
            f"every patch read failed ({len(errors)}), so {kept}; first errors: {first}{more}. "
            "Slide paths come from slides.parquet; if they are relative, re-run `pathgen tile` "
            "or run from the directory it was run in"
        )
    reasons = ", ".join(f"{k} {v}" for k, v in skipped.items()) or "no captioned tile"
    return ExportError(f"no pair to export ({reasons}), so {kept}")


def _digest_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("tile_id", "slide_id", "x", "y", "size", "caption", "description", "revision", "status")
    keys += ("reviewed", "reviewer")
    out = {k: record.get(k) for k in keys}
    out.update({k: record.get(k) for k in ("flags", "models", "prompt_versions")})
    return out


def select_records(
    records: list[Mapping[str, Any]], slides: Mapping[str, Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], Counter]:
    """The records that go into the dataset, in tiles order, and counts of the others by reason."""
    kept: list[Mapping[str, Any]] = []
    skipped: Counter = Counter()
    for record in sort_records(records):
        reason = exportable(record)
        if reason is None and str(record["slide_id"]) not in slides:
            reason = "slide_not_in_slides_parquet"
        if reason:
            skipped[reason] += 1
        else:
            kept.append(record)
    return kept, skipped


def pair_meta(
    source: tuple[Mapping[str, Any], Mapping[str, Any]], patch: Patch, image_size: int
) -> dict[str, Any]:
    """A pair's KEY.json from its caption record and slide row (runs in the shard task)."""
    record, slide = source
    return build_meta(record, slide, image_size)


def _items(kept: list[Mapping[str, Any]], slides: Mapping[str, Mapping[str, Any]]) -> list[PatchItem]:
    items = []
    for record in kept:
        slide = slides[str(record["slide_id"])]
        where = (int(record["x"]), int(record["y"]), int(record["size"]))
        items.append(PatchItem(str(slide["path"]), slide.get("reader") or "auto", *where, (record, slide)))
    return items


def export_stage(run: RunDir, cfg: ExportConfig, *, executor: Executor | None = None) -> dict[str, Any]:
    """Write ``RUN/export/``; returns ``{done, skipped, failed, up_to_date, pairs, shards, ...}``."""
    from pathgen.agents.results import load_caption_records

    run.require(run.slides, "tile")
    run.require(run.journal, "caption")
    slides = slide_rows(run.slides)
    kept, skipped = select_records(load_caption_records(run), slides)
    from pathgen.review.curate import curate  # the audit's drops and the reviewers' decisions

    curated = curate(run.root, kept, drop_flags=cfg.drop_flags)
    kept, card_extra = curated.records, curated.card
    skipped.update(curated.skipped)
    used = sorted({str(r["slide_id"]) for r in kept})
    fp = fingerprint(
        STAGE,
        EXPORT_SCHEMA,
        # neither the workers nor where the export is uploaded change its bytes
        {k: v for k, v in dump_section(cfg).items() if k not in ("workers", "upload_to")},
        [_digest_fields(r) for r in kept],
        card_extra,
        {s: file_identity(slides[s]["path"]) for s in used},
        {s: {k: slides[s].get(k) for k in ("mpp", "project", "file_id")} for s in used},
    )
    out = run.export
    if cfg.upload_to:  # a destination that cannot be reached fails before any work
        from pathgen.export.upload import upload_problem

        problem = upload_problem(cfg.upload_to)
        if problem:
            raise ExportError(f"cannot upload the export to {cfg.upload_to}: {problem}")
    if run.stage_done(STAGE, fp) and dataset_complete(out, released=True):
        previous = (run.stage_status(STAGE) or {}).get("summary", {})
        return _uploaded(run, cfg, {**previous, "done": 0, "up_to_date": True})

    check_dataset_folder(out)  # before reading a single patch
    if not kept:  # an empty dataset must never replace a good one
        raise _nothing_exported([], skipped, out)
    # From here the export on disk may change: until the new marker is written, no run may take
    # it for this (or any earlier) export.
    run.clear_stage(STAGE)
    with staged_dataset(out) as staging:
        sharded = write_sharded(
            _items(kept, slides),
            staging / "shards",
            meta=partial(pair_meta, image_size=cfg.image_size),
            per_shard=cfg.samples_per_shard,
            image_size=cfg.image_size,
            quality=cfg.jpeg_quality,
            gallery_max=cfg.gallery_max_items,
            workers=cfg.workers,
            executor=executor or LocalExecutor(),
            reuse=out / "shards",
            label="export: shards",
        )
        errors = [{"tile_id": kept[pos].get("tile_id"), "error": reason} for pos, reason in sharded.errors]
        if not sharded.written.index:  # every read failed: the previous export stays as it was
            raise _nothing_exported(errors, skipped, out)
        lost = {
            "read_failed": len(errors) - sharded.failed_in_shards,
            "shard_failed": sharded.failed_in_shards,
        }
        failed = {**skipped, **{k: v for k, v in lost.items() if v}}
        summary = finish_dataset(
            out,
            staging,
            sharded.written,
            title=f"pathgen dataset: {run.root.name}",
            page_size=cfg.gallery_page_size,
            skipped=failed,
            extra={"image size": f"{cfg.image_size} px JPEG (quality {cfg.jpeg_quality})", **card_extra},
            released=True,
        )
        write_json(staging / "errors.json", errors)
    result = {
        "done": summary["pairs"],
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(skipped),
        "failed": len(errors),
        "failed_shards": sharded.failed_shards,
        "up_to_date": False,
        **summary,
        "out": str(Path(out)),
    }
    if sharded.failed_shards:  # not done: a rerun writes the export again, those shards included
        return result  # and an incomplete export is not uploaded
    run.mark_stage(STAGE, fp, result)
    return _uploaded(run, cfg, result)


def _uploaded(run: RunDir, cfg: ExportConfig, result: dict[str, Any]) -> dict[str, Any]:
    """The finished export copied to ``cfg.upload_to`` (resumable; also when it was up to date)."""
    if not cfg.upload_to:
        return result
    from pathgen.export.upload import upload_dataset

    return {**result, "upload": upload_dataset(run.export, cfg.upload_to, run.state)}
