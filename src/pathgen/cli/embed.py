"""`pathgen embed`: every tile of a run through an image encoder -> RUN/embeddings/."""

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


@app.command("embed", rich_help_panel=PIPELINE)
def embed(
    run: Path = typer.Argument(..., help="run directory (after `pathgen tile`)"),
    encoder: str | None = typer.Option(
        None,
        "--encoder",
        "-e",
        help=(
            "tiny | open_clip:NAME\\[@CKPT]\\[?quick_gelu=1] | hf:ID_OR_DIR | a model directory "
            + config_default("embed", "encoder")
        ),
    ),
    batch_size: int | None = typer.Option(
        None, help=f"images per forward pass {config_default('embed', 'batch_size')}"
    ),
    workers: int | None = typer.Option(
        None, help=f"DataLoader processes reading tiles, per device {config_default('embed', 'workers')}"
    ),
    device: str | None = typer.Option(
        None, help=f"cuda | cpu | cuda:1 ... {config_default('embed', 'device', none='cuda when available')}"
    ),
    devices: str | None = typer.Option(
        None,
        "--devices",
        help="one encoder per device, e.g. cuda:0,cuda:1 or all (every GPU); replaces --device",
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help=f"fp16 | bf16 | fp32 {config_default('embed', 'precision', none='fp16 on CUDA, fp32 on CPU')}",
    ),
    config: Path | None = typer.Option(None, help="YAML run config; its `embed:` section is used"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Embed every tile at the encoder's input size (fp16 on GPU), on one device, several
    (--devices), or a Ray actor pool (--executor ray); resumable per slide."""
    from pydantic import ValidationError

    from pathgen.config import RunConfig
    from pathgen.embed import embed_stage
    from pathgen.executors import make_executor
    from pathgen.models.encoders import has_random_weights
    from pathgen.rundir import RunDir

    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        cfg = with_options(
            base.embed,
            encoder=encoder,
            batch_size=batch_size,
            workers=workers,
            device=device,
            devices=devices,
            precision=precision,
        )
        exec_cfg = executor_config(base, executor, ray_address)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(f"bad configuration: {exc}") from exc
    try:
        with make_executor(exec_cfg) as runner:
            summary = embed_stage(RunDir(run), cfg, executor=runner)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc

    if summary.get("up_to_date"):
        console.print(f"embed: up to date ({summary['skipped']} slides already embedded with {cfg.encoder})")
        return
    rows = [{"slide": sid, "problem": e.get("error", "")} for sid, e in summary.get("errors", {}).items()]
    if rows:
        console.print(summary_table("slides with problems", rows, ["slide", "problem"]))
    keys = ["done", "skipped", "failed", "n_tiles", "bad_tiles", "tiles_per_s", "seconds", "device"]
    console.print(summary_table(f"embed -> {run}/embeddings", [summary], keys))
    if has_random_weights(cfg.encoder):
        console.print(
            f"[yellow]note:[/] encoder {cfg.encoder!r} has random weights, so these embeddings carry no "
            "pathology: give a checkpoint (open_clip:NAME@CKPT, hf:ID, or a `pathgen train` folder)"
        )
    if summary["failed"]:
        raise typer.Exit(1)
