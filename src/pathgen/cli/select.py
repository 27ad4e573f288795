"""`pathgen select`: representative tiles per slide -> RUN/selected.parquet."""

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
from pathgen.selection.choices import ClusterCount, ClusterPick, FindingScore

_SHOW_SLIDES = 20


@app.command("select", rich_help_panel=PIPELINE)
def select(
    run: Path = typer.Argument(..., help="run directory (after `pathgen embed`)"),
    top_k: int | None = typer.Option(
        None, help=f"tiles kept per slide by each prompt set {config_default('select', 'top_k_attribute')}"
    ),
    cap: int | None = typer.Option(
        None, help=f"at most this many tiles per slide {config_default('select', 'per_slide_cap')}"
    ),
    clusters: int | None = typer.Option(
        None, help=f"k of k-means {config_default('select', 'clusters', none='from --cluster-count')}"
    ),
    cluster_count: ClusterCount | None = typer.Option(
        None,
        help="k rule: sqrt (ceil of √tiles, paper) or official (released script) "
        + config_default("select", "cluster_count"),
    ),
    cluster_pick: ClusterPick | None = typer.Option(
        None,
        help="order within a cluster: seeded random, or nearest the centroid first "
        + config_default("select", "cluster_pick"),
    ),
    finding_score: FindingScore | None = typer.Option(
        None,
        help="report score of a tile: sum or max of its cosines over the findings "
        + config_default("select", "finding_score"),
    ),
    dedup: float | None = typer.Option(
        None,
        help=f"cosine at or above which tiles are duplicates {config_default('select', 'dedup_threshold')}",
    ),
    prompts: Path | None = typer.Option(None, help="YAML/JSON file adding attribute prompts per project"),
    replace_prompts: bool = typer.Option(False, help="the --prompts file replaces its projects' prompts"),
    seed: int | None = typer.Option(
        None, help=f"seed of k-means and of random cluster picks {config_default('select', 'seed')}"
    ),
    config: Path | None = typer.Option(None, help="YAML run config; its `select:` section is used"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Keep the tiles that match the project's morphology prompts and the report, then spread by k-means."""
    from pydantic import ValidationError

    from pathgen.config import RunConfig
    from pathgen.executors import make_executor
    from pathgen.rundir import RunDir
    from pathgen.selection.stage import select_stage

    try:
        base = RunConfig.from_yaml(config) if config else RunConfig()
        cfg = with_options(
            base.select, top_k_attribute=top_k, top_k_finding=top_k, per_slide_cap=cap, clusters=clusters,
            cluster_count=cluster_count, cluster_pick=cluster_pick, finding_score=finding_score,
            dedup_threshold=dedup, prompts=prompts, replace_prompts=replace_prompts or None, seed=seed,
        )  # fmt: skip
        with make_executor(executor_config(base, executor, ray_address)) as runner:
            summary = select_stage(RunDir(run), cfg, executor=runner)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc

    if summary.get("up_to_date"):
        console.print(f"select: up to date ({summary.get('selected', 0)} tiles in {run}/selected.parquet)")
        return
    slides = summary.get("slides", [])
    cols = ["slide_id", "status", "tiles", "attribute", "finding", "cluster", "duplicates", "selected"]
    shown = slides[:_SHOW_SLIDES]
    title = "per slide" + (f" (first {_SHOW_SLIDES} of {len(slides)})" if len(slides) > _SHOW_SLIDES else "")
    console.print(summary_table(title, [{**r, "status": r.get("error") or r["status"]} for r in shown], cols))
    keys = ["done", "failed", "selected", "by_attribute", "by_finding", "by_cluster", "duplicates_removed",
            "seconds"]  # fmt: skip
    console.print(summary_table(f"select -> {run}/selected.parquet", [summary], keys))
    if summary.get("selected") and not summary.get("by_attribute") and not summary.get("by_finding"):
        console.print(
            "[yellow]note:[/] no tile was chosen by a prompt: the slides have no `project` with attribute "
            "prompts (e.g. TCGA-BRCA) and no `report`, so selection was k-means only; tile from a manifest "
            "with those columns to use them"
        )
    if summary.get("encoder") == "tiny" and summary.get("duplicates_removed", 0) > summary.get("selected", 0):
        console.print(
            "[yellow]note:[/] the tiny encoder is random, so its embeddings of all tiles are nearly "
            f"identical and near-duplicate removal at {cfg.dedup_threshold} dropped most of them; "
            "pass --dedup 1.0 to keep them, or embed with a real encoder"
        )
    if summary["failed"]:
        raise typer.Exit(1)
