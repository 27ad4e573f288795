"""`pathgen agents data|train|eval`: build the agents' training sets, fine-tune an agent, score it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import typer

from pathgen.cli.app import MODELS, FilledGroup, app
from pathgen.cli.common import console, fail, summary_table

agents_app = typer.Typer(
    cls=FilledGroup,
    help=(
        "Train the caption agents the PathGen way: `data` builds the describe / revise / summarize "
        "sets from a run, `train` fine-tunes a VLM on one (TRL SFT, optional LoRA), `eval` scores it."
    ),
    no_args_is_help=True,
)
app.add_typer(agents_app, name="agents", rich_help_panel=MODELS)


@agents_app.command("data")
def data_cmd(
    run: Path = typer.Argument(
        ..., help="run directory (selected.parquet; journal for the run's own captions)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="dataset folder (replaced as a whole when complete)"),
    teacher_model: str = typer.Option(
        None, "--teacher-model", help="describe targets from this generator: tiny, hf:DIR, or a served name"
    ),
    base_url: list[str] = typer.Option(None, "--base-url", help="OpenAI-compatible server of the teacher"),
    api_key_env: str = typer.Option(None, "--api-key-env", help="environment variable holding the API key"),
    descriptions: Path = typer.Option(
        None, "--descriptions", help="your own descriptions: CSV/JSON/parquet with tile_id or image, and text"
    ),
    inject_model: str = typer.Option(
        None, "--inject-model", help="also ask this generator (with --base-url) for one error of each kind"
    ),
    validation_fraction: float = typer.Option(0.2, "--validation-fraction", help="share of slides held out"),
    copies: int = typer.Option(1, "--copies", min=1, help="corrupted copies per description and error kind"),
    image_size: int = typer.Option(448, "--image-size", min=8, help="side of the stored patches (px)"),
    seed: int = typer.Option(0, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Build the describe, revise (recorded corruptions) and summarize sets, split by slide.

    Writes OUT/<agent>/llava_<split>.json, chat_<split>.jsonl, hf/<split>.parquet, OUT/images/,
    manifest.json and problems.jsonl (one row per input skipped, with the reason).
    """
    from pydantic import ValidationError

    from pathgen.agents.training.config import AgentDataConfig
    from pathgen.agents.training.data import agent_data_from_run
    from pathgen.config import CaptionConfig

    if teacher_model and descriptions:
        raise fail("give --teacher-model or --descriptions, not both")
    try:
        cfg = AgentDataConfig(
            validation_fraction=validation_fraction, copies=copies, image_size=image_size, seed=seed
        )
        teacher = None
        if teacher_model:
            teacher = CaptionConfig(
                model=teacher_model, base_url=list(base_url) if base_url else None, api_key_env=api_key_env
            )
        inject = None
        if inject_model:
            from pathgen.models.generators import load_generator

            inject = load_generator(inject_model, base_url=list(base_url or []), api_key_env=api_key_env)
        manifest = agent_data_from_run(
            run, out, cfg, descriptions=descriptions, teacher=teacher, inject=inject, progress=progress
        )
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    rows = [{"set": a, **c} for a, c in manifest["counts"].items()]
    console.print(summary_table(f"agent sets in {out}", rows, ["set", "train", "validation"]))
    slides = manifest["slides"]
    console.print(
        f"revise kinds: {manifest['revise_kinds']}; slides: "
        f"{len(slides['train'])} train / {len(slides['validation'])} validation"
    )
    if manifest["problems"]:
        console.print(
            f"[yellow]{manifest['problems']} input rows skipped[/] (see {out / 'problems.jsonl'}): "
            f"{manifest['problem_reasons']}"
        )


@agents_app.command("train")
def train_cmd(
    agent: str = typer.Option(..., "--agent", help="describe | revise | summarize"),
    base: str = typer.Option(
        ..., "--base", help="'tiny' (built in code) or a transformers VLM: hub id or folder"
    ),
    data: Path = typer.Option(..., "--data", help="folder written by `pathgen agents data`"),
    out: Path = typer.Option(..., "--out", "-o", help="model folder (a re-run resumes from its checkpoints)"),
    lora: bool = typer.Option(
        False, "--lora/--full", help="LoRA adapters (merged at the end) or full tuning"
    ),
    epochs: float = typer.Option(3.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="> 0 overrides --epochs"),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="per device"),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    lr: float = typer.Option(2e-5, "--lr"),
    lora_r: int = typer.Option(16, "--lora-r", min=1),
    max_length: int = typer.Option(None, "--max-length", min=1, help="truncate longer samples (tokens)"),
    save_steps: int = typer.Option(200, "--save-steps", min=1),
    gpus: int = typer.Option(
        1, "--gpus", min=1, help="> 1 re-launches under torchrun with this many processes"
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fine-tune one agent with TRL's SFTTrainer (image + chat template) and write a merged model.

    OUT is a Hugging Face model folder (`pathgen caption RUN --model hf:OUT`, `vllm serve OUT`) with
    README.md (model card), loss_curve.png, training.json and checkpoints/.
    """
    from pydantic import ValidationError

    from pathgen.agents.training.config import AgentTrainConfig
    from pathgen.agents.training.train import ENV_LAUNCHED, launch_command, needs_launch, train_agent

    try:
        cfg = AgentTrainConfig(
            epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
            lora=lora, lora_r=lora_r, max_length=max_length, save_steps=save_steps, gpus=gpus, seed=seed,
        )  # fmt: skip
    except ValidationError as exc:
        raise fail(f"invalid training options: {exc.errors()[0]['msg']}") from exc
    if needs_launch(cfg):
        argv = sys.argv[sys.argv.index("train") + 1 :] if "train" in sys.argv else []
        cmd = launch_command(argv, gpus)
        console.print(shlex.join(cmd), markup=False, soft_wrap=True)
        import os

        code = subprocess.call(cmd, env={**os.environ, ENV_LAUNCHED: "1"})
        if code:
            raise typer.Exit(code)
        return
    try:
        summary = train_agent(
            agent, base, data, out, cfg, echo=lambda line: console.print(line, markup=False)
        )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"{agent}: {summary['steps']} steps, loss {summary['first_loss']} -> {summary['last_loss']}"
        f" (validation {summary['eval_loss']}), {summary['samples_per_s']} samples/s"
    )
    typer.echo(f"model: {out} (card: {out / 'README.md'}); use it: pathgen caption RUN --model hf:{out}")


@agents_app.command("eval")
def eval_cmd(
    agent: str = typer.Option(..., "--agent", help="describe | revise | summarize"),
    model: str = typer.Option(
        ..., "--model", "-m", help="generator: hf:DIR, tiny, or a served name with --base-url"
    ),
    data: Path = typer.Option(..., "--data", help="folder written by `pathgen agents data`"),
    out: Path = typer.Option(
        ..., "--out", "-o", help="folder for results.json, results.md, predictions.jsonl"
    ),
    base_url: list[str] = typer.Option(None, "--base-url", help="OpenAI-compatible server(s) of --model"),
    api_key_env: str = typer.Option(None, "--api-key-env"),
    encoder: str = typer.Option(None, "--encoder", help="describe: encoder spec for embedding similarity"),
    split: str = typer.Option("validation", "--split"),
    limit: int = typer.Option(None, "--limit", min=1, help="first N samples only"),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
) -> None:
    """Score an agent model on the held-out split (results.json + results.md, like `pathgen eval`)."""
    from pathgen.agents.training.config import AgentEvalConfig
    from pathgen.agents.training.evaluate import evaluate_agent

    if agent not in ("describe", "revise", "summarize"):
        raise fail(f"unknown agent {agent!r}; agents: describe, revise, summarize")
    try:
        cfg = AgentEvalConfig(split=split, limit=limit, max_tokens=max_tokens)
        result = evaluate_agent(
            agent, model, data, out, cfg, base_url=list(base_url) if base_url else None,
            api_key_env=api_key_env, encoder=encoder,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    m = result["metrics"]
    rows = [{"metric": k, "value": v} for k, v in m.items() if not isinstance(v, dict)]
    console.print(summary_table(f"{agent} agent: {model}", rows, ["metric", "value"]))
    typer.echo(f"results: {out / 'results.json'}, {out / 'results.md'}")
