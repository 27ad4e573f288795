"""Configuration of `pathgen train`: what to train on, from what, for how long, on what hardware.

Defaults follow the published PathGen-CLIP recipe: open_clip ViT-B-16 started from the OpenAI
weights, trained first on the generated pairs (stage 1) and then on existing pathology pairs
(stage 2, starting from stage 1's weights). Every field maps to an open_clip_train argument; the
mapping lives in :mod:`pathgen.train.argv`; mixing manifests are read by
:func:`pathgen.export.mixing.load_manifest`, the same module that `pathgen ingest` writes them with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StageConfig(BaseModel):
    """One training stage: its data and the knobs that differ between stages."""

    model_config = ConfigDict(extra="forbid")

    name: str
    data: str | None = Field(
        None, description="shards: brace pattern, directory of *.tar, or a manifest file"
    )
    epochs: int = Field(10, gt=0)
    lr: float = Field(1e-5, gt=0)
    warmup: int = Field(1000, ge=0)
    train_num_samples: int | None = Field(None, gt=0, description="samples per epoch; default: all")


class TrainConfig(BaseModel):
    """Everything `pathgen train` passes to open_clip_train (plus launch and export)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    out: Path = Field(
        ..., description="output folder: logs/, stage checkpoints, model.safetensors, README.md"
    )
    model: str = Field(
        "ViT-B-16", description="open_clip model name (pathgen-tiny is registered) or a model-config .json"
    )
    pretrained: str | None = Field(
        "openai", description="pretrained tag of the model (e.g. 'openai'), a checkpoint path, or None"
    )
    stage1: StageConfig = Field(default_factory=lambda: StageConfig(name="generated"))
    stage2: StageConfig | None = None
    batch_size: int = Field(256, gt=0, description="per GPU")
    workers: int = Field(4, ge=0)
    precision: Literal["amp", "amp_bf16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32"] = "amp"
    device: str = "cuda"
    wd: float = 0.1
    seed: int = 0
    gpus: int = Field(1, ge=1, description="processes per node; > 1 launches through torchrun")
    launcher: Literal["auto", "python", "torchrun"] = "auto"
    resume: str | None = Field(None, description="'latest' continues an interrupted run")
    save_frequency: int = Field(1, ge=0)
    log_every_n_steps: int = Field(10, gt=0)
    grad_checkpointing: bool = False
    force_quick_gelu: bool = Field(
        False,
        description="QuickGELU even when the pretrained tag does not ask for it (a checkpoint of OpenAI "
        "or PathGen-CLIP weights); a tag that needs it (openai) gets it without this",
    )
    aug_cfg: dict[str, str] = Field(default_factory=dict, description="open_clip_train --aug-cfg key=value")
    extra_args: list[str] = Field(default_factory=list, description="passed to open_clip_train verbatim")

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model name is empty; e.g. ViT-B-16 or pathgen-tiny")
        return v.strip()

    @model_validator(mode="after")
    def _has_data(self) -> TrainConfig:
        if not self.stage1.data and not (self.stage2 and self.stage2.data):
            raise ValueError(
                "no training data: give --train-data (shards or a manifest) and/or --stage2-data"
            )
        return self

    def model_name(self) -> str:
        """The open_clip name: the model itself, or the stem of a model-config JSON file."""
        return Path(self.model).stem if self.model.endswith(".json") else self.model

    def model_config_files(self) -> list[str]:
        """Config files to register with open_clip in every process (a ``--model`` JSON path)."""
        if not self.model.endswith(".json"):
            return []
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model config not found: {path}")
        return [str(path.resolve())]

    def stages(self) -> list[StageConfig]:
        return [s for s in (self.stage1, self.stage2) if s is not None and s.data]

    def use_torchrun(self) -> bool:
        return self.launcher == "torchrun" or (self.launcher == "auto" and self.gpus > 1)
