"""`pathgen eval`: zero-shot, linear probe, few-shot and retrieval on the published benchmarks.

`pathgen eval --model SPEC --benchmark NAME --data DIR --out DIR` evaluates; `pathgen eval compare
DIR1 DIR2 ...` puts result folders side by side; `pathgen eval benchmarks` lists the registry.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import MODELS, app
from pathgen.cli.common import console, fail, summary_table

eval_app = typer.Typer(
    help=(
        "Evaluate a model on a pathology benchmark: zero-shot (single template or --ensemble), linear "
        "probe, few-shot, retrieval. Sub-commands: `compare` result folders, list `benchmarks`."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(eval_app, name="eval", rich_help_panel=MODELS)


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise fail(f"{what} must be comma-separated integers, got {text!r}") from exc


@eval_app.callback()
def eval_main(
    ctx: typer.Context,
    model: str = typer.Option(
        None, "--model", "-m", help="encoder spec: tiny, open_clip:NAME[@CKPT], hf:ID, DIR"
    ),
    benchmark: str = typer.Option(
        None, "--benchmark", "-b", help="benchmark name (see `pathgen eval benchmarks`) or 'pairs' for shards"
    ),
    data: Path = typer.Option(None, "--data", "-d", help="dataset folder in its published layout, or shards"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for results.json, results.md, PNGs, cache"),
    task: list[str] = typer.Option(
        ["zeroshot"], "--task", "-t", help="zeroshot | linear | fewshot | retrieval (repeatable)"
    ),
    ensemble: bool = typer.Option(False, "--ensemble", help="zero-shot with synonyms x templates"),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="feature cache (default OUT/cache)"),
    device: str = typer.Option(None, "--device", help="cuda, cpu, ... (default: cuda when available)"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seeds: str = typer.Option("0,1,2", "--seeds", help="few-shot / probe seeds"),
    shots: str = typer.Option("1,2,4,8,16", "--shots", help="few-shot k per class"),
    max_per_class: int = typer.Option(None, "--max-per-class", min=1, help="subsample for quick runs"),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    missing = [n for n, v in (("--model", model), ("--data", data), ("--out", out)) if v is None]
    if benchmark is None and task != ["retrieval"]:
        missing.append("--benchmark")
    if missing:
        console.print(ctx.get_help())
        raise fail(f"missing {', '.join(missing)}")
    from rich.progress import Progress

    from pathgen.evaluate.run import evaluate

    tasks = [t.strip() for item in task for t in item.split(",") if t.strip()]
    try:
        with Progress(console=console, transient=True) as bar:
            job = bar.add_task("encoding images", total=None)
            result = evaluate(
                model=model,
                benchmark=benchmark,
                data=data,
                out=out,
                tasks=tasks,
                ensemble=ensemble,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                seeds=_parse_ints(seeds, "--seeds"),
                shots=_parse_ints(shots, "--shots"),
                max_per_class=max_per_class,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    _print_result(result, out)


def _print_result(result: dict, out: Path) -> None:
    from pathgen.evaluate.report import headline_rows

    rows = headline_rows(result)
    cols = ["task", *sorted({k for r in rows for k in r if k != "task"}, key=_order)]
    console.print(
        summary_table(
            f"{result['benchmark']} — {result['model']} ({result['n_examples']} images)", rows, cols
        )
    )
    for task, entry in result["tasks"].items():
        if "accuracy" in entry:
            typer.echo(
                f"{task}: accuracy={entry['accuracy']:.4f} "
                f"balanced_accuracy={entry['balanced_accuracy']:.4f} weighted_f1={entry['weighted_f1']:.4f}"
            )
    typer.echo(f"results: {out / 'results.json'}")


def _order(col: str) -> tuple[int, str, int]:
    from pathgen.evaluate.report import _col_order

    return _col_order(col)


@eval_app.command("compare")
def eval_compare(
    dirs: list[Path] = typer.Argument(..., help="result folders (or results.json files) of `pathgen eval`"),
    metric: str = typer.Option("accuracy", "--metric", help="accuracy | balanced_accuracy | weighted_f1"),
    out: Path = typer.Option(None, "--out", "-o", help="also write the markdown table here"),
) -> None:
    """Put several models' results side by side (one column per model)."""
    from pathgen.evaluate.report import compare
    from pathgen.rundir import atomic_write

    try:
        table, _ = compare(dirs, metric=metric)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    typer.echo(table)
    if out is not None:
        atomic_write(out, table)


@eval_app.command("benchmarks")
def eval_benchmarks() -> None:
    """List the benchmark registry: names, classes and the on-disk layout each loader expects."""
    from pathgen.evaluate.benchmarks import BENCHMARKS

    rows = [
        {
            "name": b.name,
            "classes": len(b.classes),
            "task": b.task,
            "layout": b.layout,
            "aliases": ", ".join(b.aliases),
        }
        for b in BENCHMARKS.values()
    ]
    console.print(summary_table("benchmarks", rows, ["name", "classes", "task", "layout", "aliases"]))
