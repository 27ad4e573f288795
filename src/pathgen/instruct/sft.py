"""The TRL glue: supervised fine-tuning of a transformers VLM on prompt-completion conversations.

Kept to one small module on purpose (the agents' SFT, issue 11, does the same for its models; the
two are to be folded together). Rows are ``{image, prompt, completion}`` in TRL's conversational
prompt-completion form: TRL's vision collator runs the processor (chat template, image tokens,
pixels) per batch and computes the loss on the completion only, so the assistant learns to answer,
not to repeat questions. Which parameters train is the caller's choice (``trainable``), or LoRA
adapters (``lora``) through PEFT, which TRL applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def sft(
    model: Any,
    processor: Any,
    rows: Sequence[dict[str, Any]],
    out: Path,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int = 0,
    trainable: Callable[[str], bool] | None = None,
    lora: dict[str, Any] | None = None,
    warmup_ratio: float = 0.03,
) -> tuple[Any, list[dict[str, Any]]]:
    """Train ``model`` on ``rows``; returns the trained model (LoRA merged) and its loss log.

    ``rows[i]["image"]`` is a path or a PIL image; ``prompt`` / ``completion`` are chat messages.
    """
    import datasets
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("no training rows")
    ds = datasets.Dataset.from_list([{**r, "image": str(r["image"])} for r in rows])
    ds = ds.cast_column("image", datasets.Image())
    if trainable is not None:
        for name, p in model.named_parameters():
            p.requires_grad_(trainable(name))
    peft_config = None
    if lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", **lora)
    import torch

    gpu = torch.cuda.is_available()
    steps = math.ceil(len(rows) / batch_size) * epochs
    args = SFTConfig(
        output_dir=str(out),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        lr_scheduler_type="cosine",
        warmup_steps=int(warmup_ratio * steps),
        logging_steps=max(1, int(steps // 20)),
        save_strategy="no",
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        completion_only_loss=True,
        bf16=gpu and torch.cuda.is_bf16_supported(),  # TRL's default (bf16) refuses to run on a CPU
        use_cpu=not gpu,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds, processing_class=processor, peft_config=peft_config
    )
    trainer.train()
    log = [
        {"step": e["step"], "loss": e["loss"], "epoch": e.get("epoch")}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    trained = trainer.model
    if peft_config is not None:
        trained = trained.merge_and_unload()
    return trained, log
