"""`pathgen train`: CLIP training on pathgen shards through open_clip_train (never a re-implemented loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pathgen.cli.app import MODELS, app
from pathgen.cli.common import console, fail


def _validation_message(exc: Any) -> str:
    """pydantic's first error; its location only when there is one (a whole-model check has none)."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = ".".join(str(part) for part in err.get("loc", ()))
    return f"{msg} ({loc})" if loc else msg


@app.command("train", rich_help_panel=MODELS)
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output folder: model.safetensors, README.md, logs/"),
    train_data: str = typer.Option(
        None,
        "--train-data",
        help="stage 1 data: shards (DIR, DIR/{00000..00009}.tar) or a mixing manifest .yaml/.json",
    ),
    stage2_data: str = typer.Option(
        None, "--stage2-data", help="stage 2 data (existing pairs), from stage 1's weights"
    ),
    model: str = typer.Option(
        "ViT-B-16", "--model", help="open_clip model name (pathgen-tiny is registered)"
    ),
    pretrained: str = typer.Option(
        "openai", "--pretrained", help="pretrained tag (openai), a checkpoint path, or 'none' for random init"
    ),
    epochs: int = typer.Option(10, "--epochs", min=1),
    lr: float = typer.Option(1e-5, "--lr"),
    warmup: int = typer.Option(1000, "--warmup", min=0),
    stage2_epochs: int = typer.Option(None, "--stage2-epochs", min=1, help="default: --epochs"),
    stage2_lr: float = typer.Option(None, "--stage2-lr", help="default: --lr"),
    samples_per_epoch: int = typer.Option(None, "--samples-per-epoch", min=1, help="default: all samples"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="per process"),
    workers: int = typer.Option(4, "--workers", min=0),
    precision: str = typer.Option("amp", "--precision", help="amp | amp_bf16 | bf16 | fp16 | fp32 ..."),
    device: str = typer.Option("cuda", "--device"),
    gpus: int = typer.Option(1, "--gpus", min=1, help="> 1 launches torchrun with this many processes"),
    launcher: str = typer.Option("auto", "--launcher", help="auto | python | torchrun"),
    resume: str = typer.Option(None, "--resume", help="'latest' continues an interrupted run"),
    seed: int = typer.Option(0, "--seed"),
    log_every: int = typer.Option(10, "--log-every", min=1, help="log the loss every N steps"),
    save_every: int = typer.Option(1, "--save-every", min=0, help="checkpoint every N epochs (0: last only)"),
    aug: list[str] = typer.Option([], "--aug", help="open_clip_train --aug-cfg KEY=VALUE (repeatable)"),
    extra: list[str] = typer.Option([], "--extra", help="one more raw open_clip_train argument (repeatable)"),
    force_quick_gelu: bool = typer.Option(
        False,
        "--force-quick-gelu",
        help="QuickGELU for a --pretrained checkpoint of OpenAI/PathGen-CLIP weights (tags such as openai "
        "get it without this)",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the command lines, train nothing"),
) -> None:
    """Train a CLIP on pathgen shards: stage 1 on generated pairs, optional stage 2 on existing pairs."""
    from pydantic import ValidationError

    from pathgen.train.config import StageConfig, TrainConfig
    from pathgen.train.run import TrainError, train

    try:
        aug_cfg = dict(item.split("=", 1) for item in aug)
    except ValueError as exc:
        raise fail("--aug takes KEY=VALUE, e.g. --aug scale=0.5,1.0") from exc
    try:
        cfg = TrainConfig(
            out=out,
            model=model,
            pretrained=None if pretrained.lower() in ("", "none") else pretrained,
            stage1=StageConfig(
                name="stage1",
                data=train_data,
                epochs=epochs,
                lr=lr,
                warmup=warmup,
                train_num_samples=samples_per_epoch,
            ),
            stage2=StageConfig(
                name="stage2",
                data=stage2_data,
                epochs=stage2_epochs or epochs,
                lr=stage2_lr or lr,
                warmup=warmup,
                train_num_samples=samples_per_epoch,
            )
            if stage2_data
            else None,
            batch_size=batch_size,
            workers=workers,
            precision=precision,
            device=device,
            gpus=gpus,
            launcher=launcher,
            resume=resume,
            seed=seed,
            log_every_n_steps=log_every,
            save_frequency=save_every,
            aug_cfg=aug_cfg,
            extra_args=list(extra),
            force_quick_gelu=force_quick_gelu,
        )
    except ValidationError as exc:
        raise fail(f"invalid training options: {_validation_message(exc)}") from exc
    try:
        summary = train(
            cfg, dry_run=dry_run, echo=lambda line: console.print(line, markup=False, soft_wrap=True)
        )
    except (TrainError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    for st in summary["stages"]:
        curve = [r["loss"] for r in st["curve"] if r["loss"] is not None]
        if curve:
            typer.echo(f"{st['name']}: loss {curve[0]:.4f} -> {curve[-1]:.4f} over {len(curve)} logged steps")
    if not dry_run:
        typer.echo(f"model: {summary['weights']} (card: {out / 'README.md'})")
