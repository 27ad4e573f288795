"""`pathgen eval`: zero-shot, linear probe, few-shot and retrieval on the published benchmarks.

`pathgen eval --model SPEC --benchmark NAME --data DIR --out DIR` evaluates; `pathgen eval compare
DIR1 DIR2 ...` puts result folders side by side; `pathgen eval benchmarks` lists the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from pathgen.cli.app import MODELS, app
from pathgen.cli.common import console, fail, summary_table

if TYPE_CHECKING:
    from pathgen.evaluate.benchmarks import Benchmark

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
        ["zeroshot"], "--task", "-t", help="zeroshot | linear | fewshot | retrieval | mcq (repeatable)"
    ),
    base_url: list[str] = typer.Option(
        None, "--base-url", help="mcq: an OpenAI-compatible endpoint serving --model (repeatable)"
    ),
    api_key_env: str = typer.Option(None, "--api-key-env", help="mcq: environment variable holding the key"),
    split: str = typer.Option(None, "--split", help="mcq: the split to ask (default: test where present)"),
    ensemble: bool = typer.Option(False, "--ensemble", help="zero-shot with synonyms x templates"),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="feature cache (default OUT/cache)"),
    device: str = typer.Option(None, "--device", help="cuda, cpu, ... (default: cuda when available)"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seeds: str = typer.Option(
        "0,1,2,3,4", "--seeds", help="few-shot draws (at least 5 distinct) / probe seed (the first)"
    ),
    shots: str = typer.Option("1,2,4,8,16", "--shots", help="few-shot k per class"),
    max_per_class: int = typer.Option(None, "--max-per-class", min=1, help="subsample for quick runs"),
    preset: str = typer.Option(
        "test-split",
        "--preset",
        help="images zero-shot scores: test-split (QuiltNet/CONCH) | pathgen-clip (PathGen-CLIP's scripts)",
    ),
    probe: str = typer.Option(
        "sweep",
        "--probe",
        help="linear/few-shot protocol: sweep (C on a validation split) | uni (UNI's C rule)",
    ),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    tasks = [t.strip() for item in task for t in item.split(",") if t.strip()]
    if "mcq" in tasks:
        _eval_mcq(ctx, tasks, model, benchmark, data, out, base_url, api_key_env, split, device)
        return
    missing = [n for n, v in (("--model", model), ("--data", data), ("--out", out)) if v is None]
    if benchmark is None and task != ["retrieval"]:
        missing.append("--benchmark")
    if missing:
        console.print(ctx.get_help())
        raise fail(f"missing {', '.join(missing)}")
    from rich.progress import Progress

    from pathgen.evaluate.run import evaluate

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
                preset=preset,
                probe=probe,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    _print_result(result, out)


def _eval_mcq(
    ctx: typer.Context,
    tasks: list[str],
    model: str | None,
    benchmark: str | None,
    data: Path | None,
    out: Path | None,
    base_url: list[str] | None,
    api_key_env: str | None,
    split: str | None,
    device: str | None,
) -> None:
    """`--task mcq`: a VLM (local HF folder or endpoint) on a PathMMU-style MCQ file: --benchmark FILE,
    or --benchmark NAME (e.g. pathmmu) with --data its file or folder (data.json / mcq.json)."""
    if tasks != ["mcq"]:
        raise fail("--task mcq evaluates a VLM; run it on its own, not with encoder tasks")
    missing = [n for n, v in (("--model", model), ("--benchmark", benchmark), ("--out", out)) if v is None]
    if missing:
        console.print(ctx.get_help())
        raise fail(f"missing {', '.join(missing)}")
    assert model is not None and benchmark is not None and out is not None
    from rich.progress import Progress

    from pathgen.evaluate.mcq import evaluate_mcq

    try:
        with Progress(console=console, transient=True) as bar:
            job = bar.add_task("asking questions", total=None)
            result = evaluate_mcq(
                model, data if data is not None else benchmark, out, name=benchmark,
                base_url=base_url or None, api_key_env=api_key_env, split=split, device=device,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    entry = result["tasks"]["mcq"]
    typer.echo(
        f"mcq: accuracy={entry['accuracy']:.4f} on {entry['n']} questions (chance {entry['chance']:.4f}; "
        f"{entry['fallback']} random fallbacks, {entry['errors']} errors)"
    )
    for subset, sub in entry["subsets"].items():
        typer.echo(f"  {subset}: accuracy={sub['accuracy']:.4f} (n={sub['n']})")
    typer.echo(f"results: {out / 'results.json'}")


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
            kappa = entry.get("quadratic_kappa")
            typer.echo(
                f"{task}: accuracy={entry['accuracy']:.4f} "
                f"balanced_accuracy={entry['balanced_accuracy']:.4f} weighted_f1={entry['weighted_f1']:.4f}"
                + (f" quadratic_kappa={kappa:.4f}" if kappa is not None else "")
            )
        how = [f"{k} {entry[k]}" for k in ("preset", "images", "protocol") if k in entry]
        if how:
            typer.echo(f"{task}: " + ", ".join(how) + (f" (C={entry['C']:.4g})" if "C" in entry else ""))
        if entry.get("note") and task not in result.get("kept_tasks", []):
            typer.echo(f"note: {task}: {entry['note']}")
    if "fewshot" not in result.get("kept_tasks", []):
        _warn_fewshot(result["tasks"].get("fewshot", {}))
    _print_kept(result)
    typer.echo(f"results: {out / 'results.json'}")


def _warn_fewshot(entry: dict) -> None:
    """Skipped k, and k that used every training image (std 0 over seeds by construction)."""
    for k, reason in sorted(entry.get("skipped", {}).items(), key=lambda kv: int(kv[0])):
        typer.echo(f"warning: fewshot k={k} skipped: {reason}", err=True)
    for k, shot in entry.get("shots", {}).items():
        if shot.get("same_images_every_seed"):
            typer.echo(
                f"note: fewshot k={k} is every class's whole training split: all seeds use the same images"
            )


def _print_kept(result: dict) -> None:
    """Say which tasks in results.json come from an earlier run into the same --out, and when."""
    kept = result.get("kept_tasks", [])
    if kept:
        when = result.get("task_created", {})
        listed = ", ".join(f"{t} (run {when.get(t, '?')})" for t in kept)
        typer.echo(f"kept from the earlier run in this --out: {listed}")


def _order(col: str) -> tuple[int, str, int]:
    from pathgen.evaluate.report import _col_order

    return _col_order(col)


@eval_app.command("compare")
def eval_compare(
    dirs: list[Path] = typer.Argument(..., help="result folders (or results.json files) of `pathgen eval`"),
    metric: str = typer.Option(
        "accuracy", "--metric", help="accuracy | balanced_accuracy | weighted_f1 | macro_auc (MIL)"
    ),
    out: Path = typer.Option(None, "--out", "-o", help="also write the markdown table here"),
) -> None:
    """Put several models' results side by side (one column per model)."""
    from pathgen.evaluate.report import compare
    from pathgen.rundir import atomic_write

    try:
        table, _ = compare(dirs, metric=metric)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(table)
    if out is not None:
        atomic_write(out, table)


@eval_app.command("benchmarks")
def eval_benchmarks(
    name: str = typer.Argument(None, help="one benchmark (name or alias): classes, synonyms, templates"),
) -> None:
    """List the benchmark registry: classes with their prompt names, the single template and the
    on-disk layout each loader expects; with NAME, everything about that one benchmark."""
    from pathgen.evaluate.benchmarks import BENCHMARKS, get_benchmark

    if name is None:
        console.print(_registry_table(list(BENCHMARKS.values())))
        console.print("synonyms, ensemble templates and more about one: pathgen eval benchmarks NAME")
        return
    try:
        bench = get_benchmark(name)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    _print_benchmark(bench)


def _registry_table(benches: list[Benchmark]) -> Table:
    """Every cell wraps and folds instead of being cut with "…": a layout is only useful complete."""
    table = Table(title="benchmarks", show_lines=True, expand=True)
    for col, ratio in (
        ("name (aliases)", 2),
        ("classes (id: prompt name)", 4),
        ("template", 2),
        ("layout", 3),
    ):
        table.add_column(col, overflow="fold", ratio=ratio)
    for b in benches:
        name = b.name + (f"\n({', '.join(b.aliases)})" if b.aliases else "")
        if b.task == "classification":
            classes = "\n".join(f"{c}: {b.names[c]}" for c in b.classes)
            template = b.single_template
        else:
            classes = f"{len(b.classes)} classes: {', '.join(b.classes)}"
            template = f"none ({b.task} benchmark)"
        table.add_row(*(Text(cell) for cell in (name, classes, template, b.layout)))  # no markup: [t, s, n]
    return table


def _print_benchmark(bench: Benchmark) -> None:
    """Plain lines (no table) so nothing is truncated and the text can be copied as is."""
    typer.echo(f"{bench.name}: {bench.title}")
    typer.echo(f"task: {bench.task}")
    if bench.aliases:
        typer.echo(f"aliases: {', '.join(bench.aliases)}")
    if bench.source:
        typer.echo(f"source: {bench.source}")
    typer.echo(f"layout: {bench.layout}")
    typer.echo(f"classes ({len(bench.classes)}; id: prompt name [synonyms]):")
    for c in bench.classes:
        syn = bench.synonyms.get(c, ())
        typer.echo(f"  {c}: {bench.names[c]}" + (f"  [{'; '.join(syn)}]" if syn else ""))
    if bench.task != "classification":
        typer.echo("prompts: none (image-to-image retrieval by class)")
        return
    typer.echo(f"single template: {bench.single_template}")
    typer.echo(f"  e.g. {bench.prompts(False)[0][0]}")
    typer.echo("ensemble templates (--ensemble: every name and synonym under each):")
    for t in bench.templates:
        typer.echo(f"  {t}")
    typer.echo(f"ensemble prompts: {sum(len(p) for p in bench.prompts(True))}")
