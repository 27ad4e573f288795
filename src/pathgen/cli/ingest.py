"""`pathgen ingest`: external image-caption pairs -> pathgen shards, duplicate report, mixing manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import DATA, app
from pathgen.cli.common import console, fail, summary_table


@app.command("ingest", rich_help_panel=DATA)
def ingest(
    fmt: str = typer.Argument(..., help="quilt | table | arch | wds"),
    source: str = typer.Argument(
        ..., help="lookup CSV, CSV/parquet, ARCH captions.json, or tar/folder/brace"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="pairs root: writes OUT/NAME/ and OUT/mix.yaml"),
    name: str | None = typer.Option(None, help="set name and `source` tag \\[default: the format]"),
    images: Path | None = typer.Option(None, help="image folder (Quilt/table paths are relative to it)"),
    image_col: str | None = typer.Option(None, help="table: image column (path or bytes)"),
    text_col: str | None = typer.Option(None, help="table: caption column"),
    max_side: int | None = typer.Option(None, help="downscale images whose longer side exceeds this"),
    samples_per_shard: int = typer.Option(1000, help="pairs per tar shard"),
    near_threshold: int = typer.Option(4, help="dHash Hamming distance reported as a near duplicate"),
    keep_exact_duplicates: bool = typer.Option(
        False, help="keep pixel-identical copies (reported either way)"
    ),
    against: list[Path] = typer.Option(
        [], help="other dataset folders (e.g. RUN/export) to dedup against; not added to mix.yaml"
    ),
    mix_against: bool = typer.Option(
        False, help="also list the --against folders in mix.yaml (off: stage 2 is existing pairs only)"
    ),
    weight: float = typer.Option(1.0, help="upsampling factor of this set in mix.yaml"),
    allow_absolute_paths: bool = typer.Option(
        False,
        "--allow-absolute-paths",
        help="quilt/table: also read absolute image paths outside --images (refused by default)",
    ),
) -> None:
    """Normalise Quilt-1M, CSV/parquet, ARCH or webdataset pairs into pathgen shards (with a `source` tag).

    Example: `pathgen ingest quilt quilt_1M_lookup.csv --images /data/quilt_1m --out pairs
    --against runs/a/export`
    """
    from pathgen.export.ingest import explain_empty
    from pathgen.export.ingest import ingest as run_ingest
    from pathgen.export.readers import FORMATS

    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt != "wds" and not Path(source).exists():
        raise fail(f"input not found: {source}")
    try:
        report = run_ingest(
            fmt,
            source,
            out,
            name or fmt,
            images=images,
            image_col=image_col,
            text_col=text_col,
            max_side=max_side,
            per_shard=samples_per_shard,
            near_threshold=near_threshold,
            keep_exact_duplicates=keep_exact_duplicates,
            against=against,
            mix_against=mix_against,
            weight=weight,
            allow_absolute_paths=allow_absolute_paths,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    rows = [{"item": "pairs written", "value": report["done"]}]
    rows += [{"item": f"skipped: {k}", "value": v} for k, v in report["skipped_by_reason"].items()]
    rows += [
        {"item": "exact duplicates", "value": report["exact_duplicates"]},
        {"item": f"near duplicates (<= {near_threshold} bits)", "value": report["near_duplicates"]},
    ]
    set_dir = out / report["source"]
    console.print(summary_table(f"ingest {fmt} -> {set_dir}", rows, ["item", "value"]))
    if not report["written"]:
        raise fail(explain_empty(report, source, images), code=1)
    if report["replaced"]:
        old = report["replaced"]
        console.print(
            f"[bold yellow]note[/]: replaced the earlier set {report['source']!r} of {set_dir} "
            f"(was {old['format']} {old['input']}); pass --name to keep both"
        )
    console.print(f"report: {set_dir / 'report.json'}   duplicates: {set_dir / 'duplicates.parquet'}")
    console.print(f"mixing manifest: {report['manifest']}")
