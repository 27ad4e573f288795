"""`pathgen tile`: slides, folders or a manifest -> RUN/slides.parquet + RUN/tiles.parquet."""

from __future__ import annotations

from pathlib import Path

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


@app.command("tile", rich_help_panel=PIPELINE)
def tile(
    inputs: list[str] = typer.Argument(
        None,
        help="slide files, folders (searched recursively) or a manifest .csv/.parquet",
        show_default=False,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="run directory"),
    size: int | None = typer.Option(
        None, help=f"tile side in px: level-0 px, or px at --mpp {config_default('tile', 'size')}"
    ),
    mpp: float | None = typer.Option(None, help="physical resolution of --size in µm/px (e.g. 0.5)"),
    assume_mpp: float | None = typer.Option(None, help="mpp for slides whose metadata has none"),
    min_tissue: float | None = typer.Option(
        None, help=f"minimum tissue fraction of a kept tile {config_default('tile', 'min_tissue')}"
    ),
    reader: str | None = typer.Option(
        None, help=f"auto | openslide | tiffslide | wsidicom {config_default('tile', 'reader')}"
    ),
    workers: int | None = typer.Option(
        None, help=f"slide processes; 0 = CPUs, at most 8 {config_default('tile', 'workers')}"
    ),
    allow_non_brightfield: bool | None = typer.Option(
        None,
        "--allow-non-brightfield",
        help="tile slides with a dark, fluorescence-like background too (default: skip them)",
        show_default=False,
    ),
    preview: Path | None = typer.Option(None, help="write <slide_id>.png previews (mask + kept tiles) here"),
    config: Path | None = typer.Option(None, help="YAML run config; its `tile:` and `slides:` are used"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Find tissue and grid every slide into tiles (672 px at level 0, >= 50 % tissue, as published)."""
    from pydantic import ValidationError

    from pathgen.config import RunConfig
    from pathgen.executors import make_executor
    from pathgen.rundir import RunDir
    from pathgen.slides.stage import tile_stage

    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        cfg = with_options(
            base.tile, size=size, mpp=mpp, assume_mpp=assume_mpp, min_tissue=min_tissue, reader=reader,
            workers=workers, allow_non_brightfield=allow_non_brightfield,
        )  # fmt: skip
        exec_cfg = executor_config(base, executor, ray_address)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    slides = list(inputs or []) or list(base.slides)
    if not slides:
        raise fail("no slides given: pass slide files, folders or a manifest (or `slides:` in --config)")
    try:
        with make_executor(exec_cfg) as runner:
            summary = tile_stage(slides, RunDir(out), cfg, preview=preview, executor=runner)
    except ValueError as exc:
        raise fail(str(exc)) from exc

    rows = [
        {
            "slide": r["slide_id"],
            "status": r["status"],
            "tiles": r["n_tiles"],
            "tile px": r.get("tile_size"),
            "mpp": r["mpp"],
            "note": _short(r["error"] or r["warning"] or ""),
        }
        for r in summary["slides"]
    ]
    console.print(
        summary_table(f"tile -> {out}", rows, ["slide", "status", "tiles", "tile px", "mpp", "note"])
    )
    n_ok = sum(r["status"] == "ok" for r in summary["slides"])
    n_tiles = sum(int(r["n_tiles"] or 0) for r in summary["slides"])
    if summary.get("up_to_date"):
        console.print(f"[bold]up to date[/]: {out} already has these tiles; nothing to do")
    else:
        console.print(
            f"{n_ok} slide(s) tiled, {summary['no_tissue']} without tissue, {summary['failed']} failed, "
            f"{summary.get('skipped_slides', 0)} skipped, {summary['skipped']} reused; "
            f"{n_tiles} tiles -> {RunDir(out).tiles}"
        )
    if n_ok == 0:
        console.print("[bold red]no slide was tiled[/]")
        raise typer.Exit(1)


def _short(text: str, limit: int = 140) -> str:
    """Table notes stay readable; the full message is in slides.parquet."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "… (full text in slides.parquet)"
