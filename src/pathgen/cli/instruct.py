"""`pathgen instruct`: instruction-tuning data (conversations + MCQs) from a run's exported pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import DATA, app
from pathgen.cli.common import console, fail
from pathgen.cli.defaults import config_default


@app.command("instruct", rich_help_panel=DATA)
def instruct_cmd(
    run: Path = typer.Argument(
        ...,
        help="run folder (its export/shards), an export or shards folder; with --classes a labelled folder",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="output folder: llava.json, hf/, mcq.json, README.md"),
    model: str = typer.Option(
        None, "--model", "-m", help="text LLM spec " + config_default("instruct", "model")
    ),
    base_url: list[str] = typer.Option(None, "--base-url", help="OpenAI-compatible base URL (repeatable)"),
    api_key_env: str = typer.Option(None, "--api-key-env", help="environment variable holding the API key"),
    kinds: str = typer.Option(
        None, "--kinds", help="conversation,mcq " + config_default("instruct", "kinds")
    ),
    test_fraction: float = typer.Option(
        None,
        "--test-fraction",
        help="MCQ share held out as the benchmark " + config_default("instruct", "test_fraction"),
    ),
    concurrency: int = typer.Option(
        None, "--concurrency", min=1, help=config_default("instruct", "concurrency")
    ),
    max_reasks: int = typer.Option(
        None, "--max-reasks", min=0, help=config_default("instruct", "max_reasks")
    ),
    min_support: float = typer.Option(
        None,
        "--min-support",
        help="answer terms found in the description " + config_default("instruct", "min_support"),
    ),
    support: str = typer.Option(
        None,
        "--support",
        help="overlap (answer terms in the description) | judge (an LLM judge) "
        + config_default("instruct", "support"),
    ),
    judge_model: str = typer.Option(
        None,
        "--judge-model",
        help="with --support judge: the judge LLM spec "
        + config_default("instruct", "judge_model", "--model"),
    ),
    answer: str = typer.Option("letter", "--answer", help="CLOSE items' target: letter | option | text"),
    limit: int = typer.Option(None, "--limit", min=1, help="only the first N pairs"),
    classes: bool = typer.Option(
        False, "--classes", help="RUN is a labelled folder (class sub-folders): tissue-class MCQs, no LLM"
    ),
    benchmark_names: str = typer.Option(
        None, "--names", help="with --classes: a benchmark whose class names to use (e.g. crc100k)"
    ),
    options: int = typer.Option(4, "--options", min=2, help="with --classes: options per question"),
) -> None:
    """Write open conversations and closed multiple-choice questions for every exported pair, checked
    (re-asked, then rejected with the reason), as LLaVA JSON, a Hugging Face dataset and PathMMU MCQ."""
    from pydantic import ValidationError

    from pathgen.config import InstructConfig

    if answer not in ("letter", "option", "text"):
        raise fail(f"--answer must be letter, option or text, got {answer!r}")
    values = {
        "model": model, "base_url": base_url or None, "api_key_env": api_key_env,
        "kinds": [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
        "test_fraction": test_fraction, "concurrency": concurrency, "max_reasks": max_reasks,
        "min_support": min_support, "support": support, "judge_model": judge_model,
    }  # fmt: skip
    try:
        cfg = InstructConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise fail(str(exc.errors()[0]["msg"]) + f" ({'.'.join(map(str, exc.errors()[0]['loc']))})") from exc
    try:
        if classes:
            from pathgen.instruct.stage import instruct_from_classes

            names = None
            if benchmark_names:
                from pathgen.evaluate.benchmarks import get_benchmark

                names = dict(get_benchmark(benchmark_names).names)
            info = instruct_from_classes(
                run, out, names, n_options=options, test_fraction=cfg.test_fraction, seed=cfg.seed or 0,
                answer_style=answer,
            )  # fmt: skip
        else:
            from pathgen.instruct.stage import instruct_stage

            info = instruct_stage(run, out, cfg, limit=limit, answer_style=answer)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    c = info["counts"]
    console.print(
        f"instruct: {c['conversations']} conversations, {c['mcq']} MCQs ({c['mcq_test']} held out), "
        f"{c['rejected']} rejected; letters max/uniform {info['letter_balance']['max_ratio']}"
    )
    if c["offline_demo"]:
        console.print(f"note: {c['offline_demo']} items are offline-demo templates (model {info['model']})")
    console.print(f"wrote {out}/llava.json, {out}/hf, {out}/mcq.json, {out}/README.md")
