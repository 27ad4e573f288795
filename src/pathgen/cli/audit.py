"""`pathgen audit`: per-pair quality flags, shortcut analysis and a report -> RUN/audit/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pathgen.cli.app import DATA, app
from pathgen.cli.common import console, fail, summary_table, with_options
from pathgen.cli.defaults import config_default


def _run_config(run: Path, config: Path | None) -> Any:
    from pathgen.config import RunConfig

    path = config or (run / "config.yaml")
    return RunConfig.from_yaml(path) if (config or path.exists()) else None


@app.command("audit", rich_help_panel=DATA)
def audit(
    run: Path = typer.Argument(..., help="run directory with captions (best after `pathgen export`)"),
    encoder: str | None = typer.Option(
        None,
        help="image-caption encoder spec for the alignment score "
        + config_default("audit", "encoder", none="the run's embed encoder, else tiny"),
    ),
    misaligned_fraction: float | None = typer.Option(
        None, help=f"share of lowest-aligned pairs flagged {config_default('audit', 'misaligned_fraction')}"
    ),
    device: str | None = typer.Option(
        None, help=f"encoder device {config_default('audit', 'device', none='cuda when available')}"
    ),
    config: Path | None = typer.Option(
        None, help="YAML run config; its `audit:` section holds the thresholds \\[default: RUN/config.yaml]"
    ),
) -> None:
    """Flag pairs (blur, pen ink, background, folds, JPEG blocking; misaligned, duplicate, short,
    long, refusal and report-leaking captions), score site shortcuts, write RUN/audit/report.html.

    Then `pathgen export RUN --drop-flag blur,pen` leaves flagged pairs out.
    Example: `pathgen audit runs/demo`.
    """
    from pydantic import ValidationError

    from pathgen.config import AuditConfig

    if not run.is_dir():
        raise fail(f"run directory not found: {run}")
    try:
        whole = _run_config(run, config)
        base = whole.audit if whole is not None else AuditConfig()
        cfg = with_options(base, encoder=encoder, misaligned_fraction=misaligned_fraction, device=device)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(f"bad configuration: {exc}") from exc

    from pathgen.audit.stage import audit_stage
    from pathgen.rundir import RunDir

    try:
        summary = audit_stage(RunDir(run), cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    if summary.get("up_to_date"):
        console.print(f"[bold]up to date[/]: {run / 'audit'} already holds this audit; nothing changed")
    from pathgen.audit.flags import FLAGS

    rows = [{"flag": f, "pairs": summary["by_flag"].get(f, 0)} for f in FLAGS]
    console.print(summary_table(f"audit: {summary['pairs']} pairs, {summary['flagged']} flagged", rows,
                                ["flag", "pairs"]))  # fmt: skip
    leak = summary["leakage"]
    if leak.get("accuracy") is not None:
        console.print(
            f"site leakage: probe accuracy {leak['accuracy']:.3f} vs chance {leak['chance']:.3f} "
            f"({leak['sites']} sites)"
        )
    else:
        console.print(f"site leakage: not computed ({leak.get('note')})")
    if summary.get("encoder_random"):
        console.print(
            f"[yellow]the alignment encoder {summary['encoder']} has random weights:[/] alignment and "
            "the misaligned flag mean nothing; give a trained one with --encoder"
        )
    if summary.get("failed"):
        console.print(f"[yellow]{summary['failed']} pair(s) could not be measured[/] (column `error`)")
    console.print(f"flags: {run / 'audit' / 'flags.parquet'}   report: {run / 'audit' / 'report.html'}")
