"""`pathgen assistant train`: a LLaVA-style pathology assistant from a CLIP folder and a causal LLM."""

from __future__ import annotations

from pathlib import Path

import typer

from pathgen.cli.app import MODELS, FilledGroup, app
from pathgen.cli.common import console, fail
from pathgen.cli.defaults import config_default

assistant_app = typer.Typer(
    cls=FilledGroup, help="The pathology assistant (LLaVA-style): `train`.", no_args_is_help=True
)
app.add_typer(assistant_app, name="assistant", rich_help_panel=MODELS)


@assistant_app.command("train")
def assistant_train(
    clip: Path = typer.Option(
        ..., "--clip", help="a `pathgen train` model folder (its ViT is the vision tower)"
    ),
    llm: str = typer.Option(
        ..., "--llm", help="causal LLM: hub id or local folder; 'tiny' = random test model"
    ),
    data: Path = typer.Option(..., "--data", "-d", help="a `pathgen instruct` output folder"),
    out: Path = typer.Option(..., "--out", "-o", help="output: a transformers (and vLLM) LLaVA folder"),
    stage1_epochs: float = typer.Option(
        None, "--stage1-epochs", help=config_default("assistant", "stage1_epochs")
    ),
    stage1_lr: float = typer.Option(None, "--stage1-lr", help=config_default("assistant", "stage1_lr")),
    stage2_epochs: float = typer.Option(
        None, "--stage2-epochs", help=config_default("assistant", "stage2_epochs")
    ),
    stage2_lr: float = typer.Option(None, "--stage2-lr", help=config_default("assistant", "stage2_lr")),
    lora: bool = typer.Option(
        None, "--lora/--full", help="stage 2 with LoRA " + config_default("assistant", "lora")
    ),
    tune_vision: bool = typer.Option(None, "--tune-vision", help=config_default("assistant", "tune_vision")),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help=config_default("assistant", "batch_size")
    ),
    max_length: int = typer.Option(
        None, "--max-length", min=16, help=config_default("assistant", "max_length")
    ),
    seed: int = typer.Option(None, "--seed", help=config_default("assistant", "seed")),
) -> None:
    """Stage 1 trains the projector on image-caption pairs; stage 2 instruction-tunes (full or LoRA)."""
    from pydantic import ValidationError

    from pathgen.config import AssistantConfig

    values = {
        "stage1_epochs": stage1_epochs, "stage1_lr": stage1_lr, "stage2_epochs": stage2_epochs,
        "stage2_lr": stage2_lr, "lora": lora, "tune_vision": tune_vision, "batch_size": batch_size,
        "max_length": max_length, "seed": seed,
    }  # fmt: skip
    try:
        cfg = AssistantConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise fail(str(exc.errors()[0]["msg"]) + f" ({'.'.join(map(str, exc.errors()[0]['loc']))})") from exc
    from pathgen.instruct.assistant import train_assistant

    try:
        summary = train_assistant(clip, llm, data, out, cfg, log=console.print)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    last = {k: round(v[-1]["loss"], 4) for k, v in summary["losses"].items() if v}
    console.print(f"assistant: trained in {summary['train_s']} s, final losses {last}; wrote {out}")
