"""`pathgen train`: run each stage through open_clip_train in its own process, then export.

Each stage runs as ``python -m pathgen.train.launch ARGS`` (or ``torchrun ... -m
pathgen.train.launch ARGS`` for several GPUs): a separate process keeps open_clip_train's logging
handlers and CUDA state out of the caller, and makes the single- and multi-GPU paths identical.
A finished stage is marked done in ``OUT/.pathgen/`` and skipped on re-run; an interrupted one
continues with ``--resume latest``. Stage 2 starts from stage 1's exported weights.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathgen.rundir import fingerprint, write_json
from pathgen.train.argv import ResolvedData, activation, resolve_data, stage_argv
from pathgen.train.config import StageConfig, TrainConfig
from pathgen.train.export import export_model, latest_checkpoint, loss_plot, parse_log, write_card
from pathgen.train.launch import CONFIGS_ENV


class TrainError(RuntimeError):
    """A stage's training process failed; the message names its log."""


def command(cfg: TrainConfig, argv: list[str]) -> list[str]:
    """The exact process command line of one stage."""
    if cfg.use_torchrun():
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={cfg.gpus}",
            "-m",
            "pathgen.train.launch",
            *argv,
        ]
    return [sys.executable, "-m", "pathgen.train.launch", *argv]


def _stage_fp(
    cfg: TrainConfig, stage: StageConfig, data: ResolvedData, pretrained: str | None, quick_gelu: bool = False
) -> str:
    """The settings a finished stage was trained with. The activation counts only when QuickGELU, so
    GELU stages finished before it was recorded keep their fingerprint (and are not retrained)."""
    drop = {"resume", "launcher", "workers", "stage1", "stage2", "force_quick_gelu"}
    keep = cfg.model_dump(mode="json", exclude=drop)
    extra = ["quick_gelu"] if quick_gelu else []
    return fingerprint(
        keep, stage.model_dump(mode="json"), data.train_data, data.upsampling_factors, pretrained, *extra
    )


def _marker(cfg: TrainConfig, stage: StageConfig) -> Path:
    return cfg.out / ".pathgen" / f"train-{stage.name}.json"


def check_pretrained(cfg: TrainConfig) -> str | None:
    """The ``--pretrained`` value to pass on: an existing file (absolute), or a known tag of the model.

    Checked before any process starts, so a typo fails in a second instead of after start-up.
    """
    value = cfg.pretrained
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return str(path.resolve())
    import open_clip

    from pathgen.models.encoders import register_model_configs

    register_model_configs()
    tags = open_clip.list_pretrained_tags_by_model(cfg.model_name())
    if value not in tags:
        known = f"its tags: {', '.join(tags)}" if tags else "it has no pretrained tags"
        raise ValueError(
            f"--pretrained {value!r} is neither a checkpoint file nor a pretrained tag of {cfg.model_name()} "
            f"({known}); use --pretrained none to start from random weights"
        )
    return value


def resolve_all(cfg: TrainConfig) -> dict[str, ResolvedData]:
    """Every stage's data, resolved (shards exist, manifests readable) before anything trains.

    Why up front: stage 2's data used to be checked only after stage 1 had trained for hours.
    """
    resolved = {}
    for stage in cfg.stages():
        try:
            resolved[stage.name] = resolve_data(stage.data or "")
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{stage.name} data {stage.data}: {exc}") from exc
    return resolved


def train(
    cfg: TrainConfig, dry_run: bool = False, echo: Callable[[str], None] = print, env: dict | None = None
) -> dict[str, Any]:
    """Run the configured stages; return (and write to ``OUT/training.json``) the run summary."""
    import json

    out = cfg.out
    logs = out / "logs"
    stages: list[dict[str, Any]] = []
    pretrained = check_pretrained(cfg)
    resolved = resolve_all(cfg)
    quick_gelu, act = activation(cfg)
    echo(f"activation: {act}")
    final_ckpt: Path | None = None
    for stage in cfg.stages():
        data = resolved[stage.name]
        argv = stage_argv(cfg, stage, data, logs, pretrained, quick_gelu)
        cmd = command(cfg, argv)
        stage_dir = logs / stage.name
        fp = _stage_fp(cfg, stage, data, pretrained, quick_gelu)
        marker = _marker(cfg, stage)
        if stages:  # open_clip_train logs "Loading full pretrained weights from" this file
            echo(f"{stage.name}: starts from {stages[-1]['name']}'s weights ({pretrained})")
        echo("$ " + shlex.join(cmd))
        record = {
            "name": stage.name,
            "data": stage.data,
            "num_samples": int(argv[argv.index("--train-num-samples") + 1]),
            "epochs": stage.epochs,
            "lr": stage.lr,
            "argv": argv,
            "command": shlex.join(cmd),
            "sources": data.sources,
            "pretrained": pretrained,
        }
        if dry_run:
            stages.append(record | {"curve": []})
            pretrained = str(out / stage.name / "model.safetensors")
            continue
        done = marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fp
        if not done:
            if (stage_dir / "out.log").exists() and cfg.resume != "latest":
                raise TrainError(
                    f"{stage_dir} holds a run of stage {stage.name!r} that is unfinished or used other "
                    "settings: pass --resume latest to continue it, or use a new --out"
                )
            started = time.time()
            extra_env = {CONFIGS_ENV: os.pathsep.join(cfg.model_config_files())}
            proc = subprocess.run(cmd, env={**os.environ, **extra_env, **(env or {})}, check=False)
            if proc.returncode != 0:
                raise TrainError(
                    f"stage {stage.name!r} failed (exit {proc.returncode}); see {stage_dir / 'out.log'}"
                )
            record["wall_s"] = round(time.time() - started, 1)
        ckpt = latest_checkpoint(stage_dir)
        if ckpt is None:
            raise TrainError(f"stage {stage.name!r} wrote no checkpoint under {stage_dir / 'checkpoints'}")
        export_model(cfg.model_name(), ckpt, out / stage.name, cfg.model_config_files(), quick_gelu)
        if not done:
            write_json(marker, {"fingerprint": fp, "checkpoint": str(ckpt)})
        record["checkpoint"] = str(ckpt)
        record["curve"] = parse_log(stage_dir / "out.log")
        stages.append(record)
        pretrained = str(out / stage.name / "model.safetensors")
        final_ckpt = ckpt
    summary: dict[str, Any] = {
        "model": cfg.model_name(),
        "pretrained": cfg.pretrained,
        "precision": cfg.precision,
        "batch_size": cfg.batch_size,
        "gpus": cfg.gpus,
        "activation": act,
        "config": cfg.model_dump(mode="json"),
        "stages": stages,
        "dry_run": dry_run,
    }
    if final_ckpt is not None:
        paths = export_model(cfg.model_name(), final_ckpt, out, cfg.model_config_files(), quick_gelu)
        summary["weights"] = str(paths["weights"])
        summary["loss_png"] = bool(loss_plot({s["name"]: s["curve"] for s in stages}, out / "loss.png"))
        write_card(out, summary)
        write_json(out / "training.json", summary)
    return summary
