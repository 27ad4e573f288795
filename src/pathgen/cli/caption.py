"""`pathgen caption`: selected tiles -> describe -> revise -> summarize, journalled in RUN/journal.sqlite."""

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
    interrupted,
    summary_table,
    with_options,
)
from pathgen.cli.defaults import config_default


@app.command("caption", rich_help_panel=PIPELINE)
def caption(
    run: Path = typer.Argument(..., help="run directory (with selected.parquet)"),
    base_url: list[str] = typer.Option(
        None,
        "--base-url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeat: round-robin)",
    ),
    model: str | None = typer.Option(None, help="model for all agents: served name, hf:<id|dir>, or tiny"),
    concurrency: int | None = typer.Option(
        None, help=f"model calls in flight {config_default('caption', 'concurrency')}"
    ),
    limit: int | None = typer.Option(None, help="caption only the first N selected tiles"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="render prompts, count tokens, estimate cost; no calls"
    ),
    config: Path | None = typer.Option(None, help="YAML run config; its `caption:` section is used"),
    api_key_env: str | None = typer.Option(None, help="environment variable holding the API key"),
    timeout: float | None = typer.Option(
        None, help=f"per-request timeout in seconds {config_default('caption', 'timeout_s')}"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="live progress line"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Caption every selected tile with the describe -> revise -> summarize agents (resumable).

    Examples: `pathgen caption RUN --model tiny` (offline demo model);
    `pathgen caption RUN --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-VL-7B-Instruct`.
    """
    from pydantic import ValidationError

    from pathgen.agents.stage import caption_stage
    from pathgen.config import RunConfig
    from pathgen.engine.runner import Interrupted
    from pathgen.executors import make_executor
    from pathgen.rundir import RunDir

    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        cfg = with_options(
            base.caption, model=model, base_url=list(base_url) if base_url else None,
            concurrency=concurrency, api_key_env=api_key_env, timeout_s=timeout,
        )  # fmt: skip
        with make_executor(executor_config(base, executor, ray_address)) as runner:
            summary = caption_stage(
                RunDir(run), cfg, limit=limit, dry_run=dry_run, progress=progress, executor=runner
            )
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    except Interrupted as exc:  # Ctrl-C / SIGTERM: what was saved, how to resume, 130 / 143
        raise interrupted(exc) from exc

    if dry_run:
        for agent, text in summary["sample_prompts"].items():
            console.rule(f"{agent}: first prompt")
            console.print(text, markup=False, highlight=False)
        rows = [{"agent": a, "calls": n} for a, n in summary["calls"].items()]
        console.print(summary_table(f"dry run: {summary['tiles']} tile(s)", rows, ["agent", "calls"]))
        console.print(
            f"~{summary['tokens_in_est']:,} prompt + ~{summary['tokens_out_est']:,} completion tokens; "
            f"estimated cost {summary['cost_est']} (set price_in/out_per_mtok in the config)"
        )
        return
    if summary["up_to_date"]:
        console.print(
            f"[bold]up to date[/]: all {summary['total']} selected tiles already have captions; "
            "no model was called"
        )
        return
    rows = [
        {"what": k, "value": summary[k]} for k in ("total", "done", "skipped", "failed", "calls", "retries")
    ]
    rows += [{"what": k, "value": summary[k]} for k in ("calls_per_s", "tokens_per_s", "elapsed_s")]
    rows += [{"what": f"reason {k}", "value": v} for k, v in sorted(summary["reasons"].items())]
    console.print(summary_table(f"caption -> {RunDir(run).journal}", rows, ["what", "value"]))
    if summary.get("offline_demo"):
        console.print("[yellow]offline demo model: captions are random text, flagged `offline_demo`[/]")
    if summary["failed"] and not summary["done"]:
        raise typer.Exit(1)
