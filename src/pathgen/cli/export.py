"""`pathgen export`: a captioned run -> RUN/export/; or a released pathgen.json + slides -> shards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from pathgen.cli.app import PIPELINE, app
from pathgen.cli.common import (
    EXECUTOR_HELP,
    RAY_ADDRESS_HELP,
    console,
    executor_config,
    fail,
    summary_table,
    with_options,
)
from pathgen.cli.defaults import config_default
from pathgen.redact import redact


def print_export_summary(summary: dict[str, Any], out: Path) -> None:
    """Shared by `export`, `run` and `demo`: what was written and where."""
    out = Path(os.path.normpath(out))
    if summary.get("up_to_date"):
        console.print(f"[bold]up to date[/]: {out} already holds this export; nothing changed")
    rows = [{"item": k, "value": summary.get(k)} for k in ("pairs", "shards", "skipped", "failed")]
    if summary.get("failed_shards"):  # the export is incomplete: the next run writes these again
        rows.append({"item": "failed shards", "value": ", ".join(summary["failed_shards"])})
    rows += [
        {"item": f"skipped: {k}", "value": v} for k, v in (summary.get("skipped_by_reason") or {}).items()
    ]
    console.print(summary_table("export", rows, ["item", "value"]))
    console.print(f"dataset: {out}")
    if summary.get("train_data"):
        console.print(f"open_clip_train --train-data '{summary['train_data']}'")
    console.print(f"dataset card: {out / 'README.md'}   gallery: {out / 'gallery.html'}")
    upload = summary.get("upload")
    if upload:
        state = (
            "complete" if upload["complete"] else f"INCOMPLETE ({upload['failed']} failed; re-run to resume)"
        )
        console.print(
            f"uploaded to {upload['url']}: {upload['uploaded']} objects, {upload['skipped']} already there, "
            f"{upload['deleted']} stale deleted: {state}"
        )
        for err in upload["errors"][:3]:
            console.print(f"  {err['file']}: {redact(err['error'])}", highlight=False)


@app.command("export", rich_help_panel=PIPELINE)
def export(
    run: Path | None = typer.Argument(
        None, help="run directory with captions (omit with --from-pathgen-json)"
    ),
    from_pathgen_json: Path | None = typer.Option(
        None,
        "--from-pathgen-json",
        help="released PathGen records {wsi_id, position, caption} to materialise",
    ),
    slides: Path | None = typer.Option(
        None, help="folder of slides for --from-pathgen-json (found by wsi_id)"
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="output folder for --from-pathgen-json; with a RUN, a URL (s3://bucket/prefix) the export "
        "is uploaded to (config: export.upload_to; credentials from the environment)",
    ),
    patch_size: int = typer.Option(672, help="level-0 patch side of the released records"),
    image_size: int | None = typer.Option(
        None, help=f"side of the JPEG in the shards {config_default('export', 'image_size')}"
    ),
    jpeg_quality: int | None = typer.Option(
        None, help=f"JPEG quality {config_default('export', 'jpeg_quality')}"
    ),
    samples_per_shard: int | None = typer.Option(
        None, help=f"pairs per tar shard {config_default('export', 'samples_per_shard')}"
    ),
    gallery_max_items: int | None = typer.Option(
        None, help=f"thumbnails in gallery.html {config_default('export', 'gallery_max_items')}"
    ),
    workers: int | None = typer.Option(
        None,
        help="shards written at once (local executor); 0 = CPUs, at most 8 "
        + config_default("export", "workers"),
    ),
    drop_flag: str | None = typer.Option(
        None,
        "--drop-flag",
        help="leave out pairs `pathgen audit` flagged with any of these, e.g. blur,pen,refusal",
    ),
    config: Path | None = typer.Option(
        None, help="YAML run config; its `export:` section is used \\[default: RUN/config.yaml if present]"
    ),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Write the dataset: pathgen.json, webdataset shards, index.parquet, card README.md, gallery.html.

    Examples: `pathgen export runs/demo`;
    `pathgen export --from-pathgen-json PathGen-1.6M.json --slides /data/tcga --out pathgen-1.6m`.
    """
    from pydantic import ValidationError

    from pathgen.config import ExportConfig, RunConfig

    try:
        # Without --config, a run made by `pathgen run`/`demo` keeps its own export settings.
        resolved = run / "config.yaml" if run is not None else None
        whole = None
        if config:
            whole = RunConfig.from_yaml(config)
        elif resolved is not None and resolved.exists():
            whole = RunConfig.from_yaml(resolved)
        base = whole.export if whole is not None else ExportConfig()
        exec_cfg = executor_config(whole, executor, ray_address)
        upload_to = out if run is not None and from_pathgen_json is None else None
        if upload_to is not None:
            from pathgen.storage import is_url

            if not is_url(upload_to):
                raise ValueError(
                    f"--out with a run directory is a URL to upload the export to (s3://bucket/prefix), "
                    f"got {upload_to!r}; the local export is always RUN/export"
                )
        cfg = with_options(
            base, image_size=image_size, jpeg_quality=jpeg_quality, samples_per_shard=samples_per_shard,
            gallery_max_items=gallery_max_items, workers=workers, drop_flags=drop_flag,
            upload_to=upload_to,
        )  # fmt: skip
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(f"bad configuration: {exc}") from exc

    if from_pathgen_json is not None:
        from pathgen.storage import is_url

        if is_url(out):  # not yet: the materialised dataset is written to a folder
            raise fail("--from-pathgen-json writes to a local or shared folder: give --out a path, not a URL")
        _materialise(from_pathgen_json, slides, Path(out) if out else None, patch_size, cfg, exec_cfg)
        return
    if run is None:
        raise fail(
            "give a run directory (pathgen export RUN) or --from-pathgen-json FILE --slides DIR --out DIR"
        )
    from pathgen.executors import make_executor
    from pathgen.export.dataset import DatasetFolderError
    from pathgen.export.stage import ExportError, export_stage
    from pathgen.rundir import RunDir

    rundir = RunDir(run)
    try:
        with make_executor(exec_cfg) as runner:
            summary = export_stage(rundir, cfg, executor=runner)
    except ExportError as exc:  # nothing exported: the previous export is untouched
        raise fail(str(exc), code=1) from exc
    except DatasetFolderError as exc:  # RUN/export holds files pathgen did not write
        raise fail(str(exc)) from exc
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    print_export_summary(summary, rundir.export)


def _materialise(
    source: Path, slides: Path | None, out: Path | None, patch_size: int, cfg: Any, exec_cfg: Any
) -> None:
    from pathgen.executors import make_executor
    from pathgen.export.dataset import DatasetFolderError
    from pathgen.export.materialise import materialise
    from pathgen.export.stage import ExportError

    if slides is None or out is None:
        raise fail("--from-pathgen-json needs --slides DIR and --out DIR")
    if not source.is_file():
        raise fail(f"records file not found: {source}")
    if not slides.is_dir():
        raise fail(f"slides folder not found: {slides}")
    try:
        with make_executor(exec_cfg) as runner:
            summary = materialise(
                source,
                slides,
                out,
                patch_size=patch_size,
                image_size=cfg.image_size,
                quality=cfg.jpeg_quality,
                per_shard=cfg.samples_per_shard,
                gallery_max=cfg.gallery_max_items,
                workers=cfg.workers,
                executor=runner,
            )
    except DatasetFolderError as exc:  # --out holds files pathgen did not write
        raise fail(str(exc)) from exc
    except ExportError as exc:  # nothing materialised: --out is as it was
        raise fail(str(exc), code=1) from exc
    except ValueError as exc:
        raise fail(f"{source}: {exc}") from exc
    print_export_summary(summary, out)
    console.print(
        f"{summary['records']} records: {summary['done']} materialised, {summary['skipped']} skipped "
        f"(per-record reasons in {out / 'errors.json'})"
    )
    if summary["done"] == 0:
        raise typer.Exit(1)
