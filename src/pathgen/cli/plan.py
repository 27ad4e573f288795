"""`pathgen plan`: CPU-hours, GPU-hours, VLM calls and tokens of a run of N slides, before spending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pathgen.cli.app import PIPELINE, app
from pathgen.cli.common import console, fail
from pathgen.planning.assumptions import DEFAULT_VLM_TOKENS_PER_S, Assumptions

_A = Assumptions()  # the defaults live there; help text reads them

COLUMNS = ("stage", "items", "cost / item", "basis", "CPU-h", "GPU-h", "VLM calls", "tokens")


def fmt_count(value: float) -> str:
    """Items, calls and tokens: whole numbers with thousands separators."""
    return f"{value:,.0f}"


def fmt_hours(value: float) -> str:
    return "0" if value == 0 else f"{value:,.2f}" if value >= 0.01 else f"{value:.2g}"


def fmt_seconds(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 1:
        return f"{value:.3g} s"
    return f"{value * 1000:.3g} ms"


def cost_cell(row: dict[str, Any]) -> str:
    parts = [f"{fmt_seconds(row['cpu_s_per_item'])} CPU"]
    if row["gpu_s_per_item"]:
        parts.append(f"{fmt_seconds(row['gpu_s_per_item'])} GPU")
    return " + ".join(parts) + f" / {row['unit']}"


def table_rows(plan: dict[str, Any]) -> list[list[str]]:
    """The table's cells, from the plan's numbers (the JSON holds the same numbers unformatted)."""
    rows = []
    for r in plan["stages"]:
        rows.append([
            r["stage"], fmt_count(r["items"]), cost_cell(r), r["basis"], fmt_hours(r["cpu_h"]),
            fmt_hours(r["gpu_h"]), fmt_count(r["calls"]), fmt_count(r["tokens"]),
        ])  # fmt: skip
    t = plan["totals"]
    rows.append(["total", "", "", "", fmt_hours(t["cpu_h"]), fmt_hours(t["gpu_h"]), fmt_count(t["calls"]),
                 fmt_count(t["tokens"])])  # fmt: skip
    return rows


def print_plan(plan: dict[str, Any]) -> None:
    from rich.table import Table

    per = plan["per_slide"]
    table = Table(
        title=f"plan for {plan['slides']:,} slides: ~{fmt_count(plan['pairs'])} image-caption pairs "
        f"({per['tiles']:,.1f} tiles, {per['selected']:,.1f} selected a slide)"
    )
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for cells in table_rows(plan):
        table.add_row(*cells)
    console.print(table)
    caption = next(r for r in plan["stages"] if r["stage"] == "caption")
    console.print(
        f"caption tokens: {fmt_count(caption['tokens_in'])} prompt + {fmt_count(caption['tokens_out'])} "
        "completion", highlight=False,
    )  # fmt: skip
    console.print("[bold]where each cost comes from[/]")
    for r in plan["stages"]:
        console.print(f"  - {r['stage']}: {r['source']}", markup=False, highlight=False)
    console.print("[bold]assumptions[/]")
    for line in plan["assumption_lines"]:
        console.print(f"  - {line}", markup=False, highlight=False)
    for note in plan["notes"]:
        console.print(f"  - {note}", markup=False, highlight=False)
    console.print(
        f"  - calibration took {plan['calibration']['seconds']} s on this machine "
        f"({plan['machine']['cpus']} CPUs); no configured checkpoint was loaded and no server was called",
        markup=False, highlight=False,
    )  # fmt: skip


@app.command("plan", rich_help_panel=PIPELINE)
def plan(
    config: Path = typer.Argument(..., help="YAML run config (the one `pathgen run` would use)"),
    slides: int = typer.Option(..., "--slides", "-n", help="number of slides to plan for, e.g. 7300"),
    run: Path | None = typer.Option(
        None, "--run", help="a run directory: tiles and selected tiles a slide measured from its tables"
    ),
    bench_json: list[Path] = typer.Option(
        None, "--bench-json", help="benchmark JSON with measured throughputs (repeatable; see README)"
    ),
    slide_size: str | None = typer.Option(
        None,
        "--slide-size",
        help="assumed level-0 WIDTHxHEIGHT of a slide (without --run) "
        f"\\[default: {_A.slide_width}x{_A.slide_height}]",
    ),
    tissue_share: float | None = typer.Option(
        None, help="share of grid cells with tissue \\[default: measured on the sample slide]"
    ),
    reask_rate: float | None = typer.Option(
        None, help=f"share of agent calls asked again after a failed check \\[default: {_A.reask_rate}]"
    ),
    vlm_tokens_per_s: float | None = typer.Option(
        None,
        "--vlm-tokens-per-s",
        help=f"VLM prompt+completion tokens per GPU-second \\[default: {DEFAULT_VLM_TOKENS_PER_S:g}]",
    ),
    gpu_tflops: float | None = typer.Option(
        None, help=f"effective GPU TFLOP/s for the encoder (FLOP estimate) \\[default: {_A.gpu_tflops:g}]"
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="also write the plan's numbers to this JSON file"
    ),
) -> None:
    """Project CPU-hours, GPU-hours, VLM calls and tokens of a run of N slides (calibrates in seconds).

    Never loads the configured checkpoint nor calls the configured server: it times stand-ins (the
    packaged sample slide, the encoder architecture with random weights, the caption dry run) and
    prints every assumption. Example: `pathgen plan examples/vllm.yaml --slides 7300 --json plan.json`.
    """
    from pydantic import ValidationError

    from pathgen.config import RunConfig
    from pathgen.planning.assumptions import parse_size
    from pathgen.planning.project import make_plan
    from pathgen.rundir import write_json

    try:
        cfg = RunConfig.from_yaml(config)
        chosen: dict[str, Any] = {"tissue_share": tissue_share, "reask_rate": reask_rate,
                                  "gpu_tflops": gpu_tflops, "vlm_tokens_per_s": vlm_tokens_per_s}  # fmt: skip
        chosen = {k: v for k, v in chosen.items() if v is not None}  # typed: wins over defaults / bench
        if slide_size is not None:
            chosen["slide_width"], chosen["slide_height"] = parse_size(slide_size)
        assumptions = Assumptions(**chosen)
        with console.status("calibrating on this machine (sample slide, encoder stand-in, caption dry run)"):
            result = make_plan(cfg, slides, assumptions, run=run, bench_json=list(bench_json or []))
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    print_plan(result)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
