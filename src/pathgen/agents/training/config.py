"""Defaults of ``pathgen agents data|train|eval``, in one place (the CLI reads them from here).

Like :mod:`pathgen.train.config`, these are not sections of a run config: agent training is done
once per lab, from a finished run, not per pipeline run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pathgen.config import CaptionConfig, default_of

AgentName = Literal["describe", "revise", "summarize"]


class AgentDataConfig(BaseModel):
    """How the three training sets are built from a run."""

    model_config = ConfigDict(extra="forbid")

    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of slides held out")
    copies: int = Field(1, ge=1, le=10, description="corrupted copies per description and error kind")
    clean_copies: int = Field(1, ge=0, le=10, description="uncorrupted copies (edits: []) per description")
    image_size: int = Field(448, gt=0, description="side of the stored patch images (px)")
    context_length: int = Field(default_of(CaptionConfig, "context_length"), gt=2)
    prompt_version: str | dict[str, str] = Field(
        "v1",
        description="prompt version (or .txt file) the sets are rendered with; a mapping sets it per agent "
        "(unnamed agents: v1), as the caption config's per-agent prompt_version does",
    )
    seed: int = 0


class AgentTrainConfig(BaseModel):
    """Supervised fine-tuning of one agent (TRL SFTTrainer)."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(4, gt=0, description="per device")
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(2e-5, gt=0)
    lora: bool = False
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    max_length: int | None = Field(None, gt=0, description="truncate longer samples (tokens)")
    eval_samples: int = Field(
        128,
        ge=0,
        description="validation samples whose loss is logged each epoch (0: none); the rest is for eval",
    )
    logging_steps: int = Field(5, gt=0)
    save_steps: int = Field(200, gt=0)
    seed: int = 0
    gpus: int = Field(1, ge=1, description="> 1 relaunches under torchrun with this many processes")
    gradient_checkpointing: bool | None = Field(
        None, description="trade compute for memory; None: on, except for the tiny base (TRL's default is on)"
    )


class AgentEvalConfig(BaseModel):
    """Held-out evaluation of an agent model."""

    model_config = ConfigDict(extra="forbid")

    split: str = "validation"
    max_tokens: int = Field(256, gt=0)
    limit: int | None = Field(None, gt=0, description="first N held-out samples only")
    concurrency: int = Field(8, gt=0)
